/** pino logger factory: one logger per app instance, child loggers per component. */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Creates the app's root logger. `stream` lets tests capture JSON lines. */
export function createLogger(options: {
  level: string;
  stream?: DestinationStream | undefined;
}): Logger {
  const opts = { level: options.level, base: { app: 'switchyard' } };
  return options.stream ? pino(opts, options.stream) : pino(opts);
}

/** Collects pino's JSON log lines in memory, parsed, for assertions. */
import { Writable } from 'node:stream';

/** A writable stream for pino and the parsed lines written to it so far. */
export function createLogCollector(): { stream: Writable; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  let pending = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  return { stream, logs };
}

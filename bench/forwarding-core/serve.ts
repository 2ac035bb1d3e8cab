import http from 'node:http';
import { once } from 'node:events';

/**
 * Child-process entry helper: serves `handler` on 127.0.0.1:0, reports `{type:'ready', port}`
 * to the parent over IPC and exits on SIGTERM.
 */
export async function serveAndReport(handler: http.RequestListener): Promise<void> {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
  process.send?.({ type: 'ready', port });
}

/** The upstream URL passed as the first argument of a proxy child. */
export function upstreamArgument(): URL {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('usage: <proxy script> http://127.0.0.1:PORT');
  return new URL(raw);
}

import { serveAndReport } from './serve.js';

// The upstream of the forwarding-core runs: a fixed body, keep-alive, nothing else to cost CPU.
const size = Number(process.argv[2] ?? '100');
const body = Buffer.alloc(size, 'x');

await serveAndReport((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
  res.end(body);
});

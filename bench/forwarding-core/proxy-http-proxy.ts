import http from 'node:http';
import httpProxy from 'http-proxy';
import { serveAndReport, upstreamArgument } from './serve.js';

// node-http-proxy as most Node users would write it: a keep-alive agent and web().
const target = upstreamArgument();
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: target.origin, agent, xfwd: false });

proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"UPSTREAM_ERROR"}}');
  } else {
    res.destroy();
  }
});

await serveAndReport((req, res) => proxy.web(req, res));

/**
 * Issue 10 (hardening), the normal request path: the asterisk form is answered locally and never
 * ejects an endpoint (item 3), header fields past the count limit are refused (item 6), Host is
 * never hop-by-hop and client-supplied forwarding headers are trusted only from trusted proxies
 * (item 7), and loops are answered 508 (item 10). Every malformed request is sent raw.
 */
import { hostname } from 'node:os';
import { describe, expect, test } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { rawExchange } from '../helpers/raw-http.js';
import {
  makeTable,
  startProxy,
  startReference,
  type TestProxy,
  type TestReference,
} from '../helpers/reference.js';
import { startApp } from '../helpers/start-app.js';
import { readMetric } from '../helpers/metrics.js';

const BLUE = '1111111';

const closers = closeAfterEach();

/** `n` reference upstreams in pool blue behind a ProxyServer. */
async function world(
  config: Record<string, unknown> = {},
  n = 1,
): Promise<{ refs: TestReference[]; p: TestProxy }> {
  const refs: TestReference[] = [];
  for (let i = 0; i < n; i++) {
    const ref = await startReference({ pool: 'blue', version: BLUE });
    closers.push(ref.close);
    refs.push(ref);
  }
  const p = await startProxy(config);
  closers.push(p.close);
  p.proxy.applyTable(
    makeTable({ blue: { version: BLUE, endpoints: refs.map((r) => r.url), weight: 10000 } }),
  );
  return { refs, p };
}

function upstreamRequests(refs: TestReference[]): number {
  return refs.reduce((sum, r) => sum + r.server.stats().requests, 0);
}

function seenHeaders(body: string): Record<string, string> {
  return (JSON.parse(body) as { headers: Record<string, string> }).headers;
}

function errorOf(body: string): { code: string; message: string } {
  return (JSON.parse(body) as { error: { code: string; message: string } }).error;
}

describe('issue 10 item 3: the asterisk form', () => {
  test('OPTIONS * is answered locally (200, Allow) and 15 of them eject no endpoint', async () => {
    const { refs, p } = await world({}, 3);
    for (let i = 0; i < 15; i++) {
      const res = await rawExchange(
        p.port,
        'OPTIONS * HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n',
      );
      expect(res.status).toBe(200);
      expect(res.headers.allow).toBe('GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH');
      expect(res.headers['content-length']).toBe('0');
      expect(res.body).toBe('');
    }
    // Before the fix each was a 502 counted against the endpoint: 5 in a row ejected it.
    expect(p.proxy.poolHealth('blue')).toEqual({ healthy: 3, total: 3 });
    expect(upstreamRequests(refs)).toBe(0);
    expect(await readMetric(p.metrics, 'switchyard_upstream_errors_total')).toBe(0);
    expect(
      await readMetric(p.metrics, 'switchyard_requests_total', {
        pool: 'none',
        code_class: '2xx',
      }),
    ).toBe(15);
  });

  test('the asterisk form with any other method is refused with 400 and reaches no upstream', async () => {
    const { refs, p } = await world({}, 1);
    const res = await rawExchange(
      p.port,
      'GET * HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(400);
    expect(errorOf(res.body).code).toBe('BAD_REQUEST');
    expect(upstreamRequests(refs)).toBe(0);
    expect(p.proxy.poolHealth('blue')).toEqual({ healthy: 1, total: 1 });
  });
});

describe('issue 10 item 6: header fields past the count limit', () => {
  const fillers = (n: number): string => 'x-f: 1\r\n'.repeat(n);

  test('a Content-Length after 2,100 fillers gets 431 and the connection closes', async () => {
    const { refs, p } = await world();
    const res = await rawExchange(
      p.port,
      `POST /upload-hash HTTP/1.1\r\nHost: example.test\r\n${fillers(2100)}` +
        'Content-Length: 5\r\n\r\nhello',
    );
    expect(res.status).toBe(431);
    expect(res.headers.connection).toBe('close');
    expect(errorOf(res.body).code).toBe('HEADERS_TOO_LARGE');
    expect(upstreamRequests(refs)).toBe(0);
  });

  test('a Connection: close, x-secret past the limit cannot let X-Secret through', async () => {
    const { refs, p } = await world();
    const res = await rawExchange(
      p.port,
      `GET / HTTP/1.1\r\nHost: example.test\r\nX-Secret: 1\r\n${fillers(2100)}` +
        'Connection: close, x-secret\r\n\r\n',
    );
    expect(res.status).toBe(431);
    expect(upstreamRequests(refs)).toBe(0);
  });

  test('a request with many fields under the limit is forwarded with all of them', async () => {
    const { refs, p } = await world();
    const res = await rawExchange(
      p.port,
      `GET / HTTP/1.1\r\nHost: example.test\r\n${fillers(900)}Connection: close\r\n\r\n`,
    );
    expect(res.status).toBe(200);
    expect(seenHeaders(res.body)['x-f']?.split(', ')).toHaveLength(900);
    expect(upstreamRequests(refs)).toBe(1);
  });
});

describe('issue 10 item 7: Host, forwarding headers and the target scheme', () => {
  test('Connection: host does not strip Host: the upstream sees the client Host', async () => {
    const { p } = await world();
    const res = await rawExchange(
      p.port,
      'GET / HTTP/1.1\r\nHost: public.example\r\nConnection: close, host\r\n\r\n',
    );
    expect(res.status).toBe(200);
    expect(seenHeaders(res.body).host).toBe('public.example');
  });

  test('an HTTP/1.0 request without Host is refused with 400 (never the internal address)', async () => {
    const { refs, p } = await world();
    const res = await rawExchange(p.port, 'GET / HTTP/1.0\r\n\r\n');
    expect(res.status).toBe(400);
    expect(errorOf(res.body)).toEqual({ code: 'BAD_REQUEST', message: 'missing Host header' });
    expect(upstreamRequests(refs)).toBe(0);
  });

  test('an HTTP/1.0 request with Host is forwarded with it', async () => {
    const { p } = await world();
    const res = await rawExchange(p.port, 'GET / HTTP/1.0\r\nHost: public.example\r\n\r\n');
    expect(res.status).toBe(200);
    expect(seenHeaders(res.body).host).toBe('public.example');
  });

  test('Forwarded and X-Real-IP from an untrusted client are dropped', async () => {
    const { p } = await world();
    const res = await rawExchange(
      p.port,
      'GET / HTTP/1.1\r\nHost: public.example\r\nForwarded: for=6.6.6.6\r\n' +
        'X-Real-IP: 6.6.6.6\r\nConnection: close\r\n\r\n',
    );
    const seen = seenHeaders(res.body);
    expect(seen.forwarded).toBeUndefined();
    expect(seen['x-real-ip']).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
  });

  test('Forwarded and X-Real-IP from a trusted proxy are kept', async () => {
    const { p } = await world({ trustedProxies: ['127.0.0.1'] });
    const res = await rawExchange(
      p.port,
      'GET / HTTP/1.1\r\nHost: public.example\r\nForwarded: for=203.0.113.9\r\n' +
        'X-Real-IP: 203.0.113.9\r\nConnection: close\r\n\r\n',
    );
    const seen = seenHeaders(res.body);
    expect(seen.forwarded).toBe('for=203.0.113.9');
    expect(seen['x-real-ip']).toBe('203.0.113.9');
  });

  test.each(['file://public.example/etc/passwd', 'ftp://public.example/x', 'ws://public.example/'])(
    'an absolute-form %s target is refused with 400',
    async (target) => {
      const { refs, p } = await world();
      const res = await rawExchange(
        p.port,
        `GET ${target} HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n`,
      );
      expect(res.status).toBe(400);
      expect(errorOf(res.body).code).toBe('BAD_REQUEST');
      expect(upstreamRequests(refs)).toBe(0);
    },
  );

  test('an absolute-form http target for the Host is still forwarded by its path', async () => {
    const { p } = await world();
    const res = await rawExchange(
      p.port,
      'GET http://public.example/a?b=1 HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as { path: string }).path).toBe('/a');
  });
});

describe('issue 10 item 10: loops', () => {
  test('forwards with Via: 1.1 <token> appended to the client Via; the token names no host', async () => {
    const { p } = await world();
    const token = p.proxy.viaToken;
    expect(token).toMatch(/^switchyard-[0-9a-f]{12}$/);
    expect(token).not.toContain(hostname());
    const res = await rawExchange(
      p.port,
      'GET / HTTP/1.1\r\nHost: public.example\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1)\r\n' +
        'Connection: close\r\n\r\n',
    );
    expect(res.status).toBe(200);
    expect(seenHeaders(res.body).via).toBe(`1.0 fred, 1.1 p.example (Apache/1.1), 1.1 ${token}`);
    const res10 = await rawExchange(p.port, 'GET / HTTP/1.0\r\nHost: public.example\r\n\r\n');
    expect(seenHeaders(res10.body).via).toBe(`1.0 ${token}`);
  });

  test('a request that already passed through this replica gets 508 LOOP_DETECTED', async () => {
    const { refs, p } = await world();
    const res = await rawExchange(
      p.port,
      `GET / HTTP/1.1\r\nHost: public.example\r\nVia: 1.1 other, 1.1 ${p.proxy.viaToken}\r\n` +
        'Connection: close\r\n\r\n',
    );
    expect(res.status).toBe(508);
    expect(errorOf(res.body).code).toBe('LOOP_DETECTED');
    expect(upstreamRequests(refs)).toBe(0);
    expect(
      await readMetric(p.metrics, 'switchyard_requests_total', {
        pool: 'none',
        code_class: '5xx',
      }),
    ).toBe(1);
  });

  test('a loop through two replicas is answered 508 by the first one seen twice', async () => {
    const a = await startProxy({ upstreamTimeout: 5_000 });
    closers.push(a.close);
    const b = await startProxy({ upstreamTimeout: 5_000 });
    closers.push(b.close);
    a.proxy.applyTable(makeTable({ blue: { version: BLUE, endpoints: [b.url], weight: 10000 } }));
    b.proxy.applyTable(makeTable({ blue: { version: BLUE, endpoints: [a.url], weight: 10000 } }));
    const res = await rawExchange(
      a.port,
      'GET / HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(508);
    expect(errorOf(res.body).code).toBe('LOOP_DETECTED');
  });

  test('an endpoint on the proxy own port is answered 508 without connecting', async () => {
    const p = await startProxy({ upstreamTimeout: 5_000 });
    closers.push(p.close);
    // `localhost` and the any-address reach the same listener as 127.0.0.1.
    for (const host of ['127.0.0.1', 'localhost', '0.0.0.0']) {
      p.proxy.applyTable(
        makeTable({
          blue: { version: BLUE, endpoints: [`http://${host}:${p.port}`], weight: 10000 },
        }),
      );
      const res = await rawExchange(
        p.port,
        'GET / HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n',
      );
      expect(res.status).toBe(508);
      expect(errorOf(res.body)).toEqual({
        code: 'LOOP_DETECTED',
        message: 'the endpoint is a listener of this proxy',
      });
    }
    // One 508 per request, in its pool; a request that had looped through the proxy would show
    // a second, unrouted 508 (the Via check of the looped copy).
    expect(
      await readMetric(p.metrics, 'switchyard_requests_total', {
        pool: 'blue',
        code_class: '5xx',
      }),
    ).toBe(3);
    expect(
      await readMetric(p.metrics, 'switchyard_requests_total', {
        pool: 'none',
        code_class: '5xx',
      }),
    ).toBe(0);
  });

  test('upgrade requests get the same 508s: our Via token, or an endpoint on our own port', async () => {
    const { refs, p } = await world();
    const upgrade = (via: string): string =>
      'GET /ws HTTP/1.1\r\nHost: public.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
      `${via}\r\n`;
    const looped = await rawExchange(p.port, upgrade(`Via: 1.1 ${p.proxy.viaToken}\r\n`));
    expect(looped.status).toBe(508);
    expect(errorOf(looped.body).code).toBe('LOOP_DETECTED');
    expect(upstreamRequests(refs)).toBe(0);
    p.proxy.applyTable(
      makeTable({ blue: { version: BLUE, endpoints: [p.url], weight: 10000 } }, 2),
    );
    const self = await rawExchange(p.port, upgrade(''));
    expect(self.status).toBe(508);
    expect(errorOf(self.body).message).toBe('the endpoint is a listener of this proxy');
  });

  test('an endpoint on the admin port never serves the admin API on the public port', async () => {
    const t = await startApp();
    closers.push(() => t.close());
    const adminPort = t.app.admin.address().port;
    t.app.proxy.applyTable(
      makeTable({
        blue: { version: BLUE, endpoints: [`http://127.0.0.1:${adminPort}`], weight: 10000 },
      }),
    );
    const port = t.app.proxy.address().port;
    const res = await rawExchange(
      port,
      'GET /metrics HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n',
    );
    expect(res.status).toBe(508);
    expect(errorOf(res.body).code).toBe('LOOP_DETECTED');
    expect(res.body).not.toContain('switchyard_');
  });
});

describe('issue 10: one error path, counted under the real status', () => {
  test('CONNECT and a too-large head are JSON answers counted as 4xx', async () => {
    const { p } = await world();
    const connect = await rawExchange(p.port, 'CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(connect.status).toBe(405);
    expect(errorOf(connect.body).code).toBe('METHOD_NOT_ALLOWED');
    const big = await rawExchange(
      p.port,
      `GET / HTTP/1.1\r\nHost: a\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(big.status).toBe(431);
    expect(big.headers['content-type']).toBe('application/json');
    expect(errorOf(big.body).code).toBe('HEADERS_TOO_LARGE');
    expect(
      await readMetric(p.metrics, 'switchyard_requests_total', {
        pool: 'none',
        code_class: '4xx',
      }),
    ).toBe(2);
  });
});

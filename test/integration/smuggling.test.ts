/**
 * Request smuggling (issue 10): the classic desync mutations a scanner sends, by hand. The proxy
 * may refuse a mutation (400) or forward it as one well-framed request; what must never happen is
 * a request reaching the upstream that the proxy did not build. The proxy rewrites
 * X-Forwarded-For of every request it forwards (the client is untrusted), and every smuggled
 * payload carries a forged one, so the invariant is: every request the upstream parses carries
 * exactly the client's real address. The upstream runs Node's lenient parser
 * (insecureHTTPParser), the kind of backend a desync usually fools.
 */
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { closeAfterEach } from '../helpers/closers.js';
import { makeTable, startProxy } from '../helpers/reference.js';

const closers = closeAfterEach();

const VERSION = 'abcdef1';
/** What a desync would deliver to the upstream as a request of its own. */
const SMUGGLED =
  'GET /smuggled HTTP/1.1\r\nHost: victim\r\nX-Forwarded-For: 6.6.6.6\r\nX-Smuggled: 1\r\n\r\n';
const HOST = 'Host: example.test\r\n';

/** Header spellings that try to make one parser see chunked framing and another not. */
const TE_VARIANTS = [
  'Transfer-Encoding: chunked',
  'Transfer-Encoding: xchunked',
  'Transfer-Encoding : chunked',
  'Transfer-Encoding:chunked',
  'Transfer-Encoding:\tchunked',
  'Transfer-Encoding: chunked\r\nTransfer-Encoding: x',
  'Transfer-Encoding: x\r\nTransfer-Encoding: chunked',
  'Transfer-Encoding: chunked, identity',
  'Transfer-Encoding: identity, chunked',
  'Transfer-Encoding: chunked, chunked',
  ' Transfer-Encoding: chunked',
  'X-Pad: y\r\n Transfer-Encoding: chunked',
  'X-Pad: y\r\n\tTransfer-Encoding: chunked',
  'Transfer-Encoding\r\n: chunked',
  'Transfer-Encoding: "chunked"',
  'Transfer-Encoding: CHUNKED',
  'Transfer-encoding: cHuNkEd',
  'Transfer-Encoding: chunk',
  'Transfer_Encoding: chunked',
  'Transfer-Encoding: \u000bchunked',
  'Transfer-Encoding: chunked\u0000',
  'X-Pad: y\nTransfer-Encoding: chunked',
  'Transfer-Encoding: chunked\n',
  'Content-Encoding: chunked',
];

/** Content-Length spellings that two parsers may read differently. */
const CL_VARIANTS = (n: number): string[] => [
  `Content-Length: 0\r\nContent-Length: ${n}`,
  `Content-Length: ${n}\r\nContent-Length: 0`,
  `Content-Length: 0, ${n}`,
  `Content-Length: ${n}, 0`,
  `Content-Length: +${n}`,
  `Content-Length: -0`,
  `Content-Length: 0x${n.toString(16)}`,
  `Content-Length : ${n}`,
  `Content-Length: ${n} 0`,
  `Content-Length:\t0`,
  `Content-Length: 0\r\n Content-Length: ${n}`,
  `Content-Length: 00000000000000000000000000000000000000000000000000000000000000000`,
  `Content-Length: 99999999999999999999999999`,
];

function hex(n: number): string {
  return n.toString(16);
}

/** Every mutation: raw request bytes with SMUGGLED hidden where one parser may read a request. */
function mutations(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const te of TE_VARIANTS) {
    // CL.TE: the front end reads Content-Length, the back end chunked (the body ends at "0").
    const clte = `0\r\n\r\n${SMUGGLED}`;
    out.push([
      `CL.TE ${JSON.stringify(te)}`,
      `POST / HTTP/1.1\r\n${HOST}Content-Length: ${clte.length}\r\n${te}\r\n\r\n${clte}`,
    ]);
    // TE.CL: the front end reads chunked, the back end Content-Length (4 bytes, then SMUGGLED).
    const tecl = `${hex(SMUGGLED.length)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
    out.push([
      `TE.CL ${JSON.stringify(te)}`,
      `POST / HTTP/1.1\r\n${HOST}Content-Length: 4\r\n${te}\r\n\r\n${tecl}`,
    ]);
    // TE alone with a body that is a complete request if chunked framing is not honoured.
    out.push([
      `TE only ${JSON.stringify(te)}`,
      `POST / HTTP/1.1\r\n${HOST}${te}\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    ]);
  }
  for (const cl of CL_VARIANTS(SMUGGLED.length)) {
    out.push([`CL ${JSON.stringify(cl)}`, `POST / HTTP/1.1\r\n${HOST}${cl}\r\n\r\n${SMUGGLED}`]);
    out.push([`GET ${JSON.stringify(cl)}`, `GET / HTTP/1.1\r\n${HOST}${cl}\r\n\r\n${SMUGGLED}`]);
  }
  const chunked = 'Transfer-Encoding: chunked\r\n';
  out.push(
    [
      'chunk size overflow',
      `POST / HTTP/1.1\r\n${HOST}${chunked}\r\nffffffffffffffff1\r\nx\r\n0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'chunk extension with CR',
      `POST / HTTP/1.1\r\n${HOST}${chunked}\r\n5;a=\rb\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
    ],
    ['bare LF chunk lines', `POST / HTTP/1.1\r\n${HOST}${chunked}\r\n5\nhello\n0\n\n${SMUGGLED}`],
    ['chunk size with spaces', `POST / HTTP/1.1\r\n${HOST}${chunked}\r\n 5 \r\nhello\r\n0\r\n\r\n`],
    [
      'chunk data longer than its size',
      `POST / HTTP/1.1\r\n${HOST}${chunked}\r\n1\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'trailer smuggles a header',
      `POST / HTTP/1.1\r\n${HOST}${chunked}\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n`,
    ],
    ['HTTP/1.0 with chunked', `POST / HTTP/1.0\r\n${HOST}${chunked}\r\n0\r\n\r\n${SMUGGLED}`],
    ['HTTP/0.9 style line', `GET /\r\n\r\n${SMUGGLED}`],
    ['LF-only request', `GET / HTTP/1.1\nHost: example.test\n\n${SMUGGLED}`],
    ['space in header name', `GET / HTTP/1.1\r\n${HOST}X Forwarded-For: 6.6.6.6\r\n\r\n`],
    ['NUL in request line', `GET /\u0000 HTTP/1.1\r\n${HOST}\r\n${SMUGGLED}`],
    ['two Host headers', `GET / HTTP/1.1\r\n${HOST}Host: victim\r\n\r\n`],
    [
      'absolute form for another host',
      `GET http://victim/ HTTP/1.1\r\n${HOST}Content-Length: 0\r\n\r\n`,
    ],
    [
      'pipelined after Connection: close',
      `GET / HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n${SMUGGLED}`,
    ],
    [
      'Connection names Content-Length',
      `POST / HTTP/1.1\r\n${HOST}Connection: content-length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    ],
    [
      'Connection names Transfer-Encoding',
      `POST / HTTP/1.1\r\n${HOST}Connection: transfer-encoding\r\n${chunked}\r\n0\r\n\r\n${SMUGGLED}`,
    ],
  );
  return out;
}

/**
 * Mutations whose second request follows only after the first answer arrived (issue 10 item 1:
 * a non-WebSocket Upgrade answered 200 left a raw tunnel open for whatever came next).
 */
function afterAnswer(): Array<[string, string, string]> {
  return [
    [
      'Upgrade: foo answered 200, then a request',
      `GET / HTTP/1.1\r\n${HOST}Connection: Upgrade\r\nUpgrade: foo\r\n\r\n`,
      SMUGGLED,
    ],
    [
      'Upgrade: h2c answered 200, then a request',
      `GET / HTTP/1.1\r\n${HOST}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n` +
        'HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
      SMUGGLED,
    ],
    [
      'Upgrade: websocket answered 200, then a request',
      `GET / HTTP/1.1\r\n${HOST}Connection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      SMUGGLED,
    ],
  ];
}

/**
 * Writes `bytes` (and `then` once the first answer bytes arrived), half-closes, and reads until
 * the proxy closes (bounded).
 */
async function exchange(port: number, bytes: string, then?: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  if (then === undefined) socket.end(Buffer.from(bytes, 'latin1'));
  else {
    socket.write(Buffer.from(bytes, 'latin1'));
    socket.once('data', () => socket.end(Buffer.from(then, 'latin1')));
  }
  const timer = setTimeout(() => socket.destroy(), 5_000);
  await once(socket, 'close');
  clearTimeout(timer);
  return Buffer.concat(chunks).toString('latin1');
}

describe('request smuggling mutations', () => {
  test('no mutation delivers a request the proxy did not build, and the proxy stays up', async () => {
    const seen: Array<{ url: string; xff: string | string[] | undefined; smuggled: boolean }> = [];
    const upstream = createHttpServer({ insecureHTTPParser: true }, (req: IncomingMessage, res) => {
      seen.push({
        url: req.url ?? '',
        xff: req.headers['x-forwarded-for'],
        smuggled: req.headers['x-smuggled'] !== undefined,
      });
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    upstream.on('clientError', (_err, socket) => socket.destroy());
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    closers.push(() => new Promise<void>((resolve) => upstream.close(() => resolve())));
    closers.push(() => upstream.closeAllConnections());
    const { port: upstreamPort } = upstream.address() as AddressInfo;
    const p = await startProxy(
      { headersTimeout: 2_000, requestTimeout: 4_000 },
      makeTable({
        blue: {
          version: VERSION,
          endpoints: [`http://127.0.0.1:${upstreamPort}`],
          weight: 10_000,
        },
      }),
    );
    closers.push(p.close);

    const all = mutations();
    const answers = new Map<string, string>();
    // A few at a time: bounded concurrency keeps a busy runner responsive.
    for (let i = 0; i < all.length; i += 8) {
      await Promise.all(
        all.slice(i, i + 8).map(async ([name, bytes]) => {
          answers.set(name, await exchange(p.port, bytes));
        }),
      );
    }
    for (const [name, bytes, then] of afterAnswer()) {
      answers.set(name, await exchange(p.port, bytes, then));
    }

    const forged = seen.filter((r) => r.xff !== '127.0.0.1');
    expect(forged, 'requests the upstream parsed that the proxy did not build').toEqual([]);
    // Every mutation got an HTTP answer or a plain close: never a hang past the bound.
    for (const [name, answer] of answers) {
      expect(
        answer === '' || answer.startsWith('HTTP/1.1 '),
        `${name}: ${answer.slice(0, 40)}`,
      ).toBe(true);
    }
    const refused = [...answers.values()].filter((a) => /^HTTP\/1\.1 4\d\d/.test(a)).length;
    console.log(
      `smuggling: ${answers.size} mutations, ${refused} refused with 4xx, ` +
        `${seen.length} requests reached the upstream, ${forged.length} forged`,
    );
    const ok = await fetch(`${p.url}/`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('ok');
  });
});

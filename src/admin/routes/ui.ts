/**
 * GET /ui: the dashboard (SPEC §11, issue 14), three static files served from `src/ui/` (copied
 * next to the compiled code by `npm run build`). The page itself holds no data and needs no
 * token; everything it shows comes from the token-protected API, called by the page's script.
 *
 * Headers: a strict Content-Security-Policy (scripts, styles and connections from this origin
 * only, no inline code, no framing), `nosniff`, no referrer; an ETag with `no-cache`, so a
 * browser revalidates each load (304 when unchanged) and never runs a stale script after an
 * upgrade.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { Route, RouteReply } from '../router.js';

/** The policy of every dashboard response. */
export const UI_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  // The empty data: favicon keeps the browser from asking for /favicon.ico.
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ASSETS = [
  { path: '/ui', file: 'index.html', type: 'text/html; charset=utf-8', summary: 'The dashboard' },
  {
    path: '/ui/app.js',
    file: 'app.js',
    type: 'text/javascript; charset=utf-8',
    summary: "The dashboard's script",
  },
  {
    path: '/ui/app.css',
    file: 'app.css',
    type: 'text/css; charset=utf-8',
    summary: "The dashboard's style sheet",
  },
] as const;

interface Loaded {
  readonly body: Buffer;
  readonly etag: string;
}

/** The dashboard routes; each file is read once, on its first request. */
export function uiRoutes(dir: URL = new URL('../../ui/', import.meta.url)): Route[] {
  return ASSETS.map(({ path, file, type, summary }): Route => {
    let loaded: Promise<Loaded> | null = null;
    const load = async (): Promise<Loaded> => {
      const body = await readFile(new URL(file, dir));
      const hash = createHash('sha256').update(body).digest('base64url').slice(0, 22);
      return { body, etag: `"${hash}"` };
    };
    return {
      method: 'GET',
      path,
      auth: 'none',
      summary,
      description:
        'Static; no token needed (the page asks for it and sends it to the API). Served with a strict Content-Security-Policy and an ETag.',
      response: { contentType: type },
      handle: async ({ req }) => {
        loaded ??= load().catch((err: unknown) => {
          loaded = null; // a missing file (no build) is retried on the next request
          throw err;
        });
        return reply(req, await loaded, type);
      },
    };
  });
}

function reply(req: IncomingMessage, { body, etag }: Loaded, type: string): RouteReply {
  const headers: Record<string, string> = {
    'content-type': type,
    etag,
    'cache-control': 'no-cache',
    'content-security-policy': UI_CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  };
  const match = req.headers['if-none-match'];
  if (match !== undefined && match.split(',').some((t) => t.trim() === etag)) {
    return { status: 304, body: Buffer.alloc(0), headers };
  }
  return { status: 200, body, headers };
}

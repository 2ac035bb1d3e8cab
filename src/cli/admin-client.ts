/**
 * The CLI's HTTP client of the admin API: one undici Agent per run, bearer token, `cli` source
 * header, the actor header on changes, and a clear split between "the server said no" and "the server could not be reached".
 */
import { Agent, request } from 'undici';
import { ACTOR_HEADER } from './actor.js';

/** The server answered (any status). */
export interface AdminAnswer {
  readonly status: number;
  /** Parsed JSON body, or the raw text when it was not JSON. */
  readonly body: unknown;
}

/** The admin API could not be reached (refused, timed out, DNS failure, connection reset). */
export class AdminUnreachableError extends Error {
  constructor(url: string, cause: unknown) {
    // Redacted even though the CLI refuses credentials in the URL: this message is printed.
    super(
      `cannot reach the admin API at ${redactUserinfo(url)}: ${redactUserinfo(describe(cause))}`,
      {
        cause,
      },
    );
    this.name = 'AdminUnreachableError';
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code} (${err.message})` : err.message;
  }
  return String(err);
}

/**
 * WHATWG URL parsing ignores leading/trailing C0 controls and spaces and removes tabs and
 * newlines anywhere, so the text is normalised the same way before looking for userinfo.
 */
function urlText(text: string): string {
  // eslint-disable-next-line no-control-regex -- the URL standard's own C0 control set
  return text.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, '').replace(/[\t\n\r]/g, '');
}

/**
 * True when URL text carries userinfo (`user:password@` or `user@`) before its host, whether or
 * not it parses: `http://ops:s3cret@127.0.0.1:99999` (bad port), `http:ops:s3cret@host` and
 * `ops:s3cret@host` (no slashes) all count. Decided on the text, since a URL that does not parse
 * has no `username` to look at. An `@` in the path (after the first slash, backslash, `?` or `#`
 * past the authority) does not count.
 */
export function hasUserinfo(url: string): boolean {
  return /^(?:[A-Za-z][A-Za-z0-9+.-]*:)?[/\\]*[^/\\?#]*@/.test(urlText(url));
}

/**
 * `text` with the userinfo of every URL in it replaced: `http://ops:s3cret@host` becomes
 * `http://***@host`. For messages that echo a URL; a password may itself hold `@`, so everything
 * up to the last `@` of the authority goes.
 */
export function redactUserinfo(text: string): string {
  return text.replace(/([/\\]{2})[^/\\?#\s]*@/g, '$1***@');
}

/**
 * The URL of one admin API call: the base URL's path (trailing slashes trimmed) followed by the
 * API path, which may carry a query string. `new URL('/v1/state', base)` would drop a prefix such
 * as `/switchyard` (an admin API behind a reverse proxy): an absolute path replaces the base path.
 * The base must have no query or fragment (the CLI refuses one as a usage error).
 */
export function adminCallUrl(baseUrl: string, path: string): string {
  if (!path.startsWith('/')) throw new TypeError(`admin API path must start with /: ${path}`);
  const url = new URL(baseUrl);
  const q = path.indexOf('?');
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${q === -1 ? path : path.slice(0, q)}`;
  url.search = q === -1 ? '' : path.slice(q);
  url.hash = '';
  return url.toString();
}

/** Options of AdminClient. */
export interface AdminClientOptions {
  /** Base URL, e.g. http://127.0.0.1:9090 or, behind a reverse proxy, https://ops.example/switchyard. */
  readonly baseUrl: string;
  readonly token?: string | undefined;
  /** How long to wait for an answer (ms). */
  readonly timeoutMs: number;
  /** Who makes the changes (audit log): sent as `x-switchyard-actor` on every non-GET call. */
  readonly actor?: string | undefined;
}

/** A short-lived client: call close() when done so no socket keeps the process alive. */
export class AdminClient {
  readonly #options: AdminClientOptions;
  readonly #agent: Agent;

  constructor(options: AdminClientOptions) {
    this.#options = options;
    this.#agent = new Agent({ connect: { timeout: Math.min(options.timeoutMs, 5_000) } });
  }

  /** Sends one call; resolves with any answer, rejects with AdminUnreachableError. */
  async call(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<AdminAnswer> {
    const url = adminCallUrl(this.#options.baseUrl, path);
    const headers: Record<string, string> = {
      'x-switchyard-source': 'cli',
      accept: 'application/json',
    };
    if (this.#options.token !== undefined) headers.authorization = `Bearer ${this.#options.token}`;
    // Every change says JSON, a bodyless one too: the admin API refuses changes without it (415).
    if (method !== 'GET') headers['content-type'] = 'application/json';
    if (method !== 'GET' && this.#options.actor !== undefined) {
      headers[ACTOR_HEADER] = this.#options.actor;
    }
    try {
      const res = await request(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        dispatcher: this.#agent,
        headersTimeout: this.#options.timeoutMs,
        bodyTimeout: this.#options.timeoutMs,
      });
      const text = await res.body.text();
      let parsed: unknown = text;
      if (/json/i.test(String(res.headers['content-type'] ?? ''))) {
        try {
          parsed = JSON.parse(text) as unknown;
        } catch {
          parsed = text;
        }
      }
      return { status: res.statusCode, body: parsed };
    } catch (err) {
      throw new AdminUnreachableError(this.#options.baseUrl, err);
    }
  }

  /** Closes the client's connections. */
  async close(): Promise<void> {
    await this.#agent.close();
  }
}

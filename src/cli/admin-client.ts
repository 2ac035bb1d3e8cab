/**
 * The CLI's HTTP client of the admin API: one undici Agent per run, bearer token, `cli` source
 * header, and a clear split between "the server said no" and "the server could not be reached".
 */
import { Agent, request } from 'undici';

/** The server answered (any status). */
export interface AdminAnswer {
  readonly status: number;
  /** Parsed JSON body, or the raw text when it was not JSON. */
  readonly body: unknown;
}

/** The admin API could not be reached (refused, timed out, DNS failure, connection reset). */
export class AdminUnreachableError extends Error {
  constructor(url: string, cause: unknown) {
    super(`cannot reach the admin API at ${url}: ${describe(cause)}`, { cause });
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
    if (body !== undefined) headers['content-type'] = 'application/json';
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

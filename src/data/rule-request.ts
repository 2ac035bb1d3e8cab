/**
 * The request as routing rules see it (SPEC §12): headers, cookies, query parameters and path,
 * each read only when a rule asks, from what the request path has already collected. Built only
 * when the table has rules.
 */
import type { RuleRequest } from '../table/rule-match.js';

/** Reads one cookie from a Cookie header value; undefined when absent. */
export function readCookie(header: string, name: string): string | undefined {
  let from = 0;
  const n = header.length;
  while (from < n) {
    while (from < n && (header.charCodeAt(from) === 32 || header.charCodeAt(from) === 59)) from++;
    let end = header.indexOf(';', from);
    if (end === -1) end = n;
    if (
      end - from > name.length &&
      header.charCodeAt(from + name.length) === 61 &&
      header.startsWith(name, from)
    ) {
      return header.slice(from + name.length + 1, end).trim();
    }
    from = end + 1;
  }
  return undefined;
}

/** A request's view for rule matching. */
export class RuleRequestView implements RuleRequest {
  readonly #raw: readonly string[];
  readonly #cookie: string | undefined;
  /** Origin-form target: path and query as sent. */
  readonly #target: string;
  #params: URLSearchParams | null = null;

  /**
   * `raw` is the request's rawHeaders list, `cookie` its Cookie fields joined by `; `, `target`
   * the path and query as sent.
   */
  constructor(raw: readonly string[], cookie: string | undefined, target: string) {
    this.#raw = raw;
    this.#cookie = cookie;
    this.#target = target;
  }

  header(name: string): string | undefined {
    const raw = this.#raw;
    let out: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const field = raw[i] as string;
      if (field.length === name.length && field.toLowerCase() === name) {
        const value = raw[i + 1] as string;
        out = out === undefined ? value : `${out}, ${value}`;
      }
    }
    return out;
  }

  cookie(name: string): string | undefined {
    return this.#cookie === undefined ? undefined : readCookie(this.#cookie, name);
  }

  query(name: string): string | undefined {
    if (this.#params === null) {
      const q = this.#target.indexOf('?');
      if (q === -1) return undefined;
      this.#params = new URLSearchParams(this.#target.slice(q + 1));
    }
    return this.#params.get(name) ?? undefined;
  }

  path(): string {
    const q = this.#target.indexOf('?');
    return q === -1 ? this.#target : this.#target.slice(0, q);
  }
}

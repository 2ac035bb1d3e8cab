/**
 * Secrets out of echoed text: validation messages and the audit log show what a caller sent, but
 * never a password in a URL or a credential in a header-like value (issue 10 item 5).
 */

/**
 * Userinfo of a URL, with or without slashes (`http://u:p@h`, `redis://:p@h`, `http:u:p@h`): up
 * to the last `@` of the authority, as WHATWG URL parsing takes it (`http://u:p@ss@h`).
 */
const USERINFO = /([a-z][a-z0-9+.-]*:\/*)[^\s/?#]*@/gi;
/** An authority left open at the end of a cut text (its `@` may have been cut off). */
const OPEN_AUTHORITY_AT_END = /([a-z][a-z0-9+.-]*:\/*)[^\s/?#]*$/i;
/** HTTP credentials (`Bearer abc`, `Basic dXNlcjpwdw==`). */
const AUTH_SCHEME = /\b(bearer|basic)\s+[^\s"',;]+/gi;

/**
 * `text` cut at `maxChars` (marked with `…`), with URL userinfo and HTTP credentials replaced by
 * `***`. When the cut falls inside a URL's authority, the rest of that authority is dropped too,
 * so a password whose `@` was cut off does not show.
 */
export function redactText(text: string, maxChars: number): string {
  // Cut first: the patterns then run over a bounded string (no quadratic scan of 1 MiB).
  if (text.length <= maxChars) return redact(text);
  return `${redact(text.slice(0, maxChars)).replace(OPEN_AUTHORITY_AT_END, '$1')}…`;
}

function redact(text: string): string {
  return text.replace(USERINFO, '$1***@').replace(AUTH_SCHEME, '$1 ***');
}

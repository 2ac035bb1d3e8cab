/**
 * Admin API authentication and bind-address safety (SPEC §5): bearer token compared in constant
 * time; a non-loopback bind without a token is refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * RFC 6750 §2.1 b64token: the characters a bearer token may hold. The admin token is checked
 * against it when the configuration loads (and the CLI checks what it will send), so a token
 * with white space or a trailing newline from a secret file stops start-up instead of making
 * every call a 401 that looks like a wrong token.
 */
const B64TOKEN = '[A-Za-z0-9\\-._~+/]+=*';
const B64TOKEN_RE = new RegExp(`^${B64TOKEN}$`);
/** `Authorization: Bearer <b64token>`; the scheme is case-insensitive (RFC 7235 §2.1). */
const AUTHORIZATION_RE = new RegExp(`^Bearer[ \\t]+(${B64TOKEN})[ \\t]*$`, 'i');
const RULE = 'a bearer token is letters, digits and - . _ ~ + / (RFC 6750), optionally ending in =';

/**
 * Why `token` cannot be sent as `Authorization: Bearer <token>`, or null when it can. Names the
 * position of the first bad character, never the token itself (it is a secret).
 */
export function bearerTokenProblem(token: string): string | null {
  if (B64TOKEN_RE.test(token)) return null;
  if (token === '') return `is empty; ${RULE}`;
  const space = token.search(/\s/);
  if (space !== -1) {
    return `contains white space at character ${space + 1} (a trailing newline from a secret file?); ${RULE}`;
  }
  // Everything before this index is a valid b64token prefix (possibly with its = padding).
  const good = /^[A-Za-z0-9\-._~+/]*=*/.exec(token)?.[0].length ?? 0;
  return `character ${good + 1} is not allowed; ${RULE}`;
}

/**
 * Returns a checker for `Authorization` header values. Both sides are hashed with SHA-256 first so
 * timingSafeEqual always compares 32 bytes: neither the comparison time nor a length mismatch
 * (which makes timingSafeEqual throw) reveals anything about the token. Throws for a token that is
 * not a b64token: no client could send it, so every call would be refused.
 */
export function createTokenCheck(token: string): (authorization: string | undefined) => boolean {
  const problem = bearerTokenProblem(token);
  if (problem !== null) throw new TypeError(`admin token: ${problem}`);
  const expected = createHash('sha256').update(token, 'utf8').digest();
  return (authorization) => {
    if (authorization === undefined) return false;
    const m = AUTHORIZATION_RE.exec(authorization);
    if (!m) return false;
    const given = createHash('sha256')
      .update(m[1] as string, 'utf8')
      .digest();
    return timingSafeEqual(given, expected);
  };
}

/**
 * Admin API authentication and bind-address safety (SPEC §5): bearer token compared in constant
 * time; a non-loopback bind without a token is refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { B64TOKEN_SOURCE, bearerTokenProblem } from '../lib/bearer-token.js';

/** `Authorization: Bearer <b64token>`; the scheme is case-insensitive (RFC 7235 §2.1). */
const AUTHORIZATION_RE = new RegExp(`^Bearer[ \\t]+(${B64TOKEN_SOURCE})[ \\t]*$`, 'i');

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

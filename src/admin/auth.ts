/**
 * Admin API authentication and bind-address safety (SPEC §5): bearer token compared in constant
 * time; a non-loopback bind without a token is refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Returns a checker for `Authorization` header values. Both sides are hashed with SHA-256 first so
 * timingSafeEqual always compares 32 bytes: neither the comparison time nor a length mismatch
 * (which makes timingSafeEqual throw) reveals anything about the token.
 */
export function createTokenCheck(token: string): (authorization: string | undefined) => boolean {
  const expected = createHash('sha256').update(token, 'utf8').digest();
  return (authorization) => {
    if (authorization === undefined) return false;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (!m) return false;
    const given = createHash('sha256')
      .update(m[1] as string, 'utf8')
      .digest();
    return timingSafeEqual(given, expected);
  };
}

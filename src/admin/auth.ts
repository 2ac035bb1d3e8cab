/**
 * Admin API authentication and bind-address safety (SPEC §5): bearer token compared in constant
 * time; a non-loopback bind without a token is refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

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

/** True when `host` can only be reached from this machine: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && (mapped[1] as string).startsWith('127.');
  }
  return false;
}

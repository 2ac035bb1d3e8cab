/**
 * RFC 6750 §2.1 b64token: the characters a bearer token may hold. The admin and override tokens
 * are checked against it when the configuration loads (and the CLI checks what it will send), so
 * a token with white space or a trailing newline from a secret file stops start-up instead of
 * making every call a 401 that looks like a wrong token.
 */

/** Regular-expression source of one b64token (no anchors), for building header parsers. */
export const B64TOKEN_SOURCE = '[A-Za-z0-9\\-._~+/]+=*';
const B64TOKEN_RE = new RegExp(`^${B64TOKEN_SOURCE}$`);

/** The rule in words, as every token problem and `--help` states it. */
export const BEARER_TOKEN_RULE =
  'a bearer token is letters, digits and - . _ ~ + / (RFC 6750), optionally ending in =';

/**
 * Why `token` cannot be sent as `Authorization: Bearer <token>`, or null when it can. Names the
 * position of the first bad character, never the token itself (it is a secret).
 */
export function bearerTokenProblem(token: string): string | null {
  if (B64TOKEN_RE.test(token)) return null;
  if (token === '') return `is empty; ${BEARER_TOKEN_RULE}`;
  const space = token.search(/\s/);
  if (space !== -1) {
    return `contains white space at character ${space + 1} (a trailing newline from a secret file?); ${BEARER_TOKEN_RULE}`;
  }
  // Everything before this index is a valid b64token prefix (possibly with its = padding).
  const good = /^[A-Za-z0-9\-._~+/]*=*/.exec(token)?.[0].length ?? 0;
  return `character ${good + 1} is not allowed; ${BEARER_TOKEN_RULE}`;
}

/**
 * Hop-by-hop header fields (RFC 9110 §7.6.1): the one table of them, and the removal of the
 * fields a `Connection` header names. Used for requests and responses, plain and upgraded.
 */

/**
 * Fields that describe one connection and are never forwarded: RFC 9110 §7.6.1 plus the
 * non-standard `Keep-Alive` and `Proxy-Connection` every proxy strips too.
 */
export const HOP_BY_HOP_HEADERS: readonly string[] = Object.freeze([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const HOP_BY_HOP = new Set(HOP_BY_HOP_HEADERS);

/**
 * Fields a `Connection` option may never remove (issue 10): `Host` is meant for every recipient
 * (without it the upstream would get the proxy's internal address), and `Content-Length` frames
 * the body the proxy forwards.
 */
const END_TO_END: Record<string, true> = {
  __proto__: null as unknown as true,
  host: true,
  'content-length': true,
};

/** True for a lower-case field name that is hop-by-hop. */
export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName);
}

/** True for a Connection value that names no header: `keep-alive` or `close` (any case). */
function namesNoHeader(tokens: string): boolean {
  // hot path: every keep-alive response from a Node upstream carries `Connection: keep-alive`
  const n = tokens.length;
  if (n !== 10 && n !== 5) return false;
  const t = tokens.toLowerCase();
  return t === 'keep-alive' || t === 'close';
}

/**
 * Removes from `headers` (a flat [name, value, ...] list) the fields named by the `Connection`
 * value `tokens`, except Host and Content-Length; returns `headers` itself when nothing is named.
 */
export function removeConnectionNamed(headers: string[], tokens: string): string[] {
  if (namesNoHeader(tokens)) return headers;
  const named = new Set<string>();
  for (const t of tokens.split(',')) {
    const name = t.trim().toLowerCase();
    if (name !== '' && name !== 'close' && name !== 'keep-alive' && END_TO_END[name] === undefined)
      named.add(name);
  }
  if (named.size === 0) return headers;
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!named.has((headers[i] as string).toLowerCase()))
      out.push(headers[i] as string, headers[i + 1] as string);
  }
  return out;
}

/**
 * A copy of `headers` (a flat [name, value, ...] list, e.g. `rawHeaders`) without hop-by-hop
 * fields and the fields its `Connection` headers name. For relayed answers off the request path
 * (an upstream refusing an upgrade); the request path strips while it copies.
 */
export function stripHopByHop(headers: readonly string[]): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const value = headers[i + 1] as string;
    const lower = name.toLowerCase();
    if (lower === 'connection')
      connection = connection === undefined ? value : `${connection},${value}`;
    else if (!HOP_BY_HOP.has(lower)) out.push(name, value);
  }
  return connection === undefined ? out : removeConnectionNamed(out, connection);
}

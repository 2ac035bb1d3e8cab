import type { IncomingHttpHeaders } from 'node:http';

import { HOP_BY_HOP_HEADERS } from '../../src/data/hop-by-hop.js';

// The proxy's own table (RFC 9110 §7.6.1 plus the legacy names every proxy strips), so the
// candidates compared here strip exactly what Switchyard strips. `host` is kept.
const HOP_BY_HOP = new Set(HOP_BY_HOP_HEADERS);

function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined || value === '') return undefined;
  const tokens = new Set<string>();
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token !== '' && token !== 'close' && token !== 'keep-alive') tokens.add(token);
  }
  return tokens.size === 0 ? undefined : tokens;
}

/** Flat `[name, value, ...]` raw headers minus hop-by-hop ones (and those named in Connection). */
export function forwardableRawHeaders(raw: readonly string[]): string[] {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() === 'connection') named = connectionTokens(raw[i + 1]);
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || named?.has(name) === true) continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}

/** Raw undici `Buffer[]` response headers to a flat string list minus hop-by-hop ones. */
export function forwardableRawBufferHeaders(raw: readonly Buffer[]): string[] {
  const strings: string[] = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) strings[i] = (raw[i] as Buffer).toString('latin1');
  return forwardableRawHeaders(strings);
}

/** A parsed header object minus hop-by-hop headers. */
export function forwardableHeaderObject(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const connection = headers.connection;
  const named = connectionTokens(Array.isArray(connection) ? connection.join(',') : connection);
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || named?.has(name) === true) continue;
    out[name] = value;
  }
  return out;
}

/** Whether the incoming request carries a body to stream upstream. */
export function hasRequestBody(headers: IncomingHttpHeaders): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] ?? '0') !== '0';
}

/**
 * Loop guard (issue 10, item 10): a pool endpoint that is one of this replica's own listeners
 * sends the proxy's traffic back to itself (each request holds a socket per hop until the
 * connection cap), or serves the admin API, `/metrics` included, on the public port. The pure
 * table validation cannot know the listeners; this replica-local check can, like the
 * POOL_UNHEALTHY guard. Host names other than `localhost` are not resolved: the data plane's
 * loop detection is the backstop for those and for loops through several replicas.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { isLoopbackHost } from '../lib/loopback.js';

/** A listener of this replica. */
export interface OwnListener {
  /** What it is, for the message: `proxy` or `admin`. */
  readonly name: string;
  /** Bound host (an IP, `0.0.0.0`/`::` for all interfaces, or a name such as `localhost`). */
  readonly host: string;
  readonly port: number;
}

/**
 * The listener `endpoint` (a URL) would reach, or null. It does when the ports match and the host
 * is the listener's, a loopback address or name when the listener is on loopback or all
 * interfaces, or an address of this machine's interfaces when it listens on all of them.
 * `0.0.0.0` and `::` as a destination mean this machine too. URLs that do not parse are left to
 * the table's validation.
 */
export function ownListenerOf(
  endpoint: string,
  listeners: readonly OwnListener[],
): OwnListener | null {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return null;
  }
  const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  let host = unbracket(url.hostname.toLowerCase());
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  for (const listener of listeners) {
    if (listener.port !== port) continue;
    const bound = unbracket(listener.host.toLowerCase());
    if (bound === '0.0.0.0' || bound === '::') {
      // An IPv4 wildcard does not take IPv6 connections; `::` takes both (dual stack).
      if (bound === '0.0.0.0' && isIP(host) === 6 && !host.startsWith('::ffff:')) continue;
      if (isLoopbackHost(host) || interfaceAddresses().has(host)) return listener;
    } else if (host === bound) {
      return listener;
    } else if (isLoopbackHost(bound) && isIP(host) === 0 && isLoopbackHost(host)) {
      // `localhost` resolves to the loopback address the listener is on.
      return listener;
    }
  }
  return null;
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Addresses of this machine's interfaces (read per call: interfaces come and go). */
function interfaceAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) out.add(info.address.toLowerCase());
  }
  return out;
}

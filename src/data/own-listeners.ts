/**
 * This replica's own listeners (proxy and admin ports), and whether an endpoint address reaches
 * one of them (issue 10): forwarding there would loop, or serve the admin API on the public port.
 * Decided from literal addresses, `localhost` and the machine's own names and interface
 * addresses; a DNS name that resolves to this host is caught by the `Via` check instead (for the
 * proxy port).
 */
import { hostname, networkInterfaces } from 'node:os';

/** An address a listener is bound to. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Lower-case, without IPv6 brackets or an IPv4-mapped prefix. */
function normaliseHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.startsWith('::ffff:') && h.includes('.')) h = h.slice(7);
  return h;
}

function isAnyAddress(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function isLoopback(host: string): boolean {
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '::1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  );
}

/** Every address of this machine's interfaces, plus its host name. */
function ownAddresses(): Set<string> {
  const own = new Set<string>([normaliseHost(hostname())]);
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) own.add(normaliseHost(a.address));
  return own;
}

/**
 * True when a connection to `host`:`port` reaches one of `listeners`. A listener on the any
 * address is reached through loopback, the any address and every own address or name; one on a
 * specific address through that address (and `localhost` or the any address, when it is a
 * loopback one).
 */
export function reachesListener(
  host: string,
  port: number,
  listeners: readonly ListenAddress[],
): boolean {
  const h = normaliseHost(host);
  let own: Set<string> | undefined;
  for (const l of listeners) {
    if (l.port !== port) continue;
    const lh = normaliseHost(l.host);
    if (h === lh) return true;
    if (isAnyAddress(lh)) {
      if (isLoopback(h) || isAnyAddress(h)) return true;
      own ??= ownAddresses();
      if (own.has(h)) return true;
    } else if (isLoopback(lh) && (h === 'localhost' || isAnyAddress(h))) {
      return true;
    }
  }
  return false;
}

/**
 * Browser defences of the admin API (issue 10, item 2). A tokenless admin API on loopback is the
 * default, and a browser on that machine can reach it from any page:
 * - a page of another site sends a "simple" request (a bodyless or form POST needs no CORS
 *   preflight): refused by its `Origin` or `Sec-Fetch-Site` (403 FORBIDDEN), and every change
 *   needs `content-type: application/json`, which such a request cannot carry (body.ts);
 * - DNS rebinding (a name of the attacker's that resolves to 127.0.0.1 after the page loaded)
 *   makes the page same-origin with the admin API, so `Origin` proves nothing; its `Host` header
 *   carries the attacker's name, though, and is refused (421 MISDIRECTED_REQUEST).
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { fail } from '../errors.js';
import { isLoopbackHost } from '../lib/loopback.js';

/** What the guard needs to know about the admin API. */
export interface RequestGuardOptions {
  /** The configured listen host (`adminListen`), a name or an IP. */
  readonly listenHost: string;
  /** `adminAllowedHosts`: further names the API answers to (lowercase, no port). */
  readonly allowedHosts: readonly string[];
  /**
   * Whether `Host` is checked. With an admin token every call that reads or changes anything
   * needs it, and a page cannot make a browser send it: a rebound page gains nothing, while the
   * API is then usually reached by names this process cannot know (a Kubernetes Service, a
   * Compose service, a reverse proxy). So the check runs without a token, or when names are
   * configured (the operator asked for it).
   */
  readonly checkHost: boolean;
}

/** Longest untrusted header value echoed in an error message. */
const ECHO_MAX = 100;

/** Checks the `Host`, `Origin` and `Sec-Fetch-Site` of admin requests. */
export class RequestGuard {
  readonly #checkHost: boolean;
  /** Host names (not IPs) the API answers to. */
  readonly #names: ReadonlySet<string>;
  /** Configured names only: pages served under them (a dashboard behind a proxy) are ours. */
  readonly #configured: ReadonlySet<string>;

  constructor(options: RequestGuardOptions) {
    this.#checkHost = options.checkHost;
    this.#configured = new Set(options.allowedHosts.map((h) => h.toLowerCase()));
    const names = new Set(this.#configured);
    const listen = options.listenHost.toLowerCase();
    if (isIP(listen) === 0) names.add(listen);
    if (isLoopbackHost(listen) || listen === '0.0.0.0' || listen === '::') names.add('localhost');
    this.#names = names;
  }

  /**
   * Refuses (403 FORBIDDEN) a request a browser sent for a page of another origin. Non-browser
   * clients (the CLI, curl, probes) send neither header; a same-origin page (a dashboard on this
   * listener) sends `Sec-Fetch-Site: same-origin` and its own origin; a typed-in URL sends `none`.
   */
  refuseCrossSite(req: IncomingMessage): void {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw fail(
        'FORBIDDEN',
        `sec-fetch-site: ${echo(site)}: the admin API refuses requests from other sites' pages`,
      );
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !this.#isOwnOrigin(origin, req.headers.host)) {
      throw fail(
        'FORBIDDEN',
        `origin: ${echo(origin)} is not this admin API's origin: the admin API refuses requests from other sites' pages`,
      );
    }
  }

  /**
   * Refuses (421 MISDIRECTED_REQUEST) a `Host` that is not this API's: accepted are IP literals
   * (a rebinding attack needs a name; a browser sends an IP as `Host` only for a page served from
   * that IP), `localhost` when bound to loopback or all interfaces, the listen host when it is a
   * name, and `adminAllowedHosts`. The port is not compared: it protects nothing (the attacker
   * picks the port of its URL too) and port mappings (`docker -p`, `kubectl port-forward`) change
   * it legitimately. A request without `Host` (HTTP/1.0) comes from no browser and passes.
   */
  checkHost(req: IncomingMessage): void {
    if (!this.#checkHost) return;
    const host = req.headers.host;
    if (host === undefined) return;
    const name = hostName(host);
    if (name !== null && (isIP(name) !== 0 || this.#names.has(name))) return;
    throw fail(
      'MISDIRECTED_REQUEST',
      `host: ${echo(host)} is not an address of this admin API; if it is one of its names, add it to adminAllowedHosts (--admin-allowed-hosts, SWITCHYARD_ADMIN_ALLOWED_HOSTS)`,
    );
  }

  /** True when `origin` is the origin of the page's own server: same host and port as `Host`. */
  #isOwnOrigin(origin: string, host: string | undefined): boolean {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false; // `null` (sandboxed or opaque origins) and anything malformed
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
    if (this.#configured.has(url.hostname)) return true;
    if (host === undefined) return false;
    try {
      // Parsed with the origin's scheme so default ports compare equal (`host:443` for https).
      return new URL(`${url.protocol}//${host}`).host === url.host;
    } catch {
      return false;
    }
  }
}

/** The host name of a `Host` value, lowercase, IPv6 without brackets; null when malformed. */
function hostName(host: string): string | null {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]\s/@]+))(?::\d{1,5})?$/i.exec(host.trim());
  if (m === null) return null;
  const name = (m[1] ?? m[2] ?? '').toLowerCase();
  if (m[1] !== undefined && isIP(name) !== 6) return null;
  return name;
}

function echo(value: string): string {
  return JSON.stringify(value.length > ECHO_MAX ? `${value.slice(0, ECHO_MAX)}...` : value);
}

/**
 * Registry of long-lived connections (WebSocket relays, raw upgrade tunnels) by upstream
 * endpoint, so the drainer (issue 5) can close those of an endpoint that stopped receiving
 * traffic, and shutdown can close them all.
 */

/** A long-lived connection the proxy can close on request. */
export interface TrackedConnection {
  /** Pool the connection was routed to. */
  readonly pool: string;
  /** Closes the connection: a WebSocket close frame with `code`, or a socket end for tunnels. */
  close(code: number): void;
}

/** Long-lived connections grouped by endpoint URL. */
export class ConnTracker {
  readonly #byEndpoint = new Map<string, Set<TrackedConnection>>();
  #size = 0;

  /** Registers `conn`; returns the function to call once it has ended (idempotent). */
  add(endpoint: string, conn: TrackedConnection): () => void {
    let set = this.#byEndpoint.get(endpoint);
    if (!set) {
      set = new Set();
      this.#byEndpoint.set(endpoint, set);
    }
    set.add(conn);
    this.#size += 1;
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      const s = this.#byEndpoint.get(endpoint);
      if (s?.delete(conn)) {
        this.#size -= 1;
        if (s.size === 0) this.#byEndpoint.delete(endpoint);
      }
    };
  }

  /** Open connections to `endpoint` (a copy, safe to iterate while closing). */
  forEndpoint(endpoint: string): TrackedConnection[] {
    return [...(this.#byEndpoint.get(endpoint) ?? [])];
  }

  /** Endpoints with at least one open connection. */
  endpoints(): string[] {
    return [...this.#byEndpoint.keys()];
  }

  /** Closes every connection to `endpoint` with `code`; returns how many were asked to close. */
  closeEndpoint(endpoint: string, code: number): number {
    const conns = this.forEndpoint(endpoint);
    for (const c of conns) c.close(code);
    return conns.length;
  }

  /** Closes every tracked connection with `code`. */
  closeAll(code: number): number {
    let n = 0;
    for (const endpoint of this.endpoints()) n += this.closeEndpoint(endpoint, code);
    return n;
  }

  /** Number of open tracked connections. */
  get size(): number {
    return this.#size;
  }
}

/**
 * Bookkeeping of open connections per upstream endpoint, so the drainer (SPEC §4) can close
 * those of an endpoint that stopped receiving traffic and shutdown can close them all.
 *
 * Every proxied HTTP request is tracked while it runs, so tracking must cost next to nothing:
 * a tracked connection is a node of an intrusive doubly linked list (the links are fields of
 * the object itself), so adding and removing one is a handful of field writes, with no
 * allocation and no hashing. Upgraded connections (WebSocket relays, raw tunnels) live in lists
 * keyed by endpoint URL in the ConnTracker; HTTP exchanges in their endpoint's own list.
 */

/** WebSocket close code sent when a drain closes a connection (service restart). */
export const DRAIN_CLOSE_CODE = 1012;
/** WebSocket close code sent at proxy shutdown (going away). */
export const SHUTDOWN_CLOSE_CODE = 1001;

/** Told when a connection it watches ends by itself. */
export interface DrainWatcher {
  ended(conn: TrackedConnection): void;
}

/** A connection the proxy can close on request; a node of one ConnList. */
export interface TrackedConnection {
  /** Pool the connection was routed to (metric label, drain report). */
  readonly poolName: string;
  /**
   * True for a long-lived connection (WebSocket, tunnel, SSE stream), false for a request still
   * running (drain report, SPEC §10; read about once a second, never on the request path).
   */
  readonly longLived: boolean;
  /**
   * Closes the connection politely. `code` says why: DRAIN_CLOSE_CODE (1012) at a drain
   * deadline, SHUTDOWN_CLOSE_CODE (1001) at shutdown; WebSockets send it in their close frame.
   * Returns false when the connection is left to finish by itself (e.g. a request still waiting
   * for its response).
   */
  close(code: number): boolean;
  /** Aborts at once (shutdown deadline). */
  destroy(): void;
  /** List links, owned by ConnList. */
  trackPrev: TrackedConnection | null;
  trackNext: TrackedConnection | null;
  trackList: ConnList | null;
  /** The drain counting this connection, or null. */
  trackDrain: DrainWatcher | null;
}

/** An intrusive list of tracked connections: O(1) add and remove, no allocation. */
export class ConnList {
  #head: TrackedConnection | null = null;
  #size = 0;

  /** Adds `conn` (which must not be in a list). */
  add(conn: TrackedConnection): void {
    // hot path
    const head = this.#head;
    conn.trackList = this;
    conn.trackPrev = null;
    conn.trackNext = head;
    if (head !== null) head.trackPrev = conn;
    this.#head = conn;
    this.#size++;
  }

  /** Removes `conn` if it is in this list; tells its drain, if any, that it ended. */
  remove(conn: TrackedConnection): void {
    // hot path
    if (conn.trackList !== this) return;
    const prev = conn.trackPrev;
    const next = conn.trackNext;
    if (prev === null) this.#head = next;
    else prev.trackNext = next;
    if (next !== null) next.trackPrev = prev;
    conn.trackPrev = null;
    conn.trackNext = null;
    conn.trackList = null;
    this.#size--;
    const drain = conn.trackDrain;
    if (drain !== null) {
      conn.trackDrain = null;
      drain.ended(conn);
    }
  }

  /** Calls `fn` for every connection in the list (no copy: `fn` must not remove any). */
  forEach(fn: (conn: TrackedConnection) => void): void {
    for (let c = this.#head; c !== null; c = c.trackNext) fn(c);
  }

  /** The connections in the list (a copy, safe to iterate while closing). */
  toArray(): TrackedConnection[] {
    const out: TrackedConnection[] = [];
    for (let c = this.#head; c !== null; c = c.trackNext) out.push(c);
    return out;
  }

  /** Number of connections in the list. */
  get size(): number {
    return this.#size;
  }
}

/** Removes `conn` from whatever list holds it. */
export function untrack(conn: TrackedConnection): void {
  const list = conn.trackList;
  if (list !== null) list.remove(conn);
}

/** A tracked connection made of two callbacks (upgraded connections). */
export function trackedConnection(
  poolName: string,
  close: (code: number) => void,
  destroy: () => void,
): TrackedConnection {
  return {
    poolName,
    longLived: true,
    close(code: number) {
      close(code);
      return true;
    },
    destroy,
    trackPrev: null,
    trackNext: null,
    trackList: null,
    trackDrain: null,
  };
}

/** Upgraded (long-lived) connections grouped by endpoint URL. */
export class ConnTracker {
  readonly #byEndpoint = new Map<string, ConnList>();

  /** Registers `conn`; returns the function to call once it has ended (idempotent). */
  add(endpoint: string, conn: TrackedConnection): () => void {
    let list = this.#byEndpoint.get(endpoint);
    if (!list) {
      list = new ConnList();
      this.#byEndpoint.set(endpoint, list);
    }
    list.add(conn);
    return () => {
      const l = conn.trackList;
      if (l === null) return;
      l.remove(conn);
      if (l.size === 0 && this.#byEndpoint.get(endpoint) === l) this.#byEndpoint.delete(endpoint);
    };
  }

  /** Calls `fn` for every tracked connection (no copy: `fn` must not close any). */
  forEach(fn: (conn: TrackedConnection) => void): void {
    for (const list of this.#byEndpoint.values()) list.forEach(fn);
  }

  /** Open connections to `endpoint` (a copy, safe to iterate while closing). */
  forEndpoint(endpoint: string): TrackedConnection[] {
    return this.#byEndpoint.get(endpoint)?.toArray() ?? [];
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

  /** Aborts every tracked connection at once. */
  destroyAll(): void {
    for (const endpoint of this.endpoints())
      for (const c of this.forEndpoint(endpoint)) c.destroy();
  }

  /** Number of open tracked connections. */
  get size(): number {
    let n = 0;
    for (const l of this.#byEndpoint.values()) n += l.size;
    return n;
  }
}

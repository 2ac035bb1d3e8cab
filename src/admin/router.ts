/**
 * A tiny method + path router for the admin API. Routes are data (method, path template, auth,
 * documentation), so the OpenAPI document is generated from the same list the server dispatches.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { fail } from '../errors.js';
import type { CommandSource } from '../table/types.js';

/** HTTP methods the admin API uses. */
export type RouteMethod = 'GET' | 'PUT' | 'POST' | 'DELETE';

/** Who may call a route: the bearer token (when configured), anyone, or `/metrics` rules. */
export type RouteAuth = 'token' | 'none' | 'metrics';

/** What a handler gets. */
export interface RouteContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Path parameters by name (`{name}` in the template), already URI-decoded. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** `cli` when the request carries `x-switchyard-source: cli`, else `admin`. */
  readonly source: Extract<CommandSource, 'admin' | 'cli'>;
  /** Aborted when the admin server closes (long waits stop early). */
  readonly signal: AbortSignal;
}

/**
 * What a handler answers: a status and a JSON body, raw text with its content type, bytes with
 * every header given (static assets), or `streamed` when the handler wrote the response itself.
 */
export type RouteReply =
  | { readonly status: number; readonly json: unknown; readonly headers?: Record<string, string> }
  | { readonly status: number; readonly text: string; readonly contentType: string }
  | { readonly status: number; readonly body: Buffer; readonly headers: Record<string, string> }
  | { readonly status: number; readonly streamed: true };

/** One documented query parameter. */
export interface QueryParamDoc {
  readonly name: string;
  readonly description: string;
  readonly schema: Record<string, unknown>;
}

/** One route: dispatch data plus its OpenAPI documentation. */
export interface Route {
  readonly method: RouteMethod;
  /** Path template, e.g. `/v1/pools/{name}`. */
  readonly path: string;
  readonly auth: RouteAuth;
  readonly summary: string;
  readonly description?: string;
  /** Request body schema (documentation; the store validates commands). */
  readonly body?: z.ZodType;
  /** Schema of the 2xx answer, or the literal `text` for non-JSON answers. */
  readonly response: z.ZodType | { readonly contentType: string };
  /** Status of a successful answer (default 200). */
  readonly okStatus?: number;
  /** Error statuses this route can answer besides 401/500 (documentation). */
  readonly errors?: readonly number[];
  readonly query?: readonly QueryParamDoc[];
  readonly handle: (ctx: RouteContext) => Promise<RouteReply>;
}

/** The result of matching a request path. */
export type RouteMatch =
  | { readonly route: Route; readonly params: Record<string, string> }
  | { readonly route: null; readonly allowed: readonly RouteMethod[] };

interface CompiledRoute {
  readonly route: Route;
  readonly segments: readonly string[];
}

/** Matches requests against a fixed list of routes. */
export class Router {
  readonly #compiled: CompiledRoute[];

  constructor(routes: readonly Route[]) {
    this.#compiled = routes.map((route) => ({ route, segments: route.path.split('/') }));
    const seen = new Set<string>();
    for (const { method, path } of routes) {
      const key = `${method} ${path}`;
      if (seen.has(key)) throw new Error(`duplicate admin route ${key}`);
      seen.add(key);
    }
  }

  /** Every route, in declaration order. */
  routes(): Route[] {
    return this.#compiled.map((c) => c.route);
  }

  /**
   * Finds the route for `method` and `pathname`. Throws NOT_FOUND for an unknown path; a known
   * path with another method gives `{route: null, allowed}` (the caller answers 405).
   */
  match(method: string, pathname: string): RouteMatch {
    const parts = pathname.split('/');
    const allowed: RouteMethod[] = [];
    for (const { route, segments } of this.#compiled) {
      const params = matchSegments(segments, parts);
      if (params === null) continue;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) {
        return { route, params };
      }
      allowed.push(route.method);
    }
    if (allowed.length === 0)
      throw fail('NOT_FOUND', `no such endpoint: ${pathname.slice(0, 200)}`);
    return { route: null, allowed };
  }
}

function matchSegments(
  template: readonly string[],
  parts: readonly string[],
): Record<string, string> | null {
  if (template.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < template.length; i++) {
    const t = template[i] as string;
    const p = parts[i] as string;
    if (t.startsWith('{') && t.endsWith('}')) {
      if (p === '') return null;
      let value: string;
      try {
        value = decodeURIComponent(p);
      } catch {
        return null;
      }
      params[t.slice(1, -1)] = value;
    } else if (t !== p) {
      return null;
    }
  }
  return params;
}

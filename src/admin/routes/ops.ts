/** Liveness, readiness, metrics and the OpenAPI document. */
import type { AdminDeps } from '../admin-deps.js';
import type { Route } from '../router.js';
import { healthSchema, readySchema } from '../schemas.js';
import { z } from 'zod';

/** The operational routes. `openApi` returns the document (built once the route list exists). */
export function opsRoutes(deps: AdminDeps, buildSha: string, openApi: () => unknown): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      auth: 'none',
      summary: 'Liveness: the process answers',
      response: healthSchema,
      handle: () => Promise.resolve({ status: 200, json: { status: 'ok', build: buildSha } }),
    },
    {
      method: 'GET',
      path: '/readyz',
      auth: 'none',
      summary: 'Readiness: 200 when a table is loaded and the proxy is not shutting down, else 503',
      errors: [503],
      response: readySchema,
      handle: () => {
        const ready = deps.isReady() && deps.store.current() !== null;
        return Promise.resolve({
          status: ready ? 200 : 503,
          json: { status: ready ? 'ready' : 'not-ready', revision: deps.proxy.appliedRevision() },
        });
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      auth: 'metrics',
      summary: 'Prometheus metrics (needs the token only when metricsAuth is set)',
      response: { contentType: 'text/plain; version=0.0.4' },
      handle: async () => ({
        status: 200,
        text: await deps.metrics.registry.metrics(),
        contentType: deps.metrics.registry.contentType,
      }),
    },
    {
      method: 'GET',
      path: '/v1/openapi.json',
      auth: 'token',
      summary: 'This document',
      response: z.looseObject({ openapi: z.string() }),
      handle: () => Promise.resolve({ status: 200, json: openApi() }),
    },
  ];
}

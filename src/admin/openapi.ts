/**
 * The OpenAPI 3.1 document of the admin API, generated from the route list and the zod schemas
 * the routes carry, so it cannot list a route the server does not have or miss one it has.
 */
import { z } from 'zod';
import type { Route } from './router.js';
import { errorSchema } from './schemas.js';

const STATUS_TEXT: Record<number, string> = {
  400: 'Invalid JSON or values (the message names the field)',
  401: 'Missing or wrong bearer token',
  403: "FORBIDDEN: a browser request from another site's page (Origin, Sec-Fetch-Site)",
  404: 'Unknown pool or endpoint',
  409: 'Refused by a guard: POOL_LIVE, REVISION_CONFLICT, NO_STABLE_POOL, NOTHING_TO_UNDO, POOL_UNHEALTHY, ROLLOUT_IN_PROGRESS, ROLLOUT_NOT_ACTIVE',
  413: 'Body over 1 MiB',
  415: 'A change without content-type: application/json (a bodyless one too)',
  421: 'MISDIRECTED_REQUEST: the Host is not an address or configured name of this admin API',
  500: 'Internal error',
  503: 'Control store unavailable (nothing changed) or not ready',
  504: 'REPLICAS_LAGGING: stored, but live replicas had not applied it in time',
};

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const generated: Record<string, unknown> = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  });
  // The dialect is the document's (OpenAPI 3.1 is JSON Schema 2020-12): no per-schema $schema.
  delete generated.$schema;
  return generated;
}

/** Builds the document for `routes`. */
export function buildOpenApiDocument(
  routes: readonly Route[],
  buildSha: string,
  tokenRequired: boolean,
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const item = (paths[route.path] ??= {});
    const parameters: unknown[] = [];
    for (const m of route.path.matchAll(/\{([^}]+)\}/g)) {
      parameters.push({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,31}$' },
      });
    }
    for (const q of route.query ?? []) {
      parameters.push({
        name: q.name,
        in: 'query',
        required: false,
        description: q.description,
        schema: q.schema,
      });
    }
    const okStatus = String(route.okStatus ?? 200);
    const okContent =
      route.response instanceof z.ZodType
        ? { 'application/json': { schema: jsonSchema(route.response, 'output') } }
        : { [route.response.contentType]: { schema: { type: 'string' } } };
    const responses: Record<string, unknown> = {
      [okStatus]: { description: 'OK', content: okContent },
    };
    const errorStatuses = new Set<number>(route.errors ?? []);
    errorStatuses.add(403);
    if (route.auth !== 'none') {
      errorStatuses.add(401);
      errorStatuses.add(421);
    }
    if (route.method !== 'GET') errorStatuses.add(415);
    errorStatuses.add(500);
    for (const status of [...errorStatuses].sort()) {
      if (String(status) === okStatus) continue;
      responses[String(status)] = {
        description: STATUS_TEXT[status] ?? 'Error',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    const operation: Record<string, unknown> = {
      operationId: operationId(route),
      summary: route.summary,
      ...(route.description === undefined ? {} : { description: route.description }),
      ...(parameters.length > 0 ? { parameters } : {}),
      responses,
      security: route.auth === 'none' ? [] : [{ bearer: [] }],
    };
    if (route.body !== undefined) {
      operation.requestBody = {
        required: route.method !== 'DELETE' && !route.path.endsWith('/rollback'),
        content: { 'application/json': { schema: jsonSchema(route.body, 'input') } },
      };
    }
    item[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Switchyard admin API',
      version: buildSha,
      description:
        'Changes the routing table of a Switchyard proxy (SPEC §5). Every change is answered with the new table. ' +
        (tokenRequired
          ? 'Every /v1 call needs the bearer token.'
          : 'No token is configured on this instance.'),
    },
    paths,
    components: {
      schemas: { Error: jsonSchema(errorSchema, 'output') },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
  };
}

function operationId(route: Route): string {
  const words = route.path
    .replace(/^\/v1\//, '/')
    .split(/[/.{}-]+/)
    .filter(Boolean);
  return [route.method.toLowerCase(), ...words.map((w) => w[0]?.toUpperCase() + w.slice(1))].join(
    '',
  );
}

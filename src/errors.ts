/**
 * The error catalogue: every stable error code of SPEC.md with its HTTP status.
 * Branch on `err.code`, never on message text.
 */

/** Every error code the product exposes, mapped to the HTTP status it is answered with. */
export const ERROR_CODES = {
  // routing table and admin API (SPEC §2, §5)
  BAD_REQUEST: 400,
  INVALID_JSON: 400,
  VALIDATION_FAILED: 400,
  MUTABLE_VERSION: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  UNKNOWN_POOL: 404,
  METHOD_NOT_ALLOWED: 405,
  POOL_LIVE: 409,
  REVISION_CONFLICT: 409,
  NO_STABLE_POOL: 409,
  NOTHING_TO_UNDO: 409,
  POOL_UNHEALTHY: 409,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MISDIRECTED_REQUEST: 421,
  STORE_UNAVAILABLE: 503,
  REPLICAS_LAGGING: 504,
  // rollouts (SPEC §9)
  NO_ROLLOUT: 404,
  ROLLOUT_IN_PROGRESS: 409,
  ROLLOUT_NOT_ACTIVE: 409,
  // data plane (SPEC §3)
  REQUEST_TIMEOUT: 408,
  HEADERS_TOO_LARGE: 431,
  UPSTREAM_ERROR: 502,
  NO_HEALTHY_UPSTREAM: 503,
  UPSTREAM_TIMEOUT: 504,
  LOOP_DETECTED: 508,
  // lifecycle
  CLOSED: 503,
  TOO_MANY_EVENT_CLIENTS: 503,
  INTERNAL: 500,
  // configuration (exit code 2, never sent over HTTP)
  INVALID_CONFIG: 500,
} as const;

/** A stable error code from the catalogue. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Options shared by every Switchyard error. */
export interface SwitchyardErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
}

/** Base class of every operational error Switchyard produces. */
export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: SwitchyardErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchyardError';
    this.code = code;
    this.statusCode = ERROR_CODES[code];
    this.details = options.details;
  }

  /** The `{"error":{code,message}}` body the admin API answers with. */
  toJSON(): { error: { code: ErrorCode; message: string } & Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

/** True when `err` is a SwitchyardError (optionally with the given code). */
export function isSwitchyardError(err: unknown, code?: ErrorCode): err is SwitchyardError {
  return err instanceof SwitchyardError && (code === undefined || err.code === code);
}

/** Shorthand factory: `fail('POOL_LIVE', 'pools.blue: ...')`. */
export function fail(
  code: ErrorCode,
  message: string,
  options?: SwitchyardErrorOptions,
): SwitchyardError {
  return new SwitchyardError(code, message, options);
}

/**
 * Validation of traffic mirroring (SPEC §12): `{"pool","percent"|"basisPoints","methods","match"}`
 * sets the mirror, `{"pool": null}` ends it. Every failure is a VALIDATION_FAILED whose message
 * starts with the field. Pool existence is checked by the caller, which knows the table.
 */
import { fail } from '../errors.js';
import { parseRuleMatches } from './rules.js';
import {
  MIRROR_METHODS,
  TOTAL_BASIS_POINTS,
  type MirrorMethod,
  type RuleMatch,
  type TrafficMirror,
} from './types.js';
import { percentToBasisPoints } from './weights.js';

/** Methods mirrored when the writer names none: idempotent ones only, so a copy changes nothing. */
export const DEFAULT_MIRROR_METHODS: readonly MirrorMethod[] = Object.freeze(['GET', 'HEAD']);

const KNOWN_METHODS: ReadonlySet<string> = new Set(MIRROR_METHODS);

/** The raw fields of a mirror command or a stored mirror, types unchecked. */
export interface RawMirrorFields {
  readonly pool: string;
  readonly percent?: unknown;
  readonly basisPoints?: unknown;
  readonly methods?: unknown;
  readonly match?: unknown;
}

/**
 * Validates the fields of a mirror that is being set: exactly one of `percent` (0 < p <= 100, two
 * decimals) or `basisPoints` (1..10000); `methods` known methods, case-insensitive, default
 * GET and HEAD; `match` in the rule grammar. 0 % is refused: ending a mirror is `pool: null`
 * (DELETE /v1/mirror), so a table never holds a mirror that copies nothing.
 */
export function parseMirrorFields(raw: RawMirrorFields): TrafficMirror {
  if ((raw.percent === undefined) === (raw.basisPoints === undefined)) {
    throw fail('VALIDATION_FAILED', 'percent: give exactly one of percent or basisPoints');
  }
  let basisPoints: number;
  if (raw.basisPoints !== undefined) {
    const bp = raw.basisPoints;
    if (typeof bp !== 'number' || !Number.isInteger(bp) || bp < 1 || bp > TOTAL_BASIS_POINTS) {
      throw fail(
        'VALIDATION_FAILED',
        `basisPoints: must be an integer 1..${TOTAL_BASIS_POINTS} (end a mirror with pool: null, or DELETE /v1/mirror)`,
      );
    }
    basisPoints = bp;
  } else {
    if (typeof raw.percent !== 'number') {
      throw fail('VALIDATION_FAILED', 'percent: must be a number more than 0, at most 100');
    }
    basisPoints = percentToBasisPoints(raw.percent, 'percent');
    if (basisPoints === 0) {
      throw fail(
        'VALIDATION_FAILED',
        'percent: must be more than 0 (end a mirror with pool: null, or DELETE /v1/mirror)',
      );
    }
  }
  const methods = raw.methods === undefined ? DEFAULT_MIRROR_METHODS : parseMethods(raw.methods);
  const mirror: { -readonly [K in keyof TrafficMirror]: TrafficMirror[K] } = {
    pool: raw.pool,
    basisPoints,
    methods,
  };
  if (raw.match !== undefined) mirror.match = parseRuleMatches(raw.match, 'match');
  return freezeMirror(mirror);
}

/** True when two mirrors (or their absence) copy the same requests to the same pool. */
export function sameMirror(a: TrafficMirror | undefined, b: TrafficMirror | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A deep copy of a validated mirror, frozen. */
export function copyMirror(m: TrafficMirror): TrafficMirror {
  const copy: { -readonly [K in keyof TrafficMirror]: TrafficMirror[K] } = {
    pool: m.pool,
    basisPoints: m.basisPoints,
    methods: [...m.methods],
  };
  if (m.match !== undefined) copy.match = m.match.map((x) => Object.freeze({ ...x }) as RuleMatch);
  return freezeMirror(copy);
}

/** Deep-freezes a mirror in place and returns it. */
export function freezeMirror(m: TrafficMirror): TrafficMirror {
  Object.freeze(m.methods);
  if (m.match !== undefined) {
    for (const x of m.match) Object.freeze(x);
    Object.freeze(m.match);
  }
  return Object.freeze(m);
}

function parseMethods(input: unknown): readonly MirrorMethod[] {
  if (!Array.isArray(input) || input.length === 0) {
    throw fail('VALIDATION_FAILED', `methods: must list 1..${MIRROR_METHODS.length} methods`);
  }
  const out: MirrorMethod[] = [];
  input.forEach((value: unknown, i) => {
    const upper = typeof value === 'string' ? value.toUpperCase() : undefined;
    if (upper === undefined || !KNOWN_METHODS.has(upper)) {
      const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 20)) : typeof value;
      throw fail(
        'VALIDATION_FAILED',
        `methods[${i}]: ${shown} is not one of ${MIRROR_METHODS.join(', ')}`,
      );
    }
    if (out.includes(upper as MirrorMethod)) {
      throw fail('VALIDATION_FAILED', `methods[${i}]: ${upper} is named twice`);
    }
    out.push(upper as MirrorMethod);
  });
  return out;
}

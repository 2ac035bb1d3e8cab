/**
 * Sticky assignment of request keys to pools (SPEC §3) by weighted rendezvous hashing: every pool
 * with weight w > 0 scores w / -ln(u), where u in (0, 1) is a hash of (key, pool name); the highest
 * score wins. This gives SPEC §3's four properties: it is deterministic across replicas (the hash
 * depends only on key and pool name), shares follow weights, a key only moves from A to B when A
 * fell or B rose (each pool's score is monotone in its own weight only), and scaling the other
 * pools by a common factor never reorders them, so canary ramps only add keys to the canary.
 * See Schindelhauer & Schomaker, "Weighted distributed hash tables" (SPAA 2005).
 */
import { randomFillSync } from 'node:crypto';

/** Returns the pool for a request key; undefined only when no pool has weight > 0. */
export type PoolPicker = (key: string) => string | undefined;

// Two independent hash lanes per (key, pool) give 52 bits for u: well over the 48 we need so
// that -ln(u) has no visible granularity even for a 0.01 % pool.
const LANE_A_SEED = 0x9747b28c;
const LANE_B_SEED = 0x5bd1e995;
const TWO_POW_20 = 0x100000;
const TWO_POW_52 = 4503599627370496;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** One MurmurHash3 block step: mixes 32-bit block `k` into state `h`. */
function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3's finaliser: full avalanche over 32 bits. */
function finalise(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * MurmurHash3 (x86, 32-bit) style hash over UTF-16 code units, two per block. Not byte-exact with
 * the reference function (that hashes UTF-8 bytes); only stability and distribution matter here.
 */
function hashString(key: string, seed: number): number {
  let h = seed | 0;
  const length = key.length;
  let i = 0;
  for (; i + 1 < length; i += 2) {
    h = mixBlock(h, key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16));
  }
  if (i < length) h = mixBlock(h, key.charCodeAt(i));
  return finalise(h ^ length);
}

/** Hash of the 64-bit pair (x, y) under `seed`: how a key's hash is combined with a pool's seed. */
function hashPair(x: number, y: number, seed: number): number {
  return finalise(mixBlock(mixBlock(seed, x), y) ^ 8);
}

/**
 * Builds a picker for a weight map (basis points; any non-negative numbers work). Pools with
 * weight <= 0 are never picked. Build one per table snapshot: all per-pool work (seeds, arrays) is
 * done here so that a pick allocates nothing.
 */
export function createPoolPicker(weights: Readonly<Record<string, number>>): PoolPicker {
  const names: string[] = [];
  const poolWeights: number[] = [];
  const seedsA: number[] = [];
  const seedsB: number[] = [];
  for (const [name, weight] of Object.entries(weights)) {
    if (!(weight > 0) || !Number.isFinite(weight)) continue;
    names.push(name);
    poolWeights.push(weight);
    // Seeds depend on the pool name only, so every replica and every table agree on them.
    seedsA.push(hashString(name, LANE_A_SEED));
    seedsB.push(hashString(name, LANE_B_SEED));
  }
  const count = names.length;
  if (count === 0) return () => undefined;
  if (count === 1) {
    const only = names[0];
    return () => only;
  }

  // Hot path: called once per request. The key is hashed once (two lanes, 64 bits); each pool
  // then only mixes those 64 bits with its own seeds.
  return (key: string): string | undefined => {
    const keyA = hashString(key, LANE_A_SEED);
    const keyB = hashString(key, LANE_B_SEED);
    let best = 0;
    let bestScore = -1;
    for (let p = 0; p < count; p++) {
      const a = hashPair(keyA, keyB, seedsA[p] as number);
      const b = hashPair(keyB, keyA, seedsB[p] as number);
      // 52-bit integer x in [0, 2^52); (x + 0.5) / 2^52 is exact and strictly inside (0, 1).
      const u = (a * TWO_POW_20 + (b >>> 12) + 0.5) / TWO_POW_52;
      const score = (poolWeights[p] as number) / -Math.log(u);
      if (score > bestScore) {
        bestScore = score;
        best = p;
      }
    }
    return names[best];
  };
}

/** Bytes drawn from the CSPRNG at once: 256 ids per refill. */
const ID_POOL_BYTES = 4096;
const ID_BYTES = 16;

/**
 * Fresh random sticky ids for the `sy_id` cookie: 128 random bits, base64url (22 chars). Draws
 * random bytes 4 KiB at a time: a first-visit request then costs about 0.1 µs for its id instead
 * of about 2.5 µs for a randomBytes(16) call (measured on the bench machine). One per proxy.
 */
export class StickyIdSource {
  readonly #pool = Buffer.allocUnsafe(ID_POOL_BYTES);
  #offset = ID_POOL_BYTES;

  next(): string {
    if (this.#offset === ID_POOL_BYTES) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const from = this.#offset;
    this.#offset = from + ID_BYTES;
    return this.#pool.toString('base64url', from, from + ID_BYTES);
  }
}

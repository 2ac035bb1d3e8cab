/**
 * A latency histogram with fixed log-spaced buckets, for the rollout judge (SPEC §9): cheap to
 * fill on the request path, and mergeable, because every replica adds its counts to the store and
 * the judge reads the sum. Quantiles come from bucket counts, never from stored samples.
 *
 * Buckets: index 0 holds [0, 1 ms); index i in 1..256 holds [2^((i-1)/16), 2^(i/16)) ms, sixteen
 * per doubling (each about 4.4 % wide, so rounding to a bucket edge costs the 1.5× latency ratio
 * little) up to 2^16 ms ≈ 65.5 s; index 257 holds everything slower.
 * Sub-millisecond differences are deliberately not resolved: on loopback they are scheduling
 * noise, not a slower release.
 */

/** Buckets per doubling of latency. */
export const BUCKETS_PER_OCTAVE = 16;
/** Doublings above 1 ms covered by finite buckets (1 ms .. 65.5 s). */
const OCTAVES = 16;
/** Finite log-spaced buckets. */
const LOG_BUCKETS = BUCKETS_PER_OCTAVE * OCTAVES;
/** Every bucket: underflow, the log-spaced ones, overflow. */
export const BUCKET_COUNT = LOG_BUCKETS + 2;
/** Lower edge of the first log-spaced bucket (ms); faster answers share the underflow bucket. */
export const MIN_MS = 1;
/** Upper edge of the last finite bucket (ms). */
export const MAX_MS = MIN_MS * 2 ** OCTAVES;

/** Lower edge in ms of bucket `index` (0 for the underflow bucket). */
export function bucketLowerMs(index: number): number {
  return index <= 0 ? 0 : MIN_MS * 2 ** ((index - 1) / BUCKETS_PER_OCTAVE);
}

/** Upper edge in ms of bucket `index` (Infinity for the overflow bucket). */
export function bucketUpperMs(index: number): number {
  return index >= BUCKET_COUNT - 1
    ? Number.POSITIVE_INFINITY
    : MIN_MS * 2 ** (index / BUCKETS_PER_OCTAVE);
}

/** Upper edges of the finite buckets, precomputed: observe() runs on every request. */
const UPPER_MS = Float64Array.from({ length: LOG_BUCKETS + 1 }, (_, i) => bucketUpperMs(i));

/** The bucket a latency of `ms` falls in; NaN and negative values count as 0. */
export function bucketIndex(ms: number): number {
  if (!(ms >= MIN_MS)) return 0;
  const i = Math.floor(Math.log2(ms / MIN_MS) * BUCKETS_PER_OCTAVE) + 1;
  if (i > LOG_BUCKETS) return BUCKET_COUNT - 1;
  // Guard the float edge (log2 of an exact edge may land a hair below it).
  return ms >= (UPPER_MS[i] as number) ? i + 1 : i;
}

/** Sparse JSON form: bucket index → count, only non-empty buckets. */
export type LatencyCounts = Readonly<Record<string, number>>;

/** A fixed-bucket latency histogram; observe() allocates nothing. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKET_COUNT);
  #total = 0;

  /** A histogram holding the sparse `counts` (as from toJSON(), or summed in a store). */
  static fromJSON(counts: LatencyCounts): LatencyHistogram {
    const h = new LatencyHistogram();
    for (const [key, count] of Object.entries(counts)) h.addCount(Number(key), count);
    return h;
  }

  /** Records one answer that took `ms` milliseconds. Hot path: no allocation. */
  observe(ms: number): void {
    const i = bucketIndex(ms);
    this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    this.#total += 1;
  }

  /** Adds `count` samples to bucket `index` (merging counts from a store). */
  addCount(index: number, count: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= BUCKET_COUNT) {
      throw new RangeError(`latency bucket ${index} is not an integer 0..${BUCKET_COUNT - 1}`);
    }
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`latency bucket ${index}: count ${count} is not an integer >= 0`);
    }
    this.#counts[index] = (this.#counts[index] ?? 0) + count;
    this.#total += count;
  }

  /** Adds every count of `other` (another replica's, or another second's). */
  add(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKET_COUNT; i += 1) this.#counts[i] = this.count(i) + other.count(i);
    this.#total += other.total;
  }

  /**
   * A new histogram of the samples in this one but not in `earlier`, a snapshot of the same
   * counter taken before (e.g. at the end of a step's warm-up). Throws if `earlier` is not.
   */
  since(earlier: LatencyHistogram): LatencyHistogram {
    const h = new LatencyHistogram();
    for (let i = 0; i < BUCKET_COUNT; i += 1) {
      const n = this.count(i) - earlier.count(i);
      if (n < 0) throw new RangeError('since(): the earlier histogram has more samples');
      if (n > 0) h.addCount(i, n);
    }
    return h;
  }

  /** A copy that later observe() calls on this one do not change. */
  clone(): LatencyHistogram {
    const h = new LatencyHistogram();
    h.add(this);
    return h;
  }

  /** Samples recorded. */
  get total(): number {
    return this.#total;
  }

  /** Samples in bucket `index`. */
  count(index: number): number {
    return this.#counts[index] ?? 0;
  }

  /** Samples at least `ms` long, counting only buckets wholly at or above it (an undercount). */
  countAtLeast(ms: number): number {
    let n = 0;
    for (let i = BUCKET_COUNT - 1; i >= 0 && bucketLowerMs(i) >= ms; i -= 1) n += this.count(i);
    return n;
  }

  /**
   * The q-quantile (0 < q <= 1) as the upper edge of the bucket holding it, so the true sample
   * quantile is at most this (within one ~4.4 % bucket); MAX_MS for the overflow bucket and 0 for
   * an empty histogram.
   */
  quantile(q: number): number {
    if (!(q > 0 && q <= 1)) throw new RangeError(`quantile ${q} is not in (0, 1]`);
    if (this.#total === 0) return 0;
    const rank = Math.ceil(q * this.#total);
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i += 1) {
      seen += this.count(i);
      if (seen >= rank) return Math.min(bucketUpperMs(i), MAX_MS);
    }
    return MAX_MS;
  }

  /** Sparse counts (bucket index → count) for a store or a status document. */
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < BUCKET_COUNT; i += 1) if (this.count(i) > 0) out[String(i)] = this.count(i);
    return out;
  }
}

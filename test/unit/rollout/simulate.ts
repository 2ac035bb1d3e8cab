/**
 * Seeded randomness for the judge's simulations: a small PRNG (xorshift32 plus a Weyl sequence,
 * enough for Monte Carlo counts, not for anything secret) and samplers built on it.
 */

/** A uniform [0, 1) generator from `seed`; the same seed gives the same sequence. */
export function createRandom(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  let weyl = 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    weyl = (weyl + 0x9e3779b9) >>> 0;
    return ((x + weyl) >>> 0) / 4294967296;
  };
}

/** A standard normal draw (Box–Muller). */
export function normal(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** A Binomial(n, p) draw by inversion (fine for the n <= a few hundred used here). */
export function binomial(random: () => number, n: number, p: number): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(random, n, 1 - p);
  const ratio = p / (1 - p);
  let f = (1 - p) ** n;
  let u = random();
  let k = 0;
  while (u > f && k < n) {
    u -= f;
    f *= (ratio * (n - k)) / (k + 1);
    k += 1;
  }
  return k;
}

/** Requests routed to a pool with share `w` out of `n`: normal approximation, rounded. */
export function routed(random: () => number, n: number, w: number): number {
  const k = Math.round(n * w + Math.sqrt(n * w * (1 - w)) * normal(random));
  return Math.min(n, Math.max(0, k));
}

/** Median and a percentile of numbers (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN;
}

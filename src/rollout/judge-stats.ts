/**
 * The statistics behind the rollout judge (judge.ts has the reasoning): e-values of sequential
 * tests on error and slow-request counts, an anytime-valid confidence sequence for a proportion,
 * and a fixed-sample one-sided upper bound. Pure numbers; no I/O.
 */

/** Alternatives of the mixture tests: the odds of an error (or a slow answer) K× the null's. */
const ODDS_RATIOS = [2, 4, 8, 16, 32] as const;
const LOG_ODDS_RATIOS = ODDS_RATIOS.map(Math.log);
/** Equal prior weight on each alternative. */
const LOG_WEIGHT = -Math.log(ODDS_RATIOS.length);

/**
 * E-value of "at most a share `null0` of these `trials` are hits", after `hits` hits: the
 * equal-weight mixture over K in {2, 4, 8, 16, 32} of the likelihood ratios of "odds K× null0's"
 * against null0, each
 *
 *   LR_K = K^hits / (1 + null0·(K−1))^trials.
 *
 * Per trial E[LR_K factor] = (1 + p·(K−1)) / (1 + null0·(K−1)) <= 1 whenever the true share
 * p <= null0, so every LR_K, and the mixture, is a non-negative supermartingale (Ville: it ever
 * reaches 1/α with probability <= α). It is decreasing in null0 for fixed counts, so using a
 * larger null0 than the true boundary only makes the test more conservative.
 */
export function mixtureEValue(hits: number, trials: number, null0: number): number {
  if (hits <= 0) return trials > 0 ? mixtureBelowOne(trials, null0) : 1;
  if (null0 >= 1) return 0;
  let max = Number.NEGATIVE_INFINITY;
  const logs: number[] = [];
  for (let i = 0; i < ODDS_RATIOS.length; i += 1) {
    const k = ODDS_RATIOS[i] as number;
    const l = hits * (LOG_ODDS_RATIOS[i] as number) - trials * Math.log1p(null0 * (k - 1));
    logs.push(l);
    if (l > max) max = l;
  }
  let sum = 0;
  for (const l of logs) sum += Math.exp(l - max);
  return Math.exp(max + Math.log(sum) + LOG_WEIGHT);
}

function mixtureBelowOne(trials: number, null0: number): number {
  let sum = 0;
  for (const k of ODDS_RATIOS) sum += Math.exp(-trials * Math.log1p(Math.min(1, null0) * (k - 1)));
  return sum / ODDS_RATIOS.length;
}

/** ln Γ(x) for x > 0 (Stirling's series after shifting x above 8; about 1e-12 relative). */
export function lnGamma(x: number): number {
  let shift = 0;
  let y = x;
  while (y < 8) {
    shift += Math.log(y);
    y += 1;
  }
  const inv = 1 / y;
  const inv2 = inv * inv;
  const series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)));
  return (y - 0.5) * Math.log(y) - y + 0.5 * Math.log(2 * Math.PI) + series - shift;
}

function lnBeta(a: number, b: number): number {
  return lnGamma(a) + lnGamma(b) - lnGamma(a + b);
}

/** A Beta(a, b) prior for the confidence sequence's mixture. */
export interface BetaPrior {
  readonly a: number;
  readonly b: number;
}

/** Jeffreys' prior: no preference for any share. */
export const JEFFREYS: BetaPrior = Object.freeze({ a: 0.5, b: 0.5 });

/**
 * ln of Robbins' mixture martingale for a proportion p after `hits` of `n`: the Beta(a, b)
 * mixture of Bernoulli likelihoods over the likelihood at p,
 *
 *   M_n(p) = B(hits + a, n − hits + b) / B(a, b) / (p^hits · (1 − p)^(n − hits)).
 *
 * Under the true p it is a martingale with mean 1 whatever the prior, so {p : M_n(p) < 1/α}
 * holds the true p at every n at once with probability >= 1 − α (a confidence sequence); the
 * prior only decides where the sequence is tightest.
 */
function lnMixture(p: number, hits: number, n: number, lnMix: number): number {
  const miss = n - hits;
  const lnLik = (hits > 0 ? hits * Math.log(p) : 0) + (miss > 0 ? miss * Math.log1p(-p) : 0);
  return lnMix - lnLik;
}

/** ln of the numerator of M_n(p), which does not depend on p. */
function lnMixtureMass(hits: number, n: number, prior: BetaPrior): number {
  return lnBeta(hits + prior.a, n - hits + prior.b) - lnBeta(prior.a, prior.b);
}

/** Anytime-valid bounds on a proportion from `hits` of `n` at level α: [lower, upper]. */
export function confidenceSequence(
  hits: number,
  n: number,
  alpha: number,
  prior: BetaPrior = JEFFREYS,
): { lower: number; upper: number } {
  if (n <= 0) return { lower: 0, upper: 1 };
  const limit = Math.log(1 / alpha);
  const mle = hits / n;
  const mass = lnMixtureMass(hits, n, prior);
  const inside = (p: number): boolean => lnMixture(p, hits, n, mass) < limit;
  // The log-likelihood is concave in p, so the set is an interval around the MLE: bisect each side.
  let lower = 0;
  if (hits > 0 && !inside(Number.MIN_VALUE)) {
    let lo = 0;
    let hi = mle;
    for (let i = 0; i < 44; i += 1) {
      const mid = (lo + hi) / 2;
      if (inside(mid)) hi = mid;
      else lo = mid;
    }
    lower = lo;
  }
  let upper = 1;
  if (hits < n && !inside(1 - Number.EPSILON)) {
    let lo = mle;
    let hi = 1;
    for (let i = 0; i < 44; i += 1) {
      const mid = (lo + hi) / 2;
      if (inside(mid)) lo = mid;
      else hi = mid;
    }
    upper = hi;
  }
  return { lower, upper };
}

/** True when the confidence sequence of `hits` of `n` at level α lies wholly below `p`. */
export function isBelowAnytime(
  p: number,
  hits: number,
  n: number,
  alpha: number,
  prior: BetaPrior = JEFFREYS,
): boolean {
  return (
    n > 0 &&
    hits / n < p &&
    lnMixture(p, hits, n, lnMixtureMass(hits, n, prior)) >= Math.log(1 / alpha)
  );
}

/** ln P(X <= hits) for X ~ Binomial(n, p), summed in log space (no underflow). */
function lnBinomialCdf(hits: number, n: number, p: number): number {
  if (p <= 0) return 0;
  if (p >= 1) return hits >= n ? 0 : Number.NEGATIVE_INFINITY;
  const lnP = Math.log(p);
  const lnQ = Math.log1p(-p);
  // ln pmf(k), from k = hits down: pmf(k − 1) = pmf(k) · k / (n − k + 1) · q / p. The largest
  // term is the first one whenever hits <= the mean; otherwise rescaling keeps the sum finite.
  const top =
    lnGamma(n + 1) - lnGamma(hits + 1) - lnGamma(n - hits + 1) + hits * lnP + (n - hits) * lnQ;
  const step = lnQ - lnP;
  let lnTerm = 0;
  let lnScale = top;
  let sum = 1;
  for (let k = hits; k > 0; k -= 1) {
    lnTerm += Math.log(k / (n - k + 1)) + step;
    if (lnTerm > 0) {
      // a larger term than the current scale: rescale
      sum = sum * Math.exp(-lnTerm) + 1;
      lnScale += lnTerm;
      lnTerm = 0;
      continue;
    }
    if (lnTerm < -40) break;
    sum += Math.exp(lnTerm);
  }
  return lnScale + Math.log(sum);
}

/**
 * Exact (Clopper–Pearson) one-sided upper confidence bound of a proportion from `hits` of `n`:
 * the p at which P(X <= hits) = 1 − confidence.
 */
export function upperBound(hits: number, n: number, confidence: number): number {
  if (n <= 0 || hits >= n) return 1;
  const target = Math.log(1 - confidence);
  let lo = hits / n;
  let hi = 1;
  for (let i = 0; i < 50; i += 1) {
    const mid = (lo + hi) / 2;
    if (lnBinomialCdf(hits, n, mid) > target) lo = mid;
    else hi = mid;
  }
  return hi;
}

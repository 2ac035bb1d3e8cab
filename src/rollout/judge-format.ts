/** Number formatting for the judge's reasons: `canary 5xx 23/561 (4.1 %) vs blue ...`. */

/** `33,910`: thousands separated by commas (Intl is slow for a call every second per rollout). */
export function group(n: number): string {
  const digits = String(Math.round(n));
  let out = '';
  for (let i = 0; i < digits.length; i += 1) {
    if (i > 0 && (digits.length - i) % 3 === 0 && digits[i - 1] !== '-') out += ',';
    out += digits[i];
  }
  return out;
}

/** `4.1 %`, `0.12 %`: two significant digits. */
export function formatPercent(ratio: number): string {
  const v = ratio * 100;
  if (v === 0) return '0 %';
  return `${v >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(2)))} %`;
}

/** `52 ms`, `4.5 ms`, `1.2 s`. */
export function formatMs(ms: number): string {
  if (ms >= 1000) return `${String(Number((ms / 1000).toPrecision(3)))} s`;
  return `${ms >= 10 ? ms.toFixed(0) : ms.toFixed(1)} ms`;
}

/** `p99` for 0.99, `p99.9` for 0.999. */
export function quantileLabel(q: number): string {
  return `p${String(Number((q * 100).toFixed(3)))}`;
}

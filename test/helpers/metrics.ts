/**
 * Reading metrics in tests, one way: parse the Prometheus text exposition, from the admin API's
 * /metrics (`adminUrl`) or straight from an app's registry (a `Metrics`), and pick samples by
 * name and labels.
 */
import type { Metrics } from '../../src/observability/metrics.js';

/** One sample line of a Prometheus text exposition. */
export interface MetricSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Where samples come from: an admin base URL (GET /metrics) or an app's metrics registry. */
export type MetricSource = string | Metrics;

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses a text exposition into samples (comments and blank lines skipped). */
export function parseMetrics(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE_LINE.exec(line);
    if (m === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(LABEL_PAIR))
      labels[k as string] = (v as string).replace(/\\(.)/g, (_, c: string) =>
        c === 'n' ? '\n' : c,
      );
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** Every sample the source exports now. */
export async function scrapeMetrics(source: MetricSource): Promise<MetricSample[]> {
  if (typeof source !== 'string') return parseMetrics(await source.registry.metrics());
  const res = await fetch(`${source}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${source}/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

/** The samples named `name` whose labels include `labels`. */
export function findSamples(
  samples: readonly MetricSample[],
  name: string,
  labels: Record<string, string> = {},
): MetricSample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/**
 * The sum of the samples named `name` whose labels include `labels` (all of them when `labels`
 * is empty); 0 when there is none, like a counter that never counted, or an error with
 * `required` (a metric that must exist, such as a process metric).
 */
export async function readMetric(
  source: MetricSource,
  name: string,
  labels: Record<string, string> = {},
  options: { required?: boolean } = {},
): Promise<number> {
  const found = findSamples(await scrapeMetrics(source), name, labels);
  if (found.length === 0 && options.required === true)
    throw new Error(`no sample ${name} ${JSON.stringify(labels)}`);
  return found.reduce((n, s) => n + s.value, 0);
}

/** Whether a sample named `name` with `labels` is exported at all (a series exists). */
export async function hasMetric(
  source: MetricSource,
  name: string,
  labels: Record<string, string> = {},
): Promise<boolean> {
  return findSamples(await scrapeMetrics(source), name, labels).length > 0;
}

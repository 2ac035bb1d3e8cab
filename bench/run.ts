import { busyMachineWarning, describeEnvironment, formatEnvironment } from './lib/environment.js';
import { choosePinning, pinSelf } from './lib/pinning.js';
import { LATEST_RESULTS_FILE, QUICK_RESULTS_FILE, writeResults } from './lib/results.js';
import { formatChecks, type Check, type Scenario } from './lib/scenario.js';
import { runCutover } from './scenarios/cutover.js';
import { runPropagation } from './scenarios/propagation.js';
import { runRampAccuracy } from './scenarios/ramp-accuracy.js';
import { runRollout } from './scenarios/rollout.js';
import { runScaling } from './scenarios/scaling.js';
import { runThroughput } from './scenarios/throughput.js';

// SPEC §8 scenarios, in the order `npm run bench` runs them.
const SCENARIOS: Record<string, Scenario> = {
  throughput: runThroughput,
  cutover: runCutover,
  propagation: runPropagation,
  'ramp-accuracy': runRampAccuracy,
  rollout: runRollout,
};

// Not part of the default run (SPEC §8 keeps the suite under 5 minutes): `npm run bench -- scaling`.
const EXTRA_SCENARIOS: Record<string, Scenario> = { scaling: runScaling };

const USAGE = `usage: npm run bench [-- SCENARIO...]

  scenarios: ${Object.keys(SCENARIOS).join(', ')} (default: all)
             scaling (--workers 1, 2, auto beside nginx; not part of the default run)
             forwarding-core (compares candidate forwarding cores; not part of the default run)
  env:       BENCH_QUICK=1 (short smoke run of the suite: figures meaningless, targets not judged,
             written to bench/results/quick.json, never latest.json), BENCH_NO_PIN=1 (no taskset),
             BENCH_CPU_PROF=1 (throughput: V8 CPU profile of the proxy in bench/results/*.cpuprofile),
             SCALING_WORKERS=1,2,4,auto (scaling), FC_ROUNDS, FC_WARMUP_S, FC_MEASURE_S, FC_BODY_BYTES (forwarding-core)
`;

async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (argv.length === 1 && argv[0] === 'forwarding-core') {
    const { runForwardingCore } = await import('./forwarding-core/run.js');
    await runForwardingCore();
    return 0;
  }
  const names = argv.length === 0 ? Object.keys(SCENARIOS) : [...argv];
  const unknown = names.filter((n) => !(n in SCENARIOS) && !(n in EXTRA_SCENARIOS));
  if (unknown.length > 0) {
    process.stderr.write(`unknown scenario: ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }

  const quick = process.env.BENCH_QUICK === '1';
  const environment = describeEnvironment();
  const pinning = choosePinning();
  pinSelf(pinning);
  console.log(
    `switchyard bench: ${names.join(', ')}${quick ? ' (QUICK: smoke run, figures meaningless, targets not judged)' : ''}`,
  );
  console.log(`environment: ${formatEnvironment(environment)}`);
  console.log(`pinning: ${pinning.description}`);
  const busy = busyMachineWarning(environment);
  if (busy !== undefined) console.log(busy);

  const started = performance.now();
  const results: Record<string, unknown> = {};
  const allChecks: (Check & { scenario: string })[] = [];
  const warnings: string[] = busy === undefined ? [] : [busy];
  for (const name of names) {
    const scenario = (SCENARIOS[name] ?? EXTRA_SCENARIOS[name]) as Scenario;
    const t0 = performance.now();
    console.log(`\n== ${name}`);
    try {
      const result = await scenario({ pinning, quick, log: (line) => console.log(line) });
      const seconds = (performance.now() - t0) / 1000;
      console.log(`\n${result.table}\n`);
      // A quick run's figures say nothing about the targets: only correctness (hard) checks count.
      const checks = quick ? result.checks.filter((c) => c.hard) : result.checks;
      if (checks.length > 0) console.log(formatChecks(checks));
      for (const w of result.warnings) console.log(`warning: ${w}`);
      console.log(`(${name}: ${seconds.toFixed(1)} s)`);
      results[name] = {
        seconds: Math.round(seconds * 10) / 10,
        ...(result.data as object),
        checks,
      };
      allChecks.push(...checks.map((c) => ({ ...c, scenario: name })));
      warnings.push(...result.warnings);
    } catch (err) {
      const message = (err as Error).stack ?? String(err);
      console.log(`${name} failed: ${message}`);
      results[name] = { error: (err as Error).message };
      allChecks.push({
        scenario: name,
        name: 'scenario ran',
        ok: false,
        detail: (err as Error).message,
        hard: true,
      });
    }
  }
  const totalSeconds = (performance.now() - started) / 1000;
  const failed = allChecks.filter((c) => !c.ok && c.hard);
  const missed = allChecks.filter((c) => !c.ok && !c.hard);
  console.log(
    `\ntotal ${totalSeconds.toFixed(1)} s; ${allChecks.length - failed.length - missed.length} checks ok, ${quick ? 'targets not judged (quick run)' : `${missed.length} targets missed`}, ${failed.length} failed`,
  );
  // bench/results/latest.json is tracked and quoted in bench/README.md: a smoke run must not
  // overwrite it (and leave a dirty tree that `npm run image` refuses to build from).
  // A run of extra scenarios alone (scaling) keeps its own file: latest.json is the suite's.
  const extraOnly = names.every((n) => n in EXTRA_SCENARIOS);
  const file = quick
    ? QUICK_RESULTS_FILE
    : extraOnly
      ? `${names.join('-')}.json`
      : LATEST_RESULTS_FILE;
  const path = await writeResults(file, {
    command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
    quick,
    environment,
    pinning: pinning.description,
    totalSeconds: Math.round(totalSeconds * 10) / 10,
    warnings,
    scenarios: results,
  });
  console.log(`written ${path}`);
  return failed.length > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));

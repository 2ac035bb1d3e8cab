/**
 * `switchyard proxy --config switchyard.example.yaml` starts the real binary as shipped
 * (issue 11); only the listen addresses are overridden by flags, to loopback ports the OS picks.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test } from 'vitest';
import { spawnProxy, type ProxyProcess } from '../helpers/proxy-process.js';

const EXAMPLE = fileURLToPath(new URL('../../switchyard.example.yaml', import.meta.url));

let proc: ProxyProcess | undefined;
afterEach(async () => {
  await proc?.kill();
});

test('issue 11: the real binary starts with switchyard.example.yaml and seeds its pools', async () => {
  proc = await spawnProxy(['--config', EXAMPLE]);
  const state = (await (await fetch(`${proc.adminUrl}/v1/state`)).json()) as {
    table: { pools: Record<string, { version: string }>; weights: Record<string, number> };
  };
  expect(state.table.pools.blue?.version).toBe('3f2c9e1');
  expect(state.table.pools.green?.version).toBe('9ab14d0');
  expect(state.table.weights).toEqual({ blue: 10000, green: 0 });
  // Not the demo: the example's pools, and no cheat sheet.
  expect(proc.stderr()).not.toContain('Switchyard demo is running');
});

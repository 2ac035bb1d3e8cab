/** Runs the ControlStore contract against MemoryControlStore and RedisControlStore. */
import { afterAll, beforeAll } from 'vitest';
import { MemoryControlStore } from '../../src/control/memory-store.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { controlStoreContract, redisStoreFactory } from './control-store-contract.js';

controlStoreContract('memory', async () => {
  const store: MemoryControlStore = new MemoryControlStore({
    appliedRevision: () => store.current()?.revision ?? 0,
  });
  await store.start();
  return { store, close: () => store.close() };
});

let redis: RedisServerHandle;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.close();
});

controlStoreContract(
  'redis',
  redisStoreFactory(() => redis.url),
);

/** Runs the ControlStore contract against MemoryControlStore and RedisControlStore. */
import { afterAll, beforeAll } from 'vitest';
import { MemoryControlStore } from '../../src/control/memory-store.js';
import { RedisControlStore } from '../../src/control/redis-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import { controlStoreContract } from './control-store-contract.js';

controlStoreContract('memory', async () => {
  const store: MemoryControlStore = new MemoryControlStore({
    appliedRevision: () => store.current()?.revision ?? 0,
  });
  await store.start();
  return { store, close: () => store.close() };
});

let redis: RedisServerHandle;
let namespaces = 0;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.close();
});

controlStoreContract('redis', async () => {
  namespaces += 1;
  const store: RedisControlStore = new RedisControlStore({
    url: redis.url,
    namespace: `contract-${namespaces}`,
    replicaId: `replica-${namespaces}`,
    appliedRevision: () => store.current()?.revision ?? 0,
    logger: createLogger({ level: 'silent' }),
  });
  await store.start();
  return { store, close: () => store.close() };
});

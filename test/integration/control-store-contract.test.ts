/** Runs the ControlStore contract against MemoryControlStore and RedisControlStore. */
import { afterAll, beforeAll } from 'vitest';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-server.js';
import {
  controlStoreContract,
  memoryStoreFactory,
  redisStoreFactory,
} from './control-store-contract.js';

controlStoreContract('memory', memoryStoreFactory);

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

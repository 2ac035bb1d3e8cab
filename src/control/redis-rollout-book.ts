/**
 * The rollout book in Redis (SPEC §9 "Many replicas"): the current rollout (`rollout`, JSON with
 * compare-and-set on its SHA-1), the capped list of past ones (`rollouts`), the driver lease
 * (`rollout-lease`, SET NX PX and renewed by its owner) and every replica's cumulative per-pool
 * counts (`rollout-counts`, a hash field per replica stamped with Redis time; stale fields are
 * dropped and the key expires, so nothing grows forever). Anything written there by hand that
 * does not read is ignored (a rollout that does not parse reads as none), never thrown.
 */
import type { RolloutRecord } from '../rollout/rollout-record.js';
import {
  decodeCounts,
  encodeCounts,
  MAX_PAST,
  type BookRead,
  type CountsSnapshot,
  type LeaseState,
  type RolloutBook,
  type StoredRollout,
} from '../rollout/rollout-book.js';
import type { RedisKeys } from './redis-keys.js';
import { run, script, TOKEN_LUA, type RedisClient } from './redis-scripts.js';

/** A replica's counts older than this are dropped (and the hash expires this long after a write). */
const COUNTS_STALE_MS = 60 * 60 * 1000;
/** Largest rollout value read back (a hand-written huge value is not shipped). */
const MAX_ROLLOUT_BYTES = 4 * 1024 * 1024;

/** KEYS: rollout. ARGV: maxBytes. Returns {token, value-or-false}. */
const READ = script(`${TOKEN_LUA}
local tok = token(KEYS[1])
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then return {tok, false} end
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return {tok, false} end
return {tok, redis.call('GET', KEYS[1])}
`);

/**
 * KEYS: rollout, rollouts. ARGV: token, value, archive ('' for none), maxPast.
 * Returns 0 when the token changed, else writes (and archives) and returns 1.
 */
const WRITE = script(`${TOKEN_LUA}
if token(KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then
  if redis.call('TYPE', KEYS[2])['ok'] ~= 'list' then redis.call('DEL', KEYS[2]) end
  redis.call('LPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
end
return 1
`);

/**
 * KEYS: lease. ARGV: owner, ttlMs. Takes or renews the lease. Returns {1, ttlMs, owner} while
 * owner holds it, else {0, the holder's remaining ms, the holder}.
 */
const LEASE = script(`
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then redis.call('DEL', KEYS[1]) end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(ARGV[2]), holder}
end
if holder then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    -- A lease without expiry (written by hand) would block every replica forever.
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    left = tonumber(ARGV[2])
  end
  return {0, left, holder}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, tonumber(ARGV[2]), ARGV[1]}
`);

/** KEYS: lease. ARGV: owner. Deletes the lease if owner holds it. */
const RELEASE = script(`
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
`);

/**
 * KEYS: counts. ARGV: replicaId, counts JSON, staleMs. Stores `<now> <json>`, drops fields older
 * than staleMs (or unreadable), and sets the key to expire staleMs from now.
 */
const PUBLISH_COUNTS = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], ARGV[1], now .. ' ' .. ARGV[2])
local stale = tonumber(ARGV[3])
local fields = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(fields) do
  local v = redis.call('HGET', KEYS[1], f)
  local at = tonumber(string.match(v, '^(%d+) '))
  if at == nil or now - at > stale then redis.call('HDEL', KEYS[1], f) end
end
redis.call('PEXPIRE', KEYS[1], stale)
return 1
`);

/** Options of RedisRolloutBook. */
export interface RedisRolloutBookOptions {
  readonly keys: RedisKeys;
  /** The writer connection (throws STORE_UNAVAILABLE before the store starts). */
  readonly client: () => RedisClient;
  /** Runs a Redis call; any failure becomes STORE_UNAVAILABLE. */
  readonly guard: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** The rollout book shared by every replica of a namespace. */
export class RedisRolloutBook implements RolloutBook {
  readonly shared = true;
  readonly #o: RedisRolloutBookOptions;

  constructor(options: RedisRolloutBookOptions) {
    this.#o = options;
  }

  async read(): Promise<BookRead> {
    const { keys, guard, client } = this.#o;
    const reply = await guard(() => run(client(), READ, [keys.rollout], [MAX_ROLLOUT_BYTES]));
    if (!Array.isArray(reply)) throw new Error('unexpected reply to rollout read');
    const token = typeof reply[0] === 'string' ? reply[0] : '';
    const value: unknown = reply[1];
    return { token, current: typeof value === 'string' ? parseStored(value) : null };
  }

  async write(next: StoredRollout, token: string, archive: RolloutRecord | null): Promise<boolean> {
    const { keys, guard, client } = this.#o;
    const reply = await guard(() =>
      run(
        client(),
        WRITE,
        [keys.rollout, keys.rollouts],
        [token, JSON.stringify(next), archive === null ? '' : JSON.stringify(archive), MAX_PAST],
      ),
    );
    return Number(reply) === 1;
  }

  async past(limit: number): Promise<RolloutRecord[]> {
    const { keys, guard, client } = this.#o;
    if (limit <= 0) return [];
    const values = await guard(async () => {
      const c = client();
      if ((await c.type(keys.rollouts)) !== 'list') return [];
      return c.lrange(keys.rollouts, 0, Math.min(limit, MAX_PAST) - 1);
    });
    const out: RolloutRecord[] = [];
    for (const v of values) {
      const record = parseRecord(v);
      if (record !== null) out.push(record);
    }
    return out;
  }

  async lease(owner: string, ttlMs: number): Promise<LeaseState> {
    const { keys, guard, client } = this.#o;
    const reply = await guard(() => run(client(), LEASE, [keys.rolloutLease], [owner, ttlMs]));
    if (!Array.isArray(reply)) throw new Error('unexpected reply to rollout lease');
    return {
      held: Number(reply[0]) === 1,
      expiresInMs: Math.max(0, Number(reply[1]) || 0),
      holder: typeof reply[2] === 'string' ? reply[2] : owner,
    };
  }

  async release(owner: string): Promise<void> {
    const { keys, guard, client } = this.#o;
    await guard(() => run(client(), RELEASE, [keys.rolloutLease], [owner]));
  }

  async publishCounts(replicaId: string, counts: CountsSnapshot): Promise<void> {
    const { keys, guard, client } = this.#o;
    await guard(() =>
      run(
        client(),
        PUBLISH_COUNTS,
        [keys.rolloutCounts],
        [replicaId, JSON.stringify(encodeCounts(counts)), COUNTS_STALE_MS],
      ),
    );
  }

  async replicaCounts(): Promise<Map<string, CountsSnapshot>> {
    const { keys, guard, client } = this.#o;
    const all = await guard(async () => {
      const c = client();
      if ((await c.type(keys.rolloutCounts)) !== 'hash') return {};
      return c.hgetall(keys.rolloutCounts);
    });
    const out = new Map<string, CountsSnapshot>();
    for (const [id, value] of Object.entries(all)) {
      const space = value.indexOf(' ');
      if (space < 0) continue;
      try {
        out.set(id, decodeCounts(JSON.parse(value.slice(space + 1))));
      } catch {
        // Not JSON (written by hand): ignored.
      }
    }
    return out;
  }
}

/** A stored rollout, or null when the value does not read as one. */
function parseStored(value: string): StoredRollout | null {
  try {
    const parsed = JSON.parse(value) as Partial<StoredRollout> | null;
    if (parsed === null || typeof parsed !== 'object') return null;
    if (!isRecord(parsed.record) || typeof parsed.engine !== 'object' || parsed.engine === null)
      return null;
    return parsed as StoredRollout;
  } catch {
    return null;
  }
}

function parseRecord(value: string): RolloutRecord | null {
  try {
    const parsed: unknown = JSON.parse(value);
    return isRecord(parsed) ? parsed : null;
  } catch {
    return null;
  }
}

/** Enough of a record's shape to serve it and drive it without throwing. */
function isRecord(v: unknown): v is RolloutRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.id === 'string' &&
    typeof r.pool === 'string' &&
    typeof r.baseline === 'string' &&
    typeof r.phase === 'string' &&
    typeof r.step === 'number' &&
    Array.isArray(r.steps) &&
    Array.isArray(r.decisions) &&
    typeof r.analysis === 'object' &&
    r.analysis !== null
  );
}

/**
 * The Lua scripts of the Redis store. They hold no domain logic (validation and applyCommand
 * stay in TypeScript, one validator for every entry point); they only make "check, then write
 * state + history + cursor + notification" atomic.
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { RedisKeys } from './redis-keys.js';

/** A client the store talks through (standalone, Sentinel-managed or Cluster). */
export type RedisClient = Redis | Cluster;

/** A Lua script with its SHA-1 (for EVALSHA). */
export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

/** A script of `lua`. */
export function script(lua: string): LuaScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/**
 * Token of the state key: '' when absent, `type:<t>` for a non-string, else the SHA-1 of the
 * value. Compare-and-set compares tokens, so any concurrent write (even a hand-written SET of
 * the same revision) is detected, and a state too large to ship back can still be replaced.
 */
export const TOKEN_LUA = `
local function token(key)
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' then return '' end
  if t ~= 'string' then return 'type:' .. t end
  return redis.sha1hex(redis.call('GET', key))
end
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * KEYS: state. ARGV: maxBytes, wantToken ('1'/'0').
 * Returns {type, length, token, value-or-false, nowMs}; the value is false when absent, not a
 * string, or longer than maxBytes (so a 10 MB hand-written value never crosses the wire).
 */
const READ_STATE = script(`${TOKEN_LUA}
local key = KEYS[1]
local t = redis.call('TYPE', key)['ok']
local now = nowMs()
local tok = ''
if ARGV[2] == '1' then tok = token(key) end
if t ~= 'string' then return {t, 0, tok, false, now} end
local n = redis.call('STRLEN', key)
if n > tonumber(ARGV[1]) then return {t, n, tok, false, now} end
return {t, n, tok, redis.call('GET', key), now}
`);

/**
 * KEYS: state, history, events, commandsCursor.
 * ARGV: mode ('apply' | 'create' | 'reject' | 'skip'), token, newState, revision, historyMaxLen,
 *       commandId ('' for none), deadlineMs ('' for none), then history field/value pairs.
 * - commandId at or below the cursor: {'duplicate'} (a commands entry is handled once).
 * - deadline passed (Redis time): {'expired'}: a write delayed by a paused server is dropped,
 *   never applied after its caller was told 503.
 * - apply: state token differs from ARGV token: {'conflict'}. create: state exists: {'exists'}.
 * Otherwise writes state (apply/create), appends the history entry (not for skip), advances the
 * cursor, publishes the revision (apply/create) and returns {'ok', historyId}. `skip` only moves
 * the cursor past a commands entry that changed nothing.
 */
const COMMIT = script(`${TOKEN_LUA}
local function parseId(s)
  local a, b = string.match(s, '^(%d+)%-(%d+)$')
  return tonumber(a), tonumber(b)
end
local function atOrBelow(x, y)
  local xm, xs = parseId(x)
  local ym, ys = parseId(y)
  if xm == nil or ym == nil then return false end
  return xm < ym or (xm == ym and xs <= ys)
end
local mode = ARGV[1]
local commandId = ARGV[6]
if commandId ~= '' then
  local cursor = redis.call('GET', KEYS[4])
  if cursor and atOrBelow(commandId, cursor) then return {'duplicate'} end
end
if ARGV[7] ~= '' and nowMs() > tonumber(ARGV[7]) then return {'expired'} end
if mode == 'apply' then
  if token(KEYS[1]) ~= ARGV[2] then return {'conflict'} end
  redis.call('SET', KEYS[1], ARGV[3])
elseif mode == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
  redis.call('SET', KEYS[1], ARGV[3])
end
local id = ''
if mode ~= 'skip' then
  local fields = {}
  for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
end
if commandId ~= '' then redis.call('SET', KEYS[4], commandId) end
if mode == 'apply' or mode == 'create' then redis.call('PUBLISH', KEYS[3], ARGV[4]) end
return {'ok', id}
`);

/**
 * KEYS: replicas, drain. ARGV: replicaId, appliedRevision, staleMs, drain report JSON.
 * Records `<revision> <heartbeatMs>` stamped with Redis time (one clock for every replica) and
 * drops entries not refreshed for staleMs or unreadable. The registry holds only heartbeats that
 * every replica rewrites each second, so a key of another type (written by hand) is replaced.
 * The drain report goes to the drain hash, whose fields live only as long as their registry
 * entry and whose key expires staleMs after the last heartbeat of any replica (SPEC §10).
 * Returns {nowMs, the replaced key's type or ''}.
 */
const HEARTBEAT = script(`${TOKEN_LUA}
local now = nowMs()
local kind = redis.call('TYPE', KEYS[1])['ok']
local replaced = ''
if kind ~= 'hash' and kind ~= 'none' then
  redis.call('DEL', KEYS[1])
  replaced = kind
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. now)
local all = redis.call('HGETALL', KEYS[1])
local stale = tonumber(ARGV[3])
for i = 1, #all, 2 do
  local at = tonumber(string.match(all[i + 1], '^%d+ (%d+)$'))
  if at == nil or now - at > stale then redis.call('HDEL', KEYS[1], all[i]) end
end
if redis.call('TYPE', KEYS[2])['ok'] ~= 'hash' then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then redis.call('HDEL', KEYS[2], id) end
end
redis.call('PEXPIRE', KEYS[2], stale)
return {now, replaced}
`);

/**
 * KEYS: replicas, drain. Returns {nowMs, n, n registry field/value pairs, drain field/value
 * pairs...}; a key of another type reads as empty.
 */
const LIST_DRAIN = script(`${TOKEN_LUA}
local out = {nowMs(), 0}
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return out end
local all = redis.call('HGETALL', KEYS[1])
out[2] = #all / 2
for i = 1, #all do out[#out + 1] = all[i] end
if redis.call('TYPE', KEYS[2])['ok'] ~= 'hash' then return out end
local drain = redis.call('HGETALL', KEYS[2])
for i = 1, #drain do out[#out + 1] = drain[i] end
return out
`);

/**
 * KEYS: replicas. Returns {nowMs, field, value, field, value...}; no entries while the key has
 * another type (the next heartbeat replaces it).
 */
const LIST_REPLICAS = script(`${TOKEN_LUA}
local out = {nowMs()}
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return out end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do out[#out + 1] = all[i] end
return out
`);

/** EVALSHA, falling back to EVAL once when the server's script cache is empty. */
export async function run(
  client: RedisClient,
  lua: LuaScript,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
): Promise<unknown> {
  try {
    return await client.evalsha(lua.sha, keys.length, ...keys, ...args);
  } catch (err) {
    // After a restart or SCRIPT FLUSH the cache is empty: send the body once.
    if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
      return client.eval(lua.lua, keys.length, ...keys, ...args);
    }
    throw err;
  }
}

/** Raw state as read by readState(). */
export interface StateRead {
  /** Redis type of the key: `none`, `string`, or another type (invalid). */
  readonly type: string;
  readonly length: number;
  /** Compare-and-set token (only when requested, else ''). */
  readonly token: string;
  /** The value; null when absent, not a string or over the size cap. */
  readonly value: string | null;
  /** Redis server time when read, in ms. */
  readonly nowMs: number;
}

/** Outcome of commit(). */
export type CommitResult =
  | { readonly status: 'ok'; readonly historyId: string }
  | { readonly status: 'duplicate' | 'expired' | 'conflict' | 'exists' };

/** One atomic write: see COMMIT. */
export interface CommitRequest {
  readonly mode: 'apply' | 'create' | 'reject' | 'skip';
  readonly token?: string;
  readonly state?: string;
  readonly revision?: number;
  readonly historyMaxLen: number;
  readonly commandId?: string | undefined;
  readonly deadlineMs?: number | undefined;
  readonly fields: readonly string[];
}

/** Typed access to the store's scripts for one namespace. */
export class RedisScripts {
  readonly #keys: RedisKeys;

  constructor(keys: RedisKeys) {
    this.#keys = keys;
  }

  /** Reads the state key with a size cap (bytes) and optionally its CAS token. */
  async readState(client: RedisClient, maxBytes: number, wantToken: boolean): Promise<StateRead> {
    const reply = await run(
      client,
      READ_STATE,
      [this.#keys.state],
      [maxBytes, wantToken ? '1' : '0'],
    );
    if (!Array.isArray(reply) || reply.length < 5)
      throw new Error('unexpected reply to state read');
    const [type, length, token, value, nowMs] = reply as unknown[];
    return {
      type: String(type),
      length: Number(length),
      token: typeof token === 'string' ? token : '',
      value: typeof value === 'string' ? value : null,
      nowMs: Number(nowMs),
    };
  }

  /** Runs COMMIT. */
  async commit(client: RedisClient, request: CommitRequest): Promise<CommitResult> {
    const k = this.#keys;
    const reply = await run(
      client,
      COMMIT,
      [k.state, k.history, k.events, k.commandsCursor],
      [
        request.mode,
        request.token ?? '',
        request.state ?? '',
        request.revision ?? 0,
        request.historyMaxLen,
        request.commandId ?? '',
        request.deadlineMs === undefined ? '' : String(request.deadlineMs),
        ...request.fields,
      ],
    );
    if (!Array.isArray(reply) || typeof reply[0] !== 'string') {
      throw new Error('unexpected reply to commit');
    }
    const status = reply[0];
    if (status === 'ok') return { status, historyId: String(reply[1]) };
    if (
      status === 'duplicate' ||
      status === 'expired' ||
      status === 'conflict' ||
      status === 'exists'
    ) {
      return { status };
    }
    throw new Error(`unexpected commit status ${status}`);
  }

  /** Records this replica's applied revision and drain report; returns Redis time in ms. */
  async heartbeat(
    client: RedisClient,
    replicaId: string,
    revision: number,
    staleMs: number,
    drainReport: string,
  ): Promise<{ nowMs: number; replacedType: string }> {
    const reply = await run(
      client,
      HEARTBEAT,
      [this.#keys.replicas, this.#keys.drain],
      [replicaId, revision, staleMs, drainReport],
    );
    if (!Array.isArray(reply)) throw new Error('unexpected reply to heartbeat');
    return { nowMs: Number(reply[0]), replacedType: String(reply[1] ?? '') };
  }

  /** Redis time and the raw registry entries. */
  async listReplicas(
    client: RedisClient,
  ): Promise<{ nowMs: number; entries: Array<[string, string]> }> {
    const reply = await run(client, LIST_REPLICAS, [this.#keys.replicas], []);
    if (!Array.isArray(reply)) throw new Error('unexpected reply to replica list');
    const entries: Array<[string, string]> = [];
    for (let i = 1; i + 1 < reply.length; i += 2) {
      entries.push([String(reply[i]), String(reply[i + 1])]);
    }
    return { nowMs: Number(reply[0]), entries };
  }

  /** Redis time, the raw registry entries and the raw drain reports. */
  async listDrainReports(client: RedisClient): Promise<{
    nowMs: number;
    registry: Array<[string, string]>;
    reports: Map<string, string>;
  }> {
    const reply = await run(client, LIST_DRAIN, [this.#keys.replicas, this.#keys.drain], []);
    if (!Array.isArray(reply) || reply.length < 2)
      throw new Error('unexpected reply to drain report list');
    const n = Number(reply[1]);
    const registry: Array<[string, string]> = [];
    const reports = new Map<string, string>();
    for (let i = 2; i + 1 < reply.length; i += 2) {
      const pair: [string, string] = [String(reply[i]), String(reply[i + 1])];
      if ((i - 2) / 2 < n) registry.push(pair);
      else reports.set(pair[0], pair[1]);
    }
    return { nowMs: Number(reply[0]), registry, reports };
  }
}

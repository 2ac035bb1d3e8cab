/**
 * Reads the `commands` stream and hands each entry, in stream order, to the store. Exactly-once
 * and in order across replicas comes from the cursor (`commands-cursor`): every replica reads
 * the entries after the cursor in order, and the store's commit script advances the cursor
 * atomically with the state change, so an entry at or below it is a duplicate and is skipped.
 * A crash between apply and cursor advance is impossible (same script); a replica that dies
 * mid-entry simply leaves it to the others. See the issue-4 note for why this replaced a
 * consumer group (a group hands different entries to different replicas: no total order).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';
import type { RedisKeys } from './redis-keys.js';
import type { RedisClient } from './redis-scripts.js';

/** Entries fetched per read. */
const BATCH = 50;
/** Pause after a failed read (Redis unreachable); doubles up to the max. */
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2000;

/** Options of CommandConsumer. */
export interface CommandConsumerOptions {
  /** A dedicated connection (blocking reads would stall other commands). */
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  /** Applies or rejects one entry; rejects only when Redis failed (the entry is retried). */
  readonly handle: (id: string, fields: readonly string[]) => Promise<void>;
  readonly logger: Logger;
  /** XREAD BLOCK time in ms. */
  readonly blockMs: number;
}

/** The command loop of one replica. */
export class CommandConsumer {
  readonly #options: CommandConsumerOptions;
  readonly #abort = new AbortController();
  #loop: Promise<void> | null = null;

  constructor(options: CommandConsumerOptions) {
    this.#options = options;
  }

  /** Starts the loop in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops the loop; resolves when the current entry (if any) is done. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { client, keys, handle, logger, blockMs } = this.#options;
    const signal = this.#abort.signal;
    let backoffMs = BACKOFF_MIN_MS;
    let failing = false;
    while (!signal.aborted) {
      try {
        const cursor = (await client.get(keys.commandsCursor)) ?? '0-0';
        const reply: unknown = await client.xread(
          'COUNT',
          BATCH,
          'BLOCK',
          blockMs,
          'STREAMS',
          keys.commands,
          cursor,
        );
        for (const [id, fields] of streamEntries(reply)) {
          if (signal.aborted) break;
          await handle(id, fields);
        }
        if (failing) logger.info('command consumer resumed');
        failing = false;
        backoffMs = BACKOFF_MIN_MS;
      } catch (err) {
        if (signal.aborted) break;
        if (!failing) logger.warn({ err }, 'command consumer paused: redis unavailable');
        failing = true;
        try {
          await delay(backoffMs, undefined, { signal });
        } catch {
          break;
        }
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
      }
    }
  }
}

/** [id, flat fields] pairs of an XREAD reply with one stream; malformed items are skipped. */
function streamEntries(reply: unknown): Array<[string, string[]]> {
  if (!Array.isArray(reply)) return [];
  const out: Array<[string, string[]]> = [];
  for (const stream of reply as unknown[]) {
    if (!Array.isArray(stream) || !Array.isArray(stream[1])) continue;
    for (const entry of stream[1] as unknown[]) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string') continue;
      const fields = Array.isArray(entry[1]) ? (entry[1] as unknown[]).map((v) => String(v)) : [];
      out.push([entry[0], fields]);
    }
  }
  return out;
}

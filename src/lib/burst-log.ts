/**
 * Rate-limited logging for bursts of similar events (upstream errors): the first event of a
 * window is logged with the number of events suppressed since the previous line, the rest of the
 * window only counted. Timer-free, so it needs no close().
 */

/** Minimal logger surface (a pino Logger fits). */
export interface WarnLogger {
  warn(fields: object, message: string): void;
}

/** Logs at most one line per `windowMs`, carrying how many events it swallowed before. */
export class BurstLog {
  readonly #log: WarnLogger;
  readonly #message: string;
  readonly #windowMs: number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #suppressed = 0;

  constructor(log: WarnLogger, message: string, windowMs = 5000) {
    this.#log = log;
    this.#message = message;
    this.#windowMs = windowMs;
  }

  /** Records one event at `now` (ms); logs `fields` when a new window starts. */
  record(fields: object, now: number): void {
    if (now - this.#windowStart >= this.#windowMs) {
      this.#log.warn(
        { ...fields, suppressedBefore: this.#suppressed, windowMs: this.#windowMs },
        this.#message,
      );
      this.#windowStart = now;
      this.#suppressed = 0;
    } else {
      this.#suppressed += 1;
    }
  }
}

/**
 * Who makes a change, for the audit log: `--actor NAME`, else SWITCHYARD_ACTOR, else `user@host`
 * of the machine the CLI runs on. Sent as the `x-switchyard-actor` header of every change; it
 * names a person in history, it proves nothing (the bearer token is the authorisation).
 */
import { hostname, userInfo } from 'node:os';

/** The header the actor travels in. */
export const ACTOR_HEADER = 'x-switchyard-actor';

/** Longest actor the server records (the command envelope's limit). */
export const MAX_ACTOR_LENGTH = 200;

/** Why `actor` cannot be sent, or null when it can. */
export function actorProblem(actor: string): string | null {
  if (actor.trim() === '') return 'must not be empty';
  if (actor.length > MAX_ACTOR_LENGTH) return `must be at most ${MAX_ACTOR_LENGTH} characters`;
  // A header value: no control characters, and ASCII so every proxy on the way keeps it intact.
  const bad = /[^\x20-\x7e]/.exec(actor);
  if (bad !== null) {
    return `must be printable ASCII (character ${bad.index + 1} is ${JSON.stringify(bad[0])})`;
  }
  return null;
}

/**
 * `user@host` for this process: the login name from the password database (the USER, LOGNAME
 * or USERNAME variable where there is none, as in some containers), and the host name; anything
 * that could not travel in a header becomes `?`.
 */
export function defaultActor(env: NodeJS.ProcessEnv): string {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = undefined;
  }
  user ||= env.USER || env.LOGNAME || env.USERNAME || 'unknown';
  const actor = `${user}@${hostname() || 'localhost'}`.replace(/[^\x20-\x7e]/g, '?');
  return actor.slice(0, MAX_ACTOR_LENGTH);
}

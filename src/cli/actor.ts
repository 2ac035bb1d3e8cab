/**
 * Who makes a change, for the audit log: `--actor NAME`, else SWITCHYARD_ACTOR, else `user@host`
 * of the machine the CLI runs on. Sent as the `x-switchyard-actor` header of every change; it
 * names a person in history, it proves nothing (the bearer token is the authorisation).
 */
import { hostname, userInfo } from 'node:os';
import { actorProblem, MAX_ACTOR_LENGTH } from '../table/validate.js';

/** The header the actor travels in. */
export const ACTOR_HEADER = 'x-switchyard-actor';

// One rule for the CLI and the server (1-64 printable ASCII characters): a name the CLI sends is
// one the server records.
export { actorProblem, MAX_ACTOR_LENGTH };

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

/**
 * What the admin server and its routes use, all created and closed by the app. A file of its own
 * so the routes and admin-server.ts both import it and the import arrows point one way.
 */
import type { ControlStore } from '../control/control-store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RolloutDriver } from '../rollout/rollout-driver.js';
import type { ProxyView } from './proxy-view.js';

/** What the admin server uses; all created and closed by its owner. */
export interface AdminDeps {
  logger: Logger;
  metrics: Metrics;
  store: ControlStore;
  proxy: ProxyView;
  /** False once shutdown began (readiness turns 503). */
  isReady: () => boolean;
  /** The rollout engine (SPEC §9); without one no rollout can be started. */
  rollouts?: RolloutDriver | undefined;
  /** This replica's id, as in /v1/replicas (GET /v1/state names it as `replica`). */
  replicaId?: string | undefined;
  /**
   * Resolves once this replica's data plane routes by `revision` (its worker processes, SPEC
   * §13); a change answers only then. Absent: applying is synchronous.
   */
  awaitApplied?: ((revision: number) => Promise<void>) | undefined;
}

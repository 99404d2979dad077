/**
 * What a pool of connections that a storage opened itself does after one of
 * its calls timed out: each of its idle connections runs one cheap
 * statement, all at once, so that every connection that went silent
 * (half-open: the server, or a NAT or load balancer between, forgot it
 * without a FIN or RST) is found and dropped within one more timeout, not
 * one failed update at a time. The pools drop a connection whose statement
 * timed out (pg's `query_timeout`, `storages/mysql/owned_pool.ts`).
 *
 * @module
 */

/**
 * A check to call on every timeout: `probe()` run `count()` times at once
 * (none when it is 0: no idle connection to check, and no new one is opened
 * for it); one round at a time, the calls made while a round runs are
 * dropped. Probe failures are absorbed.
 *
 * @example
 * ```ts ignore
 * const check = poolCheck(() => pool.query("SELECT 1"), () => pool.idleCount);
 * check(); // after a call timed out
 * ```
 *
 * @param probe Runs one cheap statement on a connection of the pool.
 * @param count How many connections to check now (the idle ones).
 */
export function poolCheck(probe: () => Promise<unknown>, count: () => number): () => void {
  let running = false;
  return () => {
    if (running) return;
    const n = Math.min(100, Math.floor(count()) || 0);
    if (n <= 0) return;
    running = true;
    const probes = Array.from({ length: n }, () => {
      try {
        return probe();
      } catch (err) {
        return Promise.reject(err);
      }
    });
    void Promise.allSettled(probes).then(() => (running = false));
  };
}

/**
 * The pool `MysqlStorage.connect` opens, with connections that cannot go
 * silent for good: every statement runs on a connection of its own from the
 * pool, and a connection whose statement has gone unanswered for two of the
 * storage's timeouts is torn down (its socket destroyed; the pool opens a
 * new one when it is needed). Then every idle connection runs `SELECT 1` at
 * once, so that the other silent ones are found within two more timeouts.
 * Without it, a half-open TCP connection (the server, or a NAT or load
 * balancer between, forgot it without a FIN or RST) would stay in the pool,
 * and every statement sent over it would time out until the kernel's
 * keepalive noticed, many minutes later. mysql2's own statement timeout does
 * not help: it fails the statement and keeps the connection. Two timeouts,
 * not one, so that a statement that is only slow (a cold connection's
 * prepare and execute over a slow link) does not cost its connection.
 *
 * `end()` tears down the connections whose statements are still running
 * and waits at most 2 s for the pool: mysql2's own `end()` waits for every
 * statement in flight, which on a silent connection is for ever.
 *
 * @module
 */

import { backgroundTimeout } from "../../src/timers.ts";
import { poolCheck } from "../shared/pool_check.ts";
import type { MysqlParameter, MysqlQueryable, MysqlStatement } from "./client.ts";

/** What is used of a connection of a `mysql2/promise` pool. */
export interface PooledConnection extends MysqlQueryable {
  release(): void;
  destroy(): void;
  /** mysql2's connection under the promise one, and its socket. */
  readonly connection?: { readonly stream?: { destroy(): void } };
}

/** What is used of a `mysql2/promise` pool. */
export interface Pool {
  getConnection(): Promise<PooledConnection>;
  end(): Promise<void>;
  /** mysql2's pool of the callback API under the promise one (its idle connections). */
  readonly pool?: { readonly _freeConnections?: { readonly length: number } };
}

/** How long a statement may go unanswered before its connection is torn down, in timeouts. */
export const SILENT_TIMEOUTS = 2;
/** How long `end()` waits for the pool to close, ms. */
const END_WITHIN_MS = 2000;

/** Tears `connection` down at once: mysql2's `destroy()` only half-closes its socket. */
function tearDown(connection: PooledConnection): void {
  try {
    connection.destroy();
    connection.connection?.stream?.destroy();
  } catch {
    // torn down already
  }
}

/**
 * `pool` as the storage's handle (see the module doc): statements as
 * `pool.execute` and `pool.query` run them. `Infinity`: no connection is
 * ever torn down for silence.
 *
 * @example
 * ```ts ignore
 * const db = guardedPool(mysql.createPool({ uri, connectTimeout: 20_000 }), 10_000);
 * ```
 *
 * @param pool A pool of `mysql2/promise`.
 * @param timeout The storage's timeout in ms.
 */
export function guardedPool(
  pool: Pool,
  timeout: number,
): MysqlQueryable & { end(): Promise<void> } {
  const running = new Set<PooledConnection>();
  let ending = false;
  const run = async <R>(use: (connection: PooledConnection) => Promise<R>): Promise<R> => {
    const connection = await pool.getConnection();
    running.add(connection);
    const timer = timeout === Infinity ? undefined : backgroundTimeout(() => {
      tearDown(connection);
      if (!ending) check();
    }, timeout * SILENT_TIMEOUTS);
    try {
      return await use(connection);
    } finally {
      clearTimeout(timer);
      running.delete(connection);
      // Safe after a tear-down: the pool has let go of a destroyed connection.
      connection.release();
    }
  };
  // After a connection was torn down, every idle one is tried at once.
  const check = poolCheck(
    () => run((connection) => connection.query({ sql: "SELECT 1", rowsAsArray: true })),
    () => pool.pool?._freeConnections?.length ?? 0,
  );
  return {
    execute: (statement: MysqlStatement, values: MysqlParameter[]) =>
      run((connection) => connection.execute(statement, values)),
    query: (statement: MysqlStatement) => run((connection) => connection.query(statement)),
    end: async () => {
      ending = true;
      for (const connection of running) tearDown(connection);
      // A pool whose connections broke in an outage rejects its end() with
      // the driver's "Connection lost"; it is closed all the same. An idle
      // connection whose peer went silent never answers the quit.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        pool.end().catch(() => {}),
        new Promise<void>((resolve) => (timer = backgroundTimeout(resolve, END_WITHIN_MS))),
      ]);
      clearTimeout(timer);
    },
  };
}

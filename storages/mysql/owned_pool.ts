/**
 * The pool `MysqlStorage.connect` opens, with connections that cannot go
 * silent for good: every statement runs on a connection of its own from the
 * pool, and a connection whose statement has not answered a short while
 * after the storage's timeout gave it up is destroyed (the pool opens a new
 * one when it is needed). Without it, a half-open TCP connection (the
 * server, or a NAT or load balancer between, forgot it without a FIN or RST)
 * would stay in the pool, and every statement sent over it would time out
 * until the kernel's keepalive noticed, many minutes later. mysql2's own
 * statement timeout does not help: it fails the statement and keeps the
 * connection.
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
}

/** What is used of a `mysql2/promise` pool. */
export interface Pool {
  getConnection(): Promise<PooledConnection>;
  end(): Promise<void>;
  /** mysql2's pool of the callback API under the promise one (its idle connections). */
  readonly pool?: { readonly _freeConnections?: { readonly length: number } };
}

/** How long after the storage's timeout a silent connection is destroyed, ms. */
export const SILENT_GRACE_MS = 50;

/**
 * `pool` as the storage's handle: statements as `pool.execute` and
 * `pool.query` run them, with a connection destroyed when its statement has
 * not answered within `timeout` (plus {@link SILENT_GRACE_MS}, so that the
 * storage's own timeout error comes first). `Infinity`: never.
 *
 * @example
 * ```ts ignore
 * const db = guardedPool(mysql.createPool({ uri, connectTimeout: 10_000 }), 10_000);
 * ```
 *
 * @param pool A pool of `mysql2/promise`.
 * @param timeout The storage's timeout in ms.
 */
export function guardedPool(
  pool: Pool,
  timeout: number,
): MysqlQueryable & { end(): Promise<void>; check(): void } {
  const run = async <R>(use: (connection: PooledConnection) => Promise<R>): Promise<R> => {
    const connection = await pool.getConnection();
    const timer = timeout === Infinity
      ? undefined
      : backgroundTimeout(() => connection.destroy(), timeout + SILENT_GRACE_MS);
    try {
      return await use(connection);
    } finally {
      clearTimeout(timer);
      // Safe after destroy: the pool has let go of a destroyed connection.
      connection.release();
    }
  };
  // After a timeout, every idle connection is tried at once (see shared/pool_check.ts).
  const check = poolCheck(
    () => run((connection) => connection.query({ sql: "SELECT 1", rowsAsArray: true })),
    () => pool.pool?._freeConnections?.length ?? 0,
  );
  return {
    check,
    execute: (statement: MysqlStatement, values: MysqlParameter[]) =>
      run((connection) => connection.execute(statement, values)),
    query: (statement: MysqlStatement) => run((connection) => connection.query(statement)),
    // A pool whose connections broke in an outage rejects its end() with the
    // driver's "Connection lost"; it is closed all the same.
    end: () => pool.end().catch(() => {}),
  };
}

/**
 * Round-trip counters for the multi-process benchmark, wrapped around the
 * database client itself (not around a storage), so that whatever a storage
 * or an adapter sends is counted where it leaves the process: one call of
 * the client's command or statement method is one round trip.
 *
 * - Redis (node-redis, ioredis, either's cluster client): `sendCommand`,
 *   through which every command of these clients passes.
 * - PostgreSQL (`pg`): `query`.
 * - MySQL/MariaDB (`mysql2/promise`): `execute` and `query`.
 * - Deno KV: `get`, `getMany`, `list` (one per call, whatever its batches)
 *   and `commit` of an atomic operation.
 * - SQLite (`node:sqlite`): every run/get/all/iterate of a prepared
 *   statement, and `exec`. In-process, so not a network round trip; it is
 *   the number of statements SQLite executes.
 *
 * @module
 */

/** A counter of round trips. */
export class Counter {
  /** Round trips so far. */
  n = 0;
}

/**
 * Counts the commands of a Redis client by replacing its `sendCommand` on
 * the instance (node-redis v4/v5 clients and cluster clients, ioredis
 * `Redis` and `Cluster`: every command goes through it).
 */
export function countRedis<C extends object>(client: C, counter: Counter): C {
  const c = client as unknown as { sendCommand: (...args: unknown[]) => unknown };
  const original = c.sendCommand;
  if (typeof original !== "function") throw new TypeError("not a Redis client: no sendCommand");
  c.sendCommand = function (this: unknown, ...args: unknown[]) {
    counter.n++;
    return original.apply(this, args);
  };
  return client;
}

/** A `pg` pool or client seen through its `query` only, counted. */
export function countPg<P extends { query: (...args: never[]) => unknown }>(
  pool: P,
  counter: Counter,
): { query: P["query"] } {
  return {
    query: ((...args: never[]) => {
      counter.n++;
      return pool.query(...args);
    }) as P["query"],
  };
}

/** A `mysql2/promise` pool seen through its `execute` and `query`, counted. */
export function countMysql<
  P extends { execute: (...args: never[]) => unknown; query: (...args: never[]) => unknown },
>(pool: P, counter: Counter): { execute: P["execute"]; query: P["query"] } {
  return {
    execute: ((...args: never[]) => {
      counter.n++;
      return pool.execute(...args);
    }) as P["execute"],
    query: ((...args: never[]) => {
      counter.n++;
      return pool.query(...args);
    }) as P["query"],
  };
}

/** Methods of an object, bound to it, with `counted` ones counting each call. */
function countingProxy<T extends object>(
  target: T,
  counted: ReadonlySet<PropertyKey>,
  counter: Counter,
  wrap: (name: PropertyKey, result: unknown) => unknown = (_n, r) => r,
): T {
  return new Proxy(target, {
    get(t, name) {
      const value = Reflect.get(t, name, t);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (counted.has(name)) counter.n++;
        return wrap(name, value.apply(t, args));
      };
    },
  });
}

const KV_READS = new Set<PropertyKey>(["get", "getMany", "list", "set", "delete"]);
const KV_COMMIT = new Set<PropertyKey>(["commit"]);

/** A `Deno.Kv` whose reads and atomic commits are counted. */
export function countKv(kv: Deno.Kv, counter: Counter): Deno.Kv {
  // The builder methods of an atomic operation return the operation: keep
  // wrapping it, so that a chained `.commit()` is counted too.
  const operation = (op: unknown): unknown =>
    countingProxy(op as object, KV_COMMIT, counter, (n, r) => n === "commit" ? r : operation(r));
  return countingProxy(kv, KV_READS, counter, (n, r) => n === "atomic" ? operation(r) : r);
}

const STATEMENT_RUNS = new Set<PropertyKey>(["run", "get", "all", "iterate"]);
const DB_EXEC = new Set<PropertyKey>(["exec"]);

/** A `node:sqlite` database whose statement executions are counted. */
export function countSqlite<D extends object>(db: D, counter: Counter): D {
  return countingProxy(
    db,
    DB_EXEC,
    counter,
    (name, result) =>
      name === "prepare" ? countingProxy(result as object, STATEMENT_RUNS, counter) : result,
  );
}

/**
 * One SQLite transaction per batch when writing into a SQLite file. Every
 * statement of `SqliteStorage` commits on its own, and a commit waits for
 * the disk (an fsync, several milliseconds): a copy of 20,000 sessions
 * into a file in the default journal mode would take minutes. So the
 * writes of a batch share one transaction, begun by its first write and
 * committed when the batch is done (the copy functions report progress
 * after each batch). A failure or Ctrl-C loses at most the batch in flight,
 * which a rerun with `--skip-existing` writes again.
 *
 * @module
 */

import type { StorageAdapter } from "../storage.ts";

/** The part of a SQLite handle used here. */
export interface SqliteHandle {
  exec(sql: string): unknown;
}

/** The methods that write. */
const WRITES = new Set(["write", "writeIfVersion", "delete", "deleteIfVersion"]);

/**
 * Batches the writes made through {@link BatchTransactions.wrap} into
 * transactions that {@link BatchTransactions.commit} ends.
 *
 * @example
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import { SqliteStorage } from "../../storages/sqlite.ts";
 * import { BatchTransactions } from "./transactions.ts";
 *
 * const db = new DatabaseSync(":memory:");
 * const batches = new BatchTransactions(db);
 * const storage = batches.wrap(new SqliteStorage<{ a: number }>(db));
 * storage.write("1", { a: 1 });
 * storage.write("2", { a: 2 });
 * batches.commit(); // both in one transaction
 * ```
 */
export class BatchTransactions {
  readonly #db: SqliteHandle;
  #open = false;

  /** @param db The handle the storage uses. */
  constructor(db: SqliteHandle) {
    this.#db = db;
  }

  /** `storage` with every write made inside the current batch's transaction. */
  wrap<T>(storage: StorageAdapter<T>): StorageAdapter<T> {
    return new Proxy(storage, {
      get: (target, name, receiver) => {
        const value = Reflect.get(target, name, receiver);
        if (typeof value !== "function") return value;
        if (typeof name !== "string" || !WRITES.has(name)) return value.bind(target);
        return (...args: unknown[]) => {
          this.#begin();
          return value.apply(target, args);
        };
      },
    });
  }

  #begin(): void {
    if (this.#open) return;
    this.#db.exec("BEGIN IMMEDIATE");
    this.#open = true;
  }

  /** Commits the batch's transaction, if one is open. */
  commit(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#db.exec("COMMIT");
  }
}

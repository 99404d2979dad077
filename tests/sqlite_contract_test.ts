/**
 * The storage contract on SqliteStorage over `node:sqlite`, on a temporary
 * database file, once in SQLite's default rollback-journal mode and once in
 * WAL mode. Every instance has a handle of its own on the file (as another
 * process would) and a table of its own; an instance sharing another's
 * namespace opens one more handle on the same file and uses the same table.
 */
import type { SqliteStorage } from "../storages/sqlite.ts";
import { storageContract } from "./contract.ts";
import { SqliteFiles } from "./sqlite_env.ts";

for (const wal of [false, true]) {
  const files = new SqliteFiles();
  const path = files.path(wal ? "contract-wal.sqlite" : "contract.sqlite");
  let n = 0;
  storageContract(`SqliteStorage (node:sqlite, ${wal ? "WAL" : "rollback journal"})`, {
    create: (options) => {
      const shared = options?.sharing as SqliteStorage<unknown> | undefined;
      return files.storage<unknown>(path, {
        table: shared?.table ?? `contract_${++n}`,
        ttl: options?.ttl,
      }, wal);
    },
    cleanup: () => files.cleanup(),
    largeValueBytes: 8 * 1024 * 1024,
    ttl: true,
    ttlMs: 1000,
    lifetime: 1.5,
  });
}

import { PostgresStorage } from "../storages/postgres.ts";
import { storageContract } from "./contract.ts";
import { admin, DATABASE_URL, dropTables, RUN, whenReachable } from "./postgres_setup.ts";

const created: PostgresStorage<unknown>[] = [];
let n = 0;

whenReachable("PostgresStorage: storage contract", () =>
  storageContract("PostgresStorage", {
    // Every instance gets a table of its own, dropped by cleanup.
    create: (options) => {
      const storage = PostgresStorage.connect<unknown>(DATABASE_URL, {
        table: `${RUN}_contract_${++n}`,
        ttl: options?.ttl,
      });
      created.push(storage);
      return storage;
    },
    async cleanup() {
      const db = await admin();
      try {
        for (const storage of created) {
          await storage.close();
          await dropTables(db, storage);
        }
      } finally {
        await db.end();
      }
    },
    largeValueBytes: 8 * 1024 * 1024,
    ttl: true,
    ttlMs: 1000,
  }));

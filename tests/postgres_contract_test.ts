import { PostgresStorage } from "../storages/postgres.ts";
import { storageContract } from "./contract.ts";
import { admin, DATABASE_URL, dropTables, RUN, whenReachable } from "./postgres_setup.ts";

const created: PostgresStorage<unknown>[] = [];
let n = 0;

for (const valueType of ["jsonb", "json"] as const) {
  whenReachable(
    `PostgresStorage (${valueType}): storage contract`,
    () =>
      storageContract(`PostgresStorage (${valueType})`, {
        // Every instance gets a table of its own, dropped by cleanup.
        // An instance asked to share another's namespace uses its table.
        create: (options) => {
          const shared = options?.sharing as PostgresStorage<unknown> | undefined;
          const storage = PostgresStorage.connect<unknown>(DATABASE_URL, {
            table: shared?.table ?? `${RUN}_contract_${++n}`,
            ttl: options?.ttl,
            valueType,
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
        // Expiries are set 1.5 TTLs ahead and renewed once less than a TTL is left.
        lifetime: 1.5,
        normalizesKeyOrder: valueType === "jsonb",
        refusesNulAndLoneSurrogates: valueType === "jsonb",
      }),
  );
}

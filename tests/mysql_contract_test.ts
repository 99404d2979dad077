import { MysqlStorage } from "../storages/mysql.ts";
import { maxValueBytes } from "../storages/mysql/limits.ts";
import { storageContract } from "./contract.ts";
import {
  admin,
  dropTables,
  maxAllowedPacket,
  MYSQL_URL,
  mysqlAvailable,
  RUN,
  whenReachable,
} from "./mysql_setup.ts";

const created: MysqlStorage<unknown>[] = [];
let n = 0;

// The server's own limit on one statement decides the largest session.
let packet = 16 * 1024 * 1024;
if (mysqlAvailable) {
  const db = admin();
  try {
    packet = await maxAllowedPacket(db);
  } finally {
    await db.end();
  }
}

whenReachable(
  "MysqlStorage: storage contract",
  () =>
    storageContract("MysqlStorage", {
      // Every instance gets a table of its own, dropped by cleanup. An
      // instance asked to share another's namespace uses its table.
      create: (options) => {
        const shared = options?.sharing as MysqlStorage<unknown> | undefined;
        const storage = MysqlStorage.connect<unknown>(MYSQL_URL, {
          table: shared?.table ?? `${RUN}_contract_${++n}`,
          ttl: options?.ttl,
        });
        created.push(storage);
        return storage;
      },
      async cleanup() {
        const db = admin();
        try {
          for (const storage of created) {
            await storage.close();
            await dropTables(db, storage);
          }
        } finally {
          await db.end();
        }
      },
      largeValueBytes: Math.min(8 * 1024 * 1024, maxValueBytes(packet)),
      maxValueBytes: maxValueBytes(packet),
      ttl: true,
      ttlMs: 1000,
      // Writes and renewals store 1.5 TTLs, renewed once less than a TTL is left.
      lifetime: 1.5,
    }),
);

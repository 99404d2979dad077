/**
 * The MySQL/MariaDB backend of the reliability tests: a storage with a pool
 * of its own on a table of this run, an admin pool for raw counts, and the
 * tables dropped at the end. Gated like every MySQL test: skipped loudly
 * locally without a server, failing on CI.
 */
import { MysqlStorage } from "../storages/mysql.ts";
import type { Backend, Opened } from "./fixtures/reliability_backends.ts";
import { admin, dropTables, id, MYSQL_URL, mysqlTest, RUN } from "./mysql_setup.ts";

let tables = 0;

/** MySQL/MariaDB at MYSQL_URL. */
export const mysqlBackend: Backend = {
  name: "mysql",
  test: mysqlTest,
  open<T>() {
    const table = `${RUN}_rel_${++tables}`;
    const storage = MysqlStorage.connect<T>(MYSQL_URL, { table });
    const db = admin();
    const opened: Opened<T> = {
      storage,
      async rawCount() {
        try {
          const [rows] = await db.query(`SELECT COUNT(*) AS n FROM ${id(table)}`);
          return Number((rows as { n: number }[])[0].n);
        } catch (err) {
          if ((err as { errno?: number }).errno === 1146) return 0; // not created yet
          throw err;
        }
      },
      async close() {
        try {
          await storage.close();
          await dropTables(db, storage);
        } finally {
          await db.end();
        }
      },
    };
    return Promise.resolve(opened);
  },
};

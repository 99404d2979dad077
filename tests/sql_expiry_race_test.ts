/**
 * PostgreSQL and MySQL read a session with a `SELECT` and renew its expiry
 * with a second statement when due. Review findings: when the old expiry
 * passed between the two (or a purge deleted the row there), the session
 * handed out was already expired, and the update's save failed with a false
 * SessionConflictError; renewing the expired row regardless brought back a
 * session that another process had already seen gone. Now a renewal that
 * finds its version gone makes the driver read again: the session is
 * expired, the update starts from `initial()`, and its save lands. Here the
 * expiry (or the purge) is made to happen exactly between the two statements.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { session, type SessionFlavor } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import type { PostgresQueryable } from "../storages/postgres/types.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import type { MysqlParameter, MysqlQueryable, MysqlStatement } from "../storages/mysql/client.ts";
import { pgTest, RUN as PG_RUN, withDb } from "./postgres_setup.ts";
import { id, MysqlFixture, mysqlTest } from "./mysql_setup.ts";
import { createHarness, message } from "./helpers/bot.ts";

type C = Context & SessionFlavor<{ n: number }>;
type Gap = "expires" | "is purged";
const GAPS: Gap[] = ["expires", "is purged"];

/** One update through a real Bot, whose read's renewal comes too late. */
async function scenario(storage: PostgresStorage<unknown> | MysqlStorage<unknown>) {
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ n: 0 }), storage: storage as never }));
  h.bot.on("message", (ctx) => void ctx.session.n++);
  await h.send(message(1));
  assert.deepEqual(h.errors, [], "no false conflict");
  // The stored { n: 5 } expired before its renewal: the update started anew.
  assert.deepEqual(await storage.read("1"), { n: 1 });
}

/** Whether `sql` is the renewal statement (an UPDATE of the expiry alone). */
function isRenewal(sql: string): boolean {
  return sql.startsWith("UPDATE") && /expires_at`? =/.test(sql) && !/value`? =/.test(sql);
}

function pg(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

for (const gap of GAPS) {
  pgTest(
    `PostgresStorage: a session that ${gap} between read and renewal is gone, and the update saves`,
    async () => {
      await withDb(async (db, pool, storages) => {
        const table = `${PG_RUN}_race_${gap === "expires" ? "e" : "p"}`;
        let raceNext = false;
        const racing: PostgresQueryable = {
          async query(text: string, values?: unknown[]) {
            if (raceNext && isRenewal(text)) {
              raceNext = false;
              await db.query(
                gap === "expires"
                  ? `UPDATE ${pg(table)} SET expires_at = now() - interval '1 millisecond'`
                  : `DELETE FROM ${pg(table)}`,
              );
            }
            return await pool.query(text, values);
          },
        };
        const storage = new PostgresStorage<unknown>(racing, { table, ttl: 60_000 });
        storages.push(storage);
        await storage.write("1", { n: 5 });
        // Due for renewal: less than a TTL left.
        await db.query(`UPDATE ${pg(table)} SET expires_at = now() + interval '10 seconds'`);
        raceNext = true;
        await scenario(storage);
      });
    },
  );

  mysqlTest(
    `MysqlStorage: a session that ${gap} between read and renewal is gone, and the update saves`,
    async () => {
      const f = new MysqlFixture();
      try {
        const table = f.table("race");
        let raceNext = false;
        const racing: MysqlQueryable = {
          async execute(statement: MysqlStatement, values: MysqlParameter[]) {
            if (raceNext && isRenewal(statement.sql)) {
              raceNext = false;
              await f.admin.query(
                gap === "expires"
                  ? `UPDATE ${id(table)} SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND`
                  : `DELETE FROM ${id(table)}`,
              );
            }
            return await f.pool.execute(statement as never, values as never);
          },
          query: (statement: MysqlStatement) => f.pool.query(statement as never),
        };
        const storage = f.track(new MysqlStorage<unknown>(racing, { table, ttl: 60_000 }));
        await storage.write("1", { n: 5 });
        await f.admin.query(
          `UPDATE ${id(table)} SET expires_at = UTC_TIMESTAMP(3) + INTERVAL 10 SECOND`,
        );
        raceNext = true;
        await scenario(storage);
      } finally {
        await f.cleanup();
      }
    },
  );
}

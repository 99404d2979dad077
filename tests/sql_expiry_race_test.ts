/**
 * PostgreSQL and MySQL read a session with a `SELECT` and renew its expiry
 * with a second statement when due. Review finding: when the old expiry
 * passed between the two, the renewal (which checked that the row was still
 * live) did nothing, so the session handed out was already expired and the
 * update's save failed with a false SessionConflictError. Here the expiry is
 * made to pass exactly between the two statements.
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

/** Saves through a real Bot after a read whose renewal comes too late. */
async function scenario(storage: PostgresStorage<unknown> | MysqlStorage<unknown>) {
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ n: 0 }), storage: storage as never }));
  h.bot.on("message", (ctx) => void ctx.session.n++);
  await h.send(message(1));
  await h.send(message(1));
  assert.deepEqual(h.errors, []);
  assert.deepEqual(await storage.read("1"), { n: 2 });
}

pgTest(
  "PostgresStorage: a session whose expiry passes between read and renewal still saves",
  async () => {
    await withDb(async (db, pool, storages) => {
      const table = `${PG_RUN}_race`;
      let expireNext = false;
      // Before each renewal statement, the row expires (as if the read came just in time).
      const racing: PostgresQueryable = {
        async query(text: string, values?: unknown[]) {
          if (
            expireNext && text.startsWith("UPDATE") && text.includes("expires_at =") &&
            !text.includes("value =")
          ) {
            await db.query(`UPDATE ${pg(table)} SET expires_at = now() - interval '1 millisecond'`);
          }
          return await pool.query(text, values);
        },
      };
      const storage = new PostgresStorage<unknown>(racing, { table, ttl: 60_000 });
      storages.push(storage);
      await storage.write("1", { n: 0 });
      // Due for renewal: less than a TTL left.
      await db.query(`UPDATE ${pg(table)} SET expires_at = now() + interval '10 seconds'`);
      expireNext = true;
      await scenario(storage);
    });
  },
);

function pg(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

mysqlTest(
  "MysqlStorage: a session whose expiry passes between read and renewal still saves",
  async () => {
    const f = new MysqlFixture();
    try {
      const table = f.table("race");
      let expireNext = false;
      const racing: MysqlQueryable = {
        async execute(statement: MysqlStatement, values: MysqlParameter[]) {
          const sql = statement.sql;
          if (
            expireNext && sql.startsWith("UPDATE") && sql.includes("`expires_at` =") &&
            !sql.includes("`value` =")
          ) {
            await f.admin.query(
              `UPDATE ${id(table)} SET expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND`,
            );
          }
          return await f.pool.execute(statement as never, values as never);
        },
        query: (statement: MysqlStatement) => f.pool.query(statement as never),
      };
      const storage = f.track(new MysqlStorage<unknown>(racing, { table, ttl: 60_000 }));
      await storage.write("1", { n: 0 });
      await f.admin.query(
        `UPDATE ${id(table)} SET expires_at = UTC_TIMESTAMP(3) + INTERVAL 10 SECOND`,
      );
      expireNext = true;
      await scenario(storage);
    } finally {
      await f.cleanup();
    }
  },
);

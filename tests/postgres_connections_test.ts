/**
 * Contended unconditional writes on PostgreSQL all succeed, even when the
 * server refuses some of the connections their pools open (issue 16,
 * "concurrent unconditional writes of one key all succeed"). Writes of one
 * key wait on its row lock, so each pool soon holds all its connections and
 * asks for more; past the server's limit (`max_connections`, or a role's
 * connection limit as here) PostgreSQL answers "too many clients" (53300)
 * before the statement runs, which the storage retries for a while.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { session, type SessionFlavor } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import type { PostgresQueryable } from "../storages/postgres/types.ts";
import { admin, DATABASE_URL, id, pgTest, RUN, withDb } from "./postgres_setup.ts";
import { createHarness, message } from "./helpers/bot.ts";

pgTest("PostgresStorage: writes wait out connections the server refuses", async () => {
  const db = await admin();
  const role = `${RUN}_few`;
  await db.query(`CREATE ROLE ${id(role)} LOGIN CONNECTION LIMIT 3`);
  await db.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${id(role)}`);
  const url = new URL(DATABASE_URL);
  url.username = role;
  const table = `${RUN}_few`;
  // Two processes with pools of 10 over 3 allowed connections.
  const processes = [0, 1].map(() => PostgresStorage.connect<{ i: number }>(url.href, { table }));
  try {
    await processes[0].write("warm", { i: -1 });
    const written = Array.from({ length: 120 }, (_, i) => ({ i }));
    const results = await Promise.allSettled(
      written.map((value, i) => processes[i % 2].write("contended", value)),
    );
    assert.deepEqual(results.filter((r) => r.status === "rejected"), []);
    const stored = await processes[1].read("contended");
    assert.ok(written.some((w) => w.i === stored?.i), "a whole write");
  } finally {
    for (const storage of processes) await storage.close();
    await db.query(`DROP OWNED BY ${id(role)}`);
    await db.query(`DROP ROLE ${id(role)}`);
    await db.end();
  }
});

pgTest(
  "PostgresStorage: a connection lost while creating the table fails the update as a read, and the next one creates it",
  async () => {
    // CI finding: a backend terminated during the first-use CREATE TABLE came
    // out as "could not create the session table ... check that the user may
    // create tables", which sent users after the wrong fix.
    await withDb(async (_db, pool, storages) => {
      let cut = true;
      const flaky: PostgresQueryable = {
        query(text: string, values?: unknown[]) {
          if (cut && text.includes("CREATE TABLE")) {
            cut = false;
            const err = Object.assign(
              new Error("terminating connection due to administrator command"),
              {
                code: "57P01",
              },
            );
            return Promise.reject(err);
          }
          return pool.query(text, values);
        },
      };
      const storage = new PostgresStorage<unknown>(flaky, { table: `${RUN}_cut` });
      storages.push(storage);
      const h = createHarness<Context & SessionFlavor<{ n: number }>>();
      h.bot.use(session({ initial: () => ({ n: 0 }), storage: storage as never }));
      h.bot.on("message", (ctx) => void ctx.session.n++);
      await h.send(message(1));
      assert.equal(h.errors.length, 1);
      assert.match(
        String(h.errors[0].error),
        /Could not read the session of key "1".*terminating connection/s,
      );
      await h.send(message(1));
      assert.equal(h.errors.length, 1, "the next update created the table and saved");
      assert.deepEqual(await storage.read("1"), { n: 1 });
    });
  },
);

/**
 * Changing the TTL of a PostgreSQL table's sessions (issue 16, "removing ttl
 * does not stop expiry"), row by row: a storage without a TTL clears the
 * expiry of each session it reads, a storage with one gives an expiry to
 * each session without one that it reads; in the read's own statement,
 * without changing the version, the value or `updated_at`. `has` and
 * listings change nothing.
 */
import assert from "node:assert/strict";
import { PostgresStorage } from "../storages/postgres.ts";
import { collect, DATABASE_URL, id, pgTest, Recorder, RUN, withDb } from "./postgres_setup.ts";
import { sleep } from "./helpers/bot.ts";

pgTest("PostgresStorage: reads apply the TTL configured now", async (t) => {
  await withDb(async (db, pool, storages) => {
    const table = `${RUN}_ttl_change`;
    const rec = new Recorder(pool);
    const untimed = new PostgresStorage<unknown>(rec, { table });
    const timed = new PostgresStorage<unknown>(rec, { table, ttl: 60_000 });
    storages.push(untimed);
    const row = async (key: string) =>
      (await db.query(
        `SELECT value::text AS v, version::text AS version, expires_at, updated_at,
           xmin::text AS xmin FROM ${id(table)} WHERE key = $1`,
        [key],
      )).rows[0];

    await t.step(
      "without a TTL, a read clears a leftover expiry (a second statement, once)",
      async () => {
        await timed.write("k", { n: 1 });
        const before = await row("k");
        assert.ok(before.expires_at !== null);
        rec.texts.length = 0;
        assert.equal(await untimed.has("k"), true);
        assert.deepEqual(await collect(untimed.readAllEntries()), [["k", { n: 1 }]]);
        assert.deepEqual(await row("k"), before, "has and listings change nothing");
        rec.texts.length = 0;
        assert.deepEqual(await untimed.readVersioned("k"), {
          value: { n: 1 },
          version: before.version,
        });
        // A plain SELECT, then the clearing UPDATE (a data-modifying read would
        // cost every read about 0.3 ms more); the next read is one SELECT.
        assert.equal(rec.texts.length, 2, "a SELECT and the clearing UPDATE");
        rec.texts.length = 0;
        await untimed.read("k");
        assert.equal(rec.texts.length, 1, "cleared once, then one statement");
        const after = await row("k");
        assert.equal(after.expires_at, null, "the expiry is gone");
        assert.equal(after.version, before.version, "the version is the same");
        assert.equal(after.v, before.v);
        assert.deepEqual(after.updated_at, before.updated_at, "updated_at unchanged");
        assert.ok(typeof await timed.writeIfVersion("k", { n: 2 }, before.version) === "string");
      },
    );

    await t.step("without a TTL, a read of a session without expiry writes nothing", async () => {
      await untimed.write("plain", { n: 1 });
      const before = await row("plain");
      assert.equal(before.expires_at, null);
      assert.deepEqual(await untimed.read("plain"), { n: 1 });
      assert.deepEqual(await row("plain"), before, "not even a new row version (xmin)");
    });

    await t.step("with a TTL, a read gives a session without expiry one", async () => {
      const before = await row("plain");
      assert.deepEqual(await timed.readVersioned("plain"), {
        value: { n: 1 },
        version: before.version,
      });
      const after = await row("plain");
      assert.ok(after.expires_at !== null, "it has an expiry now");
      const left = after.expires_at.getTime() - Date.now();
      assert.ok(left > 85_000 && left <= 90_000, `1.5 TTLs ahead (${left})`);
      assert.equal(after.version, before.version, "the version is the same");
      assert.deepEqual(after.updated_at, before.updated_at, "updated_at unchanged");
      assert.ok(typeof await untimed.writeIfVersion("plain", 2, before.version) === "string");
      assert.equal((await row("plain")).expires_at, null, "a write without a TTL clears it too");
    });

    await t.step("an expiry is cleared only on the version that was read", async () => {
      // A write landing between the read's SELECT and its renewal: the
      // renewal re-checks the version, finds it replaced, and the read reads
      // again instead of handing out what is no longer stored.
      const app = `${RUN}_ttl_race`;
      const url = new URL(DATABASE_URL);
      url.searchParams.set("application_name", app);
      const reader = PostgresStorage.connect<unknown>(url.href, { table });
      try {
        await timed.write("raced", { n: 1 });
        await db.query("BEGIN");
        await db.query(`SELECT 1 FROM ${id(table)} WHERE key = 'raced' FOR UPDATE`);
        const read = reader.read("raced");
        let waiting = false;
        for (let i = 0; i < 100 && !waiting; i++) {
          // Not on db: inside its transaction, pg_stat_activity stays as first seen.
          const { rows } = await pool.query(
            `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
            [app],
          );
          waiting = rows.length > 0;
          if (!waiting) await sleep(20);
        }
        assert.ok(waiting, "the read waited for the row");
        await db.query(
          `UPDATE ${id(table)} SET value = '{"n":2}', version = version + 1,
             expires_at = now() + interval '1 minute' WHERE key = 'raced'`,
        );
        await db.query("COMMIT");
        // The renewal found the version it read replaced, so it changed
        // nothing and the read read again: it hands out the newer write, and
        // (having no TTL) clears that one's expiry, as every read of it would.
        assert.deepEqual(await read, { n: 2 }, "the newer write, read again");
        const after = await row("raced");
        assert.equal(after.expires_at, null, "cleared on the version read, the newer one");
        assert.equal(after.v, '{"n":2}', "the newer write itself is untouched");
      } finally {
        await db.query("ROLLBACK").catch(() => {});
        await reader.close();
      }
    });
  });
});

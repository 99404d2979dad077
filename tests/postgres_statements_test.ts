/**
 * PostgresStorage's public methods against the real server, statement by
 * statement: each is one statement (plus a purge batch now and then for
 * writes), a `json` column holds exactly the JSON text written while `jsonb`
 * normalizes it, versions are the row's, expiry is set by every write and
 * renewed by reads, and keys and values a column cannot hold are refused
 * before any I/O.
 */
import assert from "node:assert/strict";
import { errorOf } from "./helpers/errors.ts";
import { SessionError, SessionValueError } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { id, pgTest, Recorder, RUN, withDb } from "./postgres_setup.ts";

pgTest(
  "PostgresStorage (json): one statement per public call, the exact text in the column",
  async (t) => {
    await withDb(async (db, pool, storages) => {
      const table = `${RUN}_text_json`;
      const rec = new Recorder(pool);
      const storage = new PostgresStorage<unknown>(rec, { table, valueType: "json", ttl: 60_000 });
      storages.push(storage);
      const row = async (key: string) =>
        (await db.query(
          `SELECT value::text AS text, version::text AS version, expires_at FROM ${id(table)}
         WHERE key = $1`,
          [key],
        )).rows[0];
      const value = { z: 1, a: "ключ 🎉", nested: { list: [1, 2.5, null] } };
      const json = JSON.stringify(value);

      await t.step("write, read, readVersioned: the text byte for byte", async () => {
        assert.deepEqual(await storage.readVersioned("t"), { value: undefined, version: null });
        rec.texts.length = 0;
        await storage.write("t", value);
        assert.equal(rec.texts.length, 2, "the upsert and the first purge batch");
        assert.match(rec.texts[0], /INSERT INTO[\s\S]*ON CONFLICT \(key\) DO UPDATE/);
        assert.equal((await row("t")).text, json, "the column holds the text as written");
        rec.texts.length = 0;
        assert.equal(JSON.stringify(await storage.read("t")), json, "key order kept");
        const { value: read, version } = await storage.readVersioned("t");
        assert.deepEqual(read, value);
        assert.equal(version, (await row("t")).version, "the version is the row's");
        assert.equal(rec.texts.length, 2, "one statement per read");
      });

      await t.step("writeIfVersion: one statement, create-only, stale and current", async () => {
        assert.equal(await storage.writeIfVersion("t", { x: 1 }, null), null, "something stored");
        const first = (await storage.readVersioned("t")).version;
        rec.texts.length = 0;
        const second = await storage.writeIfVersion("t", { x: 2 }, first);
        assert.ok(typeof second === "string" && /^[0-9]+$/.test(second) && second !== first);
        assert.equal(rec.texts.length, 1, "a conditional write is one statement");
        assert.doesNotMatch(rec.texts[0], /RETURNING/, "its row count tells whether it landed");
        assert.equal((await row("t")).version, second, "the stored version is the one returned");
        assert.equal(await storage.writeIfVersion("t", { x: 3 }, first), null, "stale version");
        rec.texts.length = 0;
        assert.equal(await storage.writeIfVersion("t", { x: 3 }, "not a version"), null);
        assert.deepEqual(rec.texts, [], "a token that is no version is refused without I/O");
        assert.equal((await row("t")).text, '{"x":2}');
        const created = await storage.writeIfVersion("new", { new: true }, null);
        assert.equal(created, (await row("new")).version);
      });

      await t.step("deleteIfVersion and delete: one statement each", async () => {
        const { version } = await storage.readVersioned("t");
        assert.equal(await storage.deleteIfVersion("t", null), false, "something stored");
        assert.equal(await storage.deleteIfVersion("t", "123"), false, "stale version");
        assert.ok(await row("t"));
        rec.texts.length = 0;
        assert.equal(await storage.deleteIfVersion("t", version), true);
        assert.equal(rec.texts.length, 1);
        assert.equal(await row("t"), undefined);
        assert.equal(
          await storage.deleteIfVersion("t", null),
          true,
          "nothing stored, none expected",
        );
        assert.equal(
          await storage.deleteIfVersion("t", version),
          false,
          "expected one, none stored",
        );
        await storage.write("t", []);
        rec.texts.length = 0;
        await storage.delete("t");
        assert.equal(rec.texts.length, 1);
        assert.equal(await row("t"), undefined);
      });

      await t.step("writes set the expiry, reads renew it, an expired row is absent", async () => {
        assert.ok(await storage.writeIfVersion("ttl", { n: 1 }, null));
        const left = (await row("ttl")).expires_at.getTime() - Date.now();
        assert.ok(left > 85_000 && left <= 90_000, `expiry 1.5 TTLs ahead (${left})`);
        await db.query(
          `UPDATE ${id(table)} SET expires_at = now() + interval '10 seconds' WHERE key = 'ttl'`,
        );
        assert.deepEqual(await storage.read("ttl"), { n: 1 });
        const renewed = (await row("ttl")).expires_at.getTime() - Date.now();
        assert.ok(renewed > 85_000, `a read with less than a TTL left renews (${renewed})`);
        await db.query(
          `UPDATE ${id(table)} SET expires_at = now() - interval '1 second' WHERE key = 'ttl'`,
        );
        assert.deepEqual(await storage.readVersioned("ttl"), { value: undefined, version: null });
        assert.ok(await storage.writeIfVersion("ttl", { n: 2 }, null), "expired counts as absent");
        assert.equal((await row("ttl")).text, '{"n":2}');
      });

      await t.step("every public method checks the key before any I/O", async () => {
        rec.texts.length = 0;
        for (const bad of ["bad\0key", "lone\ud800"]) {
          const expected = await errorOf(() => storage.write(bad, {}));
          assert.ok(expected instanceof SessionError);
          const calls: [string, () => Promise<unknown>][] = [
            ["read", () => storage.read(bad)],
            ["readVersioned", () => storage.readVersioned(bad)],
            ["writeIfVersion", () => storage.writeIfVersion(bad, {}, null)],
            ["writeIfVersion", () => storage.writeIfVersion(bad, {}, "1")],
            ["delete", () => storage.delete(bad)],
            ["deleteIfVersion", () => storage.deleteIfVersion(bad, "1")],
            ["has", () => storage.has(bad)],
          ];
          for (const [name, call] of calls) {
            const err = await errorOf(call);
            assert.ok(err instanceof SessionError, name);
            assert.equal(err.message, expected.message, name);
          }
        }
        assert.deepEqual(rec.texts, [], "refused before any I/O");
      });
    });
  },
);

pgTest(
  "PostgresStorage (jsonb): normalized values, and text jsonb cannot hold refused by every write",
  async () => {
    await withDb(async (db, pool, storages) => {
      const rec = new Recorder(pool);
      const storage = new PostgresStorage<unknown>(rec, {
        table: `${RUN}_text_jsonb`,
        valueType: "jsonb",
      });
      storages.push(storage);

      const value = { zz: 1, a: { y: "ü" }, "": [] };
      await storage.write("k", value);
      const { rows } = await db.query(
        `SELECT value::text AS text, pg_typeof(value)::text AS type FROM ${id(storage.table)}
         WHERE key = 'k'`,
      );
      assert.equal(rows[0].type, "jsonb");
      assert.notEqual(rows[0].text, JSON.stringify(value), "normalized by PostgreSQL");
      const { value: read, version } = await storage.readVersioned("k");
      assert.deepEqual(read, value);
      assert.ok(typeof await storage.writeIfVersion("k", { n: 1 }, version) === "string");

      rec.texts.length = 0;
      for (const unsafe of [{ s: "a\u0000b" }, { s: "\ud800" }]) {
        const expected = await errorOf(() => storage.write("k", unsafe));
        assert.ok(expected instanceof SessionValueError);
        for (const version of [null, "1"]) {
          const err = await errorOf(() => storage.writeIfVersion("k", unsafe, version));
          assert.ok(err instanceof SessionValueError, String(err));
          assert.equal(err.message, expected.message);
        }
      }
      assert.deepEqual(rec.texts, [], "refused before any I/O");
      await storage.write("k", { s: "\\u0000 is fine as text" });
      assert.deepEqual(await storage.read("k"), { s: "\\u0000 is fine as text" });
    });
  },
);

/**
 * PostgresStorage's text access (the middleware's fast path) against the real
 * server: exact text for json, normalized text for jsonb, one statement per
 * operation, conditional writes and deletes across two pools, TTL renewal,
 * and the same checks as the public methods.
 */
import assert from "node:assert/strict";
import { errorOf } from "./helpers/errors.ts";
import { assertOtherWriteMakesVersionStale } from "./helpers/text_access.ts";
import { SessionError, SessionValueError } from "../mod.ts";
import { textAccessOf } from "../src/text.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { DATABASE_URL, id, pgTest, Recorder, RUN, withDb } from "./postgres_setup.ts";

pgTest(
  "PostgresStorage (json): text access reads the exact text, writes conditionally",
  async (t) => {
    await withDb(async (db, pool, storages) => {
      const table = `${RUN}_text_json`;
      const rec = new Recorder(pool);
      const storage = new PostgresStorage<unknown>(rec, { table, valueType: "json", ttl: 60_000 });
      const other = PostgresStorage.connect<unknown>(DATABASE_URL, { table, valueType: "json" });
      storages.push(storage, other);
      const access = textAccessOf(storage);
      assert.ok(access !== undefined);
      assert.equal(access.exact, true);
      const row = async (key: string) =>
        (await db.query(
          `SELECT value::text AS text, version::text AS version, expires_at FROM ${id(table)}
         WHERE key = $1`,
          [key],
        )).rows[0];

      await t.step("read and write: one statement each, the text byte for byte", async () => {
        assert.deepEqual(await access.read("t"), { text: null, version: null });
        const json = JSON.stringify({ z: 1, a: "ключ 🎉", nested: { list: [1, 2.5, null] } });
        rec.texts.length = 0;
        assert.equal(await access.write("t", json), undefined, "unconditional: undefined");
        assert.equal(rec.texts.length, 2, "the upsert and the first purge batch");
        assert.match(rec.texts[0], /INSERT INTO[\s\S]*ON CONFLICT \(key\) DO UPDATE/);
        assert.equal((await row("t")).text, json, "the column holds the text as given");
        rec.texts.length = 0;
        const record = await access.read("t");
        assert.equal(record.text, json);
        assert.equal(record.version, (await row("t")).version);
        assert.equal(rec.texts.length, 1, "one statement per read");
        assert.deepEqual(await storage.readVersioned("t"), {
          value: JSON.parse(json),
          version: record.version,
        });
      });

      await t.step("conditional writes: create-only, stale and current versions", async () => {
        assert.equal(await access.write("t", '{"x":1}', null), null, "something is stored");
        const first = (await access.read("t")).version;
        rec.texts.length = 0;
        const second = await access.write("t", '{"x":2}', first);
        assert.ok(typeof second === "string" && /^[0-9]+$/.test(second) && second !== first);
        assert.equal(rec.texts.length, 1, "a conditional write is one statement");
        assert.doesNotMatch(rec.texts[0], /RETURNING/, "its row count tells whether it landed");
        assert.equal(await access.write("t", '{"x":3}', first), null, "stale version");
        assert.equal(await access.write("t", '{"x":3}', "not a version"), null);
        assert.deepEqual(await access.read("t"), { text: '{"x":2}', version: second });
        assert.equal((await row("t")).version, second, "the stored version is the one returned");
        // The version token is the same for the public methods.
        assert.equal((await storage.readVersioned("t")).version, second);
        const third = await storage.writeIfVersion("t", { x: 4 }, second);
        assert.ok(third !== null && third !== second);
        assert.equal(await access.write("t", '{"x":5}', second), null);
        const created = await access.write("new", '{"new":true}', null);
        assert.ok(typeof created === "string");
        assert.equal(created, (await access.read("new")).version);
      });

      await t.step("another process's write makes a version stale", async () => {
        await assertOtherWriteMakesVersionStale(access, other, async () => (await row("t")).text);
      });

      await t.step("conditional and plain deletes", async () => {
        const { version } = await access.read("t");
        assert.equal(await access.delete("t", null), false, "something is stored");
        assert.equal(await access.delete("t", "123"), false);
        assert.ok(await row("t"));
        rec.texts.length = 0;
        assert.equal(await access.delete("t", version), true);
        assert.equal(rec.texts.length, 1);
        assert.equal(await row("t"), undefined);
        assert.equal(await access.delete("t", null), true, "nothing stored, nothing expected");
        assert.equal(await access.delete("t", version), false, "expected a version, none stored");
        await access.write("t", "[]");
        assert.equal(await access.delete("t"), true, "unconditional delete: true");
        assert.equal(await row("t"), undefined);
      });

      await t.step("write sets the expiry, read renews it as the public read does", async () => {
        await access.write("ttl", '{"n":1}');
        const left = (await row("ttl")).expires_at.getTime() - Date.now();
        assert.ok(left > 55_000 && left <= 60_000, `expiry a TTL ahead (${left})`);
        await db.query(
          `UPDATE ${id(table)} SET expires_at = now() + interval '10 seconds' WHERE key = 'ttl'`,
        );
        assert.equal((await access.read("ttl")).text, '{"n":1}');
        const renewed = (await row("ttl")).expires_at.getTime() - Date.now();
        assert.ok(renewed > 55_000, `a read with less than half left renews (${renewed})`);
        // An expired row counts as absent: read null, create-only succeeds.
        await db.query(
          `UPDATE ${id(table)} SET expires_at = now() - interval '1 second' WHERE key = 'ttl'`,
        );
        assert.deepEqual(await access.read("ttl"), { text: null, version: null });
        const created = await access.write("ttl", '{"n":2}', null);
        assert.ok(typeof created === "string");
        assert.equal((await row("ttl")).text, '{"n":2}');
      });

      await t.step("the same key checks and errors as the public methods", async () => {
        rec.texts.length = 0;
        for (const bad of ["bad\0key", "lone\ud800"]) {
          const publicError = await storage.write(bad, {}).catch((err) => err);
          assert.ok(publicError instanceof SessionError);
          for (
            const call of [
              () => access.read(bad),
              () => access.write(bad, "{}"),
              () => access.write(bad, "{}", null),
              () => access.delete(bad),
              () => access.delete(bad, "1"),
            ]
          ) {
            const err = await errorOf(call);
            assert.ok(err instanceof SessionError);
            assert.equal(err.message, publicError.message);
          }
        }
        assert.deepEqual(rec.texts, [], "refused before any I/O");
      });
    });
  },
);

pgTest(
  "PostgresStorage (jsonb): text access gives normalized text, refuses what jsonb cannot hold",
  async () => {
    await withDb(async (db, pool, storages) => {
      const rec = new Recorder(pool);
      const storage = new PostgresStorage<unknown>(rec, { table: `${RUN}_text_jsonb` });
      storages.push(storage);
      const access = textAccessOf(storage)!;
      assert.equal(access.exact, false, "jsonb does not give the written text back");

      const json = '{"zz":1,"a":{"y":"ü"},"":[]}';
      assert.equal(await access.write("k", json), undefined);
      const { text, version } = await access.read("k");
      assert.ok(text !== null && text !== json, "normalized by PostgreSQL");
      assert.deepEqual(JSON.parse(text), JSON.parse(json));
      const { rows } = await db.query(
        `SELECT pg_typeof(value)::text AS type FROM ${id(storage.table)} WHERE key = 'k'`,
      );
      assert.equal(rows[0].type, "jsonb");
      assert.ok(typeof await access.write("k", '{"n":1}', version) === "string");

      rec.texts.length = 0;
      for (const unsafe of ['{"s":"a\\u0000b"}', '{"s":"\\ud800"}']) {
        const publicError = await storage.write("k", JSON.parse(unsafe)).catch((err) => err);
        assert.ok(publicError instanceof SessionValueError);
        for (const expected of [undefined, null, "1"]) {
          const err = await Promise.resolve().then(() => access.write("k", unsafe, expected))
            .catch((e) => e);
          assert.ok(err instanceof SessionValueError, String(err));
          assert.equal(err.message, publicError.message);
        }
      }
      assert.deepEqual(rec.texts, [], "refused before any I/O");
      assert.equal(await access.write("k", '{"s":"\\\\u0000 is fine as text"}'), undefined);
      assert.deepEqual(await storage.read("k"), { s: "\\u0000 is fine as text" });
    });
  },
);

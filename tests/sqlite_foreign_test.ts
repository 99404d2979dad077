/**
 * SqliteStorage next to data it did not write, on real `node:sqlite` files:
 * a table of its name without the primary key it needs is refused with an
 * error naming it, and rows in its table that sessionkit cannot have
 * written (BLOB keys, keys with NUL or bytes that are not UTF-8) end a
 * listing with a SessionError naming the table, never an endless one.
 */
import assert from "node:assert/strict";
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { SessionError } from "../mod.ts";
import { type SqliteDatabase, SqliteStorage } from "../storages/sqlite.ts";
import { SqliteFiles } from "./sqlite_env.ts";

/** Counts what `it` yields, giving up (as a failure) past `cap`. */
async function count(it: AsyncIterable<unknown> | Iterable<unknown>, cap: number): Promise<number> {
  let n = 0;
  for await (const _ of it) {
    if (++n > cap) throw new Error(`more than ${cap} entries: the listing does not end`);
  }
  return n;
}

/**
 * `db` as a handle that fails after `pages` multi-row queries: a listing
 * (which SQLite answers synchronously, all pages at once) that would go on
 * forever fails the test instead of hanging it.
 */
function bounded(db: DatabaseSync, pages = 200): SqliteDatabase {
  let left = pages;
  return {
    exec: (sql) => db.exec(sql),
    prepare(sql) {
      const statement = db.prepare(sql);
      return {
        run: (...params) => statement.run(...params as SQLInputValue[]),
        get: (...params) => statement.get(...params as SQLInputValue[]),
        all: (...params) => {
          if (--left < 0) throw new Error(`more than ${pages} pages: the listing does not end`);
          return statement.all(...params as SQLInputValue[]);
        },
      };
    },
  };
}

/** Whether `err` is a SessionError telling to delete the rows or use another table. */
function foreignError(table: string) {
  return (err: unknown) => {
    assert.ok(err instanceof SessionError, String(err));
    assert.ok(err.message.includes(JSON.stringify(table)), err.message);
    assert.match(err.message, /[Dd]elete/);
    assert.match(err.message, /table of its own/);
    return true;
  };
}

Deno.test("SqliteStorage: tables of its name without the right primary key", async (t) => {
  const files = new SqliteFiles();
  try {
    const refused = (table: string) => (err: unknown) => {
      assert.ok(err instanceof SessionError, String(err));
      assert.ok(err.message.includes(JSON.stringify(table)), err.message);
      assert.match(err.message, /not a sessionkit table/);
      assert.doesNotMatch(err.message, /^.*ON CONFLICT clause/);
      return true;
    };
    await t.step("a session table with the columns but no primary key", () => {
      const path = files.path();
      files.open(path).exec(
        `CREATE TABLE sessions (key TEXT, value TEXT, version TEXT, expires_at INTEGER)`,
      );
      const storage = files.storage<unknown>(path);
      assert.throws(() => storage.write("k", { n: 1 }), refused("sessions"));
      assert.throws(() => storage.read("k"), refused("sessions"));
    });
    await t.step("a session table whose primary key is another column", () => {
      const path = files.path();
      files.open(path).exec(
        `CREATE TABLE sessions (id INTEGER PRIMARY KEY, key TEXT, value TEXT, version TEXT,
          expires_at INTEGER)`,
      );
      const storage = files.storage<unknown>(path);
      assert.throws(() => storage.write("k", { n: 1 }), refused("sessions"));
    });
    await t.step("a lease table without a primary key", async () => {
      const path = files.path();
      files.open(path).exec(
        `CREATE TABLE sessions_leases (key TEXT, owner TEXT, expires_at INTEGER)`,
      );
      const storage = files.storage<unknown>(path);
      await assert.rejects(
        async () => await storage.acquireLease("k", "me", 1000),
        refused("sessions_leases"),
      );
    });
  } finally {
    files.cleanup();
  }
});

Deno.test("SqliteStorage: foreign rows in its table fail listings, naming the table", async (t) => {
  const files = new SqliteFiles();
  const foreign: [string, (db: DatabaseSync, i: number) => void][] = [
    [
      "BLOB keys",
      (db, i) =>
        db.prepare(
          `INSERT INTO sessions (key, value, version, expires_at) VALUES (?, '{}', 'v', NULL)`,
        )
          .run(new Uint8Array([0x7a, i >> 8, i & 255])),
    ],
    ["keys with a NUL", (db, i) =>
      db.prepare(
        `INSERT INTO sessions (key, value, version, expires_at)
         VALUES (CAST(? || x'00' || 'x' AS TEXT), '{}', 'v', NULL)`,
      ).run(`n${String(i).padStart(3, "0")}`)],
    ["text keys that are not UTF-8", (db, i) =>
      db.prepare(
        `INSERT INTO sessions (key, value, version, expires_at)
         VALUES (CAST(x'ff' || ? AS TEXT), '{}', 'v', NULL)`,
      ).run(String(i).padStart(3, "0"))],
  ];
  try {
    for (const [name, insert] of foreign) {
      await t.step(name, async () => {
        const path = files.path();
        const raw = files.open(path);
        const storage = new SqliteStorage<{ k: string }>(bounded(files.open(path)));
        for (const k of ["a", "b", "c"]) storage.write(k, { k });
        for (let i = 0; i < 600; i++) insert(raw, i);
        for (
          const list of [storage.readAllKeys(), storage.readAllValues(), storage.readAllEntries()]
        ) {
          await assert.rejects(() => count(list, 5000), foreignError("sessions"));
        }
        // The sessions themselves still work, and deleting the rows fixes listings.
        assert.deepEqual(storage.read("a"), { k: "a" });
        raw.exec(`DELETE FROM sessions WHERE key NOT IN ('a', 'b', 'c')`);
        assert.equal(await count(storage.readAllKeys(), 10), 3);
      });
    }
    await t.step("a row whose value is a BLOB is refused when read or listed", async () => {
      const path = files.path();
      const raw = files.open(path);
      const storage = new SqliteStorage<unknown>(bounded(files.open(path)));
      storage.write("a", { k: "a" });
      raw.prepare(
        `INSERT INTO sessions (key, value, version, expires_at) VALUES ('b', ?, 'v', NULL)`,
      )
        .run(new Uint8Array([0x31, 0x32]));
      assert.throws(() => storage.read("b"), foreignError("sessions"));
      await assert.rejects(
        async () => await count(storage.readAllValues(), 10),
        foreignError("sessions"),
      );
    });
    for (const encoding of ["UTF-16le", "UTF-16be"]) {
      await t.step(`a ${encoding} database lists its keys as they are`, async () => {
        const path = files.path();
        files.open(path).exec(`PRAGMA encoding = '${encoding}'; CREATE TABLE x (y)`);
        const storage = new SqliteStorage<{ k: string }>(bounded(files.open(path)));
        const keys = ["a", "é", "ключ-🔑", "\uFEFFz"];
        for (const k of keys) storage.write(k, { k });
        // In the database's own byte order (UTF-16 code units here).
        assert.deepEqual((await Array.fromAsync(storage.readAllKeys())).sort(), [...keys].sort());
        const values = await Array.fromAsync(storage.readAllValues());
        assert.deepEqual(values.map((v) => v.k).sort(), [...keys].sort());
      });
    }
    await t.step("a key starting with U+FEFF keeps it, also across pages", async () => {
      const path = files.path();
      const storage = new SqliteStorage<{ i: number }>(bounded(files.open(path)));
      storage.write("a", { i: -1 });
      storage.write("\uFEFFa", { i: -2 });
      for (let i = 0; i < 98; i++) storage.write(`b${String(i).padStart(2, "0")}`, { i });
      const keys: string[] = [];
      for await (const key of storage.readAllKeys()) keys.push(key);
      assert.equal(keys.length, 100);
      assert.equal(keys[0], "a");
      assert.equal(keys[99], "\uFEFFa");
      assert.equal(await count(storage.readAllEntries(), 1000), 100);
      assert.deepEqual(storage.read("\uFEFFa"), { i: -2 });
    });
  } finally {
    files.cleanup();
  }
});

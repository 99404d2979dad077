/**
 * What is particular to SqliteStorage, checked on real `node:sqlite`
 * database files: the table layout, quoted table names, leases apart from
 * sessions, the TTL rules as stored, bounded purging, keyset listing, handles
 * set to big integers or array rows, the busy timeout against another
 * process holding the write lock, and clear errors.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { DatabaseSync, DatabaseSyncOptions, SQLInputValue } from "node:sqlite";
import { SessionError } from "../mod.ts";
import { type SqliteDatabase, SqliteStorage } from "../storages/sqlite.ts";
import { PURGE_BATCH, PURGE_EVERY } from "../storages/shared/purging.ts";
import { sleep } from "./helpers/bot.ts";
import { rawCount, rawRows, SqliteFiles } from "./sqlite_env.ts";

const LOCKER = new URL("./fixtures/sqlite_locker.ts", import.meta.url).pathname;

async function collect<T>(it: AsyncIterable<T> | Iterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of it) out.push(item);
  return out;
}

/** A pass-through handle counting the statements run through it. */
function recording(db: DatabaseSync): { db: SqliteDatabase; runs: string[] } {
  const runs: string[] = [];
  const wrapped: SqliteDatabase = {
    exec: (sql) => db.exec(sql),
    prepare(sql) {
      const statement = db.prepare(sql);
      return {
        run: (...params) => (runs.push(sql), statement.run(...params as SQLInputValue[])),
        get: (...params) => (runs.push(sql), statement.get(...params as SQLInputValue[])),
        all: (...params) => (runs.push(sql), statement.all(...params as SQLInputValue[])),
      };
    },
  };
  return { db: wrapped, runs };
}

/** Starts another process holding the write lock of `path` for `ms`; resolves once it holds it. */
async function lockFor(path: string, ms: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", LOCKER, path, String(ms)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("LOCKED")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the locker exited early: ${seen}`);
    seen += value;
  }
  return {
    async done() {
      while ((await reader.read()).done === false);
      await child.status;
    },
  };
}

Deno.test("SqliteStorage", async (t) => {
  const files = new SqliteFiles();
  try {
    await t.step("one row per session: key, exact JSON text, version, expiry", async () => {
      const path = files.path();
      const raw = files.open(path);
      const plain = files.storage<unknown>(path);
      const value = { b: 1, a: [true, null, "é\u2028"], "": {} };
      plain.write("plain", value);
      const timed = files.storage<unknown>(path, { ttl: 60_000 });
      const before = Date.now();
      const version = await timed.writeIfVersion("timed", { n: 1 }, null);
      const rows = rawRows(raw, "sessions");
      assert.deepEqual(rows.map((r) => r.key), ["plain", "timed"]);
      assert.equal(rows[0].value, JSON.stringify(value));
      assert.equal(rows[0].expires_at, null);
      assert.equal(rows[0].version, (await plain.readVersioned("plain")).version);
      assert.equal(rows[1].version, version);
      assert.ok(
        rows[1].expires_at! >= before + 90_000 && rows[1].expires_at! <= Date.now() + 90_000,
      );
      const columns = raw.prepare("SELECT name, type, pk FROM pragma_table_info('sessions')").all();
      assert.deepEqual(columns.map((c) => ({ ...c })), [
        { name: "key", type: "TEXT", pk: 1 },
        { name: "value", type: "TEXT", pk: 0 },
        { name: "version", type: "TEXT", pk: 0 },
        { name: "expires_at", type: "INTEGER", pk: 0 },
      ]);
    });

    await t.step("table names are quoted: odd names work and stay apart", () => {
      const path = files.path();
      const names = ['we"ird', "x'; DROP TABLE sessions; --", "a.b", "Ünï 表 🔑", "sessions"];
      for (const table of names) files.storage<unknown>(path, { table }).write("k", { table });
      for (const table of names) {
        assert.deepEqual(files.storage<unknown>(path, { table }).read("k"), { table });
        assert.equal(rawCount(files.open(path), table), 1);
      }
      // SQLite compares names without regard to ASCII case (documented).
      assert.deepEqual(files.storage<unknown>(path, { table: "SESSIONS" }).read("k"), {
        table: "sessions",
      });
      for (const table of ["", "sqlite_sessions", "SQLite_x", "a\0b", "a\ud800"]) {
        assert.throws(() => new SqliteStorage(files.open(path), { table }), RangeError, table);
      }
    });

    await t.step("leases live in <table>_leases and never show up as sessions", async () => {
      const path = files.path();
      const storage = files.storage<unknown>(path, { table: "bot" });
      assert.equal(storage.leaseTable, "bot_leases");
      assert.equal(await storage.acquireLease("only-lease", "me", 5000), true);
      const raw = files.open(path);
      assert.equal(rawCount(raw, "bot"), 0);
      assert.equal(rawCount(raw, "bot_leases"), 1);
      assert.deepEqual(await collect(storage.readAllKeys()), []);
      await storage.releaseLease("only-lease", "me");
      assert.equal(rawCount(raw, "bot_leases"), 0);
    });

    await t.step("without a TTL, a read clears a leftover expiry and keeps the version", () => {
      const path = files.path();
      const raw = files.open(path);
      files.storage<unknown>(path, { ttl: 60_000 }).write("k", { n: 1 });
      const [before] = rawRows(raw, "sessions");
      assert.notEqual(before.expires_at, null);
      assert.deepEqual(files.storage<unknown>(path).read("k"), { n: 1 });
      const [after] = rawRows(raw, "sessions");
      assert.equal(after.expires_at, null);
      assert.equal(after.version, before.version);
      assert.equal(after.value, before.value);
    });

    await t.step(
      "with a TTL: written 1.5 TTLs ahead, renewed once less than a TTL is left",
      async () => {
        const path = files.path();
        const raw = files.open(path);
        const ttl = 400;
        const storage = files.storage<unknown>(path, { ttl });
        const before = Date.now();
        storage.write("k", { n: 1 });
        const [written] = rawRows(raw, "sessions");
        assert.ok(
          written.expires_at! >= before + 1.5 * ttl &&
            written.expires_at! <= Date.now() + 1.5 * ttl,
        );
        await sleep(ttl * 0.3);
        storage.read("k"); // more than a TTL left: nothing to do
        assert.deepEqual(rawRows(raw, "sessions"), [written]);
        await sleep(ttl * 0.4);
        const at = Date.now();
        storage.read("k");
        const [renewed] = rawRows(raw, "sessions");
        assert.ok(renewed.expires_at! >= at + 1.5 * ttl, "renewed to 1.5 TTLs from the read");
        assert.equal(renewed.version, written.version);
        // A session written without a TTL gets one on its first read.
        files.storage<unknown>(path).write("k", { n: 2 });
        assert.equal(rawRows(raw, "sessions")[0].expires_at, null);
        storage.read("k");
        assert.ok(rawRows(raw, "sessions")[0].expires_at! >= at + 1.5 * ttl);
      },
    );

    await t.step("expired rows go in bounded batches on writes and by purgeExpired", () => {
      const path = files.path();
      const raw = files.open(path);
      files.storage<unknown>(path).has("k"); // creates the tables
      const past = Date.now() - 1000;
      const session = raw.prepare("INSERT INTO sessions VALUES (?, '{}', 'v', ?)");
      for (let i = 0; i < 250; i++) session.run(`old-${i}`, past);
      const lease = raw.prepare("INSERT INTO sessions_leases VALUES (?, 'me', ?)");
      for (let i = 0; i < 30; i++) lease.run(`lease-${i}`, past);
      const fresh = files.storage<unknown>(path);
      assert.equal(fresh.has("old-1"), false, "expired rows are never returned");
      assert.equal(rawCount(raw, "sessions"), 250, "expired rows stay until purged");
      fresh.write("live", { ok: true }); // the first write purges one batch
      assert.equal(rawCount(raw, "sessions"), 1 + 250 - PURGE_BATCH);
      assert.equal(rawCount(raw, "sessions_leases"), 0);
      for (let i = 1; i < PURGE_EVERY; i++) fresh.write("live", { ok: i }); // none until the 101st
      assert.equal(rawCount(raw, "sessions"), 1 + 250 - PURGE_BATCH);
      fresh.write("live", { ok: "101st" });
      assert.equal(rawCount(raw, "sessions"), 1 + 250 - 2 * PURGE_BATCH);
      assert.equal(fresh.purgeExpired(30), 30);
      assert.equal(fresh.purgeExpired(), 250 - 2 * PURGE_BATCH - 30);
      assert.equal(fresh.purgeExpired(), 0);
      assert.deepEqual(rawRows(raw, "sessions").map((r) => r.key), ["live"]);
      assert.throws(() => fresh.purgeExpired(0), RangeError);
      assert.throws(() => fresh.purgeExpired(1.5), RangeError);
    });

    await t.step("listings page through the table in key order", async () => {
      const path = files.path();
      const handle = files.open(path);
      handle.exec("PRAGMA synchronous = OFF"); // only to make 1239 writes quick
      const { db, runs } = recording(handle);
      const storage = new SqliteStorage<{ i: number }>(db);
      const keys = Array.from({ length: 1234 }, (_, i) => `k${i}`);
      keys.push("", "é", "z", "🔑", "\uffff");
      for (const [i, key] of keys.entries()) storage.write(key, { i });
      const byBytes = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      runs.length = 0;
      assert.deepEqual(await collect(storage.readAllKeys()), byBytes);
      assert.equal(runs.length, 3, "3 pages of at most 500 keys");
      runs.length = 0;
      const entries = await collect(storage.readAllEntries());
      assert.deepEqual(entries.map(([k]) => k), byBytes);
      assert.equal(runs.length, 13, "13 pages of at most 100 sessions");
      // Keys deleted during a listing are not needed; every other key is visited once.
      const seen: string[] = [];
      for await (const key of storage.readAllKeys()) {
        seen.push(key);
        if (key === "k1") {
          for (const k of keys.filter((k) => k.startsWith("k2"))) storage.delete(k);
        }
      }
      const kept = byBytes.filter((k) => !k.startsWith("k2") || seen.includes(k));
      assert.deepEqual(seen, kept);
    });

    await t.step("handles reading big integers or returning arrays work the same", async () => {
      const path = files.path();
      const db = files.open(path, {
        timeout: 0,
        readBigInts: true,
        returnArrays: true,
      } as DatabaseSyncOptions); // both newer than @types/node's DatabaseSyncOptions
      const storage = new SqliteStorage<unknown>(db, { ttl: 60_000 });
      const v1 = await storage.writeIfVersion("k", { n: 1 }, null);
      assert.equal(typeof v1, "string");
      assert.deepEqual(await storage.readVersioned("k"), { value: { n: 1 }, version: v1 });
      assert.equal(await storage.writeIfVersion("k", { n: 2 }, null), null);
      const v2 = await storage.writeIfVersion("k", { n: 2 }, v1);
      assert.equal(await storage.deleteIfVersion("k", v1), false);
      assert.deepEqual(await collect(storage.readAllEntries()), [["k", { n: 2 }]]);
      assert.equal(await storage.acquireLease("k", "a", 1000), true);
      assert.equal(await storage.acquireLease("k", "b", 1000), false);
      assert.equal(await storage.renewLease("k", "a", 1000), true);
      assert.equal(storage.purgeExpired(), 0);
      assert.equal(await storage.deleteIfVersion("k", v2!), true);
      assert.equal(storage.has("k"), false);
      assert.deepEqual(db.prepare("PRAGMA busy_timeout").get(), [5000n]);
    });

    await t.step(
      "busy timeout: 5000 ms on a handle without one, else the handle's, or the option",
      () => {
        const path = files.path();
        const timeout = (db: DatabaseSync) => db.prepare("PRAGMA busy_timeout").get()!.timeout;
        const none = files.open(path, { timeout: 0 });
        new SqliteStorage(none).has("k");
        assert.equal(timeout(none), 5000);
        const own = files.open(path, { timeout: 1234 });
        new SqliteStorage(own).has("k");
        assert.equal(timeout(own), 1234);
        const set = files.open(path);
        new SqliteStorage(set, { busyTimeout: 250 }).has("k");
        assert.equal(timeout(set), 250);
        for (const busyTimeout of [-1, 1.5, NaN, 2 ** 31]) {
          assert.throws(() => new SqliteStorage(set, { busyTimeout }), RangeError);
        }
      },
    );

    await t.step("a write waits for another process's write lock, then lands", async () => {
      const path = files.path();
      const storage = files.storage<unknown>(path);
      storage.write("k", { n: 0 }); // creates the tables
      const lock = await lockFor(path, 700);
      const started = Date.now();
      storage.write("k", { n: 1 });
      const waited = Date.now() - started;
      await lock.done();
      assert.ok(waited >= 300, `waited ${waited} ms for the lock`);
      assert.deepEqual(storage.read("k"), { n: 1 });
    });

    await t.step(
      "a lock held past the busy timeout fails with an error that says what to do",
      async () => {
        const path = files.path();
        const storage = files.storage<unknown>(path, { busyTimeout: 200 });
        storage.write("k", { n: 0 });
        const lock = await lockFor(path, 1500);
        try {
          assert.throws(
            () => storage.write("k", { n: 1 }),
            (err: unknown) =>
              err instanceof SessionError && err.key === "k" &&
              /busy timeout \(200 ms\).*WAL.*busyTimeout/s.test(err.message) &&
              err.cause instanceof Error,
          );
        } finally {
          await lock.done();
        }
        assert.deepEqual(storage.read("k"), { n: 0 }, "nothing was written");
        storage.write("k", { n: 2 });
        assert.deepEqual(storage.read("k"), { n: 2 });
      },
    );

    await t.step("a table that is not a sessionkit table is refused clearly", () => {
      const path = files.path();
      files.open(path).exec("CREATE TABLE sessions (id INTEGER PRIMARY KEY, data BLOB)");
      const storage = files.storage<unknown>(path);
      assert.throws(
        () => storage.read("k"),
        (err: unknown) =>
          err instanceof SessionError && /"sessions".*not a sessionkit table/.test(err.message),
      );
    });

    await t.step("tables dropped behind the storage's back are created again", async () => {
      const path = files.path();
      const storage = files.storage<unknown>(path);
      storage.write("k", { n: 1 });
      files.open(path).exec("DROP TABLE sessions; DROP TABLE sessions_leases");
      assert.equal(storage.read("k"), undefined);
      storage.write("k", { n: 2 });
      assert.deepEqual(storage.read("k"), { n: 2 });
      assert.equal(await storage.acquireLease("k", "me", 1000), true);
    });

    await t.step(
      "keys with NUL or a lone surrogate are refused: SQLite text cannot keep them",
      () => {
        const path = files.path();
        const raw = files.open(path);
        // Why: node:sqlite reads text back up to a NUL, and binds text as
        // UTF-8, turning every lone surrogate into U+FFFD.
        raw.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
        raw.prepare("INSERT INTO t VALUES (?)").run("a\0b");
        assert.equal(raw.prepare("SELECT k FROM t").get()!.k, "a");
        raw.prepare("INSERT INTO t VALUES (?)").run("a\ud800b");
        assert.throws(() => raw.prepare("INSERT INTO t VALUES (?)").run("a\udc00b"), /UNIQUE/);
        const storage = files.storage<unknown>(path);
        for (const key of ["a\0b", "a\ud800b"]) {
          assert.throws(() => storage.write(key, {}), SessionError);
          assert.throws(() => storage.read(key), SessionError);
        }
        assert.equal(rawCount(raw, "sessions"), 0);
      },
    );

    await t.step("bad arguments are refused; close() leaves the handle open", async () => {
      for (const db of [undefined, {}, { prepare: () => {} }, "sessions.db"]) {
        assert.throws(() => new SqliteStorage(db as never), TypeError);
      }
      const db = files.open(files.path());
      for (const ttl of [0, -1, NaN]) {
        assert.throws(() => new SqliteStorage(db, { ttl }), RangeError);
      }
      assert.throws(() => new SqliteStorage(db, { ttl: "1" as never }), TypeError);
      assert.equal(new SqliteStorage(db, { ttl: Infinity }).ttl, undefined);
      const storage = new SqliteStorage<unknown>(db);
      storage.write("k", { n: 1 });
      await storage.close();
      assert.equal(db.isOpen, true);
    });
  } finally {
    files.cleanup();
  }
});

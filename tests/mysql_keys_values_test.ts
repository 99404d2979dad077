/**
 * How MysqlStorage lays keys and values out in MySQL/MariaDB, looked at in
 * the table itself: keys are bytes (case, accents, trailing spaces and NUL
 * keep keys apart), values are the exact JSON text in utf8mb4 whatever the
 * connection's character set, the key limit is refused before any statement
 * and the value limit follows the server's max_allowed_packet.
 */
import assert from "node:assert/strict";
import { SessionError } from "../mod.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import { MAX_KEY_BYTES, maxValueBytes } from "../storages/mysql/limits.ts";
import {
  collect,
  id,
  maxAllowedPacket,
  mysql,
  MYSQL_URL,
  MysqlFixture,
  mysqlTest,
  Recorder,
  tableExists,
} from "./mysql_setup.ts";

mysqlTest("MysqlStorage: keys are compared as bytes and stored as UTF-8", async (t) => {
  const f = new MysqlFixture();
  try {
    const storage = f.track(new MysqlStorage<{ i: number }>(f.pool, { table: f.table("keys") }));
    // utf8mb4_bin would merge "a" and "a " (PAD SPACE), a _ci collation also
    // "A"/"a" and "é"/"e": VARBINARY keeps all of them apart.
    const keys = ["a", "a ", "A", "a\0", "e", "é", "e\u0301", "ключ-🔑", "КЛЮЧ-🔑", ""];
    await t.step("near-identical keys stay apart", async () => {
      for (const [i, key] of keys.entries()) await storage.write(key, { i });
      for (const [i, key] of keys.entries()) {
        assert.deepEqual(await storage.read(key), { i }, JSON.stringify(key));
      }
    });
    await t.step("the table holds each key's UTF-8 bytes", async () => {
      const [rows] = await f.admin.query(`SELECT HEX(\`key\`) AS h FROM ${id(storage.table)}`);
      const stored = (rows as { h: string }[]).map((r) => r.h).sort();
      const expected = keys.map((k) =>
        [...new TextEncoder().encode(k)].map((b) => b.toString(16).padStart(2, "0")).join("")
          .toUpperCase()
      ).sort();
      assert.deepEqual(stored, expected);
    });
    await t.step("listing is in byte order and pages by key", async () => {
      const bytes = (k: string) => [...new TextEncoder().encode(k)];
      const byteOrder = [...keys].sort((x, y) => {
        const a = bytes(x), b = bytes(y);
        for (let i = 0; i < Math.min(a.length, b.length); i++) {
          if (a[i] !== b[i]) return a[i] - b[i];
        }
        return a.length - b.length;
      });
      assert.deepEqual(await collect(storage.readAllKeys()), byteOrder);
    });
  } finally {
    await f.cleanup();
  }
});

mysqlTest(
  "MysqlStorage: the key limit is 767 UTF-8 bytes, refused before any statement",
  async () => {
    const f = new MysqlFixture();
    try {
      const recorder = new Recorder(f.pool);
      const storage = f.track(new MysqlStorage(recorder, { table: f.table("keylimit") }));
      const longest = "🔑".repeat(191) + "abc"; // 764 + 3 bytes
      assert.equal(new TextEncoder().encode(longest).length, MAX_KEY_BYTES);
      const over = longest + "x";
      await assert.rejects(() => storage.write(over, { n: 1 }), SessionError);
      await assert.rejects(() => storage.read(over), /768 bytes long; keys are limited to 767/);
      await assert.rejects(() => storage.acquireLease(over, "me", 1000), SessionError);
      assert.deepEqual(recorder.take(), [], "nothing was sent");
      assert.equal(await tableExists(f.admin, storage.table), false);
      await storage.write(longest, { n: 1 });
      assert.deepEqual(await storage.read(longest), { n: 1 });
      assert.equal(await storage.acquireLease(longest, "me", 1000), true);
      assert.deepEqual(await collect(storage.readAllKeys()), [longest]);
    } finally {
      await f.cleanup();
    }
  },
);

mysqlTest(
  "MysqlStorage: values are the exact JSON text, whatever the connection charset",
  async (t) => {
    const f = new MysqlFixture();
    // An old-style utf8 (utf8mb3) connection cannot carry 4-byte characters as
    // text; the storage sends and reads bytes, so they survive.
    const mb3 = mysql.createPool({
      uri: MYSQL_URL,
      charset: "UTF8_GENERAL_CI",
      connectionLimit: 2,
    });
    try {
      const table = f.table("values");
      const value = { text: "ключ-🔑 𝄞 \u0000 \ud800", order: { b: 1, a: 2 }, n: 0.1 + 0.2 };
      for (const [label, pool] of [["utf8mb4", f.pool], ["utf8mb3", mb3]] as const) {
        await t.step(`over a ${label} connection`, async () => {
          const storage = f.track(new MysqlStorage<typeof value>(pool, { table }));
          await storage.write(label, value);
          const [rows] = await f.admin.query(
            `SELECT \`value\` AS v, CHARSET(\`value\`) AS c FROM ${id(table)} WHERE \`key\` = ?`,
            [label],
          );
          const row = (rows as { v: string; c: string }[])[0];
          assert.equal(row.v, JSON.stringify(value));
          assert.equal(row.c, "utf8mb4");
          assert.equal(JSON.stringify(await storage.read(label)), JSON.stringify(value));
          const entries = await collect(storage.readAllEntries());
          assert.ok(
            entries.some(([k, v]) => k === label && JSON.stringify(v) === JSON.stringify(value)),
          );
        });
      }
    } finally {
      await mb3.end();
      await f.cleanup();
    }
  },
);

mysqlTest("MysqlStorage: a session may take max_allowed_packet minus 1 KiB", async (t) => {
  const f = new MysqlFixture();
  try {
    const packet = await maxAllowedPacket(f.admin);
    const max = maxValueBytes(packet);
    const recorder = new Recorder(f.pool);
    const storage = f.track(
      new MysqlStorage<{ blob: string }>(recorder, { table: f.table("size") }),
    );
    const key = "k".repeat(MAX_KEY_BYTES); // the longest key, too
    const sized = (bytes: number, fill: string) => ({
      blob: fill.repeat(bytes - JSON.stringify({ blob: "" }).length),
    });
    await t.step("exactly the limit: upsert, compare-and-set and insert-if-absent", async () => {
      await storage.write(key, sized(max, "a"));
      assert.equal((await storage.read(key))!.blob.length, max - 11);
      const { version } = await storage.readVersioned(key);
      const next = await storage.writeIfVersion(key, sized(max, "b"), version);
      assert.equal(typeof next, "string");
      assert.equal((await storage.read(key))!.blob[0], "b");
      await storage.delete(key);
      assert.equal(typeof await storage.writeIfVersion(key, sized(max, "c"), null), "string");
      assert.equal((await storage.read(key))!.blob[0], "c");
    });
    await t.step("one byte more is refused before it is sent, naming the limit", async () => {
      recorder.take();
      await assert.rejects(
        () => storage.write(key, sized(max + 1, "d")),
        (err: Error) =>
          err instanceof SessionError && err.message.includes(`limit of ${max} bytes`) &&
          err.message.includes("max_allowed_packet") && err.message.includes("Nothing was written"),
      );
      await assert.rejects(
        () => storage.writeIfVersion(key, sized(max + 1, "d"), null),
        SessionError,
      );
      assert.deepEqual(recorder.take(), [], "nothing was sent");
      assert.equal((await storage.read(key))!.blob[0], "c");
    });
    await t.step("4-byte characters count as 4 bytes", async () => {
      const emoji = { blob: "🔑".repeat(Math.ceil(max / 4)) };
      await assert.rejects(() => storage.write(key, emoji), /limit/);
      assert.equal((await storage.read(key))!.blob[0], "c");
    });
  } finally {
    await f.cleanup();
  }
});

mysqlTest("MysqlStorage: identifiers are escaped and names are checked", async (t) => {
  const f = new MysqlFixture();
  try {
    await t.step("a table name with backticks, quotes and Cyrillic works", async () => {
      const table = `${f.table("names")} \`x\` 'y' "z" сессии`;
      const storage = f.track(new MysqlStorage(f.pool, { table }));
      const key = "'; DROP TABLE sessions; --";
      await storage.write(key, { ok: true });
      assert.deepEqual(await storage.read(key), { ok: true });
      assert.equal(await storage.acquireLease(key, "me", 1000), true);
      assert.equal(await tableExists(f.admin, table), true);
      assert.equal(await tableExists(f.admin, `${table}_leases`), true);
    });
    await t.step("keys and values are parameters, never SQL text", async () => {
      const recorder = new Recorder(f.pool);
      const storage = f.track(new MysqlStorage(recorder, { table: f.table("params") }));
      const key = "key'\"`\\";
      await storage.write(key, { v: "value'\"`\\" });
      await storage.read(key);
      for (const sql of recorder.take()) {
        assert.ok(!sql.includes("key'") && !sql.includes("value'"), sql);
      }
    });
    await t.step("a long table name gets a shortened, hashed lease table", () => {
      const a = new MysqlStorage(f.pool, { table: "a".repeat(64) });
      const b = new MysqlStorage(f.pool, { table: "a".repeat(63) + "b" });
      assert.equal(a.leaseTable.length, 64);
      assert.ok(a.leaseTable.endsWith("_leases"));
      assert.notEqual(a.leaseTable, b.leaseTable);
      assert.equal(new MysqlStorage(f.pool, { table: "bot" }).leaseTable, "bot_leases");
    });
    await t.step("names MySQL cannot hold are refused at construction", () => {
      for (const table of ["", "a".repeat(65), "emoji🔑", "trailing ", "nul\0"]) {
        assert.throws(() => new MysqlStorage(f.pool, { table }), RangeError, JSON.stringify(table));
      }
    });
  } finally {
    await f.cleanup();
  }
});

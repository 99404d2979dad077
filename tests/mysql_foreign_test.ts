/**
 * MysqlStorage with keys and values at the edges of text: a key or value
 * that starts with U+FEFF keeps it (no decoder strips it as a byte order
 * mark), listings page exactly by the stored bytes, and rows in the
 * storage's table that sessionkit cannot have written (keys that are not
 * UTF-8) end a listing with a SessionError naming the table, never a hang.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { SessionError } from "../mod.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import { MysqlDriver } from "../storages/mysql/driver.ts";
import { collect, id, MysqlFixture, mysqlTest } from "./mysql_setup.ts";

/** Counts what `it` yields, giving up (as a failure) past `cap`. */
async function count(it: AsyncIterable<unknown>, cap: number): Promise<number> {
  let n = 0;
  for await (const _ of it) {
    if (++n > cap) throw new Error(`more than ${cap} entries: the listing does not end`);
  }
  return n;
}

mysqlTest("MysqlStorage: a leading U+FEFF is part of the key and the value", async (t) => {
  const f = new MysqlFixture();
  try {
    const storage = f.track(new MysqlStorage<{ who: string }>(f.pool, { table: f.table("bom") }));
    await t.step("listed with the U+FEFF, apart from the key without it", async () => {
      await storage.write("a", { who: "plain" });
      await storage.write("\uFEFFa", { who: "bom" });
      assert.deepEqual(await collect(storage.readAllKeys()), ["a", "\uFEFFa"]);
      assert.deepEqual(await collect(storage.readAllEntries()), [
        ["a", { who: "plain" }],
        ["\uFEFFa", { who: "bom" }],
      ]);
      await storage.delete("a");
    });
    await t.step("a U+FEFF key last on a full page ends the listing", async () => {
      // 49 keys + the U+FEFF key (sorted last by its bytes) = one full page
      // of 50 entries with values.
      for (let i = 0; i < 49; i++) {
        await storage.write(`b${String(i).padStart(2, "0")}`, { who: "" });
      }
      assert.equal(await count(storage.readAllEntries(), 1000), 50);
      assert.equal(await count(storage.readAllValues(), 1000), 50);
      assert.equal(await count(storage.readAllKeys(), 1000), 50);
    });
    await t.step("a payload starting with U+FEFF comes back exactly", async () => {
      const driver = new MysqlDriver(f.pool, {
        table: storage.table,
        leaseTable: storage.leaseTable,
        ttl: undefined,
        createTable: true,
      });
      await driver.write("raw", '\uFEFF"x"', undefined);
      assert.equal((await driver.read("raw"))?.payload, '\uFEFF"x"');
      const page = await driver.scan(undefined, 500, true);
      assert.equal(page.payloads?.[page.keys.indexOf("raw")], '\uFEFF"x"');
    });
  } finally {
    await f.cleanup();
  }
});

mysqlTest(
  "MysqlStorage: rows with keys that are not UTF-8 fail a listing, naming the table",
  async (t) => {
    const f = new MysqlFixture();
    try {
      const storage = f.track(
        new MysqlStorage<{ k: string }>(f.pool, { table: f.table("foreign") }),
      );
      for (const k of ["a", "b", "c"]) await storage.write(k, { k });
      for (let i = 0; i < 50; i++) {
        await f.admin.query(
          `INSERT INTO ${id(storage.table)} (\`key\`, \`value\`, \`version\`) VALUES (?, '{}', 1)`,
          [Buffer.from([0xff, i])],
        );
      }
      const listings: [string, () => AsyncIterable<unknown>][] = [
        ["readAllKeys", () => storage.readAllKeys()],
        ["readAllValues", () => storage.readAllValues()],
        ["readAllEntries", () => storage.readAllEntries()],
      ];
      for (const [name, list] of listings) {
        await t.step(`${name} rejects instead of looping`, async () => {
          await assert.rejects(() => count(list(), 1000), (err: Error) => {
            assert.ok(err instanceof SessionError, String(err));
            assert.ok(err.message.includes(id(storage.table)), err.message);
            assert.match(err.message, /not UTF-8/);
            assert.match(err.message, /[Dd]elete/);
            assert.match(err.message, /table of its own/);
            return true;
          });
        });
      }
      await t.step("the sessions themselves still work", async () => {
        assert.deepEqual(await storage.read("a"), { k: "a" });
        await storage.write("d", { k: "d" });
        assert.equal(await storage.has("d"), true);
      });
      await t.step("once the foreign rows are deleted, listings work again", async () => {
        await f.admin.query(`DELETE FROM ${id(storage.table)} WHERE \`key\` LIKE ?`, [
          Buffer.from([0xff, 0x25]), // 0xff then "%"
        ]);
        assert.deepEqual(await collect(storage.readAllKeys()), ["a", "b", "c", "d"]);
      });
    } finally {
      await f.cleanup();
    }
  },
);

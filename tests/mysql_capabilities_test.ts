/**
 * MysqlStorage beyond the contract, looked at in the tables and in the
 * statements it sends: expiry columns under and without a TTL, reads of one
 * round trip, bounded purging, the lease table created on first use,
 * createTable: false, tables dropped under a running storage, and what the
 * storage refuses.
 */
import assert from "node:assert/strict";
import { SessionError } from "../mod.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import { sleep } from "./helpers/bot.ts";
import {
  dropTables,
  id,
  mysql,
  MYSQL_URL,
  MysqlFixture,
  mysqlTest,
  Recorder,
  tableExists,
} from "./mysql_setup.ts";

type Row = { version: string; ms: number | null };

/** The raw version and the ms left until the expiry (server time) of `key`. */
async function rawRow(f: MysqlFixture, table: string, key: string): Promise<Row | undefined> {
  const [rows] = await f.admin.query(
    `SELECT CAST(\`version\` AS CHAR) AS version,
       TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(3), \`expires_at\`) / 1000 AS ms
     FROM ${id(table)} WHERE \`key\` = ?`,
    [key],
  );
  const row = (rows as { version: string; ms: string | null }[])[0];
  return row && { version: row.version, ms: row.ms === null ? null : Number(row.ms) };
}

mysqlTest("MysqlStorage: expiry in the table, and reads of one statement", async (t) => {
  const f = new MysqlFixture();
  try {
    const table = f.table("ttl");
    const recorder = new Recorder(f.pool);
    const timed = f.track(new MysqlStorage(recorder, { table, ttl: 2000 }));
    const untimed = f.track(new MysqlStorage(recorder, { table }));

    await t.step("a write with a TTL stores 1.5 x TTL; one without stores none", async () => {
      await timed.write("timed", { n: 1 });
      await untimed.write("untimed", { n: 1 });
      const row = (await rawRow(f, table, "timed"))!;
      assert.ok(row.ms! > 2800 && row.ms! <= 3000, `${row.ms} ms left`);
      assert.equal((await rawRow(f, table, "untimed"))!.ms, null);
    });

    await t.step("a read soon after a write is one SELECT", async () => {
      recorder.take();
      assert.deepEqual(await timed.read("timed"), { n: 1 });
      assert.deepEqual(await timed.readVersioned("timed").then((r) => r.value), { n: 1 });
      assert.deepEqual(await untimed.read("untimed"), { n: 1 });
      const sent = recorder.take();
      assert.equal(sent.length, 3, sent.join("\n"));
      assert.ok(sent.every((sql) => sql.startsWith("SELECT")));
    });

    await t.step(
      "once less than the TTL is left, a read renews it, keeping the version",
      async () => {
        const before = (await rawRow(f, table, "timed"))!;
        await sleep(1100); // 1.9 of its 3 s left: less than the TTL
        recorder.take();
        assert.deepEqual(await timed.read("timed"), { n: 1 });
        const sent = recorder.take();
        assert.equal(sent.length, 2);
        assert.match(sent[1], /^UPDATE/);
        const after = (await rawRow(f, table, "timed"))!;
        assert.equal(after.version, before.version);
        assert.ok(after.ms! > 2800, `${after.ms} ms left`);
      },
    );

    await t.step(
      "without a TTL, a read clears a leftover expiry, keeping the version",
      async () => {
        const before = (await rawRow(f, table, "timed"))!;
        assert.notEqual(before.ms, null);
        assert.deepEqual(await untimed.read("timed"), { n: 1 });
        const after = (await rawRow(f, table, "timed"))!;
        assert.deepEqual(after, { version: before.version, ms: null });
        recorder.take();
        await untimed.read("timed");
        assert.equal(recorder.take().length, 1, "cleared once, then reads are one SELECT again");
      },
    );

    await t.step("with a TTL, a read gives a session without expiry one", async () => {
      const before = (await rawRow(f, table, "untimed"))!;
      assert.deepEqual(await timed.read("untimed"), { n: 1 });
      const after = (await rawRow(f, table, "untimed"))!;
      assert.equal(after.version, before.version);
      assert.ok(after.ms! > 2800 && after.ms! <= 3000, `${after.ms} ms left`);
    });

    await t.step("has and listings renew nothing", async () => {
      await untimed.write("idle", { n: 2 });
      await f.admin.query(
        `UPDATE ${
          id(table)
        } SET expires_at = UTC_TIMESTAMP(3) + INTERVAL 1 SECOND WHERE \`key\` = ?`,
        ["idle"],
      );
      const before = (await rawRow(f, table, "idle"))!;
      assert.equal(await untimed.has("idle"), true);
      for await (const _ of untimed.readAllEntries());
      for await (const _ of timed.readAllKeys());
      const after = (await rawRow(f, table, "idle"))!;
      assert.ok(after.ms! <= before.ms!, "not renewed");
    });
  } finally {
    await f.cleanup();
  }
});

mysqlTest(
  "MysqlStorage: expired sessions are invisible, replaceable and purged in bounds",
  async (t) => {
    const f = new MysqlFixture();
    try {
      const table = f.table("purge");
      const storage = f.track(new MysqlStorage(f.pool, { table, ttl: 100 }));
      const untimed = f.track(new MysqlStorage(f.pool, { table }));
      for (let i = 0; i < 5; i++) await storage.write(`old-${i}`, { i });
      await untimed.write("keep", { keep: true });
      await sleep(250);
      const count = async () => {
        const [rows] = await f.admin.query(`SELECT COUNT(*) AS n FROM ${id(table)}`);
        return Number((rows as { n: number }[])[0].n);
      };

      await t.step("expired rows are not read, listed or counted by has", async () => {
        assert.equal(await storage.read("old-0"), undefined);
        assert.equal(await storage.has("old-1"), false);
        assert.deepEqual((await storage.readVersioned("old-2")).version, null);
        const keys: string[] = [];
        for await (const key of storage.readAllKeys()) keys.push(key);
        assert.deepEqual(keys, ["keep"]);
        assert.equal(await storage.deleteIfVersion("old-1", null), true, "nothing live there");
      });

      await t.step("a write expecting nothing takes an expired row over", async () => {
        const version = await storage.writeIfVersion("old-0", { fresh: true }, null);
        assert.equal(typeof version, "string");
        assert.deepEqual(await storage.readVersioned("old-0"), { value: { fresh: true }, version });
        assert.equal(await storage.writeIfVersion("old-0", { again: true }, null), null);
      });

      await t.step("purgeExpired deletes at most its limit, only expired rows", async () => {
        assert.equal(await count(), 6);
        assert.equal(await storage.purgeExpired(2), 2);
        assert.equal(await count(), 4);
        assert.equal(await storage.purgeExpired(), 2);
        assert.equal(await storage.purgeExpired(), 0);
        assert.deepEqual(await untimed.read("keep"), { keep: true });
        assert.deepEqual(await storage.read("old-0"), { fresh: true });
        await assert.rejects(() => storage.purgeExpired(0), RangeError);
        await assert.rejects(() => storage.purgeExpired(1.5), RangeError);
      });

      await t.step("writes purge by themselves, on the first write", async () => {
        const fresh = f.track(new MysqlStorage(f.pool, { table, ttl: 100 }));
        await fresh.write("short", { n: 1 });
        await sleep(250);
        const another = f.track(new MysqlStorage(f.pool, { table }));
        await another.write("trigger", { n: 1 });
        assert.equal(await rawRow(f, table, "short"), undefined, "purged by the first write");
      });
    } finally {
      await f.cleanup();
    }
  },
);

mysqlTest("MysqlStorage: tables", async (t) => {
  const f = new MysqlFixture();
  try {
    await t.step("the lease table is created only when leases are first used", async () => {
      const storage = f.track(new MysqlStorage(f.pool, { table: f.table("lazy") }));
      await storage.write("a", { n: 1 });
      assert.equal(await tableExists(f.admin, storage.table), true);
      assert.equal(await tableExists(f.admin, storage.leaseTable), false);
      await storage.releaseLease("a", "me");
      assert.equal(await tableExists(f.admin, storage.leaseTable), true);
    });

    await t.step("createTable: false says what to do when the table is missing", async () => {
      const table = f.table("manual");
      const storage = f.track(new MysqlStorage(f.pool, { table, createTable: false }));
      await assert.rejects(
        () => storage.write("a", { n: 1 }),
        (err: Error) =>
          err instanceof SessionError && /does not exist/.test(err.message) &&
          err.message.includes("MysqlStorage.createTableSql()"),
      );
      await assert.rejects(() => storage.acquireLease("a", "me", 1000), /does not exist/);
      for (const statement of MysqlStorage.createTableSql({ table }).split(";")) {
        if (statement.trim() !== "") await f.admin.query(statement);
      }
      await storage.write("a", { n: 1 });
      assert.deepEqual(await storage.read("a"), { n: 1 });
      assert.equal(await storage.acquireLease("a", "me", 1000), true);
    });

    await t.step("a table dropped under a running storage is created again", async () => {
      const storage = f.track(new MysqlStorage(f.pool, { table: f.table("dropped") }));
      await storage.write("a", { n: 1 });
      assert.equal(await storage.acquireLease("a", "me", 1000), true);
      await dropTables(f.admin, storage);
      assert.equal(await storage.read("a"), undefined);
      await storage.write("a", { n: 2 });
      assert.deepEqual(await storage.read("a"), { n: 2 });
      assert.equal(await storage.acquireLease("a", "me", 1000), true);
    });

    await t.step("a failed table creation is tried again by the next call", async () => {
      const broken = mysql.createPool({ uri: MYSQL_URL.replace(/\/[^/]*$/, "/no_such_db_sk") });
      try {
        const recorder = new Recorder(broken);
        const storage = new MysqlStorage(recorder, { table: f.table("nodb") });
        await assert.rejects(() => storage.write("a", { n: 1 }), /could not prepare the table/);
        await assert.rejects(() => storage.read("a"), /could not prepare the table/);
        const creates = recorder.take().filter((sql) => sql.startsWith("CREATE TABLE"));
        assert.equal(creates.length, 2);
      } finally {
        await broken.end();
      }
    });
  } finally {
    await f.cleanup();
  }
});

mysqlTest("MysqlStorage: handles, owners and closing", async (t) => {
  const f = new MysqlFixture();
  try {
    await t.step("a callback-API pool or something else is refused with advice", () => {
      const callbackPool = { execute() {}, query() {}, promise() {} };
      assert.throws(() => new MysqlStorage(callbackPool as never), /pool\.promise\(\)/);
      assert.throws(() => new MysqlStorage({} as never), /MysqlStorage\.connect\(url\)/);
    });

    await t.step("a lease owner over 255 bytes is refused", async () => {
      const storage = f.track(new MysqlStorage(f.pool, { table: f.table("owner") }));
      await assert.rejects(() => storage.acquireLease("k", "o".repeat(256), 1000), TypeError);
      assert.equal(await storage.acquireLease("k", "o".repeat(255), 1000), true);
    });

    await t.step("bad TTLs are refused at construction", () => {
      for (const ttl of [0, -1, NaN, 1e20]) {
        assert.throws(() => new MysqlStorage(f.pool, { ttl }), RangeError, String(ttl));
      }
      assert.equal(new MysqlStorage(f.pool, { ttl: Infinity }).ttl, undefined);
    });

    await t.step("idle connections killed by the server fail no later operation", async () => {
      const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 3 });
      try {
        const storage = f.track(new MysqlStorage(pool, { table: f.table("killed") }));
        await Promise.all([1, 2, 3].map((i) => storage.write(`k${i}`, { i })));
        const held = await Promise.all([1, 2, 3].map(() => pool.getConnection()));
        const ids = await Promise.all(held.map(async (c) => {
          const [rows] = await c.query("SELECT CONNECTION_ID() AS id");
          return (rows as { id: number }[])[0].id;
        }));
        held.forEach((c) => c.release());
        for (const connection of ids) await f.admin.query(`KILL ${Number(connection)}`);
        await sleep(100);
        for (let i = 0; i < 6; i++) assert.deepEqual(await storage.read("k1"), { i: 1 });
        await storage.write("k4", { i: 4 });
        assert.deepEqual(await storage.read("k4"), { i: 4 });
      } finally {
        await pool.end();
      }
    });

    await t.step("close ends a pool of connect(), and leaves a passed pool open", async () => {
      const table = f.table("close");
      const owned = f.track(MysqlStorage.connect(MYSQL_URL, { table }));
      await owned.write("a", { n: 1 });
      await owned.close();
      await owned.close(); // twice is fine
      await assert.rejects(() => owned.read("a"));
      const passed = f.track(new MysqlStorage(f.pool, { table }));
      await passed.close();
      assert.deepEqual(await passed.read("a"), { n: 1 });
    });
  } finally {
    await f.cleanup();
  }
});

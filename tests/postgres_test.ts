import assert from "node:assert/strict";
import { SessionError, SessionValueError } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import {
  admin,
  collect,
  DATABASE_URL,
  dropTables,
  id,
  pg,
  pgTest,
  Recorder,
  RUN,
  tableExists,
  withDb,
} from "./postgres_setup.ts";
import { sleep } from "./helpers/bot.ts";

pgTest("PostgresStorage: options are checked", async () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL });
  try {
    for (const ttl of [0, -1, NaN]) {
      assert.throws(() => new PostgresStorage(pool, { ttl }), /ttl must be a positive number/);
    }
    assert.throws(() => new PostgresStorage(pool, { table: "" }), /non-empty/);
    assert.throws(() => new PostgresStorage(pool, { table: "x".repeat(64) }), /63 bytes/);
    assert.throws(() => new PostgresStorage(pool, { table: "é".repeat(32) }), /64 bytes/);
    assert.throws(() => new PostgresStorage(pool, { schema: "a\0b" }), /NUL/);
    assert.throws(() => new PostgresStorage({} as never), /Pool or Client/);
    assert.equal(new PostgresStorage(pool).table, "sessions");
  } finally {
    await pool.end();
  }
});

pgTest("PostgresStorage: identifiers are escaped, values are parameters", async (t) => {
  await withDb(async (db, pool, storages) => {
    const canary = `${RUN}_canary`;
    await db.query(`CREATE TABLE ${id(canary)} (n int)`);
    await db.query(`INSERT INTO ${id(canary)} VALUES (1)`);
    const schema = `${RUN} "odd".Schema`;
    await db.query(`CREATE SCHEMA ${id(schema)}`);
    try {
      const names = [
        `${RUN}_MixedCase`,
        `${RUN}-with-hyphens`,
        `${RUN}.dotted.name`,
        `${RUN}_quo"te'`,
        `x"; DROP TABLE ${canary}; --`,
        `x'); DROP TABLE ${canary}; --`,
      ];
      await t.step("odd table names work and hold exactly their rows", async () => {
        for (const table of names) {
          const storage = new PostgresStorage(pool, { table, ttl: 60_000 });
          storages.push(storage);
          await storage.write("k", { table });
          await storage.write(`'); DROP TABLE ${canary}; --`, { evil: `"; DROP TABLE ${canary}` });
          assert.deepEqual(await storage.read("k"), { table });
          assert.ok(await tableExists(db, table), `table ${table} exists under its exact name`);
          const { rows } = await db.query(`SELECT key, value::text AS v FROM ${id(table)}`);
          assert.deepEqual(rows.map((r) => r.key).sort(), [
            "'); DROP TABLE " + canary + "; --",
            "k",
          ]);
          assert.ok(await storage.acquireLease("k", "me", 1000));
          assert.ok(await tableExists(db, storage.leaseTable), `lease table of ${table}`);
        }
      });
      await t.step("a schema with quotes and dots is escaped too", async () => {
        const storage = new PostgresStorage(pool, { schema, table: `Tab"le` });
        storages.push(storage);
        await storage.write("k", { v: 1 });
        assert.ok(await tableExists(db, `Tab"le`, schema));
        assert.deepEqual(await collect(storage.readAllKeys()), ["k"]);
        const injected = new PostgresStorage(pool, {
          schema: `public"; DROP TABLE ${canary}; --`,
        });
        await assert.rejects(() => injected.write("k", 1), SessionError);
      });
      await t.step("the canary table survived every attempt", async () => {
        const { rows } = await db.query(`SELECT n FROM ${id(canary)}`);
        assert.deepEqual(rows, [{ n: 1 }]);
      });
      await t.step("Sessions and sessions never touch each other's rows", async () => {
        const upper = new PostgresStorage(pool, { table: `${RUN}_Sessions` });
        const lower = new PostgresStorage(pool, { table: `${RUN}_sessions` });
        storages.push(upper, lower);
        await upper.write("42", { who: "upper" });
        await lower.write("42", { who: "lower" });
        await lower.write("43", { who: "lower" });
        assert.deepEqual(await upper.read("42"), { who: "upper" });
        assert.deepEqual(await collect(upper.readAllKeys()), ["42"]);
        assert.deepEqual(await collect(lower.readAllKeys()), ["42", "43"]);
        await upper.delete("42");
        assert.deepEqual(await lower.read("42"), { who: "lower" });
        const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${id(`${RUN}_Sessions`)}`);
        assert.equal(rows[0].n, 0);
      });
      await t.step("derived names stay within 63 bytes and stay distinct", async () => {
        const a = new PostgresStorage(pool, { table: "a".repeat(60) + "_x1" });
        const b = new PostgresStorage(pool, { table: "a".repeat(60) + "_x2" });
        storages.push(a, b);
        await a.write("k", 1);
        await b.write("k", 2);
        assert.ok(await a.acquireLease("k", "me", 1000));
        assert.ok(await b.acquireLease("k", "me", 1000));
        const enc = new TextEncoder();
        assert.ok(enc.encode(a.leaseTable).length <= 63);
        assert.notEqual(a.leaseTable, b.leaseTable);
        assert.ok(await tableExists(db, a.leaseTable));
        assert.ok(await tableExists(db, b.leaseTable));
        const { rows } = await db.query(
          "SELECT indexname FROM pg_indexes WHERE tablename = ANY($1) AND indexdef LIKE '%expires_at%'",
          [[a.table, b.table]],
        );
        assert.equal(new Set(rows.map((r) => r.indexname)).size, 2);
        for (const r of rows) assert.ok(enc.encode(r.indexname).length <= 63);
        assert.deepEqual([await a.read("k"), await b.read("k")], [1, 2]);
      });
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${id(canary)}`);
      for (const storage of storages.splice(0)) {
        if (storage.schema === schema) await dropTables(db, storage);
        else storages.push(storage);
      }
      await db.query(`DROP SCHEMA IF EXISTS ${id(schema)} CASCADE`);
    }
  });
});

pgTest("PostgresStorage: the stored row is the JSON value, written with one upsert", async (t) => {
  await withDb(async (db, pool, storages) => {
    const rec = new Recorder(pool);
    const storage = new PostgresStorage(rec, { table: `${RUN}_rows`, ttl: 60_000 });
    storages.push(storage);
    const row = async (s: PostgresStorage<unknown>) =>
      (await db.query(
        `SELECT value::text AS text, pg_typeof(value)::text AS type, version, expires_at, updated_at
         FROM ${id(s.table)} WHERE key = 'k'`,
      )).rows[0];

    await t.step("json (default): the exact text, any string kept, queryable", async () => {
      const value = { zz: 1, a: { y: "ü" }, "": [], nul: "a\u0000b", lone: "x\ud800y" };
      await storage.write("k", value);
      const stored = await row(storage);
      assert.equal(stored.type, "json");
      assert.equal(stored.text, JSON.stringify(value), "exact JSON text, key order kept");
      const left = stored.expires_at.getTime() - stored.updated_at.getTime();
      assert.ok(Math.abs(left - 90_000) < 50, `expiry 1.5 TTLs after the write (${left})`);
      assert.equal(JSON.stringify(await storage.read("k")), JSON.stringify(value));
      await storage.write("q", { a: { y: "ü" } });
      const { rows } = await db.query(
        `SELECT value->'a'->>'y' AS y FROM ${id(storage.table)} WHERE key = 'q'`,
      );
      assert.equal(rows[0].y, "ü", "the value can be queried in SQL");
    });

    await t.step('valueType "jsonb": normalized, NUL and lone surrogates refused', async () => {
      const binary = new PostgresStorage(rec, { table: `${RUN}_rows_jsonb`, valueType: "jsonb" });
      storages.push(binary);
      const value = { zz: 1, a: { y: "ü" }, "": [] };
      await binary.write("k", value);
      const stored = await row(binary);
      assert.equal(stored.type, "jsonb");
      assert.deepEqual(JSON.parse(stored.text), value);
      assert.notEqual(stored.text, JSON.stringify(value), "normalized by PostgreSQL");
      assert.deepEqual(await binary.read("k"), value);
      rec.texts.length = 0;
      await assert.rejects(() => binary.write("k", { s: "a\u0000b" }), SessionValueError);
      await assert.rejects(() => binary.write("k", { s: "\ud800" }), SessionValueError);
      await binary.write("k", { s: "\\u0000 is fine as text" });
      assert.equal(rec.texts.length, 1, "only the last write reached the database");
    });

    await t.step("a jsonb table of an earlier version keeps working", async () => {
      // Created as earlier versions did (jsonb was their default), then used
      // with today's default options.
      const table = `${RUN}_rows_old`;
      await db.query(PostgresStorage.createTableSql({ table, valueType: "jsonb" }));
      const old = new PostgresStorage(pool, { table });
      storages.push(old);
      await old.write("k", { b: 1, a: 2 });
      assert.deepEqual(await old.read("k"), { b: 1, a: 2 });
      assert.equal((await row(old)).type, "jsonb");
      const { version } = await old.readVersioned("k");
      const next = await old.writeIfVersion("k", { n: 1 }, version);
      assert.ok(typeof next === "string");
      assert.ok(await old.writeIfVersion("new", { n: 1 }, null));
      for (const unsafe of [{ s: "a\u0000b" }, { s: "\ud800" }]) {
        await assert.rejects(() => old.write("k", unsafe), (err: Error) => {
          assert.ok(err instanceof SessionValueError, String(err));
          assert.match(err.message, /jsonb value column.*ALTER TABLE.*TYPE json/s);
          return true;
        });
        await assert.rejects(() => old.writeIfVersion("k", unsafe, next), SessionValueError);
        await assert.rejects(() => old.writeIfVersion("fresh", unsafe, null), SessionValueError);
      }
      assert.deepEqual(await old.readVersioned("k"), { value: { n: 1 }, version: next });
      assert.equal(await old.has("fresh"), false, "nothing was written");
    });

    await t.step("one upsert per write; bad input refused before any I/O", async () => {
      rec.texts.length = 0;
      await storage.write("k", { v: 2 });
      assert.equal(rec.texts.length, 1, "a (non-purging) write is a single statement");
      assert.match(rec.texts[0], /INSERT INTO[\s\S]*ON CONFLICT \(key\) DO UPDATE/);

      rec.texts.length = 0;
      await assert.rejects(() => storage.write("k", { d: new Date() } as never), SessionValueError);
      await assert.rejects(() => storage.write("bad\0key", 1), SessionError);
      await assert.rejects(() => storage.write("lone\ud800", 1), SessionError);
      assert.deepEqual(rec.texts, [], "refused before any I/O");
      assert.deepEqual(await storage.read("k"), { v: 2 });
    });
  });
});

pgTest(
  "PostgresStorage: expiry is filtered, renewed without rewriting, purged in batches",
  async (t) => {
    await withDb(async (db, pool, storages) => {
      const storage = new PostgresStorage(pool, { table: `${RUN}_ttl`, ttl: 2000 });
      storages.push(storage);
      const table = id(storage.table);
      const row = async (key: string) =>
        (await db.query(
          `SELECT value::text AS v, version, expires_at, updated_at, xmin::text AS xmin
         FROM ${table} WHERE key = $1`,
          [key],
        )).rows[0];

      await t.step("a read with more than a TTL left changes nothing", async () => {
        await storage.write("a", { n: 1 });
        const before = await row("a");
        await sleep(200);
        assert.deepEqual(await storage.read("a"), { n: 1 });
        assert.deepEqual(await row("a"), before);
      });

      await t.step("a read with less than a TTL left renews only the expiry", async () => {
        const before = await row("a");
        await sleep(1100);
        assert.deepEqual(await storage.readVersioned("a"), {
          value: { n: 1 },
          version: before.version,
        });
        const after = await row("a");
        assert.ok(after.expires_at > before.expires_at, "expiry moved");
        assert.ok(after.expires_at.getTime() - Date.now() > 1500, "expiry is a full TTL ahead");
        assert.equal(after.v, before.v);
        assert.equal(after.version, before.version, "version unchanged");
        assert.deepEqual(after.updated_at, before.updated_at, "updated_at unchanged");
      });

      await t.step("expired rows are invisible everywhere", async () => {
        await db.query(
          `INSERT INTO ${table} (key, value, version, expires_at)
         VALUES ('old', '{"stale":true}', 1, now() - interval '1 second')`,
        );
        assert.equal(await storage.read("old"), undefined);
        assert.equal(await storage.has("old"), false);
        assert.deepEqual(await collect(storage.readAllKeys()), ["a"]);
        assert.deepEqual(await collect(storage.readAllValues()), [{ n: 1 }]);
        assert.deepEqual((await storage.readVersioned("old")).version, null);
        assert.equal(await storage.deleteIfVersion("old", "1"), false);
        assert.ok(
          await storage.writeIfVersion("old", { fresh: true }, null),
          "expired counts as absent",
        );
        assert.deepEqual(await storage.read("old"), { fresh: true });
      });

      await t.step("purging deletes expired rows in bounded batches only", async () => {
        await db.query(
          `INSERT INTO ${table} (key, value, version, expires_at)
         SELECT 'x' || i, '1', 1, now() - interval '1 minute' FROM generate_series(1, 250) AS i`,
        );
        const count = async () =>
          (await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
        assert.equal(await storage.purgeExpired(), 100);
        assert.equal(await count(), 152);
        assert.equal(await storage.purgeExpired(1000), 150);
        assert.equal(await count(), 2);
        assert.deepEqual(await collect(storage.readAllKeys()), ["a", "old"]);
      });

      await t.step("writes purge by themselves, a batch on the first write", async () => {
        const fresh = new PostgresStorage(pool, { table: storage.table, ttl: 2000 });
        await db.query(
          `INSERT INTO ${table} (key, value, version, expires_at)
         SELECT 'y' || i, '1', 1, now() - interval '1 minute' FROM generate_series(1, 150) AS i`,
        );
        await fresh.write("b", 1);
        const { rows } = await db.query(
          `SELECT count(*)::int AS n FROM ${table} WHERE expires_at <= now()`,
        );
        assert.equal(rows[0].n, 50, "one batch of 100 went, no more");
      });
    });
  },
);

pgTest("PostgresStorage: listing pages through the table by key", async () => {
  await withDb(async (db, pool, storages) => {
    const rec = new Recorder(pool);
    const storage = new PostgresStorage(rec, { table: `${RUN}_pages` });
    storages.push(storage);
    await storage.write("first", 0);
    const table = id(storage.table);
    await db.query(
      `INSERT INTO ${table} (key, value, version)
       SELECT lpad(i::text, 5, '0'), json_build_object('i', i), 1 FROM generate_series(1, 1100) AS i`,
    );
    const expected = [
      ...Array.from({ length: 1100 }, (_, i) => String(i + 1).padStart(5, "0")),
      "first",
    ];
    rec.texts.length = 0;
    assert.deepEqual(await collect(storage.readAllKeys()), expected);
    assert.equal(rec.texts.length, 3, "three pages of at most 500 keys");
    for (const text of rec.texts) assert.match(text, /ORDER BY s\.key LIMIT \$\d/);

    rec.texts.length = 0;
    const entries = await collect(storage.readAllEntries());
    assert.equal(entries.length, 1101);
    assert.deepEqual(entries[41], ["00042", { i: 42 }]);
    assert.equal(rec.texts.length, 23, "pages of at most 50 values");

    rec.texts.length = 0;
    for await (const _ of storage.readAllValues()) break;
    assert.equal(rec.texts.length, 1, "stopping early fetches no more pages");
    assert.equal(await storage.has("00007"), true);
    assert.equal(await storage.has("7"), false);
  });
});

pgTest("PostgresStorage: table creation", async (t) => {
  await withDb(async (db, _pool, storages) => {
    await t.step("many processes creating the same table at once all succeed", async () => {
      const table = `${RUN}_race`;
      const many = Array.from(
        { length: 8 },
        () => PostgresStorage.connect(DATABASE_URL, { table }),
      );
      storages.push(...many);
      await Promise.all(many.map((s, i) => s.write(`k${i}`, i)));
      assert.equal((await collect(many[0].readAllKeys())).length, 8);
    });

    await t.step("a failed creation is retried by the next operation", async () => {
      const schema = `${RUN}_later`;
      const pool = new pg.Pool({ connectionString: DATABASE_URL });
      const storage = new PostgresStorage(pool, { schema, table: "s" });
      try {
        await assert.rejects(() => storage.write("k", 1), (err: Error) => {
          assert.ok(err instanceof SessionError);
          assert.match(err.message, /could not create the session table .*schema exists/s);
          return true;
        });
        await db.query(`CREATE SCHEMA ${id(schema)}`);
        await storage.write("k", 1);
        assert.deepEqual(await storage.read("k"), 1);
        assert.ok(await tableExists(db, "s", schema));
      } finally {
        await pool.end();
        await db.query(`DROP SCHEMA IF EXISTS ${id(schema)} CASCADE`);
      }
    });

    await t.step("createTable: false sends no DDL and explains a missing table", async () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL });
      const rec = new Recorder(pool);
      const options = { table: `${RUN}_byhand`, createTable: false, ttl: 60_000 };
      const storage = new PostgresStorage(rec, options);
      storages.push(storage);
      try {
        await assert.rejects(() => storage.read("k"), /does not exist.*createTableSql/s);
        assert.equal(await tableExists(db, options.table), false);
        await db.query(PostgresStorage.createTableSql(options));
        await storage.write("k", { by: "hand" });
        assert.deepEqual(await storage.read("k"), { by: "hand" });
        assert.ok(await storage.acquireLease("k", "me", 1000));
        assert.ok(rec.texts.every((text) => !/CREATE|advisory/i.test(text)), "no DDL sent");
      } finally {
        await pool.end();
      }
    });
  });
});

pgTest("PostgresStorage: a terminated backend fails only what it hits", async (t) => {
  await withDb(async (db, _pool, storages) => {
    const app = `${RUN}_term`;
    const url = new URL(DATABASE_URL);
    url.searchParams.set("application_name", app);
    const storage = PostgresStorage.connect<{ n: number }>(url.href, { table: app });
    storages.push(storage as PostgresStorage<unknown>);
    await storage.write("k", { n: 1 });

    await t.step(
      "an operation on a terminated connection rejects, nothing half-written",
      async () => {
        // Hold the row so that the next write waits on the server, then kill it.
        await db.query("BEGIN");
        await db.query(`SELECT 1 FROM ${id(app)} WHERE key = 'k' FOR UPDATE`);
        // Expect the rejection from the start: it may come while the
        // terminating query below is still being awaited.
        const rejected = assert.rejects(storage.write("k", { n: 2 }), /terminat/i);
        let pid: number | undefined;
        for (let i = 0; i < 50 && pid === undefined; i++) {
          const { rows } = await db.query(
            `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
            [app],
          );
          pid = rows[0]?.pid;
          if (pid === undefined) await sleep(50);
        }
        assert.ok(pid !== undefined, "the write was seen waiting");
        await db.query("SELECT pg_terminate_backend($1)", [pid]);
        await rejected;
        await db.query("ROLLBACK");
        assert.deepEqual(await storage.read("k"), { n: 1 });
      },
    );

    await t.step(
      "idle connections dying does not crash the process; the next write works",
      async () => {
        await Promise.all([storage.read("k"), storage.read("k"), storage.read("k")]);
        const { rows } = await db.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
          [app],
        );
        assert.ok(rows.length >= 1);
        await sleep(300);
        await storage.write("k", { n: 3 });
        assert.deepEqual(await storage.read("k"), { n: 3 });
        const check = await db.query(`SELECT value::text AS v FROM ${id(app)} WHERE key = 'k'`);
        assert.equal(check.rows[0].v, '{"n":3}');
      },
    );
  });
});

pgTest("PostgresStorage: close ends only a pool the storage opened", async () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL });
  const db = await admin();
  const storage = new PostgresStorage(pool, { table: `${RUN}_close` });
  try {
    await storage.write("k", 1);
    await storage.close();
    assert.deepEqual(await storage.read("k"), 1, "the caller's pool still works");
    const owned = PostgresStorage.connect(DATABASE_URL, { table: `${RUN}_close` });
    assert.deepEqual(await owned.read("k"), 1);
    await owned.close();
    await owned.close();
    await assert.rejects(() => owned.read("k"));
  } finally {
    await dropTables(db, storage);
    await pool.end();
    await db.end();
  }
});

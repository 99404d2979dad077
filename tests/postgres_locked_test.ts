/**
 * PostgresStorage's locked read and save (issue 18): `acquireLeaseAndRead`
 * takes the lease and reads the session in one statement, and
 * `saveAndReleaseLease` writes or deletes and gives the lease up in one
 * statement, so a locked update costs two round trips.
 *
 * The hard part is the snapshot: under READ COMMITTED one statement reads
 * with one snapshot, taken when it starts. If the holder commits "write the
 * session + delete the lease" while another process's combined statement
 * waits for that lease row, a read in the same plain statement sees the
 * session as it was before the write. The test below reproduces exactly that
 * on two real connections and shows that a naive CTE reads the stale value
 * while the storage reads the new one. Also: the results of each call, TTLs,
 * `json` and `jsonb`, tables made by an earlier version (without the
 * function the locked read uses), many processes on one key, and all of it
 * through pgbouncer in transaction pooling mode.
 */
import assert from "node:assert/strict";
import { SessionError, SessionValueError } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { SAVE_RELEASE_ARGS, tableNames } from "../storages/postgres/sql.ts";
import { sleep } from "./helpers/bot.ts";
import { pgbouncerTest } from "./fixtures/pgbouncer.ts";
import {
  admin,
  DATABASE_URL,
  dropTables,
  id,
  pg,
  pgTest,
  Recorder,
  RUN,
  tableExists,
} from "./postgres_setup.ts";

type Storage = PostgresStorage<unknown>;

/** The escaped, qualified name of `name` in `storage`'s schema. */
function qualified(storage: Storage, name: string): string {
  return (storage.schema === undefined ? "" : `${id(storage.schema)}.`) + id(name);
}

/** The function the locked read uses, with its argument types. */
function leaseRead(storage: Storage): string {
  const name = tableNames(storage.schema, storage.table).leaseRead;
  return `${qualified(storage, name)}(text, text, float8)`;
}

/** The function the locked save uses (its name only: one of its kind). */
function saveRelease(storage: Storage): string {
  return qualified(storage, tableNames(storage.schema, storage.table).saveRelease);
}

/** Whether that function exists. */
async function functionExists(db: pg.Client, storage: Storage): Promise<boolean> {
  const { rows } = await db.query("SELECT to_regprocedure($1) IS NOT NULL AS found", [
    leaseRead(storage),
  ]);
  return rows[0].found;
}

/** Drops the tables and the function of `storage`. */
async function dropAll(db: pg.Client, storage: Storage): Promise<void> {
  await dropTables(db, storage);
  await db.query(`DROP FUNCTION IF EXISTS ${leaseRead(storage)}`);
  await db.query(`DROP FUNCTION IF EXISTS ${saveRelease(storage)}(${SAVE_RELEASE_ARGS})`);
}

/** Runs `fn` with an admin client and a pool, dropping what `storages` made afterwards. */
async function withLocked(
  fn: (db: pg.Client, pool: pg.Pool, storages: Storage[]) => Promise<void>,
): Promise<void> {
  const db = await admin();
  const pool = new pg.Pool({ connectionString: DATABASE_URL });
  pool.on("error", () => {});
  const storages: Storage[] = [];
  try {
    await fn(db, pool, storages);
  } finally {
    for (const storage of storages) {
      await storage.close();
      await dropAll(db, storage);
    }
    await pool.end();
    await db.end();
  }
}

/** Row and lease of `key`, as stored. */
function inspector(db: pg.Client, storage: Storage) {
  return {
    async row(key: string) {
      return (await db.query(
        `SELECT value::text AS text, version::text AS version, expires_at
         FROM ${qualified(storage, storage.table)} WHERE key = $1`,
        [key],
      )).rows[0];
    },
    async lease(key: string) {
      return (await db.query(
        `SELECT owner, expires_at FROM ${qualified(storage, storage.leaseTable)} WHERE key = $1`,
        [key],
      )).rows[0];
    },
  };
}

/** A connected client, for a storage whose one connection must be known. */
async function client(url = DATABASE_URL): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/** Waits until one of the backends `pids` waits for a lock, failing after 10 s. */
async function waitingForLock(db: pg.Client, pids: number[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { rows } = await db.query(
      "SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1) AND wait_event_type = 'Lock'",
      [pids],
    );
    if (rows.length > 0) return;
    await sleep(5);
  }
  throw new Error("the combined statement never waited for the holder's lock");
}

for (const valueType of ["json", "jsonb"] as const) {
  pgTest(`PostgresStorage (${valueType}): acquireLeaseAndRead`, async (t) => {
    await withLocked(async (db, pool, storages) => {
      const rec = new Recorder(pool);
      const storage = new PostgresStorage<unknown>(rec, {
        table: `${RUN}_alr_${valueType}`,
        valueType,
        ttl: 60_000,
      });
      storages.push(storage);
      const { row, lease } = inspector(db, storage);

      await t.step("a fresh storage: creates the tables and the function, then reads", async () => {
        assert.deepEqual(await storage.acquireLeaseAndRead("k", "me", 5000), {
          value: undefined,
          version: null,
        });
        assert.ok(await tableExists(db, storage.table));
        assert.ok(await tableExists(db, storage.leaseTable));
        assert.ok(await functionExists(db, storage));
        assert.equal((await lease("k")).owner, "me");
        await storage.releaseLease("k", "me");
      });

      await t.step("taken: one statement, value and version as read returns them", async () => {
        const value = { z: 1, a: "ключ 🎉", nested: [1, 2.5, null] };
        await storage.write("k", value);
        const expected = await storage.readVersioned("k");
        rec.texts.length = 0;
        const read = await storage.acquireLeaseAndRead("k", "me", 5000);
        assert.equal(rec.texts.length, 1, "one statement");
        assert.deepEqual(read, expected);
        assert.equal(read?.version, (await row("k")).version);
        const held = await lease("k");
        assert.equal(held.owner, "me");
        const left = held.expires_at.getTime() - Date.now();
        assert.ok(left > 4000 && left <= 5000, `the lease lasts the ttl given (${left})`);
      });

      await t.step("held by another owner: null, the lease stays theirs", async () => {
        rec.texts.length = 0;
        assert.equal(await storage.acquireLeaseAndRead("k", "other", 5000), null);
        assert.equal(rec.texts.length, 1, "one statement");
        assert.equal((await lease("k")).owner, "me");
        assert.equal(await storage.acquireLease("k", "other", 5000), false, "as acquireLease");
      });

      await t.step("the holder takes it again, as acquireLease lets it", async () => {
        const read = await storage.acquireLeaseAndRead("k", "me", 20_000);
        assert.deepEqual(read?.value, (await storage.readVersioned("k")).value);
        const left = (await lease("k")).expires_at.getTime() - Date.now();
        assert.ok(left > 15_000, `extended to the new ttl (${left})`);
      });

      await t.step("an expired lease of another owner is taken over", async () => {
        assert.deepEqual(await storage.acquireLeaseAndRead("short", "gone", 50), {
          value: undefined,
          version: null,
        });
        await sleep(80);
        assert.deepEqual(await storage.acquireLeaseAndRead("short", "me", 5000), {
          value: undefined,
          version: null,
        });
        assert.equal((await lease("short")).owner, "me");
      });

      await t.step("live rows only: an expired session reads as absent", async () => {
        await storage.write("old", { n: 1 });
        await db.query(
          `UPDATE ${id(storage.table)} SET expires_at = now() - interval '1 second'
           WHERE key = 'old'`,
        );
        rec.texts.length = 0;
        assert.deepEqual(await storage.acquireLeaseAndRead("old", "me", 5000), {
          value: undefined,
          version: null,
        });
        assert.equal(rec.texts.length, 1);
      });

      await t.step("bad arguments are refused before any I/O", async () => {
        rec.texts.length = 0;
        await assert.rejects(() => storage.acquireLeaseAndRead("bad\0", "me", 5000), SessionError);
        await assert.rejects(() => storage.acquireLeaseAndRead("k", "", 5000));
        await assert.rejects(() => storage.acquireLeaseAndRead("k", "me", -1));
        assert.deepEqual(rec.texts, []);
      });
    });
  });

  pgTest(`PostgresStorage (${valueType}): saveAndReleaseLease`, async (t) => {
    await withLocked(async (db, pool, storages) => {
      const rec = new Recorder(pool);
      const storage = new PostgresStorage<unknown>(rec, {
        table: `${RUN}_sarl_${valueType}`,
        valueType,
      });
      storages.push(storage);
      const { row, lease } = inspector(db, storage);
      /** Takes the lease of `key` for "me" and returns the version read. */
      const take = async (key: string) => {
        const read = await storage.acquireLeaseAndRead(key, "me", 5000);
        assert.ok(read !== null, `the lease of ${key} is free`);
        return read.version;
      };

      await t.step("the first save of a fresh storage is followed by a purge batch", async () => {
        await take("first");
        rec.texts.length = 0;
        const saved = await storage.saveAndReleaseLease("first", { n: 1 }, null, "me");
        assert.equal(saved.saved, true);
        assert.equal(rec.texts.length, 2, "the save and the first purge batch");
        assert.match(rec.texts[1], /DELETE FROM[\s\S]*expires_at <= now\(\)/);
      });

      await t.step("version: compare-and-set, the lease given up, one statement", async () => {
        const version = await take("first");
        rec.texts.length = 0;
        const saved = await storage.saveAndReleaseLease("first", { n: 2 }, version, "me");
        assert.equal(rec.texts.length, 1, "one statement");
        assert.ok(saved.saved && typeof saved.version === "string" && saved.version !== version);
        const stored = await row("first");
        assert.equal(stored.version, saved.version, "the new version is the stored one");
        assert.deepEqual(JSON.parse(stored.text), { n: 2 });
        assert.equal(await lease("first"), undefined, "the lease row is gone");
      });

      await t.step("a stale version: conflict, nothing written, the lease kept", async () => {
        const version = await take("first");
        const before = await row("first");
        for (const stale of ["12345", "not a version", null]) {
          rec.texts.length = 0;
          assert.deepEqual(await storage.saveAndReleaseLease("first", { n: 9 }, stale, "me"), {
            saved: false,
            reason: "conflict",
          }, String(stale));
          assert.equal(rec.texts.length, 1, "one statement");
          assert.deepEqual(await row("first"), before, "nothing written");
          assert.equal((await lease("first"))?.owner, "me", "the lease is still held");
        }
        assert.equal(
          (await storage.saveAndReleaseLease("first", { n: 3 }, version, "me")).saved,
          true,
        );
      });

      await t.step("no lease, a foreign lease, an expired lease: nothing written", async () => {
        await storage.write("free", { n: 1 });
        const { version } = await storage.readVersioned("free");
        const before = await row("free");
        const tries: [string | null | undefined, unknown][] = [
          [version, { n: 2 }],
          [undefined, { n: 2 }],
          [null, { n: 2 }],
          [version, undefined],
          [undefined, undefined],
          [null, undefined],
        ];
        const attempt = async (why: string) => {
          for (const [expected, value] of tries) {
            rec.texts.length = 0;
            assert.deepEqual(
              await storage.saveAndReleaseLease("free", value, expected, "me"),
              { saved: false, reason: "lease" },
              `${why}: ${expected} ${JSON.stringify(value)}`,
            );
            assert.equal(rec.texts.length, 1, "one statement");
            assert.deepEqual(await row("free"), before, `${why}: nothing written`);
          }
        };
        await attempt("no lease");
        assert.equal(await storage.acquireLease("free", "other", 5000), true);
        await attempt("a foreign lease");
        assert.equal((await lease("free")).owner, "other", "the foreign lease is kept");
        await storage.releaseLease("free", "other");
        assert.equal(await storage.acquireLease("free", "me", 30), true);
        await sleep(60);
        await attempt("my expired lease");
        assert.equal((await lease("free")).owner, "me", "nothing given up either");
        // Taken over by another owner after it expired: still not mine.
        assert.equal(await storage.acquireLease("free", "other", 5000), true);
        await attempt("taken over after it expired");
        await storage.releaseLease("free", "other");
      });

      await t.step("null: insert if absent; conflict if something live is stored", async () => {
        await take("new");
        const saved = await storage.saveAndReleaseLease("new", { fresh: true }, null, "me");
        assert.ok(saved.saved);
        assert.equal((await row("new")).version, saved.version);
        await take("new");
        assert.deepEqual(await storage.saveAndReleaseLease("new", { n: 2 }, null, "me"), {
          saved: false,
          reason: "conflict",
        });
        assert.equal((await lease("new")).owner, "me");
        // An expired row counts as absent.
        await db.query(
          `UPDATE ${id(storage.table)} SET expires_at = now() - interval '1 second'
           WHERE key = 'new'`,
        );
        const over = await storage.saveAndReleaseLease("new", { n: 3 }, null, "me");
        assert.ok(over.saved, "written over the expired row");
        assert.deepEqual(JSON.parse((await row("new")).text), { n: 3 });
        assert.equal((await row("new")).expires_at, null, "no TTL: no expiry");
        assert.equal(await lease("new"), undefined);
      });

      await t.step("undefined: unconditional, over whatever is stored", async () => {
        await storage.write("any", { n: 1 });
        await take("any");
        await storage.write("any", { n: "changed meanwhile" });
        rec.texts.length = 0;
        const saved = await storage.saveAndReleaseLease("any", { n: 2 }, undefined, "me");
        assert.equal(rec.texts.length, 1);
        assert.ok(saved.saved && saved.version === (await row("any")).version);
        assert.deepEqual(JSON.parse((await row("any")).text), { n: 2 });
        assert.equal(await lease("any"), undefined);
        await take("none");
        assert.ok((await storage.saveAndReleaseLease("none", [], undefined, "me")).saved);
        assert.equal((await row("none")).text, "[]");
      });

      await t.step("delete: unconditional, by version, if absent", async () => {
        await storage.write("d", { n: 1 });
        await take("d");
        rec.texts.length = 0;
        assert.deepEqual(await storage.saveAndReleaseLease("d", undefined, undefined, "me"), {
          saved: true,
          version: null,
        });
        assert.equal(rec.texts.length, 1, "one statement, no purge after a delete");
        assert.equal(await row("d"), undefined);
        assert.equal(await lease("d"), undefined);
        await take("d");
        assert.deepEqual(
          await storage.saveAndReleaseLease("d", undefined, undefined, "me"),
          { saved: true, version: null },
          "nothing stored",
        );

        await storage.write("d", { n: 2 });
        const version = await take("d");
        for (const wrong of ["12345", "not a version", null]) {
          assert.deepEqual(await storage.saveAndReleaseLease("d", undefined, wrong, "me"), {
            saved: false,
            reason: "conflict",
          }, String(wrong));
          assert.ok(await row("d"), "not deleted");
          assert.equal((await lease("d")).owner, "me", "the lease is kept");
        }
        assert.deepEqual(await storage.saveAndReleaseLease("d", undefined, version, "me"), {
          saved: true,
          version: null,
        });
        assert.equal(await row("d"), undefined);
        assert.equal(await lease("d"), undefined);

        await take("d");
        assert.deepEqual(await storage.saveAndReleaseLease("d", undefined, null, "me"), {
          saved: true,
          version: null,
        }, "nothing stored, none expected");
        assert.equal(await lease("d"), undefined);
      });

      await t.step("a value jsonb cannot hold", async () => {
        await take("unsafe");
        rec.texts.length = 0;
        const result = await storage.saveAndReleaseLease("unsafe", { s: "a\u0000b" }, null, "me")
          .then((r) => r, (err) => err);
        if (valueType === "jsonb") {
          assert.ok(result instanceof SessionValueError, String(result));
          assert.deepEqual(rec.texts, [], "refused before any I/O");
        } else {
          assert.equal(result.saved, true, "json keeps it");
          assert.deepEqual(await storage.read("unsafe"), { s: "a\u0000b" });
        }
        const stored = await storage.readVersioned("first");
        await take("first");
        await storage.saveAndReleaseLease("first", { zz: 1, a: 2 }, stored.version, "me");
        const text = (await row("first")).text;
        assert.equal(
          text,
          valueType === "json" ? '{"zz":1,"a":2}' : '{"a": 2, "zz": 1}',
          "json keeps the text, jsonb normalizes it",
        );
      });

      await t.step("bad arguments are refused before any I/O", async () => {
        rec.texts.length = 0;
        await assert.rejects(() => storage.saveAndReleaseLease("bad\0", 1, null, "me"));
        await assert.rejects(() => storage.saveAndReleaseLease("k", 1, null, ""));
        await assert.rejects(() => storage.saveAndReleaseLease("k", () => 1, null, "me"));
        assert.deepEqual(rec.texts, []);
      });
    });
  });
}

pgTest("PostgresStorage: locked read and save with a TTL", async (t) => {
  await withLocked(async (db, pool, storages) => {
    const rec = new Recorder(pool);
    const table = `${RUN}_locked_ttl`;
    const timed = new PostgresStorage<unknown>(rec, { table, ttl: 60_000 });
    const untimed = new PostgresStorage<unknown>(rec, { table });
    storages.push(timed);
    const { row } = inspector(db, timed);
    const expireIn = (key: string, interval: string) =>
      db.query(
        `UPDATE ${id(table)} SET expires_at = now() + interval '${interval}' WHERE key = $1`,
        [key],
      );

    await t.step("a save sets the expiry 1.5 TTLs ahead", async () => {
      await timed.acquireLeaseAndRead("k", "me", 5000);
      assert.ok((await timed.saveAndReleaseLease("k", { n: 1 }, null, "me")).saved);
      const left = (await row("k")).expires_at.getTime() - Date.now();
      assert.ok(left > 85_000 && left <= 90_000, `1.5 TTLs ahead (${left})`);
      const { version } = await timed.readVersioned("k");
      await timed.acquireLeaseAndRead("k", "me", 5000);
      await expireIn("k", "10 seconds");
      assert.ok((await timed.saveAndReleaseLease("k", { n: 2 }, version, "me")).saved);
      assert.ok((await row("k")).expires_at.getTime() - Date.now() > 85_000, "renewed by a CAS");
    });

    await t.step("not due: one statement, the expiry untouched", async () => {
      const before = await row("k");
      rec.texts.length = 0;
      const read = await timed.acquireLeaseAndRead("k", "me", 5000);
      assert.deepEqual(read, { value: { n: 2 }, version: before.version });
      assert.equal(rec.texts.length, 1);
      assert.deepEqual(await row("k"), before);
      await timed.releaseLease("k", "me");
    });

    await t.step("due: a second statement renews, keeping the version", async () => {
      await expireIn("k", "10 seconds");
      const before = await row("k");
      rec.texts.length = 0;
      const read = await timed.acquireLeaseAndRead("k", "me", 5000);
      assert.deepEqual(read, { value: { n: 2 }, version: before.version });
      assert.equal(rec.texts.length, 2, "the combined statement and the renewing UPDATE");
      assert.match(rec.texts[1], /^UPDATE/);
      const after = await row("k");
      assert.ok(after.expires_at.getTime() - Date.now() > 85_000, "renewed");
      assert.equal(after.version, before.version);
      await timed.releaseLease("k", "me");
    });

    await t.step("without a TTL, a leftover expiry is cleared, once", async () => {
      rec.texts.length = 0;
      const read = await untimed.acquireLeaseAndRead("k", "me", 5000);
      assert.deepEqual(read?.value, { n: 2 });
      assert.equal(rec.texts.length, 2, "the combined statement and the clearing UPDATE");
      assert.equal((await row("k")).expires_at, null);
      await untimed.releaseLease("k", "me");
      rec.texts.length = 0;
      await untimed.acquireLeaseAndRead("k", "me", 5000);
      assert.equal(rec.texts.length, 1);
      await untimed.releaseLease("k", "me");
    });

    await t.step("a session that expired is absent, and null writes over it", async () => {
      await timed.write("gone", { n: 1 });
      await expireIn("gone", "-1 second");
      assert.deepEqual(await timed.acquireLeaseAndRead("gone", "me", 5000), {
        value: undefined,
        version: null,
      });
      assert.ok((await timed.saveAndReleaseLease("gone", { n: 2 }, null, "me")).saved);
      assert.deepEqual(await timed.read("gone"), { n: 2 });
    });

    await t.step("the lease lasts its own ttl: then another owner takes it", async () => {
      assert.ok(await timed.acquireLeaseAndRead("short", "me", 100));
      assert.equal(await timed.acquireLeaseAndRead("short", "other", 5000), null);
      await sleep(150);
      assert.deepEqual(await timed.acquireLeaseAndRead("short", "other", 5000), {
        value: undefined,
        version: null,
      });
      assert.deepEqual(await timed.saveAndReleaseLease("short", 1, null, "me"), {
        saved: false,
        reason: "lease",
      });
      assert.equal(await timed.has("short"), false);
    });
  });
});

pgTest(
  "PostgresStorage: the locked save's function serves json and jsonb columns, and another function of its name changes nothing",
  async (t) => {
    await withLocked(async (db, pool, storages) => {
      for (const column of ["json", "jsonb"] as const) {
        await t.step(`a ${column} column, the default option`, async () => {
          const table = `${RUN}_fn_${column}`;
          await db.query(PostgresStorage.createTableSql({ table, valueType: column }));
          const rec = new Recorder(pool);
          const storage = new PostgresStorage<unknown>(rec, { table });
          storages.push(storage);
          await storage.write("k", { b: 1, a: 2 });
          const read = await storage.acquireLeaseAndRead("k", "me", 5000);
          rec.texts.length = 0;
          const saved = await storage.saveAndReleaseLease("k", { b: 3, a: 4 }, read!.version, "me");
          assert.ok(saved.saved);
          assert.equal(rec.texts.length, 1);
          assert.match(rec.texts[0], /_save_release"\(/);
          const { rows } = await db.query(
            `SELECT value::text AS text FROM ${qualified(storage, table)} WHERE key = 'k'`,
          );
          // json keeps the text as written; jsonb normalizes it, as a plain write there does.
          assert.equal(rows[0].text, column === "json" ? '{"b":3,"a":4}' : '{"a": 4, "b": 3}');
        });
      }
      await t.step("dropped while the storage runs, twice: made again each time", async () => {
        const table = `${RUN}_fn_dropped`;
        const rec = new Recorder(pool);
        const storage = new PostgresStorage<unknown>(rec, { table });
        storages.push(storage);
        await storage.write("k", { n: 0 });
        for (let round = 1; round <= 4; round++) {
          const read = await storage.acquireLeaseAndRead("k", "me", 5000);
          const drop = round === 2 || round === 3;
          if (drop) {
            await db.query(`DROP FUNCTION ${saveRelease(storage)}(${SAVE_RELEASE_ARGS})`);
          }
          rec.texts.length = 0;
          assert.ok(
            (await storage.saveAndReleaseLease("k", { n: round }, read!.version, "me")).saved,
          );
          const calls = rec.texts.filter((text) => /^SELECT leased, done FROM/.test(text)).length;
          // Found missing: the call, the DDL, the call again; then one call.
          assert.equal(calls, drop ? 2 : 1, `round ${round}`);
          assert.equal(rec.texts.some((text) => /CREATE OR REPLACE FUNCTION/.test(text)), drop);
        }
        assert.deepEqual(await storage.read("k"), { n: 4 });
      });

      await t.step("another function of the same name, made by hand", async () => {
        const table = `${RUN}_fn_overload`;
        const storage = new PostgresStorage<unknown>(pool, { table });
        storages.push(storage);
        await storage.write("k", { n: 1 });
        const read = await storage.acquireLeaseAndRead("k", "me", 5000);
        const other = `${saveRelease(storage)}(text, text, jsonb, bigint, bigint, float8)`;
        await db.query(
          `CREATE FUNCTION ${other} RETURNS TABLE (leased boolean, done boolean)
         LANGUAGE sql AS 'SELECT false, false'`,
        );
        try {
          const saved = await storage.saveAndReleaseLease("k", { n: 2 }, read!.version, "me");
          assert.ok(saved.saved);
          assert.deepEqual(await storage.read("k"), { n: 2 });
        } finally {
          await db.query(`DROP FUNCTION ${other}`);
        }
      });
    });
  },
);

pgTest("PostgresStorage: tables made by an earlier version (no function)", async (t) => {
  await withLocked(async (db, pool, storages) => {
    /** Tables as an earlier version made them: createTableSql without the function. */
    const earlier = async (table: string, valueType: "json" | "jsonb" = "json") => {
      await db.query(PostgresStorage.createTableSql({ table, valueType }));
      const probe = new PostgresStorage<unknown>(pool, { table });
      await db.query(`DROP FUNCTION ${leaseRead(probe)}`);
      await db.query(`DROP FUNCTION ${saveRelease(probe)}`);
      assert.equal(await functionExists(db, probe), false);
    };

    await t.step("createTable: the first locked read creates the function", async () => {
      const table = `${RUN}_earlier_create`;
      await earlier(table);
      const rec = new Recorder(pool);
      const storage = new PostgresStorage<unknown>(rec, { table });
      storages.push(storage);
      await storage.write("k", { n: 1 });
      const { version } = await storage.readVersioned("k");
      rec.texts.length = 0;
      const [a, b] = await Promise.all([
        storage.acquireLeaseAndRead("k", "me", 5000),
        storage.acquireLeaseAndRead("other", "me", 5000),
      ]);
      assert.deepEqual(a, { value: { n: 1 }, version });
      assert.deepEqual(b, { value: undefined, version: null });
      assert.ok(await functionExists(db, storage));
      const ddl = rec.texts.filter((text) => /CREATE OR REPLACE FUNCTION/.test(text));
      assert.equal(ddl.length, 1, "created once for both calls");
      rec.texts.length = 0;
      assert.equal(await storage.acquireLeaseAndRead("k", "other", 5000), null);
      assert.equal(rec.texts.length, 1, "one statement from then on");
      rec.texts.length = 0;
      assert.ok((await storage.saveAndReleaseLease("k", { n: 2 }, version, "me")).saved);
      assert.equal(rec.texts.length, 1, "the save through its function, created with the other");
      assert.match(rec.texts[0], /_save_release"\(/);
    });

    await t.step("createTable: false: two statements, no DDL, same answers", async () => {
      const table = `${RUN}_earlier_byhand`;
      await earlier(table);
      const rec = new Recorder(pool);
      const storage = new PostgresStorage<unknown>(rec, { table, createTable: false });
      storages.push(storage);
      await storage.write("k", { n: 1 });
      const { version } = await storage.readVersioned("k");
      rec.texts.length = 0;
      assert.deepEqual(await storage.acquireLeaseAndRead("k", "me", 5000), {
        value: { n: 1 },
        version,
      });
      assert.equal(rec.texts.length, 3, "the call that found no function, the lease, the read");
      rec.texts.length = 0;
      assert.equal(await storage.acquireLeaseAndRead("k", "other", 5000), null);
      assert.equal(rec.texts.length, 1, "the lease only, not the failing call again");
      rec.texts.length = 0;
      assert.deepEqual(await storage.acquireLeaseAndRead("k", "me", 5000), {
        value: { n: 1 },
        version,
      });
      assert.equal(rec.texts.length, 2, "the lease and the read");
      assert.ok(rec.texts.every((text) => !/CREATE|advisory/i.test(text)), "no DDL sent");
      assert.equal(await functionExists(db, storage), false);
      // The save: the call that finds no function, then the statement
      // without it; from then on that statement alone.
      rec.texts.length = 0;
      const saved = await storage.saveAndReleaseLease("k", { n: 2 }, version, "me");
      assert.ok(saved.saved);
      assert.equal(rec.texts.length, 2);
      assert.ok(await storage.acquireLeaseAndRead("k", "me", 5000));
      rec.texts.length = 0;
      const again = await storage.saveAndReleaseLease(
        "k",
        { n: 3 },
        saved.saved && saved.version,
        "me",
      );
      assert.ok(again.saved);
      assert.equal(rec.texts.length, 1);
      assert.ok(rec.texts.every((text) => !/CREATE|advisory/i.test(text)), "no DDL sent");
      assert.deepEqual(await storage.read("k"), { n: 3 });
    });

    await t.step("no right to create the function: two statements", async () => {
      const schema = `${RUN}_norights`;
      const role = `${RUN}_norights`;
      await db.query(`CREATE SCHEMA ${id(schema)}`);
      await db.query(`CREATE ROLE ${id(role)} LOGIN`);
      const url = new URL(DATABASE_URL);
      url.username = role;
      const limited = new pg.Pool({ connectionString: url.href });
      limited.on("error", () => {});
      try {
        await db.query(PostgresStorage.createTableSql({ schema, table: "s" }));
        const probe = new PostgresStorage<unknown>(pool, { schema, table: "s" });
        await db.query(`DROP FUNCTION ${leaseRead(probe)}`);
        await db.query(`DROP FUNCTION ${saveRelease(probe)}`);
        await db.query(
          `GRANT USAGE ON SCHEMA ${id(schema)} TO ${id(role)};
           GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${id(schema)}
             TO ${id(role)}`,
        );
        const rec = new Recorder(limited);
        const storage = new PostgresStorage<unknown>(rec, { schema, table: "s" });
        await storage.write("k", { n: 1 });
        const { version } = await storage.readVersioned("k");
        rec.texts.length = 0;
        assert.deepEqual(await storage.acquireLeaseAndRead("k", "me", 5000), {
          value: { n: 1 },
          version,
        });
        assert.equal(
          rec.texts.length,
          6,
          "the functions' bodies (none there), no function, refused DDL, which tables exist, " +
            "the lease, the read",
        );
        assert.equal(await functionExists(db, probe), false);
        rec.texts.length = 0;
        assert.equal(await storage.acquireLeaseAndRead("k", "other", 5000), null);
        assert.equal(rec.texts.length, 1, "from then on, no attempt to create it again");
        assert.ok((await storage.saveAndReleaseLease("k", { n: 2 }, version, "me")).saved);
      } finally {
        await limited.end();
        await db.query(`DROP SCHEMA ${id(schema)} CASCADE`);
        await db.query(`DROP OWNED BY ${id(role)}; DROP ROLE ${id(role)}`);
      }
    });

    await t.step("a connection lost while creating the function: tried again", async () => {
      const table = `${RUN}_earlier_lost`;
      await earlier(table);
      let broken = 1;
      const texts: string[] = [];
      const storage = new PostgresStorage<unknown>({
        query: (text, values) => {
          texts.push(text);
          if (text.includes("CREATE OR REPLACE FUNCTION") && broken-- > 0) {
            return Promise.reject(new Error("Connection terminated unexpectedly"));
          }
          return pool.query(text, values);
        },
      }, { table });
      storages.push(storage);
      await assert.rejects(
        () => storage.acquireLeaseAndRead("k", "me", 5000),
        /Connection terminated/,
      );
      assert.deepEqual(await storage.acquireLeaseAndRead("k", "me", 5000), {
        value: undefined,
        version: null,
      });
      assert.ok(await functionExists(db, storage), "created by the next call");
      texts.length = 0;
      assert.ok(await storage.acquireLeaseAndRead("k", "me", 5000));
      assert.equal(texts.length, 1, "one statement from then on");
    });

    await t.step("createTable: false and no tables at all: explained", async () => {
      const storage = new PostgresStorage<unknown>(pool, {
        table: `${RUN}_earlier_none`,
        createTable: false,
      });
      storages.push(storage);
      for (
        const call of [
          () => storage.acquireLeaseAndRead("k", "me", 5000),
          () => storage.saveAndReleaseLease("k", 1, null, "me"),
        ]
      ) {
        await assert.rejects(call, (err: Error) => {
          assert.ok(err instanceof SessionError, String(err));
          assert.match(err.message, /does not exist.*createTableSql/s);
          return true;
        });
      }
    });

    await t.step("a jsonb column of an earlier version: the server's refusal", async () => {
      const table = `${RUN}_earlier_jsonb`;
      await earlier(table, "jsonb");
      const storage = new PostgresStorage<unknown>(pool, { table }); // json by default
      storages.push(storage);
      await storage.write("k", { n: 1 });
      const { version } = await storage.readVersioned("k");
      assert.ok(await storage.acquireLeaseAndRead("k", "me", 5000));
      for (const expected of [version, null, undefined]) {
        await assert.rejects(
          () => storage.saveAndReleaseLease("k", { s: "a\u0000b" }, expected, "me"),
          (err: Error) => {
            assert.ok(err instanceof SessionValueError, String(err));
            assert.match(err.message, /jsonb value column.*Nothing was written/s);
            return true;
          },
        );
      }
      assert.deepEqual(await storage.read("k"), { n: 1 }, "nothing written");
      assert.equal((await inspector(db, storage).lease("k")).owner, "me", "the lease is kept");
    });
  });
});

pgTest("PostgresStorage: odd names, and createTableSql holds the function", async (t) => {
  await withLocked(async (db, pool, storages) => {
    const schema = `${RUN} "odd" $sk$`;
    await db.query(`CREATE SCHEMA ${id(schema)}`);
    try {
      for (const table of [`$sk$ x"; --`, `'$sk1$' ${"é".repeat(26)}`]) {
        await t.step(JSON.stringify(table), async () => {
          const storage = new PostgresStorage<unknown>(pool, { schema, table });
          storages.push(storage);
          assert.ok(await storage.acquireLeaseAndRead("k", "me", 5000));
          assert.ok((await storage.saveAndReleaseLease("k", { table }, null, "me")).saved);
          assert.deepEqual((await storage.acquireLeaseAndRead("k", "me", 5000))?.value, { table });
          assert.ok(await functionExists(db, storage));
          await dropAll(db, storage);
          // By hand, as a migration would: the function comes with the tables.
          await db.query(PostgresStorage.createTableSql({ schema, table }));
          assert.ok(await functionExists(db, storage));
          const rec = new Recorder(pool);
          const byHand = new PostgresStorage<unknown>(rec, { schema, table, createTable: false });
          assert.deepEqual(await byHand.acquireLeaseAndRead("k", "me", 5000), {
            value: undefined,
            version: null,
          });
          // A storage given schema looks at the functions' bodies once first.
          assert.equal(
            rec.texts.length,
            2,
            "the bodies, then one statement: the function is there",
          );
          assert.match(rec.texts[0], /prosrc/);
        });
      }
    } finally {
      await db.query(`DROP SCHEMA ${id(schema)} CASCADE`);
      storages.length = 0;
    }
  });
});

/**
 * The interleaving of the brief: holder A, in a transaction, has written
 * the session and deleted its lease; B's combined "take the lease + read"
 * starts, and waits for A's lease row; A commits; B takes the lease. `run`
 * starts B's call; `pids` are the backends it may run on. Returns what B got.
 */
async function interleave<R>(
  db: pg.Client,
  holder: pg.Client,
  work: string[],
  pids: number[],
  run: () => Promise<R>,
): Promise<R> {
  await holder.query("BEGIN");
  try {
    for (const text of work) await holder.query(text);
  } catch (err) {
    await holder.query("ROLLBACK");
    throw err;
  }
  const b = run();
  b.catch(() => {});
  try {
    await waitingForLock(db, pids);
  } finally {
    await holder.query("COMMIT");
  }
  return await b;
}

pgTest("PostgresStorage: the locked read sees what the previous holder committed", async (t) => {
  await withLocked(async (db, _pool, storages) => {
    const table = `${RUN}_snapshot`;
    const holder = await client();
    const reader = await client();
    const pid = (await reader.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
    try {
      const storage = new PostgresStorage<unknown>(reader, { table, ttl: 60_000 });
      storages.push(storage);
      await storage.write("k", { n: 0 });
      const t1 = id(table);
      const tl = id(storage.leaseTable);
      /** A's transaction: the session changed by `change`, and A's lease given up. */
      const holderWork = (key: string, change: string) => [
        change,
        `DELETE FROM ${tl} WHERE key = '${key}' AND owner = 'A'`,
      ];
      const update = (key: string, n: number) =>
        `UPDATE ${t1} SET value = '{"n":${n}}', version = ${1000 + n} WHERE key = '${key}'`;
      const naive = `WITH lease AS (
  INSERT INTO ${tl} AS s (key, owner, expires_at)
  VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond')
  ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
  WHERE s.owner = excluded.owner OR s.expires_at <= now()
  RETURNING 1
)
SELECT s.value::text AS value, s.version::text AS version
FROM lease LEFT JOIN ${t1} AS s ON s.key = $1 AND COALESCE(s.expires_at > now(), true)`;

      await t.step("the hazard is real: a naive CTE reads the stale session", async () => {
        for (
          const [key, change, stale] of [
            ["naive-update", update("naive-update", 1), '{"n":0}'],
            ["naive-delete", `DELETE FROM ${t1} WHERE key = 'naive-delete'`, '{"n":0}'],
            ["naive-insert", `INSERT INTO ${t1} VALUES ('naive-insert', '{"n":1}', 1001)`, null],
          ] as const
        ) {
          if (key !== "naive-insert") await storage.write(key, { n: 0 });
          assert.equal(await storage.acquireLease(key, "A", 60_000), true);
          const rows = await interleave(
            db,
            holder,
            holderWork(key, change),
            [pid],
            () => reader.query(naive, [key, "B", 5000]).then((r) => r.rows),
          );
          assert.equal(rows.length, 1, "B took the lease");
          assert.equal(rows[0].value, stale, `${key}: B read the session as it was before A`);
        }
      });

      await t.step("update: the storage reads A's new value and version", async () => {
        assert.equal(await storage.acquireLease("k", "A", 60_000), true);
        const read = await interleave(
          db,
          holder,
          holderWork("k", update("k", 1)),
          [pid],
          () => storage.acquireLeaseAndRead("k", "B", 5000),
        );
        assert.deepEqual(read, { value: { n: 1 }, version: "1001" });
        assert.equal((await inspector(db, storage).lease("k")).owner, "B");
        assert.ok((await storage.saveAndReleaseLease("k", { n: 2 }, read?.version, "B")).saved);
      });

      await t.step("delete: the storage reads nothing", async () => {
        assert.equal(await storage.acquireLease("k", "A", 60_000), true);
        const read = await interleave(
          db,
          holder,
          holderWork("k", `DELETE FROM ${t1} WHERE key = 'k'`),
          [pid],
          () => storage.acquireLeaseAndRead("k", "B", 5000),
        );
        assert.deepEqual(read, { value: undefined, version: null });
        await storage.releaseLease("k", "B");
      });

      await t.step("insert: the storage reads the session A created", async () => {
        assert.equal(await storage.acquireLease("k", "A", 60_000), true);
        const read = await interleave(
          db,
          holder,
          holderWork("k", `INSERT INTO ${t1} VALUES ('k', '{"n":5}', 1005)`),
          [pid],
          () => storage.acquireLeaseAndRead("k", "B", 5000),
        );
        assert.deepEqual(read, { value: { n: 5 }, version: "1005" });
        await storage.releaseLease("k", "B");
      });

      await t.step("A's own locked save, committed while B waits", async () => {
        // The storage's save statement, in A's transaction: B blocks on
        // A's lease row and must see A's write after A commits.
        const a = new PostgresStorage<unknown>(holder, { table, ttl: 60_000 });
        const read = await a.acquireLeaseAndRead("k", "A", 60_000);
        assert.ok(read);
        await holder.query("BEGIN");
        const saved = await a.saveAndReleaseLease("k", { n: 6 }, read.version, "A");
        assert.ok(saved.saved);
        const b = storage.acquireLeaseAndRead("k", "B", 5000);
        try {
          await waitingForLock(db, [pid]);
        } finally {
          await holder.query("COMMIT");
        }
        assert.deepEqual(await b, { value: { n: 6 }, version: saved.version });
      });
    } finally {
      await holder.end();
      await reader.end();
    }
  });
});

/** Locked increments of one counter by `workers` on `storages`; the final count. */
async function lockedIncrements(
  storages: PostgresStorage<{ n: number }>[],
  workers: number,
  per: number,
) {
  let waits = 0;
  const worker = async (storage: PostgresStorage<{ n: number }>, w: number) => {
    const owner = `owner-${w}-${crypto.randomUUID()}`;
    for (let done = 0; done < per;) {
      const read = await storage.acquireLeaseAndRead("counter", owner, 5000);
      if (read === null) {
        waits++;
        await sleep(Math.random() * 2);
        continue;
      }
      await sleep(Math.random());
      const saved = await storage.saveAndReleaseLease(
        "counter",
        { n: (read.value?.n ?? 0) + 1 },
        read.version,
        owner,
      );
      assert.deepEqual(saved.saved, true, `a save under the lease: ${JSON.stringify(saved)}`);
      done++;
    }
  };
  await Promise.all(
    storages.flatMap((s, i) =>
      Array.from({ length: workers }, (_, j) => worker(s, i * workers + j))
    ),
  );
  return { count: (await storages[0].read("counter"))?.n, waits };
}

pgTest("PostgresStorage: locked increments from 4 storages lose nothing", async () => {
  await withLocked(async (db, _pool, owned) => {
    const table = `${RUN}_locked_many`;
    const storages = Array.from(
      { length: 4 },
      () => PostgresStorage.connect<{ n: number }>(DATABASE_URL, { table, ttl: 60_000 }),
    );
    owned.push(...storages as Storage[]);
    const { count, waits } = await lockedIncrements(storages, 3, 10);
    assert.equal(count, 4 * 3 * 10);
    assert.ok(waits > 0, "the workers really competed");
    assert.equal(
      (await db.query(`SELECT count(*)::int AS n FROM ${id(storages[0].leaseTable)}`))
        .rows[0].n,
      0,
      "every lease given up",
    );
  });
});

pgTest("PostgresStorage: the lease table is UNLOGGED, the session table is not", async () => {
  await withLocked(async (db, _pool, owned) => {
    const storage = PostgresStorage.connect<{ n: number }>(DATABASE_URL, {
      table: `${RUN}_locked_unlogged`,
    });
    owned.push(storage as Storage);
    const read = await storage.acquireLeaseAndRead("k", "me", 5000);
    assert.ok(await storage.saveAndReleaseLease("k", { n: 1 }, read?.version, "me"));
    const persistence = async (table: string) =>
      (await db.query("SELECT relpersistence FROM pg_class WHERE oid = $1::regclass", [
        qualified(storage as Storage, table),
      ])).rows[0].relpersistence;
    // A lease costs no fsync; a session must survive a crash.
    assert.equal(await persistence(storage.leaseTable), "u");
    assert.equal(await persistence(storage.table), "p");
  });
});

/** `text` without the bodies of dollar-quoted strings (a function's code is not sent to run). */
function outsideDollarQuotes(text: string): string {
  return text.replace(/\$(\w*)\$[\s\S]*?\$\1\$/g, "''");
}

/** Commands and calls that depend on the state of one server connection. */
const SESSION_STATE =
  /^\s*(SET|RESET|PREPARE|EXECUTE|DEALLOCATE|DISCARD|LISTEN|UNLISTEN|DECLARE|FETCH|BEGIN|START|COMMIT|END|ROLLBACK|SAVEPOINT|LOAD)\b|\b(TEMP|TEMPORARY)\b|\b(set_config|pg_(try_)?advisory_lock(_shared)?)\s*\(/i;

pgbouncerTest("pgbouncer: the locked read and save in transaction pooling", async (t, bouncer) => {
  const db = await admin();
  const table = `${RUN}_pgb_locked`;
  const single = await client(bouncer.url);
  const texts: string[] = [];
  const storage = new PostgresStorage<unknown>({
    query: (text, values) => {
      texts.push(text);
      return single.query(text, values);
    },
  }, { table, ttl: 60_000 });
  const holder = await client(bouncer.url);
  try {
    await t.step("fresh tables: created through pgbouncer, every call works", async () => {
      assert.deepEqual(await storage.acquireLeaseAndRead("k", "me", 5000), {
        value: undefined,
        version: null,
      });
      assert.equal(await storage.acquireLeaseAndRead("k", "other", 5000), null);
      const saved = await storage.saveAndReleaseLease("k", { n: 1 }, null, "me");
      assert.ok(saved.saved);
      const read = await storage.acquireLeaseAndRead("k", "me", 5000);
      assert.deepEqual(read, { value: { n: 1 }, version: saved.version });
      assert.deepEqual(await storage.saveAndReleaseLease("k", { n: 2 }, "1", "me"), {
        saved: false,
        reason: "conflict",
      });
      assert.deepEqual(await storage.saveAndReleaseLease("k", { n: 2 }, read?.version, "x"), {
        saved: false,
        reason: "lease",
      });
      assert.ok((await storage.saveAndReleaseLease("k", { n: 2 }, read?.version, "me")).saved);
      await storage.acquireLeaseAndRead("k", "me", 5000);
      assert.deepEqual(await storage.saveAndReleaseLease("k", undefined, undefined, "me"), {
        saved: true,
        version: null,
      });
      await storage.write("k", { n: 3 });
      assert.ok(await functionExists(db, storage));
    });

    await t.step("one statement per call", async () => {
      texts.length = 0;
      const read = await storage.acquireLeaseAndRead("k", "me", 5000);
      await storage.saveAndReleaseLease("k", { n: 4 }, read?.version, "me");
      assert.equal(texts.length, 2);
    });

    await t.step("nothing sent depends on one server connection", () => {
      assert.ok(texts.length > 0);
      for (const sent of [...texts]) {
        for (const part of outsideDollarQuotes(sent).split(";")) {
          assert.doesNotMatch(part, SESSION_STATE, sent);
        }
      }
      assert.ok(SESSION_STATE.test("BEGIN") && SESSION_STATE.test("x set_config('a', 'b', true)"));
    });

    await t.step("the holder commits while B waits through pgbouncer: B sees it", async () => {
      assert.equal(await storage.acquireLease("k", "A", 60_000), true);
      // pgbouncer's server connections: B's statement runs on one of them.
      const console = await client(bouncer.adminUrl);
      const servers: number[] = (await console.query("SHOW SERVERS")).rows.map((row) =>
        row.remote_pid
      );
      await console.end();
      assert.equal(servers.length, 2);
      const read = await interleave(
        db,
        holder,
        [
          `UPDATE ${id(table)} SET value = '{"n":7}', version = 1007 WHERE key = 'k'`,
          `DELETE FROM ${id(storage.leaseTable)} WHERE key = 'k' AND owner = 'A'`,
        ],
        servers,
        () => storage.acquireLeaseAndRead("k", "B", 5000),
      );
      assert.deepEqual(read, { value: { n: 7 }, version: "1007" });
    });

    await t.step("4 storages, 3 workers each, locked increments: none lost", async () => {
      const counters = `${RUN}_pgb_locked_many`;
      const storages = Array.from(
        { length: 4 },
        () => PostgresStorage.connect<{ n: number }>(bouncer.url, { table: counters }),
      );
      try {
        const { count } = await lockedIncrements(storages, 3, 5);
        assert.equal(count, 4 * 3 * 5);
      } finally {
        for (const s of storages) await s.close();
        await dropAll(db, storages[0] as Storage);
      }
    });
  } finally {
    await holder.end();
    await single.end();
    await dropAll(db, storage);
    await db.end();
  }
});

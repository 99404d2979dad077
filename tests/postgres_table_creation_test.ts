/**
 * PostgresStorage creating what locked updates need (issue 18, attack29):
 * a missing lease table comes with the session table and the functions of
 * the locked calls, but where the bot's role may not make all of that (a
 * session table owned by another role, PL/pgSQL not granted), only the
 * missing tables are made and locked updates run without the functions.
 * And storages that spell the schema differently take the same DDL lock.
 * Everything through real grammY bots with `lock`.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { session, type SessionFlavor } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { SAVE_RELEASE_ARGS, tableNames } from "../storages/postgres/sql.ts";
import { FUNCTION_RETRY_MS } from "../storages/postgres/driver.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
import { fnv1a } from "../storages/postgres/names.ts";
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

type Counter = { n: number };
type C = Context & SessionFlavor<Counter>;

/** A bot counting messages per chat on `storage`, every update locked. */
function countingBot(storage: PostgresStorage<Counter>) {
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ n: 0 }), storage, lock: { ttl: 3000, wait: 5000 } }));
  h.bot.on("message", (ctx) => {
    ctx.session.n++;
  });
  return h;
}

/** `url` with another user or database. */
function urlWith(change: { username?: string; database?: string }, url = DATABASE_URL): string {
  const u = new URL(url);
  if (change.username !== undefined) u.username = change.username;
  if (change.database !== undefined) u.pathname = `/${change.database}`;
  return u.href;
}

/** Which of the table's objects exist, in `db`'s search path. */
async function objects(db: pg.Client, table: string) {
  const n = tableNames(undefined, table);
  const { rows } = await db.query(
    `SELECT to_regclass($1) IS NOT NULL AS session, to_regclass($2) IS NOT NULL AS lease,
            to_regproc($3) IS NOT NULL AS lease_read, to_regproc($4) IS NOT NULL AS save_release`,
    [id(n.table), id(n.leaseTable), id(n.leaseRead), id(n.saveRelease)],
  );
  return rows[0] as Record<"session" | "lease" | "lease_read" | "save_release", boolean>;
}

/** The parts of `createTableSql()`: session table and index, lease table, the two functions. */
function ddlParts(table: string, schema?: string) {
  const all = PostgresStorage.createTableSql({ schema, table });
  const lease = all.indexOf("CREATE UNLOGGED TABLE");
  const functions = all.indexOf("CREATE OR REPLACE FUNCTION");
  return {
    all,
    session: all.slice(0, lease),
    lease: all.slice(lease, functions),
    functions: all.slice(functions),
  };
}

/** Drops the two functions of `table`, as tables made by an earlier version lack them. */
async function dropFunctions(db: pg.Client, table: string): Promise<void> {
  const n = tableNames(undefined, table);
  await db.query(`DROP FUNCTION ${id(n.leaseRead)}(text, text, float8)`);
  await db.query(`DROP FUNCTION ${id(n.saveRelease)}(${SAVE_RELEASE_ARGS})`);
}

/** Drops the tables and functions of `table`. */
async function dropAll(db: pg.Client, table: string): Promise<void> {
  const n = tableNames(undefined, table);
  await db.query(`DROP TABLE IF EXISTS ${id(n.table)}, ${id(n.leaseTable)}`);
  await db.query(`DROP FUNCTION IF EXISTS ${id(n.leaseRead)}(text, text, float8)`);
  await db.query(`DROP FUNCTION IF EXISTS ${id(n.saveRelease)}(${SAVE_RELEASE_ARGS})`);
}

/**
 * Creates a login role with a schema of its own name, which comes first on
 * the default search path ("$user", public).
 */
async function createRoleWithSchema(db: pg.Client, role: string): Promise<void> {
  await db.query(`CREATE ROLE ${id(role)} LOGIN`);
  await db.query(`CREATE SCHEMA ${id(role)} AUTHORIZATION ${id(role)}`);
}

/** Drops what {@link createRoleWithSchema} made, the tables and functions of `table` too. */
async function dropRoleWithSchema(db: pg.Client, role: string, table: string): Promise<void> {
  await db.query(`DROP SCHEMA ${id(role)} CASCADE`);
  await dropAll(db, table);
  await db.query(`DROP OWNED BY ${id(role)}; DROP ROLE ${id(role)}`);
}

/** The stored count of chat 1. */
async function countOf(db: pg.Client, table: string): Promise<number | undefined> {
  const { rows } = await db.query(`SELECT value FROM ${id(table)} WHERE key = '1'`);
  return rows[0]?.value.n;
}

pgTest("PostgreSQL: locked updates where the role may not create everything", async (t) => {
  const db = await admin();
  const role = `${RUN}_ddl_bot`;
  await db.query(`CREATE ROLE ${id(role)} LOGIN`);
  await db.query(`GRANT CREATE ON SCHEMA public TO ${id(role)}`);
  try {
    for (
      const [name, prepare] of [
        [
          "a session table another role owns (a migration), no lease table yet",
          async (table: string) => {
            await db.query(ddlParts(table).session);
          },
        ],
        [
          "all of createTableSql() run by another role, then the lease table dropped",
          async (table: string) => {
            await db.query(ddlParts(table).all);
            await db.query(`DROP TABLE ${id(tableNames(undefined, table).leaseTable)}`);
          },
        ],
      ] as const
    ) {
      await t.step(`${name}: the lease table is made, every update counts`, async () => {
        const table = `${RUN}_owned_${name.length}`;
        await prepare(table);
        await db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${id(table)} TO ${id(role)}`);
        const storage = PostgresStorage.connect<Counter>(urlWith({ username: role }), { table });
        try {
          const h = countingBot(storage);
          for (let i = 0; i < 3; i++) await h.send(message(1));
          assert.deepEqual(h.errors.map((e) => String(e.error)), []);
          assert.equal(await countOf(db, table), 3);
          assert.equal((await objects(db, table)).lease, true);
        } finally {
          await storage.close();
          await dropAll(db, table);
        }
      });
    }
  } finally {
    await db.query(`DROP OWNED BY ${id(role)}; DROP ROLE ${id(role)}`);
    await db.end();
  }
});

pgTest("PostgreSQL: locked updates where PL/pgSQL is not granted", async (t) => {
  const db = await admin();
  const database = `${RUN}_noplpgsql`;
  const role = `${RUN}_noplpgsql`;
  await db.query(`CREATE DATABASE ${id(database)}`);
  await db.query(`CREATE ROLE ${id(role)} LOGIN`);
  const own = new pg.Client({ connectionString: urlWith({ database }) });
  own.on("error", () => {});
  await own.connect();
  try {
    await own.query(`REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC`);
    await own.query(`GRANT CREATE ON SCHEMA public TO ${id(role)}`);
    await t.step("a fresh table: both tables made, no function, every update counts", async () => {
      const table = `${RUN}_plain`;
      const storage = PostgresStorage.connect<Counter>(
        urlWith({ username: role, database }),
        { table },
      );
      try {
        const h = countingBot(storage);
        for (let i = 0; i < 4; i++) await h.send(message(1));
        assert.deepEqual(h.errors.map((e) => String(e.error)), []);
        assert.equal(await countOf(own, table), 4);
        assert.deepEqual(await objects(own, table), {
          session: true,
          lease: true,
          lease_read: false,
          save_release: false,
        });
      } finally {
        await storage.close();
      }
    });
  } finally {
    await own.end();
    await db.query(`DROP DATABASE ${id(database)} WITH (FORCE)`);
    await db.query(`DROP ROLE ${id(role)}`);
    await db.end();
  }
});

pgTest("PostgreSQL: storages naming the schema and not, lease table dropped", async (t) => {
  await t.step("they take one DDL lock: no update fails, none is lost", async () => {
    const db = await admin();
    const table = `${RUN}_spelling`;
    const storages = [
      PostgresStorage.connect<Counter>(DATABASE_URL, { table, schema: "public" }),
      PostgresStorage.connect<Counter>(DATABASE_URL, { table, schema: "public" }),
      PostgresStorage.connect<Counter>(DATABASE_URL, { table }),
      PostgresStorage.connect<Counter>(DATABASE_URL, { table }),
    ];
    try {
      const bots = storages.map(countingBot);
      const ROUNDS = 12;
      for (let round = 0; round < ROUNDS; round++) {
        // Each bot its own chat, all at once, right after the lease table went.
        await db.query(`DROP TABLE IF EXISTS ${id(tableNames(undefined, table).leaseTable)}`);
        await Promise.all(bots.map((h, i) => h.send(message(10 + i))));
      }
      assert.deepEqual(bots.flatMap((h) => h.errors.map((e) => String(e.error))), []);
      const { rows } = await db.query(
        `SELECT key, (value->>'n')::int AS n FROM ${id(table)} ORDER BY key`,
      );
      assert.deepEqual(rows, bots.map((_, i) => ({ key: String(10 + i), n: ROUNDS })));
    } finally {
      for (const storage of storages) await storage.close();
      await dropAll(db, table);
      await db.end();
    }
  });

  await t.step("the functions made by hand meanwhile: retried, no update fails", async () => {
    const db = await admin();
    const other = await admin();
    const table = `${RUN}_by_hand`;
    const storage = PostgresStorage.connect<Counter>(DATABASE_URL, { table });
    try {
      const h = countingBot(storage);
      await h.send(message(1));
      const { functions } = ddlParts(table);
      await dropFunctions(db, table);
      // A migration without the advisory lock makes the functions and
      // commits only once the storage's DDL for them waits: PostgreSQL then
      // fails that DDL with a duplicate.
      await other.query("BEGIN");
      await other.query(functions);
      const sent = h.send(message(1));
      await untilWaiting(db, "%pg_advisory_xact_lock%");
      await other.query("COMMIT");
      await sent;
      assert.deepEqual(h.errors.map((e) => String(e.error)), []);
      assert.equal(await countOf(db, table), 2);
    } finally {
      await other.query("ROLLBACK").catch(() => {});
      await storage.close();
      await dropAll(db, table);
      await other.end();
      await db.end();
    }
  });
});

/** Waits until a backend waits for a lock in a statement matching `like`. */
async function untilWaiting(db: pg.Client, like: string): Promise<void> {
  for (let waited = 0; waited < 200; waited++) {
    const { rows } = await db.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE wait_event_type = 'Lock' AND query LIKE $1`,
      [like],
    );
    if (rows[0].n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no statement like ${like} waited for a lock`);
}

pgTest("PostgreSQL: the locked path creates only what is missing", async (t) => {
  await t.step(
    "tables without the functions, a writing transaction open: nobody waits for it",
    async () => {
      const db = await admin();
      const tx = await admin();
      const table = `${RUN}_open_tx`;
      await db.query(ddlParts(table).all);
      await dropFunctions(db, table);
      const storage = PostgresStorage.connect<Counter>(DATABASE_URL, { table });
      const other = PostgresStorage.connect<Counter>(DATABASE_URL, { table });
      try {
        // A batch job's transaction that wrote to the session table and is still open.
        await tx.query("BEGIN");
        await tx.query(`INSERT INTO ${id(table)} (key, value, version) VALUES ('job', '{}', 1)`);
        const h = countingBot(storage);
        const open = (what: Promise<unknown>) =>
          Promise.race([
            what.then(() => "done while the transaction was open"),
            new Promise((resolve) => setTimeout(() => resolve("blocked"), 2000)),
          ]);
        // Creating an index, even one that exists, would wait for the
        // transaction, and every write of the table would wait behind it.
        assert.equal(await open(h.send(message(1))), "done while the transaction was open");
        assert.equal(
          await open(other.write("2", { n: 1 })),
          "done while the transaction was open",
        );
        await tx.query("COMMIT");
        assert.deepEqual(h.errors.map((e) => String(e.error)), []);
        assert.equal(await countOf(db, table), 1);
        const made = await objects(db, table);
        assert.equal(made.lease_read && made.save_release, true, "the functions are made");
      } finally {
        await tx.query("ROLLBACK").catch(() => {});
        await storage.close();
        await other.close();
        await dropAll(db, table);
        await tx.end();
        await db.end();
      }
    },
  );

  await t.step(
    "a session table found along the search path: no second table in the user's schema",
    async () => {
      const db = await admin();
      const role = `${RUN}_own_schema`;
      const table = `${RUN}_along_path`;
      // The default search_path is "$user", public: a schema named after the
      // role comes first, but the sessions are in public's table.
      await createRoleWithSchema(db, role);
      const owner = PostgresStorage.connect<Counter>(DATABASE_URL, { table, schema: "public" });
      await owner.write("1", { n: 5 });
      await owner.close();
      await db.query(`GRANT ALL ON public.${id(table)} TO ${id(role)}`);
      const storage = PostgresStorage.connect<Counter>(urlWith({ username: role }), { table });
      try {
        const h = countingBot(storage);
        await h.send(message(1));
        await h.send(message(1));
        assert.deepEqual(h.errors.map((e) => String(e.error)), []);
        assert.equal(await countOf(db, table), 7, "public's table, counted on");
        const { rows } = await db.query("SELECT to_regclass($1) IS NOT NULL AS shadow", [
          `${id(role)}.${id(table)}`,
        ]);
        assert.equal(rows[0].shadow, false);
      } finally {
        await storage.close();
        await dropRoleWithSchema(db, role, table);
        await db.end();
      }
    },
  );

  await t.step("the DDL waits for the lock key of earlier versions too", async () => {
    const db = await admin();
    const earlier = await admin();
    const table = `${RUN}_old_key`;
    const storage = PostgresStorage.connect<Counter>(DATABASE_URL, { table });
    try {
      const h = countingBot(storage);
      await h.send(message(1));
      await db.query(`DROP TABLE ${id(tableNames(undefined, table).leaseTable)}`);
      // A process of an earlier version holds its DDL lock: "SESS" and the
      // schema as given (none) with the table.
      await earlier.query("BEGIN");
      await earlier.query("SELECT pg_advisory_xact_lock($1, $2)", [
        0x53455353,
        parseInt(fnv1a(`.${table}`), 16) | 0,
      ]);
      const sent = h.send(message(1));
      await untilWaiting(db, "%pg_advisory_xact_lock%");
      await earlier.query("COMMIT");
      await sent;
      assert.deepEqual(h.errors.map((e) => String(e.error)), []);
      assert.equal(await countOf(db, table), 2);
    } finally {
      await earlier.query("ROLLBACK").catch(() => {});
      await storage.close();
      await dropAll(db, table);
      await earlier.end();
      await db.end();
    }
  });

  await t.step("functions not made for now (a lock timeout): made by a later call", async () => {
    const db = await admin();
    const blocker = await admin();
    const table = `${RUN}_later`;
    await db.query(ddlParts(table).all);
    await dropFunctions(db, table);
    const ddl = ddlParts(table);
    const pool = new pg.Pool({ connectionString: DATABASE_URL, options: "-c lock_timeout=200" });
    pool.on("error", () => {});
    const rec = new Recorder(pool);
    const storage = new PostgresStorage<Counter>(rec, { table });
    try {
      // Another transaction makes the functions and has not committed:
      // this storage's DDL for them waits, and gives up after 200 ms.
      await blocker.query("BEGIN");
      await blocker.query(ddl.functions);
      const h = countingBot(storage);
      await h.send(message(1));
      await blocker.query("COMMIT");
      assert.ok(rec.texts.some((text) => /CREATE OR REPLACE FUNCTION/.test(text)));
      await sleep(FUNCTION_RETRY_MS + 50); // not tried again before that
      rec.texts.length = 0;
      await h.send(message(1));
      await h.send(message(1));
      assert.deepEqual(h.errors.map((e) => String(e.error)), []);
      assert.equal(await countOf(db, table), 3);
      assert.equal(rec.texts.length, 4, "two locked updates, both through the functions");
      assert.ok(rec.texts.every((text) => !/CREATE|advisory/.test(text)), "no DDL");
    } finally {
      await blocker.query("ROLLBACK").catch(() => {});
      await storage.close();
      await pool.end();
      await dropAll(db, table);
      await blocker.end();
      await db.end();
    }
  });
  await t.step("a lease table not made for now: the functions are still used later", async () => {
    const db = await admin();
    const blocker = await admin();
    const table = `${RUN}_later_table`;
    const ddl = ddlParts(table);
    await db.query(ddl.all);
    await db.query(`DROP TABLE ${id(tableNames(undefined, table).leaseTable)}`);
    await dropFunctions(db, table);
    const pool = new pg.Pool({ connectionString: DATABASE_URL, options: "-c lock_timeout=200" });
    pool.on("error", () => {});
    const rec = new Recorder(pool);
    const storage = new PostgresStorage<Counter>(rec, { table });
    try {
      // Another transaction is making the lease table and has not
      // committed: this storage cannot make it (nor the functions) for now.
      await blocker.query("BEGIN");
      await blocker.query(ddl.lease);
      const h = countingBot(storage);
      await h.send(message(1));
      assert.equal(h.errors.length, 1, "the update failed: no lease table");
      await blocker.query("ROLLBACK");
      await sleep(FUNCTION_RETRY_MS + 50); // not tried again before that
      await h.send(message(1));
      rec.texts.length = 0;
      await h.send(message(1));
      await h.send(message(1));
      assert.equal(h.errors.length, 1);
      assert.equal(await countOf(db, table), 3);
      assert.equal(rec.texts.length, 4, "two locked updates, both through the functions");
    } finally {
      await blocker.query("ROLLBACK").catch(() => {});
      await storage.close();
      await pool.end();
      await dropAll(db, table);
      await blocker.end();
      await db.end();
    }
  });
  await t.step(
    "a session table found along the search path, storages with and without schema: one lease table",
    async () => {
      const db = await admin();
      const role = `${RUN}_one_lease`;
      const table = `${RUN}_one_lease`;
      await createRoleWithSchema(db, role);
      await db.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${id(role)}`);
      await db.query(ddlParts(table).session);
      await db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${id(table)} TO ${id(role)}`);
      // A rolling deploy adding `schema`: the lease table the first makes
      // must be the one the second finds.
      const storages = [undefined, "public"].map((schema) =>
        PostgresStorage.connect<Counter>(urlWith({ username: role }), { table, schema })
      );
      try {
        const bots = storages.map((storage) => {
          const h = createHarness<C>();
          h.bot.use(
            session({ initial: () => ({ n: 0 }), storage, lock: { ttl: 3000, wait: 5000 } }),
          );
          h.bot.on("message", async (ctx) => {
            const n = ctx.session.n;
            await sleep(50); // the other process's update waits for the lease meanwhile
            ctx.session.n = n + 1;
          });
          return h;
        });
        await bots[0].send(message(1));
        for (let round = 0; round < 3; round++) {
          await Promise.all(bots.map((h) => h.send(message(1))));
        }
        assert.deepEqual(bots.flatMap((h) => h.errors.map((e) => String(e.error))), []);
        assert.equal(await countOf(db, table), 7);
        const { rows } = await db.query(
          `SELECT n.nspname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
           WHERE c.relname = $1`,
          [tableNames(undefined, table).leaseTable],
        );
        assert.deepEqual(rows, [{ nspname: "public" }], "one lease table, next to the sessions");
      } finally {
        for (const storage of storages) await storage.close();
        await dropRoleWithSchema(db, role, table);
        await db.end();
      }
    },
  );

  await t.step(
    "functions refused by the server: tried again at most once a retry window",
    async () => {
      const db = await admin();
      const database = `${RUN}_no_functions`;
      await db.query(`CREATE DATABASE ${id(database)}`);
      const own = new pg.Client({ connectionString: urlWith({ database }) });
      own.on("error", () => {});
      await own.connect();
      const pool = new pg.Pool({ connectionString: urlWith({ database }) });
      pool.on("error", () => {});
      const rec = new Recorder(pool);
      const table = `${RUN}_refused`;
      const storage = new PostgresStorage<Counter>(rec, { table });
      try {
        // An event trigger that refuses every CREATE FUNCTION (P0001).
        await own.query(`CREATE FUNCTION refuse() RETURNS event_trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'functions are made by migrations only'; END $$`);
        await own.query(`CREATE EVENT TRIGGER refuse ON ddl_command_start
        WHEN TAG IN ('CREATE FUNCTION') EXECUTE FUNCTION refuse()`);
        const h = countingBot(storage);
        await h.send(message(1));
        rec.texts.length = 0;
        for (let i = 0; i < 4; i++) await h.send(message(1));
        assert.deepEqual(h.errors.map((e) => String(e.error)), []);
        assert.equal(await countOf(own, table), 5);
        assert.ok(rec.texts.every((text) => !/CREATE|advisory/.test(text)), "no DDL meanwhile");
        assert.equal(rec.texts.length, 12, "4 locked updates of 3 statements each");
      } finally {
        await storage.close();
        await pool.end();
        await own.end();
        await db.query(`DROP DATABASE ${id(database)} WITH (FORCE)`);
        await db.end();
      }
    },
  );
  await t.step("a lease table found in an earlier schema: the functions use it", async () => {
    const db = await admin();
    const [a, b] = [`${RUN}_first`, `${RUN}_second`];
    const table = `${RUN}_split`;
    // Sessions in b, a lease table of the same name in a, earlier on the
    // search path; no functions (tables made by hand from an earlier version).
    await db.query(`CREATE SCHEMA ${id(a)}; CREATE SCHEMA ${id(b)}`);
    await db.query(ddlParts(table, b).session);
    await db.query(ddlParts(table, a).lease);
    const pool = new pg.Pool({
      connectionString: DATABASE_URL,
      options: `-c search_path=${id(a)},${id(b)}`,
    });
    pool.on("error", () => {});
    const storage = new PostgresStorage<Counter>(pool, { table });
    try {
      const h = countingBot(storage);
      for (let i = 0; i < 3; i++) await h.send(message(1));
      assert.deepEqual(h.errors.map((e) => String(e.error)), []);
      const { rows } = await db.query(
        `SELECT (value->>'n')::int AS n FROM ${id(b)}.${id(table)} WHERE key = '1'`,
      );
      assert.deepEqual(rows, [{ n: 3 }]);
    } finally {
      await storage.close();
      await pool.end();
      await db.query(`DROP SCHEMA ${id(a)} CASCADE; DROP SCHEMA ${id(b)} CASCADE`);
      await db.end();
    }
  });
});

pgTest("PostgreSQL: a role refused the lease table is told which GRANT it needs", async (t) => {
  const db = await admin();
  const role = `${RUN}_nogrant`;
  const table = `${RUN}_nogrant`;
  const n = tableNames(undefined, table);
  await db.query(`CREATE ROLE ${id(role)} LOGIN`);
  await db.query(ddlParts(table).all);
  await db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${id(table)} TO ${id(role)}`);
  const storage = PostgresStorage.connect<Counter>(urlWith({ username: role }), { table });
  try {
    const h = countingBot(storage);
    await t.step("locked updates fail, and the error names both tables and GRANT", async () => {
      await h.send(message(1));
      assert.equal(h.errors.length, 1);
      const text = String(h.errors[0].error);
      assert.match(text, /permission denied for table/);
      assert.ok(
        text.includes(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${id(table)}, ${id(n.leaseTable)}`),
        text,
      );
      assert.doesNotMatch(text, /reachable/);
      assert.equal(await countOf(db, table), undefined);
    });
    await t.step("once granted, the same storage counts every update", async () => {
      await db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${id(n.leaseTable)} TO ${id(role)}`);
      for (let i = 0; i < 3; i++) await h.send(message(1));
      assert.equal(h.errors.length, 1);
      assert.equal(await countOf(db, table), 3);
    });
    await t.step(
      "refused the session table, an unlocked update names that table alone",
      async () => {
        await db.query(`REVOKE ALL ON ${id(table)} FROM ${id(role)}`);
        const h = createHarness<C>();
        h.bot.use(session({ initial: () => ({ n: 0 }), storage }));
        h.bot.on("message", (ctx) => void ctx.session.n++);
        await h.send(message(1));
        assert.equal(h.errors.length, 1);
        const text = String(h.errors[0].error);
        assert.ok(text.includes(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${id(table)} TO`), text);
      },
    );
  } finally {
    await storage.close();
    await dropAll(db, table);
    await db.query(`DROP OWNED BY ${id(role)}; DROP ROLE ${id(role)}`);
    await db.end();
  }
});

pgTest(
  "PostgreSQL: an object of another shape under the lease table's name is named in the error",
  async (t) => {
    const db = await admin();
    for (
      const [name, make] of [
        ["a view", (l: string, s: string) => `CREATE VIEW ${l} AS SELECT key, 1 AS n FROM ${s}`],
        [
          "a table of other columns",
          (l: string) => `CREATE TABLE ${l} (key text PRIMARY KEY, n int)`,
        ],
        [
          "a table without a primary key",
          (l: string) => `CREATE TABLE ${l} (key text, owner text, expires_at timestamptz)`,
        ],
      ] as const
    ) {
      await t.step(name, async () => {
        const table = `${RUN}_shape_${name.length}`;
        const lease = tableNames(undefined, table).leaseTable;
        await db.query(ddlParts(table).session);
        await db.query(make(id(lease), id(table)));
        const storage = PostgresStorage.connect<Counter>(DATABASE_URL, { table });
        try {
          const h = countingBot(storage);
          await h.send(message(1));
          assert.equal(h.errors.length, 1);
          const text = String(h.errors[0].error);
          assert.ok(text.includes(`${id(lease)}`) && text.includes("the table option"), text);
          assert.doesNotMatch(text, /reachable/);
          assert.equal(await countOf(db, table), undefined, "nothing written");
        } finally {
          await storage.close();
          await db.query(`DROP VIEW IF EXISTS ${id(lease)}`).catch(() => {});
          await dropAll(db, table);
        }
      });
    }
    await db.end();
  },
);

/**
 * The old release of a rolling deploy that adds `schema`: a storage without
 * it, whose search path finds `schema` first.
 */
function oldRelease(schema: string, table: string) {
  const pool = new pg.Pool({
    connectionString: DATABASE_URL,
    options: `-c search_path=${id(schema)},public`,
  });
  pool.on("error", () => {});
  const storage = new PostgresStorage<Counter>(pool, { table });
  return {
    storage,
    async close() {
      await storage.close();
      await pool.end();
    },
  };
}

/**
 * Five updates of one chat: one by the old release (which makes the
 * functions), then `between`, three by the new one, one more by the old;
 * none fails and the count in `schema` is exact.
 */
async function acrossReleases(
  db: pg.Client,
  [schema, table]: [string, string],
  old: PostgresStorage<Counter>,
  added: PostgresStorage<Counter>,
  between?: () => Promise<void>,
): Promise<void> {
  const before = countingBot(old);
  await before.send(message(1));
  await between?.();
  const after = countingBot(added);
  for (let i = 0; i < 3; i++) await after.send(message(1));
  await before.send(message(1));
  assert.deepEqual([...before.errors, ...after.errors].map((e) => String(e.error)), []);
  const { rows } = await db.query(`SELECT value FROM ${id(schema)}.${id(table)} WHERE key = '1'`);
  assert.equal(rows[0]?.value.n, 5);
}

pgTest("PostgreSQL: a storage given schema, on functions made by one without it", async () => {
  // A rolling deploy that adds `schema`: the functions were made by the old
  // release, whose search path found the tables; their bodies name the
  // tables without the schema, which the new release's path does not reach
  // (attack33b F2: every locked update of the new release failed with 42P01).
  const db = await admin();
  const schema = `${RUN}_sch`;
  const table = `${RUN}_added`;
  await db.query(`CREATE SCHEMA ${id(schema)}`);
  const old = oldRelease(schema, table);
  const added = PostgresStorage.connect<Counter>(DATABASE_URL, { table, schema });
  try {
    await acrossReleases(db, [schema, table], old.storage, added);
  } finally {
    await old.close();
    await added.close();
    await db.query(`DROP SCHEMA ${id(schema)} CASCADE`);
    await db.end();
  }
});

pgTest("PostgreSQL: a storage given schema, on such functions owned by another role", async () => {
  // It may not replace them (attack35 S2): its locked calls go without them.
  const db = await admin();
  const schema = `${RUN}_sch2`;
  const table = `${RUN}_owned2`;
  const role = `${RUN}_notowner`;
  const n = tableNames(undefined, table);
  await db.query(`CREATE SCHEMA ${id(schema)}`);
  await db.query(`CREATE ROLE ${id(role)} LOGIN`);
  const old = oldRelease(schema, table);
  const added = PostgresStorage.connect<Counter>(urlWith({ username: role }), { table, schema });
  try {
    await acrossReleases(db, [schema, table], old.storage, added, async () => {
      await db.query(`GRANT USAGE ON SCHEMA ${id(schema)} TO ${id(role)}`);
      await db.query(
        `GRANT SELECT, INSERT, UPDATE, DELETE ON ${id(schema)}.${id(table)},
           ${id(schema)}.${id(n.leaseTable)} TO ${id(role)}`,
      );
    });
  } finally {
    await old.close();
    await added.close();
    await db.query(`DROP SCHEMA ${id(schema)} CASCADE`);
    await db.query(`DROP OWNED BY ${id(role)}; DROP ROLE ${id(role)}`);
    await db.end();
  }
});

pgTest(
  "PostgreSQL: a storage given schema, on such functions, with tables of the same name in public",
  async () => {
    // The old functions' bodies find the tables along the caller's search
    // path: for the new release that is public's tables of the same name,
    // without an error, so its leases went to one table and its saves
    // looked in another, and every locked update failed (attack35 S1b).
    const db = await admin();
    const schema = `${RUN}_sch3`;
    const table = `${RUN}_twin`;
    const publicNames = tableNames(undefined, table);
    await db.query(`CREATE SCHEMA ${id(schema)}`);
    const old = oldRelease(schema, table);
    const added = PostgresStorage.connect<Counter>(DATABASE_URL, { table, schema });
    // On the default search path: it makes the tables (and functions) in public.
    const twin = PostgresStorage.connect<Counter>(DATABASE_URL, { table });
    try {
      await acrossReleases(db, [schema, table], old.storage, added, async () => {
        assert.equal(await twin.acquireLease("elsewhere", "x", 1000), true);
        await twin.write("elsewhere", { n: 0 });
        assert.equal(await tableExists(db, table), true, "a table of the same name in public");
      });
      const { rows } = await db.query(`SELECT key FROM ${id(table)}`);
      assert.deepEqual(rows.map((r) => r.key), ["elsewhere"], "nothing of chat 1 in public");
    } finally {
      await old.close();
      await added.close();
      await twin.close();
      await dropTables(db, publicNames);
      await db.query(`DROP SCHEMA ${id(schema)} CASCADE`);
      await db.end();
    }
  },
);

/**
 * PostgresStorage behind pgbouncer in transaction pooling mode (issue 18),
 * with a private pgbouncer (tests/fixtures/pgbouncer.ts) holding 2 server
 * connections handed out round robin: the pooling is real (consecutive
 * statements of one client connection run on different backends, and state
 * set in one statement is gone in the next), the storage sends nothing that
 * depends on session state, and the storage contract, conditional writes
 * under contention, leases and bots on two instances (next to grammY's own
 * session) all work there. The multi-process run is in multiprocess_test.ts.
 */
import assert from "node:assert/strict";
import { type Context, session as grammySession } from "npm:grammy@^1.46";
import { session, SessionConflictError, type SessionFlavor } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { storageContract } from "./contract.ts";
import { createHarness, type Harness, message, sleep } from "./helpers/bot.ts";
import {
  type Pgbouncer,
  pgbouncerTest,
  startPgbouncer,
  whenPgbouncer,
} from "./fixtures/pgbouncer.ts";
import { admin, collect, dropTables, id, pg, RUN, tableExists } from "./postgres_setup.ts";

/** One client connection to pgbouncer. */
async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/** The PostgreSQL backend pids of pgbouncer's server connections. */
async function serverPids(bouncer: Pgbouncer): Promise<number[]> {
  const console = await client(bouncer.adminUrl);
  try {
    return (await console.query("SHOW SERVERS")).rows.map((row) => row.remote_pid);
  } finally {
    await console.end();
  }
}

async function backendPid(db: pg.Client | pg.Pool): Promise<number> {
  return (await db.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
}

/** Commands that set, keep or need state of one server connection. */
const SESSION_COMMAND =
  /^\s*(SET|RESET|PREPARE|EXECUTE|DEALLOCATE|DISCARD|LISTEN|UNLISTEN|DECLARE|FETCH|BEGIN|START|COMMIT|END|ROLLBACK|SAVEPOINT|LOAD)\b/i;
/** Such state taken inside another statement. */
const SESSION_CALL = /\b(TEMP|TEMPORARY)\b|\b(set_config|pg_(try_)?advisory_lock(_shared)?)\s*\(/i;

/** `text` without the bodies of dollar-quoted strings (a function's code is not sent to run). */
function outsideDollarQuotes(text: string): string {
  return text.replace(/\$(\w*)\$[\s\S]*?\$\1\$/g, "''");
}

/** What in `text` would depend on the state of one server connection, or `undefined`. */
function sessionState(text: string): string | undefined {
  return outsideDollarQuotes(text).split(";").find((statement) =>
    SESSION_COMMAND.test(statement) || SESSION_CALL.test(statement)
  );
}

pgbouncerTest("pgbouncer: transaction pooling is real", async (t, bouncer) => {
  await t.step("it runs in transaction mode with a pool of 2", async () => {
    const console = await client(bouncer.adminUrl);
    try {
      const config = new Map(
        (await console.query("SHOW CONFIG")).rows.map((row) => [row.key, row.value]),
      );
      assert.equal(config.get("pool_mode"), "transaction");
      assert.equal(config.get("default_pool_size"), "2");
    } finally {
      await console.end();
    }
  });

  const c = await client(bouncer.url);
  try {
    await t.step(
      "one client connection runs consecutive statements on several backends",
      async () => {
        const pids = [];
        for (let i = 0; i < 6; i++) pids.push(await backendPid(c));
        // Directly on PostgreSQL one connection is one backend: one pid.
        assert.ok(new Set(pids).size >= 2, `backends seen: ${pids.join(", ")}`);
      },
    );

    await t.step(
      "a server connection pinned elsewhere is not used by the next statement",
      async () => {
        const holder = await client(bouncer.url);
        try {
          await holder.query("BEGIN");
          const pinned = await backendPid(holder);
          for (let i = 0; i < 4; i++) assert.notEqual(await backendPid(c), pinned);
          await holder.query("COMMIT");
        } finally {
          await holder.end();
        }
      },
    );

    await t.step("session state set by one statement is gone in the next ones", async () => {
      // What a storage relying on SET, search_path or named statements would
      // trip over here: one of the next statements lands on another backend.
      await c.query("SET sk.canary = 'on'");
      const seen = [];
      for (let i = 0; i < 4; i++) {
        seen.push((await c.query("SELECT current_setting('sk.canary', true) AS v")).rows[0].v);
      }
      assert.ok(seen.some((v) => v !== "on"), `canary seen: ${seen.join(", ")}`);
      const named = [];
      for (let i = 0; i < 4; i++) {
        named.push(
          await c.query({ name: "sk_named", text: "SELECT $1::int AS n", values: [i] }).then(
            () => "ok",
            (err) => err.code,
          ),
        );
      }
      assert.ok(named.includes("26000"), `named statement results: ${named.join(", ")}`);
    });
  } finally {
    await c.end();
  }
});

pgbouncerTest(
  "pgbouncer: one storage connection, every operation, each statement on another backend",
  async (t, bouncer) => {
    const db = await admin();
    const table = `${RUN}_pgb_single`;
    // One client connection to pgbouncer, so the storage cannot spread its
    // statements over connections itself: pgbouncer does, statement by
    // statement. A Client, not a Pool of one: a pool drops its connection
    // after a failed statement (the missing table below), and pgbouncer may
    // then close the server connection that statement ran on.
    const single = await client(bouncer.url);
    const servers = await serverPids(bouncer);
    assert.equal(servers.length, 2, "pgbouncer holds its 2 server connections");
    /** Every statement the storage sent, with the backend that ran it. */
    const trace: { text: string; pid?: number }[] = [];
    const storage = new PostgresStorage<unknown>({
      query: async (text, values) => {
        let result;
        try {
          result = await single.query(text, values);
        } catch (err) {
          // A missing table: not traced (one of the next statements
          // creates it, and which backend refused does not matter).
          trace.push({ text });
          throw err;
        }
        // Nothing else runs on pgbouncer's backends: the one whose state
        // changed last ran this statement.
        const { rows } = await db.query(
          `SELECT pid, query FROM pg_stat_activity WHERE pid = ANY($1)
           ORDER BY state_change DESC LIMIT 1`,
          [servers],
        );
        // pg_stat_activity keeps the first track_activity_query_size bytes
        // (1 KiB by default) of a statement: the DDL is longer.
        const seen: string = rows[0]?.query ?? "";
        assert.equal(seen, text.slice(0, seen.length), "traced the right statement");
        assert.ok(seen.length >= Math.min(text.length, 1000), "traced the right statement");
        trace.push({ text, pid: rows[0].pid });
        return result;
      },
    }, { table, ttl: 60_000 });
    try {
      await t.step(
        "table creation, reads, writes, versions, leases and listings work",
        async () => {
          await storage.write("a", { n: 1 }); // fails, creates the table, runs again
          assert.deepEqual(await storage.read("a"), { n: 1 });
          const { version } = await storage.readVersioned("a");
          const next = await storage.writeIfVersion("a", { n: 2 }, version);
          assert.equal(typeof next, "string");
          assert.equal(await storage.writeIfVersion("a", { n: 9 }, version), null);
          assert.equal(typeof await storage.writeIfVersion("b", { n: 1 }, null), "string");
          assert.equal(await storage.writeIfVersion("b", { n: 9 }, null), null);
          assert.equal(await storage.has("b"), true);
          assert.deepEqual(await collect(storage.readAllEntries()), [
            ["a", { n: 2 }],
            ["b", { n: 1 }],
          ]);
          assert.equal(await storage.deleteIfVersion("a", next), true);
          assert.equal(await storage.acquireLease("b", "me", 5000), true); // creates the lease table
          assert.equal(await storage.acquireLease("b", "other", 5000), false);
          assert.equal(await storage.renewLease("b", "me", 5000), true);
          await storage.releaseLease("b", "me");
          assert.equal(await storage.acquireLease("b", "other", 5000), true);
          assert.equal(await storage.purgeExpired(), 0);
          // An expiry nearer than a TTL: the read renews it with a second statement.
          await db.query(
            `UPDATE ${id(table)} SET expires_at = now() + interval '1 second' WHERE key = 'b'`,
          );
          const before = trace.length;
          assert.deepEqual(await storage.read("b"), { n: 1 });
          assert.equal(trace.length - before, 2, "a SELECT, then the renewing UPDATE");
          const { rows } = await db.query(
            `SELECT expires_at > now() + interval '50 seconds' AS renewed FROM ${id(table)}`,
          );
          assert.deepEqual(rows, [{ renewed: true }]);
          assert.ok(await tableExists(db, storage.leaseTable));
        },
      );

      await t.step("each statement ran on another backend than the one before", () => {
        const traced = trace.filter((s) => s.pid !== undefined);
        assert.ok(traced.length > 20, `${traced.length} statements traced`);
        assert.equal(trace.length - traced.length, 2, "the two that found no table");
        assert.deepEqual(new Set(traced.map((s) => s.pid)), new Set(servers));
        for (let i = 1; i < trace.length; i++) {
          if (trace[i].pid === undefined || trace[i - 1].pid === undefined) continue;
          assert.notEqual(trace[i].pid, trace[i - 1].pid, `statements ${i - 1} and ${i}`);
        }
        assert.ok(trace.some((s) => s.text.includes("CREATE TABLE")), "table creation traced");
      });

      await t.step("the storage sends nothing that needs one server connection", () => {
        // The check itself catches what it is meant to.
        for (
          const bad of [
            "SELECT 1;\nSET search_path = app",
            "set statement_timeout to 5",
            "PREPARE p AS SELECT 1",
            "SELECT pg_advisory_lock(1, 2)",
            "CREATE TEMP TABLE x (a int)",
            "BEGIN",
            "LISTEN sessions",
          ]
        ) assert.ok(sessionState(bad), bad);
        assert.equal(sessionState("UPDATE t AS s SET value = $2 WHERE s.key = $1"), undefined);
        for (const { text } of trace) assert.equal(sessionState(text), undefined, text);
        // Table creation locks for its own transaction only.
        assert.ok(trace.some((s) => s.text.includes("pg_advisory_xact_lock(")));
      });
    } finally {
      await single.end();
      await dropTables(db, storage);
      await db.end();
    }
  },
);

pgbouncerTest("pgbouncer: an explicit schema, without any search_path", async (_t, bouncer) => {
  const db = await admin();
  const schema = `${RUN}_pgb_schema`;
  await db.query(`CREATE SCHEMA "${schema}"`);
  const storage = PostgresStorage.connect<unknown>(bouncer.url, { schema, table: "s" });
  try {
    await storage.write("k", { n: 1 });
    assert.deepEqual(await storage.read("k"), { n: 1 });
    assert.equal(await storage.acquireLease("k", "me", 1000), true);
    assert.ok(await tableExists(db, "s", schema));
    assert.ok(await tableExists(db, "s_leases", schema));
    assert.equal(await tableExists(db, "s"), false, "nothing landed in public");
  } finally {
    await storage.close();
    await db.query(`DROP SCHEMA "${schema}" CASCADE`);
    await db.end();
  }
});

pgbouncerTest("pgbouncer: conditional writes under contention lose nothing", async (t, bouncer) => {
  const db = await admin();
  const table = `${RUN}_pgb_cas`;
  // Four "processes", each with a pool of its own, 8 concurrent writers each,
  // all sharing pgbouncer's 2 server connections.
  const storages = Array.from(
    { length: 4 },
    () => PostgresStorage.connect<{ n: number }>(bouncer.url, { table }),
  );
  try {
    await t.step("read-version-write loops: every success counts exactly once", async () => {
      const PER_WRITER = 6;
      let conflicts = 0;
      const writer = async (storage: PostgresStorage<{ n: number }>) => {
        for (let done = 0; done < PER_WRITER;) {
          const { value, version } = await storage.readVersioned("counter");
          await sleep(Math.random() * 2);
          const written = await storage.writeIfVersion(
            "counter",
            { n: (value?.n ?? 0) + 1 },
            version,
          );
          if (written === null) conflicts++;
          else done++;
        }
      };
      await Promise.all(storages.flatMap((s) => Array.from({ length: 8 }, () => writer(s))));
      assert.deepEqual(await storages[0].read("counter"), { n: 4 * 8 * PER_WRITER });
      assert.ok(conflicts > 0, "the writers really competed");
    });

    await t.step("conditional inserts of one missing key: exactly one lands", async () => {
      for (let round = 0; round < 5; round++) {
        const results = await Promise.all(
          storages.map((s, i) => s.writeIfVersion(`fresh-${round}`, { n: i }, null)),
        );
        assert.equal(results.filter((v) => v !== null).length, 1, `round ${round}`);
      }
    });

    await t.step("leases: one holder at a time, across storages", async () => {
      for (let round = 0; round < 5; round++) {
        const got = await Promise.all(
          storages.map((s, i) => s.acquireLease(`lease-${round}`, `owner-${i}`, 5000)),
        );
        assert.equal(got.filter(Boolean).length, 1, `round ${round}`);
        const holder = got.indexOf(true);
        assert.equal(
          await storages[(holder + 1) % 4].renewLease(`lease-${round}`, "x", 5000),
          false,
        );
        await storages[holder].releaseLease(`lease-${round}`, `owner-${holder}`);
        assert.equal(
          await storages[(holder + 1) % 4].acquireLease(`lease-${round}`, "y", 50),
          true,
        );
      }
    });
  } finally {
    for (const storage of storages) await storage.close();
    await dropTables(db, storages[0]);
    await db.end();
  }
});

pgbouncerTest("pgbouncer: two bot instances on one chat, next to grammY", async (t, bouncer) => {
  type C = Context & SessionFlavor<{ count: number }>;
  const db = await admin();
  const tables: PostgresStorage<unknown>[] = [];
  const UPDATES = 40;
  /** Two bots on one table through pgbouncer, UPDATES updates each, all at once. */
  async function run(
    table: string,
    install: (bot: Harness<C>, storage: PostgresStorage<{ count: number }>) => void,
  ) {
    const harnesses = [createHarness<C>(), createHarness<C>()];
    const storages = harnesses.map(() =>
      PostgresStorage.connect<{ count: number }>(bouncer.url, { table })
    );
    tables.push(storages[0] as PostgresStorage<unknown>);
    harnesses.forEach((h, i) => {
      install(h, storages[i]);
      h.bot.on("message", async (ctx) => {
        await sleep(Math.random() * 3);
        ctx.session.count++;
      });
    });
    await Promise.all(
      harnesses.flatMap((h) => Array.from({ length: UPDATES }, () => h.send(message(7)))),
    );
    const stored = (await storages[0].read("7"))?.count ?? 0;
    const errors = harnesses.flatMap((h) => h.errors.map((e) => e.error));
    for (const storage of storages) await storage.close();
    return { stored, errors };
  }

  try {
    await t.step("grammY's session(): the last write wins, updates are lost silently", async () => {
      const { stored, errors } = await run(
        `${RUN}_pgb_grammy`,
        (h, storage) => h.bot.use(grammySession({ initial: () => ({ count: 0 }), storage })),
      );
      assert.deepEqual(errors, []);
      assert.ok(stored < 2 * UPDATES, `grammY stored ${stored}`);
    });

    await t.step("sessionkit, conflict detection: stored + conflicts = all updates", async () => {
      const { stored, errors } = await run(
        `${RUN}_pgb_detect`,
        (h, storage) => h.bot.use(session({ initial: () => ({ count: 0 }), storage })),
      );
      assert.ok(errors.every((e) => e instanceof SessionConflictError), String(errors[0]));
      assert.equal(stored + errors.length, 2 * UPDATES);
    });

    await t.step("sessionkit with lock: every update counts", async () => {
      const { stored, errors } = await run(`${RUN}_pgb_lock`, (h, storage) =>
        h.bot.use(session({
          initial: () => ({ count: 0 }),
          storage,
          lock: { ttl: 5000, wait: 30_000 },
        })));
      assert.deepEqual(errors, []);
      assert.equal(stored, 2 * UPDATES);
    });
  } finally {
    for (const storage of tables) await dropTables(db, storage);
    await db.end();
  }
});

// The storage contract (with versions, leases and TTL changes) through
// pgbouncer, as tests/postgres_contract_test.ts runs it directly. Only with
// the default json column: the value type changes no statement's shape, and
// each run takes about 20 s here.
{
  const name = "PostgresStorage via pgbouncer (json)";
  let bouncer: Promise<Pgbouncer> | undefined;
  const created: PostgresStorage<unknown>[] = [];
  let n = 0;
  whenPgbouncer(`${name}: storage contract`, () =>
    storageContract(name, {
      create: async (options) => {
        bouncer ??= startPgbouncer();
        const shared = options?.sharing as PostgresStorage<unknown> | undefined;
        const storage = PostgresStorage.connect<unknown>((await bouncer).url, {
          table: shared?.table ?? `${RUN}_pgb_contract_${++n}`,
          ttl: options?.ttl,
        });
        created.push(storage);
        return storage;
      },
      async cleanup() {
        const db = await admin();
        try {
          for (const storage of created) {
            await storage.close();
            await dropTables(db, storage);
          }
        } finally {
          await db.end();
          await (await bouncer)?.stop();
        }
      },
      largeValueBytes: 8 * 1024 * 1024,
      ttl: true,
      ttlMs: 1000,
      // Expiries are set 1.5 TTLs ahead and renewed once less than a TTL is left.
      lifetime: 1.5,
    }));
}

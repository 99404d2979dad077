/**
 * Several bot processes on one key (issue 6): real OS processes, each a small
 * bot (tests/fixtures/counter_worker.ts), sharing a file-backed Deno KV, the
 * Redis server, a local Redis Cluster (node-redis and ioredis clients), the
 * PostgreSQL server (directly and through pgbouncer) or a SQLite database
 * file.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { session, type SessionFlavor } from "../mod.ts";
import { createHarness, message } from "./helpers/bot.ts";
import { type Backend, type Job, modeOptions, openStorage } from "./fixtures/counter_worker.ts";
import { REDIS_URL, redisTest } from "./redis_env.ts";
import { admin, DATABASE_URL, pgTest, RUN } from "./postgres_setup.ts";
import * as mysql from "./mysql_setup.ts";
import { clusterTest, LocalCluster } from "./fixtures/redis_cluster.ts";
import { pgbouncerTest } from "./fixtures/pgbouncer.ts";

const WORKER = new URL("./fixtures/counter_worker.ts", import.meta.url).pathname;
const PROCESSES = 3;
const UPDATES = 100;
const LEASE_TTL = 1500;

function spawn(job: Job): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", WORKER, JSON.stringify(job)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function runWorkers(backend: Backend, mode: Job["mode"], chatId: number) {
  const startAt = Date.now() + 4000; // all processes are up by then
  const children = Array.from(
    { length: PROCESSES },
    () => spawn({ backend, mode, updates: UPDATES, chatId, startAt }),
  );
  const outputs = await Promise.all(children.map((c) => c.output()));
  let conflicts = 0;
  for (const out of outputs) {
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    const summary = JSON.parse(lines.at(-1)!);
    assert.deepEqual(summary.errors, [], "no error other than conflicts");
    conflicts += summary.conflicts;
  }
  return conflicts;
}

async function storedCount(backend: Backend, chatId: number): Promise<number> {
  const { storage, close } = await openStorage(backend);
  try {
    return ((await storage.read(String(chatId))) as { count: number } | undefined)?.count ?? 0;
  } finally {
    await close();
  }
}

async function suite(t: Deno.TestContext, backend: Backend) {
  await t.step(`lock: ${PROCESSES} processes x ${UPDATES} updates give exactly 300`, async () => {
    const conflicts = await runWorkers(backend, "lock", 1);
    assert.equal(conflicts, 0);
    assert.equal(await storedCount(backend, 1), PROCESSES * UPDATES);
  });
  await t.step("default conflict detection: stored count + reported conflicts = 300", async () => {
    const conflicts = await runWorkers(backend, "detect", 2);
    const count = await storedCount(backend, 2);
    console.log(`    ${backend.kind}: stored ${count}, conflicts reported ${conflicts}`);
    assert.equal(count + conflicts, PROCESSES * UPDATES);
  });
  await t.step("merge function: exactly 300", async () => {
    const conflicts = await runWorkers(backend, "merge", 3);
    assert.equal(conflicts, 0);
    assert.equal(await storedCount(backend, 3), PROCESSES * UPDATES);
  });
  await t.step("a SIGKILLed lease holder blocks its key no longer than the lease TTL", async () => {
    const child = spawn({
      backend,
      mode: "lock",
      lockTtl: LEASE_TTL,
      updates: 1,
      chatId: 4,
      startAt: 0,
      hold: true,
    });
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("HOLDING")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assert.match(seen, /HOLDING/);
    const { storage, close } = await openStorage(backend);
    try {
      const h = createHarness<Context & SessionFlavor<{ count: number }>>();
      h.bot.use(session({
        initial: () => ({ count: 0 }),
        storage,
        ...modeOptions({ mode: "lock", lockTtl: LEASE_TTL }),
      }));
      h.bot.on("message", (ctx) => void ctx.session.count++);
      // Another key is not blocked while the lease is held.
      let started = Date.now();
      await h.send(message(5));
      const otherKey = Date.now() - started;
      assert.ok(otherKey < LEASE_TTL / 2, `other key took ${otherKey} ms`);
      child.kill("SIGKILL");
      const killedAt = Date.now();
      await child.status;
      started = Date.now();
      await h.send(message(4));
      const blocked = Date.now() - killedAt;
      assert.deepEqual(h.errors, []);
      assert.ok(blocked <= LEASE_TTL + 500, `key 4 was blocked ${blocked} ms after the kill`);
      assert.equal(await storedCount(backend, 4), 1, "the dead holder never wrote");
    } finally {
      await reader.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      await close();
    }
  });
}

Deno.test("several processes: Deno KV (file-backed)", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await suite(t, { kind: "denokv", path: `${dir}/shared.kv`, prefix: "mp" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

redisTest("several processes: Redis", async (t) => {
  const prefix = `sessionkit-test:mp:${crypto.randomUUID()}:`;
  try {
    await suite(t, { kind: "redis", url: REDIS_URL, prefix });
  } finally {
    const { createClient } = await import("npm:redis@^5");
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    for await (const keys of client.scanIterator({ MATCH: "*sessionkit-test:mp:*", COUNT: 500 })) {
      if (keys.length > 0) await client.del(keys);
    }
    await client.close();
  }
});

for (const client of ["node-redis", "ioredis"] as const) {
  clusterTest(`several processes: Redis Cluster (${client})`, async (t) => {
    const cluster = await LocalCluster.start();
    try {
      await suite(t, { kind: "redis-cluster", client, urls: cluster.urls, prefix: "mp:" });
    } finally {
      await cluster.stop();
    }
  });
}

Deno.test("several processes: SQLite (node:sqlite, one WAL file)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sk-mp-sqlite-" });
  try {
    // WAL mode is a property of the file: set once before the bots start (as
    // docs/sqlite.md advises), since processes switching a new file at the
    // same moment can get "database is locked" without waiting.
    const { DatabaseSync } = await import("node:sqlite");
    const setup = new DatabaseSync(`${dir}/shared.sqlite`);
    setup.exec("PRAGMA journal_mode = WAL");
    setup.close();
    await suite(t, { kind: "sqlite", path: `${dir}/shared.sqlite`, table: "mp" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

pgTest("several processes: PostgreSQL", async (t) => {
  const table = `${RUN}_multiprocess`;
  try {
    await suite(t, { kind: "postgres", url: DATABASE_URL, table });
  } finally {
    const db = await admin();
    await db.query(`DROP TABLE IF EXISTS "${table}", "${table}_leases"`);
    await db.query(`DROP FUNCTION IF EXISTS "${table}_lease_read"(text, text, float8)`);
    await db.query(`DROP FUNCTION IF EXISTS "${table}_save_release"`);
    await db.end();
  }
});

// The same through a private pgbouncer in transaction pooling mode with 2
// server connections for all three processes (issue 18).
pgbouncerTest(
  "several processes: PostgreSQL via pgbouncer (transaction pooling)",
  async (t, pgb) => {
    const table = `${RUN}_multiprocess_pgbouncer`;
    try {
      await suite(t, { kind: "postgres", url: pgb.url, table });
    } finally {
      const db = await admin();
      await db.query(`DROP TABLE IF EXISTS "${table}", "${table}_leases"`);
      await db.query(`DROP FUNCTION IF EXISTS "${table}_lease_read"(text, text, float8)`);
      await db.query(`DROP FUNCTION IF EXISTS "${table}_save_release"`);
      await db.end();
    }
  },
);

mysql.mysqlTest("several processes: MySQL/MariaDB", async (t) => {
  const table = `${mysql.RUN}_multiprocess`;
  try {
    await suite(t, { kind: "mysql", url: mysql.MYSQL_URL, table });
  } finally {
    const db = mysql.admin();
    await mysql.dropTables(db, { table, leaseTable: `${table}_leases` });
    await db.end();
  }
});

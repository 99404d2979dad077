/**
 * Network chaos and killed bot processes together (issue 19), judged by the
 * history checker. Three real bot processes (tests/history/worker.ts) run
 * sessionkit's three modes (conflict detection, a counter merge, `lock`) and
 * grammY's own `session()`, each on keys shared by all three processes,
 * through fault proxies in front of Redis, PostgreSQL, MariaDB and a
 * six-node Redis Cluster (one proxy per node, each node announcing its
 * proxy). While the updates stream, a schedule of faults plays
 * (tests/fixtures/chaos_run.ts): latency with jitter, every connection cut
 * mid-reply three times, a stall (nothing forwarded, then all of it
 * delivered late), the server refusing connections (open ones closed), a
 * SIGKILLed and restarted process, the same kill during a stall, and
 * half-open connections (silent for good while new ones are served; closed
 * from outside after the hold). On the cluster, last, a primary whose
 * replication was held back is killed (what the cluster's own replication
 * loses).
 *
 * Asserted per storage: the checker finds no broken rule for sessionkit (no
 * acknowledged write lost, each landed write whole and based on the latest
 * version, merged counters exact, locked updates never overlapping, unknown
 * outcomes wholly stored or wholly absent), except, on the cluster, lost
 * writes and leases on the killed primary's keys, bounded by what it
 * acknowledged while its replication was held back; every fault was
 * injected; every process recovers after each heal; no update hangs; and
 * grammY's session, in the same run, loses acknowledged writes (the checker
 * can fail). A table row per fault is printed.
 *
 * `CHAOS_LONG=1` (`deno task test:chaos`): a random schedule of about 90 s
 * per storage with kills during other faults; `CHAOS_SEED=n` repeats it;
 * `CHAOS_KEEP=1` keeps the history files. The end of the file holds the
 * tests of the defects the runs found (half-open connections).
 */
import assert from "node:assert/strict";
import { createClient } from "npm:redis@^5";
import type { Context } from "npm:grammy@^1.46";
import { session, type SessionFlavor } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import {
  type ChaosResult,
  type FaultKind,
  markdownRow,
  runChaos,
  singleServerTarget,
  type Step,
  TABLE_HEADER,
  type Target,
  warm,
} from "./fixtures/chaos_run.ts";
import { ProxiedCluster } from "./fixtures/chaos_cluster.ts";
import { random } from "./history/process.ts";
import { FaultProxy } from "./fixtures/fault_proxy.ts";
import { clusterTest, LocalCluster } from "./fixtures/redis_cluster.ts";
import type { WorkerJob } from "./history/worker.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
import { deleteUnder, openAdmin, REDIS_URL, redisTest } from "./redis_env.ts";
import { admin as pgAdmin, DATABASE_URL, pgTest, RUN as PG_RUN } from "./postgres_setup.ts";
import * as mysql from "./mysql_setup.ts";

const LONG = Deno.env.get("CHAOS_LONG") === "1";
const KEEP = Deno.env.get("CHAOS_KEEP") === "1";
const SEED = Number(Deno.env.get("CHAOS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
/** The storages' timeout option in the workers, ms. */
const TIMEOUT = 1_000;
const LOCK_TTL = 1_000;
/** A process counts as recovered this long after a heal at the latest. */
const RECOVER_BOUND = 5_000;
/** No update of detection or merge may take longer than this (ms): a few timeouts. */
const LONGEST_UNLOCKED = 8_000;
/** No locked update may take longer (it may also wait for leases). */
const LONGEST_LOCKED = 15_000;

const MODES: WorkerJob["modes"] = [
  { mode: "detect", chats: [1, 2, 3], pause: 3 },
  { mode: "merge", chats: [1, 2, 3], pause: 3 },
  { mode: "lock", chats: [1, 2, 3], pause: 20 },
  { mode: "grammy", chats: [1, 2, 3], pause: 3 },
];

/** The CI schedule: every fault once, each followed by a quiet time to recover in. */
function ciSteps(replicated: boolean): Step[] {
  const steps: Step[] = [
    { faults: ["latency"], hold: 1_000, after: 600 },
    { faults: ["cut"], hold: 900, after: 600, cuts: 3 },
    { faults: ["stall"], hold: 1_300, after: 700 },
    { faults: ["refuse"], hold: 1_300, after: 700 },
    { faults: ["kill"], hold: 0, after: 800 },
    { faults: ["stall", "kill"], hold: 1_300, after: 700 },
    // Long enough for a timeout, a check of the connection and a reconnection.
    { faults: ["half-open"], hold: 3_500, after: 1_200 },
  ];
  // The primary's slots fail until its replica is promoted (2 s node timeout + election).
  if (replicated) steps.push({ faults: ["failover"], hold: 800, after: 10_000 });
  return steps;
}

/** The long schedule: rounds of every fault in a random order, some with a kill, ~`ms` long. */
function longSteps(ms: number, replicated: boolean, rng: () => number): Step[] {
  const kinds: FaultKind[] = ["latency", "cut", "stall", "refuse", "kill", "half-open"];
  const steps: Step[] = [];
  let total = 0;
  while (total < ms) {
    const round = [...kinds].sort(() => rng() - 0.5);
    for (const kind of round) {
      const faults: FaultKind[] = [kind];
      if (kind !== "kill" && rng() < 0.35) faults.push("kill");
      const hold = kind === "kill"
        ? 0
        : kind === "half-open"
        ? 3_500
        : 600 + Math.floor(rng() * 2_400);
      const step = {
        faults,
        hold,
        after: 500 + Math.floor(rng() * 1_500),
        cuts: 1 + Math.floor(rng() * 4),
      };
      steps.push(step);
      total += step.hold + step.after;
    }
  }
  if (replicated) steps.push({ faults: ["failover"], hold: 1_000, after: 10_000 });
  return steps;
}

function steps(replicated: boolean): Step[] {
  return LONG ? longSteps(90_000, replicated, random(SEED)) : ciSteps(replicated);
}

function print(result: ChaosResult): void {
  console.log(`    ${result.storage}: ${result.seconds.toFixed(1)} s (CHAOS_SEED=${SEED})`);
  console.log(TABLE_HEADER.replace(/^/gm, "    "));
  for (const row of result.rows) console.log(`    ${markdownRow(row)}`);
  for (const v of result.verdicts) {
    console.log(
      `    ${result.storage} ${v.mode.padEnd(6)} updates ${v.updates}, ok ${v.outcomes.ok}, ` +
        `conflict ${v.outcomes.conflict}, error ${v.outcomes.error}, unknown ${v.outcomes.unknown} ` +
        `(${v.unknownIn} stored, ${v.unknownOut} absent), lost ${v.lost.length}, ` +
        `violations ${v.violations.length}`,
    );
  }
}

/**
 * The assertions of one run. `allowed`: which violations the storage's own
 * replication may cause (the cluster's failover), given the run.
 */
function check(result: ChaosResult, allowed?: (violation: string) => boolean): void {
  const name = result.storage;
  for (const v of result.verdicts.filter((v) => v.mode !== "grammy")) {
    const broken = v.violations.filter((x) => !(allowed?.(x) ?? false));
    assert.deepEqual(broken.slice(0, 20), [], `${name} ${v.mode} (CHAOS_SEED=${SEED})`);
    assert.ok(v.updates > 100, `${name} ${v.mode}: only ${v.updates} updates`);
    // A merge never reports a conflict. With lock, a write given up by the
    // timeout (outcome unknown) may land after its lease lapsed, where the
    // locked save is two statements (MariaDB): the next holder then finds
    // the version changed and reports a conflict instead of overwriting.
    // Each such conflict needs an unknown outcome that landed.
    if (v.mode === "merge") assert.equal(v.outcomes.conflict, 0, `${name} merge: conflicts`);
    if (v.mode === "lock") {
      assert.ok(
        v.outcomes.conflict <= v.unknownIn,
        `${name} lock: ${v.outcomes.conflict} conflicts, ${v.unknownIn} unknown outcomes landed`,
      );
    }
  }
  const ours = result.verdicts.filter((v) => v.mode !== "grammy");
  assert.ok(ours.some((v) => v.outcomes.unknown > 0), `${name}: no outcome was unknown`);
  assert.ok(result.kills.length >= 1, `${name}: no kill`);
  for (const row of result.rows) {
    const where = `${name} ${row.fault}`;
    assert.ok(row.updates > 0, `${where}: no updates`);
    if (row.fault !== "none") assert.ok(row.injected !== "", `${where}: nothing injected`);
    assert.ok(!/\b0 connections (closed|silenced)/.test(row.injected), `${where}: ${row.injected}`);
    assert.ok((row.longest.detect ?? 0) <= LONGEST_UNLOCKED, `${where}: ${row.longest.detect} ms`);
    assert.ok((row.longest.merge ?? 0) <= LONGEST_UNLOCKED, `${where}: ${row.longest.merge} ms`);
    assert.ok((row.longest.lock ?? 0) <= LONGEST_LOCKED, `${where}: ${row.longest.lock} ms`);
    if (row.fault === "none") continue;
    // Every process has an acknowledged update soon after the heal; for
    // half-open connections, before anything closed them from outside (the
    // storages drop a connection that went silent: the tests at the end).
    const recover = row.recover;
    const bound = row.fault === "failover" ? 15_000 : RECOVER_BOUND;
    assert.ok(recover !== undefined, `${where}: some process never recovered`);
    assert.ok(recover.last <= bound, `${where}: recovered only after ${recover.last} ms`);
  }
  // Nothing the storages print during an outage is a stack trace.
  for (const s of result.stderr) {
    assert.ok(!s.stack, `${name} ${s.proc} printed a stack trace: ${s.sample.join("\n")}`);
  }
  // The checker can fail: grammY's session, in the same run, loses acknowledged writes.
  const grammy = result.verdicts.find((v) => v.mode === "grammy")!;
  assert.ok(grammy.lost.length > 0, `${name}: grammY's session lost no acknowledged write`);
  assert.ok(grammy.violations.some((x) => /acknowledged write .* is lost/.test(x)));
}

async function chaos(t: Deno.TestContext, target: Target, opts: {
  replicated?: boolean;
  allowed?: (result: ChaosResult) => (violation: string) => boolean;
} = {}): Promise<ChaosResult> {
  let result: ChaosResult | undefined;
  await t.step(`${target.name}: faults and a killed process while updates stream`, async () => {
    result = await runChaos(target, {
      steps: steps(opts.replicated ?? false),
      lead: 600,
      modes: MODES,
      lockTtl: LOCK_TTL,
      latency: [40, 60],
      keep: KEEP,
      log: console.log,
    });
    print(result);
    check(result, opts.allowed?.(result));
  });
  return result!;
}

// The proxy's half-open connections, which the runs rely on.
redisTest(
  "chaos: a half-open connection of the proxy stays silent; new ones are served",
  async () => {
    const proxy = await FaultProxy.forUrl(REDIS_URL);
    const connect = async () => {
      const client = createClient({ url: proxy.url, socket: { reconnectStrategy: false } });
      client.on("error", () => {});
      await client.connect();
      return client;
    };
    const old = await connect();
    try {
      assert.equal(await old.ping(), "PONG");
      assert.equal(proxy.halfOpen(), 1);
      let settled = false;
      const pending = old.ping().then(() => (settled = true), () => (settled = true));
      const fresh = await connect();
      assert.equal(await fresh.ping(), "PONG");
      proxy.heal(); // does not revive it
      await sleep(300);
      assert.equal(settled, false, "the half-open connection answered");
      fresh.destroy();
      assert.ok(proxy.cut() >= 1);
      await pending;
      assert.equal(settled, true);
    } finally {
      if (old.isOpen) old.destroy();
      await proxy.close();
    }
  },
);

redisTest("chaos: Redis", async (t) => {
  const prefix = `sessionkit-test:chaos:${crypto.randomUUID()}:`;
  const target = await singleServerTarget(
    "Redis",
    REDIS_URL,
    (url) => ({ kind: "redis", url, prefix, timeout: TIMEOUT }),
  );
  try {
    await chaos(t, target);
  } finally {
    for (const p of target.proxies) await p.close();
    const admin = await openAdmin();
    await deleteUnder(admin, prefix);
    await deleteUnder(admin, `sessionkit-lease:${prefix}`);
    await admin.close();
  }
});

pgTest("chaos: PostgreSQL", async (t) => {
  const table = `${PG_RUN}_chaos`;
  const target = await singleServerTarget(
    "PostgreSQL",
    DATABASE_URL,
    (url) => ({ kind: "postgres", url, table, timeout: TIMEOUT }),
  );
  try {
    await chaos(t, target);
  } finally {
    for (const p of target.proxies) await p.close();
    const db = await pgAdmin();
    await db.query(`DROP TABLE IF EXISTS "${table}", "${table}_leases"`);
    await db.query(`DROP FUNCTION IF EXISTS "${table}_lease_read"(text, text, float8)`);
    await db.query(`DROP FUNCTION IF EXISTS "${table}_save_release"`);
    await db.end();
  }
});

mysql.mysqlTest("chaos: MySQL/MariaDB", async (t) => {
  const table = `${mysql.RUN}_chaos`;
  const target = await singleServerTarget(
    "MariaDB",
    mysql.MYSQL_URL,
    (url) => ({ kind: "mysql", url, table, timeout: TIMEOUT }),
  );
  try {
    await chaos(t, target);
  } finally {
    for (const p of target.proxies) await p.close();
    const db = mysql.admin();
    await mysql.dropTables(db, { table, leaseTable: `${table}_leases` });
    await db.end();
  }
});

clusterTest("chaos: Redis Cluster (one proxy per node)", async (t) => {
  const cluster = await LocalCluster.start();
  let proxied: ProxiedCluster | undefined;
  try {
    proxied = await ProxiedCluster.over(cluster);
    const pc = proxied;
    const prefix = `chaos:${crypto.randomUUID()}:`;
    const backend = { kind: "redis-cluster" as const, urls: pc.urls, prefix, timeout: TIMEOUT };
    const keys = MODES.flatMap(({ mode, chats }) => chats.map((c) => `${mode}:${c}`));
    // The Redis key of a session on a cluster: the storage puts it in a hash tag of its own.
    const slotOfKey = new Map<string, number>();
    for (const key of keys) slotOfKey.set(key, await pc.slotOf(`{${prefix}${key}}`));
    let served: [number, number][] = [];
    let window: [number, number] = [0, 0];
    const target: Target = {
      name: "Redis Cluster",
      proxies: pc.proxies,
      backend,
      direct: backend,
      prepare: () => warm(backend),
      failover: async (lag) => {
        const from = Date.now();
        const done = await pc.failover(lag, [...slotOfKey.values()]);
        served = done.served;
        window = [from, Date.now()];
        return { said: done.said, keys: keys.filter(onPrimary) };
      },
    };
    const onPrimary = (key: string) => {
      const slot = slotOfKey.get(key)!;
      return served.some(([a, b]) => slot >= a && slot <= b);
    };
    const result = await chaos(t, target, {
      replicated: true,
      // Only on the killed primary's keys: acknowledged writes lost, and (a
      // lease lost with them) locked updates overlapping.
      allowed: () => (violation) => {
        const key = violation.split(":").slice(0, 2).join(":");
        return onPrimary(key) && /is lost$| held it /.test(violation);
      },
    });
    await t.step("Redis Cluster: what the failover lost, and nothing else", () => {
      // Each lost write was acknowledged by the killed primary while its
      // replication was held back (or just before: 200 ms of slack).
      const byId = new Map(result.history.map((u) => [u.id, u]));
      const lost = result.verdicts.filter((v) => v.mode !== "grammy").flatMap((v) => v.lost);
      // (An answer read just after the kill was sent before it: 500 ms of slack.)
      const inLag = (at: number) => at >= window[0] - 200 && at <= window[1] + 500;
      const acked = result.history.filter((u) =>
        u.mode !== "grammy" && u.outcome === "ok" && onPrimary(u.key) && inLag(u.end!.at)
      ).length;
      console.log(
        `    Redis Cluster failover: ${lost.length} acknowledged writes lost, of ${acked} ` +
          `acknowledged on the killed primary's keys while its replication was held back`,
      );
      for (const id of lost) {
        const u = byId.get(id)!;
        assert.ok(onPrimary(u.key), `${id} was lost on a primary that did not fail`);
        assert.ok(
          inLag(u.end!.at),
          `${id} was acknowledged at ${u.end!.at}, outside the lag ${window.join("..")}`,
        );
      }
    });
  } finally {
    await proxied?.close();
    await cluster.stop();
  }
});

// ---------------------------------------------------------------------------
// Defects the chaos runs found, each with its test (they failed before the
// fix): a storage that opened its own connections kept using those that went
// half-open, so every update timed out for good (until the kernel's
// keepalive noticed, many minutes later); and MysqlStorage.close() rejected
// after an outage.

type Data = { count: number };
type Ctx = Context & SessionFlavor<Data>;

/**
 * A bot on `storage` (through `proxy`): one update works; then every open
 * connection goes half-open (silent for good, as when the peer vanished
 * without a FIN); new connections are served. Some update must work again
 * within `within` ms, without anything closing the dead connections.
 */
async function recoversFromHalfOpen(
  proxy: FaultProxy,
  storage: RedisStorage<Data> | PostgresStorage<Data> | MysqlStorage<Data>,
  within: number,
): Promise<void> {
  const h = createHarness<Ctx>();
  h.bot.use(session<Data, Ctx>({ initial: () => ({ count: 0 }), storage }));
  h.bot.on("message", (ctx) => void ctx.session.count++);
  try {
    await h.send(message(1));
    assert.equal(h.errors.length, 0, "the first update failed");
    const silenced = proxy.halfOpen();
    assert.ok(silenced > 0);
    const since = Date.now();
    let failed = 0;
    let recovered = -1;
    while (Date.now() - since < within) {
      const before: number = h.errors.length;
      await h.send(message(1));
      if (h.errors.length === before) {
        recovered = Date.now() - since;
        break;
      }
      failed++;
    }
    console.log(
      `    ${silenced} connections half-open: ${
        recovered < 0 ? `no update worked within ${within} ms` : `recovered after ${recovered} ms`
      } (${failed} updates failed${
        h.errors.length > 0 ? `, e.g. ${String(h.errors.at(-1)!.error).slice(0, 160)}` : ""
      })`,
    );
    assert.ok(recovered >= 0, `no update worked within ${within} ms of the half-open connections`);
  } finally {
    proxy.cut();
    proxy.heal();
    await storage.close();
    await proxy.close();
  }
}

const HALF_OPEN_BOUND = 5 * 500;

redisTest(
  "chaos: RedisStorage.connect drops a connection that went half-open, within two timeouts",
  async () => {
    const proxy = await FaultProxy.forUrl(REDIS_URL);
    const storage = await RedisStorage.connect<Data>(proxy.url, {
      prefix: `sessionkit-test:chaos-half-open:${crypto.randomUUID()}:`,
      timeout: 500,
      onError: () => {},
    });
    await recoversFromHalfOpen(proxy, storage, HALF_OPEN_BOUND);
  },
);

pgTest(
  "chaos: PostgresStorage.connect drops every pooled connection that went half-open, at once",
  async () => {
    const table = `${PG_RUN}_chaos_half_open`;
    await warm({ kind: "postgres", url: DATABASE_URL, table });
    const proxy = await FaultProxy.forUrl(DATABASE_URL);
    const storage = PostgresStorage.connect<Data>(proxy.url, { table, timeout: 500 });
    try {
      // Fill the pool (10 connections), as a busy bot does.
      await Promise.all(Array.from({ length: 12 }, () => storage.read("warm")));
      await recoversFromHalfOpen(proxy, storage, HALF_OPEN_BOUND);
    } finally {
      const db = await pgAdmin();
      await db.query(`DROP TABLE IF EXISTS "${table}", "${table}_leases"`);
      await db.query(`DROP FUNCTION IF EXISTS "${table}_lease_read"(text, text, float8)`);
      await db.query(`DROP FUNCTION IF EXISTS "${table}_save_release"`);
      await db.end();
    }
  },
);

mysql.mysqlTest(
  "chaos: MysqlStorage.connect drops every pooled connection that went half-open, at once",
  async () => {
    const table = `${mysql.RUN}_chaos_half_open`;
    await warm({ kind: "mysql", url: mysql.MYSQL_URL, table });
    const proxy = await FaultProxy.forUrl(mysql.MYSQL_URL);
    const storage = MysqlStorage.connect<Data>(proxy.url, { table, timeout: 500 });
    try {
      await Promise.all(Array.from({ length: 12 }, () => storage.read("warm")));
      await recoversFromHalfOpen(proxy, storage, HALF_OPEN_BOUND);
    } finally {
      const db = mysql.admin();
      await mysql.dropTables(db, { table, leaseTable: `${table}_leases` });
      await db.end();
    }
  },
);

mysql.mysqlTest(
  "chaos: MysqlStorage.close() after an outage resolves (the driver's 'Connection lost' absorbed)",
  async () => {
    const table = `${mysql.RUN}_chaos_close`;
    await warm({ kind: "mysql", url: mysql.MYSQL_URL, table });
    const proxy = await FaultProxy.forUrl(mysql.MYSQL_URL);
    const storage = MysqlStorage.connect<Data>(proxy.url, { table, timeout: 300 });
    try {
      await Promise.all(["a", "b", "c"].map((key) => storage.read(key)));
      // The server goes silent; the reads in flight are given up; then the
      // network closes the connections, and the bot shuts down.
      proxy.swallow();
      const given = await Promise.allSettled(["a", "b", "c"].map((key) => storage.read(key)));
      assert.ok(given.every((r) => r.status === "rejected"));
      proxy.cut();
      proxy.heal();
      let error: unknown;
      await storage.close().catch((err) => (error = err));
      assert.equal(error, undefined, `close() rejected: ${error}`);
    } finally {
      await proxy.close();
      const db = mysql.admin();
      await mysql.dropTables(db, { table, leaseTable: `${table}_leases` });
      await db.end();
    }
  },
);

// Found by the adversarial review of the half-open fixes: a pool that drops
// connections must not hang close(), nor turn a slow link or a short
// latency spike into failures of its own.

/** `promise`'s value, or `undefined` once `ms` passed. */
async function settledWithin<T>(
  promise: Promise<T>,
  ms: number,
): Promise<{ value: T } | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((
    resolve,
  ) => (timer = setTimeout(() => resolve(undefined), ms)));
  const result = await Promise.race([promise.then((value) => ({ value })), late]);
  clearTimeout(timer);
  return result;
}

mysql.mysqlTest(
  "chaos: MysqlStorage.close() with statements in flight on half-open connections resolves",
  async () => {
    const table = `${mysql.RUN}_chaos_close_silent`;
    await warm({ kind: "mysql", url: mysql.MYSQL_URL, table });
    const proxy = await FaultProxy.forUrl(mysql.MYSQL_URL);
    const storage = MysqlStorage.connect<Data>(proxy.url, { table, timeout: 300 });
    try {
      await Promise.all(Array.from({ length: 6 }, () => storage.read("warm")));
      assert.ok(proxy.halfOpen() > 0);
      const inFlight = storage.read("a").catch(() => {});
      await sleep(100);
      // Before: pool.end() queued its quit behind the silent statement, and
      // mysql2's destroy() only half-closed the socket: close() never ended.
      const closed = await settledWithin(storage.close().then(() => true), 3_000);
      assert.ok(closed !== undefined, "close() still pending after 3 s");
      await inFlight;
    } finally {
      proxy.cut();
      await proxy.close();
      const db = mysql.admin();
      await mysql.dropTables(db, { table, leaseTable: `${table}_leases` });
      await db.end();
    }
  },
);

/**
 * `updates` updates of one chat through a real Bot on `storage`; the
 * failures, in order (1: failed).
 */
async function failuresOver(
  storage: PostgresStorage<Data> | MysqlStorage<Data>,
  updates: number,
): Promise<string> {
  const h = createHarness<Ctx>();
  h.bot.use(session<Data, Ctx>({ initial: () => ({ count: 0 }), storage }));
  h.bot.on("message", (ctx) => void ctx.session.count++);
  let out = "";
  for (let i = 0; i < updates; i++) {
    const before = h.errors.length;
    await h.send(message(1));
    out += h.errors.length > before ? "1" : "0";
  }
  return out;
}

mysql.mysqlTest(
  "chaos: MysqlStorage.connect over a slow link (RTT 2/3 of the timeout) recovers as a pool passed in does",
  async () => {
    const table = `${mysql.RUN}_chaos_slow`;
    await warm({ kind: "mysql", url: mysql.MYSQL_URL, table });
    const runs: Record<string, string> = {};
    const mysql2 = (await import("npm:mysql2@^3/promise")).default;
    for (const kind of ["connect", "passed in"]) {
      const proxy = await FaultProxy.forUrl(mysql.MYSQL_URL);
      const own = kind === "passed in" ? mysql2.createPool({ uri: proxy.url }) : undefined;
      const storage = own === undefined
        ? MysqlStorage.connect<Data>(proxy.url, { table, timeout: 300 })
        : new MysqlStorage<Data>(own as never, { table, timeout: 300 });
      try {
        proxy.latency(100, 0);
        runs[kind] = await failuresOver(storage, 16);
      } finally {
        proxy.heal();
        if (own === undefined) await storage.close();
        else await own.end().catch(() => {});
        proxy.cut();
        await proxy.close();
      }
    }
    console.log(`    failed updates (1) over RTT 200 ms, timeout 300 ms: ${JSON.stringify(runs)}`);
    // Before: every update on a new connection failed, for good (a cold
    // connection's prepare and execute take two round trips, and the guard
    // tore it down after one timeout).
    assert.match(runs.connect, /0000$/, "connect() never recovered over a slow link");
    const failed = (s: string) => s.split("").filter((c) => c === "1").length;
    assert.ok(failed(runs.connect) <= failed(runs["passed in"]) + 3, JSON.stringify(runs));
    const db = mysql.admin();
    await mysql.dropTables(db, { table, leaseTable: `${table}_leases` });
    await db.end();
  },
);

pgTest("chaos: PostgresStorage.connect after a latency spike: no failures of its own", async () => {
  const table = `${PG_RUN}_chaos_spike`;
  await warm({ kind: "postgres", url: DATABASE_URL, table });
  const proxy = await FaultProxy.forUrl(DATABASE_URL);
  const storage = PostgresStorage.connect<Data>(proxy.url, { table, timeout: 300 });
  try {
    proxy.latency(100, 0); // RTT 200 ms: each query answers within the timeout
    await failuresOver(storage, 3);
    proxy.latency(250, 0); // a 1 s spike: RTT 500 ms, every update fails
    const spikeEnds = Date.now() + 1_000;
    while (Date.now() < spikeEnds) await failuresOver(storage, 1);
    proxy.latency(100, 0);
    await sleep(700); // the answers of the spike come in
    const after = await failuresOver(storage, 12);
    console.log(`    after a 1 s latency spike (1: failed): ${after}`);
    // Before: the checks after each timeout took every idle connection, the
    // next update had to open a new one and timed out: 11 more failures.
    assert.ok(after.split("").filter((c) => c === "1").length <= 2, after);
  } finally {
    proxy.heal();
    await storage.close();
    proxy.cut();
    await proxy.close();
    const db = await pgAdmin();
    await db.query(`DROP TABLE IF EXISTS "${table}", "${table}_leases"`);
    await db.query(`DROP FUNCTION IF EXISTS "${table}_lease_read"(text, text, float8)`);
    await db.query(`DROP FUNCTION IF EXISTS "${table}_save_release"`);
    await db.end();
  }
});

redisTest(
  "chaos: RedisStorage.connect's close() during a reconnection that hangs ends at once",
  async () => {
    // Found by the adversarial review of the new connection: close() waited
    // for the attempt to connect, up to the timeout (10 s by default).
    const proxy = await FaultProxy.forUrl(REDIS_URL);
    const storage = await RedisStorage.connect<Data>(proxy.url, {
      prefix: `sessionkit-test:chaos-close:${crypto.randomUUID()}:`,
      onError: () => {},
    });
    try {
      proxy.swallow();
      proxy.cut(); // lost; the next attempt connects to a proxy that never answers
      await sleep(300);
      const started = Date.now();
      await storage.close();
      assert.ok(Date.now() - started < 2_500, `close() took ${Date.now() - started} ms`);
    } finally {
      proxy.heal();
      await proxy.close();
    }
  },
);

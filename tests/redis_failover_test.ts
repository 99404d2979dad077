/**
 * Redis Cluster failover under a stream of updates (issue #18): a real grammY
 * Bot with sessionkit's session() and, beside it, grammY's own session(), both
 * on RedisStorage over a local cluster (tests/fixtures/redis_cluster.ts);
 * many chats spread over every master, each update incrementing its chat's
 * counter. One master is SIGKILLed in the middle; the stream goes on until its
 * replica is promoted and every update has succeeded again for a while. Run
 * with node-redis (`RedisStorage.connectCluster`) and with an ioredis
 * `Cluster` (default options), one kill each on one cluster.
 *
 * Checked against what is stored afterwards, per chat, from the recorded
 * outcome of every update (ok; failed before the handler ran, so nothing was
 * written; failed after it, so the write may or may not have landed):
 * - every acknowledged increment is there, or counted as lost; losses happen
 *   only on the killed master's chats, only to writes acknowledged in the
 *   last second before the kill (Redis replicates asynchronously), and there
 *   are at most as many as such writes;
 * - no counter is higher than its acknowledged plus unknown-outcome updates;
 * - every stored session is exactly `{"count":n}` (nothing half-written);
 * - the killed master's chats fail, then succeed again within 30 s.
 * The figures (losses, outage) are printed; docs/reliability.md quotes them.
 */
import assert from "node:assert/strict";
import {
  BotError,
  type Context,
  session as grammySession,
  type SessionFlavor,
} from "npm:grammy@^1.46";
import { createCluster } from "npm:redis@^5";
import { Cluster } from "npm:ioredis@^5";
import { session } from "../mod.ts";
import { type RedisClient, RedisStorage } from "../storages/redis.ts";
import { type ClusterNode, clusterTest, LocalCluster } from "./fixtures/redis_cluster.ts";
import { createHarness, type Harness, message, sleep } from "./helpers/bot.ts";

type Data = { count: number };
type Ctx = Context & SessionFlavor<Data>;

/** Chats per middleware (sessionkit's, grammY's). */
const CHATS = 30;
const WARMUP_MS = 1_500;
/** How long every update must have succeeded before the stream stops. */
const STABLE_MS = 1_500;
const PROMOTION_LIMIT_MS = 30_000;
/** An update taking longer than this counts as hung (the test fails). */
const HUNG_MS = 10_000;
/** Acknowledged writes older than this before the kill must survive. */
const LOSS_WINDOW_MS = 1_000;

/** One update's recorded outcome. */
interface Outcome {
  start: number;
  end: number;
  /** ok; failed before the handler ran (nothing written); failed after it (write unknown). */
  kind: "ok" | "unwritten" | "unknown";
  /** The counter the handler saw, if it ran. */
  before?: number;
  error?: string;
}

/** One chat of the stream. */
interface Chat {
  label: string;
  id: number;
  redisKey: string;
  harness: Harness<Ctx>;
  outcomes: Outcome[];
}

const now = () => performance.now();

/** Waits until every replica has finished its first sync (else it cannot be promoted). */
async function replicasInSync(cluster: LocalCluster): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (const node of cluster.nodes.filter((n) => !n.killed)) {
    for (;;) {
      const info = await cluster.cli(node.port, "INFO", "replication");
      if (info.includes("role:master") || info.includes("master_link_status:up")) break;
      if (Date.now() > deadline) throw new Error(`replica ${node.port} never synced:\n${info}`);
      await sleep(100);
    }
  }
}

/** A live master that has a replica in sync, so that it can fail over. */
async function victimOf(cluster: LocalCluster): Promise<ClusterNode> {
  for (const master of await cluster.masters()) {
    const info = await cluster.cli(master.port, "INFO", "replication");
    if (/connected_slaves:[1-9]/.test(info) && /slave0:.*state=online/.test(info)) return master;
  }
  throw new Error("no master with a replica in sync");
}

/** A bot with sessionkit's or grammY's session() counting messages; `seen` gets what handlers read. */
function counterBot(
  kind: "sessionkit" | "grammY",
  storage: RedisStorage<Data, RedisClient>,
  seen: Map<number, number>,
): Harness<Ctx> {
  const harness = createHarness<Ctx>();
  const initial = () => ({ count: 0 });
  harness.bot.use(
    kind === "sessionkit" ? session({ initial, storage }) : grammySession({
      initial,
      storage,
    }),
  );
  harness.bot.on("message", (ctx) => {
    seen.set(ctx.update.update_id, ctx.session.count);
    ctx.session.count++;
  });
  return harness;
}

async function deliver(chat: Chat, seen: Map<number, number>): Promise<Outcome> {
  const update = message(chat.id);
  const start = now();
  let kind: Outcome["kind"] = "ok";
  let error: string | undefined;
  try {
    await chat.harness.bot.handleUpdate(update);
  } catch (err) {
    kind = seen.has(update.update_id) ? "unknown" : "unwritten";
    const inner = err instanceof BotError ? err.error : err;
    error = inner instanceof Error ? `${inner.name}: ${inner.message}` : String(inner);
  }
  const before = seen.get(update.update_id);
  seen.delete(update.update_id);
  return { start, end: now(), kind, before, error };
}

/** What one chat's outcomes and stored counter say. */
interface Verdict {
  ok: number;
  unknown: number;
  /** End times of acknowledged writes that the stored data no longer has. */
  lost: number[];
  /** Unknown-outcome writes that landed. */
  landed: number;
}

/**
 * Replays a chat's outcomes in order against what each handler read and what
 * is stored at the end. A read lower than the last acknowledged value means
 * acknowledged writes were lost; a higher one must be explained by writes of
 * unknown outcome since the previous read.
 */
function verdict(chat: Chat, stored: number): Verdict {
  const v: Verdict = { ok: 0, unknown: 0, lost: [], landed: 0 };
  let expected = 0;
  let pending = 0;
  const ackedAt = new Map<number, number>();
  const observe = (seenValue: number, where: string) => {
    if (seenValue > expected) {
      assert.ok(
        seenValue - expected <= pending,
        `${chat.label}: ${where} is ${seenValue}, above the last acknowledged ${expected} plus ` +
          `${pending} write(s) of unknown outcome: an increment was invented`,
      );
      v.landed += seenValue - expected;
    }
    for (let value = expected; value > seenValue; value--) {
      const at = ackedAt.get(value);
      if (at !== undefined) v.lost.push(at);
      ackedAt.delete(value);
    }
    expected = seenValue;
    pending = 0;
  };
  chat.outcomes.forEach((o, i) => {
    if (o.kind === "ok") v.ok++;
    if (o.kind === "unknown") v.unknown++;
    if (o.before === undefined) return;
    observe(o.before, `the counter read by update ${i}`);
    if (o.kind === "ok") ackedAt.set(++expected, o.end);
    if (o.kind === "unknown") pending = 1;
  });
  observe(stored, "the stored counter");
  assert.ok(stored <= v.ok + v.unknown, `${chat.label}: stored ${stored} > ok + unknown`);
  return v;
}

/** The two storages of a run (sessionkit's and grammY's chats) over one client kind. */
interface Opened {
  ours: RedisStorage<Data, RedisClient>;
  theirs: RedisStorage<Data, RedisClient>;
  close(): Promise<void>;
}

async function failoverRun(
  cluster: LocalCluster,
  client: string,
  open: (prefix: string) => Promise<Opened>,
): Promise<void> {
  await replicasInSync(cluster);
  const victim = await victimOf(cluster);
  const prefix = `fo:${crypto.randomUUID().slice(0, 8)}:`;
  const opened = await open(prefix);
  const { ours, theirs } = opened;
  const seen = new Map<number, number>();
  const chats: Chat[] = [];
  for (const [kind, storage] of [["sessionkit", ours], ["grammY", theirs]] as const) {
    const harness = counterBot(kind, storage, seen);
    for (let i = 1; i <= CHATS; i++) {
      const id = kind === "sessionkit" ? i : 1000 + i;
      const redisKey = `{${storage.prefix}${id}}`;
      chats.push({ label: `${kind} chat ${id}`, id, redisKey, harness, outcomes: [] });
    }
  }
  const firstRound = await Promise.all(chats.map((chat) => deliver(chat, seen)));
  assert.deepEqual(firstRound.map((o) => o.error), chats.map(() => undefined));
  chats.forEach((chat, i) => chat.outcomes.push(firstRound[i]));
  // Which chats live on the master that will be killed.
  const held = new Set(
    (await cluster.cli(victim.port, "--scan", "--pattern", `{${prefix}*`)).split("\n"),
  );
  const onVictim = (chat: Chat) => held.has(chat.redisKey);
  for (const kind of ["sessionkit", "grammY"]) {
    const mine = chats.filter((c) => c.label.startsWith(kind));
    assert.ok(mine.some(onVictim) && !mine.every(onVictim), `${kind} chats not spread`);
  }

  let stopped = false;
  let hung = 0;
  const worker = async (chat: Chat) => {
    while (!stopped) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        deliver(chat, seen),
        new Promise<undefined>((
          resolve,
        ) => (timer = setTimeout(() => resolve(undefined), HUNG_MS))),
      ]);
      clearTimeout(timer);
      if (outcome === undefined) {
        hung++;
        return;
      }
      chat.outcomes.push(outcome);
      await sleep(outcome.kind === "ok" ? 2 : 20);
    }
  };
  const workers = chats.map(worker);
  await sleep(WARMUP_MS);
  const killStart = now();
  await cluster.killMaster(victim.port);
  const killEnd = now();

  const failures = (filter: (c: Chat) => boolean) =>
    chats.filter(filter).flatMap((c) => c.outcomes.filter((o) => o.kind !== "ok"));
  let recoveredAt: number | undefined;
  let firstFailure: number | undefined;
  try {
    while (true) {
      assert.equal(hung, 0, `${hung} update(s) hung for ${HUNG_MS} ms`);
      const t = now();
      assert.ok(
        t - killEnd < PROMOTION_LIMIT_MS,
        `${client}: the killed master's chats did not recover within ${PROMOTION_LIMIT_MS} ms`,
      );
      const victimFailures = failures(onVictim).filter((o) => o.end >= killStart);
      if (victimFailures.length > 0) {
        firstFailure = Math.min(...victimFailures.map((o) => o.start));
        const recovered = chats.filter(onVictim).flatMap((c) =>
          c.outcomes.filter((o) => o.kind === "ok" && o.start > firstFailure!)
        );
        recoveredAt = recovered.length === 0 ? undefined : Math.min(...recovered.map((o) => o.end));
      }
      const lastFailure = Math.max(0, ...failures(() => true).map((o) => o.end));
      if (recoveredAt !== undefined && t - Math.max(recoveredAt, lastFailure) >= STABLE_MS) break;
      await sleep(100);
    }
  } finally {
    stopped = true;
    await Promise.all(workers);
  }
  assert.equal(hung, 0, `${hung} update(s) hung for ${HUNG_MS} ms`);
  assert.ok(firstFailure !== undefined && recoveredAt !== undefined);

  // What is stored, read by a client that learns the topology afresh.
  const live = cluster.nodes.filter((n) => !n.killed);
  const admin = createCluster({
    rootNodes: live.map((n) => ({ url: `redis://127.0.0.1:${n.port}` })),
  });
  admin.on("error", () => {});
  await admin.connect();
  let lostTotal = 0;
  let landedTotal = 0;
  let ackedInWindow = 0;
  const lostChats: string[] = [];
  try {
    let keys = 0;
    for (const master of await cluster.masters()) {
      const found = await cluster.cli(master.port, "--scan", "--pattern", `{${prefix}*`);
      keys += found.split("\n").filter(Boolean).length;
    }
    assert.equal(keys, chats.length, "exactly one key per chat, nothing else");
    for (const chat of chats) {
      const text = await admin.get(chat.redisKey);
      assert.ok(text !== null, `${chat.label}: no session stored`);
      assert.match(text, /^\{"count":\d+\}$/, `${chat.label}: stored ${text}: half-written`);
      const stored = (JSON.parse(text) as Data).count;
      const v = verdict(chat, stored);
      landedTotal += v.landed;
      if (onVictim(chat)) {
        ackedInWindow += chat.outcomes.filter((o) =>
          o.kind === "ok" && o.end >= killStart - LOSS_WINDOW_MS && o.end <= killEnd
        ).length;
      }
      if (v.lost.length === 0) continue;
      lostTotal += v.lost.length;
      lostChats.push(`${chat.label} (${v.lost.length})`);
      assert.ok(onVictim(chat), `${chat.label}: lost a write but was not on the killed master`);
      for (const at of v.lost) {
        assert.ok(
          at >= killStart - LOSS_WINDOW_MS && at <= killEnd,
          `${chat.label}: lost a write acknowledged ${
            Math.round(killStart - at)
          } ms before the kill`,
        );
      }
    }
  } finally {
    await admin.close();
  }
  assert.ok(lostTotal <= ackedInWindow);

  const all = chats.flatMap((c) => c.outcomes);
  const count = (kind: Outcome["kind"]) => all.filter((o) => o.kind === kind).length;
  const errorKinds = new Map<string, number>();
  for (const o of all) {
    if (o.error === undefined) continue;
    const key = o.error.replace(/\d+(\.\d+)*(:\d+)?/g, "N").slice(0, 90);
    errorKinds.set(key, (errorKinds.get(key) ?? 0) + 1);
  }
  const others = failures((c) => !onVictim(c)).filter((o) => o.end >= killStart);
  const beforeKill = all.filter((o) => o.kind !== "ok" && o.end < killStart).length;
  const othersSpan = others.length === 0
    ? 0
    : Math.max(...others.map((o) => o.end)) - Math.min(...others.map((o) => o.start));
  const ms = (x: number) => `${Math.round(x)} ms`;
  const slowest = Math.max(...all.filter((o) => o.kind === "ok").map((o) => o.end - o.start));
  console.log(
    `failover ${client}: ${all.length} updates, ${count("ok")} ok, ` +
      `${count("unwritten")} failed before the handler, ${count("unknown")} failed on the write ` +
      `(${beforeKill} of them before the kill); ` +
      `${ackedInWindow} writes acknowledged on the killed master in the last ` +
      `${LOSS_WINDOW_MS} ms before the kill, ${lostTotal} lost` +
      `${lostChats.length ? ` (${lostChats.join(", ")})` : ""}; ${landedTotal} failed writes ` +
      `landed; outage on the killed master's slots ${ms(recoveredAt - firstFailure)} (kill to ` +
      `first success ${ms(recoveredAt - killEnd)}); other masters: ${others.length} failures ` +
      `over ${ms(othersSpan)}; slowest successful update ${ms(slowest)}; errors: ${
        JSON.stringify(Object.fromEntries(errorKinds))
      }`,
  );
  await opened.close();
}

clusterTest("Redis Cluster failover: a master SIGKILLed under a stream of updates", async (t) => {
  const cluster = await LocalCluster.start();
  try {
    await t.step("node-redis, RedisStorage.connectCluster (its defaults)", async () => {
      await failoverRun(cluster, "node-redis", async (prefix) => {
        const open = (part: string) =>
          RedisStorage.connectCluster<Data>(cluster.urls, {
            prefix: prefix + part,
            onError: () => {},
          });
        const [ours, theirs] = [await open("sk:"), await open("gy:")];
        return {
          ours,
          theirs,
          close: async () => void await Promise.all([ours, theirs].map((s) => s.close())),
        };
      });
    });
    await t.step("ioredis Cluster (default options), passed in", async () => {
      await failoverRun(cluster, "ioredis", async (prefix) => {
        const live = cluster.nodes.filter((n) => !n.killed);
        const io = new Cluster(live.map((n) => ({ host: "127.0.0.1", port: n.port })));
        io.on("error", () => {});
        io.on("node error", () => {});
        await new Promise<void>((resolve, reject) => {
          io.once("ready", () => resolve());
          io.once("error", reject);
        });
        return {
          ours: new RedisStorage<Data>(io, { prefix: prefix + "sk:" }),
          theirs: new RedisStorage<Data>(io, { prefix: prefix + "gy:" }),
          close: () => Promise.resolve(io.disconnect()),
        };
      });
    });
  } finally {
    await cluster.stop();
  }
});

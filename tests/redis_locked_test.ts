/**
 * RedisStorage's locked calls, `acquireLeaseAndRead` and `saveAndReleaseLease`
 * (issue #18), at the storage level on every kind of client: node-redis v5
 * and v4, ioredis, and node-redis's and ioredis's cluster clients on a local
 * Redis Cluster. The lease is taken only when free or already held by the
 * same owner, and only then is the session read (its TTL renewed or
 * cleared as `read` does); a save writes nothing while the lease is not
 * held, keeps the lease after a conflict, and gives it up once done; and
 * each call is ONE command at the server, seen with `MONITOR` on every
 * server or master involved (and one call through the client).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createClient, createCluster } from "npm:redis@^5";
import { createClient as createClientV4 } from "npm:redis@^4";
import { Cluster, Redis } from "npm:ioredis@^5";
import { SessionError } from "../mod.ts";
import {
  type NodeRedisClusterLike,
  type RedisClient,
  type RedisClientLike,
  RedisStorage,
} from "../storages/redis.ts";
import { clusterAvailable, clusterTest, LocalCluster } from "./fixtures/redis_cluster.ts";
import { errorOf } from "./helpers/errors.ts";
import { REDIS_URL, RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";

type Data = { n: number; text?: string };
type Storage = RedisStorage<Data, RedisClient>;

/** A raw command on `key` (routed by it on a cluster). */
type Raw = (key: string, args: (string | Buffer)[]) => Promise<unknown>;

/** Every command seen by one or more servers with `MONITOR`, from this test's prefix. */
class Monitor {
  readonly #lines: string[] = [];
  readonly #clients: {
    watch: ReturnType<typeof createClient>;
    echo: ReturnType<typeof createClient>;
  }[] = [];

  static async open(urls: string[]): Promise<Monitor> {
    const monitor = new Monitor();
    for (const url of urls) {
      const watch = createClient({ url });
      const echo = createClient({ url });
      watch.on("error", () => {});
      echo.on("error", () => {});
      await watch.connect();
      await echo.connect();
      monitor.#clients.push({ watch, echo });
      await watch.monitor((line) => void monitor.#lines.push(String(line)));
    }
    return monitor;
  }

  /**
   * What every server ran since the last call that names `prefix`: the
   * commands clients sent (`sent`) and those scripts ran (`lua`), by name.
   * An `ECHO` of a marker on every server, waited for, flushes the feed.
   */
  async take(prefix: string): Promise<{ sent: string[]; lua: string[] }> {
    const marker = `sk-marker-${crypto.randomUUID()}`;
    for (const { echo } of this.#clients) await echo.sendCommand(["ECHO", marker]);
    const deadline = Date.now() + 5000;
    while (this.#lines.filter((line) => line.includes(marker)).length < this.#clients.length) {
      if (Date.now() > deadline) throw new Error("MONITOR never showed the marker");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const lines = this.#lines.splice(0).filter((line) => line.includes(prefix));
    const sent: string[] = [];
    const lua: string[] = [];
    for (const line of lines) {
      // 1712345678.123456 [0 127.0.0.1:50000] "EVALSHA" "..." ...  or  [0 lua] "GET" ...
      const match = /^\S+ \[\d+ ([^\]]+)\] "([^"]*)"/.exec(line);
      if (match === null) throw new Error(`cannot parse MONITOR line: ${line}`);
      (match[1] === "lua" ? lua : sent).push(match[2].toUpperCase());
    }
    return { sent, lua };
  }

  async close(): Promise<void> {
    for (const { watch, echo } of this.#clients) {
      watch.destroy();
      await echo.close();
    }
  }
}

/** One kind of client, opened for one test. */
interface Kind {
  readonly cluster: boolean;
  /** A storage over the counted client. */
  storage(prefix: string, ttl?: number): Storage;
  /** Command names sent through the client since the last call. */
  takeSent(): string[];
  /** Raw commands for the test's own look at Redis. */
  readonly raw: Raw;
  /** The URLs of the server or of every master, for `MONITOR`. */
  readonly urls: string[];
  /** Flushes the script cache of every server (a private cluster only). */
  flushScripts?(): Promise<void>;
  close(): Promise<void>;
}

/** A node-redis single client with every `sendCommand` counted. */
function countedNodeRedis(inner: RedisClientLike, sent: string[]): RedisClientLike {
  return {
    sendCommand(args: string[]) {
      sent.push(args[0].toUpperCase());
      return inner.sendCommand(args);
    },
  };
}

/** An ioredis client (single or Cluster) with every `call` counted, in place. */
function countCalls(client: Redis | Cluster, sent: string[]): void {
  const target = client as unknown as { call: (command: string, args: string[]) => unknown };
  const call = target.call.bind(client);
  target.call = (command, args) => {
    sent.push(command.toUpperCase());
    return call(command, args);
  };
}

function taker(sent: string[]): () => string[] {
  return () => sent.splice(0);
}

async function singleRaw(): Promise<{ raw: Raw; close: () => Promise<void> }> {
  const admin = createClient({ url: REDIS_URL });
  admin.on("error", () => {});
  await admin.connect();
  return { raw: (_key, args) => admin.sendCommand(args), close: () => admin.close() };
}

const singleKinds: Record<string, () => Promise<Kind>> = {
  "node-redis v5": async () => {
    const client = createClient({ url: REDIS_URL });
    client.on("error", () => {});
    await client.connect();
    const sent: string[] = [];
    const admin = await singleRaw();
    return {
      cluster: false,
      storage: (prefix, ttl) =>
        new RedisStorage<Data, RedisClient>(countedNodeRedis(client, sent), { prefix, ttl }),
      takeSent: taker(sent),
      raw: admin.raw,
      urls: [REDIS_URL],
      async close() {
        await admin.close();
        await client.close();
      },
    };
  },
  "node-redis v4": async () => {
    const client = createClientV4({ url: REDIS_URL });
    client.on("error", () => {});
    await client.connect();
    const sent: string[] = [];
    const admin = await singleRaw();
    return {
      cluster: false,
      storage: (prefix, ttl) =>
        new RedisStorage<Data, RedisClient>(countedNodeRedis(client, sent), { prefix, ttl }),
      takeSent: taker(sent),
      raw: admin.raw,
      urls: [REDIS_URL],
      async close() {
        await admin.close();
        await client.quit();
      },
    };
  },
  "ioredis": async () => {
    const client = new Redis(REDIS_URL);
    const sent: string[] = [];
    countCalls(client, sent);
    const admin = await singleRaw();
    return {
      cluster: false,
      storage: (prefix, ttl) => new RedisStorage<Data, RedisClient>(client, { prefix, ttl }),
      takeSent: taker(sent),
      raw: admin.raw,
      urls: [REDIS_URL],
      async close() {
        await admin.close();
        await client.quit();
      },
    };
  },
};

async function clusterRaw(
  cluster: LocalCluster,
): Promise<{ raw: Raw; close: () => Promise<void> }> {
  const admin = createCluster({ rootNodes: [{ url: cluster.urls[0] }] });
  admin.on("error", () => {});
  await admin.connect();
  return { raw: (key, args) => admin.sendCommand(key, false, args), close: () => admin.close() };
}

async function masterUrls(cluster: LocalCluster): Promise<string[]> {
  return (await cluster.masters()).map((node) => `redis://127.0.0.1:${node.port}`);
}

async function flushAll(urls: string[]): Promise<void> {
  for (const url of urls) {
    const client = createClient({ url });
    client.on("error", () => {});
    await client.connect();
    await client.sendCommand(["SCRIPT", "FLUSH"]);
    await client.close();
  }
}

const clusterKinds: Record<string, (cluster: LocalCluster) => Promise<Kind>> = {
  "node-redis cluster": async (cluster) => {
    const client = createCluster({ rootNodes: [{ url: cluster.urls[0] }] });
    client.on("error", () => {});
    await client.connect();
    const sent: string[] = [];
    const counted: NodeRedisClusterLike = {
      sendCommand(firstKey, isReadonly, args) {
        sent.push(args[0].toUpperCase());
        return client.sendCommand(firstKey, isReadonly, args);
      },
      get masters() {
        return client.masters;
      },
      nodeClient: (node) => client.nodeClient(node as (typeof client.masters)[number]),
    };
    const admin = await clusterRaw(cluster);
    const urls = await masterUrls(cluster);
    return {
      cluster: true,
      storage: (prefix, ttl) => new RedisStorage<Data, RedisClient>(counted, { prefix, ttl }),
      takeSent: taker(sent),
      raw: admin.raw,
      urls,
      flushScripts: () => flushAll(urls),
      async close() {
        await admin.close();
        await client.close();
      },
    };
  },
  "ioredis Cluster": async (cluster) => {
    const client = new Cluster([{ host: "127.0.0.1", port: cluster.nodes[0].port }]);
    await new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve());
      client.once("error", reject);
    });
    const sent: string[] = [];
    countCalls(client, sent);
    const admin = await clusterRaw(cluster);
    const urls = await masterUrls(cluster);
    return {
      cluster: true,
      storage: (prefix, ttl) => new RedisStorage<Data, RedisClient>(client, { prefix, ttl }),
      takeSent: taker(sent),
      raw: admin.raw,
      urls,
      flushScripts: () => flushAll(urls),
      async close() {
        await admin.close();
        await client.quit();
      },
    };
  },
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The steps, the same on every kind of client. */
async function lockedSteps(t: Deno.TestContext, kind: Kind, prefix: string): Promise<void> {
  const withTtl = kind.storage(prefix, 60_000);
  const noTtl = kind.storage(prefix);
  const sessionKey = (key: string) => kind.cluster ? `{${prefix}${key}}` : prefix + key;
  const leaseKey = (key: string) =>
    withTtl.leasePrefix + (kind.cluster ? `{${prefix}${key}}` : key);
  const raw = kind.raw;
  const get = async (key: string) => (await raw(key, ["GET", key])) ?? null;
  const pttl = async (key: string) => Number(await raw(key, ["PTTL", key]));
  const exists = async (key: string) => Number(await raw(key, ["EXISTS", key])) === 1;
  const monitor = await Monitor.open(kind.urls);
  try {
    await t.step("taken when free: the read sees the stored value and its version", async () => {
      assert.deepEqual(await withTtl.acquireLeaseAndRead("empty", "A", 5000), {
        value: undefined,
        version: null,
      });
      assert.equal(await get(leaseKey("empty")), "A", "the lease was taken");
      await withTtl.write("k", { n: 1, text: "ключ 🎉" });
      const read = await withTtl.acquireLeaseAndRead("k", "A", 5000);
      assert.deepEqual(read, {
        value: { n: 1, text: "ключ 🎉" },
        version: JSON.stringify({ n: 1, text: "ключ 🎉" }),
      });
      assert.equal(read?.version, (await withTtl.readVersioned("k")).version, "as readVersioned");
      assert.equal(await get(leaseKey("k")), "A");
      const leaseTtl = await pttl(leaseKey("k"));
      assert.ok(leaseTtl > 4000 && leaseTtl <= 5000, `the lease lasts its ttl (${leaseTtl})`);
    });

    await t.step("held by another owner: refused, nothing read, the lease unchanged", async () => {
      await raw(sessionKey("k"), ["PEXPIRE", sessionKey("k"), "3000"]);
      await monitor.take(prefix);
      assert.equal(await withTtl.acquireLeaseAndRead("k", "B", 9000), null);
      const seen = await monitor.take(prefix);
      assert.ok(!seen.lua.includes("GETEX"), `nothing was read (${seen.lua})`);
      assert.ok((await pttl(sessionKey("k"))) <= 3000, "the session's TTL was not renewed");
      assert.equal(await get(leaseKey("k")), "A", "still A's");
      assert.ok((await pttl(leaseKey("k"))) <= 5000, "A's lease was not extended by B");
      assert.equal(await noTtl.acquireLease("k", "B", 5000), false, "B still cannot take it");
      // The owner that holds it may take it again, which extends it.
      const again = await withTtl.acquireLeaseAndRead("k", "A", 8000);
      assert.deepEqual(again?.value, { n: 1, text: "ключ 🎉" });
      assert.ok((await pttl(leaseKey("k"))) > 7000, "extended for A");
    });

    await t.step("a save lands, gives the lease up, and the next owner reads it", async () => {
      const { version } = (await withTtl.acquireLeaseAndRead("s", "A", 5000))!;
      assert.equal(version, null);
      assert.deepEqual(await withTtl.saveAndReleaseLease("s", { n: 2 }, version, "A"), {
        saved: true,
        version: '{"n":2}',
      });
      assert.equal(await get(sessionKey("s")), '{"n":2}');
      assert.equal(await exists(leaseKey("s")), false, "the lease is gone");
      const next = await withTtl.acquireLeaseAndRead("s", "B", 5000);
      assert.deepEqual(next, { value: { n: 2 }, version: '{"n":2}' }, "B takes it at once");
      assert.deepEqual(await withTtl.saveAndReleaseLease("s", { n: 3 }, next!.version, "B"), {
        saved: true,
        version: '{"n":3}',
      });
      assert.equal(await get(sessionKey("s")), '{"n":3}');
    });

    await t.step("a conflict writes nothing and keeps the lease", async () => {
      const read = (await withTtl.acquireLeaseAndRead("c", "A", 5000))!;
      assert.equal(read.version, null);
      await withTtl.write("c", { n: 10 }); // someone writes without the lease
      assert.deepEqual(await withTtl.saveAndReleaseLease("c", { n: 1 }, read.version, "A"), {
        saved: false,
        reason: "conflict",
      });
      assert.deepEqual(await withTtl.saveAndReleaseLease("c", { n: 1 }, '{"n":9}', "A"), {
        saved: false,
        reason: "conflict",
      });
      assert.deepEqual(await withTtl.saveAndReleaseLease("c", undefined, '{"n":9}', "A"), {
        saved: false,
        reason: "conflict",
      }, "a delete under a stale version");
      assert.equal(await get(sessionKey("c")), '{"n":10}', "nothing written or deleted");
      assert.equal(await get(leaseKey("c")), "A", "the lease is kept");
      assert.equal(await noTtl.acquireLease("c", "B", 5000), false, "B cannot take it");
      assert.equal(await withTtl.acquireLeaseAndRead("c", "B", 5000), null);
      // A reads again under its lease and saves.
      const fresh = (await withTtl.acquireLeaseAndRead("c", "A", 5000))!;
      assert.deepEqual(await withTtl.saveAndReleaseLease("c", { n: 11 }, fresh.version, "A"), {
        saved: true,
        version: '{"n":11}',
      });
      assert.equal(await exists(leaseKey("c")), false);
    });

    await t.step(
      "a lease not held (another owner's, expired, never taken): nothing written",
      async () => {
        await withTtl.write("l", { n: 1 });
        assert.ok(await withTtl.acquireLeaseAndRead("l", "B", 5000));
        for (const expected of [undefined, null, '{"n":1}']) {
          for (const value of [{ n: 99 }, undefined]) {
            assert.deepEqual(await withTtl.saveAndReleaseLease("l", value, expected, "A"), {
              saved: false,
              reason: "lease",
            }, `B holds it (expected ${expected}, ${value ? "write" : "delete"})`);
          }
        }
        assert.equal(await get(sessionKey("l")), '{"n":1}', "nothing written or deleted");
        assert.equal(await get(leaseKey("l")), "B", "B's lease untouched");
        await withTtl.releaseLease("l", "B");

        assert.deepEqual(await withTtl.saveAndReleaseLease("l", { n: 99 }, undefined, "A"), {
          saved: false,
          reason: "lease",
        }, "never taken");
        assert.ok(await withTtl.acquireLeaseAndRead("l", "A", 30));
        await sleep(80);
        assert.equal(await exists(leaseKey("l")), false, "expired");
        assert.deepEqual(await withTtl.saveAndReleaseLease("l", { n: 99 }, '{"n":1}', "A"), {
          saved: false,
          reason: "lease",
        }, "expired");
        assert.deepEqual(await withTtl.saveAndReleaseLease("l", undefined, undefined, "A"), {
          saved: false,
          reason: "lease",
        }, "expired, unconditional delete");
        assert.equal(await get(sessionKey("l")), '{"n":1}');
        assert.equal(await exists(leaseKey("l")), false, "no lease made up");
      },
    );

    await t.step("delete: conditional, for nothing stored, and unconditional", async () => {
      await withTtl.write("d", { n: 1 });
      const read = (await withTtl.acquireLeaseAndRead("d", "A", 5000))!;
      assert.deepEqual(await withTtl.saveAndReleaseLease("d", undefined, read.version, "A"), {
        saved: true,
        version: null,
      });
      assert.equal(await exists(sessionKey("d")), false, "deleted");
      assert.equal(await exists(leaseKey("d")), false, "the lease is gone");

      const none = (await withTtl.acquireLeaseAndRead("d", "A", 5000))!;
      assert.equal(none.version, null);
      assert.deepEqual(await withTtl.saveAndReleaseLease("d", undefined, null, "A"), {
        saved: true,
        version: null,
      }, "nothing stored, nothing expected");
      assert.equal(await exists(leaseKey("d")), false);

      await withTtl.write("d", { n: 2 });
      assert.ok(await withTtl.acquireLeaseAndRead("d", "A", 5000));
      assert.deepEqual(await withTtl.saveAndReleaseLease("d", undefined, null, "A"), {
        saved: false,
        reason: "conflict",
      }, "null expected, something stored");
      await withTtl.write("d", { n: 3 });
      assert.deepEqual(await withTtl.saveAndReleaseLease("d", undefined, undefined, "A"), {
        saved: true,
        version: null,
      }, "unconditional");
      assert.equal(await exists(sessionKey("d")), false);
      assert.equal(await exists(leaseKey("d")), false);
    });

    await t.step("unconditional write: over whatever is stored", async () => {
      await withTtl.write("u", { n: 1 });
      assert.ok(await withTtl.acquireLeaseAndRead("u", "A", 5000));
      await withTtl.write("u", { n: 5 });
      assert.deepEqual(await withTtl.saveAndReleaseLease("u", { n: 2 }, undefined, "A"), {
        saved: true,
        version: '{"n":2}',
      });
      assert.equal(await get(sessionKey("u")), '{"n":2}');
      assert.equal(await exists(leaseKey("u")), false);
      // Over nothing stored, too.
      assert.ok(await withTtl.acquireLeaseAndRead("u2", "A", 5000));
      assert.deepEqual(await withTtl.saveAndReleaseLease("u2", { n: 1 }, undefined, "A"), {
        saved: true,
        version: '{"n":1}',
      });
      assert.equal(await get(sessionKey("u2")), '{"n":1}');
    });

    await t.step(
      "TTL: the read renews it and the write sets it, as read and write do",
      async () => {
        await withTtl.write("t", { n: 1 });
        await raw(sessionKey("t"), ["PEXPIRE", sessionKey("t"), "2000"]);
        const read = (await withTtl.acquireLeaseAndRead("t", "A", 5000))!;
        assert.ok((await pttl(sessionKey("t"))) > 50_000, "the read renewed it (GETEX PX)");
        await raw(sessionKey("t"), ["PEXPIRE", sessionKey("t"), "2000"]);
        assert.ok((await withTtl.saveAndReleaseLease("t", { n: 2 }, read.version, "A")).saved);
        assert.ok((await pttl(sessionKey("t"))) > 50_000, "the conditional write set PX");
        assert.ok(await withTtl.acquireLeaseAndRead("t", "A", 5000));
        await raw(sessionKey("t"), ["PEXPIRE", sessionKey("t"), "2000"]);
        assert.ok((await withTtl.saveAndReleaseLease("t", { n: 3 }, undefined, "A")).saved);
        assert.ok((await pttl(sessionKey("t"))) > 50_000, "the unconditional write set PX");

        // Without a TTL, both clear an expiry an earlier configuration left.
        await raw(sessionKey("t"), ["PEXPIRE", sessionKey("t"), "20000"]);
        const plain = (await noTtl.acquireLeaseAndRead("t", "A", 5000))!;
        assert.deepEqual(plain.value, { n: 3 });
        assert.equal(await pttl(sessionKey("t")), -1, "the read removed it (GETEX PERSIST)");
        await raw(sessionKey("t"), ["PEXPIRE", sessionKey("t"), "20000"]);
        assert.ok((await noTtl.saveAndReleaseLease("t", { n: 4 }, plain.version, "A")).saved);
        assert.equal(await pttl(sessionKey("t")), -1, "the conditional write stored none");
        assert.ok(await noTtl.acquireLeaseAndRead("t", "A", 5000));
        await raw(sessionKey("t"), ["PEXPIRE", sessionKey("t"), "20000"]);
        assert.ok((await noTtl.saveAndReleaseLease("t", { n: 5 }, undefined, "A")).saved);
        assert.equal(await pttl(sessionKey("t")), -1, "the unconditional write stored none");
      },
    );

    await t.step("each call is ONE command at the server", async () => {
      // Both scripts are cached by now (EVALSHA, no EVAL).
      await withTtl.write("one", { n: 1 });
      await monitor.take(prefix);
      kind.takeSent();
      const cases: [string, () => Promise<unknown>][] = [
        ["take and read", () => withTtl.acquireLeaseAndRead("one", "A", 5000)],
        ["refused", () => withTtl.acquireLeaseAndRead("one", "B", 5000)],
        ["conflict", () => withTtl.saveAndReleaseLease("one", { n: 2 }, null, "A")],
        ["not held", () => withTtl.saveAndReleaseLease("one", { n: 2 }, '{"n":1}', "B")],
        ["save", () => withTtl.saveAndReleaseLease("one", { n: 2 }, '{"n":1}', "A")],
        ["take, nothing stored", () => noTtl.acquireLeaseAndRead("none", "A", 5000)],
        [
          "unconditional delete",
          () => noTtl.saveAndReleaseLease("none", undefined, undefined, "A"),
        ],
      ];
      for (const [name, call] of cases) {
        await call();
        assert.deepEqual((await monitor.take(prefix)).sent, ["EVALSHA"], `${name}: at the server`);
        assert.deepEqual(kind.takeSent(), ["EVALSHA"], `${name}: through the client`);
      }
      assert.equal(await get(sessionKey("one")), '{"n":2}');
    });

    await t.step("what each script runs inside", async () => {
      await monitor.take(prefix);
      await withTtl.acquireLeaseAndRead("in", "A", 5000);
      assert.deepEqual((await monitor.take(prefix)).lua, ["GET", "GETEX", "SET"]);
      await withTtl.saveAndReleaseLease("in", { n: 1 }, null, "A");
      assert.deepEqual((await monitor.take(prefix)).lua, ["GET", "GET", "SET", "DEL"]);
      await withTtl.acquireLeaseAndRead("in", "A", 5000);
      await monitor.take(prefix);
      await withTtl.saveAndReleaseLease("in", undefined, undefined, "A");
      assert.deepEqual(
        (await monitor.take(prefix)).lua,
        ["GET", "DEL", "DEL"],
        "no GET to compare",
      );
    });

    await t.step(
      "text holding U+FFFD: one more command (STRLEN); bytes not UTF-8: refused",
      async () => {
        await withTtl.write("fffd", { n: 1, text: "\uFFFD" });
        await monitor.take(prefix);
        const read = await withTtl.acquireLeaseAndRead("fffd", "A", 5000);
        assert.deepEqual(read?.value, { n: 1, text: "\uFFFD" });
        assert.deepEqual((await monitor.take(prefix)).sent, ["EVALSHA", "STRLEN"]);
        await withTtl.releaseLease("fffd", "A");

        await raw(sessionKey("latin1"), [
          "SET",
          sessionKey("latin1"),
          Buffer.from('{"n":1,"text":"Jos\xe9"}', "latin1"),
        ]);
        const viaRead = await errorOf(() => withTtl.read("latin1"));
        const viaLock = await errorOf(() => withTtl.acquireLeaseAndRead("latin1", "A", 5000));
        assert.ok(viaLock instanceof SessionError, String(viaLock));
        assert.equal(viaLock.message, viaRead.message);
      },
    );

    await t.step("WRONGTYPE: the same SessionError as read, the lease as it was", async () => {
      await raw(sessionKey("hash"), ["HSET", sessionKey("hash"), "f", "v"]);
      const viaRead = await errorOf(() => withTtl.read("hash"));
      assert.ok(viaRead instanceof SessionError);
      const viaLock = await errorOf(() => withTtl.acquireLeaseAndRead("hash", "A", 5000));
      assert.ok(viaLock instanceof SessionError, String(viaLock));
      assert.equal(viaLock.message, viaRead.message);
      assert.match(viaLock.message, /holds something other than a string/);
      // Redis's own reply, as GETEX gave it (pcall: no script position added).
      const cause = (err: Error) => (err.cause as Error).message;
      assert.equal(cause(viaLock), cause(viaRead));
      assert.equal(await exists(leaseKey("hash")), false, "no lease left behind");

      assert.equal(await withTtl.acquireLease("hash", "A", 5000), true);
      for (const expected of [null, '{"n":1}']) {
        for (const value of [{ n: 1 }, undefined]) {
          const err = await errorOf(() =>
            withTtl.saveAndReleaseLease("hash", value, expected, "A")
          );
          assert.ok(err instanceof SessionError, String(err));
          assert.equal(err.message, viaRead.message);
          assert.match(cause(err), /^WRONGTYPE [^\n]*value$/);
        }
      }
      assert.equal(await get(leaseKey("hash")), "A", "the lease is kept");
      assert.equal(Number(await raw(sessionKey("hash"), ["HLEN", sessionKey("hash")])), 1);
    });

    await t.step("refused arguments and an empty prefix: nothing sent", async () => {
      kind.takeSent();
      await assert.rejects(() => withTtl.acquireLeaseAndRead("x", "", 5000), TypeError);
      await assert.rejects(() => withTtl.acquireLeaseAndRead("x", "A", 0));
      await assert.rejects(() => withTtl.saveAndReleaseLease("x", { n: NaN }, null, "A"));
      // Its keys are still under this test's prefix, should anything be written.
      const empty = kind.storage("");
      const key = prefix + "x";
      await assert.rejects(() => empty.acquireLeaseAndRead(key, "A", 5000), /cannot use leases/);
      await assert.rejects(
        () => empty.saveAndReleaseLease(key, { n: 1 }, null, "A"),
        /cannot use leases/,
      );
      assert.deepEqual(kind.takeSent(), []);
    });

    if (kind.flushScripts !== undefined) {
      await t.step("after SCRIPT FLUSH: EVALSHA, then EVAL", async () => {
        await kind.flushScripts!();
        await monitor.take(prefix);
        const read = (await withTtl.acquireLeaseAndRead("flush", "A", 5000))!;
        assert.deepEqual((await monitor.take(prefix)).sent, ["EVALSHA", "EVAL"]);
        assert.ok((await withTtl.saveAndReleaseLease("flush", { n: 1 }, read.version, "A")).saved);
        assert.deepEqual((await monitor.take(prefix)).sent, ["EVALSHA", "EVAL"]);
        assert.ok(await withTtl.acquireLeaseAndRead("flush", "A", 5000));
        assert.deepEqual((await monitor.take(prefix)).sent, ["EVALSHA"], "cached again");
      });
    }
  } finally {
    await monitor.close();
  }
}

for (const [name, open] of Object.entries(singleKinds)) {
  redisTest(`RedisStorage locked read and save over ${name}`, async (t) => {
    const f = new RedisFixture();
    const kind = await open();
    try {
      await lockedSteps(t, kind, f.track(uniquePrefix()));
    } finally {
      await kind.close();
      await f.cleanup();
    }
  });
}

if (clusterAvailable) {
  let cluster: LocalCluster | undefined;
  const kinds = Object.entries(clusterKinds);
  kinds.forEach(([name, open], i) => {
    Deno.test(`RedisStorage locked read and save on a Redis Cluster, ${name}`, async (t) => {
      cluster ??= await LocalCluster.start();
      try {
        const kind = await open(cluster);
        try {
          await lockedSteps(t, kind, uniquePrefix());
        } finally {
          await kind.close();
        }
      } finally {
        if (i === kinds.length - 1) {
          await cluster.stop();
          cluster = undefined;
        }
      }
    });
  });
} else {
  clusterTest("RedisStorage locked read and save on a Redis Cluster", () => Promise.resolve());
}

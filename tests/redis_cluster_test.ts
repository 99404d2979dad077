/**
 * RedisStorage on a real local Redis Cluster (tests/fixtures/redis_cluster.ts:
 * three masters, three replicas): the storage contract (with conditional
 * writes, leases and a real Bot) through node-redis's cluster client, opened
 * by `RedisStorage.connectCluster` and passed in, and through ioredis's
 * `Cluster`; the hash-tag key layout (a session and its lease in one slot,
 * sessions spread over every master, listings with values finding all of
 * them); and the refusals: braces in a prefix, an ioredis `keyPrefix`, a
 * client of no known kind, an empty list of seed nodes.
 */
import assert from "node:assert/strict";
import { Bot, type Context, session as grammySession, type SessionFlavor } from "npm:grammy@^1.46";
import { createCluster as realCreateCluster } from "npm:redis@^5";
import { Cluster, Redis } from "npm:ioredis@^5";
import { session, SessionConflictError } from "../mod.ts";
import {
  type IoRedisClusterLike,
  type NodeRedisClusterLike,
  type RedisClient,
  RedisStorage,
} from "../storages/redis.ts";
import type { createCluster as declaredCreateCluster } from "../storages/redis/redis_module.d.ts";
import { storageContract } from "./contract.ts";
import { clusterAvailable, clusterTest, LocalCluster } from "./fixtures/redis_cluster.ts";
import { createHarness, message } from "./helpers/bot.ts";

// node-redis's real createCluster must be usable wherever the declared one is,
// and the real clients must fit the structural types the storage takes.
const _asDeclared: typeof declaredCreateCluster = realCreateCluster;
const _nodeRedisFits = (c: ReturnType<typeof realCreateCluster>): NodeRedisClusterLike => c;
const _ioredisFits = (c: Cluster): IoRedisClusterLike => c;

type Data = { count: number };

/** One way of reaching the cluster: storages with a prefix of their own, and a close. */
interface Access {
  storage(prefix: string, ttl?: number): Promise<RedisStorage<unknown, RedisClient>>;
  close(): Promise<void>;
}

type Opener = (cluster: LocalCluster) => Promise<Access>;

const openers: Record<string, Opener> = {
  "node-redis cluster (connectCluster)": (cluster) => {
    const opened: RedisStorage<unknown, NodeRedisClusterLike>[] = [];
    return Promise.resolve({
      async storage(prefix, ttl) {
        const s = await RedisStorage.connectCluster<unknown>(cluster.urls.slice(0, 2), {
          prefix,
          ttl,
          onError: () => {},
        });
        opened.push(s);
        return s;
      },
      async close() {
        for (const s of opened) await s.close();
      },
    });
  },
  "node-redis cluster (createCluster, passed in)": async (cluster) => {
    const client = realCreateCluster({ rootNodes: [{ url: cluster.urls[0] }] });
    client.on("error", () => {});
    await client.connect();
    return {
      storage: (prefix, ttl) => Promise.resolve(new RedisStorage<unknown>(client, { prefix, ttl })),
      close: () => client.close(),
    };
  },
  "ioredis Cluster": async (cluster) => {
    const client = new Cluster([{ host: "127.0.0.1", port: cluster.nodes[0].port }]);
    await new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve());
      client.once("error", reject);
    });
    return {
      storage: (prefix, ttl) => Promise.resolve(new RedisStorage<unknown>(client, { prefix, ttl })),
      close: async () => void await client.quit(),
    };
  },
};

function uniquePrefix(): string {
  return `t:${crypto.randomUUID().slice(0, 8)}:`;
}

if (clusterAvailable) {
  for (const [kind, open] of Object.entries(openers)) {
    let cluster: LocalCluster | undefined;
    let access: Access | undefined;
    storageContract(`RedisStorage on a Redis Cluster, ${kind}`, {
      async create(options) {
        cluster ??= await LocalCluster.start();
        access ??= await open(cluster);
        const shared = options?.sharing as RedisStorage<unknown> | undefined;
        return await access.storage(shared?.prefix ?? uniquePrefix(), options?.ttl);
      },
      async cleanup() {
        await access?.close();
        await cluster?.stop();
      },
      largeValueBytes: 8 * 1024 * 1024,
      ttl: true,
      ttlMs: 500,
    });
  }
} else {
  clusterTest("RedisStorage on a Redis Cluster: storage contract", () => Promise.resolve());
}

/** CLUSTER KEYSLOT of `key`, asked of the server itself. */
async function slotOf(cluster: LocalCluster, key: string): Promise<number> {
  return Number(await cluster.cli(cluster.nodes[0].port, "CLUSTER", "KEYSLOT", key));
}

clusterTest("RedisStorage on a Redis Cluster: layout, slots, listings, refusals", async (t) => {
  const cluster = await LocalCluster.start();
  const nodeRedis = realCreateCluster({ rootNodes: [{ url: cluster.urls[0] }] });
  nodeRedis.on("error", () => {});
  await nodeRedis.connect();
  const io = new Cluster([{ host: "127.0.0.1", port: cluster.nodes[1].port }]);
  try {
    for (const [kind, client] of [["node-redis", nodeRedis], ["ioredis", io]] as const) {
      await t.step(`${kind}: a session and its lease share a slot, whatever the key`, async () => {
        const prefix = uniquePrefix();
        const storage = new RedisStorage<Data>(client, { prefix });
        for (const key of ["42", "", "}", "}{", "a{b}c", "{x}", "ключ-🔑", "glob*?[ab]"]) {
          await storage.write(key, { count: 1 });
          assert.equal(await storage.acquireLease(key, "owner", 5000), true);
          const sessionKey = `{${prefix}${key}}`;
          const leaseKey = `sessionkit-lease:${prefix}{${prefix}${key}}`;
          assert.equal(await nodeRedis.get(sessionKey), '{"count":1}', `session of ${key}`);
          assert.equal(await nodeRedis.get(leaseKey), "owner", `lease of ${key}`);
          assert.equal(
            await slotOf(cluster, leaseKey),
            await slotOf(cluster, sessionKey),
            `slot of ${JSON.stringify(key)}`,
          );
          // One script over both keys runs: Redis would refuse it across slots.
          const both = await nodeRedis.eval(
            "return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])",
            {
              keys: [sessionKey, leaseKey],
            },
          );
          assert.equal(both, '{"count":1}owner');
          await storage.releaseLease(key, "owner");
          await storage.delete(key);
        }
      });

      await t.step(`${kind}: sessions spread over every master and all are listed`, async () => {
        const prefix = uniquePrefix();
        const storage = new RedisStorage<Data>(client, { prefix });
        const count = 300;
        await Promise.all(
          Array.from({ length: count }, (_, i) => storage.write(`chat-${i}`, { count: i })),
        );
        // Each master holds some of them (the listing must visit all three).
        const masters = await cluster.masters();
        assert.equal(masters.length, 3);
        for (const master of masters) {
          const keys = await cluster.cli(master.port, "--scan", "--pattern", `{${prefix}*`);
          assert.ok(
            keys.split("\n").filter(Boolean).length > 0,
            `master ${master.port} holds none`,
          );
        }
        const entries = new Map(await Array.fromAsync(storage.readAllEntries()));
        assert.equal(entries.size, count);
        for (let i = 0; i < count; i++) assert.deepEqual(entries.get(`chat-${i}`), { count: i });
        assert.equal((await Array.fromAsync(storage.readAllValues())).length, count);
        const keys = await Array.fromAsync(storage.readAllKeys());
        assert.equal(new Set(keys).size, count);
        // A foreign key under the pattern but not of the layout is not listed.
        await nodeRedis.set(`{${prefix}no-closing-brace`, "x");
        assert.equal((await Array.fromAsync(storage.readAllKeys())).length, count);
        await nodeRedis.del(`{${prefix}no-closing-brace`);
        await Promise.all(keys.map((key) => storage.delete(key)));
        assert.deepEqual(await Array.fromAsync(storage.readAllKeys()), []);
      });

      await t.step(`${kind}: braces in a prefix are refused`, () => {
        for (const options of [{ prefix: "{bot}:" }, { prefix: "a}" }, { leasePrefix: "l{" }]) {
          assert.throws(() => new RedisStorage(client, options), RangeError);
        }
      });
    }

    await t.step("grammY's session() and sessionkit's over a cluster store the same", async () => {
      const storage = new RedisStorage<Data>(nodeRedis, { prefix: uniquePrefix() });
      const ours = createHarness<Context & SessionFlavor<Data>>();
      ours.bot.use(session({ initial: () => ({ count: 0 }), storage, prefix: "ours:" }));
      ours.bot.on("message", (ctx) => void ctx.session.count++);
      const theirs = createHarness<Context & SessionFlavor<Data>>();
      theirs.bot.use(grammySession({ initial: () => ({ count: 0 }), storage, prefix: "grammy:" }));
      theirs.bot.on("message", (ctx) => void ctx.session.count++);
      for (let i = 0; i < 5; i++) {
        await ours.send(message(9));
        await theirs.send(message(9));
      }
      assert.deepEqual(await storage.read("ours:9"), { count: 5 });
      assert.deepEqual(await storage.read("grammy:9"), { count: 5 });
      assert.deepEqual([ours.errors, theirs.errors], [[], []]);
      assert.ok(theirs.bot instanceof Bot);
    });

    await t.step("conflict detection across two clients of the cluster", async () => {
      const prefix = uniquePrefix();
      const a = new RedisStorage<Data>(nodeRedis, { prefix });
      const b = new RedisStorage<Data>(io, { prefix });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const slow = createHarness<Context & SessionFlavor<Data>>();
      slow.bot.use(session({ initial: () => ({ count: 0 }), storage: a }));
      slow.bot.on("message", async (ctx) => {
        ctx.session.count += 10;
        await gate;
      });
      const fast = createHarness<Context & SessionFlavor<Data>>();
      fast.bot.use(session({ initial: () => ({ count: 0 }), storage: b }));
      fast.bot.on("message", (ctx) => void ctx.session.count++);
      const pending = slow.send(message(3));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await fast.send(message(3));
      release();
      await pending;
      assert.deepEqual(await b.read("3"), { count: 1 }, "the later write did not overwrite");
      assert.equal(slow.errors.length, 1);
      assert.ok(slow.errors[0].error instanceof SessionConflictError);
      await a.delete("3");
    });

    await t.step("clients of no known kind, and an ioredis keyPrefix, are refused", async () => {
      assert.throws(() => new RedisStorage({} as never), /createCluster\(\) from npm:redis/);
      assert.throws(() => new RedisStorage(null as never), /got null/);
      const prefixed = new Cluster([{ host: "127.0.0.1", port: cluster.nodes[0].port }], {
        keyPrefix: "app:",
        lazyConnect: true,
      });
      assert.throws(() => new RedisStorage(prefixed), /keyPrefix "app:"/);
      const single = new Redis({ keyPrefix: "app:", lazyConnect: true });
      assert.throws(() => new RedisStorage(single), /prefix: "app:"/);
      prefixed.disconnect();
      single.disconnect();
      await assert.rejects(() => RedisStorage.connectCluster([]), TypeError);
      await assert.rejects(
        () => RedisStorage.connectCluster(cluster.urls, { prefix: "{x}" }),
        RangeError,
      );
    });

    await t.step("node-redis v4's createCluster works too", async () => {
      const { createCluster: createClusterV4 } = await import("npm:redis@^4");
      const v4 = createClusterV4({ rootNodes: [{ url: cluster.urls[2] }] });
      v4.on("error", () => {});
      await v4.connect();
      try {
        const storage = new RedisStorage<Data>(v4, { prefix: uniquePrefix() });
        await Promise.all(
          Array.from({ length: 60 }, (_, i) => storage.write(`k${i}`, { count: i })),
        );
        assert.equal((await Array.fromAsync(storage.readAllEntries())).length, 60);
        const { version } = await storage.readVersioned("k1");
        assert.notEqual(await storage.writeIfVersion("k1", { count: 2 }, version), null);
        assert.equal(await storage.writeIfVersion("k1", { count: 3 }, version), null);
        assert.equal(await storage.acquireLease("k1", "v4", 5000), true);
        assert.equal(await storage.acquireLease("k1", "other", 5000), false);
      } finally {
        await v4.quit();
      }
    });

    await t.step("an ioredis Cluster just created lists every session", async () => {
      const prefix = uniquePrefix();
      const writer = new RedisStorage<Data>(nodeRedis, { prefix });
      await Promise.all(Array.from({ length: 60 }, (_, i) => writer.write(`k${i}`, { count: i })));
      const fresh = new Cluster([{ host: "127.0.0.1", port: cluster.nodes[3].port }]);
      try {
        // No slot is known yet: the listing must wait for them, not list nothing.
        assert.equal(fresh.nodes("master").length, 0);
        const storage = new RedisStorage<Data>(fresh, { prefix });
        assert.equal((await Array.fromAsync(storage.readAllKeys())).length, 60);
      } finally {
        await fresh.quit();
      }
    });

    await t.step("connectCluster rejects when no seed node answers", async () => {
      await assert.rejects(
        () => RedisStorage.connectCluster(["redis://127.0.0.1:1"], { onError: () => {} }),
        /cannot connect to the Redis Cluster at redis:\/\/127\.0\.0\.1:1/,
      );
    });
  } finally {
    await nodeRedis.close();
    await io.quit();
    await cluster.stop();
  }
});

clusterTest(
  "RedisStorage.connectCluster: close() with a reply outstanding tears the connections down within the timeout",
  async () => {
    // As for RedisStorage.connect (redis_connection_test.ts): node-redis's
    // graceful close() cannot be bounded, so a node whose reply never came kept
    // its socket open, and the process alive (attack15).
    const cluster = await LocalCluster.start();
    try {
      const storage = await RedisStorage.connectCluster<unknown>(cluster.urls.slice(0, 2), {
        prefix: uniquePrefix(),
        timeout: 300,
        onError: () => {},
      });
      const routed = `{${storage.prefix}k}`;
      const send = (args: string[]) => storage.client.sendCommand(routed, false, args);
      const id = String(await send(["CLIENT", "ID"]));
      const port = Number((await send(["CONFIG", "GET", "port"]) as string[])[1]);
      // WAIT for more replicas than there are: that node's connection gets no reply for 10 s.
      send(["WAIT", "5", "10000"]).catch(() => {});
      const pending = storage.read("k");
      pending.catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = performance.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        storage.close(),
        new Promise((
          _,
          reject,
        ) => (timer = setTimeout(() => reject(new Error("close() hung")), 1500))),
      ]).finally(() => clearTimeout(timer));
      const took = performance.now() - started;
      assert.ok(took >= 250, `close() did not wait for the outstanding reply (${took} ms)`);
      await assert.rejects(pending);
      let listed = "?";
      for (let i = 0; i < 20 && listed !== ""; i++) {
        listed = (await cluster.cli(port, "CLIENT", "LIST", "ID", id)).trim();
        if (listed !== "") await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.equal(listed, "", "the node's connection is still open");
    } finally {
      await cluster.stop();
    }
  },
);

/** RedisStorage and its connection: who owns the client, and a connection dropped mid-write. */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { createClient } from "npm:redis@^5";
import { session, SessionError, type SessionFlavor } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { type Admin, REDIS_URL, RedisFixture, redisTest } from "./redis_env.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
import { FaultProxy } from "./fixtures/fault_proxy.ts";

/** Rejects if `promise` takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A prefix of its own for one test. */
const uniquePrefix = () => `sessionkit-test:${crypto.randomUUID()}:`;

/** How long `storage.close()` takes, in ms; fails after 1.5 s. */
async function closeTime(storage: RedisStorage<unknown>): Promise<number> {
  const started = performance.now();
  await within(storage.close(), 1500, "close()");
  return performance.now() - started;
}

async function clientId(storage: RedisStorage<unknown>): Promise<number> {
  return Number(await storage.client.sendCommand(["CLIENT", "ID"]));
}

/**
 * Blocks the storage's connection on the server with `WAIT 1 <ms>` (no
 * replica will answer, so it waits the whole time). Commands sent after it on
 * that connection stay unexecuted in the server's buffer until it ends. Only
 * this one connection is blocked; other clients of the shared server are not.
 */
function block(storage: RedisStorage<unknown>, ms: number): void {
  storage.client.sendCommand(["WAIT", "1", String(ms)]).catch(() => {});
}

/** Closes connection `id` on the server (`CLIENT KILL ID`); resolves to how many were killed. */
async function kill(admin: Admin, id: number): Promise<number> {
  return Number(await admin.sendCommand(["CLIENT", "KILL", "ID", String(id)]));
}

redisTest("RedisStorage: a client passed in stays the caller's", async () => {
  const f = new RedisFixture();
  const client = createClient({ url: REDIS_URL });
  client.on("error", () => {});
  try {
    const prefix = f.track(`sessionkit-test:${crypto.randomUUID()}:`);
    const idle = new RedisStorage<unknown>(client, { prefix });
    assert.equal(client.isOpen, false, "the constructor does not connect");
    await assert.rejects(() => idle.read("k"));
    assert.equal(client.isOpen, false, "an operation does not connect either");
    await idle.close();

    await client.connect();
    const storage = new RedisStorage<unknown>(client, { prefix });
    await storage.write("k", { v: 1 });
    await storage.close();
    assert.equal(client.isOpen, true, "close() leaves a client it did not open alone");
    assert.equal(await client.get(prefix + "k"), '{"v":1}');
  } finally {
    await f.cleanup();
    if (client.isOpen) await client.close();
  }
});

redisTest("RedisStorage.connect: owns its client and closes it", async () => {
  const f = new RedisFixture();
  try {
    const prefix = f.track(`sessionkit-test:${crypto.randomUUID()}:`);
    const storage = await RedisStorage.connect<unknown>(REDIS_URL, { prefix });
    const client = storage.client as unknown as { isOpen: boolean };
    await storage.write("k", { v: 1 });
    assert.equal(await (await f.admin()).get(prefix + "k"), '{"v":1}');
    assert.equal(client.isOpen, true);
    await storage.close();
    assert.equal(client.isOpen, false);
    await storage.close(); // twice is fine
    await assert.rejects(() => storage.read("k"));
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage.connect: an unreachable server rejects quickly", async () => {
  const started = Date.now();
  await assert.rejects(
    () => within(RedisStorage.connect("redis://127.0.0.1:1"), 5000, "connect"),
    (err: Error) => err instanceof SessionError && /cannot connect to Redis/.test(err.message),
  );
  assert.ok(Date.now() - started < 5000);
});

redisTest(
  "RedisStorage: a dropped connection fails the write it hits, nothing half-written",
  async () => {
    const f = new RedisFixture();
    try {
      const admin = await f.admin();
      const storage = await f.connect<unknown>({
        prefix: `sessionkit-test:${crypto.randomUUID()}:`,
      });
      const redisKey = storage.prefix + "k";
      const big = { blob: "x".repeat(1024 * 1024), n: 1 };
      await storage.write("k", big);
      const before = await clientId(storage);

      block(storage, 3000);
      const pending = storage.write("k", { blob: "y".repeat(2 * 1024 * 1024), n: 2 });
      pending.catch(() => {});
      await sleep(200);
      assert.equal(await kill(admin, before), 1);
      await assert.rejects(within(pending, 5000, "the interrupted write"));
      assert.equal(await admin.get(redisKey), JSON.stringify(big), "the old value is intact");

      // The client reconnects by itself; later operations succeed.
      assert.deepEqual(await within(storage.read("k"), 5000, "read after reconnect"), big);
      assert.notEqual(await clientId(storage), before, "a new connection");
      await storage.write("k", { n: 3 });
      assert.equal(await admin.get(redisKey), '{"n":3}');
    } finally {
      await f.cleanup();
    }
  },
);

redisTest("RedisStorage: through a Bot, the update hit by a drop reaches bot.catch", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const storage = await f.connect<unknown>({ prefix: `sessionkit-test:${crypto.randomUUID()}:` });
    type C = Context & SessionFlavor<{ count: number }>;
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
    let drop = false;
    h.bot.on("message", async (ctx) => {
      ctx.session.count++;
      if (drop) {
        // Hold the connection, so the session save queues behind the WAIT,
        // then kill it while the save is still unexecuted.
        const id = await clientId(storage);
        block(storage, 3000);
        setTimeout(() => kill(admin, id).catch(() => {}), 200);
      }
    });
    await h.send(message(7));
    await h.send(message(7));
    assert.equal(await admin.get(storage.prefix + "7"), '{"count":2}');

    drop = true;
    await within(h.send(message(7)), 5000, "the update hit by the drop");
    assert.equal(h.errors.length, 1, "the failed save reached bot.catch");
    assert.match(String(h.errors[0].error), /socket|closed|connection/i);
    assert.equal(await admin.get(storage.prefix + "7"), '{"count":2}', "nothing half-written");

    drop = false;
    await within(h.send(message(7)), 5000, "the update after the drop");
    assert.equal(h.errors.length, 1);
    assert.equal(await admin.get(storage.prefix + "7"), '{"count":3}');
  } finally {
    await f.cleanup();
  }
});

redisTest(
  "RedisStorage.connect: close() with a reply outstanding tears the connection down within the timeout",
  async () => {
    // node-redis's graceful close() refuses destroy() once called, so a
    // reply that never came (a silent server, a half-open connection) kept
    // the socket open, and the process alive, for good (attack15).
    const f = new RedisFixture();
    try {
      const admin = await f.admin();
      const storage = await f.connect<unknown>({ prefix: uniquePrefix(), timeout: 300 });
      const id = await clientId(storage);
      // WAIT for more replicas than there are: the connection gets no reply for 10 s.
      storage.client.sendCommand(["WAIT", "5", "10000"]).catch(() => {});
      const pending = storage.read("k");
      pending.catch(() => {});
      await sleep(50);
      const took = await closeTime(storage);
      assert.ok(took >= 250, `close() did not wait for the outstanding reply (${took} ms)`);
      await assert.rejects(within(pending, 1000, "the read in flight"), SessionError);
      let listed = "";
      for (let i = 0; i < 20; i++) {
        listed = String(await admin.sendCommand(["CLIENT", "LIST", "ID", String(id)]));
        if (listed === "") break;
        await sleep(25);
      }
      assert.equal(listed, "", "the connection is still open on the server");
    } finally {
      await f.cleanup();
    }
  },
);

redisTest(
  "RedisStorage.connect: close() during an outage does not wait for replies that cannot come",
  async () => {
    // With the server unreachable, a call waits for a new connection; closing
    // stops reconnecting first, so that call fails at once and close() does
    // not wait its grace (attack15: it waited the whole timeout).
    const proxy = await FaultProxy.forUrl(REDIS_URL);
    const f = new RedisFixture();
    try {
      const storage = await f.connect<unknown>(
        { prefix: uniquePrefix(), timeout: 1500 },
        proxy.url,
      );
      await storage.write("k", { v: 1 });
      await proxy.refuse();
      proxy.cut();
      await sleep(100); // the loss is noticed; reconnection attempts are refused
      const pending = storage.read("k");
      pending.catch(() => {});
      await sleep(50);
      const took = await closeTime(storage);
      assert.ok(took < 500, `close() took ${took.toFixed(0)} ms`);
      await assert.rejects(within(pending, 500, "the read waiting for a connection"));
    } finally {
      await f.cleanup();
      await proxy.close();
    }
  },
);

redisTest(
  "RedisStorage.connect: a call on a connection dropped as silent fails saying so",
  async () => {
    const proxy = await FaultProxy.forUrl(REDIS_URL);
    const f = new RedisFixture();
    const storage = await f.connect<unknown>({ prefix: uniquePrefix(), timeout: 300 }, proxy.url);
    try {
      await storage.write("k", { v: 1 });
      proxy.swallow();
      // The first call times out after 300 ms and starts the connection check
      // (a PING answered within another 300 ms, or the connection is dropped);
      // the second one is still within its bound when the check drops it.
      const first = storage.read("k");
      first.catch(() => {});
      await sleep(380);
      const second = storage.write("k", { v: 2 });
      await assert.rejects(first, /did not finish within 300 ms/);
      await assert.rejects(
        second,
        /the connection to Redis was dropped before the reply came \(it went silent\); the command may still have run on the server/,
      );
      proxy.heal();
    } finally {
      await storage.close();
      await f.cleanup();
      await proxy.close();
    }
  },
);

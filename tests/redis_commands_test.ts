/**
 * RedisStorage's public methods against the real server, command by
 * command: each is one command (the middleware makes no other call), Redis
 * holds exactly the JSON text that was written, the version is that text,
 * TTLs are set by every write and renewed by every read (without a TTL,
 * both clear a leftover expiry), keys are checked
 * before anything is sent, and a value not written by sessionkit is a clear
 * error through the middleware.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { session, SessionError, type SessionFlavor } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import type { RedisClientLike } from "../storages/redis/client.ts";
import { RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";
import { createHarness, message } from "./helpers/bot.ts";
import { errorOf } from "./helpers/errors.ts";

/** A pass-through client that records the command name of everything sent. */
class Spy implements RedisClientLike {
  readonly sent: string[] = [];
  /** Every command sent, with its arguments. */
  readonly commands: string[][] = [];
  constructor(readonly inner: RedisClientLike) {}
  sendCommand(args: string[]): Promise<unknown> {
    this.sent.push(args[0]);
    this.commands.push([...args]);
    return this.inner.sendCommand(args);
  }
  /** The commands sent since the last call. */
  take(): string[] {
    this.commands.length = 0;
    return this.sent.splice(0);
  }
}

redisTest(
  "RedisStorage: one command per public call, the JSON text as Redis holds it",
  async (t) => {
    const f = new RedisFixture();
    try {
      const admin = await f.admin();
      const prefix = f.track(uniquePrefix());
      const spy = new Spy(admin);
      const storage = new RedisStorage<unknown>(spy, { prefix, ttl: 60_000 });
      const value = { z: 1, a: "ключ 🎉", nested: { list: [1, 2.5, null] } };
      const json = JSON.stringify(value);

      await t.step("read and readVersioned: one GETEX each; write: one SET", async () => {
        assert.equal(await storage.read("t"), undefined);
        assert.deepEqual(await storage.readVersioned("t"), { value: undefined, version: null });
        await storage.write("t", value);
        assert.equal(await admin.get(prefix + "t"), json, "Redis holds exactly the JSON text");
        assert.deepEqual(await storage.read("t"), value);
        assert.deepEqual(await storage.readVersioned("t"), { value, version: json });
        assert.deepEqual(spy.take(), ["GETEX", "GETEX", "SET", "GETEX", "GETEX"]);
        // Text sessionkit did not write is read as it is, and is its own version.
        await admin.set(prefix + "spaced", '{ "n" : 1 }');
        assert.deepEqual(await storage.readVersioned("spaced"), {
          value: { n: 1 },
          version: '{ "n" : 1 }',
        });
        spy.take();
      });

      await t.step("writeIfVersion and deleteIfVersion: one script call each", async () => {
        assert.equal(await storage.writeIfVersion("t", { x: 1 }, null), null, "something stored");
        const { version } = await storage.readVersioned("t");
        const next = await storage.writeIfVersion("t", { x: 2 }, version);
        assert.equal(next, '{"x":2}', "the new version is the new text");
        assert.equal(await storage.writeIfVersion("t", { x: 3 }, version), null, "stale version");
        assert.equal(await storage.deleteIfVersion("t", version), false, "stale version");
        assert.equal(await admin.get(prefix + "t"), '{"x":2}');
        assert.deepEqual(spy.take(), ["EVALSHA", "GETEX", "EVALSHA", "EVALSHA", "EVALSHA"]);
        // Writing back the very same text is no conflict: the version is the text.
        await admin.set(prefix + "t", '{"x":2}');
        assert.equal(await storage.writeIfVersion("t", { x: 4 }, next), '{"x":4}');
        assert.equal(await storage.deleteIfVersion("t", '{"x":4}'), true);
        assert.equal(await admin.exists(prefix + "t"), 0);
        await storage.write("t", []);
        await storage.delete("t");
        assert.equal(await admin.exists(prefix + "t"), 0);
        assert.deepEqual(spy.take(), ["EVALSHA", "EVALSHA", "SET", "DEL"]);
      });

      await t.step("every write sets the TTL, every read renews it", async () => {
        const pttl = () => admin.pTTL(prefix + "ttl");
        await storage.write("ttl", { n: 1 });
        assert.ok(await pttl() > 50_000, "write sets PX");
        await admin.pExpire(prefix + "ttl", 1000);
        await storage.read("ttl");
        assert.ok(await pttl() > 50_000, "read renews it");
        await admin.pExpire(prefix + "ttl", 1000);
        await storage.readVersioned("ttl");
        assert.ok(await pttl() > 50_000, "readVersioned renews it");
        await admin.pExpire(prefix + "ttl", 1000);
        assert.ok(await storage.writeIfVersion("ttl", { n: 2 }, '{"n":1}'));
        assert.ok(await pttl() > 50_000, "a conditional update sets PX");
        await storage.delete("ttl");
        assert.ok(await storage.writeIfVersion("ttl", { n: 3 }, null));
        assert.ok(await pttl() > 50_000, "a conditional create sets PX");
      });
    } finally {
      await f.cleanup();
    }
  },
);

redisTest(
  "RedisStorage: without a TTL a read is one GETEX PERSIST and no write keeps an expiry",
  async (t) => {
    const f = new RedisFixture();
    try {
      const admin = await f.admin();
      const spy = new Spy(admin);
      const storage = new RedisStorage<unknown>(spy, { prefix: f.track(uniquePrefix()) });
      const redisKey = storage.prefix + "k";
      // An expiry left by an earlier configuration with a TTL.
      const leftOver = () => admin.pExpire(redisKey, 60_000);

      await t.step("writes set no expiry and drop a leftover one", async () => {
        await storage.write("k", { n: 1 });
        assert.equal(await admin.pTTL(redisKey), -1);
        await leftOver();
        await storage.write("k", { n: 1 });
        assert.equal(await admin.pTTL(redisKey), -1, "a plain SET drops it");
        await leftOver();
        assert.ok(await storage.writeIfVersion("k", { n: 2 }, '{"n":1}'));
        assert.equal(await admin.pTTL(redisKey), -1, "a conditional update drops it");
        await storage.delete("k");
        assert.ok(await storage.writeIfVersion("k", { n: 3 }, null));
        assert.equal(await admin.pTTL(redisKey), -1, "a conditional create sets none");
        assert.deepEqual(spy.take(), ["SET", "SET", "EVALSHA", "DEL", "EVALSHA"]);
      });

      await t.step("a read clears a leftover expiry and leaves text and version", async () => {
        // JSON text with spaces: any rewrite would store the compact form.
        await admin.set(redisKey, '{ "n" : 1 }', { PX: 60_000 });
        assert.deepEqual(await storage.read("k"), { n: 1 });
        assert.equal(await admin.pTTL(redisKey), -1, "read cleared it");
        assert.equal(await admin.get(redisKey), '{ "n" : 1 }', "the value was not rewritten");
        await leftOver();
        const { version } = await storage.readVersioned("k");
        assert.equal(version, '{ "n" : 1 }', "the version is unchanged");
        assert.equal(await admin.pTTL(redisKey), -1, "readVersioned cleared it");
        assert.ok(await storage.writeIfVersion("k", { n: 2 }, version), "no conflict");
        assert.deepEqual(spy.commands.slice(0, 2), [
          ["GETEX", redisKey, "PERSIST"],
          ["GETEX", redisKey, "PERSIST"],
        ]);
        assert.deepEqual(spy.take(), ["GETEX", "GETEX", "EVALSHA"], "one command per call");
      });
    } finally {
      await f.cleanup();
    }
  },
);

redisTest("RedisStorage: every public method checks the key before sending anything", async () => {
  const f = new RedisFixture();
  try {
    const spy = new Spy(await f.admin());
    const storage = new RedisStorage<unknown>(spy, { prefix: f.track(uniquePrefix()) });
    const bad = "\ud800";
    const expected = await errorOf(() => storage.write(bad, {}));
    assert.ok(expected instanceof SessionError);
    assert.match(expected.message, /well-formed/);
    const calls: [string, () => Promise<unknown>][] = [
      ["read", () => storage.read(bad)],
      ["readVersioned", () => storage.readVersioned(bad)],
      ["writeIfVersion", () => storage.writeIfVersion(bad, {}, null)],
      ["delete", () => storage.delete(bad)],
      ["deleteIfVersion", () => storage.deleteIfVersion(bad, "{}")],
      ["has", () => storage.has(bad)],
      ["acquireLease", () => storage.acquireLease(bad, "me", 1000)],
      ["renewLease", () => storage.renewLease(bad, "me", 1000)],
      ["releaseLease", () => storage.releaseLease(bad, "me")],
    ];
    for (const [name, call] of calls) {
      const err = await errorOf(call);
      assert.ok(err instanceof SessionError, name);
      assert.equal(err.message, expected.message, name);
    }
    assert.deepEqual(spy.sent, [], "refused before anything is sent");
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage: a foreign value is a clear error through the middleware", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const storage = await f.storage<{ n: number }>({ ttl: 60_000 });
    await admin.set(storage.prefix + "7", "not json");
    type C = Context & SessionFlavor<{ n: number }>;
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ n: 0 }), storage }));
    h.bot.on("message", (ctx) => {
      ctx.session.n++;
    });
    await h.send(message(7, "hi"));
    assert.equal(h.errors.length, 1);
    const err = h.errors[0].error;
    assert.ok(err instanceof SessionError, String(err));
    assert.equal(err.key, "7");
    assert.match(err.message, /not JSON text/);
    assert.equal(await admin.get(storage.prefix + "7"), "not json", "left as it was");
  } finally {
    await f.cleanup();
  }
});

/**
 * RedisStorage's text access (the middleware's fast path) against the real
 * server: the exact text, one command per read, conditional writes and
 * deletes across two clients, TTL renewal, and the same checks as the public
 * methods.
 */
import assert from "node:assert/strict";
import { errorOf } from "./helpers/errors.ts";
import { assertOtherWriteMakesVersionStale } from "./helpers/text_access.ts";
import type { Context } from "npm:grammy@^1.46";
import { session, SessionError, type SessionFlavor } from "../mod.ts";
import { textAccessOf } from "../src/text.ts";
import { RedisStorage } from "../storages/redis.ts";
import type { RedisClientLike } from "../storages/redis/client.ts";
import { RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";
import { createHarness, message } from "./helpers/bot.ts";

/** A pass-through client that records the command name of everything sent. */
class Spy implements RedisClientLike {
  readonly sent: string[] = [];
  constructor(readonly inner: RedisClientLike) {}
  sendCommand(args: string[]): Promise<unknown> {
    this.sent.push(args[0]);
    return this.inner.sendCommand(args);
  }
}

redisTest(
  "RedisStorage: text access reads the exact text, writes and deletes conditionally",
  async (t) => {
    const f = new RedisFixture();
    try {
      const admin = await f.admin();
      const prefix = uniquePrefix();
      const spy = new Spy(admin);
      const storage = new RedisStorage<unknown>(spy, { prefix: f.track(prefix), ttl: 60_000 });
      const other = await f.connect<unknown>({ prefix }); // another process
      const access = textAccessOf(storage);
      assert.ok(access !== undefined);
      assert.equal(access.exact, true);

      await t.step("read: one GETEX, the exact text, nothing stored is null", async () => {
        spy.sent.length = 0;
        assert.deepEqual(await access.read("t"), { text: null, version: null });
        const json = JSON.stringify({ z: 1, a: "ключ 🎉", nested: { list: [1, 2.5, null] } });
        assert.equal(await access.write("t", json), undefined, "unconditional: undefined");
        assert.equal(await admin.get(prefix + "t"), json, "Redis holds the text as given");
        const record = await access.read("t");
        assert.equal(record.text, json);
        assert.deepEqual(await storage.readVersioned("t"), {
          value: JSON.parse(json),
          version: record.version,
        });
        assert.deepEqual(spy.sent, ["GETEX", "SET", "GETEX", "GETEX"]);
        // Text the middleware did not write comes back byte for byte, too.
        await admin.set(prefix + "spaced", '{ "n" : 1 }');
        assert.equal((await access.read("spaced")).text, '{ "n" : 1 }');
      });

      await t.step("write sets the TTL and read renews it, as the public methods", async () => {
        await access.write("ttl", '{"n":1}');
        const pttl = await admin.pTTL(prefix + "ttl");
        assert.ok(pttl > 50_000 && pttl <= 60_000, `write set PX, pttl ${pttl}`);
        await admin.pExpire(prefix + "ttl", 1000);
        await access.read("ttl");
        assert.ok(await admin.pTTL(prefix + "ttl") > 50_000, "read renewed the TTL");
        await admin.pExpire(prefix + "ttl", 1000);
        assert.ok(typeof await access.write("ttl", '{"n":2}', '{"n":1}') === "string");
        assert.ok(await admin.pTTL(prefix + "ttl") > 50_000, "a conditional write sets PX");
      });

      await t.step("conditional writes: create-only, stale and current versions", async () => {
        spy.sent.length = 0;
        assert.equal(await access.write("t", '{"x":1}', null), null, "something is stored");
        const first = (await access.read("t")).version;
        const second = await access.write("t", '{"x":2}', first);
        assert.ok(typeof second === "string" && second !== first);
        assert.equal(await access.write("t", '{"x":3}', first), null, "stale version");
        assert.deepEqual(await access.read("t"), { text: '{"x":2}', version: second });
        assert.deepEqual(spy.sent, ["EVALSHA", "GETEX", "EVALSHA", "EVALSHA", "GETEX"]);
        // The version token is the same for the public methods.
        assert.equal((await storage.readVersioned("t")).version, second);
        assert.equal(await storage.writeIfVersion("t", { x: 4 }, second), '{"x":4}');
        assert.equal(await access.write("t", '{"x":5}', second), null);
        const created = await access.write("new", '{"new":true}', null);
        assert.equal(created, (await access.read("new")).version);
      });

      await t.step("another process's write makes a version stale", async () => {
        await assertOtherWriteMakesVersionStale(access, other, () => admin.get(prefix + "t"));
        // Writing back the very same text is not a conflict: nothing changed.
        const now = await access.read("t");
        await other.write("t", { by: "other" });
        assert.ok(await access.write("t", '{"by":"me"}', now.version));
      });

      await t.step("conditional and plain deletes", async () => {
        const { version } = await access.read("t");
        assert.equal(await access.delete("t", null), false, "something is stored");
        assert.equal(await access.delete("t", '{"by":"someone else"}'), false);
        assert.equal(await admin.exists(prefix + "t"), 1);
        assert.equal(await access.delete("t", version), true);
        assert.equal(await admin.exists(prefix + "t"), 0);
        assert.equal(await access.delete("t", null), true, "nothing stored, nothing expected");
        assert.equal(await access.delete("t", version), false, "expected a version, none stored");
        await access.write("t", "[]");
        assert.equal(await access.delete("t"), true, "unconditional delete: true");
        assert.equal(await admin.exists(prefix + "t"), 0);
      });

      await t.step("the same key checks and errors as the public methods", async () => {
        spy.sent.length = 0;
        const publicError = await storage.write("\ud800", {}).catch((err) => err);
        assert.ok(publicError instanceof SessionError);
        for (
          const call of [
            () => access.read("\ud800"),
            () => access.write("\ud800", "{}"),
            () => access.write("\ud800", "{}", null),
            () => access.delete("\ud800"),
            () => access.delete("\ud800", "{}"),
          ]
        ) {
          const err = await errorOf(call);
          assert.ok(err instanceof SessionError);
          assert.equal(err.message, publicError.message);
        }
        assert.deepEqual(spy.sent, [], "refused before anything is sent");
      });
    } finally {
      await f.cleanup();
    }
  },
);

redisTest("RedisStorage: without a TTL the text read is a plain GET", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const spy = new Spy(admin);
    const storage = new RedisStorage<unknown>(spy, { prefix: f.track(uniquePrefix()) });
    const access = textAccessOf(storage)!;
    await access.write("k", '{"n":1}');
    assert.equal(await admin.pTTL(storage.prefix + "k"), -1);
    assert.equal((await access.read("k")).text, '{"n":1}');
    await storage.read("k");
    await storage.readVersioned("k");
    assert.deepEqual(spy.sent, ["SET", "GET", "GET", "GET"]);
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage: a foreign value is a clear error through the middleware", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const storage = await f.storage<{ n: number }>({ ttl: 60_000 });
    assert.ok(textAccessOf(storage) !== undefined, "the middleware takes the text path");
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

/** Strict, lazy and multi sessions on RedisStorage through a real grammY Bot. */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  type LazyMultiSessionFlavor,
  lazySession,
  type LazySessionFlavor,
  perUser,
  session,
  type SessionFlavor,
} from "../mod.ts";
import { RedisFixture, redisTest } from "./redis_env.ts";
import { createHarness, message } from "./helpers/bot.ts";

redisTest("RedisStorage + Bot: strict session", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const storage = await f.storage<{ count: number; names: string[] }>({ ttl: 60_000 });
    type C = Context & SessionFlavor<{ count: number; names: string[] }>;
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ count: 0, names: [] }), storage }));
    h.bot.command("look", (ctx) => ctx.reply(`count ${ctx.session.count}`));
    h.bot.on("message", async (ctx) => {
      if (ctx.message.text === "reset") {
        ctx.session = null;
        return;
      }
      ctx.session.count++;
      ctx.session.names.push(ctx.message.text ?? "");
      await ctx.reply(`count ${ctx.session.count}`);
    });
    await h.send(message(5, "a"));
    await h.send(message(5, "b"));
    await h.send(message(-100, "c", { userId: 5 }));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(h.replies(), ["count 1", "count 2", "count 1"]);
    assert.equal(await admin.get(storage.prefix + "5"), '{"count":2,"names":["a","b"]}');
    assert.equal(await admin.get(storage.prefix + "-100"), '{"count":1,"names":["c"]}');
    assert.ok(await admin.pTTL(storage.prefix + "5") > 50_000);

    await h.send(message(6, "/look"));
    assert.equal(await admin.exists(storage.prefix + "6"), 0, "an untouched initial is not stored");
    await h.send(message(5, "reset"));
    assert.equal(await admin.exists(storage.prefix + "5"), 0, "ctx.session = null deletes");
    assert.equal(await admin.get(storage.prefix + "-100"), '{"count":1,"names":["c"]}');
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage + Bot: lazy session reads Redis only when touched", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const storage = await f.storage<{ count: number }>();
    await admin.set(storage.prefix + "8", '{"count":41}');
    type C = Context & LazySessionFlavor<{ count: number }>;
    const h = createHarness<C>();
    h.bot.use(lazySession({ initial: () => ({ count: 0 }), storage }));
    h.bot.on("message", async (ctx) => {
      if (ctx.message.text === "skip") {
        // Not touching the session: the stored text must stay as it is.
        await admin.set(storage.prefix + "8", '{ "count" : 41 }');
        return;
      }
      (await ctx.session).count++;
    });
    await h.send(message(8, "skip"));
    assert.equal(await admin.get(storage.prefix + "8"), '{ "count" : 41 }');
    await h.send(message(8, "go"));
    await h.send(message(9, "go"));
    assert.deepEqual(h.errors, []);
    assert.equal(await admin.get(storage.prefix + "8"), '{"count":42}');
    assert.equal(await admin.get(storage.prefix + "9"), '{"count":1}');
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage + Bot: multi session, strict and lazy, fragments in Redis", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    type Data = { chat: { count: number }; user: { name: string } };
    const chat = await f.storage<Data["chat"]>();
    const user = await f.storage<Data["user"]>({ ttl: 60_000 });
    const options = {
      type: "multi" as const,
      chat: { storage: chat, initial: () => ({ count: 0 }) },
      user: { storage: user, initial: () => ({ name: "" }), getSessionKey: perUser, prefix: "u:" },
    };

    const strict = createHarness<Context & SessionFlavor<Data>>();
    strict.bot.use(session<Data, Context>(options));
    strict.bot.on("message", (ctx) => {
      ctx.session.chat.count++;
      ctx.session.user.name = ctx.message.text ?? "";
    });
    await strict.send(message(-200, "alice", { userId: 11 }));
    await strict.send(message(-200, "bob", { userId: 12 }));
    assert.deepEqual(strict.errors, []);
    assert.equal(await admin.get(chat.prefix + "-200"), '{"count":2}');
    assert.equal(await admin.get(user.prefix + "u:11"), '{"name":"alice"}');
    assert.equal(await admin.get(user.prefix + "u:12"), '{"name":"bob"}');
    assert.ok(await admin.pTTL(user.prefix + "u:11") > 50_000);
    assert.equal(await admin.pTTL(chat.prefix + "-200"), -1);

    const lazy = createHarness<Context & LazyMultiSessionFlavor<Data>>();
    lazy.bot.use(lazySession<Data, Context>(options));
    lazy.bot.on("message", async (ctx) => {
      (await ctx.session.chat).count++;
      if (ctx.message.text === "rename") (await ctx.session.user).name = "carol";
    });
    await lazy.send(message(-200, "count", { userId: 11 }));
    await lazy.send(message(-200, "rename", { userId: 12 }));
    assert.deepEqual(lazy.errors, []);
    assert.equal(await admin.get(chat.prefix + "-200"), '{"count":4}');
    assert.equal(await admin.get(user.prefix + "u:11"), '{"name":"alice"}');
    assert.equal(await admin.get(user.prefix + "u:12"), '{"name":"carol"}');
  } finally {
    await f.cleanup();
  }
});

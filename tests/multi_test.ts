/** Multi sessions, strict and lazy, through a real grammY Bot. */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  type LazyMultiSessionFlavor,
  lazySession,
  MemorySessionStorage,
  perUser,
  session,
  SessionError,
  type SessionFlavor,
} from "../mod.ts";
import { createHarness, inlineQuery, message, sleep } from "./helpers/bot.ts";
import { CountingStorage } from "./helpers/counting.ts";

type Data = { chat: { count: number }; user: { name: string }; extra: { tags: string[] } };

function storages() {
  const mem = {
    chat: new MemorySessionStorage<Data["chat"]>(),
    user: new MemorySessionStorage<Data["user"]>(),
    extra: new MemorySessionStorage<Data["extra"]>(),
  };
  return {
    mem,
    chat: new CountingStorage(mem.chat),
    user: new CountingStorage(mem.user),
    extra: new CountingStorage(mem.extra),
  };
}

function options(s: ReturnType<typeof storages>) {
  return {
    type: "multi" as const,
    chat: { storage: s.chat, initial: () => ({ count: 0 }) },
    user: { storage: s.user, initial: () => ({ name: "" }), getSessionKey: perUser, prefix: "u:" },
    extra: { storage: s.extra, initial: () => ({ tags: [] as string[] }) },
  };
}

Deno.test("multi session: fragments have their own storage, key, prefix and initial", async () => {
  const s = storages();
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session<Data, Context>(options(s)));
  h.bot.on("message", (ctx) => {
    ctx.session.chat.count++;
    ctx.session.user.name = "alice";
  });
  await h.send(message(-100, "hi", { userId: 5 }));
  assert.deepEqual(h.errors, []);
  assert.deepEqual(s.mem.chat.read("-100"), { count: 1 });
  assert.deepEqual(s.mem.user.read("u:5"), { name: "alice" });
  assert.equal(s.mem.extra.has("-100"), false, "untouched initial value is not written");
  assert.deepEqual([s.chat.counts.read, s.user.counts.read, s.extra.counts.read], [1, 1, 1]);
});

Deno.test("multi session: fragments load in parallel", async () => {
  const s = storages();
  const running: string[] = [];
  let maxRunning = 0;
  for (const name of ["chat", "user", "extra"] as const) {
    const inner = s[name].read.bind(s[name]);
    // deno-lint-ignore no-explicit-any
    (s[name] as any).read = async (key: string) => {
      running.push(name);
      maxRunning = Math.max(maxRunning, running.length);
      await sleep(20);
      running.splice(running.indexOf(name), 1);
      return await inner(key);
    };
  }
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session<Data, Context>(options(s)));
  h.bot.on("message", () => {});
  await h.send(message(1));
  assert.equal(maxRunning, 3);
});

Deno.test("multi session: replacing ctx.session writes every fragment; undefined deletes every keyed one", async () => {
  const s = storages();
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session<Data, Context>(options(s)));
  h.bot.on("message", (ctx) => {
    if (ctx.message.text === "replace") {
      ctx.session = { chat: { count: 9 }, user: { name: "bob" }, extra: { tags: ["x"] } };
    } else ctx.session = undefined as unknown as Data;
  });
  await h.send(message(1, "replace"));
  assert.deepEqual(s.mem.chat.read("1"), { count: 9 });
  assert.deepEqual(s.mem.user.read("u:1"), { name: "bob" });
  assert.deepEqual(s.mem.extra.read("1"), { tags: ["x"] });
  await h.send(message(1, "drop"));
  assert.deepEqual(h.errors, []);
  assert.equal(s.mem.chat.has("1"), false);
  assert.equal(s.mem.user.has("u:1"), false);
  assert.equal(s.mem.extra.has("1"), false);
});

Deno.test("multi session: a fragment without a key for this update is skipped", async () => {
  const s = storages();
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session<Data, Context>(options(s)));
  h.bot.on("inline_query", (ctx) => {
    if (ctx.session.user.name !== "") throw new Error("expected the initial value");
    // chat and extra have no key for an inline query: leaving them out is fine
    ctx.session = { user: { name: "carol" } } as Data;
  });
  await h.send(inlineQuery(8));
  assert.deepEqual(h.errors, []);
  assert.deepEqual(s.mem.user.read("u:8"), { name: "carol" });
  assert.equal(s.chat.total, 0, "no chat key: no chat I/O");
});

Deno.test("multi session: when one fragment's write fails the others are still saved", async () => {
  const s = storages();
  s.user.failing.add("write");
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session<Data, Context>(options(s)));
  h.bot.on("message", (ctx) => {
    ctx.session.chat.count = 3;
    ctx.session.user.name = "dave";
  });
  await h.send(message(2));
  assert.equal(h.errors.length, 1);
  const err = h.errors[0].error;
  assert.ok(err instanceof SessionError);
  assert.equal(err.key, "u:2");
  assert.deepEqual(s.mem.chat.read("2"), { count: 3 });
  assert.equal(s.mem.user.has("u:2"), false);
});

Deno.test("multi session: a failed fragment read stops the handler", async () => {
  const s = storages();
  s.extra.failing.add("read");
  let ran = false;
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session<Data, Context>(options(s)));
  h.bot.on("message", () => void (ran = true));
  await h.send(message(2));
  assert.equal(ran, false);
  assert.equal(h.errors.length, 1);
  assert.equal((h.errors[0].error as SessionError).key, "2");
});

Deno.test("lazy multi session: each fragment is read only when accessed", async () => {
  const s = storages();
  s.mem.user.write("u:1", { name: "erin" });
  const h = createHarness<Context & LazyMultiSessionFlavor<Data>>();
  h.bot.use(lazySession<Data, Context>(options(s)));
  h.bot.on("message", async (ctx) => {
    if (ctx.message.text === "none") return;
    const chat = await ctx.session.chat;
    chat.count++;
    if (ctx.message.text === "user") await ctx.reply((await ctx.session.user).name);
    if (ctx.message.text === "set") ctx.session.extra = { tags: ["new"] };
  });
  await h.send(message(1, "none"));
  assert.equal(s.chat.total + s.user.total + s.extra.total, 0);
  await h.send(message(1, "chat"));
  assert.deepEqual([s.chat.counts.read, s.user.counts.read, s.extra.counts.read], [1, 0, 0]);
  assert.deepEqual(s.mem.chat.read("1"), { count: 1 });
  await h.send(message(1, "user"));
  assert.deepEqual(h.replies(), ["erin"]);
  assert.deepEqual([s.chat.counts.read, s.user.counts.read, s.user.counts.write], [2, 1, 0]);
  await h.send(message(1, "set"));
  assert.deepEqual(s.extra.counts, { read: 0, write: 1, delete: 0 });
  assert.deepEqual(s.mem.extra.read("1"), { tags: ["new"] });
});

Deno.test("multi session: 100 concurrent updates lose nothing in any fragment", async () => {
  const s = storages();
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session<Data, Context>(options(s)));
  h.bot.on("message", async (ctx) => {
    await sleep(Math.random() * 10);
    ctx.session.chat.count++;
    ctx.session.extra.tags.push("t");
  });
  await Promise.all(Array.from({ length: 100 }, () => h.send(message(4))));
  assert.deepEqual(h.errors, []);
  assert.deepEqual(s.mem.chat.read("4"), { count: 100 });
  assert.equal(s.mem.extra.read("4")!.tags.length, 100);
});

/** Lazy sessions through a real grammY Bot. */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  lazySession,
  type LazySessionFlavor,
  MemorySessionStorage,
  SessionError,
  SessionKeyError,
} from "../mod.ts";
import { createHarness, inlineQuery, message, sleep } from "./helpers/bot.ts";
import { CountingStorage } from "./helpers/counting.ts";

type Data = { count: number };
type C = Context & LazySessionFlavor<Data>;

function setup() {
  const memory = new MemorySessionStorage<Data>();
  const storage = new CountingStorage<Data>(memory);
  const h = createHarness<C>();
  h.bot.use(lazySession({ initial: () => ({ count: 0 }), storage }));
  return { h, storage, memory };
}

Deno.test("lazy session: an update that never touches ctx.session does no storage I/O", async () => {
  const { h, storage } = setup();
  h.bot.on("message", (ctx) => ctx.reply("hello"));
  await h.send(message(1));
  await h.send(message(2));
  assert.deepEqual(h.replies(), ["hello", "hello"]);
  assert.equal(storage.total, 0);
});

Deno.test("lazy session: the first access reads exactly once", async () => {
  const { h, storage, memory } = setup();
  memory.write("1", { count: 4 });
  h.bot.on("message", async (ctx) => {
    const [a, b] = await Promise.all([ctx.session, ctx.session]);
    const c = await ctx.session;
    assert.equal(a, b);
    assert.equal(a, c);
    await ctx.reply(`count ${a.count}`);
  });
  await h.send(message(1));
  assert.deepEqual(h.replies(), ["count 4"]);
  assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 0 });
});

Deno.test("lazy session: changes are written once, unchanged data is not", async () => {
  const { h, storage, memory } = setup();
  h.bot.on("message", async (ctx) => {
    const data = await ctx.session;
    if (ctx.message.text === "inc") data.count++;
  });
  await h.send(message(1, "look"));
  assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 0 });
  await h.send(message(1, "inc"));
  assert.deepEqual(storage.counts, { read: 2, write: 1, delete: 0 });
  assert.deepEqual(memory.read("1"), { count: 1 });
});

Deno.test("lazy session: assigning without reading does not read", async () => {
  const { h, storage, memory } = setup();
  memory.write("1", { count: 4 });
  h.bot.on("message", async (ctx) => {
    if (ctx.message.text === "set") ctx.session = { count: 10 };
    if (ctx.message.text === "set-promise") ctx.session = Promise.resolve({ count: 20 });
    if (ctx.message.text === "set-read") {
      ctx.session = { count: 30 };
      await ctx.reply(`now ${(await ctx.session).count}`);
    }
    if (ctx.message.text === "delete") ctx.session = null;
  });
  await h.send(message(1, "set"));
  assert.deepEqual(storage.counts, { read: 0, write: 1, delete: 0 });
  assert.deepEqual(memory.read("1"), { count: 10 });
  await h.send(message(1, "set-promise"));
  assert.deepEqual(memory.read("1"), { count: 20 });
  await h.send(message(1, "set-read"));
  assert.deepEqual(h.replies(), ["now 30"]);
  assert.equal(storage.counts.read, 0);
  await h.send(message(1, "delete"));
  assert.deepEqual(storage.counts, { read: 0, write: 3, delete: 1 });
  assert.equal(memory.has("1"), false);
});

Deno.test("lazy session: lazySession(storage) shorthand", async () => {
  const memory = new MemorySessionStorage<Data | undefined>();
  const h = createHarness<Context & LazySessionFlavor<Data | undefined>>();
  h.bot.use(lazySession(memory));
  h.bot.on("message", async (ctx) => {
    const data = (await ctx.session) ?? { count: 0 };
    data.count++;
    ctx.session = data;
  });
  await h.send(message(3));
  await h.send(message(3));
  assert.deepEqual(memory.read("3"), { count: 2 });
});

Deno.test("lazy session: keyless updates do no I/O and explain the fix", async () => {
  const { h, storage } = setup();
  h.bot.on("inline_query", async (ctx) => {
    if (ctx.inlineQuery.query === "read") await ctx.session;
    else ctx.session = { count: 1 };
  });
  await h.send(inlineQuery(1, "read"));
  await h.send(inlineQuery(1, "write"));
  assert.equal(storage.total, 0);
  assert.equal(h.errors.length, 2);
  for (const e of h.errors) {
    assert.ok(e.error instanceof SessionKeyError);
    assert.match(e.error.message, /inline_query.*getSessionKey/s);
  }
});

Deno.test("lazy session: a failing handler writes nothing", async () => {
  const { h, storage, memory } = setup();
  memory.write("1", { count: 1 });
  h.bot.on("message", async (ctx) => {
    (await ctx.session).count = 50;
    throw new Error("boom");
  });
  await h.send(message(1));
  assert.equal(h.errors.length, 1);
  assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 0 });
  assert.deepEqual(memory.read("1"), { count: 1 });
});

Deno.test("lazy session: a failed read reaches bot.catch naming the key, nothing is written", async () => {
  const { h, storage, memory } = setup();
  memory.write("1", { count: 7 });
  storage.failing.add("read");
  h.bot.on("message", async (ctx) => {
    (await ctx.session).count++;
  });
  await h.send(message(1));
  assert.equal(h.errors.length, 1);
  const err = h.errors[0].error;
  assert.ok(err instanceof SessionError);
  assert.equal(err.key, "1");
  assert.equal(storage.counts.write, 0);
  assert.deepEqual(memory.read("1"), { count: 7 });
});

Deno.test("lazy session: 100 concurrent updates of one key share one read and lose nothing", async () => {
  const { h, storage, memory } = setup();
  let arrived = 0;
  const { promise: allIn, resolve } = Promise.withResolvers<void>();
  h.bot.on("message", async (ctx) => {
    await sleep(Math.random() * 10);
    const data = await ctx.session;
    if (++arrived === 100) resolve();
    await allIn; // every update holds the session at the same time
    await sleep(Math.random() * 5);
    data.count++;
  });
  await Promise.all(Array.from({ length: 100 }, () => h.send(message(1))));
  assert.deepEqual(h.errors, []);
  assert.deepEqual(memory.read("1"), { count: 100 });
  assert.equal(storage.counts.read, 1);
});

/** Strict sessions through a real grammY Bot: issue 2 behaviours 1-8 and 10. */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  lazySession,
  MemorySessionStorage,
  session,
  SessionError,
  type SessionFlavor,
  SessionKeyError,
  SessionValueError,
} from "../mod.ts";
import { createHarness, inlineQuery, message, sleep } from "./helpers/bot.ts";
import { CountingStorage } from "./helpers/counting.ts";

type Data = { count: number; deep?: { list: { n: number }[] } };
type C = Context & SessionFlavor<Data>;

function setup(options: { initial?: () => Data } = { initial: () => ({ count: 0 }) }) {
  const memory = new MemorySessionStorage<Data>();
  const storage = new CountingStorage<Data>(memory);
  const h = createHarness<C>();
  h.bot.use(session({ ...options, storage }));
  return { h, storage, memory };
}

Deno.test("strict session: writes only what changed", async (t) => {
  await t.step("a new chat whose initial value is untouched is not written", async () => {
    const { h, storage, memory } = setup();
    h.bot.on("message", (ctx) => ctx.reply(`count ${ctx.session.count}`));
    await h.send(message(1));
    assert.deepEqual(h.replies(), ["count 0"]);
    assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 0 });
    assert.equal(memory.has("1"), false);
  });

  await t.step("a session read but not changed is not written", async () => {
    const { h, storage, memory } = setup();
    memory.write("1", { count: 5 });
    h.bot.on("message", (ctx) => ctx.reply(`count ${ctx.session.count}`));
    await h.send(message(1));
    assert.deepEqual(h.replies(), ["count 5"]);
    assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 0 });
  });

  await t.step("a deeply nested change is written exactly once", async () => {
    const { h, storage, memory } = setup();
    memory.write("1", { count: 0, deep: { list: [{ n: 1 }, { n: 2 }] } });
    h.bot.on("message", (ctx) => {
      ctx.session.deep!.list[1].n = 3;
    });
    await h.send(message(1));
    assert.deepEqual(storage.counts, { read: 1, write: 1, delete: 0 });
    assert.deepEqual(memory.read("1"), { count: 0, deep: { list: [{ n: 1 }, { n: 3 }] } });
  });

  await t.step("a storage that reorders keys is not rewritten by later reads", async () => {
    // As PostgreSQL jsonb does: what comes back has its keys in another order.
    const memory = new MemorySessionStorage<Data>();
    const storage = new CountingStorage<Data>({
      read: (key) => {
        const value = memory.read(key);
        return value && Object.fromEntries(Object.entries(value).reverse()) as Data;
      },
      write: (key, value) => memory.write(key, value),
      delete: (key) => memory.delete(key),
    });
    const h = createHarness<C>();
    const seen: number[] = [];
    h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
    h.bot.on("message", (ctx) => {
      if (ctx.message.text === "add") ctx.session.deep = { list: [{ n: ctx.session.count }] };
      else seen.push(ctx.session.count);
    });
    await h.send(message(1, "add"));
    for (let i = 0; i < 3; i++) await h.send(message(1, "read"));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(seen, [0, 0, 0]);
    assert.deepEqual(storage.counts, { read: 4, write: 1, delete: 0 });
  });

  await t.step("a changed initial value is written", async () => {
    const { h, storage, memory } = setup();
    h.bot.on("message", (ctx) => ctx.session.count++);
    await h.send(message(1));
    assert.deepEqual(storage.counts, { read: 1, write: 1, delete: 0 });
    assert.deepEqual(memory.read("1"), { count: 1 });
  });
});

Deno.test("strict session: null or undefined from storage means no session", async () => {
  const inner = new MemorySessionStorage<Data>();
  for (const stored of [null, undefined]) {
    const h = createHarness<C>();
    h.bot.use(session({
      initial: () => ({ count: 10 }),
      storage: {
        ...inner,
        read: () => stored as unknown as undefined,
        write: () => {},
        delete() {},
      },
    }));
    h.bot.on("message", (ctx) => ctx.reply(String(ctx.session.count)));
    await h.send(message(1));
    assert.deepEqual(h.replies(), ["10"]);
  }
});

Deno.test("strict session: assigning null or undefined deletes the stored session", async () => {
  for (const value of [null, undefined]) {
    const { h, storage, memory } = setup();
    memory.write("1", { count: 3 });
    h.bot.on("message", (ctx) => {
      ctx.session = value;
    });
    await h.send(message(1));
    assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 1 });
    assert.equal(memory.has("1"), false);
  }
  // Nothing stored and nothing to delete: no I/O beyond the read.
  const { h, storage } = setup();
  h.bot.on("message", (ctx) => {
    ctx.session = undefined as unknown as Data;
  });
  await h.send(message(2));
  assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 0 });
});

Deno.test("strict session: a failing handler writes nothing and leaks nothing", async () => {
  const { h, storage, memory } = setup();
  memory.write("1", { count: 1, deep: { list: [{ n: 1 }] } });
  h.bot.on("message", (ctx) => {
    ctx.session.count = 99;
    ctx.session.deep!.list.push({ n: 2 });
    if (ctx.message.text === "fail") throw new Error("handler failed");
    if (ctx.message.text === "drop") ctx.session = null;
  });
  await h.send(message(1, "fail"));
  assert.equal(h.errors.length, 1);
  assert.equal((h.errors[0].error as Error).message, "handler failed");
  assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 0 });
  assert.deepEqual(memory.read("1"), { count: 1, deep: { list: [{ n: 1 }] } });
  // The next update sees what storage held, not the failed update's changes.
  const seen: Data[] = [];
  const h2 = createHarness<C>();
  h2.bot.use(session({ storage: storage }));
  h2.bot.on("message", (ctx) => void seen.push(structuredClone(ctx.session)));
  await h2.send(message(1));
  assert.deepEqual(seen, [{ count: 1, deep: { list: [{ n: 1 }] } }]);
});

Deno.test("strict session: updates without a key do no I/O and explain the fix", async (t) => {
  await t.step("reading ctx.session throws an error naming the update type", async () => {
    const { h, storage } = setup();
    h.bot.on("inline_query", (ctx) => ctx.session.count++);
    await h.send(inlineQuery(5));
    assert.equal(storage.total, 0);
    assert.equal(h.errors.length, 1);
    const err = h.errors[0].error;
    assert.ok(err instanceof SessionKeyError);
    assert.equal(err.updateType, "inline_query");
    assert.match(err.message, /inline_query/);
    assert.match(err.message, /getSessionKey/);
  });
  await t.step("assigning ctx.session throws as well", async () => {
    const { h, storage } = setup();
    h.bot.on("inline_query", (ctx) => {
      ctx.session = { count: 1 };
    });
    await h.send(inlineQuery(5));
    assert.equal(storage.total, 0);
    assert.ok(h.errors[0].error instanceof SessionKeyError);
  });
  await t.step("an update without a key that ignores the session works", async () => {
    const { h, storage } = setup();
    h.bot.on(
      "inline_query",
      (ctx) => ctx.answerInlineQuery([], { cache_time: ctx.sessionKey ? 1 : 0 }),
    );
    await h.send(inlineQuery(5));
    assert.deepEqual(h.errors, []);
    assert.equal(h.calls[0].method, "answerInlineQuery");
    assert.equal(h.calls[0].payload.cache_time, 0);
    assert.equal(storage.total, 0);
  });
  await t.step("ctx.sessionKey holds the resolved key, prefix included", async () => {
    const h = createHarness<C>();
    h.bot.use(session({ prefix: "p:", initial: () => ({ count: 0 }) }));
    h.bot.on("message", (ctx) => ctx.reply(`key: ${ctx.sessionKey}`));
    await h.send(message(-100123));
    assert.deepEqual(h.replies(), ["key: p:-100123"]);
  });
});

Deno.test("strict session: 100 concurrent updates of one key lose nothing", async () => {
  const { h, storage, memory } = setup();
  const order: number[] = [];
  const inner = storage.write.bind(storage);
  storage.write = async (key, value) => {
    await sleep(Math.random() * 3); // slow, uneven writes
    order.push(value.count);
    await inner(key, value);
  };
  h.bot.on("message", async (ctx) => {
    await sleep(Math.random() * 10);
    ctx.session.count++;
  });
  await Promise.all(Array.from({ length: 100 }, () => h.send(message(1))));
  assert.deepEqual(h.errors, []);
  assert.deepEqual(memory.read("1"), { count: 100 });
  assert.equal(storage.counts.read, 1, "concurrent updates share one read");
  const sorted = [...order].sort((a, b) => a - b);
  assert.deepEqual(order, sorted, "writes land in order");
});

Deno.test("strict session: a failed read stops the handler and never writes initial data", async () => {
  const { h, storage, memory } = setup();
  memory.write("1", { count: 41 });
  storage.failing.add("read");
  let ran = false;
  h.bot.on("message", (ctx) => {
    ran = true;
    ctx.session.count++;
  });
  await h.send(message(1));
  assert.equal(ran, false);
  assert.equal(h.errors.length, 1);
  const err = h.errors[0].error;
  assert.ok(err instanceof SessionError);
  assert.equal(err.key, "1");
  assert.match(err.message, /read the session of key "1"/);
  assert.deepEqual(storage.counts, { read: 1, write: 0, delete: 0 });
  assert.deepEqual(memory.read("1"), { count: 41 });
  // Recovery: the next update reads again.
  storage.failing.clear();
  await h.send(message(1));
  assert.equal(ran, true);
  assert.deepEqual(memory.read("1"), { count: 42 });
});

Deno.test("strict session: failed writes and deletes reach bot.catch naming the key", async () => {
  const { h, storage, memory } = setup();
  h.bot.on("message", (ctx) => {
    if (ctx.message.text === "del") ctx.session = null;
    else ctx.session.count++;
  });
  storage.failing.add("write");
  await h.send(message(1));
  assert.equal(h.errors.length, 1);
  assert.ok(h.errors[0].error instanceof SessionError);
  assert.equal((h.errors[0].error as SessionError).key, "1");
  assert.match((h.errors[0].error as Error).message, /write the session of key "1"/);
  assert.equal(memory.has("1"), false);
  storage.failing.clear();
  await h.send(message(1));
  assert.deepEqual(memory.read("1"), { count: 1 });
  storage.failing.add("delete");
  await h.send(message(1, "del"));
  assert.equal(h.errors.length, 2);
  assert.match((h.errors[1].error as Error).message, /delete the session of key "1"/);
  assert.deepEqual(memory.read("1"), { count: 1 });
});

Deno.test("strict session: values JSON cannot hold fail at write time naming the key", async () => {
  const { h, memory } = setup();
  memory.write("1", { count: 1 });
  const bad: [string, (s: Record<string, unknown>) => void][] = [
    ["function", (s) => void (s.f = () => 1)],
    ["BigInt", (s) => void (s.b = 1n)],
    ["cycle", (s) => void (s.self = s)],
    ["Date", (s) => void (s.d = new Date())],
  ];
  const mutations = new Map(bad);
  h.bot.on("message", (ctx) => {
    mutations.get(ctx.message.text ?? "")!(ctx.session as unknown as Record<string, unknown>);
  });
  for (const [label] of bad) {
    const before = h.errors.length;
    await h.send(message(1, label));
    assert.equal(h.errors.length, before + 1, label);
    const err = h.errors[before].error;
    assert.ok(err instanceof SessionValueError, label);
    assert.equal(err.key, "1");
    assert.match(err.message, /key "1"/);
  }
  // The middleware hands the value to the storage's write (rule V2); the
  // memory storage refuses it (rule V1), so nothing is stored.
  assert.deepEqual(memory.read("1"), { count: 1 });
});

Deno.test("session middleware installed twice gives a clear error", async (t) => {
  for (
    const [label, second] of [
      ["session twice", () => session()],
      ["session and lazySession", () => lazySession()],
    ] as const
  ) {
    await t.step(label, async () => {
      const h = createHarness<C>();
      h.bot.use(session({ initial: () => ({ count: 0 }) }));
      h.bot.use(second() as never);
      h.bot.on("message", (ctx) => ctx.session.count++);
      await h.send(message(1));
      assert.equal(h.errors.length, 1);
      const err = h.errors[0].error;
      assert.ok(err instanceof SessionError);
      assert.match(err.message, /installed twice/);
    });
  }
});

/**
 * How a strict session reaches the handler: `ctx.session` is an accessor
 * onto the one live value of the key (docs/semantics.md, rule K1), so every
 * update of a key sees what the others assigned or changed, and nothing is
 * lost.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { MemorySessionStorage, session, type SessionFlavor } from "../mod.ts";
import { createHarness, message } from "./helpers/bot.ts";
import { CountingStorage } from "./helpers/counting.ts";

type Data = { count: number };
type C = Context & SessionFlavor<Data>;

function isAccessor(ctx: Context): boolean {
  return Object.getOwnPropertyDescriptor(ctx, "session")?.get !== undefined;
}

Deno.test("strict session: a second update of a key sees what the first assigned", async () => {
  const memory = new MemorySessionStorage<Data>();
  memory.write("1", { count: 1 });
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ count: 0 }), storage: memory }));
  const assigned = Promise.withResolvers<void>();
  const joined = Promise.withResolvers<void>();
  const seen: Record<string, unknown> = {};
  h.bot.on("message", async (ctx) => {
    if (ctx.msg.text === "first") {
      seen.firstWasAccessor = isAccessor(ctx);
      ctx.session = { count: 10 };
      assigned.resolve();
      await joined.promise;
      seen.firstAfterJoin = isAccessor(ctx);
      seen.firstReads = ctx.session.count;
      ctx.session.count += 100;
    } else {
      seen.secondReads = ctx.session.count;
      ctx.session.count++;
      joined.resolve();
    }
  });
  const first = h.send(message(1, "first"));
  await assigned.promise;
  await h.send(message(1, "second"));
  await first;
  assert.deepEqual(h.errors, []);
  assert.deepEqual(seen, {
    firstWasAccessor: true,
    secondReads: 10,
    firstAfterJoin: true,
    firstReads: 11,
  });
  assert.deepEqual(memory.read("1"), { count: 111 });
});

Deno.test("strict session: the only update of a key saves what it assigned or changed", async (t) => {
  const setup = () => {
    const memory = new MemorySessionStorage<Data>();
    memory.write("1", { count: 1 });
    const storage = new CountingStorage<Data>(memory);
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
    return { memory, storage, h };
  };
  await t.step("an assignment is written", async () => {
    const { memory, h } = setup();
    h.bot.on("message", (ctx) => void (ctx.session = { count: 7 }));
    await h.send(message(1));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(memory.read("1"), { count: 7 });
  });
  await t.step("assigning an equal value writes nothing", async () => {
    const { storage, h } = setup();
    h.bot.on("message", (ctx) => void (ctx.session = { count: 1 }));
    await h.send(message(1));
    assert.equal(storage.counts.write, 0);
  });
  await t.step("assigning undefined deletes", async () => {
    const { memory, h } = setup();
    h.bot.on("message", (ctx) => void (ctx.session = undefined as unknown as Data));
    await h.send(message(1));
    assert.equal(memory.read("1"), undefined);
  });
  await t.step("deleting the property changes nothing, as with the accessor", async () => {
    const { memory, storage, h } = setup();
    h.bot.on("message", (ctx) => {
      delete (ctx as { session?: Data }).session;
    });
    await h.send(message(1));
    assert.deepEqual(h.errors, []);
    assert.equal(storage.counts.write + storage.counts.delete, 0);
    assert.deepEqual(memory.read("1"), { count: 1 });
  });
  await t.step("a middleware after the session one still reads the final value", async () => {
    const { h } = setup();
    let after: unknown;
    h.bot.use(async (ctx, next) => {
      await next();
      after = ctx.session;
    });
    h.bot.on("message", (ctx) => void ctx.session.count++);
    await h.send(message(1));
    assert.deepEqual(after, { count: 2 });
  });
});

/**
 * Load: 10,000 updates across 1,000 chats, up to 200 in flight at once,
 * through a real grammY Bot with `session()` on each storage. Every chat's
 * final count must be exactly 10 and no error may reach bot.catch.
 *
 * The updates are shuffled (seeded), so updates of one chat often run at the
 * same time; the handler awaits a timer between reading and changing the
 * session to widen that overlap.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { session, type SessionFlavor } from "../mod.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
import { backends } from "./fixtures/reliability_backends.ts";

const CHATS = 1000;
const PER_CHAT = 10;
const IN_FLIGHT = 200;
const CHAT_BASE = 700_000;

type Data = { count: number };

/** A small seeded PRNG (mulberry32), so every run shuffles the same way. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffledChats(): number[] {
  const order: number[] = [];
  for (let c = 0; c < CHATS; c++) for (let i = 0; i < PER_CHAT; i++) order.push(CHAT_BASE + c);
  const rand = prng(9);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Runs `jobs` with at most `limit` running at once; returns the peak. */
async function pool(jobs: (() => Promise<void>)[], limit: number): Promise<number> {
  let next = 0;
  let running = 0;
  let peak = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      running++;
      peak = Math.max(peak, running);
      try {
        await job();
      } finally {
        running--;
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return peak;
}

for (const backend of backends) {
  backend.test(`reliability load: ${backend.name}: 10,000 updates, 1,000 chats, 200 in flight`, async () => {
    const { storage, rawCount, close } = await backend.open<Data>();
    try {
      const h = createHarness<Context & SessionFlavor<Data>>();
      h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      let handled = 0;
      let overlapping = 0;
      const live = new Map<number, number>();
      h.bot.on("message", async (ctx) => {
        const chat = ctx.chat.id;
        const n = (live.get(chat) ?? 0) + 1;
        live.set(chat, n);
        if (n > 1) overlapping++;
        await sleep(0);
        ctx.session.count++;
        live.set(chat, live.get(chat)! - 1);
        handled++;
      });
      const order = shuffledChats();
      const started = performance.now();
      const peak = await pool(order.map((chat) => () => h.send(message(chat))), IN_FLIGHT);
      const seconds = (performance.now() - started) / 1000;

      assert.deepEqual(h.errors.map((e) => String(e.error)), [], "no error reached bot.catch");
      assert.equal(handled, CHATS * PER_CHAT);
      assert.equal(peak, IN_FLIGHT);
      const wrong: string[] = [];
      for (let c = 0; c < CHATS; c++) {
        const got = await storage.read(String(CHAT_BASE + c));
        if (got?.count !== PER_CHAT) wrong.push(`${CHAT_BASE + c}: ${JSON.stringify(got)}`);
      }
      assert.deepEqual(wrong, [], "every chat's count is exactly 10");
      let keys = 0;
      for await (const _ of storage.readAllKeys()) keys++;
      assert.equal(keys, CHATS);
      if (backend.name !== "denokv") assert.equal(await rawCount(), CHATS);
      console.log(
        `[reliability load] ${backend.name}: ${CHATS * PER_CHAT} updates in ${
          seconds.toFixed(1)
        } s (${Math.round(CHATS * PER_CHAT / seconds)} updates/s), peak ${peak} in flight, ` +
          `${overlapping} handler runs overlapped another update of the same chat`,
      );
    } finally {
      await close();
    }
  });
}

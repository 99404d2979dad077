/**
 * sessionkit on Node.js, with sessions in a local Deno KV database file
 * through `@deno/kv` (SQLite underneath; no Deno needed).
 *
 * In a Node 20+ project:
 *
 *   npm install @sessionkit/grammy grammy @deno/kv
 *   cp <this file> bot.mjs
 *   node bot.mjs                      # scripted self-test, no token needed
 *   BOT_TOKEN=123:abc node bot.mjs    # the real bot, long polling
 *
 * The bot has a multi session: a counter per chat in the KV file
 * (`sessions.kv`, or the path in KV_PATH), which survives restarts, and a
 * message count per user in memory, which does not.
 *
 * Without BOT_TOKEN it is driven by made-up updates through
 * `bot.handleUpdate` (API calls are answered locally and printed), and then
 * checks what was really stored, reopening the KV file to read it back.
 * The repository's `.ci/checks/node_pack.sh` runs it that way against the
 * npm tarball built by `deno pack`.
 */

import assert from "node:assert/strict";
import { Bot } from "grammy";
import { openKv } from "@deno/kv";
import { MemorySessionStorage, perUser, session } from "@sessionkit/grammy";
import { DenoKvStorage } from "@sessionkit/grammy/denokv";

// Types for editors and `tsc --checkJs` (the npm package ships .d.ts files).
/** @typedef {{ counter: { count: number }; seen: { messages: number } }} SessionData */
/** @typedef {import("grammy").Context & import("@sessionkit/grammy").SessionFlavor<SessionData>} MyContext */
/**
 * @typedef {object} Storages
 * @property {DenoKvStorage<SessionData["counter"]>} counter
 * @property {MemorySessionStorage<SessionData["seen"]>} seen
 */

const kvPath = process.env.KV_PATH ?? "sessions.kv";
const prefix = ["sessions", "counter"];

/**
 * The bot: `ctx.session.counter` per chat in Deno KV, `ctx.session.seen` per
 * user in memory.
 *
 * @param {string} token
 * @param {Storages} storages
 * @param {import("grammy/types").UserFromGetMe} [botInfo]
 * @returns {Bot<MyContext>}
 */
function createBot(token, storages, botInfo) {
  /** @type {Bot<MyContext>} */
  const bot = new Bot(token, botInfo === undefined ? {} : { botInfo });
  bot.use(session({
    type: "multi",
    counter: { initial: () => ({ count: 0 }), storage: storages.counter },
    seen: { initial: () => ({ messages: 0 }), storage: storages.seen, getSessionKey: perUser },
  }));
  bot.on("message", async (ctx, next) => {
    ctx.session.seen.messages++;
    await next();
  });
  bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.counter.count}`));
  bot.command("seen", (ctx) => ctx.reply(`You sent ${ctx.session.seen.messages} messages.`));
  return bot;
}

const kv = await openKv(kvPath);
/** @type {Storages} */
const storages = {
  counter: new DenoKvStorage(kv, { prefix }),
  seen: new MemorySessionStorage(),
};

const token = process.env.BOT_TOKEN;
if (token) {
  const bot = createBot(token, storages);
  process.once("SIGINT", () => bot.stop());
  await bot.start({ onStart: (me) => console.log(`@${me.username} is running. Ctrl+C stops.`) });
  kv.close();
} else {
  await selfTest();
}

async function selfTest() {
  const before = (await storages.counter.read("42"))?.count ?? 0;
  console.log(`Count stored in ${kvPath} before this run: ${before}`);

  // Given to the Bot so that it does not call getMe (a cast: Telegram sends more fields).
  const botInfo = /** @type {import("grammy/types").UserFromGetMe} */ ({
    id: 1,
    is_bot: true,
    first_name: "Node Demo",
    username: "node_demo_bot",
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
  });
  const bot = createBot("0:self-test", storages, botInfo);
  /** @type {string[]} */
  const replies = [];
  /** @type {import("grammy").Transformer} */
  const answerLocally = (_prev, method, /** @type {any} */ payload) => {
    /** @type {any} */
    const ok = { ok: true, result: true };
    if (method !== "sendMessage") return Promise.resolve(ok);
    replies.push(payload.text);
    console.log(`  bot> ${payload.text}`);
    const message = {
      message_id: replies.length,
      date: 0,
      chat: { id: payload.chat_id },
      text: payload.text,
    };
    return Promise.resolve({ ...ok, result: message });
  };
  bot.api.config.use(answerLocally);

  let updateId = 0;
  /** @type {(chatId: number, text: string) => Promise<void>} */
  const send = (chatId, text) => {
    console.log(`user ${chatId}> ${text}`);
    const command = text.startsWith("/")
      ? [{ type: "bot_command", offset: 0, length: text.length }]
      : undefined;
    /** @type {any} A made-up update; see https://core.telegram.org/bots/api#update */
    const update = {
      update_id: ++updateId,
      message: {
        message_id: updateId,
        date: Math.floor(Date.now() / 1000),
        chat: { id: chatId, type: "private", first_name: "Ada" },
        from: { id: chatId, is_bot: false, first_name: "Ada" },
        text,
        ...(command ? { entities: command } : {}),
      },
    };
    return bot.handleUpdate(update);
  };
  for (const text of ["/count", "/count", "hello", "/count", "/seen"]) await send(42, text);

  assert.deepEqual(replies, [
    `Count: ${before + 1}`,
    `Count: ${before + 2}`,
    `Count: ${before + 3}`,
    "You sent 5 messages.",
  ]);
  assert.deepEqual(storages.seen.read("42"), { messages: 5 });
  assert.deepEqual(await storages.counter.read("42"), { count: before + 3 });
  kv.close();

  // Read it back from the file with a new connection: it is on disk.
  const again = await openKv(kvPath);
  try {
    const stored = await new DenoKvStorage(again, { prefix }).read("42");
    assert.deepEqual(stored, { count: before + 3 });
    console.log(`ok: memory holds ${JSON.stringify(storages.seen.read("42"))} for user 42`);
    console.log(`ok: ${kvPath} holds ${JSON.stringify(stored)} for chat 42 after reopening`);
  } finally {
    again.close();
  }
}

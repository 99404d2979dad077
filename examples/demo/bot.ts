/**
 * The demo's bot: a counter per chat and a fragment per user, both in one
 * lazy multi session kept in Deno KV.
 *
 * - `ctx.session.chat` (key: the chat) holds the chat's counter.
 * - `ctx.session.user` (key: the user, across all chats) holds how often
 *   this user counted anywhere.
 *
 * The session is lazy: a fragment is read from storage only when a handler
 * awaits it, and written only when it changed. So `/start` does no storage
 * I/O at all, `/count` reads and writes both fragments, `/me` only reads the
 * user fragment, and `/reset` writes the chat fragment without reading it.
 */

import { Bot, type BotConfig, type Context } from "npm:grammy@^1.46/web";
import { type LazyMultiSessionFlavor, lazySession, perUser } from "../../mod.ts";
import { CountingKvStorage } from "./counting_storage.ts";

/** What is stored per chat. */
export interface ChatData {
  count: number;
}

/** What is stored per user. */
export interface UserData {
  counted: number;
}

/** The session: one fragment per chat, one per user. */
export interface Data {
  chat: ChatData;
  user: UserData;
}

/** The bot's context type. */
export type DemoContext = Context & LazyMultiSessionFlavor<Data>;

/** The storages of both fragments, over one KV database. */
export interface DemoStorages {
  chat: CountingKvStorage<ChatData>;
  user: CountingKvStorage<UserData>;
}

/** Opens the storages: each fragment under a prefix of its own. */
export function demoStorages(kv: Deno.Kv): DemoStorages {
  return {
    chat: new CountingKvStorage<ChatData>(kv, { prefix: ["demo", "chat"] }),
    user: new CountingKvStorage<UserData>(kv, { prefix: ["demo", "user"] }),
  };
}

/**
 * Builds the bot. `config` goes to grammY's `Bot`: `botInfo` skips the
 * `getMe` call (the scripted demo gives it; a real bot started with
 * `bot.start()` fetches it itself), `client.apiRoot` picks the Bot API server.
 */
export function createBot(
  token: string,
  storages: DemoStorages,
  config?: BotConfig<DemoContext>,
): Bot<DemoContext> {
  const bot = new Bot<DemoContext>(token, config);

  bot.use(lazySession({
    type: "multi",
    // Default key: the chat id, as in grammY.
    chat: { initial: () => ({ count: 0 }), storage: storages.chat },
    // One fragment per user, shared by all chats the user writes in.
    user: { initial: () => ({ counted: 0 }), storage: storages.user, getSessionKey: perUser },
  }));

  bot.command("start", (ctx) =>
    ctx.reply(
      `Hi ${ctx.from?.first_name ?? "there"}! /count counts in this chat, ` +
        `/reset starts over, /me tells how often you counted anywhere.`,
    ));

  bot.command("count", async (ctx) => {
    const chat = await ctx.session.chat;
    const user = await ctx.session.user;
    chat.count++;
    user.counted++;
    await ctx.reply(`Count: ${chat.count}`);
  });

  bot.command("reset", async (ctx) => {
    // Replaces the chat fragment without reading it first.
    ctx.session.chat = { count: 0 };
    await ctx.reply("Count reset to 0.");
  });

  bot.command("me", async (ctx) => {
    const user = await ctx.session.user;
    await ctx.reply(`${ctx.from?.first_name}, you counted ${user.counted} times in all chats.`);
  });

  return bot;
}

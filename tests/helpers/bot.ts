/**
 * A real grammY Bot for tests: `botInfo` given, outgoing API calls captured
 * by an API transformer instead of reaching Telegram, and updates delivered
 * through `bot.handleUpdate` with errors routed to `bot.catch` as long
 * polling would.
 */
import { Bot, BotError, type Context } from "npm:grammy@^1.46";
import type { Update, UserFromGetMe } from "npm:grammy@^1.46/types";

export const botInfo: UserFromGetMe = {
  id: 1000,
  is_bot: true,
  first_name: "Test Bot",
  username: "test_bot",
  can_join_groups: true,
  can_read_all_group_messages: false,
  supports_inline_queries: true,
  can_connect_to_business: false,
  has_main_web_app: false,
  has_topics_enabled: false,
  allows_users_to_create_topics: false,
} as UserFromGetMe;

export interface ApiCall {
  method: string;
  payload: Record<string, unknown>;
}

export interface Harness<C extends Context> {
  bot: Bot<C>;
  /** Every API call the bot made, in order. */
  calls: ApiCall[];
  /** Every error that reached bot.catch. */
  errors: BotError<C>[];
  /** Texts of every sendMessage call. */
  replies(): string[];
  /** Delivers one update; errors go to bot.catch (recorded in `errors`). */
  send(update: Update): Promise<void>;
}

export function createHarness<C extends Context = Context>(): Harness<C> {
  const bot = new Bot<C>("0:test-token", { botInfo });
  const calls: ApiCall[] = [];
  const errors: BotError<C>[] = [];
  let messageId = 0;
  bot.api.config.use((_prev, method, payload) => {
    calls.push({ method, payload: payload as Record<string, unknown> });
    const result = method === "sendMessage"
      ? {
        message_id: ++messageId,
        date: 0,
        chat: { id: (payload as { chat_id: number }).chat_id, type: "private", first_name: "x" },
        text: (payload as { text: string }).text,
      }
      : true;
    // deno-lint-ignore no-explicit-any
    return Promise.resolve({ ok: true, result } as any);
  });
  bot.catch((err) => {
    errors.push(err);
  });
  return {
    bot,
    calls,
    errors,
    replies: () =>
      calls.filter((c) => c.method === "sendMessage").map((c) => String(c.payload.text)),
    async send(update) {
      try {
        await bot.handleUpdate(update);
      } catch (err) {
        if (!(err instanceof BotError)) throw err;
        // Route it to the handler installed with bot.catch, as polling does.
        await (bot["errorHandler"] as (e: BotError<C>) => Promise<void>)(err);
      }
    },
  };
}

let updateId = 0;

/** A text message from `userId` in chat `chatId` (a private chat if equal). */
export function message(
  chatId: number,
  text = "hi",
  opts: { userId?: number; threadId?: number } = {},
): Update {
  const userId = opts.userId ?? chatId;
  const isCommand = text.startsWith("/");
  return {
    update_id: ++updateId,
    message: {
      message_id: updateId,
      date: Math.floor(Date.now() / 1000),
      chat: chatId > 0
        ? { id: chatId, type: "private", first_name: "User" }
        : { id: chatId, type: "supergroup", title: "Group", is_forum: true },
      from: { id: userId, is_bot: false, first_name: "User" },
      text,
      ...(opts.threadId === undefined
        ? {}
        : { message_thread_id: opts.threadId, is_topic_message: true }),
      ...(isCommand
        ? { entities: [{ type: "bot_command", offset: 0, length: text.split(" ")[0].length }] }
        : {}),
    },
  } as Update;
}

/** An inline query: an update without a chat. */
export function inlineQuery(userId: number, query = "q"): Update {
  return {
    update_id: ++updateId,
    inline_query: {
      id: String(updateId),
      from: { id: userId, is_bot: false, first_name: "User" },
      query,
      offset: "",
    },
  } as Update;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

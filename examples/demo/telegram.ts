/**
 * A stand-in for Telegram, for the scripted demo: made-up updates, and an API
 * transformer that answers the bot's API calls locally and prints its replies.
 * Nothing here talks to the network.
 */

import type { Bot, Context } from "npm:grammy@^1.46/web";
import type { Update, UserFromGetMe } from "npm:grammy@^1.46/types";

/** Who the bot is; given to `new Bot`, so it never calls `getMe`. */
export const demoBotInfo: UserFromGetMe = {
  id: 1,
  is_bot: true,
  first_name: "Counter Bot",
  username: "counter_demo_bot",
  can_join_groups: true,
  can_read_all_group_messages: false,
  supports_inline_queries: false,
  can_connect_to_business: false,
  has_main_web_app: false,
  has_topics_enabled: false,
  allows_users_to_create_topics: false,
} as UserFromGetMe;

/** A person in the scripted conversation. */
export interface Person {
  id: number;
  name: string;
}

/** A chat in the scripted conversation: private (positive id) or a group. */
export interface Chat {
  id: number;
  title?: string;
}

let updateId = 0;

/** A text message from `from` in `chat`, with a command entity if it is one. */
export function textMessage(chat: Chat, from: Person, text: string): Update {
  const id = ++updateId;
  const command = text.match(/^\/\w+/)?.[0];
  return {
    update_id: id,
    message: {
      message_id: id,
      date: Math.floor(Date.now() / 1000),
      chat: chat.title === undefined
        ? { id: chat.id, type: "private", first_name: from.name }
        : { id: chat.id, type: "group", title: chat.title },
      from: { id: from.id, is_bot: false, first_name: from.name },
      text,
      ...(command === undefined
        ? {}
        : { entities: [{ type: "bot_command", offset: 0, length: command.length }] }),
    },
  } as Update;
}

/**
 * Answers every API call of `bot` locally instead of sending it to Telegram:
 * `sendMessage` is printed through `print` and answered with a made-up
 * message, anything else is answered with `true`.
 */
export function answerLocally<C extends Context>(bot: Bot<C>, print: (line: string) => void): void {
  let messageId = 0;
  bot.api.config.use((_prev, method, payload) => {
    if (method !== "sendMessage") {
      // deno-lint-ignore no-explicit-any
      return Promise.resolve({ ok: true, result: true } as any);
    }
    const { chat_id, text } = payload as { chat_id: number; text: string };
    print(`bot> ${text}`);
    const result = {
      message_id: ++messageId,
      date: Math.floor(Date.now() / 1000),
      chat: { id: chat_id, type: "private", first_name: "User" },
      from: { id: demoBotInfo.id, is_bot: true, first_name: demoBotInfo.first_name },
      text,
    };
    // deno-lint-ignore no-explicit-any
    return Promise.resolve({ ok: true, result } as any);
  });
}

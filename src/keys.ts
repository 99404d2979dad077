/**
 * Session key strategies: which updates share a session.
 *
 * @module
 */

import type { SessionContext } from "./context.ts";

/** A function that picks the session key of an update, or `undefined` for none. */
export type SessionKeyFn<C extends SessionContext = SessionContext> = (
  ctx: Omit<C, "session">,
) => string | undefined | Promise<string | undefined>;

/**
 * One session per chat: the chat id as a string. This is the default, and the
 * same key grammY's built-in session uses, so stored data carries over.
 *
 * @example
 * ```ts
 * import { perChat, session } from "@sessionkit/grammy";
 *
 * const middleware = session({ getSessionKey: perChat });
 * ```
 *
 * @param ctx The context of the update.
 * @returns The key, or `undefined` for updates without a chat.
 */
export function perChat(ctx: SessionContext): string | undefined {
  return ctx.chatId?.toString();
}

/**
 * One session per user, shared across every chat the user talks in: the
 * sender's user id. Inline queries and other chat-less updates get a key too.
 *
 * @example
 * ```ts
 * import { perUser, session } from "@sessionkit/grammy";
 *
 * const middleware = session({ getSessionKey: perUser });
 * ```
 *
 * @param ctx The context of the update.
 * @returns The key, or `undefined` for updates without a sender.
 */
export function perUser(ctx: SessionContext): string | undefined {
  return ctx.from?.id.toString();
}

/**
 * One session per user in each chat: `"<user id>/<chat id>"`, the format of the
 * example in grammY's session guide, so data stored with it carries over.
 *
 * @example
 * ```ts
 * import { perChatAndUser, session } from "@sessionkit/grammy";
 *
 * const middleware = session({ getSessionKey: perChatAndUser });
 * ```
 *
 * @param ctx The context of the update.
 * @returns The key, or `undefined` unless the update has both a chat and a sender.
 */
export function perChatAndUser(ctx: SessionContext): string | undefined {
  const chat = ctx.chatId;
  const user = ctx.from?.id;
  return chat === undefined || user === undefined ? undefined : `${user}/${chat}`;
}

/**
 * One session per forum topic: `"<chat id>/<topic id>"` for messages in a
 * forum topic, and the plain chat id elsewhere (private chats, ordinary groups
 * and a forum's General topic).
 *
 * @example
 * ```ts
 * import { perForumTopic, session } from "@sessionkit/grammy";
 *
 * const middleware = session({ getSessionKey: perForumTopic });
 * ```
 *
 * @param ctx The context of the update.
 * @returns The key, or `undefined` for updates without a chat.
 */
export function perForumTopic(ctx: SessionContext): string | undefined {
  const chat = ctx.chatId;
  if (chat === undefined) return undefined;
  const msg = ctx.msg;
  return msg?.is_topic_message && msg.message_thread_id !== undefined
    ? `${chat}/${msg.message_thread_id}`
    : chat.toString();
}

/** Session key strategies through a real Bot. */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  perChat,
  perChatAndUser,
  perForumTopic,
  perUser,
  session,
  type SessionFlavor,
  type SessionKeyFn,
} from "../mod.ts";
import { createHarness, inlineQuery, message } from "./helpers/bot.ts";
import type { Update } from "npm:grammy@^1.46/types";

async function keysOf(getSessionKey: SessionKeyFn, updates: Update[]) {
  const h = createHarness<Context & SessionFlavor<unknown>>();
  const keys: (string | undefined)[] = [];
  h.bot.use(session({ getSessionKey }));
  h.bot.use((ctx) => void keys.push(ctx.sessionKey));
  for (const u of updates) await h.send(u);
  assert.deepEqual(h.errors, []);
  return keys;
}

Deno.test("key strategies", async (t) => {
  const updates = [
    message(-100, "a", { userId: 7 }),
    message(-100, "b", { userId: 7, threadId: 55 }),
    message(9),
    inlineQuery(7),
  ];
  await t.step("perChat is the default and the chat id", async () => {
    assert.deepEqual(await keysOf(perChat, updates), ["-100", "-100", "9", undefined]);
    const h = createHarness<Context & SessionFlavor<unknown>>();
    let key: string | undefined;
    h.bot.use(session());
    h.bot.use((ctx) => void (key = ctx.sessionKey));
    await h.send(message(-100));
    assert.equal(key, "-100");
  });
  await t.step("perUser is the sender's id, chat or not", async () => {
    assert.deepEqual(await keysOf(perUser, updates), ["7", "7", "9", "7"]);
  });
  await t.step("perChatAndUser is user/chat", async () => {
    assert.deepEqual(await keysOf(perChatAndUser, updates), ["7/-100", "7/-100", "9/9", undefined]);
  });
  await t.step("perForumTopic is chat/topic in topics and the chat elsewhere", async () => {
    assert.deepEqual(await keysOf(perForumTopic, updates), ["-100", "-100/55", "9", undefined]);
  });
  await t.step("async getSessionKey works", async () => {
    assert.deepEqual(
      await keysOf(async (ctx) => await Promise.resolve(`x${ctx.chatId}`), [message(3)]),
      ["x3"],
    );
  });
});

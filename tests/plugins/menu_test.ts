/**
 * `@grammyjs/menu` with labels and a dynamic range read from the session, on
 * grammY's built-in `session()`/`lazySession()` and on sessionkit's, side by
 * side. Button presses (callback queries built from the keyboard the bot last
 * sent) change the session and re-render the menu through
 * `editMessageReplyMarkup` and `editMessageText`; a press on a stale keyboard
 * is answered as outdated; a second chat interleaves; a restart (new Bot on
 * the same storage) renders the stored state. Every API call the bot makes and
 * what is stored are the same; only the number of writes differs, as
 * documented.
 */
import assert from "node:assert/strict";
import { Menu } from "npm:@grammyjs/menu@^1";
import {
  type Context,
  lazySession as grammyLazySession,
  type MiddlewareFn,
  session as grammySession,
} from "npm:grammy@^1.46";
import type { InlineKeyboardButton, Update } from "npm:grammy@^1.46/types";
import { lazySession, session, type StorageAdapter } from "../../mod.ts";
import { createHarness, type Harness, message } from "../helpers/bot.ts";
import { JsonAdapter } from "../helpers/defects_storage.ts";

type Data = { notify: boolean; items: string[]; added: number };
// deno-lint-ignore no-explicit-any
type Ctx = Context & { session: any };
type Lib = "grammY" | "sessionkit";
type Kind = "strict" | "lazy";

function sessionOf(lib: Lib, kind: Kind, storage: StorageAdapter<Data>): MiddlewareFn<Ctx> {
  const make = lib === "grammY"
    ? (kind === "strict" ? grammySession : grammyLazySession)
    : (kind === "strict" ? session : lazySession);
  const options = { initial: (): Data => ({ notify: false, items: [], added: 0 }), storage };
  return (make as (o: typeof options) => unknown)(options) as MiddlewareFn<Ctx>;
}

/** `await` works on both kinds: strict gives the value, lazy a promise of it. */
const data = async (ctx: Ctx): Promise<Data> => await ctx.session;
const onOff = (on: boolean) => (on ? "on" : "off");

function startBot(lib: Lib, kind: Kind, storage: StorageAdapter<Data>): Harness<Ctx> {
  const menu = new Menu<Ctx>("settings")
    .text(
      async (ctx) => `Notifications: ${onOff((await data(ctx)).notify)}`,
      async (ctx) => {
        const s = await data(ctx);
        s.notify = !s.notify;
        // The menu plugin adds the re-rendered keyboard to this call.
        await ctx.editMessageText(`Notifications are ${onOff(s.notify)}`);
      },
    )
    .row()
    .dynamic(async (ctx, range) => {
      for (const item of (await data(ctx)).items) {
        range.text(`Remove ${item}`, async (ctx) => {
          const s = await data(ctx);
          s.items = s.items.filter((i) => i !== item);
          ctx.menu.update();
        }).row();
      }
    })
    .text("Add", async (ctx) => {
      const s = await data(ctx);
      s.items.push(`item ${++s.added}`);
      ctx.menu.update();
    });
  const h = createHarness<Ctx>();
  h.bot.use(sessionOf(lib, kind, storage));
  h.bot.use(menu);
  h.bot.command("settings", (ctx) => ctx.reply("Settings", { reply_markup: menu }));
  return h;
}

type Keyboard = InlineKeyboardButton[][];

/** What a user of `chat` sees: the id of the menu message and its keyboards, newest last. */
function screens(h: Harness<Ctx>, chat: number): { messageId: number; keyboards: Keyboard[] } {
  let messageId = 0;
  const keyboards: Keyboard[] = [];
  h.calls.forEach((call, i) => {
    if (call.payload.chat_id !== chat) return;
    const markup = call.payload.reply_markup as { inline_keyboard?: Keyboard } | undefined;
    if (call.method === "sendMessage") {
      // The harness numbers the messages it sends 1, 2, ...
      messageId = h.calls.slice(0, i + 1).filter((c) => c.method === "sendMessage").length;
    }
    if (markup?.inline_keyboard !== undefined) keyboards.push(markup.inline_keyboard);
  });
  return { messageId, keyboards };
}

let queryId = 0;

/** A press on the button labelled `label` of the keyboard `age` screens back (0: the newest). */
function press(h: Harness<Ctx>, chat: number, label: string, age = 0): Update {
  const { messageId, keyboards } = screens(h, chat);
  const keyboard = keyboards[keyboards.length - 1 - age];
  const button = keyboard?.flat().find((b) => b.text === label);
  if (button === undefined || !("callback_data" in button)) {
    throw new Error(`no button "${label}" in chat ${chat}: ${JSON.stringify(keyboard)}`);
  }
  const user = { id: chat, is_bot: false, first_name: "User" };
  return {
    update_id: 100_000 + ++queryId,
    callback_query: {
      id: String(queryId),
      from: user,
      chat_instance: String(chat),
      data: button.callback_data,
      message: {
        message_id: messageId,
        date: 0,
        chat: { id: chat, type: "private", first_name: "User" },
        text: "Settings",
      },
    },
  } as Update;
}

/** Every API call, reduced to what a user sees: method, chat, text and button labels. */
function seen(h: Harness<Ctx>): string[] {
  return h.calls.map(({ method, payload }) => {
    const markup = payload.reply_markup as { inline_keyboard?: Keyboard } | undefined;
    const labels = markup?.inline_keyboard?.map((row) => row.map((b) => b.text).join(" | "));
    const text = payload.text === undefined ? "" : ` "${payload.text}"`;
    const chat = payload.chat_id === undefined ? "" : ` chat ${payload.chat_id}`;
    return `${method}${chat}${text}${labels === undefined ? "" : ` [${labels.join(" / ")}]`}`;
  });
}

async function flow(lib: Lib, kind: Kind) {
  const storage = new JsonAdapter<Data>();
  const h = startBot(lib, kind, storage);
  await h.send(message(1, "/settings"));
  await h.send(press(h, 1, "Add"));
  await h.send(message(2, "/settings"));
  await h.send(press(h, 1, "Add"));
  await h.send(press(h, 2, "Notifications: off"));
  await h.send(press(h, 1, "Notifications: off"));
  await h.send(press(h, 1, "Remove item 1"));
  // The keyboard before the last two presses still says "off": outdated now.
  await h.send(press(h, 1, "Notifications: off", 2));
  const writesBefore = storage.counts.write;
  const restarted = startBot(lib, kind, storage);
  await restarted.send(message(1, "/settings"));
  return {
    seen: seen(h),
    afterRestart: seen(restarted),
    errors: [...h.errors, ...restarted.errors].map((e) => String(e.error)),
    stored: { 1: storage.get("1"), 2: storage.get("2") },
    writes: [writesBefore, storage.counts.write - writesBefore],
  };
}

Deno.test("menu: labels and a dynamic range from the session, re-rendered on each press", async (t) => {
  for (const kind of ["strict", "lazy"] as const) {
    await t.step(kind, async () => {
      const grammy = await flow("grammY", kind);
      const kit = await flow("sessionkit", kind);
      assert.deepEqual(grammy, {
        seen: [
          'sendMessage chat 1 "Settings" [Notifications: off / Add]',
          "answerCallbackQuery",
          "editMessageReplyMarkup chat 1 [Notifications: off / Remove item 1 / Add]",
          'sendMessage chat 2 "Settings" [Notifications: off / Add]',
          "answerCallbackQuery",
          "editMessageReplyMarkup chat 1 [Notifications: off / Remove item 1 / Remove item 2 / Add]",
          "answerCallbackQuery",
          'editMessageText chat 2 "Notifications are on" [Notifications: on / Add]',
          "answerCallbackQuery",
          'editMessageText chat 1 "Notifications are on" ' +
          "[Notifications: on / Remove item 1 / Remove item 2 / Add]",
          "answerCallbackQuery",
          "editMessageReplyMarkup chat 1 [Notifications: on / Remove item 2 / Add]",
          'answerCallbackQuery "Menu was outdated, try again!"',
          "editMessageReplyMarkup chat 1 [Notifications: on / Remove item 2 / Add]",
        ],
        afterRestart: [
          'sendMessage chat 1 "Settings" [Notifications: on / Remove item 2 / Add]',
        ],
        errors: [],
        stored: {
          1: { notify: true, items: ["item 2"], added: 2 },
          2: { notify: true, items: [], added: 0 },
        },
        writes: [8, 1],
      });
      assert.deepEqual(
        kit,
        { ...grammy, writes: [5, 0] },
        "documented difference: sessionkit writes only changed sessions (not the two " +
          "/settings, not the outdated press, not the read after the restart)",
      );
    });
  }
});

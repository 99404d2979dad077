/**
 * `@grammyjs/router` routing on a session field (`step`) through a
 * three-step sign-up flow, on grammY's built-in `session()`/`lazySession()`
 * and on sessionkit's, side by side: three chats interleave their steps, one
 * re-asks on bad input, one never starts, and the bot is restarted (a new
 * Bot on the same storage) in the middle. Replies per chat and what is stored
 * are the same; only the number of writes differs, as documented.
 */
import assert from "node:assert/strict";
import { Router } from "npm:@grammyjs/router@^2";
import {
  type Context,
  lazySession as grammyLazySession,
  type MiddlewareFn,
  session as grammySession,
} from "npm:grammy@^1.46";
import type { Update } from "npm:grammy@^1.46/types";
import { lazySession, session, type StorageAdapter } from "../../mod.ts";
import { createHarness, type Harness, message } from "../helpers/bot.ts";
import { JsonAdapter } from "../helpers/defects_storage.ts";

type Step = "idle" | "name" | "age" | "done";
type Data = { step: Step; name?: string; age?: number };
// deno-lint-ignore no-explicit-any
type Ctx = Context & { session: any };
type Lib = "grammY" | "sessionkit";
type Kind = "strict" | "lazy";

function sessionOf(lib: Lib, kind: Kind, storage: StorageAdapter<Data>): MiddlewareFn<Ctx> {
  const make = lib === "grammY"
    ? (kind === "strict" ? grammySession : grammyLazySession)
    : (kind === "strict" ? session : lazySession);
  const options = { initial: (): Data => ({ step: "idle" }), storage };
  return (make as (o: typeof options) => unknown)(options) as MiddlewareFn<Ctx>;
}

/** `await` works on both kinds: strict gives the value, lazy a promise of it. */
const data = async (ctx: Ctx): Promise<Data> => await ctx.session;

function startBot(lib: Lib, kind: Kind, storage: StorageAdapter<Data>): Harness<Ctx> {
  const h = createHarness<Ctx>();
  h.bot.use(sessionOf(lib, kind, storage));
  h.bot.command("start", async (ctx) => {
    (await data(ctx)).step = "name";
    await ctx.reply("What is your name?");
  });
  const router = new Router<Ctx>(async (ctx) => (await data(ctx)).step);
  router.route("name", async (ctx) => {
    const s = await data(ctx);
    s.name = ctx.msg?.text;
    s.step = "age";
    await ctx.reply(`How old are you, ${s.name}?`);
  });
  router.route("age", async (ctx) => {
    const s = await data(ctx);
    const age = Number(ctx.msg?.text);
    if (!Number.isInteger(age)) return void await ctx.reply("A whole number, please.");
    s.age = age;
    s.step = "done";
    await ctx.reply(`Thanks, ${s.name} (${age}).`);
  });
  router.otherwise((ctx) => ctx.reply("Send /start to sign up."));
  h.bot.use(router);
  return h;
}

/** Chat id → the texts the bot sent there, in order. */
function byChat(harnesses: Harness<Ctx>[]): Record<number, string[]> {
  const out: Record<number, string[]> = {};
  for (const h of harnesses) {
    for (const call of h.calls.filter((c) => c.method === "sendMessage")) {
      (out[call.payload.chat_id as number] ??= []).push(String(call.payload.text));
    }
  }
  return out;
}

async function flow(lib: Lib, kind: Kind) {
  const storage = new JsonAdapter<Data>();
  const before: Update[] = [
    message(1, "/start"),
    message(2, "/start"),
    message(1, "Ann"),
    message(3, "hello"), // never started: the router's otherwise
    message(2, "Bob"),
    message(1, "thirty"), // bad input: stays on "age"
  ];
  const after: Update[] = [
    message(2, "40"),
    message(1, "30"),
    message(3, "/start"),
    message(1, "again?"), // done: otherwise
    message(3, "Cy"),
  ];
  const first = startBot(lib, kind, storage);
  for (const u of before) await first.send(u);
  const midway = { 1: storage.get("1"), 2: storage.get("2"), 3: storage.get("3") };
  const second = startBot(lib, kind, storage); // the restart
  for (const u of after) await second.send(u);
  return {
    replies: byChat([first, second]),
    errors: [...first.errors, ...second.errors].map((e) => String(e.error)),
    midway,
    stored: { 1: storage.get("1"), 2: storage.get("2"), 3: storage.get("3") },
    writes: storage.counts.write,
  };
}

Deno.test("router: a multi-step flow routed on ctx.session.step, three chats interleaved", async (t) => {
  for (const kind of ["strict", "lazy"] as const) {
    await t.step(kind, async () => {
      const grammy = await flow("grammY", kind);
      const kit = await flow("sessionkit", kind);
      assert.deepEqual(grammy, {
        replies: {
          1: [
            "What is your name?",
            "How old are you, Ann?",
            "A whole number, please.",
            "Thanks, Ann (30).",
            "Send /start to sign up.",
          ],
          2: ["What is your name?", "How old are you, Bob?", "Thanks, Bob (40)."],
          3: ["Send /start to sign up.", "What is your name?", "How old are you, Cy?"],
        },
        errors: [],
        midway: {
          1: { step: "age", name: "Ann" },
          2: { step: "age", name: "Bob" },
          3: { step: "idle" },
        },
        stored: {
          1: { step: "done", name: "Ann", age: 30 },
          2: { step: "done", name: "Bob", age: 40 },
          3: { step: "age", name: "Cy" },
        },
        writes: 11,
      });
      assert.deepEqual(
        kit,
        { ...grammy, midway: { ...grammy.midway, 3: undefined }, writes: 8 },
        "documented difference: sessionkit writes only changed sessions (8 of 11 updates: " +
          "not the bad input, not the two that hit otherwise), so chat 3's untouched initial " +
          "value was never stored",
      );
    });
  }
});

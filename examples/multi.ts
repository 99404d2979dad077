/**
 * Multi sessions: several independent pieces of session data on one
 * context, each with its own key, storage and initial value. Here a score per
 * chat (shared by everyone in a group) and settings per user (the same in
 * every chat the user writes in), in two prefixes of one Deno KV database.
 *
 * /point adds a point to the chat's score, /score shows it, /lang en|de sets
 * your language everywhere.
 *
 * Run it with a token from @BotFather:
 *
 *   BOT_TOKEN=123:abc deno run -A examples/multi.ts
 *
 * (From outside this repository, add --unstable-kv.) Sessions go to Deno's
 * default local database, or to the file named by KV_PATH.
 */

import { Bot, type Context } from "npm:grammy@^1.46/web";
import { perUser, session, type SessionFlavor } from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";

interface Data {
  chat: { score: number };
  user: { lang: "en" | "de" };
}
type MyContext = Context & SessionFlavor<Data>;

const token = Deno.env.get("BOT_TOKEN");
if (!token) throw new Error("Set BOT_TOKEN to your bot's token from @BotFather.");

const kv = await Deno.openKv(Deno.env.get("KV_PATH"));
const bot = new Bot<MyContext>(token, { client: { apiRoot: Deno.env.get("TELEGRAM_API_ROOT") } });

bot.use(session({
  type: "multi",
  chat: {
    initial: () => ({ score: 0 }),
    storage: new DenoKvStorage(kv, { prefix: ["examples", "multi", "chat"] }),
  },
  user: {
    initial: () => ({ lang: "en" as const }),
    getSessionKey: perUser,
    storage: new DenoKvStorage(kv, { prefix: ["examples", "multi", "user"] }),
  },
}));

const texts = {
  en: (score: number) => `The score of this chat is ${score}.`,
  de: (score: number) => `Der Punktestand in diesem Chat ist ${score}.`,
};

bot.command("point", async (ctx) => {
  ctx.session.chat.score++;
  await ctx.reply(texts[ctx.session.user.lang](ctx.session.chat.score));
});
bot.command("score", (ctx) => ctx.reply(texts[ctx.session.user.lang](ctx.session.chat.score)));
bot.command("lang", async (ctx) => {
  if (ctx.match !== "en" && ctx.match !== "de") {
    return await ctx.reply("Usage: /lang en or /lang de");
  }
  ctx.session.user.lang = ctx.match; // only the user fragment is written
  await ctx.reply(ctx.match === "en" ? "Language: English" : "Sprache: Deutsch");
});

Deno.addSignalListener("SIGINT", () => bot.stop());
await bot.start({ onStart: (me) => console.log(`@${me.username} is running. Ctrl+C stops.`) });
kv.close();

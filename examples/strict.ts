/**
 * Strict sessions: `ctx.session` is loaded before your handlers run and
 * written back afterwards, only if it changed. A counter per chat, kept in
 * Deno KV so it survives restarts.
 *
 * Run it with a token from @BotFather:
 *
 *   BOT_TOKEN=123:abc deno run -A examples/strict.ts
 *
 * (From outside this repository, add --unstable-kv: the repository's
 * deno.json turns Deno KV on for you.) Sessions go to Deno's default local
 * database, or to the file named by KV_PATH.
 */

import { Bot, type Context } from "npm:grammy@^1.46/web";
import { session, type SessionFlavor } from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";

interface Counter {
  count: number;
}
type MyContext = Context & SessionFlavor<Counter>;

const token = Deno.env.get("BOT_TOKEN");
if (!token) throw new Error("Set BOT_TOKEN to your bot's token from @BotFather.");

const kv = await Deno.openKv(Deno.env.get("KV_PATH")); // unset: Deno's default local database
const bot = new Bot<MyContext>(token, { client: { apiRoot: Deno.env.get("TELEGRAM_API_ROOT") } });

bot.use(session({
  initial: (): Counter => ({ count: 0 }),
  storage: new DenoKvStorage<Counter>(kv, { prefix: ["examples", "strict"] }),
}));

bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
bot.command("reset", reset);
bot.on("message", (ctx) => ctx.reply("Send /count or /reset."));

// Typed with MyContext: TypeScript only accepts `ctx.session = undefined`
// on the plain context type, not on the narrowed one of bot.command's
// handlers (the same holds for grammY's own session).
async function reset(ctx: MyContext): Promise<void> {
  ctx.session = undefined; // deletes the stored session
  await ctx.reply("Forgotten. /count starts at 1 again.");
}

Deno.addSignalListener("SIGINT", () => bot.stop());
await bot.start({ onStart: (me) => console.log(`@${me.username} is running. Ctrl+C stops.`) });
kv.close();

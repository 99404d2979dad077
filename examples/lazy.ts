/**
 * Lazy sessions: `ctx.session` is a promise, and storage is read only when a
 * handler awaits it. Updates that never touch the session (here: every
 * message that is not /note or /notes) cost no storage I/O at all.
 *
 * A note-taking bot: /note <text> saves a note in this chat, /notes lists
 * them, anything else is echoed without reading storage.
 *
 * Run it with a token from @BotFather:
 *
 *   BOT_TOKEN=123:abc deno run -A examples/lazy.ts
 *
 * (From outside this repository, add --unstable-kv.) Sessions go to Deno's
 * default local database, or to the file named by KV_PATH.
 */

import { Bot, type Context } from "npm:grammy@^1.46/web";
import { lazySession, type LazySessionFlavor } from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";

interface Notes {
  notes: string[];
}
type MyContext = Context & LazySessionFlavor<Notes>;

const token = Deno.env.get("BOT_TOKEN");
if (!token) throw new Error("Set BOT_TOKEN to your bot's token from @BotFather.");

const kv = await Deno.openKv(Deno.env.get("KV_PATH"));
const bot = new Bot<MyContext>(token, { client: { apiRoot: Deno.env.get("TELEGRAM_API_ROOT") } });

bot.use(lazySession({
  initial: (): Notes => ({ notes: [] }),
  storage: new DenoKvStorage<Notes>(kv, {
    prefix: ["examples", "lazy"],
    ttl: 30 * 24 * 60 * 60 * 1000, // forget chats idle for 30 days
  }),
}));

bot.command("note", async (ctx) => {
  if (ctx.match === "") return await ctx.reply("Usage: /note buy milk");
  const data = await ctx.session; // the only place that reads storage
  data.notes.push(ctx.match);
  await ctx.reply(`Saved. ${data.notes.length} note(s) in this chat.`);
});

bot.command("notes", async (ctx) => {
  const { notes } = await ctx.session;
  await ctx.reply(notes.length === 0 ? "No notes yet." : notes.map((n) => `• ${n}`).join("\n"));
});

// No `await ctx.session` here, so no storage read for these updates.
bot.on("message:text", (ctx) => ctx.reply(`You said: ${ctx.message.text}`));

Deno.addSignalListener("SIGINT", () => bot.stop());
await bot.start({ onStart: (me) => console.log(`@${me.username} is running. Ctrl+C stops.`) });
kv.close();

/**
 * A Telegram bot for Deno Deploy that keeps its sessions in Deno KV.
 *
 * Telegram delivers updates to a webhook served with `Deno.serve`; sessions
 * are lazy (no KV access for updates that do not touch `ctx.session`) and
 * expire after 30 days without use.
 *
 * Deploy:
 *   1. Create a project on Deno Deploy with this file as the entry point
 *      (for example `deployctl deploy --project=my-bot examples/deno_deploy.ts`).
 *      Deno KV needs no setup there: `Deno.openKv()` opens the project's database.
 *   2. Set the environment variables BOT_TOKEN (from @BotFather) and
 *      WEBHOOK_SECRET (any random string of A-Z, a-z, 0-9, _ and -).
 *   3. Point Telegram at the deployment once:
 *      curl "https://api.telegram.org/bot$BOT_TOKEN/setWebhook?url=https://my-bot.deno.dev/&secret_token=$WEBHOOK_SECRET"
 *
 * Run locally (KV is then a SQLite file next to Deno's cache, or the file
 * named by KV_PATH; the port is 8000, or PORT; expose it with a tunnel and
 * call setWebhook with its URL):
 *   BOT_TOKEN=... WEBHOOK_SECRET=... deno run --unstable-kv --allow-net \
 *     --allow-env --allow-sys --allow-read --allow-write examples/deno_deploy.ts
 *
 * @module
 */

import { Bot, type Context, webhookCallback } from "npm:grammy@^1.46/web";
import { lazySession, type LazySessionFlavor } from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";

interface SessionData {
  count: number;
  notes: string[];
}
type MyContext = Context & LazySessionFlavor<SessionData>;

const token = Deno.env.get("BOT_TOKEN");
if (!token) {
  throw new Error("Set the BOT_TOKEN environment variable to the token @BotFather gave you.");
}

const bot = new Bot<MyContext>(token, { client: { apiRoot: Deno.env.get("TELEGRAM_API_ROOT") } });
const kv = await Deno.openKv(Deno.env.get("KV_PATH")); // on Deno Deploy: the project's database

bot.use(lazySession({
  initial: (): SessionData => ({ count: 0, notes: [] }),
  storage: new DenoKvStorage<SessionData>(kv, {
    prefix: ["bot", "sessions"],
    ttl: 30 * 24 * 60 * 60 * 1000,
  }),
}));

bot.command(
  "start",
  (ctx) => ctx.reply("Send /count to count, /note <text> to keep a note, /notes to list them."),
);

bot.command("count", async (ctx) => {
  const session = await ctx.session;
  session.count++;
  await ctx.reply(`Count: ${session.count}`);
});

bot.command("note", async (ctx) => {
  if (!ctx.match) return await ctx.reply("Usage: /note <text>");
  (await ctx.session).notes.push(ctx.match);
  await ctx.reply("Noted.");
});

bot.command("notes", async (ctx) => {
  const { notes } = await ctx.session;
  await ctx.reply(notes.length === 0 ? "No notes yet." : notes.join("\n"));
});

// Updates that never await ctx.session cost no KV access at all.
bot.on("message", (ctx) => ctx.reply("Try /count or /note."));

const handleUpdate = webhookCallback(bot, "std/http", {
  secretToken: Deno.env.get("WEBHOOK_SECRET"),
});

Deno.serve({ port: Number(Deno.env.get("PORT") ?? 8000) }, async (req) => {
  if (req.method === "POST" && new URL(req.url).pathname === "/") {
    try {
      return await handleUpdate(req);
    } catch (err) {
      console.error(err);
      return new Response("update failed", { status: 500 });
    }
  }
  return new Response("sessionkit Deno Deploy example: POST updates to /", { status: 200 });
});

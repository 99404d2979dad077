/**
 * A counter bot keeping its sessions in PostgreSQL, with long polling.
 *
 * Run it with:
 *
 *   BOT_TOKEN=123:abc DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
 *     deno run --allow-net --allow-env --allow-sys examples/postgres_bot.ts
 *
 * The table `bot_sessions` (or the one in SESSION_TABLE) is created on first
 * use. Sessions untouched for 30 days expire. Send /count, /reset or /stats.
 */
import { Bot, type Context } from "npm:grammy@^1.46/web";
import { session, type SessionFlavor } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";

interface Counter {
  count: number;
}
type MyContext = Context & SessionFlavor<Counter>;

const token = Deno.env.get("BOT_TOKEN");
if (!token) throw new Error("Set BOT_TOKEN to the token @BotFather gave you.");

const storage = PostgresStorage.connect<Counter>(
  Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test",
  { table: Deno.env.get("SESSION_TABLE") ?? "bot_sessions", ttl: 30 * 24 * 60 * 60 * 1000 },
);

const bot = new Bot<MyContext>(token, { client: { apiRoot: Deno.env.get("TELEGRAM_API_ROOT") } });
bot.use(session({ initial: (): Counter => ({ count: 0 }), storage }));

bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
bot.command("reset", (ctx) => {
  ctx.session = { count: 0 };
  return ctx.reply("Back to zero.");
});
bot.command("stats", async (ctx) => {
  // Pages through the table by key; never loads it all at once.
  let chats = 0;
  let total = 0;
  for await (const counter of storage.readAllValues()) {
    chats++;
    total += counter.count;
  }
  await ctx.reply(`${chats} chats have counted to ${total} together.`);
});
bot.catch((err) => console.error("update failed:", err.error));

// Ctrl+C stops polling; once the update in hand is saved, bot.start()
// returns and the connections are closed.
Deno.addSignalListener("SIGINT", () => bot.stop());
Deno.addSignalListener("SIGTERM", () => bot.stop());

try {
  await bot.start({ onStart: (me) => console.log(`@${me.username} is running`) });
} finally {
  await storage.close();
}

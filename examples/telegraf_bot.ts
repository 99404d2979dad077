/**
 * A Telegraf 4 counter bot keeping its sessions in a SQLite file through a
 * sessionkit storage, with long polling. Telegraf's own `session()`
 * middleware does the work; `telegrafStore` makes the sessionkit storage its
 * store.
 *
 * Run it with:
 *
 *   BOT_TOKEN=123:abc deno run --allow-net --allow-env --allow-sys --allow-read \
 *     --allow-write examples/telegraf_bot.ts
 *
 * The database file is `telegraf_sessions.db` (or the path in SQLITE_PATH),
 * the table `telegraf_sessions`; sessions are keyed as Telegraf keys them,
 * `<user id>:<chat id>`. Send /count, /reset or /stats. Stop it with Ctrl+C:
 * Telegraf finishes the updates in hand, then the database is closed.
 * docs/telegraf.md says what the store adds and what it cannot fix.
 */
import { DatabaseSync } from "node:sqlite";
import { type Context, session, Telegraf } from "npm:telegraf@^4.16";
import { telegrafStore } from "../mod.ts";
import { SqliteStorage } from "../storages/sqlite.ts";

interface Counter {
  count: number;
}
interface MyContext extends Context {
  session?: Counter;
}

const token = Deno.env.get("BOT_TOKEN");
if (!token) throw new Error("Set BOT_TOKEN to the token @BotFather gave you.");

const db = new DatabaseSync(Deno.env.get("SQLITE_PATH") ?? "telegraf_sessions.db");
db.exec("PRAGMA journal_mode = WAL");
const storage = new SqliteStorage<Counter>(db, { table: "telegraf_sessions" });

const apiRoot = Deno.env.get("TELEGRAM_API_ROOT");
const bot = new Telegraf<MyContext>(token, apiRoot ? { telegram: { apiRoot } } : {});
bot.use(session({ store: telegrafStore(storage), defaultSession: (): Counter => ({ count: 0 }) }));

bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session!.count}`));
bot.command("reset", (ctx) => {
  ctx.session = undefined; // Telegraf deletes the stored session
  return ctx.reply("Forgotten. /count starts at 1 again.");
});
bot.command("stats", async (ctx) => {
  let sessions = 0;
  let total = 0;
  for await (const counter of storage.readAllValues()) {
    sessions++;
    total += counter.count;
  }
  await ctx.reply(`${sessions} sessions have counted to ${total} together.`);
});
bot.catch((err, ctx) => console.error(`Update ${ctx.update.update_id} failed:`, err));

Deno.addSignalListener("SIGINT", () => bot.stop("SIGINT"));
Deno.addSignalListener("SIGTERM", () => bot.stop("SIGTERM"));

try {
  // Resolves once polling has stopped and the updates in hand are done.
  await bot.launch(() => console.log(`@${bot.botInfo?.username} is counting.`));
} finally {
  db.close();
}

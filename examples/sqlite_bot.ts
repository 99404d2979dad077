/**
 * A counter bot keeping its sessions in a SQLite file through `node:sqlite`
 * (built into Deno 2; nothing to install), with long polling.
 *
 * Run it with:
 *
 *   BOT_TOKEN=123:abc deno run --allow-net --allow-env --allow-sys --allow-read \
 *     --allow-write examples/sqlite_bot.ts
 *
 * Without BOT_TOKEN it drives itself with made-up updates instead (API calls
 * are answered locally), prints what it stored, and exits:
 *
 *   deno run --allow-env --allow-read --allow-write examples/sqlite_bot.ts
 *
 * The database file is `sessions.db` (or the path in SQLITE_PATH); it is
 * switched to WAL mode, so more bot processes can share it. The table
 * `bot_sessions` is created on first use. Sessions untouched for 30 days
 * expire. Send /count, /reset or /stats.
 */
import { DatabaseSync } from "node:sqlite";
import { Bot, type Context } from "npm:grammy@^1.46/web";
import type { UserFromGetMe } from "npm:grammy@^1.46/types";
import { session, type SessionFlavor } from "../mod.ts";
import { SqliteStorage } from "../storages/sqlite.ts";

interface Counter {
  count: number;
}
type MyContext = Context & SessionFlavor<Counter>;

const token = Deno.env.get("BOT_TOKEN");
const path = Deno.env.get("SQLITE_PATH") ?? "sessions.db";

const db = new DatabaseSync(path);
// WAL lets readers and one writer work at once, across processes; it is a
// property of the file, kept once set. NORMAL is safe with WAL (a power cut
// may lose the last writes, never corrupt the file) and skips an fsync per write.
db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
const storage = new SqliteStorage<Counter>(db, {
  table: "bot_sessions",
  ttl: 30 * 24 * 60 * 60 * 1000,
});

const bot = new Bot<MyContext>(token ?? "0:offline", {
  // Offline, the bot needs no getMe call.
  botInfo: token ? undefined : {
    id: 1,
    is_bot: true,
    first_name: "Counter",
    username: "counter_bot",
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
    has_topics_enabled: false,
    allows_users_to_create_topics: false,
  } as UserFromGetMe, // the fields grammY's version of the type asks for vary
  client: { apiRoot: Deno.env.get("TELEGRAM_API_ROOT") },
});
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

if (token) {
  // Ctrl+C stops polling; once the update in hand is saved, bot.start()
  // returns and the database is closed.
  Deno.addSignalListener("SIGINT", () => bot.stop());
  Deno.addSignalListener("SIGTERM", () => bot.stop());
  try {
    await bot.start({ onStart: (me) => console.log(`@${me.username} is running on ${path}`) });
  } finally {
    db.close();
  }
} else {
  // Answer API calls locally and print the replies.
  bot.api.config.use((_prev, method, payload) => {
    if (method === "sendMessage") console.log(`bot: ${(payload as { text: string }).text}`);
    // deno-lint-ignore no-explicit-any
    return Promise.resolve({ ok: true, result: true } as any);
  });
  let id = 0;
  const send = (chat: number, text: string) => {
    console.log(`chat ${chat}: ${text}`);
    return bot.handleUpdate({
      update_id: ++id,
      message: {
        message_id: id,
        date: Math.floor(Date.now() / 1000),
        chat: { id: chat, type: "private", first_name: "Ann" },
        from: { id: chat, is_bot: false, first_name: "Ann" },
        text,
        entities: text.startsWith("/")
          ? [{ type: "bot_command", offset: 0, length: text.split(" ")[0].length }]
          : undefined,
      },
    });
  };
  await send(7, "/count");
  await send(7, "/count");
  await send(8, "/count");
  await send(8, "/stats");
  console.log(`stored for chat 7 in ${path}:`, storage.read("7"));
  db.close();
}

/**
 * A counter bot keeping its sessions in Redis, with long polling.
 *
 * Run it with:
 *
 *   BOT_TOKEN=123:abc REDIS_URL=redis://127.0.0.1:6379 \
 *     deno run --allow-net --allow-env --allow-sys examples/redis_bot.ts
 *
 * Sessions live at `counter:<chat id>` (or under the prefix in REDIS_PREFIX)
 * as JSON text and expire after 30 days without an update. Send /count,
 * /reset or /stats. Stop it with Ctrl+C: the bot stops polling and the Redis
 * connection is closed.
 */
import { Bot, type Context } from "npm:grammy@^1.46/web";
import { session, type SessionFlavor } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";

interface Counter {
  count: number;
}
type MyContext = Context & SessionFlavor<Counter>;

const token = Deno.env.get("BOT_TOKEN");
if (!token) throw new Error("Set BOT_TOKEN to the token @BotFather gave you.");

// The storage opens this connection, so storage.close() closes it.
const storage = await RedisStorage.connect<Counter>(
  Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379",
  { prefix: Deno.env.get("REDIS_PREFIX") ?? "counter:", ttl: 30 * 24 * 60 * 60 * 1000 },
);

const bot = new Bot<MyContext>(token, { client: { apiRoot: Deno.env.get("TELEGRAM_API_ROOT") } });
bot.use(session({ initial: (): Counter => ({ count: 0 }), storage }));

bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
bot.command("reset", (ctx) => {
  ctx.session = { count: 0 };
  return ctx.reply("Back to zero.");
});
bot.command("stats", async (ctx) => {
  // SCAN + MGET in batches: never loads every key in one go.
  let chats = 0;
  let total = 0;
  for await (const counter of storage.readAllValues()) {
    chats++;
    total += counter.count;
  }
  await ctx.reply(`${chats} chats have counted to ${total} together.`);
});
bot.catch((err) => console.error(`Update ${err.ctx.update.update_id} failed:`, err.error));

// Ctrl+C stops polling; then the Redis connection is closed.
Deno.addSignalListener("SIGINT", () => bot.stop());
Deno.addSignalListener("SIGTERM", () => bot.stop());

try {
  await bot.start({ onStart: (me) => console.log(`@${me.username} is counting.`) });
} finally {
  await storage.close();
}

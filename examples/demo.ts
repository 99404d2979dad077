/**
 * The sessionkit demo: a counter bot whose sessions live in a file-backed
 * Deno KV database at `data/demo.kv`, so they survive restarts.
 *
 * Without a token it needs no network and no servers: it plays a scripted
 * conversation through `bot.handleUpdate` and prints the bot's replies.
 * Run it twice and the second run continues where the first stopped:
 *
 *   deno task demo
 *   deno task demo
 *
 * With a token from @BotFather the same bot runs for real (long polling),
 * with the same stored sessions:
 *
 *   BOT_TOKEN=123:abc deno task demo
 *
 * Delete `data/demo.kv*` to start from zero (or set KV_PATH to use another
 * file).
 */

import { createBot, type DemoStorages, demoStorages } from "./demo/bot.ts";
import { KvCallLog } from "./demo/kv_calls.ts";
import {
  answerLocally,
  type Chat,
  demoBotInfo,
  type Person,
  textMessage,
} from "./demo/telegram.ts";

const kvPath = Deno.env.get("KV_PATH");
const where = kvPath ?? "data/demo.kv";
const dataDir = new URL("../data/", import.meta.url);
if (kvPath === undefined) await Deno.mkdir(dataDir, { recursive: true });
const kv = await Deno.openKv(kvPath ?? filePath(new URL("demo.kv", dataDir)));
// For CI only: with DEMO_COUNTS_FILE set, the calls that reach KV are counted too.
const kvCalls = KvCallLog.fromEnv(kv);
const storages = demoStorages(kvCalls?.kv ?? kv);
const token = Deno.env.get("BOT_TOKEN");

try {
  if (token) await runForReal(token, storages);
  else await runScript(storages);
} finally {
  kv.close();
}

/** Long polling with a real token, until Ctrl+C. */
async function runForReal(token: string, storages: DemoStorages): Promise<void> {
  const bot = createBot(token, storages, {
    client: { apiRoot: Deno.env.get("TELEGRAM_API_ROOT") },
  });
  const stop = () => bot.stop();
  Deno.addSignalListener("SIGINT", stop);
  try {
    await bot.start({
      onStart: (me) => console.log(`@${me.username} is running: send it /count. Ctrl+C stops.`),
    });
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
  }
}

/** The scripted conversation, with a local stand-in for Telegram. */
async function runScript(storages: DemoStorages): Promise<void> {
  console.log(`sessionkit demo: sessions in Deno KV at ${where} (set BOT_TOKEN to go live)\n`);
  await printStoredCounts(storages);

  // Count from here on: the listing above belongs to no update.
  storages.chat.take();
  storages.user.take();
  kvCalls?.reset();
  const bot = createBot("0:demo", storages, { botInfo: demoBotInfo });
  answerLocally(bot, (line) => console.log(`  ${line}`));

  const alice: Person = { id: 101, name: "Alice" };
  const bob: Person = { id: 102, name: "Bob" };
  const aliceChat: Chat = { id: alice.id };
  const bobChat: Chat = { id: bob.id };
  const group: Chat = { id: -200, title: "Counting Club" };

  const script: [Chat, Person, string][] = [
    [aliceChat, alice, "/start"],
    [aliceChat, alice, "/count"],
    [aliceChat, alice, "/count"],
    [aliceChat, alice, "/count"],
    [group, bob, "/count"],
    [group, alice, "/count"],
    [bobChat, bob, "/count"],
    [bobChat, bob, "/reset"],
    [bobChat, bob, "/count"],
    [aliceChat, alice, "/me"],
  ];
  for (const [chat, from, text] of script) {
    const where = chat.title ?? "private chat";
    console.log(`${from.name} (${where})> ${text}`);
    await bot.handleUpdate(textMessage(chat, from, text));
    printStorageUse(storages);
    await kvCalls?.record(text);
  }

  console.log("\nStored now:");
  await printStored(storages);
  console.log("\nRun `deno task demo` again: the counts continue from here.");
}

/** Prints the session reads and writes of the update that just ran. */
function printStorageUse(storages: DemoStorages): void {
  const chat = storages.chat.take();
  const user = storages.user.take();
  const reads = chat.reads + user.reads;
  const writes = chat.writes + user.writes;
  console.log(
    reads + writes === 0
      ? "  (storage reads: 0, lazy session untouched)"
      : `  (storage reads: ${reads}, writes: ${writes})`,
  );
}

async function printStoredCounts(storages: DemoStorages): Promise<void> {
  const counts: string[] = [];
  for await (const [key, data] of storages.chat.readAllEntries()) {
    counts.push(`chat ${key} = ${data.count}`);
  }
  console.log(
    counts.length === 0
      ? `No counts stored yet: this is the first run (or ${where} was deleted).\n`
      : `Counts persisted from the previous run: ${counts.join(", ")}\n`,
  );
}

async function printStored(storages: DemoStorages): Promise<void> {
  for await (const [key, data] of storages.chat.readAllEntries()) {
    console.log(`  chat ${key}: ${JSON.stringify(data)}`);
  }
  for await (const [key, data] of storages.user.readAllEntries()) {
    console.log(`  user ${key}: ${JSON.stringify(data)}`);
  }
}

/** The file system path of a `file:` URL, as `Deno.openKv` wants it. */
function filePath(url: URL): string {
  const path = decodeURIComponent(url.pathname);
  return Deno.build.os === "windows" ? path.slice(1).replaceAll("/", "\\") : path;
}

/**
 * Every example runs as its header comment says.
 *
 * Each test reads the example's header, takes the command written there (no
 * copy of it lives here, so header and test cannot drift apart) and runs it
 * as a real process from the repository root, with a fake token, the Bot API
 * replaced by tests/fixtures/fake_bot_api.ts (HTTPS, as Telegram) through
 * TELEGRAM_API_ROOT, and its storage pointed at this run's own prefix, table
 * or temporary file. Updates go in through `getUpdates` (or the webhook);
 * the test waits for the bot's replies, stops the process with SIGTERM
 * (SIGKILL if it hangs) and reads back what the bot stored with the storage
 * class. Redis, PostgreSQL and MySQL tests are skipped loudly without their
 * server, and fail with CI=true.
 *
 * examples/node_denokv.mjs runs on Node from the `deno pack` tarball: that is
 * .ci/checks/node_pack.sh's job, not this file's.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { Update } from "npm:grammy@^1.46/types";
import { type FakeBotApi, startFakeBotApi } from "./fixtures/fake_bot_api.ts";
import { DenoKvStorage } from "../storages/denokv.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { RedisStorage } from "../storages/redis.ts";
import { SqliteStorage } from "../storages/sqlite.ts";
import { deleteUnder, openAdmin, REDIS_URL, redisTest, uniquePrefix } from "./redis_env.ts";
import * as pgEnv from "./postgres_setup.ts";
import * as myEnv from "./mysql_setup.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const TOKEN = "123456:fake-token-of-the-examples-test";
const REPLY_MS = 20_000;
const STOP_MS = 10_000;
const DAYS_30 = 30 * 24 * 60 * 60 * 1000;
/** Variables the examples read: never inherited from the environment of the test run. */
const CONTROLLED = [
  "BOT_TOKEN",
  "TELEGRAM_API_ROOT",
  "NODE_EXTRA_CA_CERTS",
  "KV_PATH",
  "SQLITE_PATH",
  "REDIS_URL",
  "REDIS_PREFIX",
  "DATABASE_URL",
  "MYSQL_URL",
  "SESSION_TABLE",
  "WEBHOOK_SECRET",
  "PORT",
];

// ---------------------------------------------------------------------------
// The header commands

/** A command of a header comment: its variables and its words. */
interface HeaderCommand {
  line: string;
  env: Record<string, string>;
  argv: string[];
}

/**
 * The `deno ...` commands in the first comment of `file`, in order, with
 * `\` continuations joined and leading `NAME=value` assignments split off.
 * A command that would need a shell to mean what it says is an error.
 */
function headerCommands(file: string): HeaderCommand[] {
  const text = Deno.readTextFileSync(ROOT + file);
  const header = text.match(/^\s*\/\*\*([\s\S]*?)\*\//)?.[1];
  if (header === undefined) throw new Error(`${file} has no header comment`);
  const lines = header.split("\n").map((l) => l.replace(/^\s*\*( |$)/, "").trim());
  const commands: HeaderCommand[] = [];
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    while (line.endsWith("\\") && i + 1 < lines.length) {
      line = line.slice(0, -1).trimEnd() + " " + lines[++i];
    }
    const words = line.split(/\s+/);
    const env: Record<string, string> = {};
    let w = 0;
    for (; w < words.length && /^[A-Z_][A-Z0-9_]*=/.test(words[w]); w++) {
      const at = words[w].indexOf("=");
      env[words[w].slice(0, at)] = words[w].slice(at + 1);
    }
    if (words[w] !== "deno") continue;
    if (/["'`$;&|<>(){}*?#~]/.test(line)) {
      throw new Error(`${file}: the header command needs a shell, keep it plain: ${line}`);
    }
    commands.push({ line, env, argv: words.slice(w) });
  }
  return commands;
}

/** The one header command of `file` that sets BOT_TOKEN (`token`), or the one that does not. */
function headerCommand(file: string, token: boolean): HeaderCommand {
  const all = headerCommands(file);
  const found = all.filter((c) => ("BOT_TOKEN" in c.env) === token);
  assert.ok(
    found.length > 0,
    `${file}: no header command ${token ? "with" : "without"} BOT_TOKEN in ${
      JSON.stringify(all.map((c) => c.line))
    }`,
  );
  // The same command twice (demo.ts: "run it twice") is one command.
  assert.equal(new Set(found.map((c) => c.line)).size, 1, `${file}: which command? ${found}`);
  if (found[0].argv[1] === "run") {
    assert.ok(found[0].argv.includes(file), `${file}: its header command runs another file`);
  }
  return found[0];
}

// ---------------------------------------------------------------------------
// Running a command

/** A running example: its output so far, and how it ended. */
class Proc {
  stdout = "";
  stderr = "";
  exited = false;
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<unknown>;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(readonly command: HeaderCommand, env: Record<string, string>) {
    const base = Deno.env.toObject();
    for (const name of CONTROLLED) delete base[name];
    const [program, ...args] = command.argv;
    this.#child = new Deno.Command(program === "deno" ? Deno.execPath() : program, {
      args,
      cwd: ROOT,
      clearEnv: true,
      // The header's placeholders (BOT_TOKEN=123:abc), then this run's values.
      env: { ...base, NO_COLOR: "1", ...command.env, ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.#child.status.then((s) => {
      this.exited = true;
      return s;
    });
    const read = async (stream: ReadableStream<Uint8Array>, to: "stdout" | "stderr") => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) this[to] += chunk;
    };
    this.#reading = Promise.all([
      read(this.#child.stdout, "stdout"),
      read(this.#child.stderr, "stderr"),
    ]);
  }

  /** What it printed, for failure messages. */
  output(): string {
    return `\n--- command: ${this.command.line}\n--- stdout:\n${this.stdout}\n--- stderr:\n${this.stderr}`;
  }

  /** Waits for `done`, failing at once (with the output) if the process exits first. */
  async until(done: Promise<unknown>): Promise<void> {
    const first = await Promise.race([done.then(() => undefined), this.status]).catch((err) => {
      throw new Error(`${(err as Error).message}${this.output()}`);
    });
    if (first !== undefined) {
      throw new Error(`the example exited early (code ${first.code})${this.output()}`);
    }
  }

  /** Runs to its end, as a command that exits by itself; bounded by `ms`. */
  async finish(ms = REPLY_MS): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => this.#kill("SIGKILL"), ms);
    try {
      const status = await this.status;
      await this.#reading;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, then SIGKILL after {@link STOP_MS}; the status, and whether SIGKILL was needed. */
  async stop(): Promise<{ status: Deno.CommandStatus; killed: boolean }> {
    let killed = false;
    this.#kill("SIGTERM");
    const timer = setTimeout(() => {
      killed = true;
      this.#kill("SIGKILL");
    }, STOP_MS);
    try {
      const status = await this.status;
      await this.#reading;
      return { status, killed };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal`, if it still runs. */
  signal(signal: Deno.Signal): void {
    this.#kill(signal);
  }

  #kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Runs `command` to its end with `env`; fails with its output unless it exits with 0. */
async function runToEnd(command: HeaderCommand, env: Record<string, string>): Promise<string> {
  const proc = new Proc(command, env);
  const status = await proc.finish();
  assert.equal(status.code, 0, `the example failed${proc.output()}`);
  return proc.stdout;
}

/** The environment that points an example at `api`. */
function apiEnv(api: FakeBotApi): Record<string, string> {
  return { BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: api.root, NODE_EXTRA_CA_CERTS: api.caFile! };
}

// ---------------------------------------------------------------------------
// Updates and a long-polling run

interface Chat {
  id: number;
  title?: string;
}

/** Text messages `[chat, user id, user name, text]` as updates 1, 2, 3, ... */
function script(...messages: [Chat, number, string, string][]): Update[] {
  return messages.map(([chat, userId, name, text], i) => {
    const command = text.match(/^\/\w+/)?.[0];
    return {
      update_id: i + 1,
      message: {
        message_id: i + 1,
        date: Math.floor(Date.now() / 1000),
        chat: chat.title === undefined
          ? { id: chat.id, type: "private", first_name: name }
          : { id: chat.id, type: "group", title: chat.title },
        from: { id: userId, is_bot: false, first_name: name },
        text,
        ...(command === undefined
          ? {}
          : { entities: [{ type: "bot_command", offset: 0, length: command.length }] }),
      },
    } as Update;
  });
}

/** Messages in private chats: `[chat id, text]`, the user being the chat. */
function privately(...messages: [number, string][]): Update[] {
  return script(
    ...messages.map(([id, text]) => [{ id }, id, "Ann", text] as [Chat, number, string, string]),
  );
}

interface PollingRun {
  /** The header command to run. */
  command: HeaderCommand;
  /** This run's storage settings. */
  env: Record<string, string>;
  updates: Update[];
  /** What the bot must send, `[chat id, text]`, in order. */
  replies: [number, string][];
  /**
   * The example stops cleanly on SIGTERM: it gets SIGTERM while the last
   * update is still in hand (its reply held back by the fake API until the
   * bot has called `bot.stop()` and had time to close its storage), must
   * still save that update's session, and exit with 0. Otherwise it gets
   * SIGTERM once it polls again after the last update, that is once every
   * session is saved.
   */
  graceful: boolean;
}

/** Runs a long-polling example against the fake Bot API; checks its replies and its stop. */
async function runPolling(run: PollingRun): Promise<Proc> {
  const api = startFakeBotApi();
  try {
    api.push(...run.updates);
    const proc = new Proc(run.command, { ...apiEnv(api), ...run.env });
    let stopped = false;
    const last = Math.max(...run.updates.map((u) => u.update_id));
    const gate = run.graceful ? api.gate(run.replies.length) : undefined;
    try {
      if (gate !== undefined) {
        // Recorded, and held: the last update is in hand.
        await proc.until(
          api.waitFor(() => api.texts().length >= run.replies.length, REPLY_MS, "the last reply"),
        );
        proc.signal("SIGTERM");
        // bot.stop() confirms the offset with a getUpdates without timeout.
        await proc.until(api.waitFor(
          () =>
            api.calls.some((c) =>
              c.method === "getUpdates" && c.params.timeout === undefined &&
              Number(c.params.offset ?? 0) > last
            ),
          REPLY_MS,
          "bot.stop() after SIGTERM",
        ));
        await new Promise((resolve) => setTimeout(resolve, 300));
        gate.open();
      }
      await proc.until(
        api.waitFor(() => api.texts().length >= run.replies.length, REPLY_MS, "the replies"),
      );
      if (!run.graceful) {
        await proc.until(api.waitFor(
          () =>
            api.calls.some((c) =>
              c.method === "getUpdates" && Number(c.params.timeout ?? 0) > 0 &&
              Number(c.params.offset ?? 0) > last
            ),
          REPLY_MS,
          "the poll after the last update",
        ));
      }
      const { status, killed } = await proc.stop();
      stopped = true;
      assert.ok(!killed, `the example ignored SIGTERM for ${STOP_MS} ms${proc.output()}`);
      if (run.graceful) {
        assert.equal(status.code, 0, `the example did not stop cleanly on SIGTERM${proc.output()}`);
      }
    } finally {
      if (!stopped) await proc.stop();
    }
    const sent = api.sent().map((s) => [s.chat_id, s.text]);
    assert.deepEqual(sent, run.replies, `the replies${proc.output()}`);
    const calls = api.calls.map((c) => c.method);
    assert.ok(calls.includes("getMe") && calls.includes("deleteWebhook"), calls.join());
    assert.deepEqual(api.calls.filter((c) => c.token !== TOKEN), [], "every call uses BOT_TOKEN");
    assert.doesNotMatch(proc.stderr, /update failed|error/i, proc.output());
    return proc;
  } finally {
    await api.close();
  }
}

/** A temporary directory for one test, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sk-examples-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Reads `keys` from the Deno KV file at `path` with a `DenoKvStorage` of `options`. */
async function readKv(
  path: string,
  options: { prefix: string[]; ttl?: number },
  keys: string[],
): Promise<Record<string, unknown>> {
  const kv = await Deno.openKv(path);
  try {
    const storage = new DenoKvStorage(kv, options);
    const out: Record<string, unknown> = {};
    for (const key of keys) out[key] = await storage.read(key);
    return out;
  } finally {
    kv.close();
  }
}

// ---------------------------------------------------------------------------
// No storage server

Deno.test("examples/custom_storage.ts runs as its header says", async () => {
  const stdout = await runToEnd(headerCommand("examples/custom_storage.ts", false), {});
  assert.match(stdout, /^stored: \{ count: 3 \}$/m);
});

Deno.test("examples/demo.ts: scripted twice, then live, on one KV file", async () => {
  await withTempDir(async (dir) => {
    const KV_PATH = `${dir}/demo.kv`;
    const scripted = headerCommand("examples/demo.ts", false);
    const run1 = await runToEnd(scripted, { KV_PATH });
    const run2 = await runToEnd(scripted, { KV_PATH });
    for (
      const [out, text] of [
        [run1, "No counts stored yet"],
        [run1, "bot> Count: 3"],
        [run1, "storage reads: 0, lazy session untouched"],
        [run1, "you counted 4 times in all chats"],
        [run2, "Counts persisted from the previous run: chat -200 = 2, chat 101 = 3, chat 102 = 1"],
        [run2, "bot> Count: 6"],
        [run2, "you counted 8 times in all chats"],
      ]
    ) assert.ok(out.includes(text), `missing ${JSON.stringify(text)} in:\n${out}`);

    // "With a token ... the same bot runs for real (long polling), with the same stored sessions."
    const alice: Chat = { id: 101 };
    await runPolling({
      command: headerCommand("examples/demo.ts", true),
      env: { KV_PATH },
      updates: script(
        [alice, 101, "Alice", "/start"],
        [alice, 101, "Alice", "/count"],
        [alice, 101, "Alice", "/me"],
      ),
      replies: [
        [
          101,
          "Hi Alice! /count counts in this chat, /reset starts over, " +
          "/me tells how often you counted anywhere.",
        ],
        [101, "Count: 7"],
        [101, "Alice, you counted 9 times in all chats."],
      ],
      graceful: false,
    });
    assert.deepEqual(await readKv(KV_PATH, { prefix: ["demo", "chat"] }, ["101", "-200", "102"]), {
      "101": { count: 7 },
      "-200": { count: 4 },
      "102": { count: 1 },
    });
    assert.deepEqual(await readKv(KV_PATH, { prefix: ["demo", "user"] }, ["101", "102"]), {
      "101": { counted: 9 },
      "102": { counted: 6 },
    });
  });
});

Deno.test("examples/strict.ts: counts per chat, /reset deletes", async () => {
  await withTempDir(async (dir) => {
    const KV_PATH = `${dir}/strict.kv`;
    await runPolling({
      command: headerCommand("examples/strict.ts", true),
      env: { KV_PATH },
      updates: privately([11, "/count"], [11, "/count"], [11, "hello"], [12, "/count"], [
        12,
        "/reset",
      ]),
      replies: [
        [11, "Count: 1"],
        [11, "Count: 2"],
        [11, "Send /count or /reset."],
        [12, "Count: 1"],
        [12, "Forgotten. /count starts at 1 again."],
      ],
      graceful: false,
    });
    assert.deepEqual(await readKv(KV_PATH, { prefix: ["examples", "strict"] }, ["11", "12"]), {
      "11": { count: 2 },
      "12": undefined,
    });
  });
});

Deno.test("examples/lazy.ts: notes per chat, other messages echoed", async () => {
  await withTempDir(async (dir) => {
    const KV_PATH = `${dir}/lazy.kv`;
    await runPolling({
      command: headerCommand("examples/lazy.ts", true),
      env: { KV_PATH },
      updates: privately(
        [21, "/note buy milk"],
        [21, "hello"],
        [21, "/note call mom"],
        [21, "/notes"],
        [22, "/notes"],
        [22, "/note"],
      ),
      replies: [
        [21, "Saved. 1 note(s) in this chat."],
        [21, "You said: hello"],
        [21, "Saved. 2 note(s) in this chat."],
        [21, "• buy milk\n• call mom"],
        [22, "No notes yet."],
        [22, "Usage: /note buy milk"],
      ],
      graceful: false,
    });
    const options = { prefix: ["examples", "lazy"], ttl: DAYS_30 };
    assert.deepEqual(await readKv(KV_PATH, options, ["21", "22"]), {
      "21": { notes: ["buy milk", "call mom"] },
      "22": undefined, // read, never changed: not written
    });
  });
});

Deno.test("examples/multi.ts: a score per chat, a language per user", async () => {
  await withTempDir(async (dir) => {
    const KV_PATH = `${dir}/multi.kv`;
    const group: Chat = { id: -300, title: "Club" };
    await runPolling({
      command: headerCommand("examples/multi.ts", true),
      env: { KV_PATH },
      updates: script(
        [{ id: 31 }, 31, "Ute", "/lang de"],
        [group, 31, "Ute", "/point"],
        [group, 32, "Bo", "/point"],
        [group, 32, "Bo", "/score"],
        [group, 32, "Bo", "/lang fr"],
      ),
      replies: [
        [31, "Sprache: Deutsch"],
        [-300, "Der Punktestand in diesem Chat ist 1."],
        [-300, "The score of this chat is 2."],
        [-300, "The score of this chat is 2."],
        [-300, "Usage: /lang en or /lang de"],
      ],
      graceful: false,
    });
    const chat = await readKv(KV_PATH, { prefix: ["examples", "multi", "chat"] }, ["-300", "31"]);
    assert.deepEqual(chat, { "-300": { score: 2 }, "31": undefined });
    const user = await readKv(KV_PATH, { prefix: ["examples", "multi", "user"] }, ["31", "32"]);
    assert.deepEqual(user, { "31": { lang: "de" }, "32": undefined });
  });
});

Deno.test("examples/deno_deploy.ts: webhook with a secret, lazy sessions in KV", async () => {
  await withTempDir(async (dir) => {
    const KV_PATH = `${dir}/deploy.kv`;
    const secret = `s_${crypto.randomUUID()}`;
    let killed = false;
    const api = startFakeBotApi();
    const proc = new Proc(headerCommand("examples/deno_deploy.ts", true), {
      ...apiEnv(api),
      KV_PATH,
      WEBHOOK_SECRET: secret,
      PORT: "0",
    });
    try {
      // Deno.serve says where it listens on stderr.
      let port = 0;
      await proc.until(
        new Promise<void>((resolve, reject) => {
          const deadline = Date.now() + REPLY_MS;
          const look = () => {
            const found = proc.stderr.match(/Listening on http:\/\/[^\s:]+:(\d+)\//);
            if (found) {
              port = Number(found[1]);
              resolve();
            } else if (proc.exited || Date.now() > deadline) {
              reject(new Error("no 'Listening on' line"));
            } else setTimeout(look, 50);
          };
          look();
        }),
      );
      const url = `http://127.0.0.1:${port}/`;
      const hello = await fetch(url, { signal: AbortSignal.timeout(REPLY_MS) });
      assert.equal(hello.status, 200);
      assert.match(await hello.text(), /POST updates to \//);

      // Bounded: a webhook whose API calls fail for want of a permission hangs.
      const post = (update: Update, token?: string) =>
        fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(token === undefined ? {} : { "x-telegram-bot-api-secret-token": token }),
          },
          body: JSON.stringify(update),
          signal: AbortSignal.timeout(REPLY_MS),
        }).catch((err) => {
          throw new Error(`POST of update ${update.update_id}: ${err}${proc.output()}`);
        });
      const updates = privately(
        [41, "/start"],
        [41, "/count"],
        [41, "/count"],
        [41, "/note hello"],
        [41, "/notes"],
        [41, "hi"],
        [42, "/notes"],
      );
      const wrong = await post(updates[1], "not-the-secret");
      await wrong.body?.cancel();
      assert.equal(wrong.status, 401, "an update without the right secret is refused");
      for (const update of updates) {
        // The response comes once the update is handled and its session saved.
        const res = await post(update, secret);
        await res.body?.cancel();
        assert.equal(res.status, 200, `update ${update.update_id}${proc.output()}`);
      }
      assert.deepEqual(api.sent().map((s) => [s.chat_id, s.text]), [
        [41, "Send /count to count, /note <text> to keep a note, /notes to list them."],
        [41, "Count: 1"],
        [41, "Count: 2"],
        [41, "Noted."],
        [41, "hello"],
        [41, "Try /count or /note."],
        [42, "No notes yet."],
      ]);
      const methods = api.calls.map((c) => c.method);
      assert.deepEqual(methods.filter((m) => m !== "sendMessage"), ["getMe"], methods.join());
      assert.deepEqual(api.calls.filter((c) => c.token !== TOKEN), []);
    } finally {
      killed = (await proc.stop()).killed;
      await api.close();
    }
    assert.ok(!killed, `the example ignored SIGTERM${proc.output()}`);
    const options = { prefix: ["bot", "sessions"], ttl: DAYS_30 };
    assert.deepEqual(await readKv(KV_PATH, options, ["41", "42"]), {
      "41": { count: 2, notes: ["hello"] },
      "42": undefined,
    });
  });
});

Deno.test("examples/sqlite_bot.ts: offline, then live on the same file", async () => {
  await withTempDir(async (dir) => {
    const SQLITE_PATH = `${dir}/sessions.db`;
    const offline = await runToEnd(headerCommand("examples/sqlite_bot.ts", false), {
      SQLITE_PATH,
    });
    for (
      const line of [
        "bot: Count: 1",
        "bot: Count: 2",
        "bot: 2 chats have counted to 3 together.",
        `stored for chat 7 in ${SQLITE_PATH}: { count: 2 }`,
      ]
    ) assert.ok(offline.includes(line), `missing ${JSON.stringify(line)} in:\n${offline}`);

    await runPolling({
      command: headerCommand("examples/sqlite_bot.ts", true),
      env: { SQLITE_PATH },
      updates: privately([7, "/count"], [9, "/count"], [9, "/stats"], [8, "/reset"]),
      replies: [
        [7, "Count: 3"],
        [9, "Count: 1"],
        [9, "3 chats have counted to 5 together."],
        [8, "Back to zero."],
      ],
      graceful: true,
    });
    const db = new DatabaseSync(SQLITE_PATH);
    try {
      const storage = new SqliteStorage(db, { table: "bot_sessions", ttl: DAYS_30 });
      assert.deepEqual(
        ["7", "8", "9"].map((k) => storage.read(k)),
        [{ count: 3 }, { count: 0 }, { count: 1 }],
      );
    } finally {
      db.close();
    }
  });
});

Deno.test("examples/telegraf_bot.ts: Telegraf's session() on a sessionkit SQLite storage", async () => {
  await withTempDir(async (dir) => {
    const SQLITE_PATH = `${dir}/telegraf.db`;
    const api = startFakeBotApi();
    const proc = new Proc(headerCommand("examples/telegraf_bot.ts", true), {
      ...apiEnv(api),
      SQLITE_PATH,
    });
    let stopped: { status: Deno.CommandStatus; killed: boolean } | undefined;
    try {
      // Telegraf handles the updates of one getUpdates batch at the same time,
      // so they go in one at a time, each after the reply to the one before.
      const updates = privately(
        [61, "/count"],
        [61, "/count"],
        [62, "/count"],
        [62, "/stats"],
        [63, "/count"],
        [63, "/reset"],
        [61, "/count"],
      );
      for (const [i, update] of updates.entries()) {
        api.push(update);
        await proc.until(api.waitFor(() => api.texts().length > i, REPLY_MS, `reply ${i + 1}`));
      }
      const last = updates.at(-1)!.update_id;
      await proc.until(api.waitFor(
        () =>
          api.calls.some((c) =>
            c.method === "getUpdates" && Number(c.params.timeout ?? 0) > 0 &&
            Number(c.params.offset ?? 0) > last
          ),
        REPLY_MS,
        "the poll after the last update",
      ));
      stopped = await proc.stop();
    } finally {
      if (stopped === undefined) await proc.stop();
      await api.close();
    }
    assert.ok(!stopped.killed, `the example ignored SIGTERM${proc.output()}`);
    assert.equal(stopped.status.code, 0, `the example did not stop cleanly${proc.output()}`);
    assert.deepEqual(api.sent().map((s) => [s.chat_id, s.text]), [
      [61, "Count: 1"],
      [61, "Count: 2"],
      [62, "Count: 1"],
      [62, "2 sessions have counted to 3 together."],
      [63, "Count: 1"],
      [63, "Forgotten. /count starts at 1 again."],
      [61, "Count: 3"],
    ], proc.output());
    const calls = api.calls.map((c) => c.method);
    assert.ok(calls.includes("getMe") && calls.includes("deleteWebhook"), calls.join());
    assert.deepEqual(api.calls.filter((c) => c.token !== TOKEN), [], "every call uses BOT_TOKEN");
    assert.doesNotMatch(proc.stderr, /failed|error/i, proc.output());
    // Telegraf's keys, <user id>:<chat id>; /reset deleted chat 63's session.
    const db = new DatabaseSync(SQLITE_PATH);
    try {
      const storage = new SqliteStorage(db, { table: "telegraf_sessions" });
      assert.deepEqual(
        ["61:61", "62:62", "63:63"].map((k) => storage.read(k)),
        [{ count: 3 }, { count: 1 }, undefined],
      );
    } finally {
      db.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Storage servers

/** The counter script of the Redis, PostgreSQL and MySQL examples, and its replies. */
const COUNTER = {
  updates: privately([51, "/count"], [51, "/count"], [52, "/count"], [52, "/stats"], [
    53,
    "/count",
  ], [53, "/reset"]),
  replies: [
    [51, "Count: 1"],
    [51, "Count: 2"],
    [52, "Count: 1"],
    [52, "2 chats have counted to 3 together."],
    [53, "Count: 1"],
    [53, "Back to zero."],
  ] as [number, string][],
  stored: [{ count: 2 }, { count: 1 }, { count: 0 }],
};

redisTest("examples/redis_bot.ts: counter in Redis under REDIS_PREFIX", async () => {
  const admin = await openAdmin();
  const prefix = uniquePrefix();
  try {
    await runPolling({
      command: headerCommand("examples/redis_bot.ts", true),
      env: { REDIS_URL, REDIS_PREFIX: prefix },
      ...COUNTER,
      graceful: true,
    });
    const storage = new RedisStorage(admin, { prefix, ttl: DAYS_30 });
    assert.deepEqual(
      await Promise.all(["51", "52", "53"].map((k) => storage.read(k))),
      COUNTER.stored,
    );
    assert.ok(await admin.pTTL(prefix + "51") > DAYS_30 - 60_000, "sessions expire in 30 days");
  } finally {
    await deleteUnder(admin, prefix);
    await admin.close();
  }
});

pgEnv.whenReachable(
  "examples/postgres_bot.ts: counter in PostgreSQL",
  () =>
    Deno.test("examples/postgres_bot.ts: counter in PostgreSQL", async () => {
      const table = `${pgEnv.RUN}_example_bot`;
      const db = await pgEnv.admin();
      const storage = PostgresStorage.connect(pgEnv.DATABASE_URL, { table, ttl: DAYS_30 });
      try {
        await runPolling({
          command: headerCommand("examples/postgres_bot.ts", true),
          env: { DATABASE_URL: pgEnv.DATABASE_URL, SESSION_TABLE: table },
          ...COUNTER,
          graceful: true,
        });
        assert.ok(await pgEnv.tableExists(db, table), `the bot made its table ${table}`);
        assert.deepEqual(
          await Promise.all(["51", "52", "53"].map((k) => storage.read(k))),
          COUNTER.stored,
        );
      } finally {
        await storage.close();
        await pgEnv.dropTables(db, storage);
        await db.end();
      }
    }),
);

myEnv.whenReachable(
  "examples/mysql_bot.ts: counter in MySQL with leases",
  () =>
    Deno.test("examples/mysql_bot.ts: counter in MySQL with leases", async () => {
      const table = `${myEnv.RUN}_example_bot`;
      const db = myEnv.admin();
      const storage = MysqlStorage.connect(myEnv.MYSQL_URL, { table, ttl: DAYS_30 });
      try {
        const proc = await runPolling({
          command: headerCommand("examples/mysql_bot.ts", true),
          env: { MYSQL_URL: myEnv.MYSQL_URL, SESSION_TABLE: table },
          ...COUNTER,
          graceful: true,
        });
        assert.match(proc.stdout, /^purged 0 expired sessions$/m);
        assert.ok(await myEnv.tableExists(db, table), `the bot made its table ${table}`);
        assert.deepEqual(
          await Promise.all(["51", "52", "53"].map((k) => storage.read(k))),
          COUNTER.stored,
        );
        const [leases] = await db.query(
          `SELECT COUNT(*) AS n FROM ${myEnv.id(storage.leaseTable)}`,
        );
        assert.equal(Number((leases as { n: number }[])[0].n), 0, "every lease was released");
      } finally {
        await storage.close();
        await myEnv.dropTables(db, storage);
        await db.end();
      }
    }),
);

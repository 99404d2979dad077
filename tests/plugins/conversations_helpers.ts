/**
 * Helpers of the `@grammyjs/conversations` tests (v1 and v2): the session
 * middlewares of both libraries behind one interface, the storages a bot
 * restart reopens (a temporary Deno KV file, a Redis prefix), a bot whose Bot
 * API calls are answered at the `fetch` level (so that the Api objects v2
 * builds inside conversations are answered too), and the two-step
 * "name, then age" script that interleaves three chats and restarts the bot
 * between the steps.
 */
import {
  Bot,
  BotError,
  type Context,
  lazySession as grammyLazySession,
  type MiddlewareFn,
  session as grammySession,
} from "npm:grammy@^1.46";
import type { Update } from "npm:grammy@^1.46/types";
import { lazySession, session, type StorageAdapter } from "../../mod.ts";
import { DenoKvStorage } from "../../storages/denokv.ts";
import { RedisFixture, redisTest, uniquePrefix } from "../redis_env.ts";
import { botInfo, message } from "../helpers/bot.ts";

/** Both libraries' contexts, loosely typed so that one scenario runs on both. */
// deno-lint-ignore no-explicit-any
export type Loose = Context & { session: any; conversation: any };

/** How the session is installed. grammY has no lazy multi session. */
export type Mode = "strict" | "lazy" | "strict multi" | "lazy multi";

/** The session library under test. */
export type Library = "grammY" | "sessionkit";

/** The profile the conversations fill in; in multi modes it is the `profile` fragment. */
export interface Profile {
  name?: string;
  age?: number;
}

/** The two session fragments of the multi modes live under these key prefixes. */
export const FRAGMENT_PREFIX = { conversation: "conversation:", profile: "profile:" } as const;

/**
 * The session middleware of `library` in `mode` over `storage`. Single modes
 * store the profile (and v1's `conversation` field) at the chat id; multi
 * modes keep two fragments, `conversation` and `profile`, each under its own
 * prefix of the same storage.
 */
export function sessionMiddleware(
  library: Library,
  mode: Mode,
  storage: StorageAdapter<unknown>,
): MiddlewareFn<Loose> {
  const single = { initial: (): Profile => ({}), storage };
  const multi = {
    type: "multi",
    conversation: { storage, prefix: FRAGMENT_PREFIX.conversation },
    profile: { initial: (): Profile => ({}), storage, prefix: FRAGMENT_PREFIX.profile },
  };
  const options = mode.endsWith("multi") ? multi : single;
  const lazy = mode.startsWith("lazy");
  if (library === "grammY") {
    const make = lazy ? grammyLazySession : grammySession;
    return make(options as never) as unknown as MiddlewareFn<Loose>;
  }
  const make = lazy ? lazySession : session;
  return make(options as never) as unknown as MiddlewareFn<Loose>;
}

/** The profile in `sessionValue` (what `await ctx.session` gave) for `mode`. */
export async function profileOf(mode: Mode, sessionValue: unknown): Promise<Profile> {
  const value = sessionValue as { profile?: unknown };
  return mode.endsWith("multi") ? await value.profile as Profile : value as Profile;
}

/** The storage keys a chat's data lives under in `mode`. */
export function keysOf(mode: Mode, chat: number): string[] {
  return mode.endsWith("multi")
    ? [FRAGMENT_PREFIX.conversation + chat, FRAGMENT_PREFIX.profile + chat]
    : [String(chat)];
}

// ---------------------------------------------------------------------------
// Storages that survive a restart

/** The storages of one bot process. A restart closes them and opens new ones. */
export interface Connection {
  /** A storage under `name` (its own prefix), on this process's connection. */
  storage<T>(name: string): Promise<StorageAdapter<T>>;
  /** Closes what this process opened, as a process exit would. */
  close(): Promise<void>;
}

/** A database that several bot processes open one after the other. */
export interface Backend {
  /** Opens a new connection to the same data. */
  connect(): Promise<Connection>;
}

/** The backends the scenarios run on. */
export type BackendName = "Deno KV" | "Redis";

/** The backends, for `for (const name of BACKENDS)`. */
export const BACKENDS: BackendName[] = ["Deno KV", "Redis"];

/**
 * Registers a test that gets a fresh, empty backend per `use` call (so that
 * grammY's run and sessionkit's never share data), cleaned up at the end.
 * Redis tests are skipped loudly without a server, and fail in CI.
 */
export function backendTest(
  backend: BackendName,
  name: string,
  fn: (t: Deno.TestContext, fresh: () => Promise<Backend>) => Promise<void>,
): void {
  const register = backend === "Redis" ? redisTest : Deno.test;
  register(`${name} (${backend})`, async (t) => {
    const cleanups: (() => Promise<void>)[] = [];
    const fresh = async (): Promise<Backend> => {
      const made = backend === "Redis" ? redisBackend() : await denoKvBackend();
      cleanups.push(made.cleanup);
      return made.backend;
    };
    try {
      await fn(t, fresh);
    } finally {
      for (const cleanup of cleanups.reverse()) await cleanup();
    }
  });
}

async function denoKvBackend(): Promise<{ backend: Backend; cleanup: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-conversations-" });
  const path = `${dir}/kv.sqlite3`;
  const open: Deno.Kv[] = [];
  const backend: Backend = {
    async connect() {
      const kv = await Deno.openKv(path);
      open.push(kv);
      return {
        storage: <T>(name: string) =>
          Promise.resolve(new DenoKvStorage<T>(kv, { prefix: [name] }) as StorageAdapter<T>),
        close: () => {
          const at = open.indexOf(kv);
          if (at >= 0) open.splice(at, 1)[0].close();
          return Promise.resolve();
        },
      };
    },
  };
  return {
    backend,
    async cleanup() {
      for (const kv of open.splice(0)) kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function redisBackend(): { backend: Backend; cleanup: () => Promise<void> } {
  const fixture = new RedisFixture();
  const base = uniquePrefix();
  const backend: Backend = {
    connect() {
      const opened: { close(): Promise<void> }[] = [];
      return Promise.resolve({
        async storage<T>(name: string) {
          const storage = await fixture.connect<T>({ prefix: `${base}${name}:` });
          opened.push(storage);
          return storage as StorageAdapter<T>;
        },
        async close() {
          for (const storage of opened.splice(0)) await storage.close();
        },
      });
    },
  };
  return { backend, cleanup: () => fixture.cleanup() };
}

// ---------------------------------------------------------------------------
// A bot answered at the fetch level

/** One bot process: a real grammY `Bot` whose HTTP calls never leave the test. */
export interface FetchHarness<C extends Context> {
  bot: Bot<C>;
  /** `[chat id, text]` of every sendMessage that reached the network layer. */
  sent: [number, string][];
  /** Descriptions of every error that reached bot.catch. */
  errors: string[];
  /** Delivers one update; errors go to bot.catch, as polling does. */
  send(update: Update): Promise<void>;
}

/**
 * A bot whose `client.fetch` answers every Bot API call. Unlike an API
 * transformer on `bot.api`, this also answers the `Api` instances that
 * conversations v2 builds for the contexts inside a conversation (it copies
 * the token and client options, not the transformers), and it sees only the
 * calls that really go out: replayed calls of a conversation do not reach it.
 */
export function createFetchHarness<C extends Context = Loose>(): FetchHarness<C> {
  const sent: [number, string][] = [];
  const errors: string[] = [];
  let messageId = 0;
  const fakeFetch = async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    const method = url.slice(url.lastIndexOf("/") + 1);
    const payload = init?.body === undefined ? {} : JSON.parse(String(init.body));
    let result: unknown = true;
    if (method === "sendMessage") {
      sent.push([payload.chat_id, payload.text]);
      result = {
        message_id: ++messageId,
        date: 0,
        chat: { id: payload.chat_id, type: "private", first_name: "x" },
        text: payload.text,
      };
    }
    await Promise.resolve();
    return new Response(JSON.stringify({ ok: true, result }), {
      headers: { "content-type": "application/json" },
    });
  };
  const bot = new Bot<C>("0:test-token", {
    botInfo,
    client: { fetch: fakeFetch as unknown as typeof fetch },
  });
  bot.catch((err) => {
    errors.push(describeError(err.error));
  });
  return {
    bot,
    sent,
    errors,
    async send(update) {
      try {
        await bot.handleUpdate(update);
      } catch (err) {
        if (!(err instanceof BotError)) throw err;
        await (bot["errorHandler"] as (e: BotError<C>) => Promise<void>)(err);
      }
    },
  };
}

/** `Name: message` of an error, for comparing outcomes. */
export function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

// ---------------------------------------------------------------------------
// The interleaved two-step script

/** Three private chats. */
export const ANN = 101, BOB = 102, CY = 103;

/** A group of updates sent at the same time (different chats), or a restart. */
export type Step = [chat: number, text: string][] | "restart";

/**
 * Ann and Bob start at once; Ann answers her name; restart; Cy starts while
 * Bob answers his name and Ann her age (all three at once); restart; Cy
 * answers, Bob answers his age, Cy answers hers; then each chat asks the bot
 * outside any conversation, which replies with the stored profile.
 */
export const SCRIPT: Step[] = [
  [[ANN, "/start"], [BOB, "/start"]],
  [[ANN, "Ann"]],
  "restart",
  [[CY, "/start"], [BOB, "Bob"], [ANN, "30"]],
  "restart",
  [[CY, "Cy"]],
  [[BOB, "41"]],
  [[CY, "52"]],
  [[ANN, "who am I?"], [BOB, "who am I?"], [CY, "who am I?"]],
];

/** What every chat is told by a bot that keeps conversations and sessions across restarts. */
export const EXPECTED_REPLIES: Record<number, string[]> = {
  [ANN]: ["What is your name?", "How old are you, Ann?", "Ann is 30.", "You are Ann, 30."],
  [BOB]: ["What is your name?", "How old are you, Bob?", "Bob is 41.", "You are Bob, 41."],
  [CY]: ["What is your name?", "How old are you, Cy?", "Cy is 52.", "You are Cy, 52."],
};

/** The outer handler's reply for a profile (outside any conversation). */
export function whoAmI(p: Profile): string {
  return p.age === undefined ? "I do not know you." : `You are ${p.name}, ${p.age}.`;
}

/** The result of running the script. */
export interface Outcome {
  /** Replies per chat, across all processes, in order. */
  replies: Record<number, string[]>;
  /** Errors that reached bot.catch, across all processes. */
  errors: string[];
  /** What is stored for each chat at the end, by storage key. */
  stored: Record<string, unknown>;
  /** The number of bot processes the script ran (restarts + 1). */
  processes: number;
}

/**
 * Runs `SCRIPT`: `boot` builds a new bot process (new Bot, new middleware)
 * on a new connection to `backend`; every "restart" closes the connection and
 * boots again. `read` says which storage keys to read at the end, and from
 * which named storage.
 */
export async function runScript(
  backend: Backend,
  boot: (conn: Connection) => Promise<FetchHarness<Loose>>,
  read: { storage: string; keys: (chat: number) => string[] },
  script: Step[] = SCRIPT,
): Promise<Outcome> {
  const replies: Record<number, string[]> = { [ANN]: [], [BOB]: [], [CY]: [] };
  const errors: string[] = [];
  let processes = 0;
  let conn = await backend.connect();
  let bot = await boot(conn);
  processes++;
  const collect = (h: FetchHarness<Loose>) => {
    for (const [chat, text] of h.sent.splice(0)) (replies[chat] ??= []).push(text);
    errors.push(...h.errors.splice(0));
  };
  try {
    for (const step of script) {
      if (step === "restart") {
        collect(bot);
        await conn.close();
        conn = await backend.connect();
        bot = await boot(conn);
        processes++;
        continue;
      }
      await Promise.all(step.map(([chat, text]) => bot.send(message(chat, text))));
    }
    collect(bot);
    const storage = await conn.storage<unknown>(read.storage);
    const stored: Record<string, unknown> = {};
    for (const chat of [ANN, BOB, CY]) {
      for (const key of read.keys(chat)) stored[key] = await storage.read(key);
    }
    return { replies, errors, stored, processes };
  } finally {
    await conn.close();
  }
}

/** What a finished run leaves: the profile, and no conversation state. */
export function expectedStored(mode: Mode): Record<string, unknown> {
  const profiles: Record<number, unknown> = {
    [ANN]: { name: "Ann", age: 30 },
    [BOB]: { name: "Bob", age: 41 },
    [CY]: { name: "Cy", age: 52 },
  };
  const out: Record<string, unknown> = {};
  for (const chat of [ANN, BOB, CY]) {
    if (mode.endsWith("multi")) {
      out[`conversation:${chat}`] = undefined;
      out[`profile:${chat}`] = profiles[chat];
    } else {
      out[String(chat)] = profiles[chat];
    }
  }
  return out;
}

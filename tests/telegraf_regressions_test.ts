/**
 * Regression tests for what an adversarial review found in `telegrafStore`
 * (src/telegraf.ts, as of commit b17c7d6), each through the real
 * npm:telegraf 4 `session({ store })` driven by `bot.handleUpdate` (API calls
 * answered by tests/fixtures/fake_bot_api.ts), on every storage where it is
 * cheap: memory, Deno KV (temporary file), Redis, PostgreSQL, SQLite, MySQL
 * (skipped loudly without a server, failing with CI=true).
 *
 * - F1: the versions kept per key are bounded in characters, also where a
 *   version is the whole stored text (Redis).
 * - F2: an update that only reads a session over 64 KiB writes nothing.
 * - F3: conflict detection holds however many large sessions are read
 *   between a read and its save.
 * - F4: a read that fails once is tried again, so the chat is not lost to
 *   the rejected promise Telegraf 4.16 keeps.
 * - F6: `get` hands out a copy, so an adapter that hands out its stored
 *   object (grammY's `MemorySessionStorage`) never takes in a handler's bad
 *   value.
 * - F7: the conflict an expiry causes says so.
 * - F9: misuse (options `null` or a string, a raw `Deno.Kv`) is a clear
 *   `TypeError`.
 * - What is kept on a session object counts only for its key and until the
 *   store next records that key: a shared `defaultSession` object, or an
 *   object put back after its key was deleted, is saved as Telegraf's own
 *   store would save it.
 */
import assert from "node:assert/strict";
import { MemorySessionStorage as GrammyMemory } from "npm:grammy@^1.46";
import { session, Telegraf } from "npm:telegraf@^4.16";
import type { Context } from "npm:telegraf@^4.16";
import type { Update, UserFromGetMe } from "npm:telegraf@^4.16/types";
import {
  MemorySessionStorage,
  SessionConflictError,
  SessionValueError,
  type TelegrafSessionStore,
  telegrafStore,
} from "../mod.ts";
import { FAKE_BOT, type FakeBotApi, startFakeBotApi } from "./fixtures/fake_bot_api.ts";
import {
  type BackendStorage,
  type Namespace as BackendNamespace,
  telegrafBackends,
  withNamespace,
} from "./helpers/telegraf_backends.ts";
import { RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";

interface Data {
  count: number;
  pad?: string;
  when?: unknown;
}
interface MyContext extends Context {
  session?: Data | null;
}
type Storage = BackendStorage<Data>;

const CHAT = 77;
/** Telegraf's default session key: `<from id>:<chat id>`. */
const KEY = `${CHAT}:${CHAT}`;
const keyOf = (chat: number) => `${chat}:${chat}`;
/** docs/telegraf.md: the records per key hold "at most 8 Mi characters of versions in all". */
const CHARS_BOUND = 8 * 1024 * 1024;

/** The text of the update's message. */
const textOf = (ctx: MyContext) => (ctx.message as { text?: string } | undefined)?.text;

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Bots

let updateId = 0;
/** A text message in the private chat `chat` (the user being the chat). */
function message(chat = CHAT, text = "hi"): Update {
  const id = ++updateId;
  return {
    update_id: id,
    message: {
      message_id: id,
      date: Math.floor(Date.now() / 1000),
      chat: { id: chat, type: "private", first_name: "Ann" },
      from: { id: chat, is_bot: false, first_name: "Ann" },
      text,
    },
  } as Update;
}

/** A Telegraf bot on the fake API with Telegraf's `session({ store })`; errors collected. */
function telegraf(
  api: FakeBotApi,
  store: TelegrafSessionStore<Data>,
  defaultSession: () => Data = () => ({ count: 0 }),
) {
  const bot = new Telegraf<MyContext>("123:telegraf-regressions", {
    telegram: { apiRoot: api.root },
  });
  bot.botInfo = FAKE_BOT as UserFromGetMe;
  const errors: unknown[] = [];
  bot.catch((err) => void errors.push(err));
  bot.use(session({ store, defaultSession }));
  return { bot, errors };
}

/** `inner` with every call counted by name; `failReads` reads reject first. */
function watched(inner: Storage) {
  const calls: string[] = [];
  const state = { failReads: 0 };
  const read = <A extends unknown[], R>(name: string, f: (...args: A) => R) => (...args: A) => {
    calls.push(name);
    if (state.failReads > 0) {
      state.failReads--;
      return Promise.reject(new Error("connection reset (test)"));
    }
    return f(...args);
  };
  const counted = <A extends unknown[], R>(name: string, f: (...args: A) => R) => (...args: A) => {
    calls.push(name);
    return f(...args);
  };
  const storage: Storage = {
    read: read("read", (key: string) => inner.read(key)),
    readVersioned: read("readVersioned", (key: string) => inner.readVersioned(key)),
    write: counted("write", (key: string, value: Data) => inner.write(key, value)),
    writeIfVersion: counted(
      "writeIfVersion",
      (key: string, value: Data, v: string | null) => inner.writeIfVersion(key, value, v),
    ),
    delete: counted("delete", (key: string) => inner.delete(key)),
    deleteIfVersion: counted(
      "deleteIfVersion",
      (key: string, v: string | null) => inner.deleteIfVersion(key, v),
    ),
  };
  return { storage, calls, state };
}

// ---------------------------------------------------------------------------
// Backends

const BACKENDS = telegrafBackends<Data>({ kvDir: "sk-telegraf-regress-kv-", table: "tgreg" });
type Namespace = BackendNamespace<Data>;

// ---------------------------------------------------------------------------
// F1: the versions kept per key are bounded in characters

/**
 * Sessions of `size` characters for `chats` chats go through a bot that only
 * reads them; then each key is saved with a new object, oldest first. A key
 * whose version is still kept is saved conditionally (`writeIfVersion`), a
 * forgotten one with `write`. Returns the chats still remembered.
 */
async function remembered(storage: Storage, chats: number[], size: number): Promise<number[]> {
  const api = startFakeBotApi({ tls: false });
  try {
    for (const chat of chats) {
      await storage.write(keyOf(chat), { count: chat, pad: "v".repeat(size) });
    }
    const w = watched(storage);
    const store = telegrafStore(w.storage);
    const { bot, errors } = telegraf(api, store);
    bot.on("message", (ctx) => void ctx.session!.count); // read, then dropped by Telegraf
    for (const chat of chats) await bot.handleUpdate(message(chat));
    assert.deepEqual(errors, []);
    const kept: number[] = [];
    for (const chat of chats) {
      w.calls.length = 0;
      await store.set(keyOf(chat), { count: -chat }); // a new object: only the record per key helps
      assert.equal(w.calls.length, 1, w.calls.join());
      if (w.calls[0] === "writeIfVersion") kept.push(chat);
      else assert.equal(w.calls[0], "write");
      assert.deepEqual(await storage.read(keyOf(chat)), { count: -chat });
    }
    return kept;
  } finally {
    await api.close();
  }
}

/** A conditional storage whose version is the stored JSON text, as RedisStorage's is. */
function textVersioned(): Storage {
  const texts = new Map<string, string>();
  const version = (key: string) => texts.get(key) ?? null;
  return {
    read: (key) => (texts.has(key) ? JSON.parse(texts.get(key)!) : undefined),
    readVersioned: (key) => ({
      value: texts.has(key) ? JSON.parse(texts.get(key)!) : undefined,
      version: version(key),
    }),
    write: (key, value) => void texts.set(key, JSON.stringify(value)),
    writeIfVersion: (key, value, expected) => {
      if (version(key) !== expected) return null;
      texts.set(key, JSON.stringify(value));
      return texts.get(key)!;
    },
    delete: (key) => void texts.delete(key),
    deleteIfVersion: (key, expected) => {
      if (version(key) !== expected) return false;
      texts.delete(key);
      return true;
    },
  };
}

function assertBounded(kept: number[], chats: number[], size: number): void {
  assert.ok(kept.length >= 1, "the most recent keys are still checked");
  assert.ok(
    kept.length * size <= CHARS_BOUND,
    `${kept.length} versions of ${size} characters kept: over ${CHARS_BOUND} characters`,
  );
  assert.deepEqual(kept, chats.slice(chats.length - kept.length), "the most recent are kept");
}

const BIG = 512 * 1024;
const BIG_CHATS = Array.from({ length: 24 }, (_, i) => 1000 + i); // 12 Mi characters in all

Deno.test("F1: versions that are the stored text are kept within 8 Mi characters (no server)", async () => {
  const kept = await remembered(textVersioned(), BIG_CHATS, BIG);
  assertBounded(kept, BIG_CHATS, BIG);
});

redisTest("F1: RedisStorage versions are kept within 8 Mi characters", async () => {
  const fixture = new RedisFixture();
  try {
    const storage = await fixture.connect<Data>({ prefix: uniquePrefix() });
    const kept = await remembered(storage, BIG_CHATS, BIG);
    assertBounded(kept, BIG_CHATS, BIG);
  } finally {
    await fixture.cleanup();
  }
});

// ---------------------------------------------------------------------------
// Scenarios, on every storage

/** Two bots (two processes) on one chat: bot 2 reads, bot 1 counts and saves, bot 2 saves. */
async function readOnlyRace(ns: Namespace, api: FakeBotApi, onConflict: "error" | "overwrite") {
  const s1 = await ns.open();
  await s1.write(KEY, { count: 5, pad: "p".repeat(70 * 1024) });
  const one = telegraf(api, telegrafStore(s1, { onConflict }));
  const two = telegraf(api, telegrafStore(await ns.open(), { onConflict }));
  const twoIn = Promise.withResolvers<void>();
  const goTwo = Promise.withResolvers<void>();
  let peeked: number | undefined;
  one.bot.on("message", async (ctx) => {
    await twoIn.promise;
    ctx.session!.count++;
  });
  two.bot.on("message", async (ctx) => {
    twoIn.resolve();
    await goTwo.promise;
    peeked = ctx.session!.count;
  });
  const twoDone = two.bot.handleUpdate(message());
  await one.bot.handleUpdate(message());
  goTwo.resolve();
  await twoDone;
  const stored = await s1.read(KEY);
  return {
    count: stored?.count,
    pad: stored?.pad?.length,
    errors: [...one.errors, ...two.errors],
    peeked,
  };
}

for (const backend of BACKENDS) {
  backend.register(
    `F2: a read-only update of a session over 64 KiB writes nothing (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        for (const onConflict of ["overwrite", "error"] as const) {
          assert.deepEqual(
            await readOnlyRace(ns, api, onConflict),
            { count: 6, pad: 70 * 1024, errors: [], peeked: 5 },
            `onConflict "${onConflict}": bot 1's increment is kept, bot 2 reports nothing`,
          );
        }
      }),
  );

  backend.register(
    `F3: conflicts are caught after 140 sessions of 60 KiB were read meanwhile (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        const pad = "p".repeat(60 * 1024);
        const others = Array.from({ length: 140 }, (_, i) => 3000 + i);
        const s1 = await ns.open();
        await s1.write(KEY, { count: 5, pad });
        for (const chat of others) await s1.write(keyOf(chat), { count: 0, pad });
        const one = telegraf(api, telegrafStore(s1)); // onConflict "error", the default
        const two = telegraf(api, telegrafStore(await ns.open()));
        const read = Promise.withResolvers<void>();
        const go = Promise.withResolvers<void>();
        one.bot.on("message", async (ctx) => {
          if (ctx.chat.id !== CHAT) return void ctx.session!.pad;
          read.resolve();
          await go.promise;
          ctx.session!.count += 100;
        });
        two.bot.on("message", (ctx) => void ctx.session!.count++);
        const slow = one.bot.handleUpdate(message()); // bot 1 has read chat 77 and waits
        await read.promise;
        await Promise.all(others.map((chat) => one.bot.handleUpdate(message(chat))));
        await two.bot.handleUpdate(message()); // another process: 5 -> 6
        go.resolve();
        await slow;
        assert.equal((await s1.read(KEY))?.count, 6, "bot 2's change is kept");
        assert.equal(one.errors.length, 1, "bot 1's change is reported, not saved over it");
        assert.ok(one.errors[0] instanceof SessionConflictError, String(one.errors[0]));
        assert.deepEqual(two.errors, []);
      }),
  );

  backend.register(
    `F4: a read that fails once does not lose the chat (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        const w = watched(await ns.open());
        await w.storage.delete(KEY);
        const { bot, errors } = telegraf(api, telegrafStore(w.storage));
        bot.on("message", (ctx) => void ctx.session!.count++);
        await bot.handleUpdate(message());
        w.state.failReads = 1; // a dropped connection
        for (let i = 0; i < 4; i++) await bot.handleUpdate(message());
        assert.deepEqual(errors, []);
        assert.deepEqual(await w.storage.read(KEY), { count: 5 }, "every update counted");
        assert.equal(w.calls.filter((c) => c === "readVersioned").length, 6, "one read again");
      }),
  );

  backend.register(
    `F7: a session that expired during its update is reported as such (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        const storage = await ns.open();
        const { bot, errors } = telegraf(api, telegrafStore(storage));
        bot.on("message", async (ctx) => {
          ctx.session!.count++;
          if (textOf(ctx) === "slow") await tick(700); // outlives the ttl
        });
        await bot.handleUpdate(message());
        await bot.handleUpdate(message(CHAT, "slow"));
        assert.equal(errors.length, 1, String(errors));
        const err = errors[0];
        assert.ok(err instanceof SessionConflictError, String(err));
        assert.equal(err.key, KEY);
        assert.match(err.message, /or it expired/);
        assert.match(err.message, /keep a ttl far above the longest handler/);
        assert.equal(await storage.read(KEY), undefined, "nothing was saved over the expiry");
      }, 250),
  );

  backend.register(
    `what a session object remembers counts for its key only (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        const storage = await ns.open();
        // One object handed out by defaultSession for every new chat.
        const shared: Data = { count: 0 };
        const a = telegraf(api, telegrafStore(storage), () => shared);
        a.bot.on("message", (ctx) => void ctx.session!.count++);
        await a.bot.handleUpdate(message(501));
        await a.bot.handleUpdate(message(502)); // Telegraf hands chat 502 the same object
        assert.deepEqual(a.errors, [], "no false conflict");
        assert.deepEqual(await storage.read(keyOf(501)), { count: 1 });
        assert.deepEqual(await storage.read(keyOf(502)), { count: 2 }, "saved as Telegraf made it");

        // A frozen constant as the default, handlers that only read.
        const empty: Data = Object.freeze({ count: 0 });
        const b = telegraf(api, telegrafStore(storage), () => empty);
        b.bot.on("message", (ctx) => void ctx.session!.count);
        await b.bot.handleUpdate(message(503));
        await b.bot.handleUpdate(message(504));
        assert.deepEqual(b.errors, []);
        assert.deepEqual(await storage.read(keyOf(503)), { count: 0 });
        assert.deepEqual(await storage.read(keyOf(504)), { count: 0 }, "written like chat 503");
      }),
  );

  backend.register(
    `an object put back after a concurrent update deleted its key is saved (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        const storage = await ns.open();
        await storage.write(KEY, { count: 3 });
        const { bot, errors } = telegraf(api, telegrafStore(storage));
        const read = Promise.withResolvers<void>();
        const go = Promise.withResolvers<void>();
        bot.on("message", async (ctx) => {
          if (textOf(ctx) !== "keep") return void (ctx.session = null);
          const kept = ctx.session;
          read.resolve();
          await go.promise;
          ctx.session = kept; // the last assignment of the shared session
        });
        const keep = bot.handleUpdate(message(CHAT, "keep"));
        await read.promise;
        await bot.handleUpdate(message(CHAT, "drop")); // shares the session, deletes it
        assert.equal(await storage.read(KEY), undefined);
        go.resolve();
        await keep;
        assert.deepEqual(errors, []);
        assert.deepEqual(await storage.read(KEY), { count: 3 }, "not skipped as unchanged");
      }),
  );
}

// ---------------------------------------------------------------------------
// Without a server

Deno.test("F4: a read is tried three times, then the update fails (and Telegraf keeps that)", async () => {
  const api = startFakeBotApi({ tls: false });
  try {
    const w = watched(new MemorySessionStorage<Data>());
    const { bot, errors } = telegraf(api, telegrafStore(w.storage));
    bot.on("message", (ctx) => void ctx.session!.count++);
    w.state.failReads = 3;
    await bot.handleUpdate(message());
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /connection reset \(test\)/);
    assert.deepEqual(w.calls, ["readVersioned", "readVersioned", "readVersioned"]);
    // docs/telegraf.md: Telegraf 4.16 hands the kept rejection to every later update of
    // the chat, without asking the store again; other chats are fine.
    await bot.handleUpdate(message());
    assert.equal(errors.length, 2);
    assert.equal(errors[1], errors[0], "the same rejection again");
    assert.equal(w.calls.length, 3, "the store was not asked");
    await bot.handleUpdate(message(CHAT + 1));
    assert.equal(errors.length, 2);
    assert.deepEqual(await w.storage.read(keyOf(CHAT + 1)), { count: 1 });
  } finally {
    await api.close();
  }
});

Deno.test("F6: grammY's MemorySessionStorage never takes in a handler's bad value", async () => {
  const api = startFakeBotApi({ tls: false });
  try {
    // It hands out the object it stores; the store must not hand that object to Telegraf.
    const storage = new GrammyMemory<Data>();
    const { bot, errors } = telegraf(api, telegrafStore(storage));
    bot.on("message", (ctx) => {
      if (textOf(ctx) !== "bad") return void ctx.session!.count++;
      ctx.session!.count = 100;
      ctx.session!.when = new Date();
    });
    await bot.handleUpdate(message());
    await bot.handleUpdate(message(CHAT, "bad"));
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof SessionValueError, String(errors[0]));
    assert.deepEqual(storage.read(KEY), { count: 1 }, "the stored session stays as it was");
    await bot.handleUpdate(message());
    assert.equal(errors.length, 1, "the chat is not broken");
    assert.deepEqual(storage.read(KEY), { count: 2 });
  } finally {
    await api.close();
  }
});

Deno.test("F7: a session evicted by maxEntries long before its save is reported as such", async () => {
  const api = startFakeBotApi({ tls: false });
  try {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 2 });
    const { bot, errors } = telegraf(api, telegrafStore(storage));
    const go = Promise.withResolvers<void>();
    bot.on("message", async (ctx) => {
      if (textOf(ctx) === "slow") await go.promise;
      ctx.session!.count++;
    });
    await bot.handleUpdate(message());
    const slow = bot.handleUpdate(message(CHAT, "slow"));
    await tick(5);
    // More evictions than the storage remembers the versions of (1,024).
    for (let chat = 500; chat < 1700; chat++) await bot.handleUpdate(message(chat));
    go.resolve();
    await slow;
    assert.equal(errors.length, 1, String(errors));
    assert.ok(errors[0] instanceof SessionConflictError);
    assert.match(errors[0].message, /or was evicted \(a ttl, maxEntries\)/);
  } finally {
    await api.close();
  }
});

Deno.test("F9: misuse is a TypeError that names the fix", async (t) => {
  const storage = new MemorySessionStorage<Data>();
  await t.step("options null", () => {
    assert.throws(() => telegrafStore(storage, null as never), {
      name: "TypeError",
      message: /options must be an object such as \{ onConflict: "overwrite" \}, got null/,
    });
  });
  await t.step("options a string", () => {
    assert.throws(() => telegrafStore(storage, "overwrite" as never), {
      name: "TypeError",
      message: /options must be an object .*got "overwrite"/,
    });
  });
  await t.step("a raw Deno.Kv", async () => {
    const dir = await Deno.makeTempDir({ prefix: "sk-telegraf-regress-rawkv-" });
    const kv = await Deno.openKv(`${dir}/raw.kv`);
    try {
      assert.throws(() => telegrafStore(kv as unknown as Storage), {
        name: "TypeError",
        message:
          /storage is a Deno\.Kv database, not a storage adapter\. Wrap it: `storage: new DenoKvStorage\(kv\)`/,
      });
    } finally {
      kv.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
});

/**
 * Option validation (issue 15, defect 10): misuse of `session()` and
 * `lazySession()` fails when the middleware is created, with an error that
 * names the fix, instead of silently running on an in-memory storage; the
 * unambiguous storage shorthand is accepted and really uses the storage.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  lazySession,
  type LazySessionFlavor,
  MemorySessionStorage,
  session,
  type SessionContext,
  type SessionFlavor,
  type SessionMiddleware,
  type StorageAdapter,
} from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";
import { RedisStorage } from "../storages/redis.ts";
import { createHarness, message } from "./helpers/bot.ts";

type Data = { count: number };

/** Compile-time equality of two types. */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;

/** Calls `create` and asserts it throws `type` with every pattern in its message. */
function fails(
  create: () => unknown,
  type: typeof TypeError | typeof RangeError,
  ...patterns: RegExp[]
): void {
  let thrown: unknown;
  try {
    create();
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown !== undefined, "expected the middleware creation to throw");
  assert.ok(thrown instanceof type, `expected a ${type.name}, got ${thrown}`);
  for (const pattern of patterns) assert.match((thrown as Error).message, pattern);
}

/** Any value, typed so that misuse can be written without type errors. */
// deno-lint-ignore no-explicit-any
const loose = (value: unknown): any => value;

/** A plain storage adapter object that records every call it gets. */
function recordingAdapter():
  & StorageAdapter<Data | undefined>
  & { calls: string[]; map: Map<string, Data> } {
  const map = new Map<string, Data>();
  const calls: string[] = [];
  return {
    calls,
    map,
    read(key) {
      calls.push(`read ${key}`);
      const value = map.get(key);
      return value === undefined ? undefined : structuredClone(value);
    },
    write(key, value) {
      calls.push(`write ${key}`);
      if (value !== undefined) map.set(key, structuredClone(value));
    },
    delete(key) {
      calls.push(`delete ${key}`);
      map.delete(key);
    },
  };
}

/**
 * Shaped like `RedisStorage`: a class with a public `prefix` (which made
 * `session(redisStorage)` type-check as options before) and an async
 * `connect` whose result is easy to forget to await.
 */
class RedisLikeStorage<S> extends MemorySessionStorage<S> {
  readonly prefix = "session:";
  static connect<S>(_url: string): Promise<RedisLikeStorage<S>> {
    return Promise.resolve(new RedisLikeStorage<S>());
  }
}

/** A handler that counts per chat without an `initial` value. */
function count(ctx: Context & SessionFlavor<Data | undefined>): void {
  ctx.session = { count: (ctx.session?.count ?? 0) + 1 };
}

Deno.test("validate: the storage shorthand uses the given storage", async (t) => {
  await t.step("session(storage) with a plain adapter object", async () => {
    const storage = recordingAdapter();
    const h = createHarness<Context & SessionFlavor<Data | undefined>>();
    h.bot.use(session<Data | undefined>(storage));
    h.bot.on("message", count);
    await h.send(message(7));
    await h.send(message(7));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(storage.map.get("7"), { count: 2 });
    assert.ok(storage.calls.includes("read 7"), storage.calls.join(", "));
    assert.ok(storage.calls.includes("write 7"), storage.calls.join(", "));
  });

  await t.step(
    "session(storage) with a RedisStorage-like MemorySessionStorage subclass",
    async () => {
      const storage = new RedisLikeStorage<Data | undefined>();
      const h = createHarness<Context & SessionFlavor<Data | undefined>>();
      h.bot.use(session(storage));
      h.bot.on("message", count);
      await h.send(message(8));
      // A second bot (a restarted process) over the same storage sees the data.
      const restarted = createHarness<Context & SessionFlavor<Data | undefined>>();
      restarted.bot.use(session(storage));
      restarted.bot.on("message", count);
      await restarted.send(message(8));
      assert.deepEqual([...h.errors, ...restarted.errors], []);
      assert.deepEqual(storage.read("8"), { count: 2 });
    },
  );

  await t.step("lazySession(storage) with a plain adapter object", async () => {
    const storage = recordingAdapter();
    const h = createHarness<Context & LazySessionFlavor<Data | undefined>>();
    h.bot.use(lazySession<Data | undefined>(storage));
    h.bot.on("message", async (ctx) => {
      const data = await ctx.session;
      ctx.session = { count: (data?.count ?? 0) + 1 };
    });
    await h.send(message(9));
    await h.send(message(9));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(storage.map.get("9"), { count: 2 });
  });

  await t.step("session(new RedisStorage(client)) reaches the client", async () => {
    const commands: string[][] = [];
    const client = {
      sendCommand(args: string[]): Promise<unknown> {
        commands.push(args);
        return Promise.resolve(null); // no session stored
      },
    };
    const storage = new RedisStorage<Data>(client);
    const h = createHarness<Context & SessionFlavor<Data>>();
    h.bot.use(session(storage));
    h.bot.on("message", (ctx) => ctx.reply(String(ctx.session)));
    await h.send(message(10));
    assert.deepEqual(h.errors, []);
    assert.ok(
      commands.some((args) => args.includes("session:10")),
      `no command for session:10 in ${JSON.stringify(commands)}`,
    );
  });

  await t.step("lazySession(new DenoKvStorage(kv)) stores in the KV database", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const storage = new DenoKvStorage<Data | undefined>(kv);
      const h = createHarness<Context & LazySessionFlavor<Data | undefined>>();
      h.bot.use(lazySession(storage));
      h.bot.on("message", async (ctx) => {
        const data = await ctx.session;
        ctx.session = { count: (data?.count ?? 0) + 1 };
      });
      await h.send(message(11));
      await h.send(message(11));
      assert.deepEqual(h.errors, []);
      assert.deepEqual(await new DenoKvStorage<Data>(kv).read("11"), { count: 2 });
    } finally {
      kv.close();
    }
  });

  await t.step("the shorthand is typed: SessionFlavor of the storage's data", () => {
    const memory = session(new MemorySessionStorage<Data>());
    const redis = session(new RedisStorage<Data>({ sendCommand: () => Promise.resolve(null) }));
    const lazy = lazySession(new RedisStorage<Data>({ sendCommand: () => Promise.resolve(null) }));
    const a: Equals<typeof memory, SessionMiddleware<SessionContext & SessionFlavor<Data>>> = true;
    const b: Equals<typeof redis, SessionMiddleware<SessionContext & SessionFlavor<Data>>> = true;
    const c: Equals<typeof lazy, SessionMiddleware<SessionContext & LazySessionFlavor<Data>>> =
      true;
    assert.ok(a && b && c);
    // and a bot whose context has the flavor takes it
    createHarness<Context & SessionFlavor<Data>>().bot.use(redis);
  });
});

Deno.test("validate: what stays valid", () => {
  const memory = new MemorySessionStorage<Data>();
  const valid: [string, () => unknown][] = [
    ["session()", () => session()],
    ["lazySession()", () => lazySession()],
    ["session(undefined)", () => session(undefined)],
    ["session({})", () => session({})],
    ["session({ storage: undefined })", () => session({ storage: undefined })],
    ["every option", () =>
      session<Data>({
        type: "single",
        initial: () => ({ count: 0 }),
        prefix: "p:",
        getSessionKey: (ctx) => String(ctx.chatId),
        storage: memory,
        onConflict: "overwrite",
        maxConflictRetries: 0,
        lock: { ttl: 1000, wait: 10 },
      })],
    [
      "a merge function",
      () => lazySession<Data>({ storage: memory, onConflict: (s) => s, maxConflictRetries: 3 }),
    ],
    ['onConflict: "error"', () => session<Data>({ onConflict: "error" })],
    ["lock: {}", () => session<Data>({ lock: {} })],
    ["a multi session", () =>
      session<{ a: Data; b: Data }>({
        type: "multi",
        a: { storage: memory, initial: () => ({ count: 0 }) },
        b: {},
      })],
    [
      "a lazy multi session",
      () => lazySession<{ a: Data }>({ type: "multi", a: { type: "single", prefix: "a:" } }),
    ],
  ];
  for (const [name, create] of valid) {
    assert.doesNotThrow(create, name);
  }
});

Deno.test("validate: a forgotten await fails at creation", async (t) => {
  const pending = RedisLikeStorage.connect<Data>("redis://127.0.0.1:6379");
  await t.step("as the options", () => {
    fails(() => session(loose(pending)), TypeError, /^session\(\): /, /Promise/, /await/);
    fails(() => lazySession(loose(pending)), TypeError, /^lazySession\(\): /, /await/);
  });
  await t.step("as the storage", () => {
    fails(
      () => session({ storage: loose(pending) }),
      TypeError,
      /^session\(\): storage is a Promise/,
      /storage: await /,
    );
    fails(() => lazySession({ storage: loose(pending) }), TypeError, /^lazySession\(\): /, /await/);
  });
  await t.step("as a fragment's storage or options", () => {
    fails(
      () => session(loose({ type: "multi", user: { storage: pending } })),
      TypeError,
      /^session\(\) fragment "user": storage is a Promise/,
      /await/,
    );
    fails(
      () => lazySession(loose({ type: "multi", chat: pending })),
      TypeError,
      /^lazySession\(\) fragment "chat": /,
      /await/,
    );
  });
  // The promise did resolve to a working storage; only the await was missing.
  const storage = await pending;
  assert.doesNotThrow(() => session(storage));
});

Deno.test("validate: a raw Deno.Kv fails at creation and names DenoKvStorage", async (t) => {
  const kv = await Deno.openKv(":memory:");
  try {
    const fix = /new DenoKvStorage\(kv\)/;
    const from = /@sessionkit\/grammy\/denokv/;
    await t.step("as the options", () => {
      fails(() => session(loose(kv)), TypeError, /^session\(\): /, /Deno\.Kv/, fix, from);
      fails(() => lazySession(loose(kv)), TypeError, /^lazySession\(\): /, fix, from);
    });
    await t.step("as the storage", () => {
      fails(() => session({ storage: loose(kv) }), TypeError, /^session\(\): storage /, fix, from);
      fails(() => lazySession({ storage: loose(kv) }), TypeError, /^lazySession\(\): /, fix);
    });
    await t.step("in a fragment", () => {
      fails(
        () => session(loose({ type: "multi", chat: { storage: kv } })),
        TypeError,
        /^session\(\) fragment "chat": storage /,
        fix,
      );
      fails(
        () => session(loose({ type: "multi", chat: kv })),
        TypeError,
        /^session\(\) fragment "chat": /,
        fix,
      );
    });
    await t.step("wrapped, it is accepted", () => {
      assert.doesNotThrow(() => session({ storage: new DenoKvStorage(kv) }));
      assert.doesNotThrow(() => session(new DenoKvStorage(kv)));
    });
  } finally {
    kv.close();
  }
});

Deno.test("validate: a storage missing read, write or delete names what is missing", () => {
  const read = () => undefined;
  const write = () => {};
  fails(
    () => session({ storage: loose({ read, write }) }),
    TypeError,
    /^session\(\): storage /,
    /delete\(\)/,
  );
  fails(
    () => lazySession({ storage: loose({ read }) }),
    TypeError,
    /^lazySession\(\): storage /,
    /write\(\) and delete\(\)/,
  );
  // As the only argument: storage-like, so not mistaken for options.
  fails(() => session(loose({ write, delete: write })), TypeError, /^session\(\): /, /read\(\)/);
  fails(
    () => session(loose({ type: "multi", user: { storage: { read, delete: write } } })),
    TypeError,
    /^session\(\) fragment "user": storage /,
    /write\(\)/,
  );
  fails(() => session({ storage: loose(42) }), TypeError, /^session\(\): storage /, /adapter/);
  fails(() => session({ storage: loose(null) }), TypeError, /^session\(\): storage /);
  fails(
    () => session({ storage: loose(MemorySessionStorage) }),
    TypeError,
    /^session\(\): storage /,
    /new /,
  );
});

Deno.test("validate: unknown option names fail with the closest valid name", () => {
  const memory = new MemorySessionStorage<Data>();
  fails(
    () => session(loose({ storge: memory })),
    TypeError,
    /^session\(\): unknown option "storge"/,
    /did you mean "storage"\?/,
  );
  fails(
    () => lazySession(loose({ intial: () => ({ count: 0 }) })),
    TypeError,
    /^lazySession\(\): unknown option "intial"/,
    /did you mean "initial"\?/,
  );
  fails(
    () => session(loose({ getSessionkey: () => "1" })),
    TypeError,
    /did you mean "getSessionKey"\?/,
  );
  fails(() => session(loose({ onconflict: "overwrite" })), TypeError, /did you mean "onConflict"/);
  fails(() => session(loose({ retries: 3 })), TypeError, /did you mean "maxConflictRetries"/);
  fails(
    () => session(loose({ type: "multi", user: { storge: memory } })),
    TypeError,
    /^session\(\) fragment "user": unknown option "storge"/,
    /did you mean "storage"\?/,
  );
  // Options of a single session that look like fragments: type: "multi" was forgotten.
  fails(
    () => session(loose({ chat: { initial: () => ({ count: 0 }) } })),
    TypeError,
    /unknown option "chat"/,
    /type: "multi"/,
  );
  fails(
    () => session(loose({ lock: { ttl: 100, timeout: 5 } })),
    TypeError,
    /^session\(\): unknown option "lock\.timeout"/,
  );
  // Every valid name is listed when nothing is close.
  fails(
    () => session(loose({ zzzzzzzz: 1 })),
    TypeError,
    /unknown option "zzzzzzzz"/,
    /type, initial, prefix, getSessionKey, storage, onConflict, maxConflictRetries, lock/,
  );
});

Deno.test("validate: known options of the wrong type fail", async (t) => {
  await t.step("initial, getSessionKey, prefix", () => {
    fails(
      () => session(loose({ initial: { count: 0 } })),
      TypeError,
      /^session\(\): initial must be a function/,
      /initial: \(\) => /,
    );
    fails(
      () => lazySession(loose({ getSessionKey: "perUser" })),
      TypeError,
      /^lazySession\(\): getSessionKey must be a function/,
    );
    fails(() => session(loose({ prefix: 1 })), TypeError, /^session\(\): prefix must be a string/);
  });
  await t.step("maxConflictRetries", () => {
    fails(
      () => session({ maxConflictRetries: -1 }),
      RangeError,
      /^session\(\): maxConflictRetries must be a non-negative integer, got -1/,
    );
    fails(() => session({ maxConflictRetries: 1.5 }), RangeError, /non-negative integer/);
    fails(() => session({ maxConflictRetries: Infinity }), RangeError, /non-negative integer/);
    fails(() => session(loose({ maxConflictRetries: "5" })), TypeError, /non-negative integer/);
  });
  await t.step("onConflict", () => {
    fails(
      () => session(loose({ onConflict: "merge" })),
      RangeError,
      /^session\(\): onConflict must be "error", "overwrite" or a merge function .*, got "merge"/,
    );
    fails(() => session(loose({ onConflict: true })), TypeError, /onConflict must be/);
  });
  await t.step("lock", () => {
    fails(() => session(loose({ lock: true })), TypeError, /^session\(\): lock must be an object/);
    fails(() => session(loose({ lock: null })), TypeError, /lock must be an object/);
    fails(
      () => session({ lock: { ttl: 0 } }),
      RangeError,
      /^session\(\): lock\.ttl must be a positive number of milliseconds, got 0/,
    );
    fails(() => session({ lock: { wait: -5 } }), RangeError, /lock\.wait must be a positive/);
    fails(() => session(loose({ lock: { ttl: "1000" } })), TypeError, /lock\.ttl must be/);
    fails(() => session({ lock: { ttl: 2 ** 31 } }), RangeError, /lock\.ttl must be at most/);
  });
  await t.step("type", () => {
    fails(
      () => session(loose({ type: "mutli" })),
      RangeError,
      /^session\(\): type must be "single" or "multi", got "mutli"/,
      /did you mean "multi"\?/,
    );
    fails(() => lazySession(loose({ type: 1 })), TypeError, /^lazySession\(\): type must be/);
  });
  await t.step("the options themselves", () => {
    fails(() => session(loose(null)), TypeError, /^session\(\): /, /options object/);
    fails(() => session(loose("storage")), TypeError, /^session\(\): /, /options object/);
    fails(
      () => session(loose(() => ({ count: 0 }))),
      TypeError,
      /^session\(\): /,
      /\{ initial: /,
    );
    fails(() => lazySession(loose([])), TypeError, /^lazySession\(\): /);
  });
  await t.step("in a fragment, with the fragment's name", () => {
    fails(
      () => session(loose({ type: "multi", user: { initial: 5 } })),
      TypeError,
      /^session\(\) fragment "user": initial must be a function/,
    );
    fails(
      () => lazySession(loose({ type: "multi", chat: { maxConflictRetries: -1 } })),
      RangeError,
      /^lazySession\(\) fragment "chat": maxConflictRetries/,
    );
    fails(
      () => session(loose({ type: "multi", chat: { type: "multi" } })),
      RangeError,
      /^session\(\) fragment "chat": type must be "single"/,
    );
  });
});

Deno.test("validate: multi-session fragments must be options objects", () => {
  for (const bad of [undefined, null, 5, "chat", () => ({ count: 0 }), []]) {
    fails(
      () => session(loose({ type: "multi", chat: bad })),
      TypeError,
      /^session\(\) fragment "chat": /,
      /options object/,
    );
  }
  // A single-session option at the top of a multi session.
  fails(
    () => session(loose({ type: "multi", initial: () => ({}) })),
    TypeError,
    /^session\(\) fragment "initial": /,
    /option of a single session/,
  );
  // A storage adapter given as a fragment's options.
  fails(
    () => lazySession(loose({ type: "multi", chat: new MemorySessionStorage() })),
    TypeError,
    /^lazySession\(\) fragment "chat": /,
    /chat: \{ storage \}/,
  );
});

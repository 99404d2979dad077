/**
 * Shared by the adapter tests (tests/plugins/adapters_*_test.ts,
 * grammy_with_sessionkit_storages_test.ts, migration_test.ts): one scenario
 * runs on grammY's `session()`/`lazySession()`/`enhanceStorage` and on
 * sessionkit's, over a `Space` (the data of one storage: an adapter package
 * on a real backend, or a sessionkit storage), and reports what it saw and
 * what was stored, so the tests can assert the same outcome on both, or the
 * documented difference.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Context,
  enhanceStorage as grammyEnhance,
  lazySession as grammyLazySession,
  type MiddlewareFn,
  session as grammySession,
} from "npm:grammy@^1.46";
import { FileAdapter } from "npm:@grammyjs/storage-file@^2";
import { enhanceStorage, lazySession, session, type StorageAdapter } from "../../mod.ts";
import { FakeTime } from "../helpers/clock.ts";
import { createHarness, type Harness, message } from "../helpers/bot.ts";

/** Both libraries' contexts, loosely typed so that one scenario runs on both. */
// deno-lint-ignore no-explicit-any
export type Loose = Context & { session: any };
export type Lib = "grammY" | "sessionkit";
export type Kind = "strict" | "lazy";
export const LIBS: Lib[] = ["grammY", "sessionkit"];
export const KINDS: Kind[] = ["strict", "lazy"];

/** The data of one storage, and a way to open it again, as a restarted bot would. */
export interface Space {
  /** What the scenarios call it. */
  name: string;
  /** Put in front of every key by the session middleware (the adapters have no prefix). */
  prefix: string;
  /** A new adapter instance over this space's data. */
  adapter(): Promise<StorageAdapter<unknown>>;
  /** What is stored under `key` (prefix excluded), parsed; `undefined` if nothing. */
  stored(key: string): Promise<unknown>;
  /** Stores `value` under `key` (prefix excluded) as another program would have. */
  put(key: string, value: unknown): Promise<void>;
  /** Removes the data and closes every connection. */
  close(): Promise<void>;
}

/** A session middleware of `lib`, strict or lazy. */
export function middleware(
  lib: Lib,
  kind: Kind,
  options: { initial?: () => unknown; storage: StorageAdapter<unknown>; prefix?: string },
): MiddlewareFn<Loose> {
  const make = lib === "grammY"
    ? (kind === "strict" ? grammySession : grammyLazySession)
    : (kind === "strict" ? session : lazySession);
  return (make as (o: unknown) => unknown)(options) as MiddlewareFn<Loose>;
}

/** `enhanceStorage` of `lib`. */
export function enhance(
  lib: Lib,
  options: {
    storage: StorageAdapter<unknown>;
    // deno-lint-ignore no-explicit-any
    migrations?: Record<number, (old: any) => any>;
    millisecondsToLive?: number;
  },
): StorageAdapter<unknown> {
  // deno-lint-ignore no-explicit-any
  const make = (lib === "grammY" ? grammyEnhance : enhanceStorage) as (o: any) => any;
  return make(options);
}

/** A storage with its write and delete calls counted. */
export type Counted = StorageAdapter<unknown> & { counts: { write: number; delete: number } };

const FORWARDED = [
  "read",
  "has",
  "readAllKeys",
  "readAllValues",
  "readAllEntries",
  "readVersioned",
  "acquireLease",
  "renewLease",
  "releaseLease",
] as const;

/**
 * Counts `write`/`writeIfVersion` and `delete`/`deleteIfVersion` calls of
 * `storage`, forwarding every method it has (a plain object, so conditional
 * writes and leases of a sessionkit storage stay available).
 */
export function counted(storage: StorageAdapter<unknown>): Counted {
  // deno-lint-ignore no-explicit-any
  const s = storage as any;
  const counts = { write: 0, delete: 0 };
  // deno-lint-ignore no-explicit-any
  const out: any = { counts };
  for (const name of FORWARDED) {
    if (typeof s[name] === "function") out[name] = (...args: unknown[]) => s[name](...args);
  }
  for (const name of ["write", "writeIfVersion"]) {
    if (typeof s[name] !== "function") continue;
    out[name] = (...args: unknown[]) => (counts.write++, s[name](...args));
  }
  for (const name of ["delete", "deleteIfVersion"]) {
    if (typeof s[name] !== "function") continue;
    out[name] = (...args: unknown[]) => (counts.delete++, s[name](...args));
  }
  if ("leaseProblem" in s) {
    Object.defineProperty(out, "leaseProblem", { get: () => s.leaseProblem });
  }
  return out as Counted;
}

/** The errors that reached bot.catch, as text. */
export function errorsOf(h: Harness<Loose>): string[] {
  return h.errors.map((e) => String(e.error));
}

type Counter = { count: number };

/** A counter bot: "/inc" counts, "/look" only reads, "/undef" and "/null" delete. */
function counterBot(lib: Lib, kind: Kind, storage: StorageAdapter<unknown>, prefix: string) {
  const h = createHarness<Loose>();
  h.bot.use(middleware(lib, kind, { initial: (): Counter => ({ count: 0 }), storage, prefix }));
  h.bot.command("undef", (ctx) => void (ctx.session = undefined));
  h.bot.command("null", (ctx) => void (ctx.session = null));
  h.bot.command("inc", async (ctx) => ctx.reply(String(++(await ctx.session).count)));
  h.bot.command("look", async (ctx) => ctx.reply(String((await ctx.session).count)));
  return h;
}

/** What {@link counterScenario} saw. */
export interface CounterOutcome {
  replies: string[];
  errors: string[];
  afterTwo: unknown;
  /** Writes made by a read-only update. */
  readOnlyWrites: number;
  afterRestart: unknown;
  afterUndefined: unknown;
  /** What a read-only update of a chat with nothing stored left behind. */
  afterLookOnEmpty: unknown;
  afterNull: unknown;
}

/**
 * Counts on chat 1 across updates, restarts (a new Bot and a new adapter over
 * the same data), deletes with `ctx.session = undefined`, looks at the empty
 * chat, counts again and deletes with `ctx.session = null`.
 */
export async function counterScenario(space: Space, lib: Lib, kind: Kind): Promise<CounterOutcome> {
  const first = counted(await space.adapter());
  const h1 = counterBot(lib, kind, first, space.prefix);
  await h1.send(message(1, "/inc"));
  await h1.send(message(1, "/inc"));
  const afterTwo = await space.stored("1");
  const before = first.counts.write;
  await h1.send(message(1, "/look"));
  const readOnlyWrites = first.counts.write - before;

  const h2 = counterBot(lib, kind, counted(await space.adapter()), space.prefix); // the restart
  await h2.send(message(1, "/inc"));
  const afterRestart = await space.stored("1");
  await h2.send(message(1, "/undef"));
  const afterUndefined = await space.stored("1");
  await h2.send(message(1, "/look"));
  const afterLookOnEmpty = await space.stored("1");
  await h2.send(message(1, "/inc"));
  await h2.send(message(1, "/null"));
  const afterNull = await space.stored("1");
  return {
    replies: [...h1.replies(), ...h2.replies()],
    errors: [...errorsOf(h1), ...errorsOf(h2)],
    afterTwo,
    readOnlyWrites,
    afterRestart,
    afterUndefined,
    afterLookOnEmpty,
    afterNull,
  };
}

/** What grammY's session gives in {@link counterScenario}. */
export const GRAMMY_COUNTER: CounterOutcome = {
  replies: ["1", "2", "2", "3", "0", "1"],
  errors: [],
  afterTwo: { count: 2 },
  readOnlyWrites: 1,
  afterRestart: { count: 3 },
  afterUndefined: undefined,
  afterLookOnEmpty: { count: 0 },
  afterNull: undefined,
};

/** Runs {@link counterScenario} on both libraries and asserts the outcomes. */
export async function assertCounterParity(open: () => Promise<Space>, kind: Kind): Promise<void> {
  const out: Partial<Record<Lib, CounterOutcome>> = {};
  for (const lib of LIBS) {
    const space = await open();
    try {
      out[lib] = await counterScenario(space, lib, kind);
    } finally {
      await space.close();
    }
  }
  assert.deepEqual(out.grammY, GRAMMY_COUNTER, "grammY");
  assert.deepEqual(
    out.sessionkit,
    { ...GRAMMY_COUNTER, readOnlyWrites: 0, afterLookOnEmpty: undefined },
    "documented differences only: sessionkit writes only changed sessions (a read-only update " +
      "writes nothing) and never writes an untouched initial value",
  );
}

type Pets = { pets: string[]; count: number };

/** Migrations of the scenarios: 1 turns `pet` into `pets`, 2 adds `count`. */
export const MIGRATIONS = {
  1: (old: { pet?: string }) => ({ pets: old.pet ? [old.pet] : [] }),
  2: (old: { pets: string[] }): Pets => ({ ...old, count: 0 }),
};
/** The time to live of the scenarios, in ms. */
export const TTL = 10_000;

/** What {@link enhanceScenario} saw. */
export interface EnhanceOutcome {
  replies: string[];
  errors: string[];
  /** Stored after reading data written before migrations (unversioned, no envelope). */
  plainMigrated: unknown;
  /** Stored after counting on data at migration version 1. */
  v1Migrated: unknown;
  /** Stored after a read-only update just past the TTL, and 1.5 TTLs after. */
  pastTtl: unknown;
  pastLifetime: unknown;
  /** Expiry stored by the first update, relative to its time. */
  expiresIn: unknown;
}

/**
 * `enhanceStorage` of `lib` with migrations and a TTL over the space: data
 * from before migrations and data at version 1 are migrated, then a session
 * is read just after the TTL and 1.5 TTLs after its last use (fake clock).
 */
export async function enhanceScenario(space: Space, lib: Lib, kind: Kind): Promise<EnhanceOutcome> {
  using clock = new FakeTime();
  await space.put("1", { pet: "cat" }); // a plain session() stored it, before enhanceStorage
  await space.put("2", { v: 1, __d: { pets: ["dog"] } });
  const storage = enhance(lib, {
    storage: await space.adapter(),
    migrations: MIGRATIONS,
    millisecondsToLive: TTL,
  });
  const h = createHarness<Loose>();
  h.bot.use(middleware(lib, kind, {
    initial: (): Pets => ({ pets: [], count: 0 }),
    storage,
    prefix: space.prefix,
  }));
  const show = (s: Pets) => `${s.pets.join(",")}:${s.count}`;
  h.bot.command("inc", async (ctx) => {
    const s = await ctx.session;
    s.count++;
    await ctx.reply(show(s));
  });
  h.bot.command("look", async (ctx) => ctx.reply(show(await ctx.session)));
  const start = Date.now();
  await h.send(message(1, "/look"));
  const plainMigrated = await space.stored("1");
  await h.send(message(2, "/inc"));
  const v1Migrated = await space.stored("2");
  clock.tick(TTL + 1);
  await h.send(message(2, "/look"));
  const pastTtl = await space.stored("2");
  clock.tick(TTL * 1.5);
  await h.send(message(2, "/look"));
  const pastLifetime = await space.stored("2");
  const e = (plainMigrated as { e?: number } | undefined)?.e;
  return {
    replies: h.replies(),
    errors: errorsOf(h),
    plainMigrated: { ...plainMigrated as object, e: undefined },
    v1Migrated: { ...v1Migrated as object, e: undefined },
    pastTtl: pastTtl === undefined ? undefined : { ...pastTtl as object, e: undefined },
    pastLifetime: pastLifetime === undefined
      ? undefined
      : { ...pastLifetime as object, e: undefined },
    expiresIn: e === undefined ? undefined : e - start,
  };
}

/** Runs {@link enhanceScenario} on both libraries and asserts the outcomes. */
export async function assertEnhanceParity(open: () => Promise<Space>, kind: Kind): Promise<void> {
  const out: Partial<Record<Lib, EnhanceOutcome>> = {};
  for (const lib of LIBS) {
    const space = await open();
    try {
      out[lib] = await enhanceScenario(space, lib, kind);
    } finally {
      await space.close();
    }
  }
  const envelope = (d: unknown) => ({ v: 2, __d: d, e: undefined });
  assert.deepEqual(out.grammY, {
    replies: ["cat:0", "dog:1", ":0", ":0"],
    errors: [],
    plainMigrated: envelope({ pets: ["cat"], count: 0 }),
    v1Migrated: envelope({ pets: ["dog"], count: 1 }),
    // expired: grammY deleted it, then wrote the initial value it read instead
    pastTtl: envelope({ pets: [], count: 0 }),
    pastLifetime: envelope({ pets: [], count: 0 }),
    expiresIn: TTL,
  }, "grammY");
  assert.deepEqual(
    out.sessionkit,
    {
      ...out.grammY,
      replies: ["cat:0", "dog:1", "dog:1", ":0"],
      pastTtl: envelope({ pets: ["dog"], count: 1 }),
      pastLifetime: undefined,
      expiresIn: TTL * 1.5,
    },
    "documented differences only: sessionkit stores the expiry 1.5 TTLs ahead, so a session is still there just after one TTL (gone 1.5 TTLs after its last use), and an expired session is deleted, not replaced by an untouched initial value",
  );
}

/** A `@grammyjs/storage-file` space in a temporary directory of its own. */
export function fileSpace(): Promise<Space & { dir: string }> {
  const dir = Deno.makeTempDirSync({ prefix: "sk-storage-file-" });
  // Where FileAdapter keeps a key: a folder named by the key's last two characters.
  const path = (key: string) => join(dir, key.slice(-2), `${key}.json`);
  return Promise.resolve({
    name: "@grammyjs/storage-file",
    dir,
    prefix: "",
    adapter: () => Promise.resolve(new FileAdapter<unknown>({ dirName: dir })),
    async stored(key) {
      try {
        return JSON.parse(await Deno.readTextFile(path(key)));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return undefined;
        throw err;
      }
    },
    async put(key, value) {
      await Deno.mkdir(join(dir, key.slice(-2)), { recursive: true });
      await Deno.writeTextFile(path(key), JSON.stringify(value));
    },
    close: () => Deno.remove(dir, { recursive: true }),
  });
}

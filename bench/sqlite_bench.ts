/**
 * SQLite through `node:sqlite`'s `DatabaseSync`, on a database file in a
 * temporary directory (WAL mode, `synchronous = NORMAL`, as docs/sqlite.md
 * recommends), through a real `Bot.handleUpdate`, one update after another.
 * Rows:
 *
 * - raw `node:sqlite` prepared statements, `SELECT` + upsert, written only
 *   when changed (the limit, baseline);
 * - sessionkit `session()` on `SqliteStorage` (defaults: conflict detection
 *   on, so a write is an `UPDATE ... WHERE "version" = ?`).
 *
 * There is no grammY row: no `@grammyjs/storage-*` adapter for SQLite is
 * published on npm (`npm view @grammyjs/storage-sqlite` answers 404, as do
 * `storage-typeorm` and `storage-denodb`; `@grammyjs/storage-prisma` needs
 * a generated Prisma client and schema, it is not an adapter for a SQLite
 * handle), so there is nothing maintained to compare against.
 *
 * Plus the storage alone against the driver for the same statements, and
 * the cost of conflict detection.
 *
 * Fairness of the limit: both sides use the same handle (so the same file,
 * journal mode, page cache and pragmas) and statements prepared once. The
 * raw table has the storage's key and value columns exactly
 * (`"key" TEXT NOT NULL PRIMARY KEY`, `"value" TEXT NOT NULL`, a rowid table
 * like the storage's), which is all that storing and reading back the exact
 * JSON text under a key needs; it leaves out the storage's `version` and
 * `expires_at` columns (and the partial index on `expires_at`), because the
 * raw path neither detects conflicts nor expires sessions: that bookkeeping
 * is what the ratio measures. `node:sqlite` is synchronous and sessionkit
 * uses a synchronous storage without promises, so the raw middleware does
 * not await its statements either (`rawSession` of `_bot.ts` awaits, which
 * would add a microtask per statement that the storage does not pay), and
 * the "storage vs driver" rows are synchronous functions on both sides (a
 * storage call that answered with a promise fails the row).
 *
 * Every row's bot handles `WARMUP_UPDATES` updates before anything is
 * measured (these rows are microseconds, as the memory rows are, so the
 * first rows would otherwise also pay for V8 compiling grammY's code).
 *
 * Every table starts with a unique `skbench_<run>` name; the last bench of
 * this file drops them, closes the handle and removes the directory.
 *
 * Run: `deno bench -A --no-check=remote bench/sqlite_bench.ts`. With
 * `BENCH_QUICK=1` every row runs only 20 iterations (and the warm-up is
 * 200 updates): a check that the file works, not a measurement.
 */

import { DatabaseSync } from "node:sqlite";
import type { Context, MiddlewareFn } from "npm:grammy@^1.46";
import { session } from "../mod.ts";
import { type MaybePromise, SqliteStorage } from "../storages/sqlite.ts";
import {
  CHATS,
  type Data,
  driver,
  initial,
  makeBot,
  mixedHandler,
  mixedUpdates,
  RUN,
} from "./_bot.ts";

const QUICK = Deno.env.get("BENCH_QUICK") === "1";
const BATCH = 10;
const OPTS = QUICK ? { n: 20, warmup: 5 } as const : { n: 3000, warmup: 300 } as const;
/** Updates every bot handles before anything is measured. */
const WARMUP_UPDATES = QUICK ? 200 : 20_000;

const dir = await Deno.makeTempDir({ prefix: "sessionkit-bench-sqlite-" });
const db = new DatabaseSync(`${dir}/bench.db`);
db.exec("PRAGMA journal_mode = WAL");
db.exec("PRAGMA synchronous = NORMAL");

const tables: string[] = [];
const q = (name: string) => `"${name.replaceAll('"', '""')}"`;
const warm: (() => Promise<void>)[] = [];

/** A synchronous answer of the storage; a promise would mean the bench measures something else. */
function now<T>(value: MaybePromise<T>): T {
  if (typeof (value as { then?: unknown } | null)?.then === "function") {
    throw new Error("SqliteStorage answered with a promise: the synchronous rows are void.");
  }
  return value as T;
}

/**
 * The limit rows' table and its two prepared statements: the storage's key
 * and value columns, without its version and expiry bookkeeping.
 */
function rawTable(tag: string) {
  const name = `${RUN}_raw_${tag}`;
  tables.push(name);
  db.exec(`CREATE TABLE ${q(name)} ("key" TEXT NOT NULL PRIMARY KEY, "value" TEXT NOT NULL)`);
  const select = db.prepare(`SELECT "value" FROM ${q(name)} WHERE "key" = ?`);
  const upsert = db.prepare(`INSERT INTO ${q(name)} ("key", "value") VALUES (?, ?)
ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value"`);
  const get = (key: string) =>
    (select.get(key) as { value: string } | undefined)?.value as string | undefined;
  const set = (key: string, text: string) => void upsert.run(key, text);
  for (let chat = 1; chat <= CHATS; chat++) set(String(chat), JSON.stringify(initial()));
  return { get, set };
}

function skStorage(tag: string) {
  const table = `${RUN}_sk_${tag}`;
  tables.push(table, `${table}_leases`);
  const storage = new SqliteStorage<Data>(db, { table });
  for (let chat = 1; chat <= CHATS; chat++) now(storage.write(String(chat), initial()));
  return storage;
}

/**
 * `rawSession` of `_bot.ts` for a synchronous driver: reads the JSON text of
 * the chat's session and writes it back only when it changed, without
 * awaiting either statement.
 */
function rawSyncSession(
  get: (key: string) => string | undefined,
  set: (key: string, text: string) => void,
): MiddlewareFn<Context & { session: Data }> {
  return async (ctx, next) => {
    const key = String(ctx.chatId);
    const before = get(key);
    const data: Data = before == null ? initial() : JSON.parse(before);
    Object.defineProperty(ctx, "session", { value: data, writable: true });
    await next();
    const after = JSON.stringify(ctx.session);
    if (after !== before) set(key, after);
  };
}

const updates = mixedUpdates(CHATS);
for (
  const [label, every] of [["read-mostly, 1 write in 10 updates", 10], [
    "write-heavy, every update writes",
    1,
  ]] as const
) {
  const group = `SQLite, ${label}`;
  const tag = every === 1 ? "w" : "r";
  const raw = rawTable(tag);
  const rows: [string, Parameters<typeof makeBot>[0]][] = [
    ["raw node:sqlite SELECT + upsert (limit)", rawSyncSession(raw.get, raw.set)],
    ["sessionkit session + SqliteStorage", session<Data>({ initial, storage: skStorage(tag) })],
  ];
  for (const [name, middleware] of rows) {
    const bot = makeBot(middleware, mixedHandler(every));
    // deno-lint-ignore no-explicit-any
    const fn = driver(bot as any, updates, BATCH);
    warm.push(fn);
    Deno.bench({ ...OPTS, group, name, baseline: name.endsWith("(limit)"), fn });
  }
}

// The storage alone vs the driver: one read and one write per iteration.
{
  const group = "SQLite storage vs driver, one read + one write";
  const raw = rawTable("drv");
  const storage = skStorage("drv");
  let i = 0;
  Deno.bench({
    ...OPTS,
    group,
    name: "node:sqlite SELECT + upsert with JSON (limit)",
    baseline: true,
    fn: () => {
      const key = String(i++ % CHATS + 1);
      const text = raw.get(key);
      const data: Data = text == null ? initial() : JSON.parse(text);
      data.count++;
      raw.set(key, JSON.stringify(data));
    },
  });
  Deno.bench({
    ...OPTS,
    group,
    name: "SqliteStorage read + write",
    fn: () => {
      const key = String(i++ % CHATS + 1);
      const data = now(storage.read(key)) ?? initial();
      data.count++;
      now(storage.write(key, data));
    },
  });
  Deno.bench({
    ...OPTS,
    group,
    name: "SqliteStorage readVersioned + writeIfVersion",
    fn: () => {
      const key = String(i++ % CHATS + 1);
      const { value, version } = now(storage.readVersioned(key));
      const data = value ?? initial();
      data.count++;
      if (now(storage.writeIfVersion(key, data, version)) === null) {
        throw new Error(`SqliteStorage: the conditional write of ${key} found another version`);
      }
    },
  });
}

// Conflict detection in one process: off (overwrite) vs on (the default).
{
  const group = "SQLite, conflict detection cost (every update writes)";
  for (
    const [name, onConflict] of [["detection off (overwrite)", "overwrite"], [
      "detection on (default)",
      undefined,
    ]] as const
  ) {
    const storage = skStorage(`det_${onConflict ?? "on"}`);
    const bot = makeBot(session<Data>({ initial, onConflict, storage }), mixedHandler(1));
    // deno-lint-ignore no-explicit-any
    const fn = driver(bot as any, updates, BATCH);
    warm.push(fn);
    Deno.bench({ ...OPTS, group, name, baseline: onConflict === "overwrite", fn });
  }
}

let cleaned = false;
Deno.bench({
  name: "SQLite cleanup (drops this run's tables, removes the file)",
  group: "cleanup",
  n: 1,
  warmup: 0,
  fn: async () => {
    if (cleaned) return; // deno bench may call this more than once
    cleaned = true;
    for (const table of tables) db.exec(`DROP TABLE IF EXISTS ${q(table)}`);
    db.close();
    await Deno.remove(dir, { recursive: true });
  },
});

for (const run of warm) {
  for (let n = 0; n < WARMUP_UPDATES / BATCH; n++) await run();
}

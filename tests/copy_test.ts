/**
 * `copySessions`, `exportSessions` and `importSessions` (#20) through real
 * servers: Redis at REDIS_URL, PostgreSQL at DATABASE_URL, SQLite
 * (`node:sqlite`) and Deno KV on temporary files. Skip vs overwrite, dry
 * runs, the prefix filter, failures of one key, an interrupted copy run
 * again, `enhanceStorage` sources both ways, grammY's own adapters as
 * sources, JSON Lines round trips with malformed input, and the chain Redis
 * -> Deno KV -> PostgreSQL -> SQLite -> Redis, byte-identical at the end.
 *
 * `COPY_FULL=1` runs the chain with 100,000 sessions and checks that the
 * memory the copy uses stays bounded (`deno task test:copy`).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type Context, MemorySessionStorage as GrammyMemory } from "npm:grammy@^1.46";
import { FileAdapter } from "npm:@grammyjs/storage-file@^2";
import {
  type CopyProgress,
  copySessions,
  type Enhance,
  enhanceStorage,
  exportSessions,
  importSessions,
  MemorySessionStorage,
  session as sessionMiddleware,
  type SessionFlavor,
  type StorageAdapter,
} from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { SqliteStorage } from "../storages/sqlite.ts";
import type { RedisStorage } from "../storages/redis.ts";
import { type Admin, redisAvailable, RedisFixture, redisTest } from "./redis_env.ts";
import { DATABASE_URL, dropTables, id, pg, RUN, whenReachable } from "./postgres_setup.ts";
import { rawRows, SqliteFiles } from "./sqlite_env.ts";
import { createHarness, message } from "./helpers/bot.ts";

const FULL = Deno.env.get("COPY_FULL") === "1";
/** Sessions in the chain. */
const CHAIN_N = FULL ? 100_000 : 2_000;

type Data = Record<string, unknown>;

/** Registers a test that needs Redis and PostgreSQL (skipped loudly, failing on CI, without). */
function serversTest(name: string, fn: (w: World) => Promise<void>): void {
  whenReachable(name, () =>
    redisTest(name, async () => {
      const w = new World();
      try {
        await fn(w);
      } finally {
        await w.cleanup();
      }
    }));
}

/** The storages one test opens, each in a namespace of its own, all removed at the end. */
class World {
  readonly redis = new RedisFixture();
  readonly sqlite = new SqliteFiles();
  readonly dir = Deno.makeTempDirSync({ prefix: "sk-copy-" });
  readonly pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
  readonly #kvs: Deno.Kv[] = [];
  readonly #pg: PostgresStorage<unknown>[] = [];
  #n = 0;

  constructor() {
    this.pool.on("error", () => {});
  }

  redisStorage<T = Data>(): Promise<RedisStorage<T>> {
    return this.redis.storage<T>();
  }

  async kvStorage<T = Data>(): Promise<DenoKvStorage<T>> {
    const kv = await Deno.openKv(`${this.dir}/kv${++this.#n}.sqlite3`);
    this.#kvs.push(kv);
    return new DenoKvStorage<T>(kv, { prefix: ["sessions"] });
  }

  pgStorage<T = Data>(
    make: new (db: pg.Pool, options: { table: string }) => PostgresStorage<T> = PostgresStorage,
  ): PostgresStorage<T> {
    const storage = new make(this.pool, { table: `${RUN}_copy_${++this.#n}` });
    this.#pg.push(storage as PostgresStorage<unknown>);
    return storage;
  }

  sqliteStorage<T = Data>(): SqliteStorage<T> {
    const path = this.sqlite.path();
    // WAL without a sync per commit: the default journal syncs every write
    // (about 100 writes/s here), which a bulk copy into SQLite should avoid.
    const db = this.sqlite.open(path, undefined, true);
    db.exec("PRAGMA synchronous = NORMAL");
    const storage = new SqliteStorage<T>(db);
    sqlitePaths.set(storage, path);
    return storage;
  }

  /** `key` -> stored JSON text of a PostgreSQL storage, as the server holds it. */
  async pgTexts(storage: PostgresStorage<unknown>): Promise<Map<string, string>> {
    const { rows } = await this.pool.query(
      `SELECT key, value::text AS value FROM ${id(storage.table)}`,
    );
    return new Map(rows.map((r: { key: string; value: string }) => [r.key, r.value]));
  }

  async cleanup(): Promise<void> {
    try {
      await this.redis.cleanup();
      for (const kv of this.#kvs) kv.close();
      for (const storage of this.#pg) {
        await storage.close();
        await dropTables(this.pool, storage);
      }
    } finally {
      await this.pool.end();
      this.sqlite.cleanup();
      Deno.removeSync(this.dir, { recursive: true });
    }
  }
}

const sqlitePaths = new WeakMap<object, string>();

/** `key` -> stored JSON text of a SQLite storage, read on a handle of its own. */
function sqliteTexts(storage: SqliteStorage<unknown>): Map<string, string> {
  const db = new DatabaseSync(sqlitePaths.get(storage)!);
  try {
    return new Map(rawRows(db, storage.table).map((r) => [r.key, r.value]));
  } finally {
    db.close();
  }
}

/** `key` -> stored JSON text under a Redis storage's prefix. */
async function redisTexts(admin: Admin, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let cursor = "0";
  do {
    const reply = await admin.scan(cursor, { MATCH: `${prefix}*`, COUNT: 1000 });
    cursor = String(reply.cursor);
    if (reply.keys.length === 0) continue;
    const texts = await admin.mGet(reply.keys);
    reply.keys.forEach((k, i) => out.set(k.slice(prefix.length), texts[i]!));
  } while (cursor !== "0");
  return out;
}

/** A session with every kind of JSON value, different for every `i`. */
function session(i: number): Data {
  const value: Data = {
    count: i,
    name: `user ${i} ñ 😀 "quoted" \\ back/slash`,
    flags: [true, false, null],
    ratio: i / 7,
    big: Number.MAX_SAFE_INTEGER - i,
    tiny: -i * 1e-7,
    nested: { deep: { list: [i, `${i}`, { x: i % 3 === 0 ? "\u2028\u2029\u0000" : "\t\n" }] } },
    pad: "x".repeat(i % 400),
  };
  if (i % 5 === 0) value.lone = "\ud800 lone surrogate";
  if (i % 7 === 0) value.empty = { a: [], o: {}, s: "" };
  return value;
}

/** The key of session `i`, of a few shapes. */
function keyOf(i: number): string {
  return i % 10 === 0 ? `user:ñ 😀/${i}` : i % 3 === 0 ? `group:-100.${i}` : `chat:${i}`;
}

/** The `i` of `keyOf(i)`. */
function indexOfKey(key: string): number {
  return Number(/(\d+)$/.exec(key)![1]);
}

/** Writes sessions `from` to `to - 1` into `storage`. */
async function fill(storage: StorageAdapter<Data>, to: number, from = 0): Promise<void> {
  const writes: Promise<void>[] = [];
  for (let i = from; i < to; i++) {
    writes.push(Promise.resolve(storage.write(keyOf(i), session(i))));
    if (writes.length >= 200) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
}

async function all<T>(storage: StorageAdapter<T>): Promise<Map<string, T>> {
  const out = new Map<string, T>();
  for await (const [k, v] of storage.readAllEntries!()) out.set(k, v);
  return out;
}

serversTest("copySessions: skip vs overwrite, on every kind of target", async (w) => {
  const from = w.sqliteStorage();
  await fill(from, 300);
  const redis = await w.redisStorage();
  // Targets: conditional writes (PostgreSQL), has() but no conditional
  // writes (grammY's memory storage), and only read/write/delete.
  const targets: [string, StorageAdapter<Data>][] = [
    ["PostgreSQL (writeIfVersion)", w.pgStorage()],
    ["grammY's MemorySessionStorage (has)", new GrammyMemory<Data>()],
    ["read/write/delete only (over Redis)", {
      read: (k) => redis.read(k),
      write: (k, v) => redis.write(k, v),
      delete: (k) => redis.delete(k),
    }],
  ];
  for (const [name, to] of targets) {
    // The target already holds 50 of the keys, with other values.
    for (let i = 0; i < 300; i += 6) await to.write(keyOf(i), { mine: i });
    const skip = await copySessions(from, to);
    assert.deepEqual(
      { ...skip, failures: skip.failures.length },
      { listed: 300, copied: 250, skipped: 50, failed: 0, failures: 0, aborted: false },
      name,
    );
    assert.deepEqual(await to.read(keyOf(6)), { mine: 6 }, `${name}: held key kept`);
    assert.deepEqual(await to.read(keyOf(7)), session(7), `${name}: new key copied`);
    const again = await copySessions(from, to);
    assert.equal(again.skipped, 300, `${name}: a rerun skips everything`);
    assert.equal(again.copied, 0);
    const over = await copySessions(from, to, { overwrite: true, batchSize: 7 });
    assert.equal(over.copied, 300, name);
    assert.equal(over.skipped, 0);
    assert.deepEqual(await to.read(keyOf(6)), session(6), `${name}: overwritten`);
  }
  // Byte for byte: the target's stored text is the source's.
  const pgTarget = targets[0][1] as PostgresStorage<Data>;
  const texts = await w.pgTexts(pgTarget);
  assert.equal(texts.size, 300);
  for (const [k, text] of texts) assert.equal(text, JSON.stringify(session(indexOfKey(k))));
});

serversTest("copySessions: a dry run counts and writes nothing", async (w) => {
  const from = await w.redisStorage();
  await fill(from, 120);
  const to = w.pgStorage();
  await to.write(keyOf(1), { mine: 1 });
  await to.write(keyOf(2), { mine: 2 });
  const progress: CopyProgress[] = [];
  const dry = await copySessions(from, to, {
    dryRun: true,
    batchSize: 50,
    onProgress: (p) => progress.push(p),
  });
  assert.deepEqual(
    { ...dry, failures: dry.failures.length },
    { listed: 120, copied: 118, skipped: 2, failed: 0, failures: 0, aborted: false },
  );
  assert.deepEqual(progress.map((p) => p.listed), [50, 100, 120]);
  const over = await copySessions(from, to, { dryRun: true, overwrite: true });
  assert.equal(over.copied, 120);
  const texts = await w.pgTexts(to as PostgresStorage<unknown>);
  assert.deepEqual([...texts.values()].sort(), ['{"mine":1}', '{"mine":2}']);
  // Also through the read path of a target without has().
  const bare: StorageAdapter<Data> = {
    read: (k) => to.read(k),
    write: () => assert.fail("a dry run wrote"),
    delete: () => assert.fail("a dry run deleted"),
  };
  assert.equal((await copySessions(from, bare, { dryRun: true })).skipped, 2);
});

serversTest("copySessions: only keys with the prefix", async (w) => {
  const from = await w.kvStorage();
  await fill(from, 200);
  const to = w.sqliteStorage();
  const report = await copySessions(from, to, { prefix: "user:" });
  assert.equal(report.listed, 20);
  assert.equal(report.copied, 20);
  const keys = [...(await all(to)).keys()];
  assert.equal(keys.length, 20);
  assert.ok(keys.every((k) => k.startsWith("user:")), keys.join());
  assert.equal((await copySessions(from, to, { prefix: "none:" })).listed, 0);
});

serversTest("copySessions: a key that fails does not stop the rest", async (w) => {
  const from = await w.redisStorage();
  await fill(from, 250);
  const bad = keyOf(17);
  class Flaky<T> extends PostgresStorage<T> {
    override writeIfVersion(key: string, value: T, expected: string | null) {
      if (key === bad) return Promise.reject(new Error("disk on fire"));
      return super.writeIfVersion(key, value, expected);
    }
  }
  const to = w.pgStorage<Data>(Flaky);
  const report = await copySessions(from, to, { batchSize: 32 });
  assert.equal(report.listed, 250);
  assert.equal(report.copied, 249);
  assert.equal(report.failed, 1);
  assert.equal(report.failures.length, 1);
  assert.equal(report.failures[0].key, bad);
  assert.equal((report.failures[0].error as Error).message, "disk on fire");
  assert.equal((await w.pgTexts(to as PostgresStorage<unknown>)).size, 249);

  // A source listed by keys: a read that throws fails that key; a key gone
  // when read is skipped.
  const source: StorageAdapter<Data> = {
    read: (k) => k === keyOf(3) ? Promise.reject(new Error("read broke")) : from.read(k),
    write: (k, v) => from.write(k, v),
    delete: (k) => from.delete(k),
    async *readAllKeys() {
      yield* from.readAllKeys();
      yield "gone:1";
    },
  };
  const target = w.sqliteStorage();
  const byKeys = await copySessions(source, target);
  assert.deepEqual(
    { ...byKeys, failures: byKeys.failures.map((f) => [f.key, (f.error as Error).message]) },
    {
      listed: 251,
      copied: 249,
      skipped: 1,
      failed: 1,
      failures: [[keyOf(3), "read broke"]],
      aborted: false,
    },
  );
  // Only the first 100 failures are kept; all are counted.
  const broken: StorageAdapter<Data> = {
    read: () => undefined,
    write: () => Promise.reject(new Error("no")),
    delete: () => {},
  };
  const many = await copySessions(from, broken);
  assert.equal(many.failed, 250);
  assert.equal(many.failures.length, 100);
});

serversTest(
  "copySessions: an interrupted copy, run again, completes and copies nothing twice",
  async (w) => {
    const from = w.sqliteStorage();
    await fill(from, 1000);
    const written = new Map<string, number>();
    class Counting<T> extends PostgresStorage<T> {
      override async writeIfVersion(key: string, value: T, expected: string | null) {
        const version = await super.writeIfVersion(key, value, expected);
        if (version !== null) written.set(key, (written.get(key) ?? 0) + 1);
        return version;
      }
      override write(): Promise<void> {
        throw new Error("a copy without overwrite must not write unconditionally");
      }
    }
    const to = w.pgStorage<Data>(Counting);
    const stop = new AbortController();
    let batches = 0;
    const first = await copySessions(from, to, {
      batchSize: 50,
      signal: stop.signal,
      onProgress: () => {
        if (++batches === 3) stop.abort();
      },
    });
    assert.deepEqual(
      { ...first, failures: first.failures.length },
      { listed: 150, copied: 150, skipped: 0, failed: 0, failures: 0, aborted: true },
    );
    assert.equal(written.size, 150);
    // A bot changes one of the copied sessions before the rerun: kept.
    const changed = [...written.keys()][0];
    const { version } = await to.readVersioned(changed);
    assert.notEqual(await to.writeIfVersion(changed, { changedByBot: true }, version), null);
    written.set(changed, 1);

    const second = await copySessions(from, to, { batchSize: 64 });
    assert.deepEqual(
      { ...second, failures: second.failures.length },
      { listed: 1000, copied: 850, skipped: 150, failed: 0, failures: 0, aborted: false },
    );
    assert.equal(written.size, 1000);
    assert.ok([...written.values()].every((n) => n === 1), "a key was written twice");
    assert.deepEqual(await to.read(changed), { changedByBot: true });
    // An already aborted signal: nothing at all.
    const none = await copySessions(from, w.sqliteStorage(), { signal: AbortSignal.abort() });
    assert.deepEqual({ ...none, failures: 0 }, {
      listed: 0,
      copied: 0,
      skipped: 0,
      failed: 0,
      failures: 0,
      aborted: true,
    });
  },
);

serversTest("copySessions: a listing that throws stops with how far it got", async (w) => {
  const redis = await w.redisStorage();
  await fill(redis, 300);
  const source: StorageAdapter<Data> = {
    read: (k) => redis.read(k),
    write: (k, v) => redis.write(k, v),
    delete: (k) => redis.delete(k),
    async *readAllEntries() {
      let n = 0;
      for await (const entry of redis.readAllEntries()) {
        if (++n > 130) throw new Error("connection reset");
        yield entry;
      }
    },
  };
  const to = w.pgStorage();
  await assert.rejects(
    copySessions(source, to, { batchSize: 50 }),
    (err: Error) => {
      assert.match(
        err.message,
        /^copySessions: listing the source failed after 130 listed: 130 copied/,
      );
      // A listing that fails by itself (no key named): a rerun goes on, and the message says so.
      assert.match(err.message, /a rerun \(without overwrite\) skips what is already there/);
      assert.equal((err.cause as Error).message, "connection reset");
      return true;
    },
  );
  assert.equal((await w.pgTexts(to as PostgresStorage<unknown>)).size, 130);
  // A listing method that throws at once fails the same way.
  const refusing: StorageAdapter<Data> = {
    read: () => undefined,
    write: () => {},
    delete: () => {},
    readAllKeys: () => {
      throw new Error("SCAN refused");
    },
  };
  await assert.rejects(
    copySessions(refusing, to),
    /^Error: copySessions: listing the source failed after 0 listed: .*SCAN refused$/,
  );
});

serversTest("copySessions: enhanceStorage sources, migrated or as stored", async (w) => {
  type Pets = { pets: string[] };
  const raw = w.sqliteStorage<Enhance<unknown>>();
  // Written by an older bot: at version 1, and one session that expired.
  const day = 86_400_000;
  await raw.write("a", { __d: { pet: "cat" }, v: 1, e: Date.now() + day });
  await raw.write("b", { __d: { pet: "dog" }, v: 1, e: Date.now() + day });
  await raw.write("old", { __d: { pet: "fish" }, v: 1, e: Date.now() - 1000 });
  const enhanced = () =>
    enhanceStorage<Pets>({
      storage: raw as SqliteStorage<Enhance<Pets>>,
      millisecondsToLive: day,
      migrations: {
        1: (old: { pet: string }) => old,
        2: (old: { pet: string }): Pets => ({ pets: [old.pet] }),
      },
    });
  const before = sqliteTexts(raw);

  // The wrapper: migrated data, without the envelope, expired sessions left out.
  const plain = w.pgStorage<Pets>();
  const migrated = await copySessions(enhanced(), plain);
  assert.deepEqual([migrated.listed, migrated.copied], [2, 2]);
  const texts = await w.pgTexts(plain as PostgresStorage<unknown>);
  assert.deepEqual(Object.fromEntries(texts), { a: '{"pets":["cat"]}', b: '{"pets":["dog"]}' });
  // The source was only read: nothing migrated or renewed in place.
  assert.deepEqual(sqliteTexts(raw), before);

  // The wrapped storage: the envelopes byte for byte, the expired one too.
  const copy = w.pgStorage<Enhance<unknown>>();
  const verbatim = await copySessions(raw, copy);
  assert.equal(verbatim.copied, 3);
  assert.deepEqual(await w.pgTexts(copy as PostgresStorage<unknown>), before);

  // Wrapper to wrapper: the target's envelope is its own, at the new version.
  const target = w.pgStorage<Enhance<Pets>>();
  const into = enhanceStorage<Pets>({
    storage: target,
    millisecondsToLive: day,
    migrations: { 2: (x) => x },
  });
  assert.equal((await copySessions(enhanced(), into)).copied, 2);
  const env = await target.read("a");
  assert.deepEqual({ ...env, e: typeof env?.e }, { __d: { pets: ["cat"] }, v: 2, e: "number" });
  assert.deepEqual(await into.read("b"), { pets: ["dog"] });
});

serversTest("copySessions: grammY's adapters as sources", async (w) => {
  // grammY's MemorySessionStorage lists (a plain array).
  const grammy = new GrammyMemory<Data>();
  for (let i = 0; i < 150; i++) grammy.write(keyOf(i), session(i));
  const to = await w.kvStorage();
  const report = await copySessions(grammy, to, { batchSize: 40 });
  assert.equal(report.copied, 150);
  assert.deepEqual(await to.read(keyOf(149)), session(149));

  // @grammyjs/storage-file cannot list: a clear error, and `keys` instead.
  const dir = `${w.dir}/files`;
  const files = new FileAdapter<Data>({ dirName: dir });
  for (let i = 0; i < 20; i++) await files.write(`f${i}`, session(i));
  const target = w.pgStorage();
  await assert.rejects(
    copySessions(files, target),
    (err: Error) =>
      err instanceof TypeError &&
      /neither readAllEntries\(\) nor readAllKeys\(\)/.test(err.message) &&
      /Pass the keys to copy as the keys option/.test(err.message),
  );
  const keys = Array.from({ length: 25 }, (_, i) => `f${i}`); // f20..f24 are not there
  const byKeys = await copySessions(files, target, { keys });
  assert.deepEqual([byKeys.listed, byKeys.copied, byKeys.skipped], [25, 20, 5]);
  const texts = await w.pgTexts(target as PostgresStorage<unknown>);
  for (let i = 0; i < 20; i++) assert.equal(texts.get(`f${i}`), JSON.stringify(session(i)));
});

Deno.test("copySessions: arguments are checked, naming the fix", async () => {
  const a = new MemorySessionStorage<Data>();
  const b = new MemorySessionStorage<Data>();
  await assert.rejects(
    copySessions(a, b, { overwirte: true } as never),
    /unknown option "overwirte" \(did you mean "overwrite"\?\)/,
  );
  await assert.rejects(copySessions(a, b, { batchSize: 0 }), RangeError);
  await assert.rejects(copySessions(a, b, { prefix: 1 } as never), /prefix must be a string/);
  await assert.rejects(copySessions(a, a), /from and to are the same storage/);
  await assert.rejects(
    copySessions(Promise.resolve(a) as never, b),
    /copySessions: from \(the source\): storage is a Promise/,
  );
  await assert.rejects(
    importSessions(new Blob([]).stream(), b, { keys: [] }),
    /the option "keys" does not apply here/,
  );
  await assert.rejects(
    exportSessions(a, new WritableStream(), { overwrite: true } as never),
    /the option "overwrite" does not apply here/,
  );
});

/**
 * A copy between storages that answer synchronously (the memory storage,
 * SQLite through `node:sqlite`) must still give the event loop a turn now
 * and then: otherwise a timer (an `AbortSignal.timeout`, a bot's update
 * arriving, a progress display) waits for the whole copy to end.
 */
Deno.test("copySessions: timers run during a copy between synchronous storages", async (t) => {
  const MEMORY_N = 50_000;
  const SQLITE_N = 20_000;
  const files = new SqliteFiles();
  const sqliteStorage = () => {
    const db = files.open(files.path(), undefined, true);
    db.exec("PRAGMA synchronous = NORMAL");
    return new SqliteStorage<Data>(db);
  };
  /** Runs `copy` with a 1 ms interval timer: how often it ran, and its longest wait. */
  const ticking = async <R>(copy: () => Promise<R>) => {
    let ticks = 0;
    let last = performance.now();
    let longest = 0;
    const started = last;
    const timer = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      ticks++;
    }, 1);
    try {
      const result = await copy();
      // Read before any further turn of the event loop.
      const ended = performance.now();
      longest = Math.max(longest, ended - last);
      return { result, ticks, longest, ms: ended - started };
    } finally {
      clearInterval(timer);
    }
  };
  try {
    const memory = new MemorySessionStorage<Data>();
    for (let i = 0; i < MEMORY_N; i++) memory.write(keyOf(i), session(i));
    const onDisk = sqliteStorage();
    const filled = await copySessions(memory, onDisk, {
      keys: Array.from({ length: SQLITE_N }, (_, i) => keyOf(i)),
      batchSize: 500,
    });
    assert.equal(filled.copied, SQLITE_N);
    const pairs: [string, StorageAdapter<Data>, () => StorageAdapter<Data>, number][] = [
      ["memory -> memory", memory, () => new MemorySessionStorage<Data>(), MEMORY_N],
      ["SQLite -> SQLite", onDisk, sqliteStorage, SQLITE_N],
    ];
    for (const [name, from, target, n] of pairs) {
      await t.step(`${name}: AbortSignal.timeout(20) stops it`, async () => {
        const { result: report, ticks, ms } = await ticking(() =>
          copySessions(from, target(), { signal: AbortSignal.timeout(20) })
        );
        const seen = `${report.copied} of ${n} copied in ${ms.toFixed(0)} ms, ${ticks} ticks`;
        assert.equal(report.aborted, true, `not aborted: ${seen}`);
        assert.ok(report.copied < n / 2, seen);
        assert.equal(report.listed, report.copied, seen);
        assert.ok(ticks > 0, `the interval timer never ran during the copy: ${seen}`);
      });
      await t.step(`${name}: a setTimeout calling controller.abort() stops it`, async () => {
        const stop = new AbortController();
        const timer = setTimeout(() => stop.abort(), 20);
        try {
          const report = await copySessions(from, target(), { signal: stop.signal });
          assert.equal(report.aborted, true, `not aborted: ${report.copied} copied`);
          assert.ok(report.copied < n / 2, `${report.copied} of ${n} copied`);
        } finally {
          clearTimeout(timer);
        }
      });
    }
    await t.step("a prefix that leaves every session out: the timer still stops it", async () => {
      for (const [name, from, target, n] of pairs) {
        const { result: report, ticks, ms } = await ticking(() =>
          copySessions(from, target(), { prefix: "none:", signal: AbortSignal.timeout(5) })
        );
        const seen = `${name}: ${ticks} ticks in ${ms.toFixed(0)} ms of ${n} sessions`;
        assert.deepEqual([report.aborted, report.listed], [true, 0], seen);
        assert.ok(ticks > 0, seen);
      }
    });
    await t.step("memory -> memory to the end: timers keep running", async () => {
      const into = new MemorySessionStorage<Data>();
      const { result: report, ticks, longest, ms } = await ticking(() =>
        copySessions(memory, into)
      );
      assert.equal(report.copied, MEMORY_N);
      const seen = `${ticks} ticks in ${ms.toFixed(0)} ms, longest wait ${longest.toFixed(1)} ms`;
      // Without a turn per batch the timer never runs during the copy. (Its
      // longest wait is not bounded here: the memory storage's listing
      // copies every session at once, one long synchronous step.)
      assert.ok(ticks >= 10, seen);
    });
    await t.step("SQLite -> SQLite: a bot in the same process answers an update", async () => {
      type C = Context & SessionFlavor<{ count: number }>;
      const h = createHarness<C>();
      const sessions = new MemorySessionStorage<{ count: number }>();
      h.bot.use(sessionMiddleware({ initial: () => ({ count: 0 }), storage: sessions }));
      h.bot.on("message", async (ctx) => {
        ctx.session.count++;
        await ctx.reply(`count ${ctx.session.count}`);
      });
      // The update arrives while the copy runs (as long polling hands it over).
      const handled = new Promise<void>((resolve, reject) => {
        setTimeout(() => h.send(message(7)).then(resolve, reject), 10);
      });
      const stop = new AbortController();
      const report = await copySessions(onDisk, sqliteStorage(), {
        signal: stop.signal,
        onProgress: () => h.replies().length > 0 && stop.abort(),
      });
      const seen = `${report.copied} of ${SQLITE_N} copied, replies ${h.replies()}`;
      assert.deepEqual(h.replies(), ["count 1"], `the update waited for the copy: ${seen}`);
      assert.equal(report.aborted, true, seen);
      assert.ok(report.copied < SQLITE_N / 2, seen);
      await handled;
      assert.deepEqual(sessions.read("7"), { count: 1 });
      assert.deepEqual(h.errors, []);
    });
    await t.step(
      "exportSessions from SQLite into a synchronous sink: the timer stops it",
      async () => {
        let lines = 0;
        const sink = new WritableStream<Uint8Array>({
          write: (chunk) => void (lines += new TextDecoder().decode(chunk).split("\n").length - 1),
        });
        const { result: report, ticks } = await ticking(() =>
          exportSessions(onDisk, sink, { signal: AbortSignal.timeout(20) })
        );
        const seen = `${report.copied} of ${SQLITE_N} exported, ${ticks} ticks`;
        assert.equal(report.aborted, true, seen);
        assert.ok(report.copied < SQLITE_N / 2, seen);
        assert.equal(lines, report.copied);
      },
    );
  } finally {
    files.cleanup();
  }
});

/** A stream of `bytes` in chunks of `size` bytes (splitting characters and lines anywhere). */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

serversTest("JSON Lines: export and import round trip, byte for byte", async (w) => {
  const from = w.pgStorage();
  await fill(from, 400);
  const path = `${w.dir}/backup.jsonl`;
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const report = await exportSessions(from, file.writable, { batchSize: 64 });
  assert.deepEqual([report.listed, report.copied, report.failed], [400, 400, 0]);
  const lines = (await Deno.readTextFile(path)).split("\n");
  assert.equal(lines.pop(), "", "the file ends with a newline");
  assert.equal(lines.length, 400);
  const stored = await w.pgTexts(from as PostgresStorage<unknown>);
  for (const line of lines) {
    const { key, value } = JSON.parse(line);
    assert.equal(line, JSON.stringify({ key, value }));
    assert.equal(line, `{"key":${JSON.stringify(key)},"value":${stored.get(key)}}`);
  }

  const to = w.sqliteStorage();
  const imported = await importSessions((await Deno.open(path)).readable, to, { batchSize: 50 });
  assert.deepEqual(
    { ...imported, failures: imported.failures.length },
    { listed: 400, copied: 400, skipped: 0, failed: 0, failures: 0, aborted: false },
  );
  assert.deepEqual(sqliteTexts(to), stored);
  // Again: everything is there already.
  const again = await importSessions((await Deno.open(path)).readable, to);
  assert.deepEqual([again.copied, again.skipped], [0, 400]);
  // In chunks of 5 bytes: lines and characters split across chunks.
  const target = await w.redisStorage();
  const bytes = await Deno.readFile(path);
  const small = await importSessions(chunked(bytes, 5), target, { prefix: "user:" });
  assert.deepEqual([small.listed, small.copied], [40, 40]);
  const redisStored = await redisTexts(await w.redis.admin(), target.prefix);
  assert.equal(redisStored.size, 40);
  for (const [k, text] of redisStored) assert.equal(text, stored.get(k));

  // A dry run writes nothing to the stream, and closes it as a run does
  // (unless preventClose).
  const sink: Uint8Array[] = [];
  let closed = 0;
  const sinkStream = () =>
    new WritableStream<Uint8Array>({ write: (c) => void sink.push(c), close: () => void closed++ });
  const stream = sinkStream();
  const dry = await exportSessions(from, stream, { dryRun: true, prefix: "user:" });
  assert.deepEqual([dry.listed, dry.copied, sink.length, closed], [40, 40, 0, 1]);
  const open = sinkStream();
  await exportSessions(from, open, { dryRun: true, preventClose: true });
  assert.deepEqual([sink.length, open.locked, closed], [0, false, 1]);
});

serversTest("JSON Lines: an import with malformed lines imports the rest", async (w) => {
  const long = "y".repeat(4 * 1024 * 1024);
  const enc = new TextEncoder();
  const parts: BlobPart[] = [
    "\ufeff" + JSON.stringify({ key: "k1", value: { n: 1 } }) + "\n", // 1, with a BOM
    "\n", // 2 blank
    "   \t\n", // 3 blank
    '{"key":"k2","value":\n', // 4 not JSON
    "[1,2]\n", // 5 not an object
    '{"value":{"n":3}}\n', // 6 no key
    '{"key":"k4"}\n', // 7 no value
    '{"key":"k5","value":null}\n', // 8 null value
    new Uint8Array([0x7b, 0x22, 0x6b, 0xff, 0xfe, 0x22, 0x7d, 0x0a]), // 9 not UTF-8
    JSON.stringify({ key: "k6", value: { n: 6 } }) + "\r\n", // 10 CRLF
    JSON.stringify({ key: "long", value: { long } }) + "\n", // 11 a 4 MiB line
    '{"key":7,"value":{}}\n', // 12 key not a string
    JSON.stringify({ key: "k8", value: "ünïcödé 😀", extra: 1 }), // 13 no final newline
  ];
  const bytes = await new Blob(parts).bytes();
  const to = w.pgStorage<unknown>();
  for (const size of [bytes.length, 1000]) {
    const report = await importSessions(chunked(bytes, size), to, {
      overwrite: true,
      batchSize: 3,
    });
    assert.equal(report.listed, 11, `chunks of ${size}`);
    assert.equal(report.copied, 4);
    assert.equal(report.failed, 7);
    assert.deepEqual(report.failures.map((f) => [f.line, f.key]), [
      [4, ""],
      [5, ""],
      [6, ""],
      [7, "k4"],
      [8, "k5"],
      [9, ""],
      [12, ""],
    ]);
    for (const f of report.failures) {
      assert.match((f.error as Error).message, new RegExp(`^line ${f.line} `));
    }
    const texts = await w.pgTexts(to as PostgresStorage<unknown>);
    assert.deepEqual([...texts.keys()].sort(), ["k1", "k6", "k8", "long"]);
    assert.equal(texts.get("k8"), '"ünïcödé 😀"');
    assert.equal(texts.get("long"), JSON.stringify({ long }));
  }
  // Multi-byte characters and lines split across 3-byte chunks.
  const small = await new Blob(parts.filter((_, i) => i !== 10)).bytes();
  const split = await importSessions(chunked(small, 3), w.sqliteStorage<unknown>());
  assert.deepEqual([split.copied, split.failed], [3, 7]);
  // The import stops at an abort, and cancels the stream.
  let cancelled = false;
  const endless = new ReadableStream<Uint8Array>({
    pull: (c) => c.enqueue(enc.encode(`{"key":"e${Math.random()}","value":1}\n`)),
    cancel: () => void (cancelled = true),
  });
  const stop = new AbortController();
  const aborted = await importSessions(endless, w.sqliteStorage<unknown>(), {
    batchSize: 10,
    signal: stop.signal,
    onProgress: (p) => p.listed >= 30 && stop.abort(),
  });
  assert.deepEqual([aborted.aborted, aborted.copied, cancelled], [true, 30, true]);
});

serversTest("JSON Lines: the export waits for the stream (backpressure)", async (w) => {
  const from = await w.redisStorage();
  await fill(from, 500);
  let taken = 0;
  let written = 0;
  const stream = new WritableStream<Uint8Array>({
    async write(chunk) {
      await new Promise((r) => setTimeout(r, 5));
      written += new TextDecoder().decode(chunk).split("\n").length - 1;
      taken++;
    },
  }, { highWaterMark: 1 });
  let batches = 0;
  const report = await exportSessions(from, stream, {
    batchSize: 50,
    onProgress: (p) => {
      batches++;
      // Every batch is in the stream's hands before the next is listed.
      assert.equal(written, p.copied);
      assert.equal(taken, batches);
    },
  });
  assert.deepEqual([report.copied, batches, written], [500, 10, 500]);
  // A value that breaks the serialization contract fails its key, unchanged.
  const odd: StorageAdapter<unknown> = {
    read: () => undefined,
    write: () => {},
    delete: () => {},
    readAllEntries: () => [["d", { when: new Date(0) }], ["ok", { n: 1 }]],
  };
  const chunks: Uint8Array[] = [];
  const out = await exportSessions(odd, new WritableStream({ write: (c) => void chunks.push(c) }));
  assert.deepEqual([out.copied, out.failed, out.failures[0].key], [1, 1, "d"]);
  assert.match((out.failures[0].error as Error).message, /Date/);
  assert.equal(new TextDecoder().decode(chunks[0]), '{"key":"ok","value":{"n":1}}\n');
});

/**
 * Memory while a copy runs: RSS sampled often, and the live heap (what is
 * left after a full collection, so garbage not yet collected does not count)
 * every 50 batches, when `gc` is exposed (`--v8-flags=--expose-gc`).
 */
class MemoryWatch {
  readonly gc = (globalThis as { gc?: () => void }).gc;
  readonly baseHeap: number;
  readonly baseRss: number;
  peakLive = 0;
  peakRss = 0;
  #batches = 0;

  constructor() {
    this.gc?.();
    const m = Deno.memoryUsage();
    [this.baseHeap, this.baseRss] = [m.heapUsed, m.rss];
  }

  sample(): void {
    this.peakRss = Math.max(this.peakRss, Deno.memoryUsage().rss - this.baseRss);
  }

  batch(): void {
    this.sample();
    if (this.gc === undefined || ++this.#batches % 50 !== 0) return;
    this.gc();
    this.peakLive = Math.max(this.peakLive, Deno.memoryUsage().heapUsed - this.baseHeap);
  }

  /** The heap that `make` keeps alive, after collections on both sides. */
  async held(make: () => Promise<unknown>): Promise<number> {
    this.gc!();
    const before = Deno.memoryUsage().heapUsed;
    const kept = await make();
    this.gc!();
    const after = Deno.memoryUsage().heapUsed;
    return kept === undefined ? 0 : after - before;
  }
}

const MB = 1024 * 1024;

serversTest(
  `copySessions: ${CHAIN_N} sessions Redis -> Deno KV -> PostgreSQL -> SQLite -> Redis, byte-identical`,
  async (w) => {
    const admin = await w.redis.admin();
    const source = await w.redisStorage();
    // The source's stored text, written straight to the server.
    let textBytes = 0;
    for (let at = 0; at < CHAIN_N; at += 1000) {
      const pairs: [string, string][] = [];
      for (let i = at; i < Math.min(at + 1000, CHAIN_N); i++) {
        const text = JSON.stringify(session(i));
        textBytes += text.length;
        pairs.push([source.prefix + keyOf(i), text]);
      }
      await admin.mSet(pairs);
    }
    const kv = await w.kvStorage();
    const postgres = w.pgStorage();
    const sqlite = w.sqliteStorage();
    const back = await w.redisStorage();
    const hops: [string, StorageAdapter<Data>, StorageAdapter<Data>][] = [
      ["Redis -> Deno KV", source, kv],
      ["Deno KV -> PostgreSQL", kv, postgres],
      ["PostgreSQL -> SQLite", postgres, sqlite],
      ["SQLite -> Redis", sqlite, back],
    ];
    const watch = new MemoryWatch();
    if (FULL && watch.gc === undefined) {
      throw new Error("COPY_FULL=1 needs --v8-flags=--expose-gc (deno task test:copy)");
    }
    const timer = setInterval(() => watch.sample(), 20);
    try {
      for (const [name, from, to] of hops) {
        const started = performance.now();
        const report = await copySessions(from, to, { onProgress: () => watch.batch() });
        const seconds = (performance.now() - started) / 1000;
        assert.deepEqual(
          { ...report, failures: report.failures.slice(0, 3) },
          {
            listed: CHAIN_N,
            copied: CHAIN_N,
            skipped: 0,
            failed: 0,
            failures: [],
            aborted: false,
          },
          name,
        );
        if (FULL) console.log(`${name}: ${Math.round(CHAIN_N / seconds)} sessions/s`);
      }
    } finally {
      clearInterval(timer);
    }
    // What holding every session at once takes, to compare with (measured
    // before the checks below, whose maps of every stored text would count).
    const holding = watch.gc === undefined ? 0 : await watch.held(() => {
      const all = new Map<string, Data>();
      for (let i = 0; i < CHAIN_N; i++) all.set(keyOf(i), session(i));
      return Promise.resolve(all);
    });
    const check = (texts: Map<string, string>, where: string) => {
      assert.equal(texts.size, CHAIN_N, where);
      for (const [k, text] of texts) {
        if (text !== JSON.stringify(session(indexOfKey(k)))) {
          assert.fail(`${where}: the text of ${k} changed: ${text}`);
        }
      }
    };
    check(await redisTexts(admin, back.prefix), "Redis at the end");
    check(await w.pgTexts(postgres as PostgresStorage<unknown>), "PostgreSQL");
    check(sqliteTexts(sqlite as SqliteStorage<unknown>), "SQLite");
    check(await redisTexts(admin, source.prefix), "Redis at the start (untouched)");
    const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
    const text = `${CHAIN_N} sessions, ${mb(textBytes)} of JSON text: RSS grew at most ` +
      mb(watch.peakRss);
    if (watch.gc === undefined) {
      console.log(`${text} (live heap not measured: no --v8-flags=--expose-gc)`);
      return;
    }
    console.log(
      `${text}, live heap at most ${mb(watch.peakLive)}; all sessions held: ${mb(holding)}`,
    );
    if (FULL) {
      // A batch is 100 sessions (about 40 KB of text) and a listing page 500
      // (200 KB), a few MB as objects with the drivers' buffers; RedisStorage's
      // listing also remembers every key it handed out (SCAN repeats keys), a
      // Set of 100,000 keys of about 6 MB, and so does copySessions while it
      // lists with readAllEntries (to finish a listing that fails on one
      // value), another 6 MB at most (10.1 MB in all measured). So 16 MB, a
      // quarter of what all sessions take (about 75 MB here).
      assert.ok(watch.peakLive < LIVE_BOUND, `the live heap grew by ${mb(watch.peakLive)}`);
      assert.ok(watch.peakLive < holding / 4, `${mb(watch.peakLive)} against ${mb(holding)}`);
      // RSS is only reported: it moves with what the allocator keeps or
      // gives back and with connections and files opened on first use.
    }
  },
);

/** The most the live heap may grow during the 100,000-session chain (see the test). */
const LIVE_BOUND = 16 * MB;

if (!redisAvailable) console.error("copy_test: Redis is needed for most of these tests.");

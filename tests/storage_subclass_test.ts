/**
 * Rule A1 of docs/semantics.md (defect 1 of issue 15), storage side: every
 * storage call the middleware makes is a call of a public method of the
 * storage object it was given, so a subclass that overrides them sees every
 * call.
 *
 * For each sessionkit storage (memory, Deno KV, Redis, PostgreSQL, SQLite,
 * MySQL/MariaDB) a subclass overrides `read`, `readVersioned`, `write`, `writeIfVersion`,
 * `delete`, `deleteIfVersion` and the lease methods. Each override records
 * the call and "encrypts" the `note` field (base64 behind a marker) before
 * handing the value to `super`, and decrypts what `super` read. A real
 * grammY `Bot` then runs `session()` and `lazySession()` over it, with
 * conflict detection (the default), with `onConflict: "overwrite"` and with
 * `lock`. Every step checks that:
 *
 * - the backend (the Redis client, the PostgreSQL pool, the Deno KV handle,
 *   the SQLite handle and its statements, the MySQL pool) saw no operation
 *   outside an overridden method;
 * - the overrides saw exactly the calls the rules promise (one read, one
 *   write or delete of the right kind, leases around them with `lock`);
 * - the backend holds the encrypted form, and handlers see the plain one.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { Context } from "npm:grammy@^1.46";
import {
  type ConditionalStorage,
  lazySession,
  type LazySessionFlavor,
  type LeaseStorage,
  type MaybePromise,
  MemorySessionStorage,
  session,
  type SessionFlavor,
  type StorageAdapter,
  type VersionedValue,
} from "../mod.ts";
import { DenoKvStorage, type KvLike } from "../storages/denokv.ts";
import { type RedisClientLike, RedisStorage } from "../storages/redis.ts";
import {
  type PostgresQueryable,
  type PostgresQueryResult,
  PostgresStorage,
} from "../storages/postgres.ts";
import { type SqliteDatabase, type SqliteStatement, SqliteStorage } from "../storages/sqlite.ts";
import {
  type MysqlParameter,
  type MysqlQueryable,
  type MysqlStatement,
  MysqlStorage,
} from "../storages/mysql.ts";
import { RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";
import { DATABASE_URL, dropTables, pg, pgTest, RUN } from "./postgres_setup.ts";
import {
  dropTables as dropMysqlTables,
  mysql,
  MYSQL_URL,
  mysqlTest,
  RUN as MYSQL_RUN,
} from "./mysql_setup.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";

type Data = { count: number; note: string };
type Storage = StorageAdapter<Data> & ConditionalStorage<Data> & LeaseStorage;
type Method =
  | "read"
  | "readVersioned"
  | "write"
  | "writeIfVersion"
  | "delete"
  | "deleteIfVersion"
  | "acquireLease"
  | "renewLease"
  | "releaseLease";

const LEASE_METHODS: readonly Method[] = ["acquireLease", "renewLease", "releaseLease"];

// ---------------------------------------------------------------------------
// The "encryption": the note as base64 behind a marker. The backend must only
// ever hold the sealed form; a plain note coming back from it is an error.

const SEAL = "sealed:";

function seal(value: Data): Data {
  return { ...value, note: SEAL + btoa(value.note) };
}

function unseal(value: Data | undefined): Data | undefined {
  if (value === undefined || value === null) return value;
  if (!value.note.startsWith(SEAL)) {
    throw new Error(
      `the backend holds a plain note (${JSON.stringify(value.note)}): a write bypassed the ` +
        `overridden methods`,
    );
  }
  return { ...value, note: atob(value.note.slice(SEAL.length)) };
}

// ---------------------------------------------------------------------------
// What the overrides saw, and what the backend saw outside of them.

class Tracker {
  /** Every call of an overridden method, in order. */
  readonly calls: Method[] = [];
  /** Backend operations made while no overridden method was running. */
  readonly bypassed: string[] = [];
  #depth = 0;

  /** Records a backend operation (called by the spies on the backend handles). */
  backend(op: string): void {
    if (this.#depth === 0) this.bypassed.push(op);
  }

  /** Runs the `super` call of the override `name`. */
  sync<R>(name: Method, fn: () => R): R {
    this.calls.push(name);
    this.#depth++;
    try {
      return fn();
    } finally {
      this.#depth--;
    }
  }

  /** Runs the `super` call of the async override `name`. */
  async call<R>(name: Method, fn: () => R | Promise<R>): Promise<R> {
    this.calls.push(name);
    this.#depth++;
    try {
      return await fn();
    } finally {
      this.#depth--;
    }
  }

  /** The calls since the last `take()`. */
  take(): Method[] {
    return this.calls.splice(0);
  }
}

const versioned = async (
  read: VersionedValue<Data> | Promise<VersionedValue<Data>>,
): Promise<VersionedValue<Data>> => {
  const { value, version } = await read;
  return { value: unseal(value), version };
};

// ---------------------------------------------------------------------------
// The subclasses. Each override records its call and seals or unseals.

class SealedMemory extends MemorySessionStorage<Data> {
  constructor(readonly tracker: Tracker) {
    super();
  }
  override read(key: string): Data | undefined {
    return this.tracker.sync("read", () => unseal(super.read(key)));
  }
  override readVersioned(key: string): Promise<VersionedValue<Data>> {
    return this.tracker.call("readVersioned", () => versioned(super.readVersioned(key)));
  }
  override write(key: string, value: Data): void {
    this.tracker.sync("write", () => super.write(key, seal(value)));
  }
  override writeIfVersion(key: string, value: Data, expected: string | null) {
    return this.tracker.call(
      "writeIfVersion",
      () => super.writeIfVersion(key, seal(value), expected),
    );
  }
  override delete(key: string): void {
    this.tracker.sync("delete", () => super.delete(key));
  }
  override deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    return this.tracker.call("deleteIfVersion", () => super.deleteIfVersion(key, expected));
  }
  override acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.tracker.call("acquireLease", () => super.acquireLease(key, owner, ttl));
  }
  override renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.tracker.call("renewLease", () => super.renewLease(key, owner, ttl));
  }
  override releaseLease(key: string, owner: string): Promise<void> {
    return this.tracker.call("releaseLease", () => super.releaseLease(key, owner));
  }
}

/**
 * The answer of a synchronous storage (SQLite, like memory, answers `read`,
 * `write` and `delete` without a promise, docs/sqlite.md): a promise here
 * is an error of the storage, not something to await.
 */
function now<R>(answer: MaybePromise<R>, method: string): R {
  if (answer instanceof Promise) {
    answer.catch(() => {});
    throw new Error(`SqliteStorage.${method} answered with a promise; it answers synchronously`);
  }
  return answer as R;
}

/**
 * A subclass of the synchronous SQLite storage overriding every public
 * method, as `SealedMemory` does for the memory storage: `read`, `write`
 * and `delete` stay synchronous.
 */
class SealedSqlite extends SqliteStorage<Data> {
  constructor(db: SqliteDatabase, table: string, readonly tracker: Tracker) {
    super(db, { table });
  }
  override read(key: string): Data | undefined {
    return this.tracker.sync("read", () => unseal(now(super.read(key), "read")));
  }
  override readVersioned(key: string): Promise<VersionedValue<Data>> {
    return this.tracker.call("readVersioned", () => versioned(super.readVersioned(key)));
  }
  override write(key: string, value: Data): void {
    this.tracker.sync("write", () => now(super.write(key, seal(value)), "write"));
  }
  override writeIfVersion(key: string, value: Data, expected: string | null) {
    return this.tracker.call(
      "writeIfVersion",
      () => super.writeIfVersion(key, seal(value), expected),
    );
  }
  override delete(key: string): void {
    this.tracker.sync("delete", () => now(super.delete(key), "delete"));
  }
  override deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    return this.tracker.call("deleteIfVersion", () => super.deleteIfVersion(key, expected));
  }
  override acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.tracker.call("acquireLease", () => super.acquireLease(key, owner, ttl));
  }
  override renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.tracker.call("renewLease", () => super.renewLease(key, owner, ttl));
  }
  override releaseLease(key: string, owner: string): Promise<void> {
    return this.tracker.call("releaseLease", () => super.releaseLease(key, owner));
  }
}

/** The public methods of an async sessionkit storage that the sealing subclasses override. */
interface AsyncStorage extends ConditionalStorage<Data>, LeaseStorage {
  read(key: string): Promise<Data | undefined>;
  write(key: string, value: Data): Promise<void>;
  delete(key: string): Promise<void>;
}

/**
 * A subclass of `Base` (Deno KV, Redis, PostgreSQL or MySQL) overriding every
 * public method: each records its call on the tracker and seals or
 * unseals before calling `super`.
 */
// deno-lint-ignore no-explicit-any
function sealing<B extends new (...args: any[]) => AsyncStorage>(Base: B) {
  return class Sealed extends Base {
    tracker!: Tracker;
    override read(key: string): Promise<Data | undefined> {
      return this.tracker.call("read", async () => unseal(await super.read(key)));
    }
    override readVersioned(key: string): Promise<VersionedValue<Data>> {
      return this.tracker.call("readVersioned", () => versioned(super.readVersioned(key)));
    }
    override write(key: string, value: Data): Promise<void> {
      return this.tracker.call("write", () => super.write(key, seal(value)));
    }
    override writeIfVersion(key: string, value: Data, expected: string | null) {
      return this.tracker.call(
        "writeIfVersion",
        () => super.writeIfVersion(key, seal(value), expected),
      );
    }
    override delete(key: string): Promise<void> {
      return this.tracker.call("delete", () => super.delete(key));
    }
    override deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
      return this.tracker.call("deleteIfVersion", () => super.deleteIfVersion(key, expected));
    }
    override acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
      return this.tracker.call("acquireLease", () => super.acquireLease(key, owner, ttl));
    }
    override renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
      return this.tracker.call("renewLease", () => super.renewLease(key, owner, ttl));
    }
    override releaseLease(key: string, owner: string): Promise<void> {
      return this.tracker.call("releaseLease", () => super.releaseLease(key, owner));
    }
  };
}

class SealedDenoKv extends sealing(DenoKvStorage<Data>) {
  constructor(kv: KvLike, tracker: Tracker) {
    super(kv, { prefix: ["subclass"] });
    this.tracker = tracker;
  }
}

class SealedRedis extends sealing(RedisStorage<Data>) {
  constructor(client: RedisClientLike, prefix: string, tracker: Tracker) {
    super(client, { prefix });
    this.tracker = tracker;
  }
}

class SealedPostgres extends sealing(PostgresStorage<Data>) {
  constructor(db: PostgresQueryable, table: string, tracker: Tracker) {
    super(db, { table });
    this.tracker = tracker;
  }
}

class SealedMysql extends sealing(MysqlStorage<Data>) {
  constructor(db: MysqlQueryable, table: string, tracker: Tracker) {
    super(db, { table });
    this.tracker = tracker;
  }
}

// ---------------------------------------------------------------------------
// Spies on the backend handles: they report every operation to the tracker.

/** A Deno KV handle that reports every read, listing and commit. */
function spyKv(kv: Deno.Kv, tracker: Tracker): KvLike {
  const bound = (target: object, prop: PropertyKey) => {
    const value = Reflect.get(target, prop, target);
    return typeof value === "function" ? value.bind(target) : value;
  };
  return new Proxy(kv, {
    get(target, prop) {
      const fn = bound(target, prop);
      if (typeof fn !== "function" || prop === "close") return fn;
      if (prop === "atomic") {
        return () => {
          const op: Deno.AtomicOperation = fn();
          const proxy: Deno.AtomicOperation = new Proxy(op, {
            get(opTarget, opProp) {
              const opFn = bound(opTarget, opProp);
              if (typeof opFn !== "function") return opFn;
              return (...args: unknown[]) => {
                if (opProp === "commit") tracker.backend("commit");
                const out = opFn(...args);
                return out === opTarget ? proxy : out;
              };
            },
          });
          return proxy;
        };
      }
      return (...args: unknown[]) => {
        tracker.backend(String(prop));
        return fn(...args);
      };
    },
  }) as unknown as KvLike;
}

/** A Redis client that reports every command. */
class SpyRedis implements RedisClientLike {
  constructor(readonly inner: RedisClientLike, readonly tracker: Tracker) {}
  sendCommand(args: string[]): Promise<unknown> {
    this.tracker.backend(args[0]);
    return this.inner.sendCommand(args);
  }
}

/** A PostgreSQL handle that reports every statement. */
class SpyPostgres implements PostgresQueryable {
  constructor(readonly inner: PostgresQueryable, readonly tracker: Tracker) {}
  query(text: string, values?: unknown[]): Promise<PostgresQueryResult> {
    this.tracker.backend(text.trim().split(/\s+/, 1)[0]);
    return this.inner.query(text, values);
  }
}

/**
 * A SQLite handle that reports every `exec` and `prepare`, and every run of
 * a statement it prepared (the storage prepares its statements once and
 * runs them on later calls).
 */
function spySqlite(db: DatabaseSync, tracker: Tracker): SqliteDatabase {
  const spyStatement = (statement: SqliteStatement, sql: string): SqliteStatement => {
    const op = sql.trim().split(/\s+/, 1)[0];
    return new Proxy(statement, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        const fn = value.bind(target);
        if (prop !== "run" && prop !== "get" && prop !== "all" && prop !== "iterate") return fn;
        return (...args: unknown[]) => {
          tracker.backend(`${op} (${String(prop)})`);
          return fn(...args);
        };
      },
    });
  };
  return {
    prepare(sql: string): SqliteStatement {
      tracker.backend(`prepare ${sql.trim().split(/\s+/, 1)[0]}`);
      return spyStatement(db.prepare(sql), sql);
    },
    exec(sql: string): unknown {
      tracker.backend(`exec ${sql.trim().split(/\s+/, 1)[0]}`);
      return db.exec(sql);
    },
  };
}

/** A MySQL pool that reports every statement. */
class SpyMysql implements MysqlQueryable {
  constructor(readonly inner: MysqlQueryable, readonly tracker: Tracker) {}
  execute(statement: MysqlStatement, values: MysqlParameter[]): Promise<unknown> {
    this.tracker.backend(statement.sql.trim().split(/\s+/, 1)[0]);
    return this.inner.execute(statement, values);
  }
  query(statement: MysqlStatement): Promise<unknown> {
    this.tracker.backend(statement.sql.trim().split(/\s+/, 1)[0]);
    return this.inner.query(statement);
  }
}

// ---------------------------------------------------------------------------
// One storage kind under test.

interface Rig {
  /** The subclass, over spied backend handles. */
  storage: Storage;
  tracker: Tracker;
  /** What the backend holds for `key`, read past the subclass and the spies. */
  stored(key: string): Promise<Data | undefined>;
  /** Whether nobody holds the lease of `key` (checked past the subclass). */
  leaseFree(key: string): Promise<boolean>;
  close(): Promise<void>;
}

interface Backend {
  name: string;
  register(name: string, fn: () => Promise<void>): void;
  open(): Promise<Rig>;
}

const plainTest = (name: string, fn: () => Promise<void>) => Deno.test(name, fn);

const memory: Backend = {
  name: "MemorySessionStorage",
  register: plainTest,
  open() {
    const tracker = new Tracker();
    const storage = new SealedMemory(tracker);
    // The base class's own methods, called on the same instance: no override runs.
    const base = MemorySessionStorage.prototype;
    return Promise.resolve({
      storage,
      tracker,
      stored: (key) => Promise.resolve(base.read.call(storage, key) as Data | undefined),
      leaseFree: async (key) => {
        const free = await base.acquireLease.call(storage, key, "observer", 1000);
        if (free) await base.releaseLease.call(storage, key, "observer");
        return free;
      },
      close: () => Promise.resolve(),
    });
  },
};

const denoKv: Backend = {
  name: "DenoKvStorage",
  register: plainTest,
  async open() {
    const tracker = new Tracker();
    const kv = await Deno.openKv(":memory:");
    const observer = new DenoKvStorage<Data>(kv, { prefix: ["subclass"] });
    return {
      storage: new SealedDenoKv(spyKv(kv, tracker), tracker),
      tracker,
      stored: (key) => observer.read(key),
      leaseFree: (key) => leaseFreeIn(observer, key),
      close: () => Promise.resolve(kv.close()),
    };
  },
};

const redis: Backend = {
  name: "RedisStorage",
  register: (name, fn) => redisTest(name, fn),
  async open() {
    const tracker = new Tracker();
    const fixture = new RedisFixture();
    const admin = await fixture.admin();
    const prefix = fixture.track(uniquePrefix());
    const observer = new RedisStorage<Data>(admin, { prefix });
    return {
      storage: new SealedRedis(new SpyRedis(admin, tracker), prefix, tracker),
      tracker,
      stored: (key) => observer.read(key),
      leaseFree: (key) => leaseFreeIn(observer, key),
      close: () => fixture.cleanup(),
    };
  },
};

let tables = 0;
const postgres: Backend = {
  name: "PostgresStorage",
  register: (name, fn) => pgTest(name, fn),
  open() {
    const tracker = new Tracker();
    const pool = new pg.Pool({ connectionString: DATABASE_URL });
    pool.on("error", () => {});
    const table = `${RUN}_subclass_${++tables}`;
    const storage = new SealedPostgres(new SpyPostgres(pool, tracker), table, tracker);
    const observer = new PostgresStorage<Data>(pool, { table });
    return Promise.resolve({
      storage,
      tracker,
      stored: (key) => observer.read(key),
      leaseFree: (key) => leaseFreeIn(observer, key),
      close: async () => {
        try {
          await dropTables(pool, storage);
        } finally {
          await pool.end();
        }
      },
    });
  },
};

const sqlite: Backend = {
  name: "SqliteStorage",
  register: plainTest,
  open() {
    const tracker = new Tracker();
    const dir = Deno.makeTempDirSync({ prefix: "sk-subclass-" });
    const path = `${dir}/subclass.sqlite`;
    // Two handles on one file, as two processes would have: the subclass's
    // (spied) and the observer's.
    const db = new DatabaseSync(path);
    const observerDb = new DatabaseSync(path);
    const table = "subclass";
    const storage = new SealedSqlite(spySqlite(db, tracker), table, tracker);
    const observer = new SqliteStorage<Data>(observerDb, { table });
    return Promise.resolve({
      storage,
      tracker,
      stored: (key) => Promise.resolve(observer.read(key)),
      leaseFree: (key) => leaseFreeIn(observer, key),
      close: () => {
        try {
          db.close();
          observerDb.close();
        } finally {
          Deno.removeSync(dir, { recursive: true });
        }
        return Promise.resolve();
      },
    });
  },
};

let mysqlTables = 0;
const mysqlBackend: Backend = {
  name: "MysqlStorage",
  register: (name, fn) => mysqlTest(name, fn),
  open() {
    const tracker = new Tracker();
    const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 5 });
    const table = `${MYSQL_RUN}_subclass_${++mysqlTables}`;
    const storage = new SealedMysql(new SpyMysql(pool, tracker), table, tracker);
    const observer = new MysqlStorage<Data>(pool, { table });
    return Promise.resolve({
      storage,
      tracker,
      stored: (key) => observer.read(key),
      leaseFree: (key) => leaseFreeIn(observer, key),
      close: async () => {
        try {
          await dropMysqlTables(pool, storage);
        } finally {
          await pool.end();
        }
      },
    });
  },
};

async function leaseFreeIn(observer: LeaseStorage, key: string): Promise<boolean> {
  const free = await observer.acquireLease(key, "observer", 1000);
  if (free) await observer.releaseLease(key, "observer");
  return free;
}

// ---------------------------------------------------------------------------
// The middleware configurations and what each makes of a read, a write and
// a delete (docs/semantics.md C1, C4, C6).

interface Mode {
  name: string;
  options: { onConflict?: "overwrite"; lock?: { ttl: number; wait: number } };
  /** The methods a read may use. */
  reads: readonly Method[];
  write: Method;
  delete: Method;
  lock: boolean;
}

const MODES: readonly Mode[] = [
  {
    name: "conflict detection (default)",
    options: {},
    reads: ["readVersioned"],
    write: "writeIfVersion",
    delete: "deleteIfVersion",
    lock: false,
  },
  {
    name: 'onConflict: "overwrite"',
    options: { onConflict: "overwrite" },
    // C4 makes every save unconditional; the read may still take a version.
    reads: ["read", "readVersioned"],
    write: "write",
    delete: "delete",
    lock: false,
  },
  {
    name: "lock",
    options: { lock: { ttl: 5000, wait: 2000 } },
    reads: ["readVersioned"],
    write: "writeIfVersion",
    delete: "deleteIfVersion",
    lock: true,
  },
];

const KEY = "1"; // the default key of chat 1

/** What one step expects of the overridden methods. */
interface Expect {
  reads: number;
  /** The write calls, by kind. */
  writes?: Method[];
  deletes?: Method[];
}

/**
 * Checks one step: no backend operation outside an override, the calls the
 * overrides saw, no errors, and (with `lock`) leases taken before the read
 * and given up once the update ended.
 */
async function checkStep(
  rig: Rig,
  mode: Mode,
  step: string,
  errors: unknown[],
  expect: Expect,
): Promise<void> {
  if (mode.lock) await waitForLeaseRelease(rig, step);
  const calls = rig.tracker.take();
  assert.deepEqual(
    rig.tracker.bypassed,
    [],
    `${step}: backend operations ran outside every overridden method (the middleware ` +
      `bypassed the storage's public methods); overrides saw ${JSON.stringify(calls)}`,
  );
  assert.deepEqual(errors.map(String), [], `${step}: the update failed`);
  const data = calls.filter((c) => !LEASE_METHODS.includes(c));
  const reads = data.filter((c) => c === "read" || c === "readVersioned");
  const writes = data.filter((c) => c === "write" || c === "writeIfVersion");
  const deletes = data.filter((c) => c === "delete" || c === "deleteIfVersion");
  const seen = `overrides saw ${JSON.stringify(calls)}`;
  assert.equal(
    reads.length,
    expect.reads,
    `${step}: expected ${expect.reads} read(s) through the overrides, ${seen}` +
      (calls.length === 0 ? " (none: the middleware bypassed them)" : ""),
  );
  for (const r of reads) assert.ok(mode.reads.includes(r), `${step}: read with ${r}, ${seen}`);
  assert.deepEqual(writes, expect.writes ?? [], `${step}: writes, ${seen}`);
  assert.deepEqual(deletes, expect.deletes ?? [], `${step}: deletes, ${seen}`);
  const leases = calls.filter((c) => LEASE_METHODS.includes(c));
  if (!mode.lock) {
    assert.deepEqual(leases, [], `${step}: no leases without lock, ${seen}`);
  } else if (reads.length > 0) {
    assert.equal(calls[0], "acquireLease", `${step}: the lease is taken first (C6), ${seen}`);
    assert.equal(calls.at(-1), "releaseLease", `${step}: and given up at the end, ${seen}`);
  }
}

/** With `lock`, waits (a little) until the lease of the key is free again (C6). */
async function waitForLeaseRelease(rig: Rig, step: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await rig.leaseFree(KEY)) return;
    await sleep(20);
  }
  assert.fail(`${step}: the lease of key ${KEY} is still held after the update ended (C6)`);
}

/** Checks that the backend holds `plain` in its sealed form, and never the plain note. */
async function assertSealed(rig: Rig, step: string, plain: Data | undefined): Promise<void> {
  const stored = await rig.stored(KEY);
  if (plain === undefined) {
    assert.equal(stored, undefined, `${step}: nothing stored`);
    return;
  }
  assert.deepEqual(stored, seal(plain), `${step}: the backend holds the sealed form`);
}

type StrictContext = Context & SessionFlavor<Data>;
type LazyContext = Context & LazySessionFlavor<Data>;

async function strictScenario(rig: Rig, mode: Mode): Promise<void> {
  const h = createHarness<StrictContext>();
  h.bot.use(session({
    initial: () => ({ count: 0, note: "" }),
    storage: rig.storage,
    ...mode.options,
  }));
  h.bot.command("show", (ctx) => ctx.reply(`${ctx.session.count} ${ctx.session.note}`));
  h.bot.command("add", (ctx) => {
    ctx.session.count++;
    ctx.session.note += ctx.match;
  });
  h.bot.command("drop", (ctx) => {
    ctx.session = null as unknown as Data; // deletes (U4)
  });
  const { write, delete: del } = mode;

  await h.send(message(1, "/show"));
  await checkStep(rig, mode, "/show of a new chat", h.errors, { reads: 1 });
  await assertSealed(rig, "/show of a new chat", undefined);

  await h.send(message(1, "/add hello"));
  await checkStep(rig, mode, "/add hello", h.errors, { reads: 1, writes: [write] });
  await assertSealed(rig, "/add hello", { count: 1, note: "hello" });

  await h.send(message(1, "/show"));
  await checkStep(rig, mode, "/show", h.errors, { reads: 1 });
  assert.equal(h.replies().at(-1), "1 hello", "the handler saw the decrypted note");

  // Two updates at once share one read (K1); their saves go through the overrides too.
  await Promise.all([h.send(message(1, "/add a")), h.send(message(1, "/add b"))]);
  if (mode.lock) await waitForLeaseRelease(rig, "two /add at once");
  const calls = rig.tracker.take();
  assert.deepEqual(rig.tracker.bypassed, [], `two /add at once: bypassed, saw ${calls}`);
  assert.deepEqual(h.errors.map(String), []);
  const writes = calls.filter((c) => c === "write" || c === "writeIfVersion");
  assert.ok(writes.length >= 1 && writes.every((c) => c === write), `saw ${calls}`);
  const stored = await rig.stored(KEY);
  assert.equal(stored?.count, 3);
  assert.ok(stored!.note.startsWith(SEAL), `sealed in the backend: ${stored!.note}`);
  assert.ok(["helloab", "helloba"].includes(unseal(stored)!.note));

  await h.send(message(1, "/drop"));
  await checkStep(rig, mode, "/drop", h.errors, { reads: 1, deletes: [del] });
  await assertSealed(rig, "/drop", undefined);
}

async function lazyScenario(rig: Rig, mode: Mode): Promise<void> {
  const h = createHarness<LazyContext>();
  h.bot.use(lazySession({
    initial: () => ({ count: 0, note: "" }),
    storage: rig.storage,
    ...mode.options,
  }));
  h.bot.command("ping", (ctx) => ctx.reply("pong"));
  h.bot.command("show", async (ctx) => {
    const data = await ctx.session;
    await ctx.reply(`${data.count} ${data.note}`);
  });
  h.bot.command("add", async (ctx) => {
    const data = await ctx.session;
    data.count++;
    data.note += ctx.match;
  });
  h.bot.command("set", (ctx) => {
    ctx.session = { count: 100, note: ctx.match };
  });
  h.bot.command("drop", async (ctx) => {
    await ctx.session;
    ctx.session = null as unknown as Data; // deletes (U4)
  });
  const { write, delete: del } = mode;

  await h.send(message(1, "/ping"));
  const untouched = rig.tracker.take();
  assert.deepEqual(rig.tracker.bypassed, [], "/ping: the backend was used");
  assert.deepEqual(untouched, [], "/ping: a lazy session never touched makes no call (U2)");

  await h.send(message(1, "/show"));
  await checkStep(rig, mode, "/show of a new chat", h.errors, { reads: 1 });
  await assertSealed(rig, "/show of a new chat", undefined);

  await h.send(message(1, "/add hello"));
  await checkStep(rig, mode, "/add hello", h.errors, { reads: 1, writes: [write] });
  await assertSealed(rig, "/add hello", { count: 1, note: "hello" });

  await h.send(message(1, "/show"));
  await checkStep(rig, mode, "/show", h.errors, { reads: 1 });
  assert.equal(h.replies().at(-1), "1 hello", "the handler saw the decrypted note");

  // Assigned without a read: written unconditionally (C5), through `write`.
  await h.send(message(1, "/set blind"));
  if (mode.lock) await waitForLeaseRelease(rig, "/set blind");
  const blind = rig.tracker.take();
  assert.deepEqual(rig.tracker.bypassed, [], `/set blind: bypassed, saw ${blind}`);
  assert.deepEqual(h.errors.map(String), []);
  assert.deepEqual(blind.filter((c) => !LEASE_METHODS.includes(c)), ["write"], `saw ${blind}`);
  await assertSealed(rig, "/set blind", { count: 100, note: "blind" });

  await h.send(message(1, "/drop"));
  await checkStep(rig, mode, "/drop", h.errors, { reads: 1, deletes: [del] });
  await assertSealed(rig, "/drop", undefined);
}

for (const backend of [memory, denoKv, redis, postgres, sqlite, mysqlBackend]) {
  for (const mode of MODES) {
    for (
      const [kind, scenario] of [["session()", strictScenario], [
        "lazySession()",
        lazyScenario,
      ]] as const
    ) {
      backend.register(
        `${backend.name} subclass, ${kind} with ${mode.name}: every call reaches the overrides, ` +
          `the backend holds the encrypted form`,
        async () => {
          const rig = await backend.open();
          try {
            await scenario(rig, mode);
          } finally {
            await rig.close();
          }
        },
      );
    }
  }
}

/**
 * Where the time of one update goes, sessionkit with conflict detection
 * against grammY's `session()` on `@grammyjs/storage-redis` (ioredis) and
 * `@grammyjs/storage-psql` (pg), one process, one update in flight, every
 * update writing its session (issue #18, "Correctness must not cost
 * throughput").
 *
 * `deno run -A bench/detection_cost.ts [--rounds 400] [--batch 10] [--only redis,postgres,mw]`
 *
 * Every row handles `batch` updates per round; the rows run round by round,
 * in an order rotated each round, so that a change of the machine's load
 * hits every row alike. The report gives each row's p50 and p75 time per
 * update over the rounds and its ratio to its group's first row, all from
 * the same run. Rows:
 *
 * - full updates through a real grammY `Bot` (`bot.handleUpdate`, `botInfo`
 *   given, API calls answered by a transformer): grammY on its adapter,
 *   sessionkit on its storage, grammY's `session()` on sessionkit's storage
 *   (no detection: the middleware's share), and sessionkit on the other
 *   client library;
 * - a hand-written middleware on the bare client sending exactly the
 *   commands (statements) each of them sends: the driver's share;
 * - the storage alone, without a bot, against the same commands;
 * - both middlewares over an in-process storage that does nothing (its
 *   methods answer with a resolved promise): the middleware's CPU.
 *
 * Keys start with a unique prefix (a table of its own for PostgreSQL) and
 * are removed at the end. Servers: REDIS_URL, DATABASE_URL.
 *
 * @module
 */

import { createClient } from "npm:redis@^5";
import { Redis } from "npm:ioredis@^5";
import pg from "npm:pg@^8";
import { RedisAdapter } from "npm:@grammyjs/storage-redis@^2";
import { PsqlAdapter } from "npm:@grammyjs/storage-psql@^2";
import { type Context, session as grammySession, type StorageAdapter } from "npm:grammy@^1.46";
import type { Update } from "npm:grammy@^1.46/types";
import { session, type SessionFlavor } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { writeIfText } from "../storages/redis/scripts.ts";
import { newVersion } from "../storages/shared/bigint_versions.ts";
import { buildStatements, tableNames } from "../storages/postgres/sql.ts";
import process from "node:process";
import { makeBot, RUN } from "./_bot.ts";
import { message } from "./multiprocess/workload.ts";

/** The session of bench/multiprocess.ts: one counter, changed by every update. */
interface Data {
  count: number;
}
const initial = (): Data => ({ count: 0 });
type C = Context & SessionFlavor<Data>;

const REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const CHATS = 100;
/** The liveness test of storages/postgres/sql.ts, and the one it replaced. */
const LIVE_NOW = "COALESCE(s.expires_at > now(), true)";
const LIVE_BEFORE = "(s.expires_at IS NULL OR s.expires_at > now())";

function flag(name: string, fallback: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
}
const ROUNDS = Number(flag("rounds", "400"));
const BATCH = Number(flag("batch", "10"));
const ONLY = new Set(flag("only", "redis,postgres,mw").split(","));

/** One measured row: `run` handles one update (or does one read + write). */
interface Row {
  group: string;
  name: string;
  run: (i: number) => Promise<unknown>;
  /** Server processes whose CPU time the row's commands use (Redis, its backends). */
  pids: number[];
  /** Per round: wall time, this process's CPU time, the servers' CPU time, µs per update. */
  times: number[];
  cpu: number[];
  server: number[];
}
const rows: Row[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
/** The server processes of the rows being added (set by each group). */
let serverPids: number[] = [];

function row(group: string, name: string, run: (i: number) => Promise<unknown>) {
  rows.push({ group, name, run, pids: serverPids, times: [], cpu: [], server: [] });
}

/** CPU time the processes `pids` have run, in µs (/proc/PID/schedstat, in ns there). */
function serverCpu(pids: number[]): number {
  let ns = 0;
  for (const pid of pids) {
    try {
      ns += Number(Deno.readTextFileSync(`/proc/${pid}/schedstat`).split(" ")[0]);
    } catch {
      return NaN; // not on this machine (a remote server): the column stays empty
    }
  }
  return ns / 1000;
}

/** This process's CPU time (user + system, every thread), in µs. */
function ownCpu(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** Updates for chats 1..CHATS, update ids counting up (grammY does not care). */
let updateId = 0;
const update = (i: number): Update => message(++updateId, (i % CHATS) + 1);

const increment = (ctx: C) => {
  ctx.session.count++;
};

/** A bot with `middleware`, every update incrementing the counter: one update per call. */
function botRow(group: string, name: string, middleware: Parameters<typeof makeBot>[0]) {
  const bot = makeBot<C>(middleware, increment);
  row(group, name, (i) => bot.handleUpdate(update(i)));
}

/** A middleware on the bare client: `get` gives text and a version, `set` writes. */
function rawRow<V>(
  group: string,
  name: string,
  get: (key: string) => Promise<{ text: string | null; version: V }>,
  set: (key: string, text: string, version: V) => Promise<unknown>,
) {
  botRow(group, name, async (ctx: C, next) => {
    const key = String(ctx.chatId);
    const { text, version } = await get(key);
    const data: Data = text == null ? initial() : JSON.parse(text);
    Object.defineProperty(ctx, "session", { value: data, writable: true });
    await next();
    await set(key, JSON.stringify(ctx.session), version);
  });
}

// ---------------------------------------------------------------- Redis

async function redisRows() {
  const nr = createClient({ url: REDIS_URL, socket: { reconnectStrategy: false } });
  nr.on("error", () => {});
  await nr.connect();
  const io = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await io.connect();
  const info = await nr.sendCommand(["INFO", "server"]) as string;
  serverPids = [Number(/process_id:(\d+)/.exec(info)?.[1])];
  cleanups.push(async () => {
    for await (const keys of nr.scanIterator({ MATCH: `${RUN}:*`, COUNT: 1000 })) {
      if (keys.length > 0) await nr.del(keys);
    }
    nr.destroy();
    io.disconnect();
  });
  const p = (name: string) => `${RUN}:${name}:`;
  const G = "Redis, full update";
  botRow(
    G,
    "grammY session + storage-redis (ioredis)",
    grammySession<Data, C>({
      initial,
      storage: new RedisAdapter<Data>({ instance: io }),
      prefix: p("g"),
    }),
  );
  botRow(
    G,
    "sessionkit session + RedisStorage (node-redis)",
    session<Data, C>({ initial, storage: new RedisStorage<Data>(nr, { prefix: p("s") }) }),
  );
  botRow(
    G,
    "sessionkit session + RedisStorage (ioredis)",
    session<Data, C>({ initial, storage: new RedisStorage<Data>(io, { prefix: p("si") }) }),
  );
  botRow(
    G,
    "grammY session + RedisStorage (node-redis; GETEX + SET)",
    grammySession<Data, C>({
      initial,
      storage: new RedisStorage<Data>(nr, { prefix: p("gs") }) as StorageAdapter<Data>,
    }),
  );
  botRow(
    G,
    "grammY session + storage-redis on node-redis",
    grammySession<Data, C>({
      initial,
      // deno-lint-ignore no-explicit-any
      storage: new RedisAdapter<Data>({ instance: nr as any }),
      prefix: p("gn"),
    }),
  );

  const D = "Redis, bare client in a middleware";
  rawRow(D, "ioredis GET + SET (storage-redis' commands)", async (key) => ({
    text: await io.get(p("rg") + key),
    version: undefined,
  }), (key, text) => io.set(p("rg") + key, text));
  rawRow(D, "node-redis GET + SET", async (key) => ({
    text: await nr.sendCommand(["GET", p("rn") + key]) as string | null,
    version: undefined,
  }), (key, text) => nr.sendCommand(["SET", p("rn") + key, text]));
  const evalsha = (
    k: string,
    text: string,
    old: string | null,
  ) => ["EVALSHA", writeIfText.sha, "1", k, text, "", ...(old === null ? [] : [old])];
  await nr.sendCommand(["SCRIPT", "LOAD", writeIfText.source]);
  rawRow(D, "node-redis GETEX PERSIST + EVALSHA (sessionkit's commands)", async (key) => {
    const text = await nr.sendCommand(["GETEX", p("rs") + key, "PERSIST"]) as string | null;
    return { text, version: text };
  }, (key, text, old) => nr.sendCommand(evalsha(p("rs") + key, text, old)));
  rawRow(D, "ioredis GETEX PERSIST + EVALSHA", async (key) => {
    const text = await io.call("GETEX", p("ri") + key, "PERSIST") as string | null;
    return { text, version: text };
  }, (key, text, old) => {
    const [, ...args] = evalsha(p("ri") + key, text, old);
    return io.call("EVALSHA", ...args);
  });
  rawRow(D, "node-redis GET + EVALSHA", async (key) => {
    const text = await nr.sendCommand(["GET", p("rx") + key]) as string | null;
    return { text, version: text };
  }, (key, text, old) => nr.sendCommand(evalsha(p("rx") + key, text, old)));
  rawRow(D, "node-redis GETEX PERSIST + SET", async (key) => ({
    text: await nr.sendCommand(["GETEX", p("ry") + key, "PERSIST"]) as string | null,
    version: undefined,
  }), (key, text) => nr.sendCommand(["SET", p("ry") + key, text]));

  const S = "Redis, storage alone (read + write, no bot)";
  const st = new RedisStorage<Data>(nr, { prefix: p("st") });
  row(S, "node-redis GETEX + EVALSHA (same commands)", async (i) => {
    const k = p("sr") + ((i % CHATS) + 1);
    const text = await nr.sendCommand(["GETEX", k, "PERSIST"]) as string | null;
    const count = text === null ? 0 : JSON.parse(text).count;
    await nr.sendCommand(evalsha(k, JSON.stringify({ count: count + 1 }), text));
  });
  row(S, "RedisStorage readVersioned + writeIfVersion", async (i) => {
    const k = String((i % CHATS) + 1);
    const { value, version } = await st.readVersioned(k);
    await st.writeIfVersion(k, { count: (value?.count ?? 0) + 1 }, version);
  });
  const sti = new RedisStorage<Data>(io, { prefix: p("sti") });
  row(S, "RedisStorage (ioredis) readVersioned + writeIfVersion", async (i) => {
    const k = String((i % CHATS) + 1);
    const { value, version } = await sti.readVersioned(k);
    await sti.writeIfVersion(k, { count: (value?.count ?? 0) + 1 }, version);
  });
  const ga = new RedisAdapter<Data>({ instance: io });
  row(S, "storage-redis read + write", async (i) => {
    const k = p("sg") + ((i % CHATS) + 1);
    const value = await ga.read(k);
    await ga.write(k, { count: (value?.count ?? 0) + 1 });
  });
  serverPids = [];
}

// ----------------------------------------------------------- PostgreSQL

async function postgresRows() {
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  admin.on("error", () => {});
  const tables: string[] = [];
  const handles: (pg.Pool | pg.Client)[] = [];
  cleanups.push(async () => {
    for (const t of tables) {
      await admin.query(`DROP TABLE IF EXISTS "${t}", "${t}_leases"`);
      await admin.query(`DROP FUNCTION IF EXISTS "${t}_lease_read"(text, text, float8)`);
      await admin.query(`DROP FUNCTION IF EXISTS "${t}_save_release"`);
    }
    for (const h of handles) await h.end();
    await admin.end();
  });
  const table = (name: string) => {
    const t = `${RUN}_${name}`;
    tables.push(t);
    return t;
  };
  /**
   * A pool of one connection that stays open (or one pg.Client), for one
   * row: its backend's pid is the row's server process.
   */
  const own = async (kind: "pool" | "client" = "pool") => {
    const db = kind === "pool"
      ? new pg.Pool({ connectionString: DATABASE_URL, max: 1, idleTimeoutMillis: 0 })
      : new pg.Client({ connectionString: DATABASE_URL });
    if (db instanceof pg.Client) await db.connect();
    else db.on("error", () => {});
    handles.push(db);
    const { rows } = await db.query("SELECT pg_backend_pid() AS pid");
    serverPids = [rows[0].pid];
    return db;
  };
  const psql = async (name: string, db: pg.Pool | pg.Client) =>
    // deno-lint-ignore no-explicit-any
    await PsqlAdapter.create({ tableName: table(name), client: db as any }) as StorageAdapter<Data>;
  const sk = async (name: string, db: pg.Pool | pg.Client) => {
    const storage = new PostgresStorage<Data>(db, { table: table(name) });
    await storage.read("0"); // creates the table before anything is measured
    // The missing table's error made the pool drop that connection: name the new one's backend.
    const { rows } = await db.query("SELECT pg_backend_pid() AS pid");
    serverPids = [rows[0].pid];
    return storage;
  };

  const G = "PostgreSQL, full update";
  botRow(
    G,
    "grammY session + storage-psql (pool)",
    grammySession<Data, C>({
      initial,
      storage: await psql("g", await own()),
    }),
  );
  botRow(
    G,
    "sessionkit session + PostgresStorage (pool)",
    session<Data, C>({
      initial,
      storage: await sk("s", await own()),
    }),
  );
  // Before/after in one run: the same storage on a handle that puts the
  // liveness test of the previous statements back ("IS NULL OR > now()").
  const before = (db: pg.Pool) => ({
    query: (text: string, values?: unknown[]) =>
      db.query(text.replaceAll(LIVE_NOW, LIVE_BEFORE), values),
  });
  botRow(
    G,
    "sessionkit session + PostgresStorage (pool), previous SQL",
    session<Data, C>({
      initial,
      storage: await sk("sb", before(await own() as pg.Pool) as unknown as pg.Pool),
    }),
  );
  botRow(
    G,
    "grammY session + PostgresStorage (pool; SELECT + upsert)",
    grammySession<Data, C>({
      initial,
      storage: await sk("gs", await own()) as StorageAdapter<Data>,
    }),
  );
  botRow(
    G,
    "sessionkit session + PostgresStorage (one pg.Client)",
    session<Data, C>({
      initial,
      storage: await sk("sc", await own("client")),
    }),
  );
  botRow(
    G,
    "grammY session + storage-psql (one pg.Client)",
    grammySession<Data, C>({
      initial,
      storage: await psql("gc", await own("client")),
    }),
  );

  // The statements of each, verbatim, on a bare pool.
  const D = "PostgreSQL, bare pool in a middleware";
  const gt = table("rg");
  const gdb = await own();
  await PsqlAdapter.create({ tableName: gt, client: gdb as never });
  const psqlUpsert = `\n      INSERT INTO "${gt}" (key, value)\n      values ($1, $2)\n      ` +
    `ON CONFLICT (key) DO UPDATE SET value = $2`;
  rawRow(D, "storage-psql's SELECT * + upsert", async (key) => {
    const { rows } = await gdb.query(`select * from "${gt}" where key = $1`, [key]);
    return { text: rows[0]?.value ?? null, version: undefined };
  }, (key, text) => gdb.query(psqlUpsert, [key, text]));
  const stName = table("rs");
  await sk("rs", admin);
  const sql = buildStatements(tableNames(undefined, stName), pg.escapeIdentifier, false);
  const skGet = (db: pg.Pool | pg.Client) => async (key: string) => {
    const { rows } = await db.query(sql.read, [key]);
    return { text: rows[0]?.value ?? null, version: rows[0]?.version as string | undefined };
  };
  const skSet = (db: pg.Pool | pg.Client) => (key: string, text: string, v?: string) =>
    v === undefined
      ? db.query(sql.insertIfAbsent, [key, text, newVersion()])
      : db.query(sql.updateIfVersion, [key, text, v, newVersion()]);
  const sdb = await own();
  rawRow(D, "sessionkit's SELECT + UPDATE ... WHERE version", skGet(sdb), skSet(sdb));
  const udb = await own();
  rawRow(
    D,
    "sessionkit's SELECT + upsert (no detection)",
    skGet(udb),
    (key, text) => udb.query(sql.write, [key, text, newVersion()]),
  );
  const cdb = await own("client");
  rawRow(D, "sessionkit's statements on one pg.Client", skGet(cdb), skSet(cdb));

  // Each statement alone, on the same rows (chats 1..CHATS, written in the warm-up).
  const Q = "PostgreSQL, one statement (bare pool)";
  const one = async (name: string, text: string, values: (k: string) => unknown[]) => {
    const db = await own();
    row(Q, name, (i) => db.query(text, values(String((i % CHATS) + 1))));
  };
  await one("storage-psql's SELECT *", `select * from "${gt}" where key = $1`, (k) => [k]);
  await one("sessionkit's read SELECT", sql.read, (k) => [k]);
  await one(
    "storage-psql's upsert",
    psqlUpsert,
    (k) => [k, JSON.stringify({ count: Math.random() })],
  );
  await one("sessionkit's UPDATE ... WHERE version (no match)", sql.updateIfVersion, (k) => [
    k,
    JSON.stringify({ count: Math.random() }),
    "1",
    newVersion(),
  ]);
  await one("sessionkit's upsert", sql.write, (k) => [
    k,
    JSON.stringify({ count: Math.random() }),
    newVersion(),
  ]);
  {
    // An UPDATE that lands: it reads the version it replaces from its own last write.
    const lt = table("rl");
    await sk("rl", admin);
    const lsql = buildStatements(tableNames(undefined, lt), pg.escapeIdentifier, false);
    const db = await own();
    const versions = new Map<string, string>();
    for (let c = 1; c <= CHATS; c++) {
      const v = newVersion();
      await db.query(lsql.write, [String(c), "{}", v]);
      versions.set(String(c), v);
    }
    row(Q, "sessionkit's UPDATE ... WHERE version (lands)", async (i) => {
      const k = String((i % CHATS) + 1);
      const v = newVersion();
      const r = await db.query(lsql.updateIfVersion, [
        k,
        JSON.stringify({ count: i }),
        versions.get(k),
        v,
      ]);
      if (r.rowCount !== 1) throw new Error("the UPDATE did not land");
      versions.set(k, v);
    });
  }

  const S = "PostgreSQL, storage alone (read + write, no bot)";
  const st = await sk("st", await own());
  row(S, "PostgresStorage readVersioned + writeIfVersion", async (i) => {
    const k = String((i % CHATS) + 1);
    const { value, version } = await st.readVersioned(k);
    await st.writeIfVersion(k, { count: (value?.count ?? 0) + 1 }, version);
  });
  const pdb = await own();
  row(S, "pool, the same statements", async (i) => {
    const k = String((i % CHATS) + 1);
    const { text, version } = await skGet(pdb)(k);
    const count = text === null ? 0 : JSON.parse(text).count;
    await skSet(pdb)(k, JSON.stringify({ count: count + 1 }), version);
  });
  const ga = await psql("sg", await own());
  row(S, "storage-psql read + write", async (i) => {
    const k = String((i % CHATS) + 1);
    const value = await ga.read(k);
    await ga.write(k, { count: (value?.count ?? 0) + 1 });
  });
  serverPids = [];
}

// ------------------------------------------------- middleware over no-op

/** An in-process storage that keeps one value per key and answers with resolved promises. */
function noopStorage(conditional: boolean) {
  const map = new Map<string, Data>();
  let v = 0;
  const base = {
    read: (key: string) => Promise.resolve(map.get(key)),
    write: (key: string, value: Data) => {
      map.set(key, value);
      return Promise.resolve();
    },
    delete: (key: string) => Promise.resolve(void map.delete(key)),
  };
  if (!conditional) return base;
  return {
    ...base,
    readVersioned: (key: string) => {
      const value = map.get(key);
      return Promise.resolve({ value, version: value === undefined ? null : String(v) });
    },
    writeIfVersion: (key: string, value: Data, _expected: string | null) => {
      map.set(key, value);
      return Promise.resolve(String(++v));
    },
    deleteIfVersion: (key: string) => Promise.resolve(map.delete(key) || true),
  };
}

/** The same in-process map, but holding JSON text, as a networked storage does. */
function textStorage(conditional: boolean) {
  const map = new Map<string, string>();
  let v = 0;
  const read = (key: string) => {
    const text = map.get(key);
    return text === undefined ? undefined : JSON.parse(text) as Data;
  };
  const base = {
    read: (key: string) => Promise.resolve(read(key)),
    write: (key: string, value: Data) => {
      map.set(key, JSON.stringify(value));
      return Promise.resolve();
    },
    delete: (key: string) => Promise.resolve(void map.delete(key)),
  };
  if (!conditional) return base;
  return {
    ...base,
    readVersioned: (key: string) => {
      const value = read(key);
      return Promise.resolve({ value, version: value === undefined ? null : String(v) });
    },
    writeIfVersion: (key: string, value: Data, _expected: string | null) => {
      map.set(key, JSON.stringify(value));
      return Promise.resolve(String(++v));
    },
    deleteIfVersion: (key: string) => Promise.resolve(map.delete(key) || true),
  };
}

function middlewareRows() {
  const M = "Middleware over an in-process async storage (no I/O)";
  botRow(
    M,
    "grammY session, objects kept",
    grammySession<Data, C>({
      initial,
      storage: noopStorage(false),
    }),
  );
  botRow(
    M,
    "sessionkit session, objects kept, conditional",
    session<Data, C>({
      initial,
      storage: noopStorage(true),
    }),
  );
  botRow(
    M,
    "sessionkit session, objects kept, plain read/write",
    session<Data, C>({
      initial,
      storage: noopStorage(false),
    }),
  );
  botRow(
    M,
    "grammY session, JSON text kept",
    grammySession<Data, C>({
      initial,
      storage: textStorage(false),
    }),
  );
  botRow(
    M,
    "sessionkit session, JSON text kept, conditional",
    session<Data, C>({
      initial,
      storage: textStorage(true),
    }),
  );
  botRow(M, "no session (handler on a plain object)", (ctx: C, next) => {
    Object.defineProperty(ctx, "session", { value: { count: 0 }, writable: true });
    return next();
  });
}

// ---------------------------------------------------------------- run

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function format(us: number): string {
  return us >= 100 ? us.toFixed(0) : us.toFixed(1);
}

async function main() {
  if (ONLY.has("redis")) await redisRows();
  if (ONLY.has("postgres")) await postgresRows();
  if (ONLY.has("mw")) middlewareRows();
  // Warm-up: every key written once (so every measured write is an update), JIT settled.
  for (const r of rows) for (let i = 0; i < 3 * CHATS; i++) await r.run(i);
  let i = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate and reverse: every row runs early and late alike.
    const order = rows.map((_, k) => (k + round) % rows.length);
    if (round % 2) order.reverse();
    for (const k of order) {
      const r = rows[k];
      const server = serverCpu(r.pids);
      const cpu = ownCpu();
      const start = performance.now();
      for (let n = 0; n < BATCH; n++) await r.run(i + n);
      r.times.push(((performance.now() - start) * 1000) / BATCH);
      r.cpu.push((ownCpu() - cpu) / BATCH);
      r.server.push((serverCpu(r.pids) - server) / BATCH);
    }
    i += BATCH;
  }
  console.log(
    `# detection_cost: ${ROUNDS} rounds x ${BATCH} per row, µs per update, ` +
      `load ${Deno.loadavg().map((x) => x.toFixed(1)).join(" ")} at the end`,
  );
  console.log(
    "wall: time per update (p50, p75 over the rounds); client CPU: this process, every thread;" +
      " server CPU: the Redis server's main thread or the row's PostgreSQL backend (mean)",
  );
  let group = "";
  let base = 0;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  for (const r of rows) {
    const sorted = [...r.times].sort((a, b) => a - b);
    const p50 = quantile(sorted, 0.5);
    if (r.group !== group) {
      group = r.group;
      base = p50;
      console.log(`\n## ${group}\n`);
      console.log(
        "| row | wall p50 µs | wall p75 µs | p50 ratio | client CPU µs | server CPU µs |",
      );
      console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
    }
    const server = r.pids.length === 0 ? "–" : format(mean(r.server));
    console.log(
      `| ${r.name} | ${format(p50)} | ${format(quantile(sorted, 0.75))} | ${
        (p50 / base).toFixed(2)
      }x | ${format(mean(r.cpu))} | ${server} |`,
    );
  }
}

try {
  await main();
} finally {
  for (const cleanup of cleanups) await cleanup().catch((err) => console.error(err));
}

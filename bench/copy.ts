/**
 * How fast `copySessions` moves sessions between every pair of local
 * storages, and how much memory a 100,000-session copy takes (#20).
 *
 * ```sh
 * deno run -A bench/copy.ts            # 20,000 sessions per pair
 * deno run -A bench/copy.ts 2000       # fewer
 * deno run -A bench/copy.ts --peak     # also the peak memory of 100,000-session copies
 * deno run -A bench/copy.ts --only=redis,sqlite   # only these storages
 * deno run -A bench/copy.ts --peak-only --peak-pairs=sqlite:sqlite,memory:redis
 * deno run -A bench/copy.ts --help
 * ```
 *
 * Storages: memory, Deno KV (a file), SQLite (a file, WAL with
 * `synchronous = NORMAL`), Redis (REDIS_URL), PostgreSQL (DATABASE_URL) and
 * MySQL/MariaDB (MYSQL_URL); one that cannot be reached is left out with a
 * note. Every run has namespaces of its own (a key prefix, tables, files),
 * removed at the end. Sessions are about 420 bytes of JSON each.
 *
 * The sessions/s of a pair is the sessions copied divided by the time of the
 * `copySessions` call (default options: 100 keys in flight, create-if-absent
 * writes into an empty target). Every pair is measured, a storage to another
 * namespace of its own kind too (memory -> memory is the baseline of the
 * copy itself: no I/O at all). Right before each copy, the same sessions are
 * written into another empty namespace of the target by a plain loop
 * (`writeIfVersion(key, value, null)`, 100 in flight, the values made
 * beforehand): the target's own write rate at that moment, so that the ratio
 * copy / raw writes is measured under the same load as the copy, whatever
 * else the machine runs. The load average is printed before and after. The
 * peak memory is measured in a process of
 * its own per pair (started with `--v8-flags=--expose-gc`, collected before
 * the copy starts): its RSS and heap before the copy, the most they grew
 * during it (RSS sampled every 10 ms and after every batch; the live heap
 * after a full collection every 50 batches, so garbage that V8 has not yet
 * collected does not count), and, to compare, how much heap the same
 * 100,000 sessions take when all are held at once.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { createClient } from "npm:redis@^5";
// @ts-types="npm:@types/pg@^8"
import pg from "npm:pg@^8";
import mysql from "npm:mysql2@^3/promise";
import {
  copySessions,
  isConditionalStorage,
  MemorySessionStorage,
  type StorageAdapter,
} from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";
import { SqliteStorage } from "../storages/sqlite.ts";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { MysqlStorage } from "../storages/mysql.ts";

/** The pairs of `--peak` by default: every storage, as a source and as a target. */
const DEFAULT_PEAK_PAIRS = [
  "memory:sqlite",
  "sqlite:sqlite",
  "redis:sqlite",
  "sqlite:postgres",
  "postgres:redis",
  "mysql:denokv",
  "denokv:memory",
];
const REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL = Deno.env.get("MYSQL_URL") ?? "mysql://root@127.0.0.1:3306/test";
const PEAK_N = 100_000;
const MB = 1024 * 1024;
/** Keys in flight in the raw write loop: `copySessions`'s default batch. */
const RAW_IN_FLIGHT = 100;

const USAGE = `bench/copy.ts: copySessions between every pair of local storages (#20)

usage: deno run -A bench/copy.ts [N] [--only=NAMES] [--no-raw] [--peak] [--peak-only]
                                 [--peak-pairs=FROM:TO,...]

  N                 sessions per pair (default 20000), about 420 bytes of JSON each
  --only=NAMES      only these storages, comma-separated: ${
  ["memory", "denokv", "sqlite", "redis", "postgres", "mysql"].join(", ")
}
  --no-raw          skip the raw write loop measured before each copy (half the time)
  --peak            also the peak memory of 100,000-session copies, a process per pair
  --peak-only       only the peak memory
  --peak-pairs=...  the pairs of --peak (default: ${DEFAULT_PEAK_PAIRS.join(",")})

Servers: REDIS_URL (${REDIS_URL}), DATABASE_URL (${DATABASE_URL}),
MYSQL_URL (${MYSQL_URL}); one that cannot be reached is left out with a note.
`;

type Data = Record<string, unknown>;

/** Session `i`: about 420 bytes of JSON, a bit of everything. */
function session(i: number): Data {
  return {
    count: i,
    user: { id: 1_000_000 + i, name: `user ${i} ñ 😀`, lang: i % 2 ? "en" : "de" },
    history: [i, i + 1, i + 2, `step ${i % 17}`],
    ratio: i / 7,
    flags: { admin: i % 97 === 0, muted: false, seen: null },
    note: "lorem ipsum dolor sit amet ".repeat(10),
  };
}

function keyOf(i: number): string {
  return `chat:${i}`;
}

/**
 * A source that generates sessions as they are listed, holding none: used
 * to fill the storages under test, and as the source of nothing else.
 */
function generated(n: number): StorageAdapter<Data> {
  return {
    read: (key) => session(Number(key.slice(5))),
    write: () => {},
    delete: () => {},
    *readAllEntries() {
      for (let i = 0; i < n; i++) yield [keyOf(i), session(i)];
    },
  };
}

/** A storage in a namespace of its own, and how to remove it. */
interface Place {
  storage: StorageAdapter<Data>;
  drop(): Promise<void>;
}

interface Kind {
  name: string;
  label: string;
  /** Why it cannot run here, or `undefined`. */
  probe(): Promise<string | undefined>;
  open(ns: string): Promise<Place>;
}

const dir = Deno.makeTempDirSync({ prefix: "sk-bench-copy-" });

async function reachable(f: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await f();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const KINDS: Kind[] = [
  {
    name: "memory",
    label: "memory",
    probe: () => Promise.resolve(undefined),
    open: () =>
      Promise.resolve({ storage: new MemorySessionStorage<Data>(), drop: async () => {} }),
  },
  {
    name: "denokv",
    label: "Deno KV file",
    probe: () => Promise.resolve(typeof Deno.openKv === "function" ? undefined : "no Deno.openKv"),
    async open(ns) {
      const path = `${dir}/${ns}.kv`;
      const kv = await Deno.openKv(path);
      return {
        storage: new DenoKvStorage<Data>(kv),
        async drop() {
          kv.close();
          for (const suffix of ["", "-wal", "-shm"]) {
            await Deno.remove(path + suffix).catch(() => {});
          }
        },
      };
    },
  },
  {
    name: "sqlite",
    label: "SQLite file",
    probe: () => Promise.resolve(undefined),
    open(ns) {
      const path = `${dir}/${ns}.db`;
      const db = new DatabaseSync(path);
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
      return Promise.resolve({
        storage: new SqliteStorage<Data>(db),
        async drop() {
          db.close();
          for (const suffix of ["", "-wal", "-shm"]) {
            await Deno.remove(path + suffix).catch(() => {});
          }
        },
      });
    },
  },
  {
    name: "redis",
    label: "Redis",
    probe: () =>
      reachable(async () => {
        const client = createClient({
          url: REDIS_URL,
          socket: { connectTimeout: 2000, reconnectStrategy: false },
        });
        client.on("error", () => {});
        await client.connect();
        await client.ping();
        client.destroy();
      }),
    async open(ns) {
      const prefix = `sessionkit-bench:${ns}:`;
      const storage = await RedisStorage.connect<Data>(REDIS_URL, { prefix });
      return {
        storage,
        async drop() {
          const client = storage.client as unknown as ReturnType<typeof createClient>;
          let cursor = "0";
          do {
            const reply = await client.scan(cursor, { MATCH: `${prefix}*`, COUNT: 1000 });
            cursor = String(reply.cursor);
            if (reply.keys.length > 0) await client.del(reply.keys);
          } while (cursor !== "0");
          await storage.close();
        },
      };
    },
  },
  {
    name: "postgres",
    label: "PostgreSQL",
    probe: () => reachable(() => sql("SELECT 1", "postgres")),
    open(ns) {
      const storage = PostgresStorage.connect<Data>(DATABASE_URL, { table: ns });
      return Promise.resolve({
        storage,
        async drop() {
          await storage.close();
          await sql(`DROP TABLE IF EXISTS "${ns}", "${ns}_leases"`, "postgres");
        },
      });
    },
  },
  {
    name: "mysql",
    label: "MySQL (MariaDB)",
    probe: () => reachable(() => sql("SELECT 1", "mysql")),
    open(ns) {
      const storage = MysqlStorage.connect<Data>(MYSQL_URL, { table: ns });
      return Promise.resolve({
        storage,
        async drop() {
          await storage.close();
          await sql(`DROP TABLE IF EXISTS \`${ns}\`, \`${ns}_leases\``, "mysql");
        },
      });
    },
  },
];

/** Runs one statement on a connection of its own. */
async function sql(text: string, server: "postgres" | "mysql"): Promise<void> {
  if (server === "postgres") {
    const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
    client.on("error", () => {});
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  } else {
    const conn = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 3000 });
    try {
      await conn.query(text);
    } finally {
      await conn.end();
    }
  }
}

const RUN = `sk_copy_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
let places = 0;

async function fill(storage: StorageAdapter<Data>, n: number): Promise<void> {
  const report = await copySessions(generated(n), storage, { overwrite: true, batchSize: 200 });
  if (report.copied !== n) throw new Error(`filling: ${JSON.stringify(report)}`);
}

/**
 * Times a plain loop of create-if-absent writes of `values` into an empty
 * `to`, `RAW_IN_FLIGHT` at a time: what a copy into `to` writes, without the
 * copy (no listing, no batches, no counting).
 */
async function timeRawWrites(to: StorageAdapter<Data>, values: Data[]): Promise<number> {
  const put = isConditionalStorage<Data>(to)
    ? (key: string, value: Data) => to.writeIfVersion(key, value, null)
    : (key: string, value: Data) => to.write(key, value);
  const started = performance.now();
  for (let at = 0; at < values.length; at += RAW_IN_FLIGHT) {
    const writes: unknown[] = [];
    for (let i = at; i < Math.min(at + RAW_IN_FLIGHT, values.length); i++) {
      writes.push(put(keyOf(i), values[i]));
    }
    await Promise.all(writes);
  }
  return values.length / ((performance.now() - started) / 1000);
}

/** The load average (1, 5, 15 minutes), where the system tells it. */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

/** Times one copy into an empty target. */
async function timeCopy(from: StorageAdapter<Data>, to: StorageAdapter<Data>, n: number) {
  const started = performance.now();
  const report = await copySessions(from, to);
  const seconds = (performance.now() - started) / 1000;
  if (report.copied !== n || report.failed !== 0) {
    throw new Error(
      `copy: ${JSON.stringify({ ...report, failures: report.failures.slice(0, 3) })}`,
    );
  }
  return n / seconds;
}

/** The child process of `--peak`: one 100,000-session copy, measured. */
async function peakChild(fromName: string, toName: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const kind = (name: string) => KINDS.find((k) => k.name === name)!;
  const from = await kind(fromName).open(`${RUN}_peak_from`);
  const to = await kind(toName).open(`${RUN}_peak_to`);
  try {
    await fill(from.storage, PEAK_N);
    gc?.();
    const base = Deno.memoryUsage();
    let peakRss = base.rss;
    let peakLive = base.heapUsed;
    let batches = 0;
    const sample = () => void (peakRss = Math.max(peakRss, Deno.memoryUsage().rss));
    const batch = () => {
      sample();
      if (gc === undefined || ++batches % 50 !== 0) return;
      gc();
      peakLive = Math.max(peakLive, Deno.memoryUsage().heapUsed);
    };
    const timer = setInterval(sample, 10);
    const started = performance.now();
    const report = await copySessions(from.storage, to.storage, { onProgress: batch });
    const seconds = (performance.now() - started) / 1000;
    clearInterval(timer);
    if (report.copied !== PEAK_N) throw new Error(`copy: ${JSON.stringify(report)}`);
    // For comparison: the heap all these sessions take when held at once.
    gc?.();
    const before = Deno.memoryUsage().heapUsed;
    const held: [string, Data][] = [];
    for await (const entry of from.storage.readAllEntries!()) held.push(entry);
    gc?.();
    const holding = Deno.memoryUsage().heapUsed - before;
    console.log(JSON.stringify({
      rate: PEAK_N / seconds,
      baseRss: base.rss,
      rss: peakRss - base.rss,
      live: peakLive - base.heapUsed,
      holding,
      held: held.length,
      text: held.reduce((n, [, v]) => n + JSON.stringify(v).length, 0),
    }));
  } finally {
    await to.drop();
    await from.drop();
  }
}

async function main(): Promise<void> {
  const args = Deno.args;
  if (args[0] === "--peak-child") return await peakChild(args[1], args[2]);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return;
  }
  const known = /^(\d+|--only=.*|--no-raw|--peak|--peak-only|--peak-pairs=.*)$/;
  const wrong = args.find((a) => !known.test(a));
  if (wrong !== undefined) {
    console.error(`bench/copy.ts: unknown argument ${wrong}\n\n${USAGE}`);
    Deno.exit(2);
  }
  const n = Number(args.find((a) => /^\d+$/.test(a)) ?? 20_000);
  const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",");
  const raw = !args.includes("--no-raw");
  const peakOnly = args.includes("--peak-only");
  const pairs = (args.find((a) => a.startsWith("--peak-pairs="))?.slice(13).split(",") ??
    DEFAULT_PEAK_PAIRS).map((pair) => pair.split(":") as [string, string]);
  for (const name of [...(only ?? []), ...pairs.flat()]) {
    if (!KINDS.some((k) => k.name === name)) {
      console.error(`bench/copy.ts: no storage named ${name}\n\n${USAGE}`);
      Deno.exit(2);
    }
  }
  const kinds: Kind[] = [];
  for (const kind of KINDS) {
    if (only !== undefined && !only.includes(kind.name)) continue;
    const problem = await kind.probe();
    if (problem === undefined) kinds.push(kind);
    else console.error(`leaving out ${kind.label}: ${problem}`);
  }
  console.log(
    `Deno ${Deno.version.deno}, ${Deno.build.os} ${Deno.build.arch}, ` +
      `${navigator.hardwareConcurrency} cores; load average at the start: ${loadAverage()}\n`,
  );
  if (!peakOnly) await matrix(kinds, n, raw);
  if (args.includes("--peak") || peakOnly) await peak(kinds, pairs);
  console.log(`\nload average at the end: ${loadAverage()}`);
}

/** Every pair of `kinds`: sessions/s of the copy, and of the raw writes before it. */
async function matrix(kinds: Kind[], n: number, raw: boolean): Promise<void> {
  const values = raw ? Array.from({ length: n }, (_, i) => session(i)) : [];
  // Warm-up, not reported: the first pair measured would otherwise also pay
  // for compiling the copy's code.
  const warm = new MemorySessionStorage<Data>();
  await fill(warm, 5000);
  await timeCopy(warm, new MemorySessionStorage<Data>(), 5000);
  await timeRawWrites(new MemorySessionStorage<Data>(), values.slice(0, 5000));
  const rates: number[][] = [];
  const rawRates: number[][] = [];
  const started = performance.now();
  for (const source of kinds) {
    const from = await source.open(`${RUN}_${++places}`);
    const row: number[] = [];
    const rawRow: number[] = [];
    try {
      await fill(from.storage, n);
      for (const target of kinds) {
        if (raw) {
          const plain = await target.open(`${RUN}_${++places}`);
          try {
            rawRow.push(await timeRawWrites(plain.storage, values));
          } finally {
            await plain.drop();
          }
        }
        const to = await target.open(`${RUN}_${++places}`);
        try {
          row.push(await timeCopy(from.storage, to.storage, n));
        } finally {
          await to.drop();
        }
      }
    } finally {
      await from.drop();
    }
    rates.push(row);
    rawRates.push(rawRow);
    console.error(`  ${source.label} done (${Math.round((performance.now() - started) / 1000)} s)`);
  }
  const head = `| from \\ to | ${kinds.map((k) => k.label).join(" | ")} |\n` +
    `| --- | ${kinds.map(() => "---:").join(" | ")} |`;
  const table = (cell: (i: number, j: number) => string) =>
    kinds.map((k, i) => `| **${k.label}** | ${kinds.map((_, j) => cell(i, j)).join(" | ")} |`)
      .join("\n");
  const int = (x: number) => Math.round(x).toLocaleString("en");
  console.log(`## copySessions: sessions/s, ${n.toLocaleString("en")} sessions per pair\n`);
  console.log(
    "Rows: from, columns: to; default options (100 keys in flight, create-if-absent into an " +
      "empty target).\n",
  );
  console.log(`${head}\n${table((i, j) => int(rates[i][j]))}`);
  if (!raw) return;
  console.log(
    `\n## Raw writes into the target, measured right before each copy: sessions/s\n\n` +
      `A loop of writeIfVersion(key, value, null), ${RAW_IN_FLIGHT} in flight, values made ` +
      `beforehand, into another empty namespace of the target.\n`,
  );
  console.log(`${head}\n${table((i, j) => int(rawRates[i][j]))}`);
  console.log(
    "\n## The copy against the raw writes measured right before it (copy / raw, 1.00x: as " +
      "fast as writing alone)\n",
  );
  console.log(`${head}\n${table((i, j) => `${(rates[i][j] / rawRates[i][j]).toFixed(2)}x`)}`);
  const base = rates[kinds.findIndex((k) => k.name === "memory")]?.[0];
  if (base !== undefined && kinds[0].name === "memory") {
    console.log(
      `\nmemory -> memory (the copy alone, no I/O): ${int(base)} sessions/s; every other pair ` +
        `as a share of it: ${
          kinds.flatMap((a, i) =>
            kinds.map((b, j) =>
              i === 0 && j === 0 ? "" : `${a.name}->${b.name} ${(rates[i][j] / base).toFixed(3)}`
            )
          ).filter(Boolean).join(", ")
        }`,
    );
  }
}

/** `--peak`: one child process per pair, each copying 100,000 sessions. */
async function peak(kinds: Kind[], wanted: [string, string][]): Promise<void> {
  const names = new Set(kinds.map((k) => k.name));
  const pairs = wanted.filter(([a, b]) => names.has(a) && names.has(b));
  console.log(`\n## Peak memory of a ${PEAK_N.toLocaleString("en")}-session copy\n`);
  console.log(
    "Each copy in a process of its own, after a full collection: how much its RSS grew " +
      "(sampled every 10 ms) and its live heap (after a full collection every 50 batches) " +
      "over what they were just before the copy. Last column: the heap the same sessions " +
      "take when all are held at once.\n",
  );
  console.log(
    "| from → to | sessions/s | RSS before | RSS growth | live heap growth | JSON text | all held |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  const label = (name: string) => KINDS.find((k) => k.name === name)!.label;
  for (const [a, b] of pairs) {
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-kv",
        "--v8-flags=--expose-gc",
        new URL(import.meta.url).pathname,
        "--peak-child",
        a,
        b,
      ],
      stderr: "inherit",
    }).output();
    if (!child.success) throw new Error(`the --peak child for ${a} -> ${b} failed`);
    const lines = new TextDecoder().decode(child.stdout).trim().split("\n");
    const r = JSON.parse(lines.at(-1)!);
    const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
    console.log(
      `| ${label(a)} → ${label(b)} | ${Math.round(r.rate).toLocaleString("en")} | ` +
        `${mb(r.baseRss)} | ${mb(r.rss)} | ${mb(r.live)} | ${mb(r.text)} | ${mb(r.holding)} |`,
    );
  }
}

try {
  await main();
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

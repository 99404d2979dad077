/**
 * Group 4: PostgreSQL at DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/test), through a real
 * `Bot.handleUpdate`, one update after another. Rows:
 *
 * - raw `pg` queries, `SELECT` + upsert, written only when changed (the
 *   limit, baseline);
 * - sessionkit `session()` on `PostgresStorage` (defaults: conflict
 *   detection on);
 * - grammY's `session()` on `@grammyjs/storage-psql`.
 *
 * Plus the storage alone against the driver for the same round trips, and
 * the cost of conflict detection. All tables start with a unique name and
 * are dropped by the last bench of this file.
 */

// @ts-types="npm:@types/pg@^8"
import pg from "npm:pg@^8";
import { PsqlAdapter } from "npm:@grammyjs/storage-psql@^2";
import { type Context, session as grammySession } from "npm:grammy@^1.46";
import { session } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import {
  CHATS,
  type Data,
  driver,
  initial,
  loudSkip,
  makeBot,
  mixedHandler,
  mixedUpdates,
  rawSession,
  RUN,
} from "./_bot.ts";

const URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const BATCH = 10;
const OPTS = { n: 300, warmup: 50 } as const;

/** One connection shared by every row, so all of them queue on the same socket. */
async function connect() {
  const pool = new pg.Client({ connectionString: URL, connectionTimeoutMillis: 3000 });
  pool.on("error", () => {});
  try {
    await pool.connect();
    await pool.query("SELECT 1");
    return { pool };
  } catch (err) {
    await pool.end().catch(() => {});
    return { problem: err instanceof Error ? err.message : String(err) };
  }
}

const { pool, problem } = await connect();
if (pool === undefined) {
  loudSkip("PostgreSQL", URL, problem ?? "unknown");
  Deno.bench({ name: "postgres (skipped: no server)", ignore: true, fn: () => {} });
} else {
  const tables: string[] = [];
  const q = (name: string) => pg.escapeIdentifier(name);

  /**
   * The limit rows' table: PostgresStorage's key column (`text COLLATE "C"`)
   * without its version and expiry bookkeeping. The value is `json`, the
   * storage's default, so the raw middleware's text comparison sees an
   * unchanged session as unchanged (jsonb would give normalized text back).
   */
  const rawTable = async (tag: string) => {
    const name = `${RUN}_raw_${tag}`;
    tables.push(name);
    await pool!.query(
      `CREATE TABLE ${q(name)} (key text COLLATE "C" PRIMARY KEY, value json NOT NULL)`,
    );
    const select = `SELECT value::text AS value FROM ${q(name)} WHERE key = $1`;
    const upsert = `INSERT INTO ${q(name)} (key, value) VALUES ($1, $2::json)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
    const get = async (key: string) =>
      (await pool!.query(select, [key])).rows[0]?.value as string | undefined;
    const set = (key: string, text: string) => pool!.query(upsert, [key, text]);
    for (let chat = 1; chat <= CHATS; chat++) await set(String(chat), JSON.stringify(initial()));
    return { get, set };
  };

  const skStorage = async (tag: string) => {
    const table = `${RUN}_sk_${tag}`;
    tables.push(table, `${table}_leases`);
    const storage = new PostgresStorage<Data>(pool!, { table });
    for (let chat = 1; chat <= CHATS; chat++) await storage.write(String(chat), initial());
    return storage;
  };

  const psqlAdapter = async (tag: string) => {
    const tableName = `${RUN}_psql_${tag}`;
    tables.push(tableName);
    const adapter = await PsqlAdapter.create({ tableName, client: pool! }) as PsqlAdapter<Data>;
    for (let chat = 1; chat <= CHATS; chat++) await adapter.write(String(chat), initial());
    return adapter;
  };

  const updates = mixedUpdates(CHATS);
  for (
    const [label, every] of [["read-mostly, 1 write in 10 updates", 10], [
      "write-heavy, every update writes",
      1,
    ]] as const
  ) {
    const group = `PostgreSQL, ${label}`;
    const tag = every === 1 ? "w" : "r";
    const raw = await rawTable(tag);
    const rows: [string, Parameters<typeof makeBot>[0]][] = [
      ["raw pg SELECT + upsert (limit)", rawSession(raw.get, raw.set)],
      [
        "sessionkit session + PostgresStorage",
        session<Data>({ initial, storage: await skStorage(tag) }),
      ],
      [
        "grammY session + @grammyjs/storage-psql",
        grammySession<Data, Context>({ initial, storage: await psqlAdapter(tag) }),
      ],
    ];
    for (const [name, middleware] of rows) {
      const bot = makeBot(middleware, mixedHandler(every));
      // deno-lint-ignore no-explicit-any
      const fn = driver(bot as any, updates, BATCH);
      Deno.bench({ ...OPTS, group, name, baseline: name.endsWith("(limit)"), fn });
    }
  }

  // The storage alone vs the driver: one read and one write per iteration.
  {
    const group = "PostgreSQL storage vs driver, one read + one write";
    const raw = await rawTable("drv");
    const storage = await skStorage("drv");
    let i = 0;
    Deno.bench({
      ...OPTS,
      group,
      name: "pg SELECT + upsert with JSON (limit)",
      baseline: true,
      fn: async () => {
        const key = String(i++ % CHATS + 1);
        const text = await raw.get(key);
        const data: Data = text == null ? initial() : JSON.parse(text);
        data.count++;
        await raw.set(key, JSON.stringify(data));
      },
    });
    Deno.bench({
      ...OPTS,
      group,
      name: "PostgresStorage read + write",
      fn: async () => {
        const key = String(i++ % CHATS + 1);
        const data = (await storage.read(key)) ?? initial();
        data.count++;
        await storage.write(key, data);
      },
    });
    Deno.bench({
      ...OPTS,
      group,
      name: "PostgresStorage readVersioned + writeIfVersion",
      fn: async () => {
        const key = String(i++ % CHATS + 1);
        const { value, version } = await storage.readVersioned(key);
        const data = value ?? initial();
        data.count++;
        await storage.writeIfVersion(key, data, version);
      },
    });
  }

  // Conflict detection in one process: off (overwrite) vs on (the default).
  {
    const group = "PostgreSQL, conflict detection cost (every update writes)";
    for (
      const [name, onConflict] of [["detection off (overwrite)", "overwrite"], [
        "detection on (default)",
        undefined,
      ]] as const
    ) {
      const storage = await skStorage(`det_${onConflict ?? "on"}`);
      const bot = makeBot(session<Data>({ initial, onConflict, storage }), mixedHandler(1));
      // deno-lint-ignore no-explicit-any
      const fn = driver(bot as any, updates, BATCH);
      Deno.bench({ ...OPTS, group, name, baseline: onConflict === "overwrite", fn });
    }
  }

  let cleaned = false;
  Deno.bench({
    name: "PostgreSQL cleanup (drops this run's tables)",
    group: "cleanup",
    n: 1,
    warmup: 0,
    fn: async () => {
      if (cleaned) return; // deno bench may call this more than once
      cleaned = true;
      await pool.query(`DROP TABLE IF EXISTS ${tables.map(q).join(", ")}`);
      await pool.end();
    },
  });
}

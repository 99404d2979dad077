/**
 * MySQL/MariaDB at MYSQL_URL (default mysql://root@127.0.0.1:3306/test),
 * through `npm:mysql2`'s promise API and a real `Bot.handleUpdate`, one
 * update after another. Rows:
 *
 * - raw `mysql2` prepared statements, `SELECT` + upsert, written only when
 *   changed (the limit, baseline);
 * - sessionkit `session()` on `MysqlStorage` (defaults: conflict detection
 *   on, so a write is an `UPDATE ... WHERE version = ?`).
 *
 * There is no grammY row: no `@grammyjs/storage-*` adapter for MySQL or
 * MariaDB is published on npm (`npm view @grammyjs/storage-mysql` answers
 * 404, as does `storage-typeorm`; `@grammyjs/storage-prisma` needs a
 * generated Prisma client and schema, it is not an adapter for a mysql2
 * connection), so there is nothing maintained to compare against.
 *
 * Plus the storage alone against the driver for the same round trips, and
 * the cost of conflict detection.
 *
 * Fairness of the limit: every row uses the same single connection (so all
 * of them queue on one socket, as in postgres_bench) and server-side
 * prepared statements (`execute`), as the storage does. The raw table has
 * the storage's key and value columns exactly: `key VARBINARY(767)` as the
 * primary key, because a text key would not give the same result (with
 * `utf8mb4_bin` MariaDB and MySQL compare with `PAD SPACE`, so `"a"` and
 * `"a "` would be one session; see docs/mysql.md), and `value LONGTEXT
 * utf8mb4 utf8mb4_bin`, which holds every session the storage holds; an
 * InnoDB table. It leaves out the storage's `version` and `expires_at`
 * columns (and the index on `expires_at`), because the raw path neither
 * detects conflicts nor expires sessions: that bookkeeping, the
 * storage's occasional purge of expired rows, and its reading the value as
 * bytes (`CAST(value AS BINARY)`, right on `utf8mb3` connections too; on
 * mysql2's default `utf8mb4` connection plain text gives the same JSON) are
 * what the ratio measures.
 *
 * Every table starts with a unique `skbench_<run>` name and is dropped by
 * the last bench of this file. Without a server, the benches are skipped
 * with a loud message.
 *
 * Run: `deno bench -A --no-check=remote bench/mysql_bench.ts`. With
 * `BENCH_QUICK=1` every row runs only 20 iterations: a check that the file
 * works, not a measurement.
 */

import mysql from "npm:mysql2@^3/promise";
import { session } from "../mod.ts";
import { MysqlStorage } from "../storages/mysql.ts";
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

const URL = Deno.env.get("MYSQL_URL") ?? "mysql://root@127.0.0.1:3306/test";
const QUICK = Deno.env.get("BENCH_QUICK") === "1";
const BATCH = 10;
const OPTS = QUICK ? { n: 20, warmup: 5 } as const : { n: 300, warmup: 50 } as const;

type Connection = Awaited<ReturnType<typeof mysql.createConnection>>;

/** One connection shared by every row, so all of them queue on the same socket. */
async function connect(): Promise<{ conn?: Connection; problem?: string }> {
  let conn: Connection | undefined;
  try {
    conn = await mysql.createConnection({ uri: URL, connectTimeout: 3000 });
    conn.on("error", () => {});
    await conn.query("SELECT 1");
    return { conn };
  } catch (err) {
    await conn?.end().catch(() => {});
    return { problem: err instanceof Error ? err.message : String(err) };
  }
}

const { conn, problem } = await connect();
if (conn === undefined) {
  loudSkip("MySQL", URL, problem ?? "unknown");
  Deno.bench({ name: "mysql (skipped: no server)", ignore: true, fn: () => {} });
} else {
  const tables: string[] = [];
  const q = (name: string) => `\`${name.replaceAll("`", "``")}\``;

  /** The rows of a `SELECT` sent with `rowsAsArray`. */
  const rowsOf = (result: unknown) => (result as [unknown[][], unknown])[0];

  /**
   * The limit rows' table: MysqlStorage's key and value columns, without its
   * version and expiry bookkeeping.
   */
  const rawTable = async (tag: string) => {
    const name = `${RUN}_raw_${tag}`;
    tables.push(name);
    await conn!.query(`CREATE TABLE ${q(name)} (
  \`key\` VARBINARY(767) NOT NULL,
  \`value\` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (\`key\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
    const select = { sql: `SELECT \`value\` FROM ${q(name)} WHERE \`key\` = ?`, rowsAsArray: true };
    const upsert = {
      sql: `INSERT INTO ${q(name)} (\`key\`, \`value\`) VALUES (?, ?)
ON DUPLICATE KEY UPDATE \`value\` = VALUES(\`value\`)`,
      rowsAsArray: true,
    };
    const get = async (key: string) =>
      rowsOf(await conn!.execute(select, [key]))[0]?.[0] as string | undefined;
    const set = (key: string, text: string) => conn!.execute(upsert, [key, text]);
    for (let chat = 1; chat <= CHATS; chat++) await set(String(chat), JSON.stringify(initial()));
    return { get, set };
  };

  const skStorage = async (tag: string) => {
    const table = `${RUN}_sk_${tag}`;
    const storage = new MysqlStorage<Data>(conn!, { table });
    tables.push(table, storage.leaseTable);
    for (let chat = 1; chat <= CHATS; chat++) await storage.write(String(chat), initial());
    return storage;
  };

  const updates = mixedUpdates(CHATS);
  for (
    const [label, every] of [["read-mostly, 1 write in 10 updates", 10], [
      "write-heavy, every update writes",
      1,
    ]] as const
  ) {
    const group = `MySQL, ${label}`;
    const tag = every === 1 ? "w" : "r";
    const raw = await rawTable(tag);
    const rows: [string, Parameters<typeof makeBot>[0]][] = [
      ["raw mysql2 SELECT + upsert (limit)", rawSession(raw.get, raw.set)],
      [
        "sessionkit session + MysqlStorage",
        session<Data>({ initial, storage: await skStorage(tag) }),
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
    const group = "MySQL storage vs driver, one read + one write";
    const raw = await rawTable("drv");
    const storage = await skStorage("drv");
    let i = 0;
    Deno.bench({
      ...OPTS,
      group,
      name: "mysql2 SELECT + upsert with JSON (limit)",
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
      name: "MysqlStorage read + write",
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
      name: "MysqlStorage readVersioned + writeIfVersion",
      fn: async () => {
        const key = String(i++ % CHATS + 1);
        const { value, version } = await storage.readVersioned(key);
        const data = value ?? initial();
        data.count++;
        if (await storage.writeIfVersion(key, data, version) === null) {
          throw new Error(`MysqlStorage: the conditional write of ${key} found another version`);
        }
      },
    });
  }

  // Conflict detection in one process: off (overwrite) vs on (the default).
  {
    const group = "MySQL, conflict detection cost (every update writes)";
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
    name: "MySQL cleanup (drops this run's tables)",
    group: "cleanup",
    n: 1,
    warmup: 0,
    fn: async () => {
      if (cleaned) return; // deno bench may call this more than once
      cleaned = true;
      await conn.query(`DROP TABLE IF EXISTS ${tables.map(q).join(", ")}`);
      await conn.end();
    },
  });
}

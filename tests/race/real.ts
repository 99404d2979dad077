/**
 * The race suite on the real storages: Redis (REDIS_URL), PostgreSQL
 * (DATABASE_URL), MySQL/MariaDB (MYSQL_URL), and Deno KV and SQLite in a
 * temporary file. The scheduler orders the
 * handler steps (storage replies come when the server sends them), and the
 * checks that need a call log (scheduled storage only) are left out; the
 * final state, versions, leases and probes are checked as on the memory
 * storage. Each run uses its own session prefix; each storage its own
 * prefix, table or file, removed at the end.
 *
 * Not picked up by `deno test tests/` (the name does not end in _test.ts):
 * `deno task test:race` runs it. RACE_RUNS scales the runs (default 10: a
 * tenth of the memory storage's configured runs per storage).
 *
 * @module
 */
import fc from "npm:fast-check@^4";
import { DatabaseSync } from "node:sqlite";
import { DenoKvStorage } from "../../storages/denokv.ts";
import { MysqlStorage } from "../../storages/mysql.ts";
import { PostgresStorage } from "../../storages/postgres.ts";
import type { RedisStorage } from "../../storages/redis.ts";
import { SqliteStorage } from "../../storages/sqlite.ts";
import { REDIS_URL, redisAvailable, RedisFixture, uniquePrefix } from "../redis_env.ts";
import { admin, DATABASE_URL, dropTables, RUN, whenReachable } from "../postgres_setup.ts";
import {
  admin as mysqlAdmin,
  dropTables as dropMysqlTables,
  MYSQL_URL,
  RUN as MYSQL_RUN,
  whenReachable as whenMysqlReachable,
} from "../mysql_setup.ts";
import { type BackendFactory, directBackend, type FullStorage, memoryBackend } from "./backends.ts";
import { CONFIGS } from "./configs.ts";
import type { Data } from "./data.ts";
import { raceProperty } from "./property.ts";

const SCALE = Number(Deno.env.get("RACE_RUNS") ?? 10);
const SEED = Deno.env.get("RACE_SEED");
const SHAPES = CONFIGS.filter((c) => c.backend === memoryBackend);

function realBackend(name: string, storage: FullStorage): BackendFactory {
  const tag = crypto.randomUUID().slice(0, 8);
  return (_s, program, _clock, run) => {
    const prefix = `race-${tag}-${run}:`;
    const keys = program.seeded.map((_, c) => `${prefix}${c + 1}`);
    return Promise.resolve(directBackend(name, prefix, storage, async () => {
      for (const key of keys) await storage.delete(key);
    }));
  };
}

async function runAll(t: Deno.TestContext, name: string, storage: FullStorage): Promise<void> {
  for (const config of SHAPES) {
    await t.step(`${name}: ${config.name.replace(/^memory storage, /, "")}`, async () => {
      await fc.assert(raceProperty(realBackend(name, storage), config.shape), {
        numRuns: Math.max(1, Math.round((config.runs * SCALE) / 100)),
        ...(SEED === undefined ? {} : { seed: Number(SEED) }),
      });
    });
  }
}

const loose = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "race on Deno KV (temporary file)",
  ...loose,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "sessionkit-race-" });
    const kv = await Deno.openKv(`${dir}/race.kv`);
    try {
      await runAll(t, "Deno KV", new DenoKvStorage<Data>(kv, { prefix: ["race"] }));
    } finally {
      kv.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (redisAvailable) {
  Deno.test({
    name: `race on Redis (${REDIS_URL})`,
    ...loose,
    async fn(t) {
      const fixture = new RedisFixture();
      try {
        const storage: RedisStorage<Data> = await fixture.connect<Data>({ prefix: uniquePrefix() });
        await runAll(t, "Redis", storage);
      } finally {
        await fixture.cleanup();
      }
    },
  });
} else if (Deno.env.get("CI") === "true") {
  Deno.test("race on Redis", () => {
    throw new Error(`Redis at ${REDIS_URL} is unreachable; CI needs it.`);
  });
}

whenReachable("race on PostgreSQL", () => {
  Deno.test({
    name: `race on PostgreSQL (${DATABASE_URL.replace(/\/\/[^@]*@/, "//…@")})`,
    ...loose,
    async fn(t) {
      const storage = PostgresStorage.connect<Data>(DATABASE_URL, { table: `${RUN}_race` });
      const db = await admin();
      try {
        await runAll(t, "PostgreSQL", storage);
      } finally {
        await storage.close();
        await dropTables(db, storage);
        await db.end();
      }
    },
  });
});

Deno.test({
  name: "race on SQLite (temporary file)",
  ...loose,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "sessionkit-race-" });
    const db = new DatabaseSync(`${dir}/race.sqlite`);
    try {
      await runAll(t, "SQLite", new SqliteStorage<Data>(db, { table: "race" }));
    } finally {
      db.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

whenMysqlReachable("race on MySQL", () => {
  Deno.test({
    name: `race on MySQL (${MYSQL_URL.replace(/\/\/[^@]*@/, "//…@")})`,
    ...loose,
    async fn(t) {
      const storage = MysqlStorage.connect<Data>(MYSQL_URL, { table: `${MYSQL_RUN}_race` });
      const db = mysqlAdmin();
      try {
        await runAll(t, "MySQL", storage);
      } finally {
        await storage.close();
        await dropMysqlTables(db, storage);
        await db.end();
      }
    },
  });
});

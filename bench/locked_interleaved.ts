/**
 * Issue #18, measured so that a loaded machine hurts every row alike: one
 * locked update of a session against one unlocked update, on Redis
 * (REDIS_URL) and PostgreSQL (DATABASE_URL), at the storage's public
 * methods, the rows interleaved iteration by iteration (each round runs
 * every row once, in a rotating order), so that load that comes and goes
 * lands on every row. `deno bench` runs its rows one after another, which on
 * a shared machine lets a busy minute fall on one row only.
 *
 * Rows, each a read and a write of one of 100 keys:
 * - unlocked (baseline): `readVersioned` + `writeIfVersion`, what an update
 *   with conflict detection does;
 * - locked, joined: `acquireLeaseAndRead` + `saveAndReleaseLease`, what a
 *   locked update does now;
 * - locked, separate: `acquireLease` + `readVersioned` + `writeIfVersion` +
 *   `releaseLease`, what it did before (and still does on a subclass that
 *   overrides those methods).
 *
 * Run: `deno run -A bench/locked_interleaved.ts [rounds]` (default 1500).
 * Prints p50 / p75 per row and their ratios to the baseline.
 */

import { createClient } from "npm:redis@^5";
import pg from "npm:pg@^8";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";

type Data = { count: number; text: string };
const ROUNDS = Number(Deno.args[0] ?? 1500);
const KEYS = 100;
const RUN = `sklock_${Date.now().toString(36)}`;

interface Locked {
  readVersioned(k: string): Promise<{ value: Data | undefined; version: string | null }>;
  writeIfVersion(k: string, v: Data, e: string | null): Promise<string | null>;
  acquireLease(k: string, o: string, ttl: number): Promise<boolean>;
  releaseLease(k: string, o: string): Promise<void>;
  acquireLeaseAndRead(
    k: string,
    o: string,
    ttl: number,
  ): Promise<{ value: Data | undefined; version: string | null } | null>;
  saveAndReleaseLease(k: string, v: Data, e: string | null, o: string): Promise<unknown>;
}

const next = (value: Data | undefined): Data => ({
  count: (value?.count ?? 0) + 1,
  text: "x".repeat(64),
});

/** The rows; each storage has its own keys (`k` is a key index). */
function rows(storages: Locked[]): [string, (k: number) => Promise<void>][] {
  const [a, b, c] = storages;
  return [
    ["unlocked: readVersioned + writeIfVersion (baseline)", async (k) => {
      const read = await a.readVersioned(String(k));
      await a.writeIfVersion(String(k), next(read.value), read.version);
    }],
    ["locked, joined: acquireLeaseAndRead + saveAndReleaseLease", async (k) => {
      const read = await b.acquireLeaseAndRead(String(k), "bench", 5000);
      if (read === null) throw new Error("lease held");
      await b.saveAndReleaseLease(String(k), next(read.value), read.version, "bench");
    }],
    ["locked, separate: acquireLease + read + write + releaseLease", async (k) => {
      if (!(await c.acquireLease(String(k), "bench", 5000))) throw new Error("lease held");
      const read = await c.readVersioned(String(k));
      await c.writeIfVersion(String(k), next(read.value), read.version);
      await c.releaseLease(String(k), "bench");
    }],
  ];
}

async function measure(label: string, storages: Locked[]): Promise<void> {
  const list = rows(storages);
  const times = list.map(() => [] as number[]);
  for (let k = 0; k < KEYS; k++) for (const [, run] of list) await run(k); // warm-up, creates rows
  for (let round = 0; round < ROUNDS; round++) {
    const k = round % KEYS;
    for (let j = 0; j < list.length; j++) {
      const i = (round + j) % list.length;
      const started = performance.now();
      await list[i][1](k);
      times[i].push(performance.now() - started);
    }
  }
  const quantile = (xs: number[], q: number) =>
    [...xs].sort((x, y) => x - y)[Math.floor(q * xs.length)];
  const base = [quantile(times[0], 0.5), quantile(times[0], 0.75)];
  console.log(`\n### ${label} (${ROUNDS} rounds, p50 / p75)\n`);
  console.log("| row | p50 / p75 | ratio to baseline |");
  console.log("| --- | ---: | ---: |");
  list.forEach(([name], i) => {
    const p50 = quantile(times[i], 0.5);
    const p75 = quantile(times[i], 0.75);
    const us = (ms: number) => `${Math.round(ms * 1000)} µs`;
    console.log(
      `| ${name} | ${us(p50)} / ${us(p75)} | ${(p50 / base[0]).toFixed(2)}x / ${
        (p75 / base[1]).toFixed(2)
      }x |`,
    );
  });
}

const redis = createClient({ url: Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379" });
redis.on("error", () => {});
await redis.connect();
try {
  await measure(
    "Redis",
    [0, 1, 2].map((i) => new RedisStorage<Data>(redis, { prefix: `${RUN}:${i}:` })) as never,
  );
} finally {
  for await (const keys of redis.scanIterator({ MATCH: `${RUN}:*`, COUNT: 1000 })) {
    if (keys.length > 0) await redis.del(keys);
  }
  for await (const keys of redis.scanIterator({ MATCH: `sessionkit-lease:${RUN}:*` })) {
    if (keys.length > 0) await redis.del(keys);
  }
  await redis.close();
}

const url = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const pool = new pg.Pool({ connectionString: url, max: 3 });
pool.on("error", () => {});
const tables = [0, 1, 2].map((i) => `${RUN}_${i}`);
try {
  await measure(
    "PostgreSQL",
    tables.map((table) => new PostgresStorage<Data>(pool, { table })) as never,
  );
} finally {
  for (const t of tables) {
    await pool.query(`DROP TABLE IF EXISTS "${t}", "${t}_leases"`);
    await pool.query(`DROP FUNCTION IF EXISTS "${t}_lease_read"(text, text, float8)`);
    await pool.query(`DROP FUNCTION IF EXISTS "${t}_save_release"`);
  }
  await pool.end();
}

/**
 * What a storage's `timeout` costs (issue #18, detection's time): a read
 * plus a conditional write on `RedisStorage` (Redis at REDIS_URL), one after
 * another, with
 *
 * - `timeout: Infinity` (no bound; the baseline),
 * - the default bound, whose calls share one timer (storages/shared/deadlines.ts),
 * - no bound in the storage but a timer of its own raced by each call, armed
 *   and cleared per call, as the bound was built before (the row it replaced).
 *
 * `deno run -A bench/timeout_cost.ts [--rounds 600]`. The rows run round by
 * round (`BATCH` read + write pairs each), in an order rotated every round,
 * so that the machine's load hits them alike; the report gives each row's
 * p50 wall time and mean client CPU time (this process) per read + write,
 * with ratios to the baseline of the same run. Keys start with a unique
 * prefix and are deleted at the end.
 *
 * @module
 */

import { createClient } from "npm:redis@^5";
import { RedisStorage } from "../storages/redis.ts";
import { backgroundTimeout } from "../src/timers.ts";
import process from "node:process";
import { loudSkip, RUN } from "./_bot.ts";

const URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const BATCH = 10;
const KEYS = 100;
interface Data {
  count: number;
}

/** `storage`'s reads and writes, each racing a timer of its own of `ms`. */
function timerPerCall(storage: RedisStorage<Data>, ms: number): RedisStorage<Data> {
  const race = <R>(result: Promise<R>): Promise<R> =>
    new Promise<R>((resolve, reject) => {
      const timer = backgroundTimeout(() => reject(new Error("timed out")), ms);
      result.then((value) => {
        clearTimeout(timer);
        resolve(value);
      }, (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  const readVersioned = storage.readVersioned.bind(storage);
  const writeIfVersion = storage.writeIfVersion.bind(storage);
  storage.readVersioned = (key) => race(Promise.resolve(readVersioned(key)));
  storage.writeIfVersion = (key, value, version) =>
    race(Promise.resolve(writeIfVersion(key, value, version)));
  return storage;
}

const client = createClient({
  url: URL,
  socket: { connectTimeout: 2000, reconnectStrategy: false },
});
client.on("error", () => {});
let problem: string | undefined;
try {
  await client.connect();
} catch (err) {
  problem = err instanceof Error ? err.message : String(err);
}

const at = Deno.args.indexOf("--rounds");
const ROUNDS = at >= 0 ? Number(Deno.args[at + 1]) : 600;

if (problem !== undefined) {
  loudSkip("Redis", URL, problem);
} else {
  const prefix = `${RUN}:timeout:`;
  const rows: { name: string; storage: RedisStorage<Data>; wall: number[]; cpu: number[] }[] = [
    [
      "no bound (timeout: Infinity), baseline",
      new RedisStorage<Data>(client, { prefix, timeout: Infinity }),
    ],
    ["default bound, one timer for all calls", new RedisStorage<Data>(client, { prefix })],
    [
      "a timer armed and cleared per call (before)",
      timerPerCall(new RedisStorage<Data>(client, { prefix, timeout: Infinity }), 10_000),
    ],
  ].map(([name, storage]) => ({
    name: name as string,
    storage: storage as RedisStorage<Data>,
    wall: [],
    cpu: [],
  }));
  let i = 0;
  const batch = async (storage: RedisStorage<Data>) => {
    for (let n = 0; n < BATCH; n++) {
      const key = String(i++ % KEYS);
      const read = await storage.readVersioned(key);
      await storage.writeIfVersion(
        key,
        { count: (read?.value?.count ?? 0) + 1 },
        read?.version ?? null,
      );
    }
  };
  for (const row of rows) for (let w = 0; w < 20; w++) await batch(row.storage); // warm up
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < rows.length; k++) {
      const row = rows[(round + k) % rows.length];
      const cpu = process.cpuUsage();
      const started = performance.now();
      await batch(row.storage);
      row.wall.push(((performance.now() - started) * 1000) / BATCH);
      const used = process.cpuUsage(cpu);
      row.cpu.push((used.user + used.system) / BATCH);
    }
  }
  const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = rows[0];
  console.log(
    `# timeout_cost: ${ROUNDS} rounds x ${BATCH} read + write pairs per row, µs per pair`,
  );
  console.log("| row | wall p50 µs | ratio | client CPU µs (mean) | ratio |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const row of rows) {
    console.log(
      `| ${row.name} | ${p50(row.wall).toFixed(0)} | ${
        (p50(row.wall) / p50(base.wall)).toFixed(2)
      }x | ` +
        `${mean(row.cpu).toFixed(0)} | ${(mean(row.cpu) / mean(base.cpu)).toFixed(2)}x |`,
    );
  }
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
    if (keys.length > 0) await client.del(keys);
  }
}
client.destroy();

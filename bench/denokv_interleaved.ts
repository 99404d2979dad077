/**
 * Deno KV, the storage against the raw driver, **interleaved**: each round
 * runs every row once, in alternating order, on one file-backed database,
 * so the disk's `fsync` time and the SQLite WAL's checkpoints (which swing
 * by more than 30% between the consecutive rows of `deno bench`) hit every
 * row alike. Reports each row's p50 and p75 and its ratio to the raw row.
 *
 * Run: `deno run -A bench/denokv_interleaved.ts [rounds]` (default 2,000).
 */

import { DenoKvStorage } from "../storages/denokv.ts";

interface Blob {
  count: number;
  pad: string;
}

const ROUNDS = Number(Deno.args[0] ?? 2000);
const KEYS = 100;
// "64 KiB" is just under KV's 65,536-byte value limit, so the raw row can store it.
const SIZES: [label: string, bytes: number][] = [["1 KiB", 1024], ["64 KiB", 63 * 1024]];

const dir = await Deno.makeTempDir({ prefix: "sessionkit-bench-kvi-" });
const kv = await Deno.openKv(`${dir}/bench.sqlite3`);
try {
  for (const [label, bytes] of SIZES) {
    const empty = JSON.stringify({ count: 0, pad: "" }).length;
    const value: Blob = { count: 0, pad: "x".repeat(bytes - empty - 4) };
    const storage = new DenoKvStorage<Blob>(kv, { prefix: ["sk", label] });
    for (let k = 0; k < KEYS; k++) {
      await kv.set(["raw", label, k], JSON.stringify(value));
      await storage.write(String(k), value);
    }
    const rows: [string, (k: number) => Promise<void>][] = [
      ["raw kv.get + kv.set of the JSON text (limit)", async (k) => {
        const entry = await kv.get<string>(["raw", label, k]);
        const data: Blob = JSON.parse(entry.value!);
        data.count++;
        await kv.set(["raw", label, k], JSON.stringify(data));
      }],
      ["DenoKvStorage read + write", async (k) => {
        const data = (await storage.read(String(k)))!;
        data.count++;
        await storage.write(String(k), data);
      }],
      ["DenoKvStorage readVersioned + writeIfVersion", async (k) => {
        const { value: data, version } = await storage.readVersioned(String(k));
        data!.count++;
        if (await storage.writeIfVersion(String(k), data!, version) === null) {
          throw new Error("unexpected conflict in a single-process benchmark");
        }
      }],
    ];
    const times = rows.map(() => [] as number[]);
    for (let round = 0; round < ROUNDS + 100; round++) {
      const order = round % 2 === 0 ? [0, 1, 2] : [2, 1, 0];
      for (const r of order) {
        const started = performance.now();
        await rows[r][1](round % KEYS);
        if (round >= 100) times[r].push(performance.now() - started); // 100 rounds of warm-up
      }
    }
    const at = (t: number[], q: number) => [...t].sort((a, b) => a - b)[Math.floor(t.length * q)];
    console.log(`\n### Deno KV, ${label} session, interleaved (${ROUNDS} rounds)\n`);
    console.log(
      "| row | p50 | p75 | ratio, p50 | ratio, p75 |\n| --- | ---: | ---: | ---: | ---: |",
    );
    for (const [r, [name]] of rows.entries()) {
      const us = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
      console.log(
        `| ${name} | ${us(at(times[r], 0.5))} | ${us(at(times[r], 0.75))} | ` +
          `${(at(times[r], 0.5) / at(times[0], 0.5)).toFixed(2)}x | ` +
          `${(at(times[r], 0.75) / at(times[0], 0.75)).toFixed(2)}x |`,
      );
    }
  }
} finally {
  kv.close();
  await Deno.remove(dir, { recursive: true });
}

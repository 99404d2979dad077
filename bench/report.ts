/**
 * Runs the `deno bench` files several times and prints, per group, each
 * row's time and its ratio to the group's baseline, measured in the same
 * run. On a shared machine one run's means swing with other jobs, so the
 * report uses the p75 of each row (what `deno bench` prints next to the
 * mean) and the median of the ratios over the runs; the ratios of the means
 * and of the fastest iterations (min, the least disturbed) are shown too.
 * Every other run sets `BENCH_REVERSE=1`, so the middleware rows run in
 * both orders: pass an even `--runs` to weigh both alike.
 *
 * Run: `deno task bench:report` (3 runs), or
 * `deno run -A bench/report.ts --runs 5 bench/redis_bench.ts`.
 */

interface Stats {
  avg: number;
  p75: number;
  min: number;
}

interface Bench {
  group: string | null;
  name: string;
  baseline: boolean;
  results: { ok?: Stats }[];
}

interface Output {
  runtime: string;
  cpu: string;
  benches: Bench[];
}

const args = [...Deno.args];
let runs = 3;
const at = args.indexOf("--runs");
if (at >= 0) runs = Number(args.splice(at, 2)[1]);
const files = args.length > 0 ? args : [
  "bench/middleware_bench.ts",
  "bench/redis_bench.ts",
  "bench/postgres_bench.ts",
  "bench/sqlite_bench.ts",
  "bench/mysql_bench.ts",
  "bench/denokv_bench.ts",
];

/**
 * One `deno bench --json` run of `file`. Odd runs set `BENCH_REVERSE=1`,
 * which a bench file may read to run its rows in reverse order (the
 * middleware rows do: a row's place in its group moves its figures).
 */
async function runOnce(file: string, run: number): Promise<Output> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bench", "-A", "--no-check=remote", "--json", file],
    env: { BENCH_REVERSE: run % 2 === 1 ? "1" : "0" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`deno bench ${file} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function time(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(1)} µs`;
  return `${ns.toFixed(0)} ns`;
}

/** Per group, per row: the stats of every run. */
const rows = new Map<string, Map<string, { baseline: boolean; runs: Stats[] }>>();
const baselines = new Map<string, Stats[]>();
let machine = "";

for (const file of files) {
  for (let run = 0; run < runs; run++) {
    console.error(`[report] ${file}, run ${run + 1} of ${runs}`);
    const output = await runOnce(file, run);
    machine = `${output.cpu} | ${output.runtime}`;
    for (const bench of output.benches) {
      const stats = bench.results[0]?.ok;
      if (stats === undefined || bench.group === null || bench.group === "cleanup") continue;
      const group = rows.get(bench.group) ?? new Map();
      rows.set(bench.group, group);
      const row = group.get(bench.name) ?? { baseline: bench.baseline, runs: [] };
      group.set(bench.name, row);
      row.runs.push(stats);
      if (bench.baseline) {
        const list = baselines.get(bench.group) ?? [];
        list.push(stats);
        baselines.set(bench.group, list);
      }
    }
  }
}

console.log(`Machine: ${machine}; ${runs} runs per file; ratios are medians over the runs.\n`);
for (const [group, groupRows] of rows) {
  const base = baselines.get(group);
  console.log(`### ${group}\n`);
  console.log("| row | p75 (median of runs) | ratio, p75 | ratio, mean | ratio, min |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const [name, row] of groupRows) {
    const p75 = median(row.runs.map((s) => s.p75));
    if (base === undefined) {
      console.log(`| ${name} | ${time(p75)} | | | |`);
      continue;
    }
    const ratio = (pick: (s: Stats) => number) =>
      median(row.runs.map((s, i) => pick(s) / pick(base[i] ?? base[0])));
    console.log(
      `| ${name}${row.baseline ? " (baseline)" : ""} | ${time(p75)} | ${
        ratio((s) => s.p75).toFixed(2)
      }x | ${ratio((s) => s.avg).toFixed(2)}x | ${ratio((s) => s.min).toFixed(2)}x |`,
    );
  }
  console.log("");
}

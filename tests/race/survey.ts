/**
 * Survey: runs every configuration with several seeds and prints, for each
 * failure, its seed, path and the violations of the shrunk counterexample
 * (one line each), then a table of which property failed where. For
 * finding out what the suite finds on a given core, not a test.
 *
 *   deno run -A tests/race/survey.ts [seeds=5] [runs per seed=configured] [config filter]
 *
 * @module
 */
import fc from "npm:fast-check@^4";
import { CONFIGS, FOCUSED, SURVEY_ONLY } from "./configs.ts";
import { RaceFailure, raceProperty } from "./property.ts";

const seeds = Number(Deno.args[0] ?? 5);
const runsArg = Deno.args[1] ? Number(Deno.args[1]) : undefined;
const filter = Deno.args[2] ?? "";
const base = Number(Deno.env.get("RACE_SEED") ?? 1);
const table = new Map<string, Set<string>>();

for (const config of [...CONFIGS, ...FOCUSED, ...SURVEY_ONLY]) {
  if (!config.name.includes(filter)) continue;
  const started = performance.now();
  let failures = 0;
  let runs = 0;
  for (let i = 0; i < seeds; i++) {
    const seed = base + i;
    const details = await fc.check(raceProperty(config.backend, config.shape), {
      numRuns: runsArg ?? config.runs,
      seed,
    });
    runs += details.numRuns;
    if (!details.failed) continue;
    failures++;
    const err = details.errorInstance;
    console.log(`\n## ${config.name}: seed ${seed}, path "${details.counterexamplePath}"`);
    if (err instanceof RaceFailure) {
      for (const v of err.violations) {
        console.log(`- [${v.property}; ${v.rules}] ${v.message}`);
        const set = table.get(v.property) ?? new Set();
        set.add(`${config.name} (seed ${seed})`);
        table.set(v.property, set);
      }
      console.log(`  program: ${JSON.stringify(err.trace.program)}`);
    } else {
      console.log(String(err).slice(0, 2000));
    }
  }
  const ms = Math.round(performance.now() - started);
  console.log(`\n# ${config.name}: ${failures}/${seeds} seeds failed, ${runs} runs, ${ms} ms`);
}
console.log("\n# failing properties");
for (const [property, where] of [...table].sort()) {
  console.log(`- ${property}: ${[...where].join("; ")}`);
}

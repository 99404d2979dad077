/**
 * The randomized race suite (issue #15): generated programs of 1-3 bot
 * instances over one shared storage, run under `fc.scheduler()` on the
 * memory storage and on the scheduled storage (an in-process model of a
 * remote storage whose every reply the scheduler orders, with faults), each
 * run checked against the reference model of docs/semantics.md. See
 * tests/race/model.ts for the properties and the rules each one checks, and
 * tests/race/README.md for what the suite found.
 *
 * A failure prints fast-check's seed and path, the shrunk program and the
 * scheduler's order of tasks, and the violated rules with what each update
 * did. Reproduce with RACE_SEED=<seed> RACE_PATH=<path> deno test -A tests/race_test.ts
 * (RACE_RUNS multiplies the number of runs; `deno task test:race` runs more,
 * plus the real storages).
 */
import fc from "npm:fast-check@^4";
import { CONFIGS, FOCUSED } from "./race/configs.ts";
import { raceProperty, regressionProperty } from "./race/property.ts";
import { REGRESSIONS } from "./race/regressions.ts";

const FULL = Deno.env.get("RACE_FULL") === "1";
const SCALE = Number(Deno.env.get("RACE_RUNS") ?? (FULL ? 10 : 1));
const SEED = Deno.env.get("RACE_SEED");
const PATH = Deno.env.get("RACE_PATH");

function parameters(runs: number): fc.Parameters<unknown> {
  return {
    numRuns: Math.max(1, Math.round(runs * SCALE)),
    ...(SEED === undefined ? {} : { seed: Number(SEED) }),
    ...(PATH === undefined ? {} : { path: PATH }),
  };
}

// Lease renewal timers and storage replies may outlive a failing run.
const loose = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "race: generated programs keep docs/semantics.md",
  ...loose,
  async fn(t) {
    for (const config of [...CONFIGS, ...FOCUSED]) {
      await t.step(config.name, async () => {
        await fc.assert(raceProperty(config.backend, config.shape), parameters(config.runs));
      });
    }
  },
});

Deno.test({
  name: "race: counterexamples found on the core before #15 stay fixed",
  ...loose,
  async fn(t) {
    for (const r of REGRESSIONS) {
      await t.step(`${r.name} (old core: ${r.found})`, async () => {
        await fc.assert(regressionProperty(r.backend, r.program), parameters(100));
      });
    }
  },
});

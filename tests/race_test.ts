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

/**
 * `fc.assert`, with what a failure needs at the end of its message (where a
 * CI log that keeps only the tail still shows it): the violated rules, the
 * seed and path to replay, and whether replaying the counterexample fails
 * again (a failure that does not come back points at a leftover of an
 * earlier run or at timing, not at the program).
 */
async function assertRace<T>(
  property: () => fc.IAsyncPropertyWithHooks<T>,
  params: fc.Parameters<T>,
): Promise<void> {
  try {
    await fc.assert(property(), params);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const seed = message.match(/seed: (-?\d+)/)?.[1];
    const path = message.match(/path: "([^"]*)"/)?.[1];
    let replay = "not replayed (no seed and path in the report)";
    if (seed !== undefined && path !== undefined) {
      try {
        await fc.assert(property(), { seed: Number(seed), path, numRuns: 1 });
        replay = "replaying the counterexample PASSED: the failure did not come back";
      } catch {
        replay = "replaying the counterexample fails again";
      }
    }
    const cause = err instanceof Error ? err.cause : undefined;
    const found = cause instanceof Error ? cause.message : String(cause);
    const violations = found.split("\n").filter((line) => line.startsWith("- ["));
    // The report, then the summary: no `cause`, which Deno would print last.
    throw new Error(
      `${message}\n\n${found}\n\nrace failure summary:\n` +
        `${violations.length > 0 ? violations.join("\n") : found.split("\n")[0]}\n` +
        `RACE_SEED=${seed} RACE_PATH=${path}; ${replay}`,
    );
  }
}

Deno.test({
  name: "race: generated programs keep docs/semantics.md",
  ...loose,
  async fn(t) {
    for (const config of [...CONFIGS, ...FOCUSED]) {
      await t.step(config.name, async () => {
        await assertRace(() => raceProperty(config.backend, config.shape), parameters(config.runs));
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
        await assertRace(() => regressionProperty(r.backend, r.program), parameters(100));
      });
    }
  },
});

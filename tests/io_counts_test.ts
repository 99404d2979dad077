/**
 * Group 2 of the benchmarks, asserted: storage I/O per update of sessionkit
 * and of grammY's built-in session on the same counting storage
 * (`bench/io_counts.ts`). The counts are exact, so they are a test, not a
 * benchmark: a change that adds a read or a write fails here.
 */

import assert from "node:assert/strict";
import { countAll, type Row } from "../bench/io_counts.ts";

/** sessionkit's expected reads and writes per update, by scenario and mode. */
const EXPECTED: Record<string, { strict: [number, number]; lazy: [number, number] }> = {
  "existing chat, handler ignores the session": { strict: [1, 0], lazy: [0, 0] },
  "existing chat, handler reads the session": { strict: [1, 0], lazy: [1, 0] },
  "existing chat, handler changes the session": { strict: [1, 1], lazy: [1, 1] },
  "new chat, handler ignores the session": { strict: [1, 0], lazy: [0, 0] },
  "new chat, handler reads but never changes its initial value": {
    strict: [1, 0],
    lazy: [1, 0],
  },
  "3-fragment multi session: reads one, changes one, ignores one": {
    strict: [3, 1],
    lazy: [2, 1],
  },
};

Deno.test("storage I/O per update: sessionkit does the fewest reads and writes", async (t) => {
  const rows = await countAll();
  const find = (scenario: string, library: Row["library"], mode: Row["mode"]) =>
    rows.find((r) => r.scenario === scenario && r.library === library && r.mode === mode);

  for (const [scenario, modes] of Object.entries(EXPECTED)) {
    await t.step(scenario, () => {
      for (const mode of ["strict", "lazy"] as const) {
        const mine = find(scenario, "sessionkit", mode);
        assert.ok(mine, `no sessionkit ${mode} row for "${scenario}"`);
        assert.deepEqual(
          [mine.reads, mine.writes, mine.deletes],
          [...modes[mode], 0],
          `sessionkit ${mode}: [reads, writes, deletes] per update`,
        );
        const theirs = find(scenario, "grammY", mode);
        if (theirs === undefined) continue; // grammY has no lazy multi session
        assert.ok(mine.reads <= theirs.reads, `${mode}: more reads than grammY`);
        assert.ok(mine.writes <= theirs.writes, `${mode}: more writes than grammY`);
      }
    });
  }

  await t.step("the comparison is real: grammY writes sessions it only read", () => {
    const read = "existing chat, handler reads the session";
    assert.equal(find(read, "grammY", "strict")?.writes, 1);
    assert.equal(find(read, "grammY", "lazy")?.writes, 1);
    const untouched = "new chat, handler reads but never changes its initial value";
    assert.equal(find(untouched, "grammY", "strict")?.writes, 1);
  });
});

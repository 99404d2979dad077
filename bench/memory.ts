/**
 * Group 6: memory of `MemorySessionStorage`.
 *
 * 1. Bytes per stored session: the heap after forcing a full GC, before and
 *    after writing 100k small sessions (grammY's `MemorySessionStorage`,
 *    which keeps live objects, is measured the same way for comparison).
 * 2. `maxEntries` keeps memory flat: a storage bounded to 100k sessions sees
 *    1M distinct chats; the heap is reported at 100k, 500k and 1M.
 *
 * Run: `deno run --v8-flags=--expose-gc bench/memory.ts` (without the flag
 * the numbers include garbage and the script says so).
 */

import { MemorySessionStorage as GrammyMemory } from "npm:grammy@^1.46";
import { MemorySessionStorage } from "../mod.ts";
import { type Data, initial } from "./_bot.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error("No --v8-flags=--expose-gc: heap figures include uncollected garbage.");
}

function heap(): number {
  if (gc !== undefined) { for (let i = 0; i < 3; i++) gc(); }
  return Deno.memoryUsage().heapUsed;
}

const MiB = 1024 * 1024;
const SMALL = 100_000;
const FIRST_CHAT = 1_000_000_000; // realistic 10-digit chat ids as keys

function session(i: number): Data {
  return { ...initial(), count: i % 1000 };
}

function perSession(make: () => { write(key: string, value: Data): unknown }): number {
  const before = heap();
  const storage = make();
  for (let i = 0; i < SMALL; i++) storage.write(String(FIRST_CHAT + i), session(i));
  const after = heap();
  // Keep the storage alive until after the measurement.
  if ((storage as { size?: number }).size === -1) console.log("unreachable");
  return (after - before) / SMALL;
}

const text = JSON.stringify(session(1));
console.log(`| storage | bytes per stored session (${SMALL / 1000}k sessions) |`);
console.log("| --- | ---: |");
console.log(
  `| sessionkit MemorySessionStorage (validated copies; ${text.length} chars as JSON) | ${
    perSession(() => new MemorySessionStorage<Data>()).toFixed(0)
  } |`,
);
console.log(
  `| grammY MemorySessionStorage (live objects) | ${
    perSession(() => new GrammyMemory<Data>()).toFixed(0)
  } |`,
);

console.log(
  "\n| distinct chats seen | sessions held | heap used (MiB) | µs per write since last line |",
);
console.log("| ---: | ---: | ---: | ---: |");
const base = heap();
const bounded = new MemorySessionStorage<Data>({ maxEntries: SMALL });
const marks = new Set([100_000, 500_000, 1_000_000]);
let since = performance.now();
let last = 0;
for (let i = 1; i <= 1_000_000; i++) {
  bounded.write(String(FIRST_CHAT + i), session(i));
  if (marks.has(i)) {
    const perWrite = ((performance.now() - since) * 1000 / (i - last)).toFixed(1);
    console.log(
      `| ${i.toLocaleString("en")} | ${bounded.size.toLocaleString("en")} | ${
        ((heap() - base) / MiB).toFixed(1)
      } | ${perWrite} |`,
    );
    last = i;
    since = performance.now();
  }
}
console.log(`\n(heap used above the empty storage, after a forced GC; ${Deno.version.deno})`);

/**
 * Group 1: middleware overhead with in-memory storage, through a real
 * `Bot.handleUpdate`. One group per workload; the baseline of each is the
 * same bot without any session middleware (the limit). A middleware that
 * only awaits `next()` shows what one more layer costs by itself. Each iteration
 * handles 10 updates from 10 of 100 chats whose sessions already exist.
 *
 * grammY rows use grammY's own `MemorySessionStorage` (keeps live objects),
 * sessionkit rows use sessionkit's (keeps validated copies, conflict detection on
 * by default, as a user gets them).
 */

import {
  type Context,
  lazySession as grammyLazySession,
  MemorySessionStorage as GrammyMemory,
  session as grammySession,
} from "npm:grammy@^1.46";
import { lazySession, MemorySessionStorage, session } from "../mod.ts";
import {
  CHATS,
  type Data,
  driver,
  initial,
  lazyHandler,
  makeBot,
  messages,
  plainHandler,
  strictHandler,
  type Workload,
} from "./_bot.ts";

const BATCH = 10;

/**
 * A subclass whose override does what the class does, so only the way in
 * differs: every call goes through the public methods.
 */
class MemorySubclass<S> extends MemorySessionStorage<S> {
  override readVersioned(key: string) {
    return super.readVersioned(key);
  }
}
const updates = messages(CHATS);

function seeded<T extends { write(key: string, value: Data): unknown }>(storage: T): T {
  for (let chat = 1; chat <= CHATS; chat++) storage.write(String(chat), initial());
  return storage;
}

const workloads: Workload[] = ["ignores", "reads", "changes"];

/**
 * With `BENCH_REVERSE=1`, the rows of each group run in reverse order (the
 * baseline still first): rows that run late in a group pay for what the
 * earlier ones left behind (docs/benchmarks.md, "Session 16"), so
 * `bench/report.ts` runs the file both ways.
 */
const REVERSED = Deno.env.get("BENCH_REVERSE") === "1";

/**
 * Iterations per row. Each is 10 updates of about 1–3 µs, so 10,000 make a
 * row last well over 100 ms and average over many garbage collections.
 */
const ITERATIONS = 10_000;

/**
 * Updates every bot handles before anything is measured. `deno bench` runs
 * the rows one after another, so without this the first rows would also pay
 * for V8 compiling grammY's code (which every row shares) and look slower.
 */
const WARMUP_UPDATES = 20_000;
const warm: (() => Promise<void>)[] = [];

for (const workload of workloads) {
  const group = `middleware, handler ${workload} the session`;
  const opts = { group, n: ITERATIONS, warmup: 500 } as const;
  const rows = {
    "no session (limit)": makeBot(undefined, plainHandler(workload)),
    // What any middleware costs: grammY runs one more layer and awaits it.
    "async pass-through middleware, no session": makeBot(async (_ctx, next) => {
      await next();
    }, plainHandler(workload)),
    "sessionkit session": makeBot(
      session<Data>({ initial, storage: seeded(new MemorySessionStorage<Data>()) }),
      strictHandler(workload),
    ),
    "sessionkit lazySession": makeBot(
      lazySession<Data>({ initial, storage: seeded(new MemorySessionStorage<Data>()) }),
      lazyHandler(workload),
    ),
    "sessionkit session, detection off": makeBot(
      session<Data>({
        initial,
        storage: seeded(new MemorySessionStorage<Data>()),
        onConflict: "overwrite",
      }),
      strictHandler(workload),
    ),
    // A subclass goes through the public methods (no direct access): what
    // src/memory_access.ts buys is the difference to "sessionkit session".
    "sessionkit session on a MemorySessionStorage subclass": makeBot(
      session<Data>({ initial, storage: seeded(new MemorySubclass<Data>()) }),
      strictHandler(workload),
    ),
    "sessionkit session on grammY's storage": makeBot(
      session<Data>({ initial, storage: seeded(new GrammyMemory<Data>()) }),
      strictHandler(workload),
    ),
    "grammY session": makeBot(
      grammySession<Data, Context>({ initial, storage: seeded(new GrammyMemory<Data>()) }),
      strictHandler(workload),
    ),
    "grammY lazySession": makeBot(
      grammyLazySession<Data, Context>({ initial, storage: seeded(new GrammyMemory<Data>()) }),
      lazyHandler(workload),
    ),
  };
  const [baseline, ...others] = Object.entries(rows);
  for (const [name, bot] of [baseline, ...(REVERSED ? others.reverse() : others)]) {
    // deno-lint-ignore no-explicit-any
    const run = driver(bot as any, updates, BATCH);
    warm.push(run);
    Deno.bench({ ...opts, name, baseline: name.startsWith("no session"), fn: run });
  }
}

// Conflict detection in one process, in memory: off (overwrite) vs on (the
// default), every update changes its session.
for (
  const [name, onConflict] of [["detection off (overwrite)", "overwrite"], [
    "detection on (default)",
    undefined,
  ]] as const
) {
  const bot = makeBot(
    session<Data>({ initial, onConflict, storage: seeded(new MemorySessionStorage<Data>()) }),
    strictHandler("changes"),
  );
  // deno-lint-ignore no-explicit-any
  const run = driver(bot as any, updates, BATCH);
  warm.push(run);
  Deno.bench({
    group: "memory, conflict detection cost (every update writes)",
    name,
    baseline: onConflict === "overwrite",
    n: ITERATIONS,
    warmup: 500,
    fn: run,
  });
}

for (const run of warm) {
  for (let i = 0; i < WARMUP_UPDATES / BATCH; i++) await run();
}

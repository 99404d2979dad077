/**
 * Group 2: storage I/O per update, counted (not timed). sessionkit and
 * grammY's built-in session run on the same counting storage (the test
 * helper `CountingStorage` over a memory storage; it has no conditional
 * writes, so both sides use plain read/write/delete). Prints a markdown
 * table of reads and writes per update.
 *
 * Run: `deno run -A bench/io_counts.ts`
 */

import {
  type Context,
  lazySession as grammyLazySession,
  type MiddlewareFn,
  session as grammySession,
} from "npm:grammy@^1.46";
import { lazySession, MemorySessionStorage, session } from "../mod.ts";
import { CountingStorage } from "../tests/helpers/counting.ts";
import {
  type Data,
  initial,
  lazyHandler,
  makeBot,
  messages,
  strictHandler,
  type Workload,
} from "./_bot.ts";

/** Updates per scenario; the counts are reported per update. */
const UPDATES = 100;

type Library = "sessionkit" | "grammY";
type Mode = "strict" | "lazy";

/** One scenario's counts per update. */
export interface Row {
  scenario: string;
  library: Library;
  mode: Mode;
  reads: number;
  writes: number;
  deletes: number;
}

function single(library: Library, mode: Mode, storage: CountingStorage<Data>) {
  const options = { initial, storage };
  if (library === "sessionkit") {
    return mode === "strict" ? session<Data>(options) : lazySession<Data>(options);
  }
  return mode === "strict"
    ? grammySession<Data, Context>(options)
    : grammyLazySession<Data, Context>(options);
}

async function measure(
  // deno-lint-ignore no-explicit-any
  middleware: MiddlewareFn<any>,
  // deno-lint-ignore no-explicit-any
  handler: MiddlewareFn<any>,
  storages: CountingStorage<Data>[],
  seed: boolean,
): Promise<{ reads: number; writes: number; deletes: number }> {
  const updates = messages(UPDATES);
  if (seed) {
    for (const s of storages) {
      for (let chat = 1; chat <= UPDATES; chat++) await s.inner.write(String(chat), initial());
    }
  }
  const bot = makeBot(middleware, handler);
  for (const s of storages) s.reset();
  for (const update of updates) await bot.handleUpdate(update);
  const sum = (op: "read" | "write" | "delete") =>
    storages.reduce((n, s) => n + s.counts[op], 0) / UPDATES;
  return { reads: sum("read"), writes: sum("write"), deletes: sum("delete") };
}

function counting<T>(): CountingStorage<T> {
  return new CountingStorage<T>(new MemorySessionStorage<T>());
}

/** Counts every scenario for both libraries, strict and lazy. */
export async function countAll(): Promise<Row[]> {
  const rows: Row[] = [];
  const scenarios: [string, Workload, boolean][] = [
    ["existing chat, handler ignores the session", "ignores", true],
    ["existing chat, handler reads the session", "reads", true],
    ["existing chat, handler changes the session", "changes", true],
    ["new chat, handler ignores the session", "ignores", false],
    ["new chat, handler reads but never changes its initial value", "reads", false],
  ];
  for (const [scenario, workload, seed] of scenarios) {
    for (const library of ["sessionkit", "grammY"] as const) {
      for (const mode of ["strict", "lazy"] as const) {
        const storage = counting<Data>();
        const handler = mode === "strict" ? strictHandler(workload) : lazyHandler(workload);
        const counts = await measure(single(library, mode, storage), handler, [storage], seed);
        rows.push({ scenario, library, mode, ...counts });
      }
    }
  }
  // A 3-fragment multi session (grammY has no lazy multi sessions); the
  // handler reads fragment `a` and changes fragment `b`, `c` is untouched.
  for (const library of ["sessionkit", "grammY"] as const) {
    for (const mode of ["strict", "lazy"] as const) {
      if (library === "grammY" && mode === "lazy") continue;
      const parts = [counting<Data>(), counting<Data>(), counting<Data>()];
      const options = {
        type: "multi" as const,
        a: { initial, storage: parts[0] },
        b: { initial, storage: parts[1] },
        c: { initial, storage: parts[2] },
      };
      type M = { a: Data; b: Data; c: Data };
      const middleware = library === "grammY"
        ? grammySession<M, Context>(options)
        : mode === "strict"
        ? session<M>(options)
        : lazySession<M>(options);
      // deno-lint-ignore no-explicit-any
      const handler: MiddlewareFn<any> = mode === "strict"
        ? (ctx) => {
          ctx.session.b.count += ctx.session.a.count + 1;
        }
        : async (ctx) => {
          const a = await ctx.session.a;
          const b = await ctx.session.b;
          b.count += a.count + 1;
        };
      const counts = await measure(middleware, handler, parts, true);
      rows.push({
        scenario: "3-fragment multi session: reads one, changes one, ignores one",
        library,
        mode,
        ...counts,
      });
    }
  }
  return rows;
}

/** Renders the rows as a markdown table. */
export function table(rows: Row[]): string {
  const lines = [
    "| scenario | library | mode | reads / update | writes / update |",
    "| --- | --- | --- | ---: | ---: |",
  ];
  for (const r of rows) {
    const writes = r.deletes === 0 ? `${r.writes}` : `${r.writes} (+${r.deletes} deletes)`;
    lines.push(`| ${r.scenario} | ${r.library} | ${r.mode} | ${r.reads} | ${writes} |`);
  }
  return lines.join("\n");
}

if (import.meta.main) {
  console.log(table(await countAll()));
}

/**
 * Rule C2, with immer-style (frozen) sessions: a merge that lands replaces
 * the frozen live value, and an update of the same process that read the old
 * value before that and assigns a copy of it afterwards must not drop what
 * the merge brought in (another process's change). Found by the race suite
 * (tests/race/regressions.ts, "C2: an assignment derived from a value a merge
 * replaced since keeps the merge"); here the same interleaving is forced
 * through two real bots on one storage.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { lazySession, type LazySessionFlavor, MemorySessionStorage } from "../mod.ts";
import { createHarness, message } from "./helpers/bot.ts";

type Data = { n: number; marks: Record<string, 1> };
type C = Context & LazySessionFlavor<Data>;

/** Keeps the marks of both sides (the README's counter merge, for marks). */
const keepBoth = (stored?: Data, mine?: Data, base?: Data): Data => {
  const marks = { ...stored?.marks, ...mine?.marks };
  for (const mark of Object.keys(base?.marks ?? {})) {
    if (mine?.marks[mark] === undefined && stored?.marks[mark] === undefined) delete marks[mark];
  }
  return { n: Object.keys(marks).length, marks };
};

const frozen = (d: Data): Data => Object.freeze({ n: d.n, marks: Object.freeze({ ...d.marks }) });
const add = (d: Data, mark: string): Data =>
  frozen({ n: d.n + 1, marks: { ...d.marks, [mark]: 1 } });

/** A memory storage whose next `readVersioned` (a merge's read) waits for `release`. */
class GatedStorage extends MemorySessionStorage<Data> {
  gate: PromiseWithResolvers<void> | undefined;
  reached = Promise.withResolvers<void>();
  override async readVersioned(key: string) {
    const gate = this.gate;
    if (gate !== undefined) {
      this.gate = undefined;
      this.reached.resolve();
      await gate.promise;
    }
    return super.readVersioned(key);
  }
}

Deno.test("C2: an assignment made from a value read before a merge replaced it keeps the merge", async () => {
  const storage = new GatedStorage();
  await storage.write("1", frozen({ n: 0, marks: {} }));
  const options = { initial: () => frozen({ n: 0, marks: {} }), storage, onConflict: keepBoth };

  // Process A: update "first" reads, then assigns a copy and ends; update
  // "second" reads that copy while the merge of first's save is under way,
  // and assigns a copy of it once the merge has landed.
  const a = createHarness<C>();
  a.bot.use(lazySession(options));
  const firstRead = Promise.withResolvers<void>();
  const firstGo = Promise.withResolvers<void>();
  const secondStart = Promise.withResolvers<void>();
  const secondRead = Promise.withResolvers<void>();
  const secondGo = Promise.withResolvers<void>();
  a.bot.on("message", async (ctx) => {
    if (ctx.message.text === "first") {
      const v = await ctx.session;
      firstRead.resolve();
      await firstGo.promise;
      ctx.session = add(v, "first");
    } else {
      await secondStart.promise;
      const v = await ctx.session; // first's copy, without the merge
      secondRead.resolve();
      await secondGo.promise;
      ctx.session = add(v, "second"); // after the merge replaced the live value
    }
  });
  // Process B: writes the key meanwhile, so that A's save conflicts and merges.
  const b = createHarness<C>();
  b.bot.use(lazySession(options));
  b.bot.on("message", async (ctx) => {
    ctx.session = add(await ctx.session, "other");
  });

  const first = a.send(message(1, "first"));
  const second = a.send(message(1, "second"));
  await firstRead.promise;
  await b.send(message(1, "other"));
  const gate = storage.gate = Promise.withResolvers(); // holds the merge's read
  firstGo.resolve();
  await storage.reached.promise; // first's save conflicted and is merging
  secondStart.resolve();
  await secondRead.promise;
  gate.resolve();
  await first; // the merge landed: the frozen live value was replaced
  secondGo.resolve();
  await second;

  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  const stored = await storage.read("1");
  assert.deepEqual(
    Object.keys(stored?.marks ?? {}).sort(),
    ["first", "other", "second"],
    `B's change was lost: ${JSON.stringify(stored)}`,
  );
});

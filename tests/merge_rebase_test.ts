/**
 * Rule C2, with immer-style (frozen) sessions: when a merge lands on a live
 * value it cannot change in place, an update of the same process that holds
 * that value (or a copy of it) and assigns a copy afterwards must not drop
 * what the merge brought in (another process's change). The core once
 * replaced the frozen value with the merge, which such an assignment then
 * undid. Found by the race suite (tests/race/regressions.ts, "C2: an
 * assignment made from a frozen value a merge landed on keeps the merge");
 * here the interleaving is forced through two real bots on one storage,
 * with the variants the adversarial review of a first fix found (attack16):
 * a chain of the update's own copies, and the assigned object staying the
 * session. grammY's session has no merges, so there is nothing to compare.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  lazySession,
  type LazySessionFlavor,
  MemorySessionStorage,
  session,
  type SessionFlavor,
} from "../mod.ts";
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

for (const mode of ["lazySession()", "session()"] as const) {
  Deno.test(`C2, ${mode}: an update chaining copies of its own assignment keeps a merge that landed in between, and what it assigned stays its session`, async () => {
    const storage = new MemorySessionStorage<Data>();
    await storage.write("1", frozen({ n: 0, marks: {} }));
    const options = { initial: () => frozen({ n: 0, marks: {} }), storage, onConflict: keepBoth };
    // deno-lint-ignore no-explicit-any
    const middleware = (): any => mode === "session()" ? session(options) : lazySession(options);
    const a = createHarness<Context & SessionFlavor<Data>>();
    a.bot.use(middleware());
    const assigned = Promise.withResolvers<void>();
    const go = Promise.withResolvers<void>();
    let same: boolean[] = [];
    a.bot.on("message", async (ctx) => {
      if (ctx.message.text === "hold") {
        const first = add(await ctx.session, "hold1");
        ctx.session = first;
        assigned.resolve();
        await go.promise; // meanwhile another update's save of `first` merges
        same.push((await ctx.session) === first);
        const second = add(first, "hold2"); // immer-style: from what it assigned
        ctx.session = second;
        same.push((await ctx.session) === second);
      } else {
        await ctx.session; // reads only; its save writes the shared value
      }
    });
    const b = createHarness<C>();
    b.bot.use(lazySession(options));
    b.bot.on("message", async (ctx) => {
      ctx.session = add(await ctx.session, "other");
    });

    const hold = a.send(message(1, "hold"));
    await assigned.promise;
    await b.send(message(1, "other")); // acknowledged
    await a.send(message(1, "touch")); // saves hold1: a conflict, merged with B's change
    assert.deepEqual(Object.keys((await storage.read("1"))?.marks ?? {}).sort(), [
      "hold1",
      "other",
    ]);
    go.resolve();
    await hold;

    assert.deepEqual([a.errors, b.errors], [[], []]);
    assert.deepEqual(same, [true, true], "ctx.session is not what the handler assigned");
    assert.deepEqual(
      Object.keys((await storage.read("1"))?.marks ?? {}).sort(),
      ["hold1", "hold2", "other"],
    );
    same = [];
  });
}

/** Process A keeps one key busy with a held update while its other updates run steps. */
function busyKey(
  storage: MemorySessionStorage<{ count: number }>,
  { frozen = true, refuse = () => false, merge = true }: {
    frozen?: boolean;
    refuse?: () => boolean;
    merge?: boolean;
  } = {},
) {
  type Count = { count: number };
  type CC = Context & LazySessionFlavor<Count>;
  const counter = (stored?: Count, mine?: Count, base?: Count): Count => {
    if (refuse()) throw new Error("the merge refuses");
    return { count: (stored?.count ?? 0) + (mine?.count ?? 0) - (base?.count ?? 0) };
  };
  const make = (count: number) => frozen ? Object.freeze({ count }) : { count };
  const options = {
    initial: () => make(0),
    storage,
    onConflict: merge ? counter : "error" as const,
  };
  const a = createHarness<CC>();
  const b = createHarness<CC>();
  a.bot.use(lazySession(options));
  b.bot.use(lazySession(options));
  const held = Promise.withResolvers<void>();
  const go = Promise.withResolvers<void>();
  let step: ((ctx: CC, s: Count | undefined) => void) | undefined;
  const handler = async (ctx: CC) => {
    if (ctx.message?.text === "hold") {
      await ctx.session;
      held.resolve();
      await go.promise;
      return;
    }
    step!(ctx, await ctx.session);
  };
  a.bot.on("message", handler);
  b.bot.on("message", handler);
  const run = async (h: typeof a, s: (ctx: CC, v: Count | undefined) => void) => {
    step = s;
    await h.send(message(1, "step"));
  };
  const inc = (ctx: CC, v: Count | undefined) => {
    ctx.session = make((v?.count ?? 0) + 1);
  };
  const del = (ctx: CC) => {
    ctx.session = null as unknown as Count;
  };
  let hold: Promise<void> | undefined;
  return {
    start: async () => {
      hold = a.send(message(1, "hold"));
      await held.promise;
    },
    A: (s: typeof inc) => run(a, s),
    B: (s: typeof inc) => run(b, s),
    end: async () => {
      go.resolve();
      await hold;
      return [...a.errors, ...b.errors];
    },
    errors: () => [...a.errors, ...b.errors],
    inc,
    del,
  };
}

Deno.test("C2: after a merge that landed on a frozen value, the next change still merges when the key was deleted again (no create-if-absent on a stale null version)", async () => {
  const storage = new MemorySessionStorage<{ count: number }>();
  await storage.write("1", { count: 5 });
  const t = busyKey(storage);
  await t.start(); // A reads 5
  await t.B(t.del); // B deletes (acknowledged)
  await t.A(t.inc); // A: 6, a conflict: merged onto nothing stored, created as 1
  assert.deepEqual(await storage.read("1"), { count: 1 });
  await t.B(t.del); // B deletes again (acknowledged)
  await t.A(t.inc); // A's increment is merged onto nothing again: 1
  assert.deepEqual(await t.end(), []);
  assert.deepEqual(await storage.read("1"), { count: 1 }, "B's second delete was undone");
});

Deno.test("C2: after a merge that landed on a frozen value, a delete deletes, as with mutable values", async () => {
  const storage = new MemorySessionStorage<{ count: number }>();
  await storage.write("1", { count: 0 });
  const t = busyKey(storage);
  await t.start(); // A reads 0
  await t.B(t.inc); // B: 1 (acknowledged)
  await t.A(t.inc); // A: 1, a conflict: merged, 2
  assert.deepEqual(await storage.read("1"), { count: 2 });
  await t.A(t.del); // nobody wrote since: the delete is a delete
  assert.deepEqual(await t.end(), []);
  assert.equal(await storage.read("1"), undefined);
});

/**
 * A memory storage whose next conditional write (`lose`) or conditional
 * delete (`loseDelete`) fails after (`landed`) or instead of landing.
 */
class LossyStorage extends MemorySessionStorage<{ count: number }> {
  lose: "landed" | "not landed" | undefined;
  loseDelete: "landed" | "not landed" | undefined;
  override deleteIfVersion(key: string, expected: string | null) {
    const lose = this.loseDelete;
    this.loseDelete = undefined;
    if (lose === "not landed") throw new Error("connection reset");
    const deleted = super.deleteIfVersion(key, expected);
    if (lose === "landed" && deleted) throw new Error("connection reset (the reply was lost)");
    return deleted;
  }
  override writeIfVersion(key: string, value: { count: number }, expected: string | null) {
    const lose = this.lose;
    if (lose === "not landed") {
      this.lose = undefined;
      throw new Error("connection reset");
    }
    const version = super.writeIfVersion(key, value, expected);
    if (lose === "landed" && version !== null) {
      this.lose = undefined;
      throw new Error("connection reset (the reply was lost)");
    }
    return version;
  }
}

for (const lose of ["landed", "not landed"] as const) {
  Deno.test(`C1, C2: a merge's write that failed (${lose}) is counted once`, async () => {
    const storage = new LossyStorage();
    await storage.write("1", { count: 0 });
    const t = busyKey(storage);
    await t.start(); // A reads 0
    await t.B(t.inc); // B: 1 (acknowledged)
    // A: 1; its write conflicts (not lost), and the merge's write (2) fails.
    const conflicting = storage.writeIfVersion.bind(storage);
    let calls = 0;
    storage.writeIfVersion = (key, value, expected) => {
      if (++calls === 2) storage.lose = lose;
      return conflicting(key, value, expected);
    };
    await t.A(t.inc);
    assert.deepEqual(await storage.read("1"), { count: lose === "landed" ? 2 : 1 });
    await t.A(t.inc); // one more increment by A
    const errors = await t.end();
    assert.equal(errors.length, 1, "the update whose merge's write failed is told so");
    // B's 1 and A's last 1, plus the failed one if it landed or if the next
    // save carried it (it is in the shared live value): never twice.
    const final = (await storage.read("1"))?.count;
    assert.ok(final === 2 || final === 3, `counted ${final}`);
    if (lose === "landed") assert.equal(final, 3);
  });
}

Deno.test("C2: a merge that lands on a session holding a frozen part keeps what a later copy of that part was made from", async () => {
  // immer on a part of the session: ctx.session.cart = produce(cart, ...).
  type Cart = { marks: Record<string, 1> };
  type D = { n: number; cart: Cart };
  const addc = (c: Cart, m: string): Cart =>
    Object.freeze({ marks: Object.freeze({ ...c.marks, [m]: 1 as const }) });
  const merge = (s?: D, m?: D): D => {
    const marks = { ...s?.cart.marks, ...m?.cart.marks };
    return { n: Object.keys(marks).length, cart: { marks } };
  };
  const storage = new MemorySessionStorage<D>();
  await storage.write("1", { n: 0, cart: { marks: {} } });
  const options = { initial: () => ({ n: 0, cart: { marks: {} } }), storage, onConflict: merge };
  type CD = Context & LazySessionFlavor<D>;
  const a = createHarness<CD>();
  const b = createHarness<CD>();
  const assigned = Promise.withResolvers<void>();
  const go = Promise.withResolvers<void>();
  a.bot.use(lazySession(options));
  a.bot.on("message", async (ctx) => {
    if (ctx.message.text === "hold") {
      const s = await ctx.session;
      const first = addc(s.cart, "hold1");
      s.cart = first;
      assigned.resolve();
      await go.promise; // meanwhile another update's save merges B's change
      (await ctx.session).cart = addc(first, "hold2"); // a copy of its own earlier part
    } else await ctx.session;
  });
  b.bot.use(lazySession(options));
  b.bot.on("message", async (ctx) => {
    const s = await ctx.session;
    s.cart = addc(s.cart, "other");
  });
  const hold = a.send(message(1, "hold"));
  await assigned.promise;
  await b.send(message(1, "b")); // acknowledged
  await a.send(message(1, "touch")); // saves hold1: a conflict, merged with B's change
  go.resolve();
  await hold;
  assert.deepEqual([a.errors, b.errors], [[], []]);
  assert.deepEqual(
    Object.keys((await storage.read("1"))?.cart.marks ?? {}).sort(),
    ["hold1", "hold2", "other"],
  );
});

Deno.test("C1, C2: when a merge whose reply was lost is carried over and the merge function throws, the update that made the change fails", async () => {
  const storage = new LossyStorage();
  await storage.write("1", { count: 0 });
  let refuse = false;
  const t = busyKey(storage, { frozen: false, refuse: () => refuse });
  await t.start(); // A reads 0
  await t.B(t.inc); // B: 1 (acknowledged)
  const conflicting = storage.writeIfVersion.bind(storage);
  let calls = 0;
  storage.writeIfVersion = (key, value, expected) => {
    if (++calls === 2) storage.lose = "landed";
    return conflicting(key, value, expected);
  };
  await t.A(t.inc); // A's merge (2) lands, its reply is lost: this update fails
  assert.equal(t.errors().length, 1);
  refuse = true; // the carry-over of that merge, at the next save, throws
  await t.A(t.inc); // its change cannot be merged: it must not be reported saved
  assert.equal(t.errors().length, 2, "an update whose change was dropped was reported saved");
  assert.match(String(t.errors()[1].error), /merge function threw/);
  await t.end();
});

for (const lose of ["landed", "not landed"] as const) {
  for (const frozen of [false, true]) {
    Deno.test(`C1, C2: after a delete that failed (${lose}), another process's changes survive the next save's merge (${frozen ? "frozen" : "mutable"} values)`, async () => {
      const storage = new LossyStorage();
      await storage.write("1", { count: 5 });
      const t = busyKey(storage, { frozen });
      await t.start(); // A reads 5 and keeps the key busy
      storage.loseDelete = lose;
      await t.A(t.del); // fails: the delete's reply is lost, or it never applied
      assert.deepEqual(await storage.read("1"), lose === "landed" ? undefined : { count: 5 });
      await t.B(t.inc); // B: two acknowledged increments (from nothing, or from 5)
      await t.B(t.inc);
      await t.A(t.inc); // A starts again from initial() (0) and adds 1
      const errors = await t.end();
      assert.equal(errors.length, 1, "only the update whose delete failed fails");
      // A's value was made after the delete: it is merged as made from
      // nothing, so B's increments stay in both cases (the pre-delete value
      // as base took them out again when the delete had landed: -2 for 3).
      // If the delete never landed, it is dropped with its failed update.
      const final = (await storage.read("1"))?.count;
      assert.equal(final, lose === "landed" ? 3 : 8);
    });
  }
}

for (const lose of ["landed", "not landed"] as const) {
  Deno.test(`C1: after a delete that failed (${lose}) and a conflict, a later delete of the busy key still conflicts (it is not skipped as a delete of nothing)`, async () => {
    const storage = new LossyStorage();
    await storage.write("1", { count: 5 });
    const t = busyKey(storage, { frozen: false, merge: false });
    await t.start();
    storage.loseDelete = lose;
    await t.A(t.del); // fails
    await t.B(t.inc); // acknowledged
    const b = await storage.read("1");
    await t.A(t.inc); // a conflict with B's write
    assert.equal(t.errors().length, 2);
    await t.A(t.del); // B wrote since: a conflict too, not "saved" without a storage call
    assert.equal(t.errors().length, 3, "the delete conflicts with B's write");
    assert.equal((t.errors()[2].error as Error).name, "SessionConflictError");
    assert.deepEqual(await storage.read("1"), b, "B's session stays");
    await t.end();
  });
}

for (const lose of ["landed", "not landed"] as const) {
  Deno.test(`C1, C2: after a delete that failed (${lose}), a merge whose write failed is merged again from nothing`, async () => {
    const storage = new LossyStorage();
    await storage.write("1", { count: 5 });
    const t = busyKey(storage, { frozen: false });
    await t.start();
    storage.loseDelete = lose;
    await t.A(t.del); // fails
    await t.B(t.inc); // acknowledged
    storage.lose = "not landed";
    await t.A(t.inc); // conflicts; its merge's write fails
    await t.A(t.inc); // acknowledged: merges again, from what the first merge used
    assert.equal((await t.end()).length, 2);
    // B's 1 and A's acknowledged 1 on what the delete left (the pre-delete 5
    // as the second merge's base gave -2 when the delete had landed).
    assert.equal((await storage.read("1"))?.count, lose === "landed" ? 3 : 8);
  });
}

Deno.test("C1, C2: after a merge landed on a frozen value and a delete failed before applying, a value rebuilt from initial() is merged as made from nothing", async () => {
  const storage = new LossyStorage();
  await storage.write("1", { count: 5 });
  const t = busyKey(storage);
  await t.start(); // A reads 5
  await storage.write("1", { count: 15 }); // another process: +10
  await t.A(t.inc); // 6, frozen: conflicts, the merge lands 16 on a value it cannot change
  assert.deepEqual(await storage.read("1"), { count: 16 });
  storage.loseDelete = "not landed";
  await t.A(t.del); // fails before applying
  await t.A(t.inc); // from initial(): 1, merged onto 16 as made from nothing
  assert.equal((await t.end()).length, 1);
  // The frozen pre-delete value (6) as base gave 11, which no order of the
  // updates makes.
  assert.deepEqual(await storage.read("1"), { count: 17 });
});

/**
 * Regression tests for the findings of the adversarial review of the core
 * (the reproduction scripts of /tmp/attack against the c3f0e5c-era core).
 * One test per finding, named after the rule of docs/semantics.md it checks;
 * each drives real grammY bots and fails on the core before the fix.
 *
 * Interleavings are forced with promises the tests resolve (handler gates,
 * and storage calls paused or answered late by `ControlledStorage` and
 * `LateStorage`), not with sleeps, except where a lease or a timing is the
 * point.
 */
import assert from "node:assert/strict";
import type { Context, MiddlewareFn } from "npm:grammy@^1.46";
import {
  type LazyMultiSessionFlavor,
  lazySession,
  type LazySessionFlavor,
  MemorySessionStorage,
  perUser,
  session,
  SessionConflictError,
  type SessionFlavor,
  SessionKeyError,
  SessionValueError,
  type StorageAdapter,
} from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { createHarness, type Harness, inlineQuery, message, sleep } from "./helpers/bot.ts";
import { ControlledStorage, describe, type Method, READS } from "./helpers/defects_storage.ts";
import { LateStorage } from "./helpers/review_storage.ts";
import { RedisFixture, redisTest } from "./redis_env.ts";
import { DATABASE_URL, dropTables, pg, pgTest, RUN } from "./postgres_setup.ts";

type N = { n: number };
type StrictN = Context & SessionFlavor<N>;
type LazyN = Context & LazySessionFlavor<N>;

const initial = (): N => ({ n: 0 });
/** Keeps the increments of both sides. */
const addMerge = (stored?: N, mine?: N, base?: N): N => ({
  n: (stored?.n ?? 0) + (mine?.n ?? 0) - (base?.n ?? 0),
});
const WRITES: Method[] = ["write", "writeIfVersion"];

// deno-lint-ignore no-explicit-any
function errorsOf(h: Harness<any>): string[] {
  return h.errors.map((e) => describe(e.error));
}

/** Assigns `ctx.session` whatever the flavor's setter type says (a promise, a whole multi value). */
function assign(ctx: Context, value: unknown): void {
  (ctx as unknown as { session: unknown }).session = value;
}

/**
 * `lazySession(options)` or `session(options)`, for handlers that await
 * `ctx.session` either way (awaiting a strict session's value gives it).
 */
// deno-lint-ignore no-explicit-any
function sessionMiddleware(lazy: boolean, options: any): MiddlewareFn<any> {
  return lazy ? lazySession(options) : session(options);
}

/** A gate a handler waits at: `reached` once it is there, `open()` lets it go on. */
function gate() {
  const reached = Promise.withResolvers<void>();
  const opened = Promise.withResolvers<void>();
  return {
    reached: reached.promise,
    open: () => opened.resolve(),
    /** Called by the handler: signals arrival and waits to be let through. */
    pass: () => {
      reached.resolve();
      return opened.promise;
    },
  };
}

// ---------------------------------------------------------------------------
// Finding 1 (a2_blind_then_blind.ts, a2_real.ts)
// ---------------------------------------------------------------------------

/**
 * Process P1 assigns chat 1's lazy session without reading it (a blind
 * write of `{ n: 100 }`) while a second P1 update shares the live value and
 * waits; after the blind write landed, process P2 (when `otherWrites`) sets
 * `n = 555`; then the waiting P1 update increments. Resolves with both
 * harnesses and what is stored at the end.
 */
async function blindThenShared(storage: StorageAdapter<N>, otherWrites: boolean) {
  await storage.write("1", { n: 0 });
  const p1 = createHarness<LazyN>();
  p1.bot.use(lazySession({ storage, initial }));
  const reset = gate(), inc = gate();
  p1.bot.command("reset", async (ctx) => {
    ctx.session = { n: 100 }; // blind: never read
    await reset.pass();
  });
  p1.bot.command("inc", async (ctx) => {
    const s = await ctx.session; // the live { n: 100 } of /reset, no read
    await inc.pass();
    s.n++;
  });
  const p2 = createHarness<LazyN>();
  p2.bot.use(lazySession({ storage, initial }));
  p2.bot.on("message", async (ctx) => {
    const s = await ctx.session;
    s.n = 555;
  });

  const resetSent = p1.send(message(1, "/reset"));
  await reset.reached;
  const incSent = p1.send(message(1, "/inc"));
  await inc.reached;
  reset.open();
  await resetSent;
  assert.deepEqual(errorsOf(p1), [], "the blind write failed");
  assert.deepEqual(await storage.read("1"), { n: 100 }, "the blind write did not land");
  if (otherWrites) {
    await p2.send(message(1, "other process"));
    assert.deepEqual(errorsOf(p2), []);
    assert.deepEqual(await storage.read("1"), { n: 555 });
  }
  inc.open();
  await incSent;
  return { p1, p2, stored: await storage.read("1") };
}

/** The C1 steps of finding 1 over `open()`'s storage (a fresh one per step). */
async function blindWriteSteps(
  t: Deno.TestContext,
  open: () => Promise<{ storage: StorageAdapter<N>; close(): Promise<void> }>,
) {
  await t.step(
    "another process's write after the blind write is a conflict, not lost",
    async () => {
      const { storage, close } = await open();
      try {
        const { p1, stored } = await blindThenShared(storage, true);
        assert.deepEqual(
          stored,
          { n: 555 },
          "the save after a blind write was unconditional and overwrote the other process's write",
        );
        assert.equal(p1.errors.length, 1, `expected one conflict, got ${errorsOf(p1)}`);
        assert.ok(p1.errors[0].error instanceof SessionConflictError, errorsOf(p1)[0]);
      } finally {
        await close();
      }
    },
  );
  await t.step("guard: without another writer the save after the blind write lands", async () => {
    const { storage, close } = await open();
    try {
      const { p1, stored } = await blindThenShared(storage, false);
      assert.deepEqual(errorsOf(p1), [], "a false conflict after a blind write");
      assert.deepEqual(stored, { n: 101 });
    } finally {
      await close();
    }
  });
}

Deno.test("C1: a blind write does not turn off conflict detection for the key", async (t) => {
  await blindWriteSteps(t, () =>
    Promise.resolve({
      storage: new MemorySessionStorage<N>(),
      close: () => Promise.resolve(),
    }));
});

redisTest(
  "C1: a blind write does not turn off conflict detection for the key (Redis)",
  async (t) => {
    const fixture = new RedisFixture();
    try {
      await blindWriteSteps(t, async () => ({
        storage: await fixture.storage<N>(),
        close: () => Promise.resolve(),
      }));
    } finally {
      await fixture.cleanup();
    }
  },
);

let pgTables = 0;
pgTest(
  "C1: a blind write does not turn off conflict detection for the key (PostgreSQL)",
  async (t) => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL });
    pool.on("error", () => {});
    try {
      await blindWriteSteps(t, () => {
        const storage = new PostgresStorage<N>(pool, { table: `${RUN}_review_c1_${++pgTables}` });
        return Promise.resolve({ storage, close: () => dropTables(pool, storage) });
      });
    } finally {
      await pool.end();
    }
  },
);

// ---------------------------------------------------------------------------
// Finding 2 (a4_multi_promise.ts)
// ---------------------------------------------------------------------------

type Multi = { chat: { count: number }; user: { lang: string } };

Deno.test("U3: a promise assigned to a whole multi session assigns each fragment its part", async (t) => {
  for (const lazy of [false, true]) {
    await t.step(lazy ? "lazySession" : "session", async () => {
      const chat = new MemorySessionStorage<Multi["chat"]>();
      const user = new MemorySessionStorage<Multi["user"]>();
      chat.write("1", { count: 5 });
      user.write("1", { lang: "de" });
      const options = {
        type: "multi" as const,
        chat: { storage: chat, initial: () => ({ count: 0 }) },
        user: { storage: user, initial: () => ({ lang: "en" }), getSessionKey: perUser },
      };
      const h = createHarness<Context & LazyMultiSessionFlavor<Multi>>();
      h.bot.use(sessionMiddleware(lazy, options));
      h.bot.on("message", (ctx) => {
        assign(ctx, Promise.resolve({ chat: { count: 6 }, user: { lang: "fr" } }));
      });
      await h.send(message(1));
      assert.deepEqual(errorsOf(h), []);
      assert.deepEqual(chat.read("1"), { count: 6 }, "the chat fragment did not get its part");
      assert.deepEqual(user.read("1"), { lang: "fr" }, "the user fragment did not get its part");
    });
  }
});

// ---------------------------------------------------------------------------
// Finding 3 (a1_late_read.ts, a1b_late_read_lost_write.ts)
// ---------------------------------------------------------------------------

/**
 * Lazy update `/first` reads chat 1 (the storage answers at once, but the
 * answer reaches the middleware late); meanwhile update `/blind` of the
 * same process assigns `{ n: 10 }` without reading and saves; then the late
 * answer arrives and `/first` goes on with `change`. Resolves with what is
 * stored and the errors.
 */
async function lateRead(
  onConflict: "error" | "overwrite" | typeof addMerge,
  change: (s: N) => void,
) {
  const storage = new LateStorage<N>(new MemorySessionStorage<N>());
  storage.inner.write("1", { n: 0 });
  const h = createHarness<LazyN>();
  h.bot.use(lazySession({ storage, initial, onConflict }));
  h.bot.command("first", async (ctx) => change(await ctx.session));
  h.bot.command("blind", (ctx) => void (ctx.session = { n: 10 }));
  const late = storage.hold(READS);
  const first = h.send(message(1, "/first"));
  await late.reached; // read { n: 0 } from storage; the answer is held back
  await h.send(message(1, "/blind"));
  assert.deepEqual(storage.inner.read("1"), { n: 10 }, "the blind save did not land");
  late.release();
  await first;
  return { stored: storage.inner.read("1"), errors: errorsOf(h) };
}

Deno.test("C1: a read that lands after a save of the key does not undo what the save wrote", async (t) => {
  await t.step('no false conflict (onConflict: "error")', async () => {
    const { stored, errors } = await lateRead("error", (s) => void s.n++);
    assert.deepEqual(
      errors,
      [],
      "a read that overlapped this process's own save caused a conflict",
    );
    assert.deepEqual(stored, { n: 11 });
  });
  await t.step("no double merge (merge function)", async () => {
    const { stored, errors } = await lateRead(addMerge, (s) => void s.n++);
    assert.deepEqual(errors, []);
    assert.deepEqual(stored, { n: 11 }, "the save was merged against the stale read");
  });
  for (const mode of ["error", "overwrite"] as const) {
    await t.step(`no lost write: a change back to the old value is written (${mode})`, async () => {
      const { stored, errors } = await lateRead(mode, (s) => void (s.n = 0));
      assert.deepEqual(errors, []);
      assert.deepEqual(
        stored,
        { n: 0 },
        "the late read made { n: 0 } look stored, so /first's change was never written",
      );
    });
  }
});

// ---------------------------------------------------------------------------
// Finding 4 (a11_live_object_to_write.ts)
// ---------------------------------------------------------------------------

Deno.test("K2: a save writes the value as it was when the save started", async (t) => {
  await t.step("a change made while the write is on its way is not in it", async () => {
    const storage = new ControlledStorage<N>(new MemorySessionStorage<N>());
    storage.inner.write("1", { n: 0 });
    const h = createHarness<StrictN>();
    h.bot.use(session({ storage, initial }));
    const later = gate();
    h.bot.command("a", (ctx) => void ctx.session.n++);
    const changed = gate();
    h.bot.command("b", async (ctx) => {
      await later.pass();
      ctx.session.n = 99;
      await changed.pass();
    });
    const b = h.send(message(1, "/b"));
    await later.reached;
    const writing = storage.pause(WRITES);
    const a = h.send(message(1, "/a"));
    await writing.reached; // /a's save of { n: 1 } has started
    later.open();
    await changed.reached; // /b changed the live value while the write waits
    writing.release();
    await a;
    assert.deepEqual(
      storage.inner.read("1"),
      { n: 1 },
      "the write stored a change made after the save started",
    );
    changed.open();
    await b;
    assert.deepEqual(errorsOf(h), []);
    assert.deepEqual(storage.inner.read("1"), { n: 99 });
  });

  await t.step("two processes with a merge count every increment once", async () => {
    const storage = new ControlledStorage<N>(new MemorySessionStorage<N>());
    storage.inner.write("1", { n: 0 });
    const mk = () => {
      const h = createHarness<StrictN>();
      h.bot.use(session({ storage, initial, onConflict: addMerge }));
      return h;
    };
    const p1 = mk(), p2 = mk();
    const c = gate(), b1 = gate(), b2 = gate();
    p2.bot.command("c", async (ctx) => {
      ctx.session.n++;
      await c.pass();
    });
    p1.bot.command("b", async (ctx) => {
      await b1.pass();
      ctx.session.n++;
      await b2.pass();
    });
    p1.bot.command("a", (ctx) => void ctx.session.n++);
    const cSent = p2.send(message(1, "/c")); // P2 read { n: 0 }
    await c.reached;
    const bSent = p1.send(message(1, "/b")); // P1 read { n: 0 }
    await b1.reached;
    const writing = storage.pause(WRITES);
    const aSent = p1.send(message(1, "/a"));
    await writing.reached; // /a's save of { n: 1 } has started
    b1.open();
    await b2.reached; // /b made the live value { n: 2 } meanwhile
    writing.release();
    await aSent;
    c.open(); // P2's save conflicts and merges
    await cSent;
    b2.open(); // /b's save conflicts and merges
    await bSent;
    assert.deepEqual([...errorsOf(p1), ...errorsOf(p2)], []);
    assert.deepEqual(storage.inner.read("1"), { n: 3 }, "3 increments were made");
  });
});

// ---------------------------------------------------------------------------
// Finding 5 (a3_after_end_mutation.ts)
// ---------------------------------------------------------------------------

type Noted = { n: number; note: string };

Deno.test("U7: after the end, ctx.session is a copy: changing it reaches nobody", async (t) => {
  for (const lazy of [false, true]) {
    await t.step(lazy ? "lazySession" : "session", async () => {
      const storage = new MemorySessionStorage<Noted>();
      const h = createHarness<Context & LazySessionFlavor<Noted>>();
      const options = { storage, initial: () => ({ n: 0, note: "" }) };
      h.bot.use(sessionMiddleware(lazy, options));
      let leaked: (Context & LazySessionFlavor<Noted>) | undefined;
      const other = gate();
      let seenByOther: Noted | undefined;
      h.bot.command("a", async (ctx) => {
        (await ctx.session).n++;
        leaked = ctx;
      });
      h.bot.command("b", async (ctx) => {
        const s = await ctx.session;
        await other.pass();
        s.n++;
        seenByOther = { ...s };
      });
      const b = h.send(message(1, "/b"));
      await other.reached;
      await h.send(message(1, "/a")); // settled; /b still uses the key
      const after = await leaked!.session;
      assert.deepEqual(after, { n: 1, note: "" }, "the value read after the end");
      after.note = "changed after the end";
      other.open();
      await b;
      assert.deepEqual(errorsOf(h), []);
      assert.deepEqual(seenByOther, { n: 2, note: "" }, "the change reached another update");
      assert.deepEqual(storage.read("1"), { n: 2, note: "" }, "the change reached storage");
    });
  }
});

// ---------------------------------------------------------------------------
// Finding 6 (a18_merge_nested_refs.ts)
// ---------------------------------------------------------------------------

type Items = { items: string[]; n: number };

Deno.test("C2: a landed merge updates the live value in place, nested objects too", async () => {
  const storage = new MemorySessionStorage<Items>();
  storage.write("1", { items: [], n: 0 });
  const merge = (s?: Items, m?: Items, b?: Items): Items => ({
    items: [...new Set([...(s?.items ?? []), ...(m?.items ?? [])])],
    n: (s?.n ?? 0) + (m?.n ?? 0) - (b?.n ?? 0),
  });
  const mk = () => {
    const h = createHarness<Context & SessionFlavor<Items>>();
    h.bot.use(session({ storage, initial: () => ({ items: [], n: 0 }), onConflict: merge }));
    return h;
  };
  const p1 = mk(), p2 = mk();
  const hold = gate();
  p1.bot.command("hold", async (ctx) => {
    const items = ctx.session.items; // a nested reference, held across the merge
    await hold.pass();
    items.push("from-hold");
  });
  p1.bot.command("inc", (ctx) => void ctx.session.n++);
  p2.bot.command("other", (ctx) => void ctx.session.items.push("from-p2"));
  const held = p1.send(message(1, "/hold"));
  await hold.reached;
  await p2.send(message(1, "/other")); // P1's next save conflicts
  await p1.send(message(1, "/inc")); // ... and its merge lands
  assert.deepEqual(storage.read("1"), { items: ["from-p2"], n: 1 }, "the merge did not land");
  hold.open();
  await held;
  assert.deepEqual([...errorsOf(p1), ...errorsOf(p2)], []);
  assert.deepEqual(
    storage.read("1"),
    { items: ["from-p2", "from-hold"], n: 1 },
    "a change through a nested reference held across the merge was lost",
  );
});

// ---------------------------------------------------------------------------
// Finding 7 (a10_delete_shared.ts)
// ---------------------------------------------------------------------------

Deno.test("K1: an update joining a key whose live value was deleted starts from initial()", async (t) => {
  for (const lazy of [false, true]) {
    for (const change of [true, false]) {
      const name = `${lazy ? "lazySession" : "session"}, the joining update ${
        change ? "increments" : "only reads (nothing is stored)"
      }`;
      await t.step(name, async () => {
        const storage = new MemorySessionStorage<N>();
        storage.write("1", { n: 5 });
        const h = createHarness<LazyN>();
        h.bot.use(sessionMiddleware(lazy, { storage, initial }));
        const reset = gate();
        let seen: unknown = "not read";
        h.bot.command("reset", async (ctx) => {
          assign(ctx, undefined);
          await reset.pass();
        });
        h.bot.command("join", async (ctx) => {
          const s = await ctx.session;
          seen = s === undefined ? undefined : { ...s };
          if (change) s.n++;
        });
        const resetSent = h.send(message(1, "/reset"));
        await reset.reached;
        await h.send(message(1, "/join"));
        reset.open();
        await resetSent;
        assert.deepEqual(seen, { n: 0 }, "the joining update did not start from initial()");
        assert.deepEqual(errorsOf(h), []);
        assert.deepEqual(storage.read("1"), change ? { n: 1 } : undefined);
      });
    }
  }
});

// ---------------------------------------------------------------------------
// Finding 9 (a5_promise_cross_update.ts)
// ---------------------------------------------------------------------------

Deno.test("U3: a later assignment by another update of the key wins over an earlier promise", async (t) => {
  type V = { v: string };
  for (const lazy of [false, true]) {
    await t.step(lazy ? "lazySession" : "session", async () => {
      const storage = new MemorySessionStorage<V>();
      const h = createHarness<Context & LazySessionFlavor<V>>();
      const options = { storage, initial: () => ({ v: "initial" }) };
      h.bot.use(sessionMiddleware(lazy, options));
      const slow = Promise.withResolvers<V>();
      const assigned = Promise.withResolvers<void>();
      h.bot.command("a", (ctx) => {
        ctx.session = slow.promise; // assigned first
        assigned.resolve();
      });
      h.bot.command("b", (ctx) => void (ctx.session = { v: "B, assigned last" }));
      const a = h.send(message(1, "/a"));
      await assigned.promise;
      await h.send(message(1, "/b"));
      assert.deepEqual(storage.read("1"), { v: "B, assigned last" });
      slow.resolve({ v: "A, assigned first" });
      await a;
      assert.deepEqual(errorsOf(h), []);
      assert.deepEqual(
        storage.read("1"),
        { v: "B, assigned last" },
        "the promise assigned first overrode the later assignment of another update",
      );
    });
  }
});

// ---------------------------------------------------------------------------
// Finding 10 (a9_lease_renew_after_end.ts, the Latent case)
// ---------------------------------------------------------------------------

Deno.test("U6: with lock, the middleware settles only after a lease renewal in flight", async () => {
  const storage = new LateStorage<N>(new MemorySessionStorage<N>());
  const h = createHarness<StrictN>();
  h.bot.use(session({ storage, initial, lock: { ttl: 300, wait: 200 } }));
  const renewal = storage.pause("renewLease"); // slow on the way to the server
  h.bot.on("message", async (ctx) => {
    ctx.session.n++;
    await renewal.reached; // after ttl / 3
  });
  let settled = false;
  let inFlightAtEnd = -1;
  // The renewal timer does not keep Deno alive; this does, until the test ends.
  const alive = setInterval(() => {}, 1000);
  const sent = h.send(message(1)).then(() => {
    inFlightAtEnd = storage.inFlight;
    settled = true;
  });
  try {
    await renewal.reached;
    await sleep(30); // the handler is done; the save and the release run
    assert.equal(settled, false, "the middleware settled while a lease renewal was in flight");
    renewal.release();
    await sent;
    assert.equal(inFlightAtEnd, 0, "a storage call was in flight when the middleware settled");
    const events = storage.events;
    const renewed = events.indexOf("renewLease:1 done");
    const released = events.indexOf("releaseLease:1 called");
    assert.ok(renewed >= 0 && released >= 0, events.join(", "));
    assert.ok(
      released > renewed,
      `the lease was given up while its renewal was in flight: ${events.join(", ")}`,
    );
    assert.deepEqual(errorsOf(h), []);
    assert.deepEqual(storage.inner.read("1"), { n: 1 });
    assert.equal(await storage.inner.acquireLease("1", "another process", 1000), true);
  } finally {
    renewal.release();
    storage.close();
    await sent;
    clearInterval(alive);
  }
});

// ---------------------------------------------------------------------------
// Finding 11 (a14_lock_overlap.ts)
// ---------------------------------------------------------------------------

Deno.test("C6: with lock, a lazy blind assignment takes the lease at the assignment", async () => {
  const storage = new ControlledStorage<N>(new MemorySessionStorage<N>());
  storage.inner.write("1", { n: 0 });
  const mk = () => {
    const h = createHarness<LazyN>();
    h.bot.use(lazySession({ storage, initial, lock: { ttl: 1000, wait: 2000 } }));
    return h;
  };
  const p1 = mk(), p2 = mk();
  const blind = gate();
  p2.bot.command("blind", async (ctx) => {
    ctx.session = { n: 1000 }; // never read
    await blind.pass();
  });
  p1.bot.command("read", async (ctx) => void (await ctx.session).n++);
  let p1Settled = false;
  const blindSent = p2.send(message(1, "/blind"));
  let readSent: Promise<void> | undefined;
  try {
    await blind.reached;
    await sleep(10); // P2's lease request lands
    const p1Try = storage.pause("acquireLease");
    readSent = p1.send(message(1, "/read")).then(() => void (p1Settled = true));
    await p1Try.reached;
    p1Try.release();
    await sleep(30);
    assert.equal(
      storage.total(READS),
      0,
      "P1 read the session while P2's update, which had assigned it, was running without the lease",
    );
    assert.equal(p1Settled, false, "P1's update ran while P2 held the key");
  } finally {
    blind.open();
    await blindSent;
    await readSent;
    storage.close();
  }
  assert.deepEqual([...errorsOf(p1), ...errorsOf(p2)], []);
  assert.deepEqual(storage.inner.read("1"), { n: 1001 }, "P1 did not run after P2's write");
});

// ---------------------------------------------------------------------------
// Finding 12 (a8_sparse_array.ts)
// ---------------------------------------------------------------------------

type Holes = { a: unknown[] };

/** A third-party style adapter that keeps what it is given, as it is (rule V2). */
class KeepingAdapter implements StorageAdapter<Holes> {
  readonly kept = new Map<string, Holes>();
  read(key: string): Holes | undefined {
    return this.kept.get(key);
  }
  write(key: string, value: Holes): void {
    this.kept.set(key, value);
  }
  delete(key: string): void {
    this.kept.delete(key);
  }
}

Deno.test("V2: an array with holes has no snapshot, so a huge one does not stall the event loop", async (t) => {
  // Both are one cheap step for the handler (V8 keeps such arrays as dictionaries).
  const shapes: [string, (a: unknown[]) => void, number][] = [
    ["length 2 ** 26 and no element", (a) => void (a.length = 2 ** 26), 2 ** 26],
    ["one element at index 2 ** 24", (a) => void (a[2 ** 24] = "x"), 2 ** 24 + 1],
  ];
  for (const [shape, make, length] of shapes) {
    for (const kind of ["a storage that keeps any value", "a sessionkit storage"] as const) {
      await t.step(`${shape}, ${kind}`, async () => {
        const keeping = new KeepingAdapter();
        const memory = new MemorySessionStorage<Holes>();
        const h = createHarness<Context & SessionFlavor<Holes>>();
        h.bot.use(session({
          storage: kind === "a sessionkit storage" ? memory : keeping,
          initial: () => ({ a: [] }),
        }));
        h.bot.on("message", (ctx) => make(ctx.session.a));
        const started = performance.now();
        await h.send(message(1));
        const took = performance.now() - started;
        assert.ok(took < 150, `the update took ${took.toFixed(0)} ms`);
        if (kind === "a sessionkit storage") {
          // Refused by the storage (rule V1): the update fails, nothing is stored.
          assert.equal(h.errors.length, 1, errorsOf(h).join(", "));
          assert.ok(h.errors[0].error instanceof SessionValueError, errorsOf(h)[0]);
          assert.equal(memory.read("1"), undefined);
        } else {
          // No snapshot: it counts as changed and is handed over as it is.
          assert.deepEqual(errorsOf(h), []);
          assert.equal(keeping.kept.get("1")?.a.length, length);
        }
      });
    }
  }
});

// ---------------------------------------------------------------------------
// Finding 13 (a7_lazy_first_read.ts)
// ---------------------------------------------------------------------------

Deno.test("U2: the first lazy read is a promise, and the value once an assigned promise settled", async (t) => {
  await t.step("the first read is a promise while another update holds the value", async () => {
    const storage = new MemorySessionStorage<N>();
    const h = createHarness<LazyN>();
    h.bot.use(lazySession({ storage, initial }));
    const hold = gate();
    let firstWasPromise: boolean | undefined;
    h.bot.command("hold", async (ctx) => {
      await ctx.session;
      await hold.pass();
    });
    h.bot.command("probe", (ctx) => {
      const first = ctx.session;
      firstWasPromise = first instanceof Promise;
      return (first as Promise<N>).then((s) => void s.n++);
    });
    const held = h.send(message(1, "/hold"));
    await hold.reached;
    await h.send(message(1, "/probe"));
    hold.open();
    await held;
    assert.equal(firstWasPromise, true, "the first read of /probe gave the plain value");
    assert.deepEqual(errorsOf(h), []);
    assert.deepEqual(storage.read("1"), { n: 1 });
  });

  await t.step("after an assigned promise settled, ctx.session is the value", async () => {
    const storage = new MemorySessionStorage<N>();
    const h = createHarness<LazyN>();
    h.bot.use(lazySession({ storage, initial }));
    let after: unknown;
    h.bot.on("message", async (ctx) => {
      const assigned = Promise.resolve({ n: 5 });
      ctx.session = assigned;
      await assigned;
      await sleep(0);
      after = ctx.session;
    });
    await h.send(message(1));
    assert.deepEqual(errorsOf(h), []);
    assert.ok(!(after instanceof Promise), "ctx.session stayed a promise");
    assert.deepEqual(after, { n: 5 });
    assert.deepEqual(storage.read("1"), { n: 5 });
  });
});

// ---------------------------------------------------------------------------
// Finding 14 (a16_multi_whole.ts)
// ---------------------------------------------------------------------------

Deno.test("U8: a whole multi session assignment that throws for an unkeyed fragment assigns nothing", async () => {
  const chat = new MemorySessionStorage<Multi["chat"]>();
  const user = new MemorySessionStorage<Multi["user"]>();
  user.write("7", { lang: "de" });
  const h = createHarness<Context & SessionFlavor<Multi>>();
  h.bot.use(session<Multi>({
    type: "multi",
    user: { storage: user, initial: () => ({ lang: "en" }), getSessionKey: perUser },
    chat: { storage: chat, initial: () => ({ count: 0 }) }, // no key for an inline query
  }));
  let thrown: unknown;
  h.bot.on("inline_query", (ctx) => {
    try {
      ctx.session = { user: { lang: "fr" }, chat: { count: 1 } };
    } catch (err) {
      thrown = err;
    }
  });
  await h.send(inlineQuery(7));
  assert.ok(thrown instanceof SessionKeyError, `the assignment threw ${describe(thrown)}`);
  assert.deepEqual(errorsOf(h), []);
  assert.deepEqual(user.read("7"), { lang: "de" }, "the assignment that threw changed a fragment");
  assert.equal(chat.read("7"), undefined);
});

// ---------------------------------------------------------------------------
// Second review round.

/** A plain adapter whose reads throw synchronously (a storage that fails fast). */
function throwingReads(): StorageAdapter<N> & { writes: number; held: Map<string, N> } {
  const held = new Map<string, N>([["1", { n: 41 }]]);
  const storage = {
    held,
    writes: 0,
    read(): N | undefined {
      throw new Error("connection refused");
    },
    write(key: string, value: N) {
      storage.writes++;
      held.set(key, structuredClone(value));
    },
    delete(key: string) {
      held.delete(key);
    },
  };
  return storage;
}

Deno.test("U6: a lazy read that throws synchronously fails the update, nothing is written", async (t) => {
  await t.step("the handler catches it and assigns a fallback", async () => {
    const storage = throwingReads();
    const h = createHarness<LazyN>();
    h.bot.use(lazySession({ storage }));
    let first: unknown;
    h.bot.on("message", async (ctx) => {
      try {
        first = ctx.session;
        await first;
      } catch {
        ctx.session = { n: 1 };
      }
    });
    await h.send(message(1));
    assert.ok(
      first instanceof Promise,
      "the first read is a promise (U2), not a synchronous throw",
    );
    assert.equal(h.errors.length, 1, "the failed read fails the update");
    assert.equal(storage.writes, 0);
    assert.deepEqual(storage.held.get("1"), { n: 41 });
  });
  await t.step("the handler never awaits it", async () => {
    const storage = throwingReads();
    const h = createHarness<LazyN>();
    h.bot.use(lazySession({ storage }));
    h.bot.on("message", (ctx) => void ctx.session);
    await h.send(message(1));
    assert.equal(h.errors.length, 1);
    assert.deepEqual(storage.held.get("1"), { n: 41 });
  });
});

Deno.test("U3: a read after a promise assignment gives what the last assignment of the key gives", async (t) => {
  await t.step("another update assigned a later promise", async () => {
    const storage = new MemorySessionStorage<N>();
    storage.write("1", { n: 41 });
    const h = createHarness<LazyN>();
    h.bot.use(lazySession({ storage }));
    const p1 = Promise.withResolvers<N>();
    const p2 = Promise.withResolvers<N>();
    const assigned = Promise.withResolvers<void>();
    let seen: unknown;
    h.bot.on("message", async (ctx) => {
      if (ctx.msg.text === "a") {
        ctx.session = p1.promise;
        await assigned.promise;
        seen = await ctx.session;
      } else {
        ctx.session = p2.promise;
        assigned.resolve();
        await p2.promise;
      }
    });
    const a = h.send(message(1, "a"));
    const b = h.send(message(1, "b"));
    await assigned.promise;
    p1.resolve({ n: 1 }); // superseded: never applies
    await sleep(0);
    p2.resolve({ n: 2 });
    await Promise.all([a, b]);
    assert.deepEqual(h.errors, []);
    assert.deepEqual(seen, { n: 2 }, "the read gave what the last assignment gave");
    assert.deepEqual(storage.read("1"), { n: 2 });
  });
  await t.step("the assigned promise rejects: the read rejects too, as in grammY", async () => {
    const storage = new MemorySessionStorage<N>();
    const h = createHarness<LazyN>();
    h.bot.use(lazySession({ storage }));
    let outcome = "";
    h.bot.on("message", async (ctx) => {
      ctx.session = Promise.reject(new Error("no"));
      try {
        await ctx.session;
        outcome = "resolved";
      } catch (err) {
        outcome = (err as Error).message;
      }
    });
    await h.send(message(1));
    assert.equal(outcome, "no");
    assert.equal(h.errors.length, 1, "the rejected assignment fails the update");
  });
});

Deno.test("U4: setting a session back to its initial value is written once the key is not new", async () => {
  const storage = new MemorySessionStorage<N>();
  const h = createHarness<StrictN>();
  h.bot.use(session({ initial, storage }));
  const resetting = Promise.withResolvers<void>();
  const incremented = Promise.withResolvers<void>();
  h.bot.on("message", async (ctx) => {
    if (ctx.msg.text === "inc") {
      ctx.session.n = 5;
      await resetting.promise;
    } else {
      resetting.resolve();
      await incremented.promise;
      ctx.session.n = 0;
    }
  });
  const inc = h.send(message(1, "inc"));
  const reset = h.send(message(1, "reset"));
  await inc;
  assert.deepEqual(storage.read("1"), { n: 5 });
  incremented.resolve();
  await reset;
  assert.deepEqual(h.errors, []);
  assert.equal(storage.has("1"), true, "the reset session was deleted instead of written");
  assert.deepEqual(storage.read("1"), { n: 0 });
});

// ---------------------------------------------------------------------------
// Third review round.

Deno.test("U3: a promise replaced by another update's assignment never holds its update", async (t) => {
  for (const lock of [false, true]) {
    await t.step(lock ? "with lock: the key is free afterwards" : "without lock", async () => {
      const storage = new MemorySessionStorage<N>();
      const h = createHarness<LazyN>();
      h.bot.use(lazySession({ storage, ...(lock ? { lock: { ttl: 300, wait: 300 } } : {}) }));
      const assigned = Promise.withResolvers<void>();
      h.bot.on("message", async (ctx) => {
        if (ctx.msg.text === "a") {
          ctx.session = new Promise<N>(() => {}); // never settles
          assigned.resolve();
        } else {
          await assigned.promise;
          ctx.session = { n: 1 };
        }
      });
      const a = h.send(message(1, "a"));
      const b = h.send(message(1, "b"));
      const settled = await Promise.race([
        Promise.all([a, b]).then(() => true),
        sleep(2_000).then(() => false),
      ]);
      assert.ok(settled, "an update hung on a promise another update replaced");
      assert.deepEqual(h.errors, []);
      assert.deepEqual(storage.read("1"), { n: 1 });
      if (lock) assert.equal(await storage.acquireLease("1", "someone else", 1_000), true);
    });
  }
});

Deno.test("U3: a read after assigning a promise gives the key's last assignment's outcome in any order", async (t) => {
  for (const order of ["pB rejects first", "pA resolves first"]) {
    await t.step(order, async () => {
      const storage = new MemorySessionStorage<N>();
      storage.write("1", { n: 41 });
      const h = createHarness<LazyN>();
      h.bot.use(lazySession({ storage }));
      const pA = Promise.withResolvers<N>();
      const pB = Promise.withResolvers<N>();
      const bAssigned = Promise.withResolvers<void>();
      const aRead = Promise.withResolvers<void>();
      let aSaw = "";
      h.bot.on("message", async (ctx) => {
        if (ctx.msg.text === "a") {
          ctx.session = pA.promise;
          await bAssigned.promise;
          const reading = Promise.resolve(ctx.session);
          aRead.resolve();
          aSaw = await reading.then(() => "value", (e) => (e as Error).message);
        } else {
          ctx.session = pB.promise;
          bAssigned.resolve();
          await aRead.promise;
          try {
            await ctx.session;
          } catch { /* B fails through its own assignment anyway */ }
        }
      });
      const a = h.send(message(1, "a"));
      const b = h.send(message(1, "b"));
      await aRead.promise;
      if (order === "pB rejects first") {
        pB.reject(new Error("pB"));
        await sleep(0);
        pA.resolve({ n: 1 });
      } else {
        pA.resolve({ n: 1 });
        await sleep(0);
        pB.reject(new Error("pB"));
      }
      await Promise.all([a, b]);
      assert.equal(aSaw, "pB", "A's read gives the rejection of the key's last assignment");
      assert.equal(h.errors.length, 1, "only B, whose own last assignment rejected, fails");
      assert.deepEqual(storage.read("1"), { n: 41 }, "nothing written");
    });
  }
});

Deno.test("A1: memory methods replaced while another update of the key runs are called by later updates", async () => {
  const storage = new MemorySessionStorage<N>();
  const h = createHarness<StrictN>();
  h.bot.use(session({ initial, storage }));
  const holding = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  h.bot.on("message", async (ctx) => {
    if (ctx.msg.text === "hold") {
      holding.resolve();
      await release.promise;
    } else {
      ctx.session.n++;
    }
  });
  const held = h.send(message(1, "hold"));
  await holding.promise;
  const calls: string[] = [];
  const write = storage.writeIfVersion.bind(storage);
  storage.writeIfVersion = (
    key,
    value,
    expected,
  ) => (calls.push("writeIfVersion"), write(key, value, expected));
  await h.send(message(1, "inc"));
  release.resolve();
  await held;
  assert.deepEqual(calls, ["writeIfVersion"]);
  assert.deepEqual(h.errors, []);
});

Deno.test("A1: a value whose getter throws fails the same way with and without the direct memory access", async () => {
  class Subclass extends MemorySessionStorage<N> {
    override read(key: string) {
      return super.read(key);
    }
  }
  const outcomes: string[] = [];
  for (const storage of [new MemorySessionStorage<N>(), new Subclass()]) {
    const h = createHarness<StrictN>();
    h.bot.use(session({ initial, storage }));
    h.bot.on("message", (ctx) => {
      Object.defineProperty(ctx.session, "bad", {
        enumerable: true,
        get() {
          throw new Error("getter");
        },
      });
    });
    await h.send(message(1));
    const err = h.errors[0]?.error as Error;
    outcomes.push(`${err?.constructor.name}: ${err?.message.includes("getter")}`);
  }
  assert.equal(outcomes[0], outcomes[1]);
});

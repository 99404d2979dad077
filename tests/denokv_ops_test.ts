/**
 * DenoKvStorage's cost in KV operations, counted on a real file-backed KV
 * through a spy that forwards every call to the real `Deno.Kv`: a read and a
 * write of a session take one read operation and one commit, as raw
 * `kv.get` + `kv.set` do, and remembering heads never lets a write through
 * that another handle's write should have stopped, also when the
 * middleware makes the calls. Also what the public methods do before any
 * KV operation: key checks.
 */
import assert from "node:assert/strict";
import type { Context, MiddlewareFn } from "npm:grammy@^1.46";
import {
  lazySession,
  type LazySessionFlavor,
  session,
  SessionError,
  type SessionFlavor,
} from "../mod.ts";
import { DenoKvStorage, type KvLike } from "../storages/denokv.ts";
import { ABSENT, HeadMemory } from "../storages/denokv/heads.ts";
import { headOf } from "../storages/denokv/records.ts";
import { createHarness, type Harness, message, sleep } from "./helpers/bot.ts";

type Data = { who: string; pad: string };
const KiB = 1024;

/** KV operations seen by a {@link spy}. */
interface Ops {
  get: number;
  getMany: number;
  list: number;
  commit: number;
}

/**
 * Wraps a real KV in a Proxy that forwards every call to it and counts the
 * operations that reach the database (an atomic operation counts once, at
 * its commit).
 */
function spy(kv: Deno.Kv): { kv: KvLike; ops: Ops; reset(): void } {
  const ops: Ops = { get: 0, getMany: 0, list: 0, commit: 0 };
  const forward = (target: object, prop: PropertyKey) => {
    const value = Reflect.get(target, prop, target);
    return typeof value === "function" ? value.bind(target) : value;
  };
  const atomic = (op: Deno.AtomicOperation): Deno.AtomicOperation => {
    const proxy: Deno.AtomicOperation = new Proxy(op, {
      get(target, prop) {
        const fn = forward(target, prop);
        if (typeof fn !== "function") return fn;
        return (...args: unknown[]) => {
          if (prop === "commit") ops.commit++;
          const out = fn(...args);
          return out === target ? proxy : out; // keep chained calls on the spy
        };
      },
    });
    return proxy;
  };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      const fn = forward(target, prop);
      if (prop === "atomic") return () => atomic(fn());
      if (prop === "get" || prop === "getMany" || prop === "list") {
        return (...args: unknown[]) => {
          ops[prop]++;
          return fn(...args);
        };
      }
      return fn;
    },
  });
  return {
    kv: proxy,
    ops,
    reset() {
      Object.assign(ops, { get: 0, getMany: 0, list: 0, commit: 0 });
    },
  };
}

/** Two KV handles on one file (two processes, as far as SQLite can tell). */
async function twoHandles(fn: (a: Deno.Kv, b: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-denokv-ops-" });
  const a = await Deno.openKv(`${dir}/kv.sqlite3`);
  const b = await Deno.openKv(`${dir}/kv.sqlite3`);
  try {
    await fn(a, b);
  } finally {
    a.close();
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function data(who: string, bytes = KiB): Data {
  const empty = JSON.stringify({ who, pad: "" }).length;
  return { who, pad: "p".repeat(bytes - empty) };
}

const OPTIONS = { prefix: ["ops"] };

/** The operations of a read + write that touches no chunks. */
const ONE_GET_ONE_COMMIT = { get: 1, getMany: 0, list: 0, commit: 1 };

/**
 * A 1 KiB session stored under "k" through handle `b`, and a fresh storage
 * on a counting spy of handle `a`: nothing remembered but what it sees.
 */
async function seededSpy(a: Deno.Kv, b: Deno.Kv) {
  await new DenoKvStorage<Data>(b, OPTIONS).write("k", data("setup"));
  const { kv, ops, reset } = spy(a);
  return { storage: new DenoKvStorage<Data>(kv, OPTIONS), ops, reset };
}

Deno.test("DenoKvStorage: read + write of a 1 KiB session is one get and one commit", async () => {
  await twoHandles(async (a, b) => {
    const { storage, ops, reset } = await seededSpy(a, b);
    for (let round = 0; round < 3; round++) {
      reset();
      const value = await storage.read("k");
      assert.equal(JSON.stringify(value).length, KiB);
      await storage.write("k", data(`round ${round}`));
      assert.deepEqual(ops, ONE_GET_ONE_COMMIT, `round ${round}`);
      // It really landed: another handle sees it.
      const other = new DenoKvStorage<Data>(b, OPTIONS);
      assert.deepEqual(await other.read("k"), data(`round ${round}`));
    }
    // A session not stored yet: the read remembers that, the write checks it.
    reset();
    assert.equal(await storage.read("new"), undefined);
    await storage.write("new", data("first"));
    assert.deepEqual(ops, ONE_GET_ONE_COMMIT);
    assert.deepEqual(await new DenoKvStorage<Data>(b, OPTIONS).read("new"), data("first"));
  });
});

Deno.test("DenoKvStorage: readVersioned + writeIfVersion is one get and one commit", async () => {
  await twoHandles(async (a, b) => {
    const { storage, ops, reset } = await seededSpy(a, b);
    for (let round = 0; round < 3; round++) {
      reset();
      const { value, version } = await storage.readVersioned("k");
      assert.ok(value !== undefined && version !== null);
      const next = await storage.writeIfVersion("k", data(`round ${round}`), version);
      assert.deepEqual(ops, ONE_GET_ONE_COMMIT, `round ${round}`);
      assert.ok(next !== null && next !== version);
      assert.equal(headOf((await b.get(["ops", "s", "k"])).value)?.ver, next);
    }
    // Creating a session: version null read, written only if still absent.
    reset();
    const { version } = await storage.readVersioned("new");
    assert.equal(version, null);
    assert.ok(await storage.writeIfVersion("new", data("first"), null) !== null);
    assert.deepEqual(ops, ONE_GET_ONE_COMMIT);
  });
});

Deno.test("DenoKvStorage: a write after another handle's write conflicts or lands as it must", async () => {
  await twoHandles(async (a, b) => {
    const { kv, ops, reset } = spy(a);
    const mine = new DenoKvStorage<Data>(kv, OPTIONS);
    const theirs = new DenoKvStorage<Data>(b, OPTIONS);
    await theirs.write("k", data("theirs 1"));

    // Conditional: the remembered head is out of date, so the check fails;
    // one read of the head tells a write (a new version: conflict) from a
    // renewal (same version: try again), and nothing is written.
    const { version } = await mine.readVersioned("k");
    await theirs.write("k", data("theirs 2"));
    reset();
    assert.equal(await mine.writeIfVersion("k", data("mine"), version), null);
    assert.deepEqual(ops, { get: 1, getMany: 0, list: 0, commit: 1 }, "the check, then the head");
    assert.deepEqual(await theirs.read("k"), data("theirs 2"));
    // A conditional delete with that version is refused the same way.
    assert.equal(await mine.deleteIfVersion("k", version), false);
    assert.deepEqual(await theirs.read("k"), data("theirs 2"));

    // Unconditional, small over a head remembered as small: last write wins
    // in one commit without a check, whatever was written meanwhile.
    await mine.read("k");
    await theirs.write("k", data("theirs 3"));
    reset();
    await mine.write("k", data("mine"));
    assert.deepEqual(ops, { get: 0, getMany: 0, list: 0, commit: 1 });
    assert.deepEqual(await theirs.read("k"), data("mine"));

    // Even when the other handle made the session large (chunked) meanwhile:
    // the small write wins, and readers see it, not a mix.
    await mine.read("k");
    await theirs.write("k", data("theirs, large", 200 * KiB));
    await mine.write("k", data("mine again"));
    assert.deepEqual(await theirs.read("k"), data("mine again"));
    assert.deepEqual(await mine.read("k"), data("mine again"));

    // Unconditional over a head remembered as large: checked, since its
    // chunks must go with it; a failed check sends the write back to KV.
    await mine.write("k", data("mine, large", 200 * KiB));
    await theirs.write("k", data("theirs 4"));
    reset();
    await mine.write("k", data("mine 3"));
    assert.deepEqual(ops, { get: 1, getMany: 0, list: 0, commit: 2 });
    assert.deepEqual(await theirs.read("k"), data("mine 3"));

    // "Nothing stored" remembered, then created elsewhere: no overwrite.
    assert.deepEqual(await mine.readVersioned("n"), { value: undefined, version: null });
    await theirs.write("n", data("theirs"));
    assert.equal(await mine.writeIfVersion("n", data("mine"), null), null);
    assert.deepEqual(await theirs.read("n"), data("theirs"));

    // An unconditional delete never trusts a remembered "nothing stored".
    assert.equal(await mine.read("d"), undefined);
    await theirs.write("d", data("theirs"));
    await mine.delete("d");
    assert.equal(await theirs.read("d"), undefined);
  });
});

Deno.test("DenoKvStorage: an expired session counts as none for writeIfVersion(null) after a remembered absence", async () => {
  await twoHandles(async (a, b) => {
    const mine = new DenoKvStorage<Data>(a, OPTIONS);
    const theirs = new DenoKvStorage<Data>(b, { ...OPTIONS, ttl: 50 });
    assert.equal((await mine.readVersioned("k")).version, null); // remembers: nothing stored
    await theirs.write("k", data("short-lived"));
    await sleep(120); // expired; KV may still hold the entry
    const version = await mine.writeIfVersion("k", data("mine"), null);
    assert.ok(version !== null, "the expired session does not block the write");
    assert.deepEqual(await theirs.readVersioned("k"), { value: data("mine"), version });
  });
});

Deno.test("DenoKvStorage: a write after a chunked read does not read the head again", async () => {
  await twoHandles(async (a, b) => {
    const { kv, ops, reset } = spy(a);
    const storage = new DenoKvStorage<Data>(kv, OPTIONS);
    await storage.write("big", data("v1", 200 * KiB)); // four chunks
    const fresh = new DenoKvStorage<Data>(kv, OPTIONS);
    reset();
    assert.equal((await fresh.read("big"))?.who, "v1");
    await fresh.write("big", data("v2", 200 * KiB));
    // The read: the head and one getMany of the chunks. The write: one commit
    // that also removes the old chunks, and the sweep for crashed writers.
    assert.deepEqual(ops, { get: 1, getMany: 1, list: 1, commit: 1 });
    let chunks = 0;
    for await (const _ of b.list({ prefix: ["ops", "c", "big"] })) chunks++;
    assert.equal(chunks, 4, "only the new generation's chunks remain");
    assert.deepEqual(await new DenoKvStorage<Data>(b, OPTIONS).read("big"), data("v2", 200 * KiB));
  });
});

Deno.test("DenoKvStorage: the head memory is bounded and forgets the least recently seen key", () => {
  const memory = new HeadMemory(3);
  const seen = (v: string) => ({ versionstamp: v, ver: v, exp: null, chunks: undefined });
  memory.remember("a", seen("1"));
  memory.remember("b", seen("2"));
  memory.remember("c", seen("3"));
  memory.remember("a", seen("4")); // "a" is now the most recent
  memory.remember("d", ABSENT);
  assert.equal(memory.size, 3);
  assert.equal(memory.recall("b"), undefined);
  assert.equal(memory.recall("a")?.versionstamp, "4");
  assert.equal(memory.recall("d"), ABSENT);
  memory.forget("a");
  assert.equal(memory.recall("a"), undefined);
  for (let i = 0; i < 100; i++) memory.remember(String(i), seen(String(i)));
  assert.equal(memory.size, 3);
});

type Strict = Context & SessionFlavor<Data>;
type Lazy = Context & LazySessionFlavor<Data>;

/** A bot over `storage` whose /set changes the session of chat 1 and whose /look only reads it. */
const BOTS: [string, (storage: DenoKvStorage<Data>) => Harness<Context>][] = [
  ["session(), conflict detection", (storage) => strictBot(session({ storage }))],
  [
    'session(), onConflict: "overwrite"',
    (storage) => strictBot(session({ storage, onConflict: "overwrite" })),
  ],
  ["lazySession(), conflict detection", (storage) => {
    const h = createHarness<Lazy>();
    h.bot.use(lazySession(storage));
    h.bot.command("look", async (ctx) => void (await ctx.session).who);
    h.bot.command("set", async (ctx) => void ((await ctx.session).who = ctx.match));
    return h as unknown as Harness<Context>;
  }],
];

function strictBot(middleware: MiddlewareFn<Strict>): Harness<Context> {
  const h = createHarness<Strict>();
  h.bot.use(middleware);
  h.bot.command("look", (ctx) => void ctx.session.who);
  h.bot.command("set", (ctx) => void (ctx.session.who = ctx.match));
  return h as unknown as Harness<Context>;
}

Deno.test("DenoKvStorage through the middleware: a change is one get and one commit, a read one get", async () => {
  await twoHandles(async (a, b) => {
    const other = new DenoKvStorage<Data>(b, OPTIONS);
    for (const [label, build] of BOTS) {
      await other.write("1", data("setup")); // the session of chat 1
      const { kv, ops, reset } = spy(a);
      const h = build(new DenoKvStorage<Data>(kv, OPTIONS));
      for (let round = 0; round < 2; round++) {
        reset();
        await h.send(message(1, `/set round ${round}`));
        assert.deepEqual(h.errors.map(String), [], label);
        assert.deepEqual(ops, ONE_GET_ONE_COMMIT, `${label}: a change, round ${round}`);
        reset();
        await h.send(message(1, "/look"));
        assert.deepEqual(ops, { ...ONE_GET_ONE_COMMIT, commit: 0 }, `${label}: a read only`);
      }
      assert.equal((await other.read("1"))?.who, "round 1", `${label}: it landed`);
    }
  });
});

Deno.test("DenoKvStorage: every public method refuses a key too long for KV before any KV operation", async () => {
  await twoHandles(async (a) => {
    const { kv, ops } = spy(a);
    const storage = new DenoKvStorage<Data>(kv, OPTIONS);
    const tooLong = "k".repeat(3000);
    const expected = await storage.write(tooLong, data("x")).catch((err) => err);
    assert.ok(expected instanceof SessionError);
    assert.equal(expected.key, tooLong);
    const calls: [string, () => Promise<unknown>][] = [
      ["read", () => storage.read(tooLong)],
      ["readVersioned", () => storage.readVersioned(tooLong)],
      ["writeIfVersion", () => storage.writeIfVersion(tooLong, data("x"), null)],
      ["delete", () => storage.delete(tooLong)],
      ["deleteIfVersion", () => storage.deleteIfVersion(tooLong, null)],
      ["has", () => storage.has(tooLong)],
      ["acquireLease", () => storage.acquireLease(tooLong, "me", 1000)],
      ["renewLease", () => storage.renewLease(tooLong, "me", 1000)],
      ["releaseLease", () => storage.releaseLease(tooLong, "me")],
    ];
    for (const [name, call] of calls) {
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof SessionError, name);
        assert.equal(err.message, expected.message, name);
        return true;
      });
    }
    assert.deepEqual(ops, { get: 0, getMany: 0, list: 0, commit: 0 }, "nothing reached KV");
  });
});

Deno.test("DenoKvStorage: a version is the one the head holds, and a write's TTL is on the head", async () => {
  await twoHandles(async (a, b) => {
    const storage = new DenoKvStorage<unknown>(a, { ...OPTIONS, ttl: 60_000 });
    const value = { z: 1, a: "ключ 🎉", nested: { list: [1, 2.5, null] } };
    const version = await storage.writeIfVersion("t", value, null);
    const head = await b.get(["ops", "s", "t"]);
    assert.equal(version, headOf(head.value)?.ver);
    assert.ok(Math.abs(headOf(head.value)!.exp! - (Date.now() + 90_000)) < 5_000); // 1.5 TTLs ahead
    assert.deepEqual(await new DenoKvStorage<unknown>(b, OPTIONS).readVersioned("t"), {
      value,
      version,
    });
    await storage.write("t", { plain: true });
    const { version: plain } = await storage.readVersioned("t");
    assert.equal(plain, headOf((await b.get(["ops", "s", "t"])).value)?.ver);
    assert.notEqual(plain, version);
  });
});

Deno.test("DenoKvStorage: deleting a session without chunks takes no listing", async () => {
  await twoHandles(async (a, b) => {
    const { kv, ops, reset } = spy(a);
    const other = new DenoKvStorage<Data>(b, OPTIONS);
    await other.write("small", data("x"));
    await other.write("big", data("x", 200 * KiB));
    const storage = new DenoKvStorage<Data>(kv, OPTIONS);
    reset();
    await storage.delete("small");
    assert.deepEqual(ops, { get: 1, getMany: 0, list: 0, commit: 1 }, "the head, then its delete");
    reset();
    await storage.delete("missing");
    assert.deepEqual(ops, { get: 1, getMany: 0, list: 0, commit: 0 }, "nothing stored");
    // A session that has chunks: its generation goes with it, and the key's
    // generations are looked at for ones a crashed writer left.
    reset();
    await storage.delete("big");
    assert.deepEqual(ops, { get: 1, getMany: 0, list: 1, commit: 1 });
    assert.deepEqual(await Array.fromAsync(b.list({ prefix: ["ops"] })), []);
  });
});

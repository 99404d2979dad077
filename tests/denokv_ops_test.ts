/**
 * DenoKvStorage's cost in KV operations, counted on a real file-backed KV
 * through a spy that forwards every call to the real `Deno.Kv`: a read and a
 * write of a session take one read operation and one commit, as raw
 * `kv.get` + `kv.set` do, and remembering heads never lets a write through
 * that another handle's write should have stopped. Also the internal text
 * access (src/text.ts) of DenoKvStorage.
 */
import assert from "node:assert/strict";
import { SessionError } from "../mod.ts";
import { textAccessOf } from "../src/text.ts";
import { DenoKvStorage, type KvLike } from "../storages/denokv.ts";
import { ABSENT, HeadMemory } from "../storages/denokv/heads.ts";
import { headOf } from "../storages/denokv/records.ts";
import { sleep } from "./helpers/bot.ts";

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
      assert.equal((await b.get(["ops", "s", "k"])).versionstamp, next);
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

    // Conditional: the remembered version is out of date, so nothing is written.
    const { version } = await mine.readVersioned("k");
    await theirs.write("k", data("theirs 2"));
    reset();
    assert.equal(await mine.writeIfVersion("k", data("mine"), version), null);
    assert.deepEqual(ops, { get: 0, getMany: 0, list: 0, commit: 1 }, "the check is the test");
    assert.deepEqual(await theirs.read("k"), data("theirs 2"));
    // A conditional delete with that version is refused the same way.
    assert.equal(await mine.deleteIfVersion("k", version), false);
    assert.deepEqual(await theirs.read("k"), data("theirs 2"));

    // Unconditional: the failed check sends the write back to KV, and it lands.
    await mine.read("k");
    await theirs.write("k", data("theirs 3"));
    reset();
    await mine.write("k", data("mine"));
    assert.deepEqual(ops, { get: 1, getMany: 0, list: 0, commit: 2 });
    assert.deepEqual(await theirs.read("k"), data("mine"));

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
  const seen = (v: string) => ({ versionstamp: v, exp: null, chunks: undefined });
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

Deno.test("DenoKvStorage: text access reads the exact text and writes and deletes conditionally", async () => {
  await twoHandles(async (a, b) => {
    const storage = new DenoKvStorage<unknown>(a, { ...OPTIONS, ttl: 60_000 });
    const access = textAccessOf(storage);
    assert.ok(access !== undefined);
    assert.equal(access.exact, true);
    assert.deepEqual(await access.read("t"), { text: null, version: null });

    const json = JSON.stringify({ z: 1, a: "ключ 🎉", nested: { list: [1, 2.5, null] } });
    assert.equal(await access.write("t", json), undefined, "unconditional: undefined");
    const first = await access.read("t");
    assert.equal(first.text, json);
    assert.equal(first.version, (await b.get(["ops", "s", "t"])).versionstamp);
    assert.deepEqual(await storage.readVersioned("t"), {
      value: JSON.parse(json),
      version: first.version,
    });
    // The TTL applies as for write: the head expires a minute from now.
    const head = headOf((await b.get(["ops", "s", "t"])).value)!;
    assert.ok(Math.abs(head.exp! - (Date.now() + 60_000)) < 5_000);

    // Conditional writes: null when stored, a stale version, or the current one.
    assert.equal(await access.write("t", '{"x":1}', null), null);
    const second = await access.write("t", '{"x":2}', first.version);
    assert.ok(typeof second === "string" && second !== first.version);
    assert.equal(await access.write("t", '{"x":3}', first.version), null);
    assert.deepEqual(await access.read("t"), { text: '{"x":2}', version: second });

    // Another handle's write makes the version stale.
    await new DenoKvStorage<unknown>(b, OPTIONS).write("t", { by: "b" });
    assert.equal(await access.write("t", '{"x":4}', second), null);
    assert.equal(await access.delete("t", second), false);
    const third = await access.read("t");
    assert.equal(third.text, '{"by":"b"}');

    // Conditional delete with the current version, then on an empty key.
    assert.equal(await access.delete("t", third.version), true);
    assert.deepEqual(await access.read("t"), { text: null, version: null });
    assert.equal(await access.delete("t", null), true);
    const created = await access.write("t", '{"new":true}', null);
    assert.ok(typeof created === "string");
    assert.equal(await access.delete("t"), true, "unconditional delete: true");
    assert.equal(await storage.read("t"), undefined);

    // Large texts are chunked and come back exactly.
    const large = JSON.stringify({ blob: "é".repeat(150 * KiB) });
    await access.write("big", large);
    assert.equal((await access.read("big")).text, large);

    // Same key checks and errors as the public methods.
    const tooLong = "k".repeat(3000);
    const publicError = await storage.write(tooLong, {}).catch((err) => err);
    assert.ok(publicError instanceof SessionError);
    for (
      const call of [
        () => access.write(tooLong, "{}"),
        () => access.write(tooLong, "{}", null),
        () => access.read(tooLong),
        () => access.delete(tooLong),
      ]
    ) {
      await assert.rejects(async () => await call(), (err: unknown) => {
        assert.ok(err instanceof SessionError);
        assert.equal(err.message, publicError.message);
        return true;
      });
    }
  });
});

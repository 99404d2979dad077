/**
 * DenoKvStorage on a file-backed KV: sessions of any size under the longest
 * key the storage takes, and the size accounting of its atomic operations
 * against the rule Deno KV applies (a set's key counts twice towards the
 * 819,200-byte mutation limit: as a key and with its value).
 */
import assert from "node:assert/strict";
import { DenoKvStorage } from "../storages/denokv.ts";
import { AtomicPlan, commitInBatches, type Mutation } from "../storages/denokv/batch.ts";
import { keyBytes, KV_LIMITS } from "../storages/denokv/limits.ts";

type Blob = { b: string };
const MiB = 1024 * 1024;
/** The longest session key under the default prefix (see docs/denokv.md). */
const LONGEST = 2002;

async function withFileKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-denokv-sizes-" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
  try {
    await fn(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Raw KV records under `prefix`, counted by kind ("s", "c", "g", "l"). */
async function kinds(kv: Deno.Kv, prefix: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for await (const entry of kv.list({ prefix })) {
    const kind = String(entry.key[prefix.length]);
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

Deno.test("DenoKvStorage: the key limit under the default prefix is 2,002 bytes", async () => {
  await withFileKv(async (kv) => {
    const storage = new DenoKvStorage<Blob>(kv);
    await storage.write("k".repeat(LONGEST), { b: "x" });
    assert.deepEqual(await storage.read("k".repeat(LONGEST)), { b: "x" });
    await assert.rejects(() => storage.write("k".repeat(LONGEST + 1), { b: "x" }), /too long/);
  });
});

Deno.test("DenoKvStorage: large sessions under long keys are written and replaced", async (t) => {
  const cases: [string, number, number][] = [
    ["1 MiB under a 2,002-byte key", LONGEST, MiB],
    ["800 KB under a 400-byte key", 400, 800_000],
    ["700 KB under a 2,002-byte key", LONGEST, 700_000],
    ["8 MiB under a 2,002-byte key", LONGEST, 8 * MiB],
  ];
  for (const [name, keyLength, size] of cases) {
    await t.step(name, async () => {
      await withFileKv(async (kv) => {
        const storage = new DenoKvStorage<Blob>(kv);
        const key = "k".repeat(keyLength);
        await storage.write(key, { b: "z".repeat(size) });
        assert.equal((await storage.read(key))?.b, "z".repeat(size));
        await storage.write(key, { b: "y".repeat(size) });
        assert.equal((await storage.read(key))?.b, "y".repeat(size));
        // Conditional writes go the same way.
        const { version } = await storage.readVersioned(key);
        assert.ok(version);
        assert.ok(await storage.writeIfVersion(key, { b: "w".repeat(size) }, version));
        assert.equal((await storage.read(key))?.b, "w".repeat(size));
        const counts = await kinds(kv, ["sessions"]);
        assert.equal(counts.s, 1);
        assert.equal(counts.g, 1, "one generation: the replaced ones are gone");
        await storage.delete(key);
        assert.deepEqual(await kinds(kv, ["sessions"]), {}, "nothing lingers");
      });
    });
  }
});

Deno.test("AtomicPlan: counts a set's key twice, as Deno KV does", async (t) => {
  await withFileKv(async (kv) => {
    const long = (tag: string, i: number) => ["p", tag, "k".repeat(1500), i];
    // Sets of 60,000-byte values under 1.5 KB keys, filled up to what the
    // plan says fits: KV must take the commit.
    await t.step("a plan that fits commits", async () => {
      const plan = new AtomicPlan().check(long("h", 0), null);
      for (let i = 0; i < 3; i++) plan.add({ type: "delete", key: long("d", i) });
      let i = 0;
      for (;; i++) {
        const m: Mutation = { type: "set", key: long("c", i), value: new Uint8Array(60_000) };
        if (!plan.fits({ count: 1, bytes: 2 * keyBytes(m.key) + 60_000 })) break;
        plan.add(m);
      }
      assert.ok(i >= 12);
      assert.notEqual(await plan.commit(kv), null);
    });
    await t.step(
      "commitInBatches splits sets under long keys so that each commit fits",
      async () => {
        const sets: Mutation[] = [];
        for (let i = 0; i < 40; i++) {
          sets.push({
            type: "set",
            key: long("b", i),
            value: new Uint8Array(KV_LIMITS.maxValueBytes),
          });
        }
        await commitInBatches(kv, sets);
        let n = 0;
        for await (const _ of kv.list({ prefix: ["p", "b"] })) n++;
        assert.equal(n, 40);
      },
    );
  });
});

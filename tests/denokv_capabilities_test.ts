/**
 * DenoKvStorage's optional capabilities (conditional writes and leases),
 * tested with two storages on two KV handles of the same file: two processes.
 */
import assert from "node:assert/strict";
import { isConditionalStorage, isLeaseStorage } from "../mod.ts";
import { DenoKvStorage, type KvLike } from "../storages/denokv.ts";
import { sleep } from "./helpers/bot.ts";

type Data = { who: string; blob?: string };
const MiB = 1024 * 1024;

async function twoProcesses(
  fn: (a: DenoKvStorage<Data>, b: DenoKvStorage<Data>, kv: Deno.Kv) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-denokv-" });
  const kvA = await Deno.openKv(`${dir}/kv.sqlite3`);
  const kvB = await Deno.openKv(`${dir}/kv.sqlite3`);
  try {
    await fn(
      new DenoKvStorage<Data>(kvA, { prefix: ["caps"] }),
      new DenoKvStorage<Data>(kvB, { prefix: ["caps"] }),
      kvA,
    );
  } finally {
    kvA.close();
    kvB.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function chunkCount(kv: KvLike): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: ["caps", "c"] })) n++;
  return n;
}

Deno.test("DenoKvStorage: conditional writes across two processes, inline and chunked", async () => {
  await twoProcesses(async (a, b, kv) => {
    assert.ok(isConditionalStorage(a));
    assert.deepEqual(await a.readVersioned("k"), { value: undefined, version: null });

    const v1 = await a.writeIfVersion("k", { who: "a" }, null);
    assert.ok(v1 !== null);
    assert.equal(await b.writeIfVersion("k", { who: "b" }, null), null, "already stored");
    assert.deepEqual(await b.readVersioned("k"), { value: { who: "a" }, version: v1 });

    const v2 = await b.writeIfVersion("k", { who: "b" }, v1);
    assert.ok(v2 !== null && v2 !== v1);
    assert.equal(await a.writeIfVersion("k", { who: "a2" }, v1), null, "stale version");
    assert.deepEqual(await a.read("k"), { who: "b" });

    // Chunked: the version is the one the manifest holds.
    const large = { who: "a", blob: "x".repeat(2 * MiB) };
    const v3 = await a.writeIfVersion("k", large, v2);
    assert.ok(v3 !== null);
    assert.equal((await kv.get<{ ver: string }>(["caps", "s", "k"])).value?.ver, v3);
    const read = await b.readVersioned("k");
    assert.equal(read.version, v3);
    assert.deepEqual(read.value, large);
    assert.equal(await b.writeIfVersion("k", { who: "b", blob: "y".repeat(MiB) }, v2), null);
    assert.equal(await chunkCount(kv), 33, "the refused write left no chunks");

    // Both processes race with the same version: exactly one wins.
    const results = await Promise.all([
      a.writeIfVersion("k", { who: "a", blob: "a".repeat(3 * MiB) }, v3),
      b.writeIfVersion("k", { who: "b", blob: "b".repeat(MiB) }, v3),
    ]);
    assert.equal(results.filter((r) => r !== null).length, 1, JSON.stringify(results));
    const winner = (await a.read("k"))!;
    assert.equal(winner.who, results[0] !== null ? "a" : "b");
    assert.equal(winner.blob, winner.who.repeat(winner.who === "a" ? 3 * MiB : MiB));
    assert.equal(await chunkCount(kv), winner.who === "a" ? 49 : 17, "only the winner's chunks");

    const current = (await b.readVersioned("k")).version;
    assert.equal(await a.deleteIfVersion("k", v3), false);
    assert.equal(await a.deleteIfVersion("k", null), false, "something is stored");
    assert.equal(await b.deleteIfVersion("k", current), true);
    assert.equal(await a.deleteIfVersion("k", null), true, "nothing stored");
    assert.equal(await a.has("k"), false);
    assert.equal(await chunkCount(kv), 0);
  });
});

Deno.test("DenoKvStorage: leases across two processes", async () => {
  await twoProcesses(async (a, b, kv) => {
    assert.ok(isLeaseStorage(a));
    assert.equal(await a.acquireLease("k", "owner-a", 500), true);
    assert.equal(await b.acquireLease("k", "owner-b", 500), false, "held by a");
    assert.equal(await b.renewLease("k", "owner-b", 500), false);
    assert.equal(await a.acquireLease("k", "owner-a", 500), true, "the holder may take it again");
    assert.equal(await a.renewLease("k", "owner-a", 500), true);
    const record = await kv.get<{ owner: string; exp: number }>(["caps", "l", "k"]);
    assert.equal(record.value?.owner, "owner-a");
    assert.ok(record.value!.exp > Date.now());

    // Leases are not sessions and do not collide with them.
    assert.equal(await a.has("k"), false);
    assert.equal(await a.read("k"), undefined);
    assert.deepEqual(await Array.fromAsync(b.readAllKeys()), []);
    await b.write("k", { who: "b" });
    assert.deepEqual(await Array.fromAsync(a.readAllEntries()), [["k", { who: "b" }]]);
    assert.equal(await b.acquireLease("k", "owner-b", 500), false, "the session does not free it");

    // A releasing non-holder changes nothing.
    await b.releaseLease("k", "owner-b");
    assert.equal(await b.acquireLease("k", "owner-b", 500), false);

    // An expired lease may be taken over; the old holder then has lost it.
    await sleep(600);
    assert.equal(await a.renewLease("k", "owner-a", 500), false, "expired");
    assert.equal(await b.acquireLease("k", "owner-b", 1000), true, "taken over");
    assert.equal(await a.acquireLease("k", "owner-a", 500), false);
    await a.releaseLease("k", "owner-a"); // not the holder: no effect
    assert.equal(await a.acquireLease("k", "owner-a", 500), false);
    await b.releaseLease("k", "owner-b");
    assert.equal((await kv.get(["caps", "l", "k"])).value, null);
    assert.deepEqual(await b.read("k"), { who: "b" }, "releasing leaves the session alone");

    // Many owners in both processes at once: exactly one gets it.
    await a.releaseLease("k", "owner-a");
    const wins = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).acquireLease("race", `o${i}`, 1000)),
    );
    assert.equal(wins.filter(Boolean).length, 1, JSON.stringify(wins));

    await assert.rejects(() => a.acquireLease("k", "x", 0), /lease ttl must be a positive/);
    await a.delete("k");
  });
});

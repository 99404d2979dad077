/**
 * DenoKvStorage's listings over a prefix that holds more than its own
 * sessions: KV entries under a session's head key (another storage whose
 * prefix ends inside this one's namespace, or another program's) are
 * skipped, and a listing always ends. Before the fix, a page full of such
 * entries under one key handed out that key as the cursor, and the next
 * page started there again: `readAllKeys` never ended (found by the
 * adversarial review of #20: a CLI copy into a nested prefix spun at 100%
 * CPU, and the source could no longer be listed).
 */
import assert from "node:assert/strict";
import { copySessions } from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";

/** Resolves to what `promise` gives, or rejects once `ms` have passed. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still running after ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

Deno.test("DenoKvStorage: a listing ends over entries nested under one of its keys", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-kv-listing-" });
  const kv = await Deno.openKv(`${dir}/nested.kv`);
  try {
    const outer = new DenoKvStorage<{ n: number }>(kv, { prefix: ["bot"] });
    for (let i = 0; i < 5; i++) await outer.write(`own${i}`, { n: i });
    // A storage whose prefix lies inside the outer one's heads: its entries
    // all sit under the outer head key "x".
    const inner = new DenoKvStorage<{ n: number }>(kv, { prefix: ["bot", "s", "x"] });
    for (let i = 0; i < 1200; i++) await inner.write(`k${i}`, { n: i });
    // Storages nested with prefix parts that are not strings (they sort after every string).
    for (const part of [7, true, 5n, new Uint8Array([1, 2])]) {
      const odd = new DenoKvStorage<{ n: number }>(kv, { prefix: ["bot", "s", part] });
      await odd.write("k", { n: -1 });
    }
    // Raw foreign entries under another head key, more than a page.
    let op = kv.atomic();
    for (let i = 0; i < 1100; i++) {
      op = op.set(["bot", "s", "own2", "foreign", i], i);
      if (i % 100 === 99) {
        await op.commit();
        op = kv.atomic();
      }
    }
    await op.commit();

    await t.step(
      "readAllKeys, readAllEntries and readAllValues end, with its own sessions",
      async () => {
        const keys = await within(Array.fromAsync(outer.readAllKeys()), 10_000, "readAllKeys");
        assert.deepEqual(keys.sort(), ["own0", "own1", "own2", "own3", "own4"]);
        const entries = await within(Array.fromAsync(outer.readAllEntries()), 10_000, "entries");
        assert.deepEqual(entries.map(([k, v]) => [k, v.n]).sort(), [
          ["own0", 0],
          ["own1", 1],
          ["own2", 2],
          ["own3", 3],
          ["own4", 4],
        ]);
        assert.equal((await Array.fromAsync(outer.readAllValues())).length, 5);
        assert.equal((await Array.fromAsync(inner.readAllKeys())).length, 1200);
      },
    );

    await t.step("copySessions from the outer storage ends", async () => {
      const other = await Deno.openKv(`${dir}/other.kv`);
      try {
        const to = new DenoKvStorage<{ n: number }>(other);
        const report = await within(copySessions(outer, to), 10_000, "the copy");
        assert.deepEqual([report.listed, report.copied, report.failed], [5, 5, 0]);
      } finally {
        other.close();
      }
    });
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

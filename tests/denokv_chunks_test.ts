/**
 * DenoKvStorage on a file-backed KV: chunks of replaced or deleted sessions
 * do not linger, and readers never see a torn session while another process
 * (a second KV handle on the same file) replaces it.
 */
import assert from "node:assert/strict";
import { DenoKvStorage, type KvLike } from "../storages/denokv.ts";

type Blob = { blob: string };
const MiB = 1024 * 1024;

async function withFileKv(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-denokv-" });
  try {
    await fn(`${dir}/kv.sqlite3`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Raw KV keys under `prefix`, grouped by record kind ("s", "c", "g", "l"). */
async function raw(kv: KvLike, prefix: string[]): Promise<Record<string, unknown[][]>> {
  const out: Record<string, unknown[][]> = { s: [], c: [], g: [], l: [] };
  for await (const entry of kv.list({ prefix })) {
    const kind = entry.key[prefix.length] as string;
    (out[kind] ??= []).push([...entry.key]);
  }
  return out;
}

function blob(bytes: number, fill: string): Blob {
  return { blob: fill.repeat(bytes) };
}

Deno.test("DenoKvStorage: chunks of replaced and deleted sessions do not linger", async () => {
  await withFileKv(async (path) => {
    const kv = await Deno.openKv(path);
    try {
      const storage = new DenoKvStorage<Blob>(kv, { prefix: ["linger"] });
      const P = ["linger"];

      // 8 MiB: too large for one atomic operation (chunks first, then the switch).
      await storage.write("k", blob(8 * MiB, "a"));
      let r = await raw(kv, P);
      assert.equal(r.s.length, 1);
      assert.equal(r.g.length, 1);
      assert.equal(r.c.length, Math.ceil((8 * MiB + 11) / 65536));
      const firstGen = r.g[0][3];

      // 200 KiB: fits into one atomic operation with the removal of the old chunks.
      await storage.write("k", blob(200 * 1024, "b"));
      r = await raw(kv, P);
      assert.equal(r.g.length, 1);
      assert.notEqual(r.g[0][3], firstGen);
      assert.equal(r.c.length, 4);
      assert.ok(r.c.every((key) => key[3] === r.g[0][3]), "only chunks of the new generation");
      assert.equal((await storage.read("k"))?.blob, "b".repeat(200 * 1024));

      // Small again: no chunks or markers remain.
      await storage.write("k", { blob: "small" });
      r = await raw(kv, P);
      assert.deepEqual([r.s.length, r.c.length, r.g.length], [1, 0, 0]);

      // Deleting a large session removes everything.
      await storage.write("k", blob(3 * MiB, "c"));
      await storage.delete("k");
      assert.deepEqual(await raw(kv, P), { s: [], c: [], g: [], l: [] });

      // A refused conditional write leaves none of its chunks behind.
      await storage.write("k", blob(2 * MiB, "d"));
      const { version } = await storage.readVersioned("k");
      assert.equal(await storage.writeIfVersion("k", blob(3 * MiB, "e"), "0".repeat(20)), null);
      assert.equal(await storage.writeIfVersion("k", blob(100 * 1024, "e"), null), null);
      r = await raw(kv, P);
      assert.equal(r.c.length, 33);
      assert.equal((await storage.read("k"))?.blob, "d".repeat(2 * MiB));
      const next = await storage.writeIfVersion("k", blob(MiB, "f"), version);
      assert.ok(next !== null);
      assert.equal((await raw(kv, P)).c.length, 17);
      assert.equal(await storage.deleteIfVersion("k", next), true);
      assert.deepEqual(await raw(kv, P), { s: [], c: [], g: [], l: [] });
    } finally {
      kv.close();
    }
  });
});

Deno.test("DenoKvStorage: generations left by a crashed writer are swept once old", async () => {
  await withFileKv(async (path) => {
    const kv = await Deno.openKv(path);
    try {
      const storage = new DenoKvStorage<Blob>(kv, { prefix: ["crash"] });
      // What a writer that died between writing chunks and switching leaves:
      // a marker and chunks, no head pointing at them.
      const stale = "0000000000.deadbeef0";
      const fresh = "zzzzzzzzzz.inflight0";
      for (const [gen, at] of [[stale, Date.now() - 11 * 60_000], [fresh, Date.now()]] as const) {
        await kv.set(["crash", "g", "k", gen], { at, n: 2 });
        await kv.set(["crash", "c", "k", gen, 0], new Uint8Array(10));
        await kv.set(["crash", "c", "k", gen, 1], new Uint8Array(10));
      }
      await storage.write("k", blob(300 * 1024, "a"));
      const r = await raw(kv, ["crash"]);
      const gens = new Set(r.g.map((key) => key[3]));
      assert.ok(!gens.has(stale), "the old orphan is removed");
      assert.ok(gens.has(fresh), "a generation that may still be being written is kept");
      assert.ok(!r.c.some((key) => key[3] === stale));
      await storage.delete("k");
      // The fresh one stays until it is old enough; remove it by hand.
      await kv.delete(["crash", "g", "k", fresh]);
      await kv.delete(["crash", "c", "k", fresh, 0]);
      await kv.delete(["crash", "c", "k", fresh, 1]);
      assert.deepEqual(await raw(kv, ["crash"]), { s: [], c: [], g: [], l: [] });
    } finally {
      kv.close();
    }
  });
});

Deno.test("DenoKvStorage: readers in another process never see a torn session", async () => {
  await withFileKv(async (path) => {
    const writerKv = await Deno.openKv(path);
    const readerKv = await Deno.openKv(path);
    try {
      const writer = new DenoKvStorage<Blob>(writerKv, { prefix: ["torn"] });
      const reader = new DenoKvStorage<Blob>(readerKv, { prefix: ["torn"] });
      // Sizes on every path: several chunks in one atomic operation, chunks
      // written before the switch, and one inline value.
      const versions: [string, number][] = [
        ["a", 3 * MiB],
        ["b", 300 * 1024],
        ["c", 1000],
        ["d", 2 * MiB + 12345],
        ["e", 70_000],
      ];
      const expected = new Map(versions);
      const check = (value: Blob | undefined, where: string) => {
        assert.ok(value !== undefined, `${where}: the session is always there`);
        const fill = value.blob[0];
        assert.equal(value.blob.length, expected.get(fill), `${where}: length of "${fill}"`);
        assert.equal(value.blob, fill.repeat(value.blob.length), `${where}: one version only`);
      };
      await writer.write("k", blob(versions[0][1], versions[0][0]));

      let done = false;
      const writes = (async () => {
        try {
          for (let round = 0; round < 4; round++) {
            for (const [fill, bytes] of versions) await writer.write("k", blob(bytes, fill));
          }
        } finally {
          done = true;
        }
      })();
      const seen = new Set<string>();
      let reads = 0;
      const readLoop = (async () => {
        while (!done && reads < 10_000) {
          const value = await reader.read("k");
          check(value, "read");
          seen.add(value!.blob[0]);
          reads++;
        }
      })();
      const listLoop = (async () => {
        let lists = 0;
        while (!done && lists < 10_000) {
          for await (const [key, value] of reader.readAllEntries()) {
            assert.equal(key, "k");
            check(value, "readAllEntries");
          }
          lists++;
        }
      })();
      await Promise.all([writes, readLoop, listLoop]);
      assert.ok(reads >= 5, `the reader ran alongside the writer (${reads} reads)`);
      assert.ok(seen.size >= 2, `the reader saw several versions (${[...seen].join("")})`);

      // Afterwards only the last version's chunks exist.
      const r = await raw(readerKv, ["torn"]);
      assert.equal(r.c.length, 2);
      assert.equal(r.g.length, 1);
      check(await reader.read("k"), "final");
      await writer.delete("k");
      assert.deepEqual(await raw(readerKv, ["torn"]), { s: [], c: [], g: [], l: [] });
    } finally {
      writerKv.close();
      readerKv.close();
    }
  });
});

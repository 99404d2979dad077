/**
 * DenoKvStorage TTL on a file-backed KV: native expireIn on every record of a
 * session, expiry checked on read even while KV still holds the entry,
 * sliding renewal (expiry 1.5 TTLs ahead, rewritten only once less than one
 * TTL is left) that
 * keeps the session's version, and turning the TTL off or on.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { DenoKvStorage, type KvLike } from "../storages/denokv.ts";
import { headOf, reexpire } from "../storages/denokv/records.ts";
import { sleep } from "./helpers/bot.ts";

type Blob = { blob: string };
const big: Blob = { blob: "z".repeat(200 * 1024) }; // 4 chunks
const small: Blob = { blob: "small" };

async function withFileKv(fn: (kv: Deno.Kv, path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-denokv-" });
  const path = `${dir}/kv.sqlite3`;
  const kv = await Deno.openKv(path);
  try {
    await fn(kv, path);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The native expiry (epoch ms, -1 for none) of every entry, read straight
 * from the SQLite file that backs the KV database.
 */
function expirations(path: string): number[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare("SELECT expiration_ms AS ms FROM kv").all().map((row) => Number(row.ms));
  } finally {
    db.close();
  }
}

/** The expiry a stored head (inline record or manifest) holds. */
async function storedExp(kv: Deno.Kv, key: string[]): Promise<number | null | undefined> {
  return headOf((await kv.get(key)).value)?.exp;
}

/** Rewrites the expiry a stored head holds, as it is: KV's own expiry is not set. */
async function setStoredExp(kv: Deno.Kv, key: string[], exp: number): Promise<void> {
  const { value } = await kv.get(key);
  await kv.set(key, value instanceof Uint8Array ? reexpire(value, exp) : { ...value!, exp });
  assert.equal(await storedExp(kv, key), exp);
}

/** Raw keys (as JSON) that KV still lists under `prefix`. */
async function listed(kv: KvLike, prefix: unknown[]): Promise<string[]> {
  const keys: string[] = [];
  for await (const e of kv.list({ prefix: prefix as string[] })) keys.push(JSON.stringify(e.key));
  return keys;
}

Deno.test("DenoKvStorage: a session past its expiry is never returned, even while KV still has it", async () => {
  await withFileKv(async (kv) => {
    const storage = new DenoKvStorage<Blob>(kv, { prefix: ["ttl"], ttl: 60_000 });
    await storage.write("inline", small);
    await storage.write("chunked", big);
    // Make both heads past their stored expiry without KV expiring them,
    // as happens while KV has not yet collected an expired key.
    assert.ok((await kv.get(["ttl", "s", "inline"])).value instanceof Uint8Array);
    assert.equal(
      typeof (await kv.get<{ gen: unknown }>(["ttl", "s", "chunked"])).value!.gen,
      "string",
    );
    for (const key of ["inline", "chunked"]) {
      await setStoredExp(kv, ["ttl", "s", key], Date.now() - 1);
      assert.notEqual((await kv.get(["ttl", "s", key])).value, null, "KV still has it");
    }
    assert.equal(await storage.has("inline"), false);
    assert.equal(await storage.has("chunked"), false);
    assert.deepEqual(await Array.fromAsync(storage.readAllKeys()), []);
    assert.deepEqual(await Array.fromAsync(storage.readAllValues()), []);
    assert.deepEqual(await Array.fromAsync(storage.readAllEntries()), []);
    assert.deepEqual(await storage.readVersioned("inline"), { value: undefined, version: null });
    assert.equal(await storage.read("chunked"), undefined);
    // Reading an expired session removes it with its chunks.
    assert.deepEqual(await listed(kv, ["ttl"]), []);
    // A conditional write expecting "nothing stored" treats it as gone.
    await storage.write("again", small);
    await setStoredExp(kv, ["ttl", "s", "again"], Date.now() - 1);
    assert.ok(await storage.writeIfVersion("again", { blob: "new" }, null) !== null);
    assert.deepEqual(await storage.read("again"), { blob: "new" });
    await storage.delete("again");
  });
});

Deno.test("DenoKvStorage: every record of a session carries KV's native expiry", async () => {
  await withFileKv(async (kv, path) => {
    const storage = new DenoKvStorage<Blob>(kv, { prefix: ["native"], ttl: 800 });
    await storage.write("inline", small);
    await storage.write("chunked", big);
    const heads = {
      inline: (await storedExp(kv, ["native", "s", "inline"]))!,
      chunked: (await storedExp(kv, ["native", "s", "chunked"]))!,
    };
    // What the SQLite backend really stores: the head, the marker and all
    // four chunks expire (natively) when the stored expiry says, so a chunked
    // session expires as a whole.
    const rows = expirations(path);
    assert.equal(rows.length, 2 + 1 + 4);
    const near = (ms: number) =>
      Math.abs(ms - heads.chunked) <= 50 || Math.abs(ms - heads.inline) <= 50;
    assert.ok(
      rows.every((ms) => ms > 0 && near(ms)),
      `expirations ${rows} vs ${JSON.stringify(heads)}`,
    );
    await sleep(1400); // past the expiry, 1.5 TTLs after the write
    // KV collects expired keys lazily, but the storage never returns them.
    assert.equal(await storage.read("inline"), undefined);
    assert.equal(await storage.has("chunked"), false);
    assert.equal(await storage.read("chunked"), undefined);
    assert.deepEqual(await listed(kv, ["native"]), []);
  });
});

Deno.test("DenoKvStorage: writes expire 1.5 TTLs ahead, reads renew only once less than a TTL is left", async () => {
  await withFileKv(async (kv, path) => {
    const ttl = 1000;
    const storage = new DenoKvStorage<Blob>(kv, { prefix: ["slide"], ttl });
    await storage.write("inline", small);
    await storage.write("chunked", big);
    const head = async (key: string) => {
      const entry = await kv.get(["slide", "s", key]);
      const { exp, ver } = headOf(entry.value)!;
      return { versionstamp: entry.versionstamp, exp: exp!, ver };
    };
    const first = { inline: await head("inline"), chunked: await head("chunked") };

    await sleep(200);
    for (const key of ["inline", "chunked"] as const) {
      const { value, version } = await storage.readVersioned(key);
      assert.ok(value !== undefined);
      assert.equal(version, first[key].ver);
      const now = await head(key);
      assert.equal(now.versionstamp, first[key].versionstamp, `${key}: not rewritten yet`);
    }

    await sleep(450); // 650 ms after the write: 850 of its 1500 ms left, less than a TTL
    for (const key of ["inline", "chunked"] as const) {
      const { version } = await storage.readVersioned(key);
      const now = await head(key);
      assert.notEqual(now.versionstamp, first[key].versionstamp, `${key}: renewed`);
      assert.equal(version, first[key].ver, `${key}: a renewal keeps the version`);
      assert.equal(now.ver, first[key].ver);
      assert.ok(now.exp >= first[key].exp + 600, `${key}: expiry moved`);
    }

    // The native expiry of every record (chunks and marker too) moved along.
    const rows = expirations(path);
    assert.equal(rows.length, 2 + 1 + 4);
    const oldest = Math.max(first.inline.exp, first.chunked.exp);
    assert.ok(rows.every((ms) => ms >= oldest + 400), `expirations ${rows} vs ${oldest}`);

    await sleep(1050); // past the first expiry (1500 ms), within the renewed one
    assert.deepEqual(await storage.read("inline"), small);
    assert.deepEqual(await storage.read("chunked"), big);
    assert.deepEqual((await Array.fromAsync(storage.readAllKeys())).sort(), ["chunked", "inline"]);
    await storage.delete("inline");
    await storage.delete("chunked");
    assert.deepEqual(await listed(kv, ["slide"]), []);
  });
});

/** Two KV handles on one file: two processes, as far as SQLite can tell. */
async function twoHandles(
  fn: (a: Deno.Kv, b: Deno.Kv, path: string) => Promise<void>,
): Promise<void> {
  await withFileKv(async (a, path) => {
    const b = await Deno.openKv(path);
    try {
      await fn(a, b, path);
    } finally {
      b.close();
    }
  });
}

Deno.test("DenoKvStorage: a renewal in another process does not make a conditional write fail", async () => {
  await twoHandles(async (a, b) => {
    const ttl = 1000;
    const mine = new DenoKvStorage<Blob>(a, { prefix: ["renew"], ttl });
    const theirs = new DenoKvStorage<Blob>(b, { prefix: ["renew"], ttl });
    // Inline, chunked in one atomic operation, and chunked beyond one
    // (the chunks are rewritten before the head).
    const values: [string, Blob][] = [
      ["inline", small],
      ["chunked", big],
      ["huge", { blob: "h".repeat(1024 * 1024) }],
    ];
    const versions = new Map<string, string>();
    for (const [key, value] of values) {
      versions.set(key, (await mine.writeIfVersion(key, value, null))!);
    }
    await sleep(ttl * 0.6);
    for (const [key, value] of values) {
      const before = (await a.get(["renew", "s", key])).versionstamp;
      assert.deepEqual(await theirs.read(key), value);
      assert.notEqual((await a.get(["renew", "s", key])).versionstamp, before, `${key}: renewed`);
      const next = await mine.writeIfVersion(key, { blob: `${key} 2` }, versions.get(key)!);
      assert.equal(typeof next, "string", `${key}: the other process only read`);
    }
    for (const [key] of values) assert.deepEqual(await theirs.read(key), { blob: `${key} 2` });
    for (const [key] of values) await mine.delete(key);
    assert.deepEqual(await listed(a, ["renew"]), []);
  });
});

Deno.test("DenoKvStorage: turning the TTL off clears the native expiry of every record read or written", async () => {
  await twoHandles(async (a, b, path) => {
    const ttl = 800;
    const timed = new DenoKvStorage<Blob>(a, { prefix: ["off"], ttl });
    const untimed = new DenoKvStorage<Blob>(b, { prefix: ["off"] });
    await timed.write("inline", small);
    await timed.write("chunked", big);
    await timed.write("written", small);
    const versions = {
      inline: (await timed.readVersioned("inline")).version,
      chunked: (await timed.readVersioned("chunked")).version,
    };
    assert.ok(expirations(path).every((ms) => ms > 0), "all records expire");
    for (const key of ["inline", "chunked"] as const) {
      const { value, version } = await untimed.readVersioned(key);
      assert.ok(value !== undefined);
      assert.equal(version, versions[key], `${key}: clearing the expiry keeps the version`);
      assert.equal(await storedExp(a, ["off", "s", key]), null);
    }
    await untimed.write("written", { blob: "again" });
    // Three heads, and the marker and four chunks of "chunked".
    const rows = expirations(path);
    assert.equal(rows.length, 3 + 1 + 4);
    assert.ok(rows.every((ms) => ms < 0), `no record expires any more: ${rows}`);
    await sleep(ttl * 1.5);
    assert.deepEqual(await untimed.read("inline"), small);
    assert.deepEqual(await timed.read("chunked"), big, "also for a storage with a TTL");
    assert.deepEqual(await untimed.read("written"), { blob: "again" });
    // The versions still hold: nothing but reads happened.
    assert.ok(await timed.writeIfVersion("inline", { blob: "x" }, versions.inline) !== null);
    for (const key of ["inline", "chunked", "written"]) await untimed.delete(key);
    assert.deepEqual(await listed(a, ["off"]), []);
  });
});

/**
 * DenoKvStorage: the storage contract on a file-backed Deno KV, on an
 * in-memory one and on the Kv of npm:@deno/kv, plus construction, key-limit
 * and real-Bot tests.
 */
import assert from "node:assert/strict";
import { openKv } from "npm:@deno/kv@^0.14";
import type { Context } from "npm:grammy@^1.46";
import { lazySession, type LazySessionFlavor, SessionError } from "../mod.ts";
import { DenoKvStorage, type KvLike } from "../storages/denokv.ts";
import { type CreateOptions, storageContract } from "./contract.ts";
import { createHarness, message } from "./helpers/bot.ts";

interface Closable extends KvLike {
  close(): void;
}

/** A contract subject over one KV database that `open` creates lazily. */
function subject(open: () => Promise<Closable>, dir?: () => string | undefined) {
  let kv: Closable | undefined;
  return {
    async create(options?: CreateOptions) {
      kv ??= await open();
      const shared = options?.sharing as DenoKvStorage<unknown> | undefined;
      return new DenoKvStorage<unknown>(kv, {
        prefix: shared?.prefix ?? ["contract", crypto.randomUUID()],
        ttl: options?.ttl,
      });
    },
    async cleanup() {
      kv?.close();
      const path = dir?.();
      if (path !== undefined) await Deno.remove(path, { recursive: true });
    },
    nativeValueLimit: 65536,
    largeValueBytes: 8 * 1024 * 1024,
    ttl: true,
    ttlMs: 1000,
    lifetime: 1.5,
  };
}

let fileDir: string | undefined;
storageContract(
  "DenoKvStorage (file-backed Deno.openKv)",
  subject(async () => {
    fileDir = await Deno.makeTempDir({ prefix: "sessionkit-denokv-" });
    return await Deno.openKv(`${fileDir}/kv.sqlite3`);
  }, () => fileDir),
);

storageContract(
  "DenoKvStorage (Deno.openKv(':memory:'))",
  subject(() => Deno.openKv(":memory:")),
);

let npmDir: string | undefined;
storageContract(
  "DenoKvStorage (file-backed Kv of npm:@deno/kv)",
  subject(async () => {
    npmDir = await Deno.makeTempDir({ prefix: "sessionkit-npmkv-" });
    return await openKv(`${npmDir}/kv.sqlite3`);
  }, () => npmDir),
);

/** Every raw KV key under `prefix`, as JSON, for asserting what is really stored. */
async function rawKeys(kv: KvLike, prefix: readonly string[]): Promise<string[]> {
  const keys: string[] = [];
  for await (const entry of kv.list({ prefix })) keys.push(JSON.stringify(entry.key));
  return keys;
}

Deno.test("DenoKvStorage: construction rejects a bad ttl and prefix", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const ttl of [0, -1, NaN]) {
      assert.throws(() => new DenoKvStorage(kv, { ttl }), /ttl must be a positive number/);
    }
    assert.throws(
      () => new DenoKvStorage(kv, { prefix: "sessions" as unknown as string[] }),
      /prefix must be an array of KV key parts/,
    );
    assert.throws(
      () => new DenoKvStorage(kv, { prefix: ["x".repeat(2040)] }),
      /leaves no room for session keys/,
    );
    const storage = new DenoKvStorage(kv);
    assert.deepEqual(storage.prefix, ["sessions"]);
    assert.equal(storage.ttl, undefined);
    assert.equal(new DenoKvStorage(kv, { ttl: Infinity }).ttl, undefined);
  } finally {
    kv.close();
  }
});

Deno.test("DenoKvStorage: a key too long for KV is refused before anything is written", async () => {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
  try {
    const storage = new DenoKvStorage<{ blob: string }>(kv, { prefix: ["limits"] });
    // The longest key stored for a session is a chunk key:
    // ["limits", "c", key, generation, index]. "limits" takes 8 bytes, "c" 3,
    // the 20-character generation 22 and the index 9: 42 bytes besides the
    // session key, whose part takes its length + 2. So 2004 characters fit.
    const longest = "k".repeat(2004);
    const big = { blob: "x".repeat(200_000) }; // chunked: the longest keys are really written
    await storage.write(longest, big);
    assert.deepEqual(await storage.read(longest), big);
    assert.ok((await rawKeys(kv, ["limits", "c"])).length >= 4);
    await storage.delete(longest);
    assert.deepEqual(await rawKeys(kv, ["limits"]), []);

    const tooLong = "k".repeat(2005);
    for (const value of [{ blob: "small" }, big]) {
      await assert.rejects(
        () => storage.write(tooLong, value),
        (err: unknown) =>
          err instanceof SessionError && err.key === tooLong &&
          /limits a key to 2048 bytes/.test(err.message) && /Nothing was written/.test(err.message),
      );
    }
    // Multi-byte characters count in UTF-8 bytes, not in characters.
    await assert.rejects(() => storage.write("ключ".repeat(300), { blob: "" }), /2048 bytes/);
    await assert.rejects(() => storage.read(tooLong), /2048 bytes/);
    await assert.rejects(() => storage.acquireLease(tooLong, "me", 1000), /2048 bytes/);
    assert.deepEqual(await rawKeys(kv, ["limits"]), []);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DenoKvStorage: a real Bot with lazySession keeps growing sessions in KV", async () => {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
  try {
    type C = Context & LazySessionFlavor<{ notes: string[] }>;
    const storage = new DenoKvStorage<{ notes: string[] }>(kv, { prefix: ["bot"], ttl: 60_000 });
    const { bot, send, errors, replies } = createHarness<C>();
    bot.use(lazySession({ initial: () => ({ notes: [] }), storage }));
    bot.command("count", async (ctx) => {
      await ctx.reply(`${(await ctx.session).notes.length} notes`);
    });
    bot.on("message:text", async (ctx) => {
      (await ctx.session).notes.push(ctx.message.text);
    });

    // 40 notes of 10 KiB: the session grows past 64 KiB and is chunked.
    for (let i = 0; i < 40; i++) await send(message(5, `${i}:`.padEnd(10 * 1024, "n")));
    await send(message(5, "/count"));
    assert.deepEqual(errors, []);
    assert.deepEqual(replies(), ["40 notes"]);
    const stored = await storage.read("5");
    assert.equal(stored?.notes.length, 40);
    assert.ok(stored?.notes.every((note, i) => note.startsWith(`${i}:`)));
    const chunks = await rawKeys(kv, ["bot", "c", "5"]);
    assert.equal(chunks.length, Math.ceil(JSON.stringify(stored).length / 65536));
    assert.deepEqual(await rawKeys(kv, ["bot", "s"]), ['["bot","s","5"]']);
    assert.deepEqual(await Array.fromAsync(storage.readAllKeys()), ["5"]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

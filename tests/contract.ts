/**
 * The storage contract: one behaviour suite that every sessionkit storage
 * must pass. Each storage's test file calls `storageContract` with a subject
 * that creates fresh, separately namespaced instances of that storage.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  lazySession,
  type LazySessionFlavor,
  session,
  type SessionFlavor,
  SessionValueError,
  type StorageAdapter,
} from "../mod.ts";
import { conditionalContract, leaseContract, ttlChangeContract } from "./contract_versions.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";

/** What a contract subject's `create` is asked for. */
export interface CreateOptions {
  /** The storage's time to live, in ms. */
  ttl?: number;
  /**
   * Another instance whose namespace (prefix, table, database) the new one
   * must share, as a second bot process would. A subject that cannot share
   * (memory) returns `sharing` itself when the other options match.
   */
  sharing?: StorageAdapter<unknown>;
}

export interface ContractSubject {
  /**
   * Creates an empty storage. Every call must return an instance in a
   * namespace of its own (a unique prefix, table, ...), so that two
   * instances never see each other's sessions.
   */
  create(options?: CreateOptions): Promise<StorageAdapter<unknown>> | StorageAdapter<unknown>;
  /** Closes what `create` opened and removes what the suite stored. */
  cleanup?(): Promise<void> | void;
  /** The backend's native limit on one stored value in bytes, if any. */
  nativeValueLimit?: number;
  /** A value of this many bytes of JSON must round-trip. Default 1 MiB. */
  largeValueBytes?: number;
  /** Values above this many bytes are refused with a clear error. */
  maxValueBytes?: number;
  /** The storage supports a TTL option. */
  ttl?: boolean;
  /** Time to live used by the TTL steps, in ms. Default 1000. */
  ttlMs?: number;
  /**
   * How long, in TTLs, an unused session may outlive its last read or write:
   * 1 for a storage that renews on every read (the default), 1.5 for one that
   * writes the expiry 1.5 TTLs ahead and renews only once less than a TTL is
   * left. Never less than 1: no session may expire sooner than a TTL after
   * its last use.
   */
  lifetime?: number;
  /**
   * The backend stores JSON normalized (PostgreSQL jsonb): object keys may
   * come back in another order, so only the data is compared, not the text.
   */
  normalizesKeyOrder?: boolean;
  /**
   * The backend cannot hold `\u0000` or unpaired surrogates in strings
   * (PostgreSQL jsonb): such sessions must be refused with a
   * SessionValueError before anything is written.
   */
  refusesNulAndLoneSurrogates?: boolean;
  /**
   * Set to `false` for a storage whose sessions do not outlive it (memory):
   * it cannot be opened again with other options over the same sessions, so
   * the steps about changing the TTL of stored sessions do not apply.
   */
  persistent?: boolean;
}

/** A session whose JSON text is exactly `bytes` bytes long. */
export function sized(bytes: number, fill = "x"): { blob: string } {
  const overhead = JSON.stringify({ blob: "" }).length;
  return { blob: fill.repeat(bytes - overhead) };
}

export async function collect<T>(it: Iterable<T> | AsyncIterable<T> | undefined): Promise<T[]> {
  assert.ok(it !== undefined, "storage must implement the readAll* methods");
  const out: T[] = [];
  for await (const item of it) out.push(item);
  return out;
}

const NUL_AND_LONE_SURROGATES = "NUL and lone surrogates";

const proto = JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":1}}');

/** Values the serialization contract allows; each must round-trip unchanged. */
export const contractValues: [string, unknown][] = [
  ["nested object", { a: { b: { c: [1, { d: "e" }] } }, empty: {}, list: [] }],
  ["array", [1, "two", null, true, [3], { four: 4 }]],
  ["unicode", { text: 'héllo wörld ✓ 🎉 مرحبا 日本語 \n\t"quoted" \\ \\u0000 \u0001' }],
  [NUL_AND_LONE_SURROGATES, { nul: "a\u0000b", lone: "x\ud800y" }],
  ["empty strings", { "": "", s: "" }],
  ["edge numbers", {
    max: Number.MAX_SAFE_INTEGER,
    min: Number.MIN_SAFE_INTEGER,
    big: Number.MAX_VALUE,
    tiny: Number.MIN_VALUE,
    neg: -1.5e-300,
    zero: 0,
    frac: 0.1 + 0.2,
  }],
  ["booleans and null", { t: true, f: false, n: null }],
  ["top-level string", "just a string"],
  ["top-level number", 42],
  ["top-level array", ["a", "b"]],
  ["prototype-named keys", proto],
];

/** Keys with characters that storages must keep as they are. */
export const contractKeys: string[] = [
  "42",
  "-1001234567890",
  "user:1/chat:2",
  "with space",
  "glob*?[ab]",
  "ключ-🔑",
  "",
  "x".repeat(300),
];

/** Registers the contract suite for one storage as a Deno test. */
export function storageContract(name: string, subject: ContractSubject): void {
  Deno.test(`${name}: storage contract`, async (t) => {
    try {
      await runContract(t, subject);
    } finally {
      await subject.cleanup?.();
    }
  });
}

async function runContract(t: Deno.TestContext, subject: ContractSubject): Promise<void> {
  const storage = await subject.create();

  await t.step("reading a missing key gives undefined", async () => {
    assert.equal(await storage.read("missing") ?? undefined, undefined);
    assert.equal(await storage.has?.("missing"), false);
  });

  await t.step("every contract value round-trips", async () => {
    for (const [label, value] of contractValues) {
      if (label === NUL_AND_LONE_SURROGATES && subject.refusesNulAndLoneSurrogates) {
        await storage.write(`value:${label}`, { before: true });
        await assert.rejects(
          async () => await storage.write(`value:${label}`, value),
          SessionValueError,
        );
        assert.deepEqual(await storage.read(`value:${label}`), { before: true });
        continue;
      }
      await storage.write(`value:${label}`, value);
      const back = await storage.read(`value:${label}`);
      assert.deepEqual(back, value, label);
      if (!subject.normalizesKeyOrder) {
        assert.equal(JSON.stringify(back), JSON.stringify(value), label);
      }
    }
    const back = await storage.read("value:prototype-named keys") as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.ok(Object.hasOwn(back, "__proto__"));
    for (const [label] of contractValues) await storage.delete(`value:${label}`);
  });

  await t.step("keys with any characters are kept apart and listed as written", async () => {
    for (const [i, key] of contractKeys.entries()) await storage.write(key, { i });
    for (const [i, key] of contractKeys.entries()) {
      assert.deepEqual(await storage.read(key), { i }, `key ${JSON.stringify(key)}`);
      assert.equal(await storage.has?.(key), true);
    }
    const keys = await collect(storage.readAllKeys?.());
    assert.deepEqual([...keys].sort(), [...contractKeys].sort());
    for (const key of contractKeys) await storage.delete(key);
    assert.deepEqual(await collect(storage.readAllKeys?.()), []);
  });

  await t.step("overwrite replaces and delete removes", async () => {
    await storage.write("k", { v: 1, old: true });
    await storage.write("k", { v: 2 });
    assert.deepEqual(await storage.read("k"), { v: 2 });
    await storage.delete("k");
    assert.equal(await storage.read("k") ?? undefined, undefined);
    assert.equal(await storage.has?.("k"), false);
    await storage.delete("k"); // deleting a missing key is fine
  });

  await t.step("readAllKeys, readAllValues and readAllEntries list everything", async () => {
    const stored = new Map<string, unknown>();
    for (let i = 0; i < 25; i++) stored.set(`list-${i}`, { i, tag: "list" });
    for (const [key, value] of stored) await storage.write(key, value);
    const keys = await collect(storage.readAllKeys?.());
    assert.deepEqual(keys.sort(), [...stored.keys()].sort());
    const values = await collect(storage.readAllValues?.());
    assert.equal(values.length, 25);
    assert.deepEqual(
      values.map((v) => (v as { i: number }).i).sort((a, b) => a - b),
      [...Array(25).keys()],
    );
    const entries = await collect(storage.readAllEntries?.());
    assert.deepEqual(new Map(entries), stored);
    for (const key of stored.keys()) await storage.delete(key);
  });

  await t.step("listings page through many more sessions than one page", async () => {
    // Review finding: a listing once stopped after its second page.
    const count = 1234;
    const keys = Array.from({ length: count }, (_, i) => `many-${String(i).padStart(4, "0")}`);
    for (let i = 0; i < count; i += 100) {
      await Promise.all(keys.slice(i, i + 100).map((key, j) => storage.write(key, { i: i + j })));
    }
    try {
      const listed = await collect(storage.readAllKeys?.());
      assert.equal(listed.length, count);
      assert.deepEqual([...new Set(listed)].sort(), keys);
      const values = await collect(storage.readAllValues?.());
      assert.equal(values.length, count);
      const entries = await collect(storage.readAllEntries?.());
      assert.equal(entries.length, count);
      assert.equal(new Set(entries.map(([key]) => key)).size, count);
      for (const [key, value] of entries) {
        assert.deepEqual(value, { i: Number(key.slice(5)) }, key);
      }
    } finally {
      for (let i = 0; i < count; i += 100) {
        await Promise.all(keys.slice(i, i + 100).map((key) => storage.delete(key)));
      }
    }
    assert.deepEqual(await collect(storage.readAllKeys?.()), []);
  });

  await t.step("two instances never see each other's sessions", async () => {
    const other = await subject.create();
    await storage.write("shared", { owner: "first" });
    await other.write("shared", { owner: "second" });
    assert.deepEqual(await storage.read("shared"), { owner: "first" });
    assert.deepEqual(await other.read("shared"), { owner: "second" });
    assert.deepEqual(await collect(other.readAllKeys?.()), ["shared"]);
    await other.delete("shared");
    assert.deepEqual(await storage.read("shared"), { owner: "first" });
    await storage.delete("shared");
  });

  await t.step("values that JSON cannot hold are refused and nothing is written", async () => {
    await storage.write("bad", { ok: 1 });
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    for (
      const bad of [
        { f: () => 1 },
        { b: 10n },
        { d: new Date(0) },
        { n: NaN },
        { i: Infinity },
        { m: new Map() },
        cycle,
        [undefined],
      ]
    ) {
      await assert.rejects(
        async () => await storage.write("bad", bad),
        SessionValueError,
      );
    }
    assert.deepEqual(await storage.read("bad"), { ok: 1 });
    await storage.delete("bad");
  });

  const limit = subject.nativeValueLimit;
  const sizes = [
    ...(limit === undefined ? [] : [limit - 1024, limit, limit + 1]),
    subject.largeValueBytes ?? 1024 * 1024,
  ];
  await t.step(`values of ${sizes.join(", ")} bytes round-trip`, async () => {
    for (const bytes of sizes) {
      const value = sized(bytes, String.fromCharCode(97 + (bytes % 26)));
      await storage.write("large", value);
      const back = await storage.read("large") as { blob: string };
      assert.equal(back.blob.length, value.blob.length, `${bytes} bytes`);
      assert.equal(back.blob, value.blob, `${bytes} bytes`);
    }
    // Shrinking back below the limit leaves nothing of the large value.
    await storage.write("large", { small: true });
    assert.deepEqual(await storage.read("large"), { small: true });
    await storage.delete("large");
    assert.equal(await storage.read("large") ?? undefined, undefined);
  });

  if (subject.maxValueBytes !== undefined) {
    const max = subject.maxValueBytes;
    await t.step(`values over ${max} bytes are refused before anything is written`, async () => {
      await storage.write("huge", { before: true });
      await assert.rejects(async () => await storage.write("huge", sized(max + 1)), /limit|large/i);
      assert.deepEqual(await storage.read("huge"), { before: true });
      await storage.delete("huge");
    });
  }

  if (subject.ttl) {
    const ttl = subject.ttlMs ?? 1000;
    const most = subject.lifetime ?? 1;
    await t.step("sessions expire after their TTL and reads renew it", async () => {
      const timed = await subject.create({ ttl });
      await timed.write("renewed", { n: 1 });
      await timed.write("idle", { n: 2 });
      await sleep(ttl * 0.6);
      assert.deepEqual(await timed.read("renewed"), { n: 1 });
      await sleep(ttl * (most - 0.4));
      // Just past the longest life after the write: the idle one is gone, the renewed one is not.
      assert.equal(await timed.read("idle") ?? undefined, undefined);
      assert.equal(await timed.has?.("idle"), false);
      assert.deepEqual(await timed.read("renewed"), { n: 1 });
      assert.deepEqual(await collect(timed.readAllKeys?.()), ["renewed"]);
      await sleep(ttl * (most + 0.3));
      assert.equal(await timed.read("renewed") ?? undefined, undefined);
      assert.deepEqual(await collect(timed.readAllKeys?.()), []);
      assert.deepEqual(await collect(timed.readAllValues?.()), []);
      assert.deepEqual(await collect(timed.readAllEntries?.()), []);
    });

    await t.step("a TTL and a lease time that are not whole milliseconds work", async () => {
      // Review finding: Deno KV refused 1.5 x an odd TTL, and fractional lease times.
      const odd = await subject.create({ ttl: ttl + 1.5 });
      await odd.write("odd", { n: 1 });
      assert.deepEqual(await odd.read("odd"), { n: 1 });
      const leasing = odd as unknown as {
        acquireLease(k: string, o: string, t: number): Promise<boolean>;
        releaseLease(k: string, o: string): Promise<void>;
      };
      assert.equal(await leasing.acquireLease("odd", "me", 1500.5), true);
      await leasing.releaseLease("odd", "me");
      await odd.delete("odd");
    });

    await t.step("a session lives at least a TTL after its last read", async () => {
      const timed = await subject.create({ ttl });
      await timed.write("early", { n: 1 });
      await sleep(ttl * 0.3);
      assert.deepEqual(await timed.read("early"), { n: 1 });
      // 1.1 TTLs after the write, 0.8 after the read: it must still be there.
      await sleep(ttl * 0.8);
      assert.deepEqual(
        await timed.read("early"),
        { n: 1 },
        "expired sooner than a TTL after a read",
      );
      await timed.delete("early");
    });
  }

  await conditionalContract(t, subject, storage);
  await leaseContract(t, subject, storage);
  if (subject.ttl && subject.persistent !== false) await ttlChangeContract(t, subject);

  await t.step("100 concurrent updates of one chat through a real Bot lose nothing", async () => {
    type C = Context & SessionFlavor<{ count: number }>;
    const strict = createHarness<C>();
    strict.bot.use(session({ initial: () => ({ count: 0 }), storage, prefix: "strict:" }));
    strict.bot.on("message", async (ctx) => {
      await sleep(Math.random() * 5);
      ctx.session.count++;
    });
    await Promise.all(Array.from({ length: 100 }, () => strict.send(message(7))));
    assert.deepEqual(strict.errors, []);
    assert.deepEqual(await storage.read("strict:7"), { count: 100 });

    type L = Context & LazySessionFlavor<{ count: number }>;
    const lazy = createHarness<L>();
    lazy.bot.use(lazySession({ initial: () => ({ count: 0 }), storage, prefix: "lazy:" }));
    lazy.bot.on("message", async (ctx) => {
      await sleep(Math.random() * 5);
      (await ctx.session).count++;
    });
    await Promise.all(Array.from({ length: 100 }, () => lazy.send(message(7))));
    assert.deepEqual(lazy.errors, []);
    assert.deepEqual(await storage.read("lazy:7"), { count: 100 });
    await storage.delete("strict:7");
    await storage.delete("lazy:7");
  });
}

/**
 * DenoKvStorage's record format: the inline record (a 28-byte header with the
 * expiry and the version, then the UTF-8 bytes of the JSON text, stored as a
 * `Uint8Array`), the version in every head, what is
 * refused as not written by the storage, the size boundary between inline
 * and chunked sessions in UTF-8 bytes, the key sizes computed without
 * encoding, and the cost bookkeeping of an atomic plan.
 */
import assert from "node:assert/strict";
import { openKv } from "npm:@deno/kv@^0.14";
import { SessionError } from "../mod.ts";
import { DenoKvStorage, type KvLike } from "../storages/denokv.ts";
import { AtomicPlan } from "../storages/denokv/batch.ts";
import { keyBytes, keyPartBytes, KV_LIMITS } from "../storages/denokv/limits.ts";
import {
  encodeInline,
  headOf,
  INLINE_HEADER_BYTES,
  inlineOf,
  newVersion,
  parseHead,
  reexpire,
} from "../storages/denokv/records.ts";

const utf8 = new TextEncoder();
const INLINE_BYTES = KV_LIMITS.maxValueBytes - 1024;

/** Texts that take the ASCII path, and texts whose first non-ASCII character sits anywhere. */
const TEXTS = [
  "",
  "{}",
  '{"a":1}',
  JSON.stringify({ a: "é" }),
  JSON.stringify({ word: "ключ", emoji: "🎉", cjk: "鍵", mixed: "a🎉b" }),
  JSON.stringify({ tail: "x".repeat(1000) + "🎉" }),
  JSON.stringify({ head: "🎉" + "x".repeat(1000) }),
  JSON.stringify({ all: "é".repeat(500) }),
  JSON.stringify({ escaped: '\u0000\n\t"\\' }),
];

Deno.test("DenoKvStorage records: an inline record is the header and exactly the UTF-8 of the text", () => {
  assert.equal(INLINE_HEADER_BYTES, 28);
  for (const text of TEXTS) {
    for (const exp of [null, 0, 1_700_000_000_123, Number.MAX_SAFE_INTEGER]) {
      const ver = newVersion();
      const record = encodeInline(text, exp, ver);
      assert.deepEqual(record.subarray(INLINE_HEADER_BYTES), utf8.encode(text), text);
      assert.equal(record.length, INLINE_HEADER_BYTES + utf8.encode(text).length);
      assert.deepEqual([...record.subarray(0, 3)], [0x53, 0x4b, 2], "magic and format");
      const stored = [...record.subarray(12, 28)].map((b) => b.toString(16).padStart(2, "0"));
      assert.equal(stored.join(""), ver, "the version's 16 bytes");
      const head = inlineOf(record);
      assert.ok(head !== undefined);
      assert.equal(head.exp, exp);
      assert.equal(head.ver, ver);
      assert.equal(head.record, record);
      assert.equal(new TextDecoder().decode(head.data), text);
      assert.deepEqual(headOf(record), head);
    }
  }
});

Deno.test("DenoKvStorage records: versions are fresh, and reexpire keeps the version", () => {
  const versions = new Set(Array.from({ length: 1000 }, () => newVersion()));
  assert.equal(versions.size, 1000);
  assert.ok([...versions].every((v) => /^[0-9a-f]{32}$/.test(v)));
  const ver = newVersion();
  const record = encodeInline(JSON.stringify({ a: "ключ" }), null, ver);
  const renewed = reexpire(record, 42);
  assert.notEqual(renewed, record);
  assert.equal(inlineOf(record)!.exp, null, "the original is unchanged");
  assert.equal(inlineOf(renewed)!.exp, 42);
  assert.equal(inlineOf(renewed)!.ver, ver, "a renewal keeps the version");
  assert.deepEqual(inlineOf(renewed)!.data, inlineOf(record)!.data);
  assert.equal(inlineOf(reexpire(renewed, null))!.exp, null);
  // A view into a larger buffer is read and copied at its own offset.
  const padded = new Uint8Array(record.length + 10);
  padded.set(renewed, 5);
  const view = padded.subarray(5, 5 + record.length);
  assert.equal(inlineOf(view)!.exp, 42);
  assert.equal(inlineOf(reexpire(view, 7))!.exp, 7);
});

Deno.test("DenoKvStorage records: values not written by the storage are not heads", () => {
  const good = encodeInline("{}", 5, newVersion());
  const broken = (at: number, byte: number) => {
    const copy = good.slice();
    copy[at] = byte;
    return copy;
  };
  const foreign: unknown[] = [
    new Uint8Array(),
    good.subarray(0, INLINE_HEADER_BYTES - 1),
    broken(0, 0x73),
    broken(1, 0x6b),
    broken(2, 3), // a future format
    broken(3, 2), // unknown flags
    utf8.encode('{"a":1}'),
    { v: 1, exp: null, data: utf8.encode("{}") }, // the earlier inline format
    { v: 2, exp: null, gen: "g", n: 1, bytes: 1 }, // no version
    { v: 2, exp: null, ver: "not hex", gen: "g", n: 1, bytes: 1 },
    { v: 3, exp: null, ver: "0".repeat(32), gen: "g", n: 1, bytes: 1 },
    "text",
    42,
    null,
  ];
  for (const value of foreign) {
    assert.equal(headOf(value), undefined, String(value));
    assert.throws(() => parseHead(value, "k"), SessionError);
  }
  const ver = "0123456789abcdef".repeat(2);
  assert.deepEqual(headOf({ v: 2, exp: null, ver, gen: "g", n: 2, bytes: 3 }), {
    v: 2,
    exp: null,
    ver,
    gen: "g",
    n: 2,
    bytes: 3,
  });
});

Deno.test("DenoKvStorage records: sessions of the development format 1 are refused with what to do", async () => {
  await withKvs(async (kv, name) => {
    const storage = new DenoKvStorage<unknown>(kv, { prefix: ["old"] });
    // As the storage wrote them before versions were kept in the head.
    const inline = new Uint8Array([0x53, 0x4b, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...utf8.encode("{}")]);
    await kv.atomic()
      .set(["old", "s", "inline"], inline)
      .set(["old", "s", "chunked"], { v: 1, exp: null, gen: "g1", n: 1, bytes: 2 })
      .set(["old", "c", "chunked", "g1", 0], utf8.encode("{}"))
      .set(["old", "g", "chunked", "g1"], { at: Date.now(), n: 1 })
      .commit();
    for (const key of ["inline", "chunked"]) {
      await assert.rejects(
        () => storage.read(key),
        (err: unknown) =>
          err instanceof SessionError && /record format 1/.test(err.message) &&
          /storage\.delete\(key\)/.test(err.message),
        `${name}: ${key}`,
      );
      await storage.delete(key); // as the message says
    }
    const left = await Array.fromAsync(kv.list({ prefix: ["old"] }));
    assert.deepEqual(left, [], `${name}: deleting removes the old chunks too`);
  });
});

async function withKvs(fn: (kv: KvLike, name: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-denokv-records-" });
  const deno = await Deno.openKv(`${dir}/deno.sqlite3`);
  const npm = await openKv(`${dir}/npm.sqlite3`);
  try {
    await fn(deno, "Deno.openKv");
    await fn(npm, "npm:@deno/kv");
  } finally {
    deno.close();
    npm.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("DenoKvStorage records: what a session's head holds in KV, and the inline limit in UTF-8 bytes", async () => {
  await withKvs(async (kv, name) => {
    const storage = new DenoKvStorage<{ s: string }>(kv, { prefix: ["rec"], ttl: 60_000 });
    // Inline: the head is a byte array, the bytes of the JSON text behind the header.
    const text = JSON.stringify({ s: "ключ 🎉" });
    await storage.write("small", JSON.parse(text));
    const stored = (await kv.get(["rec", "s", "small"])).value;
    assert.ok(stored instanceof Uint8Array, name);
    assert.deepEqual(stored.subarray(INLINE_HEADER_BYTES), utf8.encode(text));
    assert.ok(Math.abs(inlineOf(stored)!.exp! - (Date.now() + 90_000)) < 5_000); // 1.5 TTLs ahead
    assert.equal(inlineOf(stored)!.ver, (await storage.readVersioned("small")).version);

    // The limit counts UTF-8 bytes, not characters: the largest inline
    // session, and one byte more, which is chunked although it has fewer
    // characters than an ASCII session that stays inline.
    const empty = JSON.stringify({ s: "" }).length;
    const atLimit = { s: "é".repeat((INLINE_BYTES - empty) / 2) };
    const overLimit = { s: "é".repeat((INLINE_BYTES - empty) / 2) + "x" };
    assert.equal(utf8.encode(JSON.stringify(atLimit)).length, INLINE_BYTES);
    await storage.write("at", atLimit);
    await storage.write("over", overLimit);
    assert.ok((await kv.get(["rec", "s", "at"])).value instanceof Uint8Array, name);
    const manifest = (await kv.get(["rec", "s", "over"])).value as {
      gen: string;
      n: number;
      ver: string;
    };
    assert.equal(manifest.n, 1, `${name}: chunked`);
    assert.equal(manifest.ver, (await storage.readVersioned("over")).version);
    assert.deepEqual(await storage.read("at"), atLimit);
    assert.deepEqual(await storage.read("over"), overLimit);
    const chunk = (await kv.get(["rec", "c", "over", manifest.gen, 0])).value;
    assert.deepEqual(chunk, utf8.encode(JSON.stringify(overLimit)), "chunks hold the bare text");

    // A byte array under a head key that the storage did not write.
    await kv.atomic().set(["rec", "s", "foreign"], utf8.encode('{"s":"x"}')).commit();
    await assert.rejects(() => storage.read("foreign"), SessionError);
  });
});

Deno.test("DenoKvStorage records: key sizes are computed as KV encodes keys", () => {
  const reference = (part: string) => {
    const bytes = utf8.encode(part);
    return bytes.length + bytes.filter((b) => b === 0).length + 2;
  };
  const units = [0, 0x41, 0x7f, 0x80, 0x7ff, 0x800, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xe000, 0xffff];
  const parts = ["", "abc", "\0", "a\0b", "é", "ключ", "🎉", "\ud800", "\udc00", "x\udc00\ud800"];
  for (let i = 0; i < 3000; i++) {
    let part = "";
    for (let n = i % 9; n > 0; n--) part += String.fromCharCode(units[(i * 7 + n * 13) % 12]);
    parts.push(part);
  }
  for (const part of parts) {
    assert.equal(keyPartBytes(part), reference(part), JSON.stringify(part));
  }
  assert.equal(keyBytes(["sessions", "s", "ключ", 1]), 10 + 3 + 10 + 9);
});

Deno.test("DenoKvStorage records: an atomic plan sums up its cost when asked, including later additions", () => {
  const key = ["k", "x".repeat(1000)]; // 3 + 1002 bytes
  const plan = new AtomicPlan().check(key, null);
  assert.ok(plan.fits());
  const value = new Uint8Array(62_000);
  for (let i = 0; i < 12; i++) plan.add({ type: "set", key, value });
  assert.ok(plan.fits(), "13 keys and 744,000 bytes of values fit");
  plan.add({ type: "set", key, value });
  assert.ok(!plan.fits(), "another 62,000 bytes exceed the limit");

  // Checks added after the mutations were summed up count too.
  const keys = new AtomicPlan();
  for (let i = 0; i < 70; i++) keys.add({ type: "delete", key });
  assert.ok(keys.fits());
  for (let i = 0; i < 8; i++) keys.check(key, null);
  assert.ok(!keys.fits(), "78 keys of 1,005 bytes exceed the key limit with its headroom");
  assert.ok(!new AtomicPlan().fits({ count: KV_LIMITS.maxMutations + 1 }));
});

/**
 * Every storage checks its options the same way when it is created: a
 * misspelt name, a wrong type or an out-of-range TTL fails with an error
 * that names the fix, instead of silently running on a default (review
 * findings: `new MemorySessionStorage("20")` had no TTL, `{ maxEntires: 1 }`
 * was unbounded, a TTL of 1e20 made every Redis write fail later).
 */
import assert from "node:assert/strict";
import { MemorySessionStorage } from "../mod.ts";
import { DenoKvStorage } from "../storages/denokv.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { RedisStorage } from "../storages/redis.ts";
import { SqliteStorage } from "../storages/sqlite.ts";
import { DatabaseSync } from "node:sqlite";

// Nothing below reaches a server: every check runs before any I/O.
const fakeRedis = { sendCommand: () => Promise.resolve(null) } as never;
const fakePg = { query: () => Promise.resolve({ rows: [], rowCount: 0 }) } as never;
const fakeMysql = {
  query: () => Promise.resolve([[], []]),
  execute: () => Promise.resolve([[], []]),
} as never;
const kv = await Deno.openKv(":memory:");
const sqlite = new DatabaseSync(":memory:");

const makers: [string, (options: unknown) => unknown][] = [
  ["MemorySessionStorage", (o) => new MemorySessionStorage(o as never)],
  ["RedisStorage", (o) => new RedisStorage(fakeRedis, o as never)],
  ["PostgresStorage", (o) => new PostgresStorage(fakePg, o as never)],
  ["MysqlStorage", (o) => new MysqlStorage(fakeMysql, o as never)],
  ["DenoKvStorage", (o) => new DenoKvStorage(kv, o as never)],
  ["SqliteStorage", (o) => new SqliteStorage(sqlite, o as never)],
];

Deno.test("storages: a misspelt option fails at creation, naming the right one", () => {
  for (const [name, make] of makers) {
    assert.throws(
      () => make({ tll: 1000 }),
      (err: Error) =>
        err instanceof TypeError && err.message.startsWith(`${name}: unknown option "tll"`) &&
        err.message.includes('did you mean "ttl"?'),
      name,
    );
  }
  assert.throws(
    () => new MemorySessionStorage({ ttl: 20, maxEntires: 1 } as never),
    /unknown option "maxEntires" \(did you mean "maxEntries"\?\)/,
  );
});

Deno.test("storages: a ttl must be a positive number of milliseconds, up to 100 years", () => {
  for (const [name, make] of makers) {
    for (const ttl of [0, -1, NaN, 1e20]) {
      assert.throws(() => make({ ttl }), RangeError, `${name} ${ttl}`);
    }
    assert.throws(() => make({ ttl: "20" }), TypeError, `${name} "20"`);
    assert.throws(() => make({ ttl: "20" }), /ttl must be a positive number of milliseconds/);
    // Infinity means none, as in grammY's MemorySessionStorage.
    assert.equal((make({ ttl: Infinity }) as { ttl: unknown }).ttl, undefined, name);
    assert.equal((make({ ttl: 1000 }) as { ttl: unknown }).ttl, 1000, name);
  }
});

Deno.test("MemorySessionStorage: the argument is a ttl number or an options object", () => {
  assert.throws(() => new MemorySessionStorage("20" as never), TypeError);
  assert.throws(() => new MemorySessionStorage(null as never), TypeError);
  assert.equal(new MemorySessionStorage(20).ttl, 20);
  assert.equal(new MemorySessionStorage().ttl, undefined);
});

Deno.test("storages: createTable is a boolean, and Deno KV wants an open database", () => {
  // Review findings: createTable: "no" was taken as true; a forgotten await
  // on Deno.openKv() failed only at the first read, with "kv.get is not a function".
  assert.throws(() => new PostgresStorage(fakePg, { createTable: "no" as never }), TypeError);
  assert.throws(() => new MysqlStorage(fakeMysql, { createTable: "no" as never }), TypeError);
  assert.throws(
    () => new DenoKvStorage(Deno.openKv(":memory:") as never),
    /await Deno\.openKv\(\)/,
  );
  assert.throws(() => new DenoKvStorage({} as never), /open Deno KV database/);
  for (const [name, make] of makers) {
    assert.throws(() => make({ ttl: 1e-9 }), RangeError, name);
  }
});

Deno.test("storages: options that are not an object are refused", () => {
  for (const [name, make] of makers) {
    assert.throws(() => make("sessions"), TypeError, name);
    assert.throws(() => make([]), TypeError, name);
  }
  kv.close();
  sqlite.close();
});

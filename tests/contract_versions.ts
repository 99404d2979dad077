/**
 * The parts of the storage contract about versions, leases and changing the
 * TTL of stored sessions: what `tests/contract.ts` runs for every storage
 * once its basic steps pass.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import {
  type ConditionalStorage,
  isConditionalStorage,
  isLeaseStorage,
  type LeaseStorage,
  type StorageAdapter,
} from "../mod.ts";
import { collect, type ContractSubject } from "./contract.ts";
import { sleep } from "./helpers/bot.ts";

type Full = StorageAdapter<unknown> & ConditionalStorage<unknown> & LeaseStorage;

function full(storage: StorageAdapter<unknown>): Full {
  assert.ok(isConditionalStorage(storage), "every sessionkit storage has conditional writes");
  assert.ok(isLeaseStorage(storage), "every sessionkit storage has leases");
  return storage as Full;
}

/** Steps about versions and conditional writes. */
export async function conditionalContract(
  t: Deno.TestContext,
  subject: ContractSubject,
  plain: StorageAdapter<unknown>,
): Promise<void> {
  const storage = full(plain);

  await t.step("a conditional write lands only on the version it expects", async () => {
    assert.deepEqual(await storage.readVersioned("cas"), { value: undefined, version: null });
    const v1 = await storage.writeIfVersion("cas", { n: 1 }, null);
    assert.equal(typeof v1, "string");
    assert.equal(await storage.writeIfVersion("cas", { n: 9 }, null), null);
    const read = await storage.readVersioned("cas");
    assert.deepEqual(read, { value: { n: 1 }, version: v1 });
    const v2 = await storage.writeIfVersion("cas", { n: 2 }, v1);
    assert.equal(typeof v2, "string");
    assert.notEqual(v2, v1);
    assert.equal(await storage.writeIfVersion("cas", { n: 9 }, v1!), null);
    assert.equal(await storage.writeIfVersion("cas", { n: 9 }, "not a version"), null);
    assert.equal(await storage.deleteIfVersion("cas", v1!), false);
    assert.equal(await storage.deleteIfVersion("cas", null), false);
    assert.deepEqual(await storage.read("cas"), { n: 2 });
    // An unconditional write changes the version too.
    await storage.write("cas", { n: 3 });
    assert.equal(await storage.writeIfVersion("cas", { n: 9 }, v2!), null);
    const { version: v3 } = await storage.readVersioned("cas");
    assert.equal(await storage.deleteIfVersion("cas", v3!), true);
    assert.equal(await storage.read("cas") ?? undefined, undefined);
    assert.equal(await storage.deleteIfVersion("cas", null), true);
  });

  await t.step("an expected version of undefined is refused, and nothing changes", async () => {
    await storage.write("undef", { n: 1 });
    try {
      await assert.rejects(
        async () => await storage.writeIfVersion("undef", { n: 2 }, undefined as never),
        TypeError,
      );
      await assert.rejects(
        async () => await storage.deleteIfVersion("undef", undefined as never),
        TypeError,
      );
      assert.deepEqual(await storage.read("undef"), { n: 1 });
    } finally {
      await storage.delete("undef");
    }
  });

  await t.step("a read by another process never makes a conditional write fail", async () => {
    const ttl = subject.ttl ? subject.ttlMs ?? 1000 : undefined;
    const mine = full(await subject.create({ ttl }));
    const theirs = full(await subject.create({ ttl, sharing: mine }));
    const version = await mine.writeIfVersion("seen", { n: 1 }, null);
    assert.equal(typeof version, "string");
    // Late enough in the TTL that a read renews it, early enough that it lives.
    if (ttl !== undefined) await sleep(ttl * 0.6);
    assert.deepEqual(await theirs.read("seen"), { n: 1 });
    assert.deepEqual((await theirs.readVersioned("seen")).value, { n: 1 });
    assert.equal(await theirs.has?.("seen"), true);
    await collect(theirs.readAllEntries?.());
    const next = await mine.writeIfVersion("seen", { n: 2 }, version);
    assert.equal(typeof next, "string", "the other process only read, so the write must land");
    assert.equal(await mine.deleteIfVersion("seen", next), true);
  });

  await t.step(
    "concurrent unconditional writes of one key all succeed, last one wins",
    async () => {
      const others = [
        storage,
        full(await subject.create({ sharing: storage })),
        full(await subject.create({ sharing: storage })),
      ];
      const written = Array.from({ length: 200 }, (_, i) => ({ writer: i, pad: "p".repeat(i) }));
      const results = await Promise.allSettled(
        written.map((value, i) => others[i % 3].write("contended", value)),
      );
      assert.deepEqual(results.filter((r) => r.status === "rejected"), []);
      // jsonb gives object keys back in its own order: compare the data there.
      const same = (a: unknown, b: unknown) =>
        subject.normalizesKeyOrder
          ? isDeepStrictEqual(a, b)
          : JSON.stringify(a) === JSON.stringify(b);
      const stored = await storage.read("contended");
      assert.ok(written.some((w) => same(w, stored)), "a whole write");
      const limit = subject.nativeValueLimit;
      if (limit !== undefined) {
        // Values over the backend's native limit, written side by side.
        const big = Array.from(
          { length: 12 },
          (_, i) => ({ i, blob: String(i).repeat(limit + 5) }),
        );
        const bigResults = await Promise.allSettled(
          big.map((value, i) => others[i % 3].write("contended", value)),
        );
        assert.deepEqual(bigResults.filter((r) => r.status === "rejected"), []);
        const back = await storage.read("contended");
        assert.ok(big.some((w) => same(w, back)), "a whole write");
      }
      await storage.delete("contended");
      assert.equal(await storage.read("contended") ?? undefined, undefined);
    },
  );
}

/** Steps about leases. */
export async function leaseContract(
  t: Deno.TestContext,
  subject: ContractSubject,
  plain: StorageAdapter<unknown>,
): Promise<void> {
  const storage = full(plain);

  await t.step("a lease is held by one owner at a time, across processes", async () => {
    const other = full(await subject.create({ sharing: storage }));
    assert.equal(await storage.acquireLease("held", "a", 5000), true);
    assert.equal(await other.acquireLease("held", "b", 5000), false);
    assert.equal(
      await storage.acquireLease("held", "a", 5000),
      true,
      "its owner may take it again",
    );
    assert.equal(await other.renewLease("held", "b", 5000), false);
    assert.equal(await storage.renewLease("held", "a", 5000), true);
    await other.releaseLease("held", "b"); // not b's: nothing happens
    assert.equal(await other.acquireLease("held", "b", 5000), false);
    await storage.releaseLease("held", "a");
    assert.equal(await other.acquireLease("held", "b", 5000), true);
    assert.equal(await storage.renewLease("held", "a", 5000), false);
    await other.releaseLease("held", "b");
  });

  await t.step("a lease expires after its TTL and never shows up as a session", async () => {
    await storage.write("leased", { n: 1 });
    assert.equal(await storage.acquireLease("leased", "a", 300), true);
    assert.equal(await storage.acquireLease("only-lease", "a", 300), true);
    assert.deepEqual(await collect(storage.readAllKeys?.()), ["leased"]);
    assert.equal(await storage.has?.("only-lease"), false);
    assert.equal(await storage.read("only-lease") ?? undefined, undefined);
    assert.deepEqual(await storage.read("leased"), { n: 1 });
    await sleep(450);
    assert.equal(await storage.renewLease("leased", "a", 300), false, "expired");
    assert.equal(await storage.acquireLease("leased", "b", 300), true);
    await storage.releaseLease("leased", "b");
    await storage.delete("leased");
    await storage.releaseLease("only-lease", "a");
    assert.deepEqual(await collect(storage.readAllKeys?.()), []);
  });

  await t.step("bad lease arguments are refused", async () => {
    await assert.rejects(async () => await storage.acquireLease("bad", "", 1000), TypeError);
    await assert.rejects(async () => await storage.acquireLease("bad", "a", 0), RangeError);
    await assert.rejects(async () => await storage.renewLease("bad", "a", NaN), RangeError);
    // Review findings: a missing ttl made a lease that excluded nobody, and
    // a huge one reached the server as a command it refused.
    for (const ttl of [undefined, 1e300, "5000"]) {
      await assert.rejects(
        async () => await storage.acquireLease("bad", "a", ttl as never),
        RangeError,
        String(ttl),
      );
      await assert.rejects(
        async () => await storage.renewLease("bad", "a", ttl as never),
        RangeError,
        String(ttl),
      );
    }
    assert.equal(await storage.acquireLease("bad", "b", 1000), true, "nothing was taken");
    await storage.releaseLease("bad", "b");
  });
}

/** Steps about sessions stored under one TTL and read under another. */
export async function ttlChangeContract(
  t: Deno.TestContext,
  subject: ContractSubject,
): Promise<void> {
  const ttl = subject.ttlMs ?? 1000;
  const most = subject.lifetime ?? 1;

  await t.step(
    "turning the TTL off stops the expiry of every session read or written",
    async () => {
      const timed = full(await subject.create({ ttl }));
      await timed.write("read-later", { n: 1 });
      await timed.write("written-later", { n: 2 });
      await timed.write("untouched", { n: 3 });
      const { version } = await timed.readVersioned("read-later");
      const untimed = full(await subject.create({ sharing: timed }));
      assert.deepEqual(await untimed.read("read-later"), { n: 1 });
      await untimed.write("written-later", { n: 4 });
      await sleep(ttl * 1.6);
      assert.deepEqual(await untimed.read("read-later"), { n: 1 });
      assert.deepEqual(await untimed.read("written-later"), { n: 4 });
      // Never touched since: it keeps the expiry it was written with.
      assert.equal(await untimed.read("untouched") ?? undefined, undefined);
      // Clearing the expiry was no change of the session.
      assert.equal(typeof await untimed.writeIfVersion("read-later", { n: 5 }, version), "string");
      await untimed.delete("read-later");
      await untimed.delete("written-later");
    },
  );

  await t.step("turning the TTL on makes old sessions expire once read", async () => {
    const untimed = full(await subject.create());
    await untimed.write("old", { n: 1 });
    const timed = full(await subject.create({ ttl, sharing: untimed }));
    assert.deepEqual(await timed.read("old"), { n: 1 });
    await sleep(ttl * (most + 0.6));
    assert.equal(await timed.read("old") ?? undefined, undefined);
  });
}

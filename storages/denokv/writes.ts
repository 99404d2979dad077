/**
 * How `DenoKvStorage` changes a session: switching its head to a new record
 * (with the chunks of a large session), deleting it, and removing the chunk
 * generations nobody needs any more.
 *
 * Every change commits with a check on the head's versionstamp as it was
 * read, but one: an unconditional write of a small session over a head last
 * seen small (no chunks) has no version to compare and nothing to clean up,
 * so it commits unchecked (the check costs SQLite a walk over the old
 * value's pages). When a check fails, the head is read again and the change
 * is decided on what is stored now:
 *
 * - A conditional change compares the session's **version** (kept in the
 *   head, and unchanged by a renewal of its expiry): if it still matches,
 *   only a renewal moved the versionstamp, and the change is tried again.
 * - An unconditional change (last write wins) is tried again too, unless
 *   another write landed after this change read the head (the head has a
 *   version it did not have then). Then this change counts as done just
 *   before that write, which replaced it: it succeeds without a commit, and
 *   chunks it wrote ahead are removed. So an unconditional write or delete
 *   succeeds however many processes write the key at once.
 *
 * @module
 */

import { expiryOfWrite } from "../shared/expiry.ts";
import { SessionError } from "../../src/errors.ts";
import { AtomicPlan, commitInBatches, type Mutation } from "./batch.ts";
import { deleteGeneration, writeGeneration } from "./chunks.ts";
import { ABSENT, type HeadMemory, matches, type SeenHead, seenOf } from "./heads.ts";
import type { KvLike } from "./kv.ts";
import { assertGuard, guardInto, type LeaseGuard } from "./leases.ts";
import { keyBytes, KV_LIMITS } from "./limits.ts";
import {
  type ChunkedHead,
  encodeInline,
  type Head,
  INLINE_HEADER_BYTES,
  type Layout,
  newGeneration,
  newVersion,
  parseMarker,
  storedHead,
} from "./records.ts";

/** What the operations on one storage's records share. */
export interface KvContext {
  /** The database. */
  readonly kv: KvLike;
  /** Where the records live. */
  readonly layout: Layout;
  /** The heads last seen. */
  readonly memory: HeadMemory;
  /** The time to live in ms, `undefined` for none. */
  readonly ttl: number | undefined;
}

/** Sessions up to this many bytes of JSON live in their head record. */
export const INLINE_BYTES: number = KV_LIMITS.maxValueBytes - 1024;
/** Reads of the head one operation makes before it gives up. */
export const ATTEMPTS = 10;
/** A generation without a head pointing to it is removed after this long. */
const ORPHAN_AGE_MS = 10 * 60 * 1000;

/**
 * KV's `expireIn` for an expiry time.
 *
 * @example
 * ```ts
 * import { expireIn } from "./writes.ts";
 *
 * expireIn(null); // undefined
 * ```
 *
 * @param exp Epoch milliseconds, or `null` for none.
 * @returns Milliseconds from now (at least 1), or `undefined`.
 */
export function expireIn(exp: number | null): number | undefined {
  // KV takes whole milliseconds only; rounding up never shortens a life.
  return exp === null ? undefined : Math.max(1, Math.ceil(exp - Date.now()));
}

/**
 * The error of an operation that met changes it could not get past.
 *
 * @example
 * ```ts
 * import { contended } from "./writes.ts";
 *
 * contended("42", "read").message;
 * ```
 *
 * @param key The session key.
 * @param what What was being done.
 * @returns The error.
 */
export function contended(key: string, what: string): SessionError {
  return new SessionError(
    `DenoKvStorage: could not ${what} the session "${key}": its head record kept changing ` +
      `under this operation ${ATTEMPTS} times in a row. Retry; if it persists, check for ` +
      `another program writing under this storage's prefix.`,
    key,
  );
}

/** Remembers the head of `key` that a commit (versionstamp `vs`) of `head` left. */
export function remember(ctx: KvContext, key: string, head: Head, vs: string): void {
  const chunks = "gen" in head ? { gen: head.gen, n: head.n } : undefined;
  ctx.memory.remember(key, { versionstamp: vs, ver: head.ver, exp: head.exp, chunks });
}

/**
 * Whether a write landed after `base` was read: `now` is a stored head of
 * another version, or `base` could not expire and is gone (deleted).
 */
function replaced(base: SeenHead | undefined, now: SeenHead): boolean {
  if (base === undefined) return false;
  if (now.versionstamp !== null) return now.ver !== base.ver;
  return base.versionstamp !== null && base.exp === null;
}

/**
 * Reads the head of `key` for a change: the remembered one first (`hint`),
 * then from KV. Calls `decide` with each; it commits and answers `true` when
 * done, or returns `undefined` to read again.
 */
async function changeHead<R>(
  ctx: KvContext,
  key: string,
  what: string,
  hint: SeenHead | undefined,
  decide: (seen: SeenHead, fresh: boolean, base: SeenHead | undefined) => Promise<R | undefined>,
): Promise<R> {
  const headKey = ctx.layout.head(key);
  let base: SeenHead | undefined;
  for (let attempt = 0; attempt < ATTEMPTS;) {
    let seen = hint;
    hint = undefined;
    const fresh = seen === undefined;
    if (seen === undefined) {
      seen = seenOf(await ctx.kv.get(headKey));
      attempt++;
    }
    const done = await decide(seen, fresh, base);
    if (done !== undefined) return done;
    if (fresh) base = seen;
  }
  throw contended(key, what);
}

/**
 * Points the head of `key` at `head` (with `extra` mutations in the same
 * atomic operation), if the stored version is `expected` (`undefined`: in
 * any case), then removes the generation it pointed at before. Resolves to
 * `"landed"`, `"conflict"` (the version differed) or `"replaced"` (an
 * unconditional write overtaken by another write: nothing committed).
 */
export function switchHead(
  ctx: KvContext,
  key: string,
  head: Head,
  expected: string | null | undefined,
  extra: Mutation[],
  guard?: LeaseGuard,
): Promise<"landed" | "conflict" | "replaced"> {
  const headKey = ctx.layout.head(key);
  return changeHead(ctx, key, "write", ctx.memory.recall(key), async (seen, fresh, base) => {
    // Under a lease, a write is the newest while the lease is held: it is
    // committed, with the lease's check, even if another write came between.
    if (expected === undefined && fresh && replaced(base, seen) && guard === undefined) {
      return "replaced";
    }
    if (expected !== undefined && !matches(seen, expected)) {
      if (!fresh) return undefined; // remembered, maybe out of date: ask KV
      ctx.memory.remember(key, seen);
      await assertGuard(ctx.kv, guard); // "conflict" says the lease is still held
      return "conflict";
    }
    const plan = new AtomicPlan();
    // A last-write-wins write of a small session over one known to be small
    // has nothing to clean up and no version to compare: it needs no check.
    if (expected !== undefined || fresh || seen.chunks !== undefined || extra.length > 0) {
      plan.check(headKey, seen.versionstamp);
    }
    for (const m of extra) plan.add(m);
    guardInto(plan, guard);
    plan.add({ type: "set", key: headKey, value: storedHead(head), expireIn: expireIn(head.exp) });
    const cleanup = cleanupInto(ctx, key, seen, plan);
    const vs = await plan.commit(ctx.kv);
    if (vs === null) {
      ctx.memory.forget(key);
      await assertGuard(ctx.kv, guard);
      return undefined;
    }
    remember(ctx, key, head, vs);
    await commitInBatches(ctx.kv, cleanup);
    const gen = "gen" in head ? head.gen : undefined;
    if (seen.chunks !== undefined || gen !== undefined) await sweepOrphans(ctx, key, gen);
    return "landed";
  });
}

/**
 * Stores the JSON text `json` under `key` if the stored version is
 * `expected` (`undefined`: in any case). Resolves to the new version, or
 * `null` when the version differed. With `guard`, only while that lease is
 * held, giving it up in the same commit (else {@link LeaseLost}).
 */
export async function storeSession(
  ctx: KvContext,
  key: string,
  json: string,
  expected: string | null | undefined,
  guard?: LeaseGuard,
): Promise<string | null> {
  const ver = newVersion();
  const exp = expiryOfWrite(ctx.ttl, Date.now());
  // The text is encoded once, behind the inline header; a session too
  // large for its head is chunked from the same buffer.
  const record = encodeInline(json, exp, ver);
  const bytes = record.subarray(INLINE_HEADER_BYTES);
  const outcome = (result: string) => result === "conflict" ? null : ver;
  if (bytes.length <= INLINE_BYTES) {
    const inline = { exp, ver, data: bytes, record };
    return outcome(await switchHead(ctx, key, inline, expected, [], guard));
  }
  const headKey = ctx.layout.head(key);
  const gen = newGeneration();
  const chunks = writeGeneration(ctx.layout, key, gen, bytes, expireIn(exp));
  const head: ChunkedHead = { v: 2, exp, ver, gen, n: chunks.length - 1, bytes: bytes.length };
  const whole = new AtomicPlan().check(headKey, null);
  for (const m of chunks) whole.add(m);
  guardInto(whole, guard);
  whole.add({ type: "set", key: headKey, value: head });
  if (whole.fits()) return outcome(await switchHead(ctx, key, head, expected, chunks, guard));

  // Too large for one atomic operation: write the generation first, then
  // switch the head to it atomically. A doomed conditional write writes none.
  if (expected !== undefined) {
    const hint = ctx.memory.recall(key);
    if (!(hint !== undefined && matches(hint, expected))) {
      if (!matches(seenOf(await ctx.kv.get(headKey)), expected)) {
        await assertGuard(ctx.kv, guard);
        return null;
      }
    }
  }
  let result = "conflict";
  try {
    await commitInBatches(ctx.kv, chunks);
    result = await switchHead(ctx, key, head, expected, [], guard);
    return outcome(result);
  } finally {
    if (result !== "landed") {
      await commitInBatches(ctx.kv, deleteGeneration(ctx.layout, key, gen, head.n));
    }
  }
}

/**
 * Deletes the session of `key` with its chunks if the stored version is
 * `expected` (`null`: only an expired one; `undefined`: in any case).
 * Resolves to `false` when the version differed. With `guard`, as
 * {@link storeSession}: a delete of nothing commits the lease's release.
 */
export function deleteSession(
  ctx: KvContext,
  key: string,
  expected: string | null | undefined,
  guard?: LeaseGuard,
): Promise<boolean> {
  // A remembered "nothing stored" is never trusted.
  let hint = ctx.memory.recall(key);
  if (hint?.versionstamp === null) hint = undefined;
  return changeHead(ctx, key, "delete", hint, async (seen, fresh, base) => {
    if (expected === undefined && fresh && replaced(base, seen) && guard === undefined) return true;
    if (expected !== undefined && !matches(seen, expected)) {
      if (!fresh) return undefined;
      ctx.memory.remember(key, seen);
      await assertGuard(ctx.kv, guard);
      return false;
    }
    if (seen.versionstamp === null && guard !== undefined) {
      const plan = new AtomicPlan().check(ctx.layout.head(key), null);
      guardInto(plan, guard);
      if (await plan.commit(ctx.kv) === null) return void await assertGuard(ctx.kv, guard);
    }
    if (seen.versionstamp === null) {
      ctx.memory.remember(key, ABSENT);
      return true;
    }
    return await removeHead(ctx, key, seen, guard) ? true : undefined;
  });
}

/**
 * Deletes the head `seen` of `key` if it is still current, with its
 * generation. Resolves to `false` if the head changed meanwhile.
 */
export async function removeHead(
  ctx: KvContext,
  key: string,
  seen: SeenHead,
  guard?: LeaseGuard,
): Promise<boolean> {
  const headKey = ctx.layout.head(key);
  const plan = new AtomicPlan().check(headKey, seen.versionstamp)
    .add({ type: "delete", key: headKey });
  guardInto(plan, guard);
  const cleanup = cleanupInto(ctx, key, seen, plan);
  if (await plan.commit(ctx.kv) === null) {
    ctx.memory.forget(key);
    await assertGuard(ctx.kv, guard);
    return false;
  }
  ctx.memory.remember(key, ABSENT);
  await commitInBatches(ctx.kv, cleanup);
  // Only a key that had chunks is looked at for generations of crashed writers.
  if (seen.chunks !== undefined) await sweepOrphans(ctx, key, undefined);
  return true;
}

/**
 * Adds the removal of the generation `seen` points at to `plan` when it
 * fits; returns the mutations that did not fit, to run after the commit.
 */
function cleanupInto(ctx: KvContext, key: string, seen: SeenHead, plan: AtomicPlan): Mutation[] {
  const old = seen.chunks;
  if (old === undefined) return [];
  const deletes = deleteGeneration(ctx.layout, key, old.gen, old.n);
  const bytes = deletes.reduce((n, m) => n + keyBytes(m.key), 0);
  if (!plan.fits({ count: deletes.length, bytes, keyBytes: bytes })) return deletes;
  for (const m of deletes) plan.add(m);
  return [];
}

/**
 * Removes generations of `key` that no head points to and that are older
 * than any write in progress can be (left behind by a crashed writer).
 */
async function sweepOrphans(ctx: KvContext, key: string, keep: string | undefined): Promise<void> {
  const now = Date.now();
  const doomed: Mutation[] = [];
  for await (const entry of ctx.kv.list({ prefix: ctx.layout.markers(key) })) {
    const gen = entry.key[entry.key.length - 1];
    const marker = parseMarker(entry.value);
    if (typeof gen !== "string" || gen === keep || marker === undefined) continue;
    if (now - marker.at < ORPHAN_AGE_MS) continue;
    doomed.push(...deleteGeneration(ctx.layout, key, gen, marker.n));
  }
  await commitInBatches(ctx.kv, doomed);
}

/**
 * Leases in Deno KV: one record per key holding the owner and the expiry,
 * changed only by atomic operations checked against its versionstamp.
 *
 * @module
 */

import { AtomicPlan } from "./batch.ts";
import type { KvKeyLike, KvLike } from "./kv.ts";
import { parseLease } from "./records.ts";

/**
 * Takes or extends a lease. With `renew`, only the current, unexpired holder
 * succeeds; otherwise anyone succeeds unless another owner holds an
 * unexpired lease.
 *
 * @example
 * ```ts
 * import { putLease } from "./leases.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * console.log(await putLease(kv, ["lease", "42"], "me", 1000, false)); // true
 * kv.close();
 * ```
 *
 * @param kv The database.
 * @param key The lease's KV key.
 * @param owner Who asks.
 * @param ttl Lease time in ms.
 * @param renew Whether only the holder may succeed.
 * @returns Whether `owner` holds the lease now.
 */
export async function putLease(
  kv: KvLike,
  key: KvKeyLike,
  owner: string,
  ttl: number,
  renew: boolean,
): Promise<boolean> {
  const cur = await kv.get(key);
  const lease = parseLease(cur.value);
  const now = Date.now();
  const live = lease !== undefined && lease.exp > now;
  if (renew ? !(live && lease.owner === owner) : live && lease.owner !== owner) return false;
  const plan = new AtomicPlan().check(key, cur.versionstamp)
    .add({ type: "set", key, value: { owner, exp: now + ttl }, expireIn: Math.ceil(ttl) });
  return await plan.commit(kv) !== null;
}

/**
 * Removes a lease if `owner` holds it.
 *
 * @example
 * ```ts
 * import { dropLease } from "./leases.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * await dropLease(kv, ["lease", "42"], "me");
 * kv.close();
 * ```
 *
 * @param kv The database.
 * @param key The lease's KV key.
 * @param owner Who gives it up.
 */
export async function dropLease(kv: KvLike, key: KvKeyLike, owner: string): Promise<void> {
  const cur = await kv.get(key);
  if (parseLease(cur.value)?.owner !== owner) return;
  // If the check fails, someone took over an expired lease: nothing to give up.
  await new AtomicPlan().check(key, cur.versionstamp).add({ type: "delete", key }).commit(kv);
}

/** The lease record a locked save checks, and deletes (unless it keeps it), in its commit. */
export interface LeaseGuard {
  /** The lease's KV key. */
  readonly key: KvKeyLike;
  /**
   * Its versionstamp when the save found it held; moved on when the
   * holder's own renewal changed it (see {@link assertGuard}).
   */
  versionstamp: string;
  /** The holder. */
  readonly owner: string;
  /** Whether the commit gives the lease up (deletes the record). */
  readonly release: boolean;
}

/** A guarded change found the lease changed (taken over, or expired): nothing was committed. */
export class LeaseLost extends Error {}

/**
 * The guard of a locked save: the lease record, if `owner` holds it
 * unexpired now; `undefined` if not.
 *
 * @example
 * ```ts
 * import { leaseGuard, putLease } from "./leases.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * await putLease(kv, ["lease", "42"], "me", 1000, false);
 * console.log((await leaseGuard(kv, ["lease", "42"], "me")) !== undefined); // true
 * kv.close();
 * ```
 *
 * @param kv The database.
 * @param key The lease's KV key.
 * @param owner The holder.
 * @param release Whether the guarded commit gives the lease up.
 * @returns The guard, or `undefined`.
 */
export async function leaseGuard(
  kv: KvLike,
  key: KvKeyLike,
  owner: string,
  release = true,
): Promise<LeaseGuard | undefined> {
  const cur = await kv.get(key);
  const lease = parseLease(cur.value);
  if (lease === undefined || lease.owner !== owner || lease.exp <= Date.now()) return undefined;
  if (cur.versionstamp === null) return undefined;
  return { key, versionstamp: cur.versionstamp, owner, release };
}

/**
 * Adds to `plan` the check that the guarded lease is unchanged, and its
 * release where the guard says so: the change commits only while the lease
 * is held, and gives it up.
 *
 * @example
 * ```ts
 * import { AtomicPlan } from "./batch.ts";
 * import { guardInto } from "./leases.ts";
 *
 * const plan = new AtomicPlan();
 * guardInto(plan, {
 *   key: ["lease", "42"],
 *   versionstamp: "00000000000000010000",
 *   owner: "me",
 *   release: true,
 * });
 * console.log(plan.checks.length); // 1
 * ```
 *
 * @param plan The commit's plan.
 * @param guard The guard, or `undefined` for an unguarded change.
 */
export function guardInto(plan: AtomicPlan, guard: LeaseGuard | undefined): void {
  if (guard === undefined) return;
  plan.check(guard.key, guard.versionstamp);
  if (guard.release) plan.add({ type: "delete", key: guard.key });
}

/**
 * After a guarded commit failed its checks: throws {@link LeaseLost} if the
 * lease is not the holder's any more (taken over, or expired), so the
 * change is not tried again; returns if it still is, so the caller tries
 * the commit again: only the session's head changed, or the holder's own
 * renewal changed the lease record (the guard then moves on to its new
 * versionstamp).
 *
 * @example
 * ```ts
 * import { assertGuard } from "./leases.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * await assertGuard(kv, undefined); // nothing to check
 * kv.close();
 * ```
 *
 * @param kv The database.
 * @param guard The guard, or `undefined`.
 */
export async function assertGuard(kv: KvLike, guard: LeaseGuard | undefined): Promise<void> {
  if (guard === undefined) return;
  const cur = await kv.get(guard.key);
  if (cur.versionstamp === guard.versionstamp) return;
  const lease = parseLease(cur.value);
  if (
    cur.versionstamp === null || lease === undefined || lease.owner !== guard.owner ||
    lease.exp <= Date.now()
  ) {
    throw new LeaseLost();
  }
  guard.versionstamp = cur.versionstamp;
}

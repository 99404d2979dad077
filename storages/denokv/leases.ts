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

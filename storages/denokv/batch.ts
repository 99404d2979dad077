/**
 * Atomic operations sized to Deno KV's limits: a plan that tells whether a
 * set of checks and mutations fits into one atomic commit, and a writer that
 * splits mutations that need no atomicity into as few commits as possible.
 *
 * @module
 */

import type { KvAtomicLike, KvKeyLike, KvLike } from "./kv.ts";
import { keyBytes, KV_LIMITS } from "./limits.ts";

/** One mutation of an atomic operation. */
export type Mutation =
  | { type: "set"; key: KvKeyLike; value: unknown; expireIn?: number }
  | { type: "delete"; key: KvKeyLike };

// Headroom for a small serialized object (manifest, marker) with its tags.
const OBJECT_OVERHEAD = 256;
const SAFETY = 4096;

/**
 * The bytes a value takes towards the atomic size limit (an upper bound).
 *
 * @example
 * ```ts
 * import { valueBytes } from "./batch.ts";
 *
 * valueBytes(new Uint8Array(10)); // 10
 * ```
 *
 * @param value A value to store.
 * @returns Its size in bytes, at most.
 */
export function valueBytes(value: unknown): number {
  // Byte arrays (inline records, chunks) are stored as they are; the other
  // values written are small objects (manifests, markers).
  return value instanceof Uint8Array ? value.length : OBJECT_OVERHEAD;
}

/**
 * What one mutation adds to an atomic operation's total mutation size, the
 * way Deno KV counts it: a delete its key; a set its key twice (once as a
 * key, once more with its value) plus its value. A check adds its key.
 *
 * @example
 * ```ts
 * import { mutationBytes } from "./batch.ts";
 *
 * mutationBytes({ type: "set", key: ["a"], value: new Uint8Array(10) }); // 16
 * ```
 *
 * @param mutation A mutation.
 * @returns Its share of the mutation size limit, at most.
 */
export function mutationBytes(mutation: Mutation): number {
  const k = keyBytes(mutation.key);
  return mutation.type === "set" ? 2 * k + valueBytes(mutation.value) : k;
}

/**
 * Checks and mutations planned for one atomic commit, with their cost.
 *
 * @example
 * ```ts
 * import { AtomicPlan } from "./batch.ts";
 *
 * const plan = new AtomicPlan();
 * plan.add({ type: "delete", key: ["a"] });
 * console.log(plan.fits()); // true
 * ```
 */
export class AtomicPlan {
  /** The planned checks. */
  readonly checks: { key: KvKeyLike; versionstamp: string | null }[] = [];
  /** The planned mutations. */
  readonly mutations: Mutation[] = [];
  // The cost is summed up when `fits` first asks for it (most plans, a
  // check and one set, never ask), then kept up to date.
  #sizedChecks = 0;
  #sizedMutations = 0;
  #bytes = 0;
  #keyBytes = 0;

  /**
   * Adds a check.
   *
   * @param key The key to check.
   * @param versionstamp Its expected versionstamp (`null`: absent).
   * @returns This plan.
   */
  check(key: KvKeyLike, versionstamp: string | null): this {
    this.checks.push({ key, versionstamp });
    return this;
  }

  /**
   * Adds a mutation.
   *
   * @param mutation The mutation.
   * @returns This plan.
   */
  add(mutation: Mutation): this {
    this.mutations.push(mutation);
    return this;
  }

  /**
   * Tells whether the plan, plus `extra` mutations of the given cost, fits
   * into one atomic commit.
   *
   * @param extra Further mutations: their count, bytes (as
   *   {@link mutationBytes} counts them) and key bytes.
   * @returns Whether it fits.
   */
  fits(extra: { count?: number; bytes?: number; keyBytes?: number } = {}): boolean {
    this.#size();
    return this.checks.length <= Math.min(10, KV_LIMITS.maxChecks) &&
      this.mutations.length + (extra.count ?? 0) <= KV_LIMITS.maxMutations &&
      this.#bytes + (extra.bytes ?? 0) <= KV_LIMITS.maxMutationBytes - SAFETY &&
      this.#keyBytes + (extra.keyBytes ?? 0) <= KV_LIMITS.maxTotalKeyBytes - SAFETY;
  }

  /** Adds the cost of the checks and mutations planned since the last call. */
  #size(): void {
    for (; this.#sizedChecks < this.checks.length; this.#sizedChecks++) {
      const k = keyBytes(this.checks[this.#sizedChecks].key);
      this.#bytes += k;
      this.#keyBytes += k;
    }
    for (; this.#sizedMutations < this.mutations.length; this.#sizedMutations++) {
      const m = this.mutations[this.#sizedMutations];
      this.#bytes += mutationBytes(m);
      this.#keyBytes += keyBytes(m.key);
    }
  }

  /**
   * Builds the atomic operation.
   *
   * @param kv The database.
   * @returns The operation, ready to commit.
   */
  build(kv: KvLike): KvAtomicLike {
    let op = kv.atomic();
    if (this.checks.length > 0) op = op.check(...this.checks);
    for (const m of this.mutations) {
      op = m.type === "delete"
        ? op.delete(m.key)
        : op.set(m.key, m.value, m.expireIn === undefined ? undefined : { expireIn: m.expireIn });
    }
    return op;
  }

  /**
   * Commits the plan.
   *
   * @param kv The database.
   * @returns The versionstamp when committed, `null` when a check failed.
   */
  async commit(kv: KvLike): Promise<string | null> {
    const res = await retryBusy(() => this.build(kv).commit());
    return res.ok ? res.versionstamp ?? "" : null;
  }
}

/** Attempts at a commit that finds the SQLite file locked by another process. */
const BUSY_ATTEMPTS = 20;

/**
 * Runs `fn`, retrying with short random pauses while a local, file-backed
 * KV reports "database is locked": SQLite lets one process write at a time,
 * and Deno KV's SQLite backend reports a concurrent writer in another
 * process (or another handle on the same file) as this error instead of
 * waiting. Any other error, and the last locked one, is thrown.
 *
 * @example
 * ```ts
 * import { retryBusy } from "./batch.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * await retryBusy(() => kv.atomic().set(["a"], 1).commit());
 * kv.close();
 * ```
 *
 * @param fn The operation.
 * @returns What `fn` resolves to.
 */
export async function retryBusy<R>(fn: () => Promise<R>): Promise<R> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= BUSY_ATTEMPTS || !/database is locked/i.test(String(err))) throw err;
      await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 10 * attempt));
    }
  }
}

/**
 * Applies mutations that need no atomicity together in as few commits as
 * KV's limits allow, one after another.
 *
 * @example
 * ```ts
 * import { commitInBatches } from "./batch.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * await commitInBatches(kv, [{ type: "set", key: ["a"], value: 1 }]);
 * kv.close();
 * ```
 *
 * @param kv The database.
 * @param mutations The mutations, applied in order.
 */
export async function commitInBatches(kv: KvLike, mutations: Mutation[]): Promise<void> {
  let plan = new AtomicPlan();
  for (const m of mutations) {
    const single = new AtomicPlan().add(m);
    const cost = {
      count: 1,
      bytes: mutationBytes(m),
      keyBytes: keyBytes(m.key),
    };
    if (plan.mutations.length > 0 && !plan.fits(cost)) {
      await plan.commit(kv);
      plan = single;
    } else {
      plan.add(m);
    }
  }
  if (plan.mutations.length > 0) await plan.commit(kv);
}

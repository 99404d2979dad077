/**
 * What a read of `DenoKvStorage` does to a session's expiry: with a TTL it
 * renews it once less than one TTL of its 1.5 is left (or when the session
 * has no expiry yet); without one it clears an expiry left from an earlier
 * configuration. Either way the head is rewritten with the same version, so
 * a renewal never makes anyone's conditional write fail.
 *
 * @module
 */

import { expiryOfRead } from "../shared/expiry.ts";
import { AtomicPlan, commitInBatches, type Mutation } from "./batch.ts";
import { deleteGeneration, writeGeneration } from "./chunks.ts";
import { type SeenHead, seenOf } from "./heads.ts";
import { type ChunkedHead, type Head, reexpire } from "./records.ts";
import { ATTEMPTS, expireIn, type KvContext, remember } from "./writes.ts";

/**
 * The expiry a read should give a head that has `exp`: `undefined` when it
 * keeps the one it has (the rule of storages/shared/expiry.ts).
 *
 * @example
 * ```ts
 * import { wantedExpiry } from "./expiry.ts";
 *
 * wantedExpiry(undefined, 5); // null: clear it
 * ```
 *
 * @param ttl The storage's time to live, if any.
 * @param exp The head's expiry, epoch ms or `null`.
 * @returns The new expiry (`null`: none), or `undefined` for no change.
 */
export function wantedExpiry(
  ttl: number | undefined,
  exp: number | null,
): number | null | undefined {
  return expiryOfRead(ttl, exp, Date.now());
}

/**
 * Renews or clears the expiry of the head `seen` of `key` (read apart as
 * `head`, whose JSON bytes are `bytes`) as the storage's TTL asks. Chunks
 * are rewritten with the same bytes (readers are unaffected) before the
 * head, or with it in one atomic operation when that fits. Gives up quietly
 * when another writer changed the head meanwhile: the read stays valid.
 *
 * @param ctx The storage's records.
 * @param key The session key.
 * @param seen The head as read.
 * @param head The head, read apart.
 * @param bytes The session's JSON bytes.
 */
export async function keepExpiry(
  ctx: KvContext,
  key: string,
  seen: SeenHead,
  head: Head,
  bytes: Uint8Array,
): Promise<void> {
  const exp = wantedExpiry(ctx.ttl, head.exp);
  if (exp === undefined) return;
  const headKey = ctx.layout.head(key);
  const plan = new AtomicPlan().check(headKey, seen.versionstamp);
  if ("data" in head) {
    const record = reexpire(head.record, exp);
    plan.add({ type: "set", key: headKey, value: record, expireIn: expireIn(exp) });
    noted(ctx, key, { ...head, exp, record }, await plan.commit(ctx.kv));
    return;
  }
  const renewed = { ...head, exp };
  const chunks = writeGeneration(ctx.layout, key, head.gen, bytes, expireIn(exp));
  const set: Mutation = { type: "set", key: headKey, value: renewed, expireIn: expireIn(exp) };
  for (const m of chunks) plan.add(m);
  plan.add(set);
  if (plan.fits()) {
    noted(ctx, key, renewed, await plan.commit(ctx.kv));
    return;
  }
  await commitInBatches(ctx.kv, chunks);
  const check = new AtomicPlan().check(headKey, seen.versionstamp).add(set);
  if (noted(ctx, key, renewed, await check.commit(ctx.kv))) return;
  await resync(ctx, key, head, bytes, exp);
}

/**
 * After chunks were rewritten with expiry `written` but the head changed:
 * if the head left the generation, the rewritten chunks must not stay; if
 * it still names it (another process renewed or cleared the expiry), the
 * chunks must not expire before the head does.
 */
async function resync(
  ctx: KvContext,
  key: string,
  head: ChunkedHead,
  bytes: Uint8Array,
  written: number | null,
): Promise<void> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const now = seenOf(await ctx.kv.get(ctx.layout.head(key)));
    if (now.chunks?.gen !== head.gen) {
      await commitInBatches(ctx.kv, deleteGeneration(ctx.layout, key, head.gen, head.n));
      return;
    }
    if (now.exp === written) return;
    written = now.exp;
    await commitInBatches(
      ctx.kv,
      writeGeneration(ctx.layout, key, head.gen, bytes, expireIn(written)),
    );
  }
}

/** Remembers a committed renewal, or forgets the key when it failed; whether it committed. */
function noted(ctx: KvContext, key: string, head: Head, vs: string | null): boolean {
  if (vs === null) ctx.memory.forget(key);
  else remember(ctx, key, head, vs);
  return vs !== null;
}

/**
 * Writes without an answer (rule C1): a write or delete whose reply was lost
 * may have landed, so the slot records what it sent and the next save reads
 * the version before it goes on; what it reads tells whether the write
 * landed, whether storage still holds what it expected, or whether another
 * process wrote since (a conflict, merged from the right base).
 *
 * @module
 */

import { type Known, NONE, type Slot, UNKNOWN } from "./slot.ts";
import { saveError, SessionKeyError, SessionLockError, SessionValueError } from "./errors.ts";
import { matches, valueOf } from "./known.ts";
import { carryOver } from "./merge.ts";
import type { VersionedValue } from "./capabilities.ts";

/**
 * A write or delete of a slot that failed without an answer (rule C1).
 * `mine` is what it sent (`NONE` for a delete), `prior` the version it
 * expected (`null` for "nothing stored" and for a blind write, rule C5:
 * no version tells that these did not land); `blind` says that it was
 * unconditional, so it may land whatever storage holds. `initial` is the
 * slot's `initial` when it was sent: if it landed, the key is not new any
 * more (U4), unless an update was given a new initial value since (K1).
 * For a merge's write, `merge.mine` is what the merged save started from
 * and `merge.base` the base that merge used: if it landed, the merge is
 * carried over to the live value as a landed merge is (C2); if not, the
 * next save merges again from that base.
 */
export interface LostWrite {
  mine: unknown;
  prior: string | null;
  blind: boolean;
  initial: Known;
  merge: { mine: unknown; base: Known } | undefined;
}

/**
 * A write of `mine` over version `expected` failed without an answer, so it
 * may have landed: until a read tells, the slot's version is unknown (see
 * `Slot.uncertain`). A blind write (`expected` unknown, rule C5) counts with
 * conflict detection on: the next save learns what storage holds instead of
 * writing blindly again over what another process may have written since.
 * Earlier writes without an answer that may still land stay recorded with
 * it: those that expected the same version (the first of them to land
 * fails the others) and blind ones. Rethrows `err`.
 */
export function uncertain<S>(
  slot: Slot<S>,
  mine: unknown,
  expected: string | null | typeof UNKNOWN,
  initial: unknown,
  err: unknown,
  merge?: { mine: unknown; base: Known },
): never {
  // A bad value or key is refused before anything is sent.
  // So is a save whose lease was lost.
  const unsent = err instanceof SessionValueError || err instanceof SessionKeyError ||
    err instanceof SessionLockError;
  if (unsent || (expected === UNKNOWN && slot.source.conditional === undefined)) throw err;
  const blind = expected === UNKNOWN;
  const prior = blind ? null : expected;
  const pending = (slot.uncertain ?? []).filter((w) => w.blind || w.prior === prior);
  pending.push({ mine, prior, blind, initial, merge });
  slot.uncertain = pending;
  slot.version = UNKNOWN;
  throw err;
}

/**
 * The newest of the slot's writes without an answer that sent `stored`,
 * what storage holds now: that one landed (or, after a lost delete,
 * nothing is stored).
 */
export function ownLanding<S>(slot: Slot<S>, stored: unknown): LostWrite | undefined {
  return slot.uncertain?.findLast((w) => matches(stored, w.mine));
}

/**
 * What the live value was made from, once `landed` is known to have
 * landed: for a merge's write, what the merged save started from; else
 * what it sent (C1).
 */
export function landedBase(landed: LostWrite): Known {
  return landed.merge?.mine ?? landed.mine;
}

/**
 * Takes `landed`, one of the slot's writes without an answer, as having
 * landed with `version`: what it sent is what storage holds, and no other
 * of them can land any more (C1; a blind one still could, whenever: see
 * docs/semantics.md).
 */
export function takeLanded<S>(slot: Slot<S>, landed: LostWrite, version: string | null): void {
  slot.uncertain = undefined;
  slot.stored = landed.mine;
  slot.version = version;
  if (landed.mine !== NONE && slot.initial === landed.initial) slot.initial = UNKNOWN;
}

/**
 * Whether the live value was made since a delete of this slot that failed
 * without an answer: from nothing, whether that delete landed or not (C1).
 */
export function afterLostDelete<S>(slot: Slot<S>): boolean {
  return slot.uncertain?.some((w) => w.merge === undefined && w.mine === NONE) ?? false;
}

/** Reads the stored session and its version for a save; a failure is the save's. */
export async function readFresh<S>(slot: Slot<S>): Promise<VersionedValue<S>> {
  try {
    return await slot.source.conditional!.readVersioned(slot.key);
  } catch (err) {
    throw saveError(slot.key, err, false);
  }
}

/** What {@link learnVersion} gives when the save can go on, conditional on the version it learnt. */
export const GO: unique symbol = Symbol("go");
/**
 * What {@link learnVersion} gives when the save can go on and must write
 * even if nothing changed: a lost write has not landed, and may still.
 */
export const FENCE: unique symbol = Symbol("fence");

/**
 * Reads the version of the key after a blind write of this slot, or after
 * a write or delete without an answer. If storage still holds what the
 * slot wrote, the save is conditional on that version ({@link GO});
 * otherwise another process wrote since, and the save treats it as a
 * conflict (rule C1), merging from `base`.
 */
export async function learnVersion<S>(
  slot: Slot<S>,
): Promise<typeof GO | typeof FENCE | { base: Known }> {
  const fresh = await readFresh(slot);
  const lost = slot.uncertain;
  if (lost !== undefined) {
    // Kept until a save lands: until then, the slot does not know what
    // storage holds.
    // Storage still having the version the newest write expected says that
    // none has landed (yet: they may still, on that version), where no
    // write brings an earlier version back (`uniqueVersions`), whatever the
    // content: a fence sends the content storage holds. Without a version
    // to compare ("nothing stored" expected, or a blind write) nothing says
    // so, not even a lease held since: the write itself may still be on its
    // way (a call given up by a timeout, a statement waiting on the server).
    const last = lost[lost.length - 1];
    if (
      last.prior !== null && fresh.version === last.prior &&
      slot.source.conditional!.uniqueVersions === true
    ) {
      // A merge is merged again; anything else writes even if nothing
      // changed, so that the version moves on and a late landing fails (C1).
      if (last.merge !== undefined) return { base: last.merge.base };
      slot.version = fresh.version;
      return FENCE;
    }
    const own = ownLanding(slot, fresh.value ?? undefined);
    if (own !== undefined) {
      takeLanded(slot, own, fresh.version);
      if (own.merge !== undefined) {
        carryOver(slot, own.merge.mine, valueOf(own.mine), own.mine);
        if (slot.broken !== undefined) throw slot.broken; // this update's change was not merged
      }
      return GO;
    }
    // A merge that did not land is merged again, from the base it used.
    if (last.merge !== undefined) return { base: last.merge.base };
    // After a delete, the live value was made since, from nothing: it is
    // merged as such, whether the delete landed or not. The pre-delete value
    // as base would take what another process wrote out again if the delete
    // had landed (C1).
    return { base: afterLostDelete(slot) ? NONE : slot.stored };
  }
  if (!matches(fresh.value ?? undefined, slot.stored)) return { base: slot.stored };
  slot.version = fresh.version;
  return GO;
}

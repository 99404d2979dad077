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

/**
 * A write of `mine` over version `expected` failed without an answer, so it
 * may have landed: until a read tells, the slot's version is unknown (see
 * `Slot.uncertain`). A blind write (`expected` unknown, rule C5) counts with
 * conflict detection on: the next save learns what storage holds instead of
 * writing blindly again over what another process may have written since.
 * Rethrows `err`.
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
  // After a blind write, nothing was expected: like "nothing stored", no
  // version tells that it did not land.
  const prior = expected === UNKNOWN ? null : expected;
  slot.uncertain = { mine, prior, initial, merge };
  slot.version = UNKNOWN;
  throw err;
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
  let fresh;
  try {
    fresh = await slot.source.conditional!.readVersioned(slot.key);
  } catch (err) {
    throw saveError(slot.key, err, false);
  }
  const lost = slot.uncertain;
  if (lost !== undefined) {
    // Kept until a save lands: until then, the slot does not know what
    // storage holds.
    // Storage still having the version the write expected says that it has
    // not landed (yet: it may still, on that version), where no write brings
    // an earlier version back (`uniqueVersions`), whatever the content: a
    // fence sends the content storage holds. Without a version to compare
    // ("nothing stored" expected, or a blind write) nothing says so, not even
    // a lease held since: the write itself may still be on its way (a call
    // given up by a timeout, a statement waiting on the server).
    if (
      lost.prior !== null && fresh.version === lost.prior &&
      slot.source.conditional!.uniqueVersions === true
    ) {
      // A merge is merged again; anything else writes even if nothing
      // changed, so that the version moves on and the late landing fails (C1).
      if (lost.merge !== undefined) return { base: lost.merge.base };
      slot.version = fresh.version;
      return FENCE;
    }
    if (matches(fresh.value ?? undefined, lost.mine)) {
      slot.uncertain = undefined;
      slot.stored = lost.mine; // the write without an answer landed
      slot.version = fresh.version;
      if (lost.mine !== NONE && slot.initial === lost.initial) slot.initial = UNKNOWN;
      if (lost.merge !== undefined) {
        carryOver(slot, lost.merge.mine, valueOf(lost.mine), lost.mine);
        if (slot.broken !== undefined) throw slot.broken; // this update's change was not merged
      }
      return GO;
    }
    // A merge that did not land is merged again, from the base it used.
    if (lost.merge !== undefined) return { base: lost.merge.base };
    // After a delete, the live value was made since, from nothing: it is
    // merged as such, whether the delete landed or not. The pre-delete value
    // as base would take what another process wrote out again if the delete
    // had landed (C1).
    return { base: lost.mine === NONE ? NONE : slot.stored };
  }
  if (!matches(fresh.value ?? undefined, slot.stored)) return { base: slot.stored };
  slot.version = fresh.version;
  return GO;
}

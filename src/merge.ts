/**
 * The merge function (`onConflict`) applied to the live value: the merge
 * a save wrote after a conflict becomes the live value, with what changed
 * meanwhile merged on top (rule C2); the save's conflict loop itself is in
 * `src/save.ts`.
 *
 * @module
 */

import type { Slot } from "./slot.ts";
import { messageOf, SessionError } from "./errors.ts";
import { updateInPlace } from "./values.ts";
import { matches, valueOf } from "./known.ts";

/** The merge function of `slot` (only called when `onConflict` is one). */
function mergeOf<S>(slot: Slot<S>): (stored?: S, mine?: S, base?: S) => S | undefined {
  return slot.source.onConflict as (stored?: S, mine?: S, base?: S) => S | undefined;
}

/** Calls the merge function; what it throws fails the save with a `SessionError`. */
export function callMerge<S>(
  slot: Slot<S>,
  stored: S | undefined,
  mine: S | undefined,
  base: S | undefined,
): S | undefined {
  try {
    return mergeOf(slot)(stored, mine, base);
  } catch (err) {
    throw new SessionError(
      `The onConflict merge function threw for key "${slot.key}": ${messageOf(err)}. ` +
        `This update's session changes were not saved.`,
      slot.key,
      { cause: err },
    );
  }
}

/**
 * Makes the live value the landed merge, keeping what updates of this key
 * changed in it since the save started: `merge(merged, live, mine)`.
 * Changes the live object in place so handlers holding it see the merge;
 * replaces it when it cannot be changed (frozen).
 */
export function carryOver<S>(
  slot: Slot<S>,
  mine: unknown,
  merged: S | undefined,
  snap: unknown,
): void {
  const live = slot.value;
  // A copy of the merge: the merged object itself went to the storage.
  const fresh = () => valueOf<S>(snap, merged);
  let next: S | undefined;
  if (matches(live, mine)) {
    next = fresh();
  } else {
    try {
      next = mergeOf(slot)(fresh(), live, valueOf(mine, live)) ?? undefined;
    } catch (err) {
      next = fresh();
      slot.broken = new SessionError(
        `The onConflict merge function threw while merging the saved session of key ` +
          `"${slot.key}" with changes made to it since: ${
            messageOf(err)
          }. Those changes were not ` +
          `saved.`,
        slot.key,
        { cause: err },
      );
    }
  }
  const kept = updateInPlace(live, next);
  if (kept !== live && typeof live === "object" && live !== null) {
    slot.replaced = { old: live, merged: kept };
  }
  slot.value = kept;
  slot.known = true;
}

/**
 * What an update's assignment of `value` keeps, `read` being the value the
 * update last read (rule C2): if a landed merge has replaced that value
 * since (a frozen value, which the merge could not change in place) and the
 * merge is still the live value, `value` was made from a value without the
 * merge, so it is merged onto it: `merge(merged, value, read)`, as a save
 * merges a conflict. Otherwise, and for a delete, `value` itself.
 */
export function rebased<S>(slot: Slot<S>, value: S | null | undefined, read: unknown) {
  const replaced = slot.replaced;
  if (replaced === undefined || value == null) return value;
  if (read !== replaced.old || slot.value !== replaced.merged) return value;
  try {
    return mergeOf(slot)(replaced.merged as S, value, read as S) ?? undefined;
  } catch (err) {
    slot.broken = new SessionError(
      `The onConflict merge function threw while merging an assignment to the session of key ` +
        `"${slot.key}" onto a merge that landed after the update read it: ${messageOf(err)}. ` +
        `This update's changes were not saved.`,
      slot.key,
      { cause: err },
    );
    return value;
  }
}

/**
 * The merge function (`onConflict`) and the live value: the merge a save
 * wrote after a conflict becomes the live value, changed in place, with what
 * changed meanwhile merged on top; a live value that cannot be changed in
 * place stays, and its changes reach storage by the next save's merge (rule
 * C2). The save's conflict loop itself is in `src/save.ts`.
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
 * changed in it since the save started: `merge(merged, live, mine)`,
 * changing the live object in place so that handlers holding it see the
 * merge. A live value that cannot be changed in place (frozen, as immer's
 * are, or no object at all) is kept as it is: replacing it would let an
 * update that holds it, or a copy made from it, drop the merge with its
 * next assignment. The slot then knows `mine` (what the merged save sent)
 * as what it last saved, and its next save that has a change to make (made
 * since `mine`) merges that change onto what storage holds then, as after a
 * conflict (rule C2); without a change, nothing is written.
 */
export function carryOver<S>(
  slot: Slot<S>,
  mine: unknown,
  merged: S | undefined,
  snap: unknown,
): void {
  const live = slot.value;
  if (!changeable(live)) {
    slot.stored = mine;
    slot.mergeNext = true;
    return;
  }
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
  slot.value = updateInPlace(live, next);
  slot.known = true;
}

/**
 * Whether `value` is an object that can be changed in place all the way
 * down: a frozen object inside (immer on a part of the session) would be
 * replaced, with the same risk as a frozen session.
 */
function changeable(value: unknown, depth = 0): boolean {
  if (typeof value !== "object" || value === null || !Object.isExtensible(value)) return false;
  if (depth > 100) return false;
  for (const item of Object.values(value)) {
    if (typeof item === "object" && item !== null && !changeable(item, depth + 1)) return false;
  }
  return true;
}

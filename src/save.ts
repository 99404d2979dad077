/**
 * One save of one key: compare the live value with what storage holds,
 * write it if it changed (conditionally, with conflict detection), and on a
 * conflict fail or merge (docs/semantics.md, rules U4, K2, C1 to C6).
 *
 * @module
 */

import { type Known, NONE, type Slot, UNKNOWN } from "./slot.ts";
import { saveError, SessionConflictError } from "./errors.ts";
import {
  afterLostDelete,
  FENCE,
  GO,
  landedBase,
  learnVersion,
  ownLanding,
  readFresh,
  takeLanded,
  uncertain,
} from "./uncertain.ts";
import { fromSnapshot, OPAQUE, snapshot } from "./snapshot.ts";
import { isPromiseLike } from "./values.ts";
import { matches, valueOf } from "./known.ts";
import { callMerge, carryOver } from "./merge.ts";
import { copySession } from "./serialization.ts";
import type { MemoryAccess } from "./memory_access.ts";
import { joinedKeepOf, joinedSaveOf } from "./locked_access.ts";

/**
 * What the live value of `slot` should be stored as: itself, or nothing
 * when it is null or still the untouched initial value given for an empty
 * key (not worth storing: reading nothing gives it again).
 */
function desired<S>(slot: Slot<S>): S | undefined {
  const value = slot.value;
  if (value == null || (slot.initial !== UNKNOWN && matches(value, slot.initial))) {
    return undefined;
  }
  return value;
}

/**
 * Saves the live value of `slot` if it changed. Returns `undefined` when it
 * is done (nothing to write, or the storage answered synchronously), else a
 * promise; throws or rejects if the save failed.
 */
export function saveSlot<S>(slot: Slot<S>): Promise<void> | undefined {
  if (slot.broken !== undefined) throw slot.broken;
  if (!slot.known) return undefined;
  // After a write without an answer, `stored` may be out of date: the save
  // learns the version (and what is stored) before it decides to skip.
  if (slot.uncertain === undefined && matches(desired(slot), slot.stored)) return undefined;
  // After a blind write of this slot (a lazy assignment without a read),
  // the version of what it wrote is learnt before writing on top of it.
  // So is the version after a conditional write that failed without an answer.
  const blind = slot.source.conditional !== undefined && slot.version === UNKNOWN &&
    (slot.stored !== UNKNOWN || slot.uncertain !== undefined);
  if (slot.lease !== undefined || blind) return prepareAndWrite(slot, blind);
  return write(slot, true);
}

/** Takes the lease and learns the version first, where needed; then writes. */
async function prepareAndWrite<S>(slot: Slot<S>, blind: boolean): Promise<void> {
  const lease = slot.lease;
  if (lease !== undefined) {
    if (!lease.held) await lease.acquire(); // a blind assignment may not have it yet
    lease.assertHeld();
  }
  let fence = false;
  if (blind) {
    const learnt = await learnVersion(slot);
    if (learnt === FENCE) fence = true;
    else if (learnt !== GO) {
      const value = desired(slot);
      const mine = value == null ? NONE : snapshot(value);
      return await resolveConflict(slot, value, mine, slot.initial, learnt.base);
    }
  }
  await write(slot, fence); // a fence writes even what did not change
}

/** Writes the live value if it differs from what storage holds (K2: as it is now). */
function write<S>(slot: Slot<S>, checked: boolean): Promise<void> | undefined {
  const value = desired(slot);
  // `checked`: the caller compared just now, nothing ran since.
  if (!checked && matches(value, slot.stored)) return undefined;
  if (slot.mergeNext && value != null) {
    // A merge landed on a live value it could not change (C2): this change
    // was made without what the merge brought in, so it is merged onto
    // what storage holds now, from what the merged save sent (until that
    // lands, the flag stays). A delete carries nothing stale: it is sent as
    // it is, on the merge's version.
    // After a delete without an answer, the live value was made since, from
    // nothing (C1), also here (resolveConflict's default base).
    return resolveConflict(slot, value, snapshot(value), slot.initial);
  }
  const memory = slot.memory;
  if (memory !== undefined) return writeHeld(slot, memory, value);
  const mine = value == null ? NONE : snapshot(value);
  const expected = slot.source.conditional !== undefined ? slot.version : UNKNOWN;
  const initial = slot.initial;
  const lost = (err: unknown): never => uncertain(slot, mine, expected, initial, err);
  let result: Sent | Promise<Sent>;
  try {
    result = send(slot, sendable(value, mine), expected);
  } catch (err) {
    return lost(err);
  }
  if (isPromiseLike(result)) {
    return Promise.resolve(result).then((r) => landed(slot, r, value, mine, initial), lost);
  }
  return landed(slot, result, value, mine, initial);
}

/**
 * {@link write} into a plain memory storage: the validated copy the
 * contract check makes is what the storage keeps and what the slot knows.
 */
function writeHeld<S>(
  slot: Slot<S>,
  memory: MemoryAccess,
  value: S | undefined,
): Promise<void> | undefined {
  const key = slot.key;
  const expected = slot.source.conditional !== undefined && slot.version !== UNKNOWN
    ? slot.version
    : undefined;
  let data: unknown = NONE;
  try {
    if (value != null) data = copySession(value, key); // SessionValueError for non-JSON
  } catch (err) {
    throw saveError(slot.key, err, false); // as the public write's error would be
  }
  const initial = slot.initial;
  slot.writes++;
  let result: Sent;
  if (data === NONE) result = memory.delete(key, expected) ? null : CONFLICT;
  else result = memory.write(key, data, expected) ?? CONFLICT;
  if (expected === undefined && result !== CONFLICT) result = UNKNOWN;
  return landed(slot, result, value, data, initial);
}

/**
 * Records what a write did; on a conflict, resolves it. `initial` is the
 * slot's initial value when the write started: once a session is stored,
 * the key is not new any more (rule U4), unless an update was given a new
 * initial value meanwhile (rule K1, after a delete).
 */
function landed<S>(
  slot: Slot<S>,
  result: Sent,
  value: S | undefined,
  mine: unknown,
  initial: unknown,
): Promise<void> | undefined {
  if (result === CONFLICT) return resolveConflict(slot, value, mine, initial);
  slot.uncertain = undefined; // a fence that landed
  slot.mergeNext = false;
  slot.stored = mine;
  slot.version = result;
  if (mine !== NONE && slot.initial === initial) slot.initial = UNKNOWN;
  return undefined;
}

/**
 * What is handed to `write`: a copy of the snapshot, so that a storage that
 * serializes later still stores the value as it was when the save started
 * (rule K2). A value without a snapshot is handed over as it is.
 */
function sendable<S>(value: S | undefined, mine: unknown): S | undefined {
  if (value == null || mine === OPAQUE) return value;
  return fromSnapshot(mine);
}

/** What {@link send} resolves to when the stored version was not the expected one. */
const CONFLICT: unique symbol = Symbol("conflict");

/** What a write gives: the new version, `UNKNOWN` after a blind write, or a conflict. */
type Sent = string | null | typeof UNKNOWN | typeof CONFLICT;

/**
 * Writes `value` (deletes for `null`/`undefined`). With an `expected`
 * version, only if storage still holds it: gives the new version, or
 * {@link CONFLICT}. Without, gives `UNKNOWN`. A promise only when the
 * storage answered with one.
 */
function send<S>(
  slot: Slot<S>,
  value: S | undefined,
  expected: string | null | typeof UNKNOWN,
): Sent | Promise<Sent> {
  const { storage, conditional } = slot.source;
  const key = slot.key;
  const failed = (err: unknown): never => {
    throw saveError(slot.key, err, value == null);
  };
  slot.writes++;
  try {
    let result: unknown;
    let outcome: (r: unknown) => Sent;
    const lease = slot.lease;
    const held = lease?.held === true;
    const locked = held && slot.closing ? joinedSaveOf<S>(storage) : undefined;
    const keeping = held && !slot.closing ? joinedKeepOf<S>(storage) : undefined;
    if (locked !== undefined || keeping !== undefined) {
      // Under the lease, checked by the storage in the write itself: the
      // last save of a locked key in this process gives the lease up in
      // the same call, a save while another update of the key still runs
      // here keeps it (a conflict keeps it either way).
      const condition = expected === UNKNOWN || conditional === undefined ? undefined : expected;
      result = locked !== undefined
        ? lease!.saveAndRelease(locked, value ?? undefined, condition)
        : lease!.saveKeeping(keeping!, value ?? undefined, condition);
      outcome = (version) =>
        version === undefined ? CONFLICT : condition === undefined ? UNKNOWN : version as string;
    } else if (expected === UNKNOWN || conditional === undefined) {
      result = value == null ? storage.delete(key) : storage.write(key, value);
      outcome = () => UNKNOWN;
    } else if (value == null) {
      result = conditional.deleteIfVersion(key, expected);
      outcome = (deleted) => deleted ? null : CONFLICT;
    } else {
      result = conditional.writeIfVersion(key, value, expected);
      outcome = (version) => (version as string | null) ?? CONFLICT;
    }
    return isPromiseLike(result) ? Promise.resolve(result).then(outcome, failed) : outcome(result);
  } catch (err) {
    return failed(err);
  }
}

/**
 * Another process wrote since this slot's read (rule C1). Fails with
 * `onConflict: "error"`; with a merge function (rule C2) reads the stored
 * session, merges, and writes conditionally, up to `maxConflictRetries`
 * times. `base` is what the live value was made from: what the slot knows
 * storage held, or nothing after a delete without an answer (C1), unless
 * {@link learnVersion} says otherwise.
 */
async function resolveConflict<S>(
  slot: Slot<S>,
  value: S | undefined,
  mine: unknown,
  initial: unknown,
  base: Known = afterLostDelete(slot) ? NONE : slot.stored,
) {
  const { onConflict: merge, maxConflictRetries } = slot.source;
  const key = slot.key;
  if (merge === "error") {
    if (slot.uncertain !== undefined) {
      slot.lease?.assertHeld();
      const fresh = await readFresh(slot);
      const own = ownLanding(slot, fresh.value ?? undefined);
      if (own !== undefined) {
        // This process's own write without an answer landed meanwhile (C1),
        // and the live value was made from it: no other process's change.
        // Written as it is now, on what storage holds (the key may not be
        // new any more: U4); conflicting again, it fails.
        takeLanded(slot, own, fresh.version);
        return await write(slot, true);
      }
    }
    // After a write without an answer, the "other process" may be that write.
    throw new SessionConflictError(
      key,
      slot.uncertain === undefined ? "" : " (or an earlier write of it by this process, whose " +
        "reply was lost, landed: the two cannot be told apart, so nothing is written over it)",
      slot.lease?.held === true,
    );
  }
  for (let merges = 0; merges < maxConflictRetries; merges++) {
    slot.lease?.assertHeld();
    const fresh = await readFresh(slot);
    const own = ownLanding(slot, fresh.value ?? undefined);
    if (own !== undefined) {
      // This process's own write without an answer has landed meanwhile (C1):
      // it is what this merge starts from, not another process's change.
      takeLanded(slot, own, fresh.version);
      base = landedBase(own);
    }
    const merged = callMerge(slot, fresh.value ?? undefined, valueOf(mine, value), valueOf(base));
    const snap = merged == null ? NONE : snapshot(merged);
    // A merge's write that fails leaves the live value as it was: the next
    // save merges again, unless the write failed without an answer and
    // landed (C1: it learns which first).
    let result: Sent;
    try {
      result = await send(slot, sendable(merged ?? undefined, snap), fresh.version);
    } catch (err) {
      return uncertain(slot, snap, fresh.version, initial, err, { mine, base });
    }
    if (result === CONFLICT) continue;
    // Landed (rule C3): nothing below may throw.
    slot.uncertain = undefined;
    slot.mergeNext = false;
    slot.stored = snap;
    slot.version = result;
    if (snap !== NONE && slot.initial === initial) slot.initial = UNKNOWN;
    carryOver(slot, mine, merged ?? undefined, snap);
    return;
  }
  throw new SessionConflictError(
    key,
    ` (gave up after ${maxConflictRetries} merges)`,
    slot.lease?.held === true,
  );
}

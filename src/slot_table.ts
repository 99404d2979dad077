/**
 * The slots of one fragment of one middleware, by key: a key has a slot
 * exactly while updates use it (docs/semantics.md, "The states of one
 * key"); an idle key has none.
 *
 * @module
 */

import { Slot, type SlotSource } from "./slot.ts";
import { HoldRuns } from "./turns.ts";

/** The keys in use of one fragment, with their shared state. */
export class SlotTable<S> {
  readonly #slots = new Map<string, Slot<S>>();
  /** Leases of slots taken out for their last save, until given up (locked keys). */
  readonly #closing = new Map<string, Promise<void>>();
  /** How long this process has held each locked key without a break (rule C7). */
  readonly #runs = new HoldRuns();

  constructor(readonly source: SlotSource<S>) {}

  /** Number of keys in use right now. */
  get size(): number {
    return this.#slots.size;
  }

  /** Joins the shared state of `key`, creating it if the key is idle. */
  join(key: string): Slot<S> {
    let slot = this.#slots.get(key);
    let after = this.#closing.get(key);
    if (slot?.lease?.yielding) {
      // Rule C7: another process is next in line for the key, so this
      // update does not join the holder (which keeps its users until they
      // finish); it starts a new slot, whose lease waits its turn.
      after = slot.lease.freed;
      slot = undefined;
    }
    if (slot === undefined) {
      slot = new Slot(key, this.source, after, this.#runs);
      this.#slots.set(key, slot);
    }
    slot.users++;
    return slot;
  }

  /**
   * Takes the slot of a locked key out of the table for its last save, while
   * its last user still has it: updates of the key that come now start a
   * new slot, whose lease waits for this one's to be given up (with the
   * save, in one call where the storage can).
   */
  detach(slot: Slot<S>): void {
    const lease = slot.lease;
    if (lease === undefined || this.#slots.get(slot.key) !== slot) return;
    this.#slots.delete(slot.key);
    slot.closing = true;
    const freed = lease.freed;
    this.#closing.set(slot.key, freed);
    freed.then(() => {
      if (this.#closing.get(slot.key) === freed) this.#closing.delete(slot.key);
    });
  }

  /**
   * Leaves the shared state of a key. When the last user leaves, the key
   * becomes idle: its value is forgotten and its lease given up (the
   * returned promise, which never rejects). Callers have waited for every
   * read and save they started, so nothing of the slot is in flight then.
   */
  leave(slot: Slot<S>): Promise<void> | undefined {
    if (--slot.users > 0) return undefined;
    if (this.#slots.get(slot.key) === slot) this.#slots.delete(slot.key);
    return slot.lease?.release();
  }
}

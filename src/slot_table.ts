/**
 * The slots of one fragment of one middleware, by key: a key has a slot
 * exactly while updates use it (docs/semantics.md, "The states of one
 * key"); an idle key has none.
 *
 * @module
 */

import { Slot, type SlotSource } from "./slot.ts";

/** The keys in use of one fragment, with their shared state. */
export class SlotTable<S> {
  readonly #slots = new Map<string, Slot<S>>();

  constructor(readonly source: SlotSource<S>) {}

  /** Number of keys in use right now. */
  get size(): number {
    return this.#slots.size;
  }

  /** Joins the shared state of `key`, creating it if the key is idle. */
  join(key: string): Slot<S> {
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      slot = new Slot(key, this.source);
      this.#slots.set(key, slot);
    }
    slot.users++;
    return slot;
  }

  /**
   * Leaves the shared state of a key. When the last user leaves, the key
   * becomes idle: its value is forgotten and its lease given up (the
   * returned promise, which never rejects). Callers have waited for every
   * read and save they started, so nothing of the slot is in flight then.
   */
  leave(slot: Slot<S>): Promise<void> | undefined {
    if (--slot.users > 0) return undefined;
    this.#slots.delete(slot.key);
    return slot.lease?.release();
  }
}

/**
 * The shared, in-process state of one session key: one storage read for all
 * updates of the key that run at the same time, one live value they all see,
 * and a queue that writes the key's changes one after another, in order.
 *
 * @module
 */

import type { StorageAdapter } from "./storage.ts";
import { SessionError } from "./errors.ts";
import { serializeSession } from "./serialization.ts";

/** Marks a baseline that is not known (nothing was read yet). */
const UNKNOWN: unique symbol = Symbol("unknown");
/** JSON text of the stored session, `null` for none stored, or unknown. */
type Baseline = string | null | typeof UNKNOWN;

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function looseJson(value: unknown): Baseline {
  if (value == null) return null;
  try {
    return JSON.stringify(value);
  } catch {
    return UNKNOWN; // not JSON data: never equal, so a change is always written
  }
}

/** Where the sessions of one fragment live and how new ones start. */
export interface SlotSource<S> {
  readonly storage: StorageAdapter<S>;
  readonly initial: (() => S) | undefined;
}

/** The shared state of one key. Created and dropped by {@link SlotTable}. */
export class Slot<S> {
  /** Updates currently using this key. */
  refs = 0;
  /** Queued or running writes and deletes. */
  pending = 0;
  /** Whether `value` holds the session (loaded or assigned). */
  known = false;
  /** The live session data every update of this key sees. */
  value: S | undefined = undefined;
  #baseline: Baseline = UNKNOWN;
  #initialText: string | undefined;
  #loading: Promise<void> | undefined;
  #tail: Promise<void> = Promise.resolve();

  constructor(
    readonly key: string,
    readonly source: SlotSource<S>,
    readonly onIdle: (slot: Slot<S>) => void,
  ) {}

  /** Reads the session once, however many updates ask at the same time. */
  load(): Promise<void> {
    if (this.known) return Promise.resolve();
    this.#loading ??= this.#read().finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  async #read(): Promise<void> {
    await this.#tail; // a write of this key still running must land first
    let raw: S | undefined | null;
    try {
      raw = await this.source.storage.read(this.key);
    } catch (err) {
      throw new SessionError(
        `Could not read the session of key "${this.key}" from storage: ${reason(err)}. ` +
          `The update was stopped so that the stored session is not replaced by initial data; ` +
          `check that the storage is reachable.`,
        this.key,
        { cause: err },
      );
    }
    this.#baseline = looseJson(raw);
    if (this.known) return; // assigned while the read was running: keep the assignment
    if (raw == null) {
      const initial = this.source.initial?.();
      this.value = initial;
      this.#initialText = initial === undefined ? undefined : looseJson(initial) as string;
    } else {
      this.value = raw;
      this.#initialText = undefined;
    }
    this.known = true;
  }

  /** Replaces the live value; `null` and `undefined` mean "delete". */
  assign(value: S | null | undefined): void {
    this.value = value ?? undefined;
    this.known = true;
  }

  /**
   * Saves the live value if it differs from what storage holds. Validates it
   * first, so a value that cannot be stored fails here and nothing is queued.
   * Resolves once this update's change has landed.
   */
  commit(): Promise<void> {
    if (!this.known) return Promise.resolve();
    const desired = this.value === undefined || this.value === null
      ? null
      : serializeSession(this.value, this.key);
    if (this.pending === 0 && this.#unchanged(desired)) return Promise.resolve();
    this.pending++;
    const job = this.#tail.then(() => this.#apply(desired));
    this.#tail = job.then(
      () => this.#settle(),
      () => this.#settle(),
    );
    return job;
  }

  #unchanged(desired: string | null): boolean {
    const base = this.#baseline;
    if (desired === base) return true;
    // A new session equal to its initial value is not worth storing.
    return base === null && desired !== null && desired === this.#initialText;
  }

  async #apply(desired: string | null): Promise<void> {
    if (this.#unchanged(desired)) return;
    const { storage } = this.source;
    try {
      if (desired === null) await storage.delete(this.key);
      else await storage.write(this.key, JSON.parse(desired));
    } catch (err) {
      const what = desired === null ? "delete" : "write";
      throw new SessionError(
        `Could not ${what} the session of key "${this.key}": ${reason(err)}. ` +
          `This update's session changes were not saved.`,
        this.key,
        { cause: err },
      );
    }
    this.#baseline = desired;
  }

  #settle(): void {
    this.pending--;
    if (this.refs === 0 && this.pending === 0) this.onIdle(this);
  }

  /**
   * Forgets the live value so the next user reads storage again. Used when
   * the last update of the key failed: its unsaved changes must not survive.
   */
  discard(): void {
    this.known = false;
    this.value = undefined;
    this.#baseline = UNKNOWN;
  }
}

/** The slots of one fragment of one middleware, by key. */
export class SlotTable<S> {
  readonly #slots = new Map<string, Slot<S>>();

  constructor(readonly source: SlotSource<S>) {}

  /** Number of keys in use right now. */
  get size(): number {
    return this.#slots.size;
  }

  /** Joins the shared state of `key`, creating it if nobody uses it. */
  acquire(key: string): Slot<S> {
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      slot = new Slot(key, this.source, (idle) => {
        if (this.#slots.get(idle.key) === idle) this.#slots.delete(idle.key);
      });
      this.#slots.set(key, slot);
    }
    slot.refs++;
    return slot;
  }

  /**
   * Leaves the shared state. `ok` is false when the update failed; if it was
   * the last user, its unsaved changes are dropped.
   */
  release(slot: Slot<S>, ok: boolean): void {
    slot.refs--;
    if (slot.refs > 0) return;
    if (!ok) slot.discard();
    if (slot.pending === 0) slot.onIdle(slot);
  }
}

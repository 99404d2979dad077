/**
 * The shared state of one session key in one process, while updates of the
 * key run (docs/semantics.md, "The states of one key"):
 *
 * - **loading**: `load()` is reading storage (after taking the lease, with
 *   `lock`); every update of the key that asks waits for the same read.
 * - **live**: `known` is true and `value` is the one session value every
 *   update of the key sees.
 * - **saving**: saves run one at a time from a queue; each one writes the
 *   live value as it is when it starts (see `src/save.ts`).
 *
 * A key that is in none of these states is **idle**: it has no slot, and
 * the {@link SlotTable} (`src/slot_table.ts`) creates one when an update
 * touches the key and drops it, giving up the lease, when the last update
 * leaves. Every update waits for the reads and saves it started before it
 * leaves, so a slot without users has nothing in flight.
 *
 * Every storage call is a call of a public method of the storage the user
 * gave (rule A1), so subclasses and wrappers see all of them.
 *
 * @module
 */

import type { StorageAdapter } from "./storage.ts";
import type { ConditionalStorage, LeaseStorage } from "./capabilities.ts";
import type { ConflictMerge } from "./options.ts";
import { Lease, type LockOptions } from "./lease.ts";
import { SessionError } from "./errors.ts";
import { snapshot } from "./snapshot.ts";
import { saveSlot } from "./save.ts";

/** Nothing was read or written yet, so what storage holds is not known. */
export const UNKNOWN: unique symbol = Symbol("unknown");
/** Storage holds no session for the key. */
export const NONE: unique symbol = Symbol("none");

/**
 * What this process knows storage holds: a snapshot (`src/snapshot.ts`) of
 * the value it last read or wrote, {@link NONE}, or {@link UNKNOWN}.
 */
export type Known = unknown;

/** Where the sessions of one fragment live and how they are kept safe. */
export interface SlotSource<S> {
  readonly storage: StorageAdapter<S>;
  readonly initial: (() => S) | undefined;
  /** Set when conflicts are detected: the storage's conditional writes. */
  readonly conditional?: ConditionalStorage<S>;
  /** `"error"` or a merge function; only used with `conditional`. */
  readonly onConflict: "error" | ConflictMerge<S>;
  readonly maxConflictRetries: number;
  /** Set when keys are locked: the storage's leases and the lock options. */
  readonly leases?: LeaseStorage;
  readonly lock?: LockOptions;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The shared state of one key. Created and dropped by the slot table. */
export class Slot<S> {
  /** Updates using this key now. */
  users = 0;
  /** Whether `value` holds the session (loaded or assigned). */
  known = false;
  /** The live session every update of this key sees. */
  value: S | undefined = undefined;
  /** A snapshot of what storage holds ({@link Known}). */
  stored: Known = UNKNOWN;
  /** The version of what storage holds, with conflict detection; else unknown. */
  version: string | null | typeof UNKNOWN = UNKNOWN;
  /** A snapshot of the initial value, while storage holds nothing; else unknown. */
  initial: Known = UNKNOWN;
  /**
   * Set when a merge could not be carried over to the live value: every
   * later save of this slot fails with it, so nothing stale is written.
   */
  broken: SessionError | undefined = undefined;
  /** Writes and deletes sent so far; a read that overlapped one is older than it. */
  writes = 0;
  /** Assignments so far, by every update of the key (rule U3). */
  assignments = 0;
  /** The key's lease, when keys are locked. */
  readonly lease: Lease | undefined;
  #loading: Promise<void> | undefined;
  /** The end of the save queue, and how many saves are in it. */
  #tail: Promise<void> | undefined;
  #queued = 0;

  constructor(readonly key: string, readonly source: SlotSource<S>) {
    this.lease = source.leases && source.lock
      ? new Lease(source.leases, key, source.lock)
      : undefined;
  }

  /**
   * Reads the session unless it is known; every caller while the read runs
   * gets the same promise. Resolves once `value` is known.
   */
  load(): Promise<void> {
    if (this.known) return Promise.resolve();
    if (this.#loading !== undefined) return this.#loading;
    const done = () => (this.#loading = undefined);
    return this.#loading = this.#read().then(done, (err) => {
      done();
      throw err;
    });
  }

  async #read(): Promise<void> {
    if (this.lease !== undefined) await this.lease.acquire();
    const { storage, conditional } = this.source;
    const writes = this.writes;
    let raw: S | null | undefined;
    let version: string | null | typeof UNKNOWN = UNKNOWN;
    try {
      if (conditional !== undefined) {
        ({ value: raw, version } = await conditional.readVersioned(this.key));
      } else {
        raw = await storage.read(this.key);
      }
    } catch (err) {
      throw this.#readError(err);
    }
    if (this.writes !== writes) return; // a save landed meanwhile: what it wrote is newer
    this.stored = raw == null ? NONE : snapshot(raw);
    this.version = version;
    if (this.known) return; // assigned while the read ran: the assignment stays
    if (raw == null) {
      const initial = this.source.initial?.();
      this.value = initial;
      this.initial = initial === undefined ? UNKNOWN : snapshot(initial);
    } else {
      this.value = raw;
    }
    this.known = true;
  }

  #readError(err: unknown): SessionError {
    if (err instanceof SessionError) return err;
    return new SessionError(
      `Could not read the session of key "${this.key}" from storage: ${reason(err)}. ` +
        `The update was stopped so that the stored session is not replaced by initial data; ` +
        `check that the storage is reachable.`,
      this.key,
      { cause: err },
    );
  }

  /** Replaces the live value; `null` and `undefined` mean "delete". */
  assign(value: S | null | undefined): void {
    this.value = value ?? undefined;
    this.known = true;
  }

  /**
   * Called when an update first uses a known value: if another update
   * deleted the session meanwhile, this one starts from `initial()`, as it
   * would after reading an empty storage.
   */
  present(): void {
    if (!this.known || this.value != null || this.source.initial === undefined) return;
    const initial = this.source.initial();
    this.value = initial;
    this.initial = initial === undefined ? UNKNOWN : snapshot(initial);
  }

  /**
   * Queues a save of the live value (rule K2). Resolves once it is done:
   * written, found unchanged, or merged; rejects if it failed.
   */
  save(): Promise<void> {
    const tail = this.#tail;
    const job = this.#queued === 0 || tail === undefined
      ? saveSlot(this)
      : tail.then(() => saveSlot(this));
    this.#queued++;
    const settled = () => void this.#queued--;
    this.#tail = job.then(settled, settled);
    return job;
  }
}

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
 * - **closing** (with `lock`): `closing` is set; the slot was taken out of
 *   its table for its last save, which gives the lease up.
 * - **yielding** (with `lock`): `lease.yielding` is set; another process
 *   waits for the key (rule C7, `src/turns.ts`), so no update joins it.
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
import type { HoldRuns } from "./turns.ts";
import { messageOf, SessionError } from "./errors.ts";
import { snapshot } from "./snapshot.ts";
import { saveSlot } from "./save.ts";
import type { LostWrite } from "./uncertain.ts";
import { cloneJson, isPromiseLike } from "./values.ts";
import { type MemoryAccess, memoryAccessOf } from "./memory_access.ts";
import { joinedReadOf } from "./locked_access.ts";

/** Nothing was read or written yet, so what storage holds is not known. */
export const UNKNOWN: unique symbol = Symbol("unknown");
/** Storage holds no session for the key. */
export const NONE: unique symbol = Symbol("none");
/** Marks the absence of a pending read value (see `Slot.stored`). */
const NOTHING: unique symbol = Symbol("nothing");

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

/** What a read gave: the value and, with conflict detection, its version. */
interface Answer<S> {
  value: S | null | undefined;
  version: string | null | typeof UNKNOWN;
  /** A snapshot of `value` the read already has (the memory storage's held data). */
  stored?: unknown;
}

/** The shared state of one key. Created and dropped by the slot table. */
export class Slot<S> {
  /** Updates using this key now. */
  users = 0;
  /** Whether `value` holds the session (loaded or assigned). */
  known = false;
  /** The live session every update of this key sees. */
  value: S | undefined = undefined;
  #stored: Known = UNKNOWN;
  /**
   * What the last read gave, until its snapshot is taken: only when a
   * handler first gets the live value, or a save needs it. Before that
   * nobody can have changed it, so an update that never touches its
   * session copies nothing.
   */
  #unsnapped: unknown = NOTHING;
  /** The version of what storage holds, with conflict detection; else unknown. */
  version: string | null | typeof UNKNOWN = UNKNOWN;
  /** A snapshot of the initial value, while storage holds nothing; else unknown. */
  initial: Known = UNKNOWN;
  /**
   * Set when a merge could not be carried over to the live value: every
   * later save of this slot fails with it, so nothing stale is written.
   */
  broken: SessionError | undefined = undefined;
  /**
   * Set when a merge landed on a live value it could not change in place
   * (frozen): the live value lacks what the merge brought in, so the next
   * save with a change merges it onto what storage holds (rule C2,
   * `carryOver` in merge.ts).
   */
  mergeNext = false;
  /**
   * The writes and deletes of this slot that failed without an answer (a
   * lost reply, a dropped connection, a call given up by a timeout) and may
   * still land, oldest first; `undefined` when there is none. Set until a
   * save lands: until then the slot does not know what storage holds, and
   * every save reads first (rule C1, `LostWrite` in uncertain.ts).
   */
  uncertain: LostWrite[] | undefined = undefined;
  /** Writes and deletes sent so far; a read that overlapped one is older than it. */
  writes = 0;
  /** Assignments so far, by every update of the key (rule U3). */
  assignments = 0;
  /**
   * The promise assigned last, by any update of the key, until it settles:
   * it resolves once its value is assigned, or rejects with its rejection.
   */
  assigning: Promise<void> | undefined = undefined;
  /** The rejection of the key's last assignment, a promise that rejected; cleared by the next. */
  rejected: { error: unknown } | undefined = undefined;
  #nextAssignment: PromiseWithResolvers<void> | undefined;
  /** The key's lease, when keys are locked. */
  readonly lease: Lease | undefined;

  #loading: Promise<void> | undefined;
  /** The end of the save queue, and how many saves are in it. */
  #tail: Promise<void> | undefined;
  #queued = 0;

  /**
   * Set when the slot was taken out of its table for its last save (no
   * other update can join it any more): that save may give the lease up
   * together with its write (`src/save.ts`).
   */
  closing = false;

  /**
   * @param after Settles when the lease of the key's previous slot in this
   * process is given up; the lease waits for it before its first attempt.
   * @param runs The table's record of keys held without a break (rule C7).
   */
  constructor(
    readonly key: string,
    readonly source: SlotSource<S>,
    after?: Promise<void>,
    runs?: HoldRuns,
  ) {
    this.lease = source.leases && source.lock
      ? new Lease(source.leases, key, source.lock, after, runs)
      : undefined;
  }

  /**
   * Reads the session unless it is known; every caller while the read runs
   * gets the same promise. Returns `undefined` when the value is known now
   * (it was, or the storage answered synchronously, as the memory storage
   * does), else a promise that resolves once it is.
   */
  load(): Promise<void> | undefined {
    if (this.known) return undefined;
    if (this.#loading !== undefined) return this.#loading;
    if (this.lease !== undefined) return this.#track(this.#readLeased(this.lease));
    const writes = this.writes;
    const result = this.#ask();
    if (!isPromiseLike(result)) return this.#accept(result, writes);
    return this.#track(
      Promise.resolve(result).then(
        (answer) => this.#accept(answer, writes),
        (err) => Promise.reject(this.#readError(err)),
      ),
    );
  }

  #track(loading: Promise<void>): Promise<void> {
    const tracked = loading.then(
      () => void (this.#loading = undefined),
      (err) => {
        this.#loading = undefined;
        throw err;
      },
    );
    return this.#loading = tracked;
  }

  async #readLeased(lease: Lease): Promise<void> {
    // Lease and read in one call where the storage has one (rule A1 holds:
    // see src/locked_access.ts); else the lease, then the read.
    const locked = lease.held || lease.acquiring || this.memory !== undefined
      ? undefined
      : joinedReadOf<S>(this.source.storage);
    if (locked !== undefined) {
      const writes = this.writes;
      const read = await lease.acquireAndRead(locked);
      const version = this.source.conditional !== undefined ? read.version : UNKNOWN;
      this.#accept({ value: read.value, version }, writes);
      return;
    }
    await lease.acquire();
    const writes = this.writes;
    let answer: Answer<S>;
    try {
      answer = await this.#ask();
    } catch (err) {
      throw this.#readError(err);
    }
    this.#accept(answer, writes);
  }

  /** Calls the storage's read: `readVersioned` with conflict detection, else `read`. */
  #ask(): Answer<S> | PromiseLike<Answer<S>> {
    const { storage, conditional } = this.source;
    const memory = this.memory;
    try {
      if (memory !== undefined) {
        const entry = memory.read(this.key);
        if (entry === undefined) return { value: undefined, version: null };
        // The held data never changes: it is the snapshot, and the handler gets a copy.
        const version = conditional !== undefined ? entry.version : UNKNOWN;
        return { value: cloneJson(entry.payload as S), version, stored: entry.payload };
      }
      if (conditional !== undefined) return conditional.readVersioned(this.key);
      const raw = storage.read(this.key);
      return isPromiseLike<S | undefined>(raw)
        ? Promise.resolve(raw).then((value) => ({ value, version: UNKNOWN }))
        : { value: raw, version: UNKNOWN };
    } catch (err) {
      throw this.#readError(err);
    }
  }

  /** Takes what a read gave, unless a save of this slot landed meanwhile. */
  #accept(answer: Answer<S>, writes: number): undefined {
    if (this.writes !== writes) return; // what the save wrote is newer than this read
    const raw = answer.value;
    if (raw == null) this.stored = NONE;
    else if (answer.stored !== undefined) this.stored = answer.stored;
    else {
      this.#stored = UNKNOWN;
      this.#unsnapped = raw; // snapshot taken on first use (see `stored`)
    }
    this.version = answer.version;
    if (this.known) return; // assigned while the read ran: the assignment stays
    if (raw == null) this.#startFromInitial();
    else this.value = raw;
    this.known = true;
  }

  /** Makes the live value a new `initial()` value, remembered to tell it untouched. */
  #startFromInitial(): void {
    const initial = this.source.initial?.();
    this.value = initial;
    this.initial = initial === undefined ? UNKNOWN : snapshot(initial);
  }

  #readError(err: unknown): SessionError {
    if (err instanceof SessionError) return err;
    return new SessionError(
      `Could not read the session of key "${this.key}" from storage: ${messageOf(err)}. ` +
        `The update was stopped so that the stored session is not replaced by initial data; ` +
        `check that the storage is reachable.`,
      this.key,
      { cause: err },
    );
  }

  /** A snapshot of what storage holds ({@link Known}). */
  get stored(): Known {
    if (this.#unsnapped !== NOTHING) {
      this.#stored = snapshot(this.#unsnapped);
      this.#unsnapped = NOTHING;
    }
    return this.#stored;
  }

  set stored(known: Known) {
    this.#stored = known;
    this.#unsnapped = NOTHING;
  }

  /** The live value, for a handler: from now on it may change it. */
  expose(): S | undefined {
    if (this.#unsnapped !== NOTHING) void this.stored;
    return this.value;
  }

  /** The memory storage's direct access, if its methods are its own right now. */
  get memory(): MemoryAccess | undefined {
    return memoryAccessOf(this.source.storage);
  }

  /** Counts an assignment by any update of the key; returns its turn (rule U3). */
  countAssignment(): number {
    this.rejected = undefined;
    const waiting = this.#nextAssignment;
    this.#nextAssignment = undefined;
    waiting?.resolve();
    return ++this.assignments;
  }

  /** Resolves at the next assignment of the key, by any update. */
  nextAssignment(): Promise<void> {
    return (this.#nextAssignment ??= Promise.withResolvers()).promise;
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
    if (this.known && this.value == null && this.source.initial !== undefined) {
      this.#startFromInitial();
    }
  }

  /**
   * Queues a save of the live value (rule K2). Returns `undefined` when it
   * is done at once (nothing to write, or a storage that answers
   * synchronously), else a promise that resolves once it is done: written,
   * found unchanged, or merged. Throws or rejects if it failed.
   */
  save(): Promise<void> | undefined {
    if (this.#queued === 0) {
      const done = saveSlot(this);
      return done === undefined ? undefined : this.#enqueue(done);
    }
    return this.#enqueue(this.#tail!.then(() => saveSlot(this)));
  }

  #enqueue(job: Promise<void>): Promise<void> {
    this.#queued++;
    const settled = () => void this.#queued--;
    this.#tail = job.then(settled, settled);
    return job;
  }
}

/**
 * The shared, in-process state of one session key: one storage read for all
 * updates of the key that run at the same time, one live value they all see,
 * and a queue that writes the key's changes one after another, in order.
 * With a conditional storage each write checks that nobody else wrote since
 * the read; with locking the key's lease is held while the key is in use.
 *
 * A storage that answers synchronously (the memory storage) is used without
 * a single promise: `load` and `commit` return `undefined` when they are
 * done, and a promise only when they have to wait.
 *
 * What storage holds is known in one of two forms: JSON text (the text path
 * of sessionkit's networked storages), or held data, clean JSON data that is
 * compared and copied without any text (the data path of the memory
 * storage, and the public methods of any other storage, whose values are
 * copied when read).
 *
 * @module
 */

import type { MaybePromise, StorageAdapter } from "./storage.ts";
import type { ConditionalStorage, LeaseStorage } from "./capabilities.ts";
import type { ConflictMerge } from "./options.ts";
import type { TextAccess, TextRecord } from "./text.ts";
import type { DataAccess, DataRecord } from "./data.ts";
import { Lease, type LockOptions } from "./lease.ts";
import { SessionConflictError, SessionError } from "./errors.ts";
import { copySession, serializeAndCopy } from "./serialization.ts";
import { cloneJson, isPromiseLike, sameJson, updateInPlace } from "./values.ts";

/**
 * Sessions whose JSON text is at most this long keep a private parsed copy
 * (a template) in their slot: the next read of the same text copies it,
 * which is several times faster than parsing. Bounded so that idle slots
 * never hold much memory.
 */
const TEMPLATE_MAX = 1024;

/** Marks a baseline or version that is not known (nothing was read yet). */
const UNKNOWN: unique symbol = Symbol("unknown");
/**
 * Clean JSON data storage holds: a {@link DataRecord} of the data path, or
 * a validated copy of what a public `read` returned or `write` was given.
 * Boxed so that it is never taken for text.
 */
interface Held {
  readonly data: unknown;
}
/**
 * What storage holds for the key: its JSON text on the text path, held data
 * otherwise; `null` for none stored, or unknown.
 */
type Baseline = string | Held | null | typeof UNKNOWN;

function isHeld(stored: Baseline): stored is Held {
  return typeof stored === "object" && stored !== null;
}
/** Version token of the stored session, `null` for none stored, or unknown. */
type Version = string | null | typeof UNKNOWN;

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A fresh value of what `stored` holds (`undefined` for nothing or unknown). */
function valueOf<S>(stored: Baseline): S | undefined {
  if (stored === null || stored === UNKNOWN) return undefined;
  return isHeld(stored) ? cloneJson(stored.data as S) : JSON.parse(stored) as S;
}

/**
 * What storage would hold for `value` that was read or given: its text, or
 * (`held`) a validated copy; unknown when it is not JSON data, so that it
 * never counts as unchanged and a change is always written.
 */
function loose(value: unknown, held: boolean): Baseline {
  if (value == null) return null;
  try {
    return held ? { data: copySession(value) } : JSON.stringify(value);
  } catch {
    return UNKNOWN;
  }
}

/** Where the sessions of one fragment live and how they are kept safe. */
export interface SlotSource<S> {
  readonly storage: StorageAdapter<S>;
  readonly initial: (() => S) | undefined;
  /** The storage's text fast path, if it is a sessionkit storage with one. */
  readonly text?: TextAccess;
  /** The storage's data fast path (the memory storage); never set with `text`. */
  readonly data?: DataAccess;
  /** Set when conflicts are detected: the storage's conditional writes. */
  readonly conditional?: ConditionalStorage<S>;
  /** `"error"` or a merge function; only used with `conditional`. */
  readonly onConflict: "error" | ConflictMerge<S>;
  readonly maxConflictRetries: number;
  /** Set when keys are locked: the storage's leases and the lock options. */
  readonly leases?: LeaseStorage;
  readonly lock?: LockOptions;
}

/**
 * An update that holds the session as a plain value on its context instead
 * of behind an accessor, which it may do while it is the only user of its
 * key. {@link SlotTable} calls `share` as soon as another update joins the
 * key. Nothing else can replace the live value meanwhile: a write of the key
 * keeps its update in the slot until it has landed (merges included), so
 * while a solo user exists, no other write of its key is running.
 */
export interface SoloUser {
  /**
   * Hands what the update assigned to the slot and puts the accessor on its
   * context, so that from now on it shares the live value with the others.
   */
  share(): void;
}

/** The shared state of one key. Created and dropped by {@link SlotTable}. */
export class Slot<S> {
  /** Updates currently using this key. */
  refs = 0;
  /** The only update using this key, when it holds the value directly. */
  solo: SoloUser | undefined = undefined;
  /** Queued or running writes and deletes. */
  pending = 0;
  /** Whether `value` holds the session (loaded or assigned). */
  known = false;
  /** The live session data every update of this key sees. */
  value: S | undefined = undefined;
  /** The key's lease, when keys are locked. */
  readonly lease: Lease | undefined;
  readonly source: SlotSource<S>;
  #baseline: Baseline = UNKNOWN;
  #version: Version = UNKNOWN;
  /** The initial value as first given (text, or held data), to tell it was not changed. */
  #initial: Baseline | undefined;
  /** A parsed copy of `#templateText` that no handler ever sees. */
  #template: unknown;
  #templateText: string | undefined;
  #loading: Promise<void> | undefined;
  /** The last queued write; `undefined` when none is queued. */
  #tail: Promise<void> | undefined;

  constructor(readonly key: string, readonly table: SlotTable<S>) {
    const source = this.source = table.source;
    this.lease = source.leases && source.lock
      ? new Lease(source.leases, key, source.lock)
      : undefined;
  }

  /**
   * Reads the session once, however many updates ask at the same time.
   * Returns `undefined` when the session is known (read synchronously, or
   * earlier), or a promise that settles when it is.
   */
  load(): Promise<void> | undefined {
    if (this.known) return undefined;
    if (this.#loading !== undefined) return this.#loading;
    const { text, data } = this.source;
    if (data !== undefined && this.pending === 0 && this.lease === undefined) {
      return this.#loadData(data);
    }
    if (text !== undefined && this.pending === 0 && this.lease === undefined) {
      let record: MaybePromise<TextRecord>;
      try {
        record = text.read(this.key);
      } catch (err) {
        throw this.#readError(err);
      }
      if (!isPromiseLike(record)) return this.#acceptText(record, text.exact);
      return this.#track(record.then(
        (r) => this.#acceptText(r, text.exact),
        (err) => Promise.reject(this.#readError(err)),
      ));
    }
    return this.#track(this.#read());
  }

  #track(loading: Promise<void>): Promise<void> {
    const tracked = loading.finally(() => (this.#loading = undefined));
    this.#loading = tracked;
    return tracked;
  }

  async #read(): Promise<void> {
    if (this.#tail !== undefined) await this.#tail; // a write of this key must land first
    await this.lease?.acquire();
    const { text, data, conditional, storage } = this.source;
    if (data !== undefined) return this.#loadData(data);
    if (text !== undefined) {
      let record: TextRecord;
      try {
        record = await text.read(this.key);
      } catch (err) {
        throw this.#readError(err);
      }
      return this.#acceptText(record, text.exact);
    }
    let raw: S | undefined | null;
    let version: Version = UNKNOWN;
    try {
      if (conditional) ({ value: raw, version } = await conditional.readVersioned(this.key));
      else raw = await storage.read(this.key);
    } catch (err) {
      throw this.#readError(err);
    }
    this.#accept(raw, loose(raw, true), version);
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

  /** Parses a text record; `exact` says whether its text can be the baseline. */
  #acceptText(record: TextRecord, exact: boolean): undefined {
    const { text, version } = record;
    if (text === null) return this.#accept(undefined, null, version);
    if (exact && text === this.#templateText) {
      return this.#accept(cloneJson(this.#template as S), text, version);
    }
    let raw: S;
    try {
      raw = JSON.parse(text);
      if (exact && text.length <= TEMPLATE_MAX) {
        this.#template = raw;
        this.#templateText = text;
        raw = cloneJson(raw);
      }
    } catch (err) {
      throw new SessionError(
        `The value stored under key "${this.key}" is not JSON text, so sessionkit did not write ` +
          `it. Delete it, or give this storage a prefix or table of its own.`,
        this.key,
        { cause: err },
      );
    }
    return this.#accept(raw, exact ? text : loose(raw, false), version);
  }

  /** Reads the data path, which answers synchronously. */
  #loadData(data: DataAccess): undefined {
    let record: DataRecord;
    try {
      record = data.read(this.key);
    } catch (err) {
      throw this.#readError(err);
    }
    return this.#acceptData(record);
  }

  /** Takes a data record; the record itself is the baseline (it is never changed). */
  #acceptData(record: DataRecord): undefined {
    if (record.data === null) return this.#accept(undefined, null, record.version);
    return this.#accept(cloneJson(record.data as S), record, record.version);
  }

  #accept(raw: S | null | undefined, baseline: Baseline, version: Version): undefined {
    this.#baseline = baseline;
    // Without conflict detection every write is blind, so no version is kept.
    this.#version = this.source.conditional !== undefined ? version : UNKNOWN;
    if (this.known) return; // assigned while the read was running: keep the assignment
    if (raw == null) {
      const initial = this.source.initial?.();
      this.value = initial;
      this.#initial = initial === undefined
        ? undefined
        : loose(initial, this.source.text === undefined);
    } else {
      this.value = raw;
      this.#initial = undefined;
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
   * first, so a value that cannot be stored throws here and nothing is
   * queued. Returns `undefined` when there was nothing to save or it was
   * saved synchronously, or a promise that resolves once this update's change
   * has landed.
   */
  commit(): Promise<void> | undefined {
    if (!this.known) return undefined;
    const value = this.value;
    const base = this.#baseline;
    let desired: Baseline;
    if (value == null) desired = null;
    else if (this.source.text === undefined) {
      // Held data: compare with it, store a validated copy.
      desired = isHeld(base) && sameJson(value, base.data)
        ? base
        : { data: copySession(value, this.key) };
    } else if (this.#templateText === base && sameJson(value, this.#template)) {
      // Equal to the stored data: nothing to stringify or check. Only when
      // the template is the baseline's: a storage that reorders keys (jsonb)
      // stores another text for the same data, which is no reason to write.
      desired = base;
    } else {
      // The copy is taken in the same tick as the text, so the two match.
      const { text, copy } = serializeAndCopy(value, this.key);
      desired = text;
      if (text.length <= TEMPLATE_MAX) {
        this.#template = copy;
        this.#templateText = text;
      }
    }
    if (this.#tail === undefined) {
      // Held data that sameJson found different is different: no second look.
      if (desired === base || this.#isUntouchedInitial(desired)) return undefined;
      const job = this.#change(desired);
      if (job !== undefined) this.#enqueue(job);
      return job;
    }
    const job = this.#tail.then(() => this.#apply(desired));
    this.#enqueue(job);
    return job;
  }

  #enqueue(job: Promise<void>): void {
    this.pending++;
    this.#tail = job.then(() => this.#settle(), () => this.#settle());
  }

  #settle(): void {
    if (--this.pending > 0) return;
    this.#tail = undefined;
    if (this.refs === 0) void this.table.idle(this);
  }

  /** Whether storage holds what `desired` would store. */
  #unchanged(desired: Baseline): boolean {
    const base = this.#baseline;
    if (desired === base) return true;
    if (isHeld(desired) && isHeld(base)) return sameJson(desired.data, base.data);
    return this.#isUntouchedInitial(desired);
  }

  /** Whether `desired` is a new session still equal to its initial value (not worth storing). */
  #isUntouchedInitial(desired: Baseline): boolean {
    const initial = this.#initial;
    if (this.#baseline !== null || desired === null || initial === undefined) return false;
    if (desired === initial) return true;
    return isHeld(desired) && isHeld(initial) && sameJson(desired.data, initial.data);
  }

  /** Stores `desired` unless storage already holds it (checked when its turn comes). */
  #apply(desired: Baseline): Promise<void> | undefined {
    return this.#unchanged(desired) ? undefined : this.#change(desired);
  }

  /** Stores `desired`, which differs from what storage holds. */
  #change(desired: Baseline): Promise<void> | undefined {
    if (this.lease !== undefined) return this.#applyLeased(this.lease, desired);
    return this.#write(desired);
  }

  async #applyLeased(lease: Lease, desired: Baseline): Promise<void> {
    await lease.acquire(); // a blind assignment did not take it yet
    lease.assertHeld();
    await this.#write(desired);
  }

  /** Writes `desired` (or deletes for `null`), synchronously if the storage can. */
  #write(desired: Baseline): Promise<void> | undefined {
    const version = this.#version;
    const checked = this.source.conditional !== undefined && version !== UNKNOWN;
    let result: unknown;
    try {
      result = this.#send(desired, checked ? version : UNKNOWN);
    } catch (err) {
      throw this.#writeError(err, desired);
    }
    if (!isPromiseLike(result)) return this.#written(desired, checked, result);
    return Promise.resolve(result).then(
      (r) => this.#written(desired, checked, r),
      (err) => Promise.reject(this.#writeError(err, desired)),
    );
  }

  /**
   * One write or delete. With a known `version`, only if the stored one is
   * still it: resolves to the new version (`null`: conflict) for a write,
   * or to whether it matched for a delete.
   */
  #send(desired: Baseline, version: Version): unknown {
    const { text, data, conditional, storage } = this.source;
    const key = this.key;
    const expected = version === UNKNOWN ? undefined : version;
    if (desired === null) {
      if (data !== undefined) return data.delete(key, expected);
      if (text !== undefined) return text.delete(key, expected);
      return expected === undefined
        ? storage.delete(key)
        : conditional!.deleteIfVersion(key, expected);
    }
    // A commit never stores an unknown: text on the text path, held data otherwise.
    if (text !== undefined) return text.write(key, desired as string, expected);
    const held = (desired as Held).data;
    if (data !== undefined) return data.write(key, held, expected);
    // Another storage may keep what it is given, or hand it out: it gets its own copy.
    return expected === undefined
      ? storage.write(key, cloneJson(held) as S)
      : conditional!.writeIfVersion(key, cloneJson(held) as S, expected);
  }

  #written(desired: Baseline, checked: boolean, result: unknown): Promise<void> | undefined {
    if (checked) {
      const landed = desired === null ? result === true : typeof result === "string";
      if (!landed) return this.#resolveConflict(desired);
      this.#version = desired === null ? null : result as string;
    } else {
      this.#version = UNKNOWN; // a blind write: later writes of this slot cannot check
    }
    this.#baseline = desired;
    return undefined;
  }

  #writeError(err: unknown, desired: Baseline): SessionError {
    if (err instanceof SessionError) return err;
    return new SessionError(
      `Could not ${desired === null ? "delete" : "write"} the session of key "${this.key}": ` +
        `${reason(err)}. This update's session changes were not saved.`,
      this.key,
      { cause: err },
    );
  }

  /**
   * Someone else wrote since this slot's read. Fails with
   * `onConflict: "error"`; with a merge function, reads the stored session,
   * merges, and tries again, up to `maxConflictRetries` times.
   */
  async #resolveConflict(desired: Baseline): Promise<void> {
    const { onConflict: merge, maxConflictRetries } = this.source;
    if (merge === "error") throw new SessionConflictError(this.key);
    let base = valueOf<S>(this.#baseline);
    let mine = valueOf<S>(desired);
    try {
      for (let merges = 0;; merges++) {
        if (merges >= maxConflictRetries) {
          throw new SessionConflictError(this.key, ` (gave up after ${merges} merges)`);
        }
        const fresh = await this.#readFresh();
        const merged = merge(fresh.value, mine, base);
        if (merged == null) {
          desired = null;
          mine = undefined;
        } else if (this.source.text === undefined) {
          const copy = copySession(merged, this.key);
          desired = { data: copy };
          mine = cloneJson(copy) as S; // the held copy is never shared with handlers
        } else {
          const serialized = serializeAndCopy(merged, this.key);
          desired = serialized.text;
          mine = serialized.copy as S;
        }
        base = fresh.value;
        const result = await this.#send(desired, fresh.version);
        const landed = desired === null ? result === true : typeof result === "string";
        if (!landed) continue;
        this.#version = desired === null ? null : result as string;
        this.#baseline = desired;
        this.value = updateInPlace(this.value, mine); // every update of the key sees the merge
        return;
      }
    } catch (err) {
      throw this.#writeError(err, desired);
    }
  }

  async #readFresh(): Promise<{ value: S | undefined; version: string | null }> {
    const { text, data, conditional } = this.source;
    if (data !== undefined) {
      const record = data.read(this.key);
      return { value: valueOf<S>(record.data === null ? null : record), version: record.version };
    }
    if (text === undefined) return await conditional!.readVersioned(this.key);
    const record = await text.read(this.key);
    const value = record.text === null ? undefined : JSON.parse(record.text) as S;
    return { value, version: record.version };
  }

  /**
   * Forgets the live value so the next user reads storage again. Used when
   * the last update of the key failed: its unsaved changes must not survive.
   */
  discard(): void {
    this.known = false;
    this.value = undefined;
    this.#baseline = UNKNOWN;
    this.#version = UNKNOWN;
  }
}

/** Idle slots a table keeps for reuse before it drops them. */
const KEEP_IDLE = 1024;

/**
 * The slots of one fragment of one middleware, by key. A slot nobody uses
 * holds no session data (the next update of its key reads storage again)
 * but stays in the table for reuse, so a busy chat does not allocate a new
 * one per update; once more than {@link KEEP_IDLE} idle slots pile up, they
 * are dropped.
 */
export class SlotTable<S> {
  readonly #slots = new Map<string, Slot<S>>();
  #idle = 0;

  constructor(readonly source: SlotSource<S>) {}

  /** Number of keys in use right now. */
  get size(): number {
    return this.#slots.size - this.#idle;
  }

  /** Joins the shared state of `key`, creating it if nobody uses it. */
  acquire(key: string): Slot<S> {
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      slot = new Slot(key, this);
      this.#slots.set(key, slot);
    } else if (slot.refs === 0 && slot.pending === 0) {
      this.#idle--;
    } else {
      slot.solo?.share(); // the key is shared from now on
    }
    slot.refs++;
    return slot;
  }

  /**
   * Leaves the shared state. `ok` is false when the update failed; if it was
   * the last user, its unsaved changes are dropped. Returns a promise only
   * when the key's lease has to be given up.
   */
  release(slot: Slot<S>, ok: boolean): Promise<void> | undefined {
    if (--slot.refs > 0) return undefined;
    if (!ok) slot.discard();
    return slot.pending === 0 ? this.idle(slot) : undefined;
  }

  /** Marks a slot nobody uses and that has nothing left to write as idle. */
  idle(slot: Slot<S>): Promise<void> | undefined {
    slot.discard(); // storage may change before the key is used again
    if (++this.#idle > KEEP_IDLE) this.#dropIdle();
    return slot.lease?.release();
  }

  #dropIdle(): void {
    for (const [key, slot] of this.#slots) {
      if (slot.refs === 0 && slot.pending === 0) this.#slots.delete(key);
    }
    this.#idle = 0;
  }
}

/**
 * The shared, in-process state of one session key: one storage read for all
 * updates of the key that run at the same time, one live value they all see,
 * and a queue that writes the key's changes one after another, in order.
 * With a conditional storage each write checks that nobody else wrote since
 * the read; with locking the key's lease is held while the key is in use.
 *
 * @module
 */

import type { StorageAdapter } from "./storage.ts";
import type { ConditionalStorage, LeaseStorage } from "./capabilities.ts";
import type { ConflictMerge } from "./options.ts";
import { Lease, type LockOptions } from "./lease.ts";
import { SessionConflictError, SessionError } from "./errors.ts";
import { serializeSession } from "./serialization.ts";

/** Marks a baseline or version that is not known (nothing was read yet). */
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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

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
  /** The key's lease, when keys are locked. */
  readonly lease: Lease | undefined;
  #baseline: Baseline = UNKNOWN;
  #version: string | null | typeof UNKNOWN = UNKNOWN;
  #initialText: string | undefined;
  #loading: Promise<void> | undefined;
  #tail: Promise<void> = Promise.resolve();

  constructor(
    readonly key: string,
    readonly source: SlotSource<S>,
    readonly onIdle: (slot: Slot<S>) => Promise<void>,
  ) {
    this.lease = source.leases && source.lock
      ? new Lease(source.leases, key, source.lock)
      : undefined;
  }

  /** Reads the session once, however many updates ask at the same time. */
  load(): Promise<void> {
    if (this.known) return Promise.resolve();
    this.#loading ??= this.#read().finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  async #read(): Promise<void> {
    await this.#tail; // a write of this key still running must land first
    await this.lease?.acquire();
    let raw: S | undefined | null;
    let version: string | null | typeof UNKNOWN = UNKNOWN;
    try {
      const { conditional } = this.source;
      if (conditional) ({ value: raw, version } = await conditional.readVersioned(this.key));
      else raw = await this.source.storage.read(this.key);
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
    this.#version = version;
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
    if (this.lease) {
      await this.lease.acquire(); // a blind assignment did not take it yet
      this.lease.assertHeld();
    }
    const { storage, conditional } = this.source;
    try {
      if (conditional && this.#version !== UNKNOWN) {
        desired = await this.#applyConditional(conditional, desired, this.#version);
      } else {
        if (desired === null) await storage.delete(this.key);
        else await storage.write(this.key, JSON.parse(desired));
        this.#version = UNKNOWN; // a blind write: later writes of this slot cannot check
      }
    } catch (err) {
      if (err instanceof SessionError) throw err;
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

  /** Writes only if nobody else wrote since `version`; merges or fails otherwise. */
  async #applyConditional(
    storage: ConditionalStorage<S>,
    desired: string | null,
    version: string | null,
  ): Promise<string | null> {
    const merge = this.source.onConflict;
    // What this update read; parsed only if a merge needs it.
    let base: S | undefined | typeof UNKNOWN = UNKNOWN;
    for (let attempt = 0;; attempt++) {
      const mine = desired === null ? undefined : JSON.parse(desired) as S;
      const next = mine === undefined
        ? ((await storage.deleteIfVersion(this.key, version)) ? null : false)
        : await storage.writeIfVersion(this.key, mine, version) ?? false;
      if (next !== false) {
        this.#version = next;
        if (attempt > 0) this.#refresh(mine);
        return desired;
      }
      if (merge === "error") throw new SessionConflictError(this.key);
      if (attempt >= this.source.maxConflictRetries) {
        throw new SessionConflictError(this.key, ` (gave up after ${attempt} merges)`);
      }
      const fresh = await storage.readVersioned(this.key);
      if (base === UNKNOWN) {
        base = this.#baseline === null ? undefined : JSON.parse(this.#baseline as string) as S;
      }
      const merged = merge(fresh.value, mine, base);
      desired = merged == null ? null : serializeSession(merged, this.key);
      version = fresh.version;
      base = fresh.value;
    }
  }

  /** After a merge: let every update sharing this slot see the merged data. */
  #refresh(next: S | undefined): void {
    const current = this.value;
    if (isPlainObject(current) && isPlainObject(next)) {
      for (const name of Object.keys(current)) delete current[name];
      for (const [name, item] of Object.entries(next)) {
        Object.defineProperty(current, name, {
          value: item,
          writable: true,
          enumerable: true,
          configurable: true,
        });
      }
    } else if (Array.isArray(current) && Array.isArray(next)) {
      current.splice(0, current.length, ...next);
    } else {
      this.value = next;
    }
  }

  #settle(): void {
    this.pending--;
    if (this.refs === 0 && this.pending === 0) void this.onIdle(this);
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
      slot = new Slot(key, this.source, async (idle) => {
        if (this.#slots.get(idle.key) === idle) this.#slots.delete(idle.key);
        await idle.lease?.release();
      });
      this.#slots.set(key, slot);
    }
    slot.refs++;
    return slot;
  }

  /**
   * Leaves the shared state. `ok` is false when the update failed; if it was
   * the last user, its unsaved changes are dropped. Resolves once the key's
   * lease (if any) is given up.
   */
  async release(slot: Slot<S>, ok: boolean): Promise<void> {
    slot.refs--;
    if (slot.refs > 0) return;
    if (!ok) slot.discard();
    if (slot.pending === 0) await slot.onIdle(slot);
  }
}

/**
 * One session fragment: its options resolved once per middleware, and its
 * binding to a single update (key, shared slot, and what the update did).
 *
 * @module
 */

import type { SessionContext } from "./context.ts";
import type { SessionOptions } from "./options.ts";
import type { StorageAdapter } from "./storage.ts";
import type { LeaseStorage } from "./capabilities.ts";
import { type Slot, SlotTable, type SoloUser } from "./slot.ts";
import type { Installer } from "./install.ts";
import { SessionKeyError } from "./errors.ts";
import { isConditionalStorage, isLeaseStorage } from "./capabilities.ts";
import { textAccessOf } from "./text.ts";
import { dataAccessOf } from "./data.ts";
import { isPromiseLike } from "./values.ts";
import { perChat } from "./keys.ts";
import { MemorySessionStorage } from "../storages/memory.ts";

/** The update type of `ctx`, such as `message` or `inline_query`. */
export function updateTypeOf(ctx: SessionContext): string {
  for (const name in ctx.update) if (name !== "update_id") return name;
  return "unknown";
}

/** The options of one fragment, resolved with their defaults. */
export class Fragment<S, C extends SessionContext> {
  readonly table: SlotTable<S>;
  readonly #getKey: NonNullable<SessionOptions<S, C>["getSessionKey"]>;
  readonly #prefix: string;

  constructor(options: SessionOptions<S, C>, readonly property: string) {
    const storage: StorageAdapter<S> = options.storage ?? new MemorySessionStorage<S>();
    const { onConflict, lock } = options;
    const conditional = isConditionalStorage<S>(storage);
    if (onConflict !== undefined && onConflict !== "overwrite" && !conditional) {
      throw new Error(
        `ctx.${property}: onConflict needs a storage with conditional writes (readVersioned, ` +
          `writeIfVersion, deleteIfVersion); this storage has none. Use a sessionkit storage, ` +
          `or leave onConflict out to keep grammY's last-write-wins behaviour.`,
      );
    }
    if (lock !== undefined && !isLeaseStorage(storage)) {
      throw new Error(
        `ctx.${property}: lock needs a storage with leases (acquireLease, renewLease, ` +
          `releaseLease); this storage has none. Use a sessionkit storage, or leave lock out.`,
      );
    }
    if (lock !== undefined) {
      for (const name of ["ttl", "wait"] as const) {
        const v = lock[name];
        if (v !== undefined && !(v > 0 && Number.isFinite(v))) {
          throw new RangeError(
            `ctx.${property}: lock.${name} must be a positive number of ms, got ${v}.`,
          );
        }
      }
    }
    const data = dataAccessOf(storage);
    this.table = new SlotTable<S>({
      storage,
      data,
      text: data === undefined ? textAccessOf(storage) : undefined,
      initial: options.initial,
      conditional: conditional && onConflict !== "overwrite" ? storage : undefined,
      onConflict: typeof onConflict === "function" ? onConflict : "error",
      maxConflictRetries: options.maxConflictRetries ?? 5,
      leases: lock !== undefined ? storage as unknown as LeaseStorage : undefined,
      lock,
    });
    this.#getKey = options.getSessionKey ??
      (perChat as NonNullable<SessionOptions<S, C>["getSessionKey"]>);
    this.#prefix = options.prefix ?? "";
  }

  /**
   * Resolves the storage key of an update (prefix included); a promise only
   * when `getSessionKey` returned one.
   */
  key(ctx: C): string | undefined | Promise<string | undefined> {
    const key = this.#getKey(ctx);
    if (isPromiseLike<string | undefined>(key)) {
      return Promise.resolve(key).then((k) => k === undefined ? undefined : this.#prefix + k);
    }
    return key === undefined ? undefined : this.#prefix + key;
  }

  /** Binds this fragment to one update. */
  bind(key: string | undefined, ctx: SessionContext): Binding<S> {
    return new Binding(this.table, key, ctx, this.property);
  }
}

/** Marks a binding whose update does not hold the value directly. */
const SHARED: unique symbol = Symbol("shared");

/**
 * What one update does with one fragment. `load` and `finish` return
 * `undefined` when they completed synchronously, or a promise otherwise.
 */
export class Binding<S> implements SoloUser {
  #slot: Slot<S> | undefined;
  #assigning: Promise<void> | undefined;
  /**
   * While this update is the only user of its key: the value it put on the
   * context as a plain property (see {@link Binding.present}).
   */
  #handed: unknown = SHARED;
  #installer: Installer | undefined;

  constructor(
    readonly table: SlotTable<S>,
    readonly key: string | undefined,
    readonly ctx: SessionContext,
    readonly property: string,
  ) {}

  #acquire(): Slot<S> {
    if (this.key === undefined) throw new SessionKeyError(updateTypeOf(this.ctx), this.property);
    return this.#slot ??= this.table.acquire(this.key);
  }

  /** Loads the session (strict mode, before the handler runs). */
  load(): Promise<void> | undefined {
    return this.#acquire().load();
  }

  /**
   * Puts the loaded value on the context (strict mode, after `load`). While
   * this update is the only one using its key, the property is a plain data
   * property: defining an accessor on every context costs about as much as
   * the rest of the session layer together. The moment a second update of
   * the key joins, the slot calls {@link Binding.share}, which hands over
   * what this update assigned and switches it to the shared accessor, so the
   * two see one live value exactly as if both had had the accessor all along.
   */
  present(installer: Installer): void {
    const slot = this.#acquire();
    if (slot.refs === 1 && slot.solo === undefined) {
      slot.solo = this;
      this.#installer = installer;
      this.#handed = slot.value;
      (this.ctx as unknown as Record<string, unknown>)[this.property] = slot.value;
    } else {
      installer.define(this.ctx, this);
    }
  }

  /** See {@link SoloUser.share}. */
  share(): void {
    this.#takeBack();
    this.#installer!.define(this.ctx, this);
  }

  /** Leaves solo mode, applying what the update assigned to the property. */
  #takeBack(): void {
    if (this.#handed === SHARED) return;
    const handed = this.#handed;
    this.#leaveSolo();
    const ctx = this.ctx as unknown as Record<string, unknown>;
    const value = ctx[this.property];
    // `delete ctx.session` removes the property; with the accessor that
    // changed nothing, so here it changes nothing either.
    if (value === handed || (value === undefined && !Object.hasOwn(ctx, this.property))) return;
    this.set(value as S);
  }

  #leaveSolo(): void {
    this.#handed = SHARED;
    this.#slot!.solo = undefined;
  }

  /** The live value (strict mode). */
  get(): S {
    return this.#acquire().value as S;
  }

  /** A promise of the value, reading storage on first use (lazy mode). */
  getLazy(): Promise<S> {
    try {
      const slot = this.#acquire();
      if (this.#assigning !== undefined) return this.#getLazyAfter(slot, this.#assigning);
      const loading = slot.load();
      if (loading === undefined) return Promise.resolve(slot.value as S);
      return loading.then(() => slot.value as S);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async #getLazyAfter(slot: Slot<S>, assigning: Promise<void>): Promise<S> {
    await assigning;
    const loading = slot.load();
    if (loading !== undefined) await loading;
    return slot.value as S;
  }

  /** Assigns a value, or a promise of one in lazy mode. */
  set(value: S | null | undefined | Promise<S | null | undefined>): void {
    const slot = this.#acquire();
    if (value instanceof Promise) {
      const assigning = value.then((v) => slot.assign(v));
      this.#assigning = assigning;
      assigning.catch(() => {}); // surfaced by finish()
    } else {
      this.#assigning = undefined;
      slot.assign(value);
    }
  }

  /** Whether this update touched the session at all. */
  get used(): boolean {
    return this.#slot !== undefined;
  }

  /**
   * Ends the update for this fragment: saves its changes when `ok`, then
   * leaves the shared state. Throws (or rejects) if saving failed.
   */
  finish(ok: boolean): Promise<void> | undefined {
    const slot = this.#slot;
    if (slot === undefined) return undefined;
    if (!ok) {
      if (this.#handed !== SHARED) this.#leaveSolo(); // what it assigned is dropped
      return this.table.release(slot, false);
    }
    this.#takeBack();
    if (this.#assigning !== undefined) return this.#finishAssigned(slot, this.#assigning);
    let saving: Promise<void> | undefined;
    try {
      saving = slot.commit();
    } catch (err) {
      return this.#fail(slot, err);
    }
    if (saving === undefined) return this.table.release(slot, true);
    return saving.then(
      () => this.table.release(slot, true),
      (err) => this.#fail(slot, err),
    );
  }

  async #finishAssigned(slot: Slot<S>, assigning: Promise<void>): Promise<void> {
    try {
      await assigning;
    } catch (err) {
      return await this.#fail(slot, err);
    }
    if (this.#assigning === assigning) this.#assigning = undefined;
    const next = this.finish(true);
    if (next !== undefined) await next;
  }

  /** Leaves the shared state after a failed save, then throws `err`. */
  #fail(slot: Slot<S>, err: unknown): never | Promise<never> {
    const releasing = this.table.release(slot, false);
    if (releasing === undefined) throw err;
    return releasing.then(() => Promise.reject(err));
  }
}

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
import { type Slot, SlotTable } from "./slot.ts";
import { SessionKeyError } from "./errors.ts";
import { isConditionalStorage, isLeaseStorage } from "./capabilities.ts";
import { textAccessOf } from "./text.ts";
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
    this.table = new SlotTable<S>({
      storage,
      text: textAccessOf(storage),
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

/**
 * What one update does with one fragment. `load` and `finish` return
 * `undefined` when they completed synchronously, or a promise otherwise.
 */
export class Binding<S> {
  #slot: Slot<S> | undefined;
  #assigning: Promise<void> | undefined;

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

  /** The live value (strict mode). */
  get(): S {
    return this.#acquire().value as S;
  }

  /** A promise of the value, reading storage on first use (lazy mode). */
  async getLazy(): Promise<S> {
    const slot = this.#acquire();
    if (this.#assigning !== undefined) await this.#assigning;
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
    if (!ok) return this.table.release(slot, false);
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

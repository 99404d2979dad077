/**
 * One session fragment: its options resolved once per middleware, its keys,
 * and its binding to each update (`src/binding.ts`).
 *
 * @module
 */

import type { SessionContext } from "./context.ts";
import type { SessionOptions } from "./options.ts";
import type { StorageAdapter } from "./storage.ts";
import type { LeaseStorage } from "./capabilities.ts";
import { SlotTable } from "./slot_table.ts";
import { Binding } from "./binding.ts";
import { isConditionalStorage, isLeaseStorage } from "./capabilities.ts";
import { isPromiseLike } from "./values.ts";
import { perChat } from "./keys.ts";
import { MemorySessionStorage } from "../storages/memory.ts";

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
    const problem = lock === undefined
      ? undefined
      : (storage as unknown as LeaseStorage).leaseProblem;
    if (problem !== undefined) {
      throw new Error(`ctx.${property}: lock cannot be used with this storage: ${problem}`);
    }
    this.table = new SlotTable<S>({
      storage,
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

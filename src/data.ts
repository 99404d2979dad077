/**
 * The internal data fast path. The memory storage keeps each session as
 * clean JSON data: the validated copy the middleware made when the session
 * changed, which no caller ever holds. Through this path the middleware
 * hands that copy over as it is and, on a read, copies the held data, so a
 * session in memory is never turned into text and parsed back.
 *
 * Not part of the public API, like the text path (`src/text.ts`): a storage
 * registers its access with {@link provideDataAccess} and the middleware
 * looks it up with {@link dataAccessOf}. Other storages go through the text
 * path or the public `StorageAdapter` methods.
 *
 * @module
 */

/** The data stored under one key and its version. */
export interface DataRecord {
  /**
   * Clean JSON data (what `JSON.parse` or a validated copy gives), or `null`
   * when nothing is stored (or it expired). Never changed once stored:
   * whoever hands it to a handler copies it first.
   */
  readonly data: unknown;
  /** The version token (as `readVersioned` gives it), `null` when nothing is stored. */
  readonly version: string | null;
}

/**
 * Data-level access to a storage that answers synchronously. Every method
 * behaves as its public counterpart (same TTL renewal, same bound), except
 * that values are clean JSON data already validated by the middleware, and
 * are kept, not copied.
 */
export interface DataAccess {
  /** Reads the data and version of `key` (renews the TTL as `read` does). */
  read(key: string): DataRecord;
  /**
   * Stores `data` under `key`, keeping it as it is. With `expected` given
   * (`null`: only if nothing is stored), only if the stored version is still
   * that one: returns the new version, or `null` when it differed and
   * nothing was written. Without `expected`, returns `undefined`.
   */
  write(key: string, data: unknown, expected?: string | null): string | null | undefined;
  /**
   * Deletes `key`. With `expected` given, only if the stored version is still
   * that one; returns whether it was. Without it, returns `true`.
   */
  delete(key: string, expected?: string | null): boolean;
}

const registry = new WeakMap<object, DataAccess>();

/** Registers the data access of `storage` (called by the memory storage). */
export function provideDataAccess(storage: object, access: DataAccess): void {
  registry.set(storage, access);
}

/** The data access of `storage`, if it is a sessionkit storage that has one. */
export function dataAccessOf(storage: object): DataAccess | undefined {
  return registry.get(storage);
}

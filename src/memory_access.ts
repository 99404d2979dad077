/**
 * The middleware's direct way into a `MemorySessionStorage`, used only
 * while it is safe to skip the public methods: the storage is a plain
 * `MemorySessionStorage` (not a subclass) and none of its methods was
 * replaced on the instance, so calling a public method would do exactly
 * this (rule A1 still holds: nothing a user could override is bypassed).
 *
 * What it buys: the storage keeps the validated copy the middleware makes
 * and hands out what it holds (never changed once stored) to be copied by
 * the middleware once, instead of copying on both sides of every call.
 * `bench/middleware_bench.ts` measures it ("sessionkit session" against
 * "sessionkit session on a MemorySessionStorage subclass").
 *
 * @module
 */

/** What the memory storage holds for one key. */
export interface HeldEntry {
  /** Clean JSON data, never changed once stored. */
  readonly data: unknown;
  /** Its version. */
  readonly version: string;
}

/** Direct access to one memory storage. */
export interface MemoryAccess {
  /** The entry of `key` (its TTL renewed, as `read` does), if any. */
  read(key: string): HeldEntry | undefined;
  /**
   * Keeps `data` (a validated copy nobody else holds) under `key`; with
   * `expected`, only if the stored version is still that one. Returns the
   * new version, or `null` when the version differed.
   */
  write(key: string, data: unknown, expected?: string | null): string | null;
  /** Deletes `key`; with `expected`, only if the version is still that one. */
  delete(key: string, expected?: string | null): boolean;
}

const accesses = new WeakMap<object, { prototype: object; access: MemoryAccess }>();

/** The public methods that, if replaced, make the direct access unsafe. */
const PUBLIC = [
  "read",
  "write",
  "delete",
  "readVersioned",
  "writeIfVersion",
  "deleteIfVersion",
] as const;

/** Registers the direct access of a memory storage (called by its constructor). */
export function provideMemoryAccess(
  storage: object,
  prototype: object,
  access: MemoryAccess,
): void {
  accesses.set(storage, { prototype, access });
}

/**
 * The direct access of `storage`, if it is a plain `MemorySessionStorage`
 * whose public methods nobody replaced; `undefined` otherwise.
 */
export function memoryAccessOf(storage: object): MemoryAccess | undefined {
  const found = accesses.get(storage);
  if (found === undefined || Object.getPrototypeOf(storage) !== found.prototype) return undefined;
  for (const name of PUBLIC) if (Object.hasOwn(storage, name)) return undefined;
  return found.access;
}

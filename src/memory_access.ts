/**
 * The middleware's direct way into a `MemorySessionStorage`, used only
 * while it is safe to skip the public methods: every public method the
 * storage has is the class's own (none replaced on the instance, on the
 * prototype or by a subclass), so calling it would do exactly this (rule
 * A1 still holds: nothing a user could override is bypassed). Checked at
 * the start of every update of a key.
 *
 * The access is the storage's memory driver itself
 * (`storages/memory/driver.ts`): the public methods and this way in run
 * the same code. `MemorySessionStorage` writes `read`, `write` and `delete`
 * out itself and inherits `readVersioned`, `writeIfVersion` and
 * `deleteIfVersion` from `DriverStorage`; the originals are taken from its
 * prototype when the class is defined, so an inherited method is compared
 * against the `DriverStorage` function, and patching it on either
 * prototype turns the direct way off.
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
  readonly payload: unknown;
  /** Its version. */
  readonly version: string;
}

/** Direct access to one memory storage. */
export interface MemoryAccess {
  /** The entry of `key` (its TTL renewed, as `read` does), if any. */
  read(key: string): HeldEntry | undefined;
  /**
   * Keeps `data` (a validated copy nobody else holds) under `key`; with
   * `expected` a version or `null`, only if the stored version is still
   * that one (an evicted, otherwise unchanged session still has its
   * version). Returns the new version, or `null` when the version differed.
   */
  write(key: string, data: unknown, expected: string | null | undefined): string | null;
  /** Deletes `key`; with `expected` a version or `null`, only if it is still that one. */
  delete(key: string, expected: string | null | undefined): boolean;
}

const accesses = new WeakMap<object, MemoryAccess>();

/** The public methods that, if replaced, make the direct access unsafe. */
interface Methods {
  read: unknown;
  write: unknown;
  delete: unknown;
  readVersioned: unknown;
  writeIfVersion: unknown;
  deleteIfVersion: unknown;
}

/** The methods of the class as defined, taken before any code could replace them. */
let originals: Methods | undefined;
/** The base class's prototype and its methods, which the class's own call through `super`. */
let base: Methods | undefined;
let baseOriginals: Methods | undefined;

function methodsOf(prototype: Methods): Methods {
  const { read, write, delete: remove, readVersioned, writeIfVersion, deleteIfVersion } = prototype;
  return { read, write, delete: remove, readVersioned, writeIfVersion, deleteIfVersion };
}

/**
 * Records the class's own methods and those of its base class, whose
 * methods the class's own call through `super` (called once, right where
 * the class is defined).
 */
export function registerMemoryClass(prototype: Methods, basePrototype: Methods): void {
  originals = methodsOf(prototype);
  base = basePrototype;
  baseOriginals = methodsOf(basePrototype);
}

/** Registers the direct access of a memory storage (called by its constructor). */
export function provideMemoryAccess(storage: object, access: MemoryAccess): void {
  accesses.set(storage, access);
}

/**
 * The direct access of `storage`, if it is a memory storage whose public
 * methods are the class's own: none replaced on the instance, on the
 * prototype, or by a subclass. The middleware asks once per update.
 */
export function memoryAccessOf(storage: object): MemoryAccess | undefined {
  const access = accesses.get(storage);
  const o = originals;
  const b = base;
  const bo = baseOriginals;
  if (access === undefined || o === undefined || b === undefined || bo === undefined) {
    return undefined;
  }
  const m = storage as Methods;
  // Named loads, one per method: cheap enough to do for every update. The
  // base class's methods count too: the class's own reach them by `super`.
  return m.read === o.read && m.write === o.write && m.delete === o.delete &&
      m.readVersioned === o.readVersioned && m.writeIfVersion === o.writeIfVersion &&
      m.deleteIfVersion === o.deleteIfVersion && b.read === bo.read && b.write === bo.write &&
      b.delete === bo.delete && b.readVersioned === bo.readVersioned &&
      b.writeIfVersion === bo.writeIfVersion && b.deleteIfVersion === bo.deleteIfVersion
    ? access
    : undefined;
}

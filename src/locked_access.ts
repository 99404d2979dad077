/**
 * When the middleware may call a storage's joined lease methods instead of
 * the methods they stand for (see `LockedStorage`): `acquireLeaseAndRead`
 * for `acquireLease` and the read, `saveAndReleaseLease` for the write or
 * delete and `releaseLease`, `saveKeepingLease` for the write or delete.
 * Each only while none of the methods it stands
 * for is overridden below the object that defines it (rule A1: an override
 * always sees its calls). An encrypting subclass that overrides
 * `readVersioned` and `writeIfVersion`, say, gets the four separate calls;
 * one that overrides a joined call itself gets that call.
 *
 * The storages shipped with sessionkit define the joined methods on
 * `DriverStorage` and `AsyncDriverStorage`, whose methods are recorded when
 * those classes are defined ({@link registerLockedClass}): replacing one on
 * either prototype turns the joined calls off too.
 *
 * @module
 */

import type { LockedStorage } from "./capabilities.ts";

/** Each joined call, and the methods it stands for. */
const JOINED = {
  acquireLeaseAndRead: ["acquireLease", "read", "readVersioned"],
  saveAndReleaseLease: [
    "write",
    "writeIfVersion",
    "delete",
    "deleteIfVersion",
    "releaseLease",
  ],
  saveKeepingLease: ["write", "writeIfVersion", "delete", "deleteIfVersion"],
} as const;

type Joined = keyof typeof JOINED;
type Name = Joined | typeof JOINED[Joined][number];
type Methods = Partial<Record<Name, unknown>>;

const NAMES: readonly Name[] = [
  ...Object.keys(JOINED) as Joined[],
  ...Object.values(JOINED).flat(),
];

/** Prototypes of sessionkit's classes, with their methods as defined. */
const registered = new Map<object, Methods>();

/**
 * Records the methods of a class that defines the joined lease methods
 * (called once, right after the class is defined).
 */
export function registerLockedClass(prototype: object): void {
  const methods: Methods = {};
  for (const name of NAMES) methods[name] = (prototype as Methods)[name];
  registered.set(prototype, methods);
}

/** The object in `storage`'s prototype chain (itself included) that defines `name`. */
function definer(storage: object, name: string): object | undefined {
  for (let o: object | null = storage; o !== null; o = Object.getPrototypeOf(o)) {
    if (Object.hasOwn(o, name)) return o;
  }
  return undefined;
}

/**
 * `storage` as a {@link LockedStorage}, if the middleware may make the
 * joined call `joined` now: the storage has it, nothing below the object
 * that defines it overrides a method it stands for, and nothing of that on
 * sessionkit's own classes was replaced. Asked once per locked read and
 * save.
 */
function joinedCall<T>(storage: object, joined: Joined): LockedStorage<T> | undefined {
  const s = storage as Methods;
  if (typeof s[joined] !== "function") return undefined;
  const owner = definer(storage, joined)!;
  const parts = JOINED[joined];
  if (owner !== storage) {
    for (const name of parts) if (s[name] !== (owner as Methods)[name]) return undefined;
  }
  for (let o: object | null = owner; o !== null; o = Object.getPrototypeOf(o)) {
    const recorded = registered.get(o);
    if (recorded === undefined) continue;
    const current = o as Methods;
    if (Object.hasOwn(o, joined) && current[joined] !== recorded[joined]) return undefined;
    for (const name of parts) if (current[name] !== recorded[name]) return undefined;
  }
  return storage as unknown as LockedStorage<T>;
}

/** `storage`, if the lease may be taken with the read in one call (`acquireLeaseAndRead`). */
export function joinedReadOf<T>(storage: object): LockedStorage<T> | undefined {
  return joinedCall(storage, "acquireLeaseAndRead");
}

/** `storage`, if a save may give the lease up in the same call (`saveAndReleaseLease`). */
export function joinedSaveOf<T>(storage: object): LockedStorage<T> | undefined {
  return joinedCall(storage, "saveAndReleaseLease");
}

/** `storage`, if a save may check the lease in the same call and keep it (`saveKeepingLease`). */
export function joinedKeepOf<T>(storage: object): LockedStorage<T> | undefined {
  return joinedCall(storage, "saveKeepingLease");
}

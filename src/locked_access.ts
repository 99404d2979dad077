/**
 * When the middleware may call a storage's joined lease methods
 * (`acquireLeaseAndRead`, `saveAndReleaseLease`, see `LockedStorage`)
 * instead of the methods they stand for: only while none of those methods
 * is overridden below the object that defines the joined ones (rule A1: an
 * override always sees its calls). An encrypting subclass that overrides
 * `readVersioned` or `write`, say, gets the four separate calls.
 *
 * The storages shipped with sessionkit define the joined methods on
 * `DriverStorage` and `AsyncDriverStorage`, whose methods are recorded when
 * those classes are defined ({@link registerLockedClass}): replacing one on
 * either prototype turns the joined calls off too.
 *
 * @module
 */

import type { LockedStorage } from "./capabilities.ts";

/** The methods a joined call stands for, and the joined methods themselves. */
const METHODS = [
  "read",
  "readVersioned",
  "write",
  "writeIfVersion",
  "delete",
  "deleteIfVersion",
  "acquireLease",
  "releaseLease",
  "acquireLeaseAndRead",
  "saveAndReleaseLease",
] as const;

type Methods = Record<typeof METHODS[number], unknown>;

/** Prototypes of sessionkit's classes, with their methods as defined. */
const registered = new Map<object, Methods>();

function methodsOf(target: object): Methods {
  const source = target as Methods;
  const methods = {} as Methods;
  for (const name of METHODS) methods[name] = source[name];
  return methods;
}

function same(target: object, methods: Methods): boolean {
  const source = target as Methods;
  for (const name of METHODS) if (source[name] !== methods[name]) return false;
  return true;
}

/**
 * Records the methods of a class that defines the joined lease methods
 * (called once, right after the class is defined).
 */
export function registerLockedClass(prototype: object): void {
  registered.set(prototype, methodsOf(prototype));
}

/** The object in `storage`'s prototype chain (itself included) that defines `name`. */
function definer(storage: object, name: string): object | undefined {
  for (let o: object | null = storage; o !== null; o = Object.getPrototypeOf(o)) {
    if (Object.hasOwn(o, name)) return o;
  }
  return undefined;
}

/**
 * `storage` as a {@link LockedStorage}, if the middleware may use its joined
 * lease methods now; else `undefined`. Asked once per locked read and save.
 */
export function lockedAccessOf<T>(storage: object): LockedStorage<T> | undefined {
  const s = storage as Partial<Methods>;
  if (typeof s.acquireLeaseAndRead !== "function" || typeof s.saveAndReleaseLease !== "function") {
    return undefined;
  }
  const owner = definer(storage, "acquireLeaseAndRead");
  if (owner === undefined || owner !== definer(storage, "saveAndReleaseLease")) return undefined;
  // Nothing below the definer overrides a method the joined calls stand for.
  if (owner !== storage && !same(storage, methodsOf(owner))) return undefined;
  // A class of sessionkit's: nothing replaced on its prototype or its base's either.
  for (let o: object | null = owner; o !== null; o = Object.getPrototypeOf(o)) {
    const recorded = registered.get(o);
    if (recorded !== undefined && !same(o, recorded)) return undefined;
  }
  return storage as unknown as LockedStorage<T>;
}

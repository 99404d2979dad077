/**
 * What a slot knows of storage is a snapshot (`src/snapshot.ts`), or
 * `NONE` (nothing stored) or `UNKNOWN`: comparing a live value with it, and
 * turning it back into a value for user code.
 *
 * @module
 */

import { NONE, UNKNOWN } from "./slot.ts";
import { fromSnapshot, OPAQUE, sameAs } from "./snapshot.ts";

/** Whether `value` is what the snapshot `known` holds (`NONE`: nothing). */
export function matches(value: unknown, known: unknown): boolean {
  if (known === NONE) return value == null;
  if (known === UNKNOWN || value == null) return false;
  return sameAs(value, known);
}

/** A value of what a snapshot holds, for user code: `undefined` for nothing. */
export function valueOf<S>(known: unknown, fallback?: unknown): S | undefined {
  if (known === NONE || known === UNKNOWN) return undefined;
  return (known === OPAQUE ? fallback : fromSnapshot(known)) as S | undefined;
}

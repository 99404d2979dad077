/**
 * Snapshots: how the middleware remembers what storage holds, to tell
 * whether a session changed. A snapshot is a deep copy of plain objects,
 * arrays, primitives and `Date`s, compared by content. Any storage's values
 * fit, JSON or not (a third-party adapter may hand out `Date`s); a value
 * holding anything else (a class instance, a `Map`, a function, a cycle)
 * has no snapshot and always counts as changed, so it is always written.
 *
 * @module
 */

import { defineData } from "./values.ts";

/** What {@link snapshot} gives for a value it cannot copy and compare. */
export const OPAQUE: unique symbol = Symbol("no snapshot");

/** A deep copy of `value` as {@link sameAs} compares it, or {@link OPAQUE}. */
export function snapshot(value: unknown): unknown {
  try {
    return copy(value);
  } catch {
    return OPAQUE; // a cycle, or a getter that throws
  }
}

function copy(value: unknown): unknown {
  if (typeof value !== "object" || value === null) {
    return typeof value === "function" || typeof value === "symbol" ? OPAQUE : value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto === Array.prototype) {
    const items = value as unknown[];
    const out: unknown[] = []; // grown as items are checked: `length` may be huge and holey
    for (let i = 0; i < items.length; i++) {
      if (!(i in items)) return OPAQUE; // a hole: JSON has none
      const item = copy(items[i]);
      if (item === OPAQUE) return OPAQUE;
      out.push(item);
    }
    return out;
  }
  if (proto === Object.prototype || proto === null) {
    const out: Record<string, unknown> = proto === null ? Object.create(null) : {};
    for (const name of Object.keys(value)) {
      const item = (value as Record<string, unknown>)[name];
      if (item === undefined) continue; // as JSON leaves it out
      const copied = copy(item);
      if (copied === OPAQUE) return OPAQUE;
      if (name === "__proto__") defineData(out, name, copied);
      else out[name] = copied;
    }
    return out;
  }
  if (proto === Date.prototype) return new Date((value as Date).getTime());
  return OPAQUE;
}

/**
 * Whether `value` has the content of `snap` (a result of {@link snapshot}):
 * the same primitives, `Date`s with the same time, arrays of equal items,
 * plain objects with the same keys and equal values in any order. A
 * property holding `undefined` counts as absent. Never true for
 * {@link OPAQUE}.
 */
export function sameAs(value: unknown, snap: unknown): boolean {
  if (snap === OPAQUE) return false;
  try {
    return same(value, snap);
  } catch {
    return false; // a cycle in value, or a getter that throws
  }
}

function same(value: unknown, snap: unknown): boolean {
  if (value === snap) return true;
  if (typeof snap !== "object" || snap === null) {
    return typeof value === "number" && value !== value && snap !== snap; // NaN
  }
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(snap);
  if (Object.getPrototypeOf(value) !== proto) {
    // A null-prototype object and a plain one hold the same data.
    const plain = (p: unknown) => p === Object.prototype || p === null;
    if (!plain(proto) || !plain(Object.getPrototypeOf(value))) return false;
  }
  if (proto === Array.prototype) {
    const a = value as unknown[], b = snap as unknown[];
    if (a.length !== b.length) return false;
    for (let i = 0; i < b.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  if (proto === Date.prototype) {
    const a = (value as Date).getTime(), b = (snap as Date).getTime();
    return a === b || (a !== a && b !== b);
  }
  const a = value as Record<string, unknown>, b = snap as Record<string, unknown>;
  let count = 0;
  for (const name of Object.keys(a)) {
    const item = a[name];
    if (item === undefined) continue;
    if (!Object.hasOwn(b, name) || !same(item, b[name])) return false;
    count++;
  }
  return count === Object.keys(b).length;
}

/** A fresh copy of what `snap` holds, for handing to user code. */
export function fromSnapshot<T>(snap: unknown): T {
  return copy(snap) as T;
}

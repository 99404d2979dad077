/**
 * Small helpers about values the middleware passes around.
 *
 * @module
 */

/** Whether `value` is a promise (or any thenable) rather than a plain result. */
export function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === "function";
}

/** Whether `value` is a plain object: prototype `Object.prototype` or `null`, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Sets `target[name]` as an own, plain data property, even when `name` is
 * `"__proto__"` (an assignment would change the prototype instead).
 */
export function defineData(target: object, name: string, value: unknown): void {
  Object.defineProperty(target, name, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/**
 * Makes `current` hold the data of `next` without replacing it, so that
 * every handler holding a reference to `current`, or to an object or array
 * inside it, sees `next`. Nested plain objects and arrays are updated in
 * place too where both sides have one. Returns the value to keep:
 * `current` when it could be updated in place (neither frozen nor sealed),
 * `next` otherwise. Never throws.
 */
export function updateInPlace<S>(current: S | undefined, next: S | undefined): S | undefined {
  try {
    return update(current, next, 0) as S | undefined;
  } catch {
    return next; // a non-configurable property, or a cycle too deep
  }
}

function update(current: unknown, next: unknown, depth: number): unknown {
  if (current === next || typeof current !== "object" || current === null) return next;
  if (depth > 100 || !Object.isExtensible(current) || Object.isFrozen(current)) return next;
  if (isPlainObject(current) && isPlainObject(next)) {
    for (const name of Object.keys(current)) if (!Object.hasOwn(next, name)) delete current[name];
    for (const [name, item] of Object.entries(next)) {
      const here = Object.hasOwn(current, name) ? current[name] : undefined;
      defineData(current, name, update(here, item, depth + 1));
    }
    return current;
  }
  if (Array.isArray(current) && Array.isArray(next)) {
    const items = next.map((item, i) => update(current[i], item, depth + 1));
    current.splice(0, current.length, ...items);
    return current;
  }
  return next;
}

/**
 * A deep copy of clean JSON data: what `JSON.parse` or `copySession`
 * returned (plain objects and arrays, no `undefined`, no `-0`). Having
 * nothing to check or fix, it copies each object with a spread and only
 * visits the values that are objects themselves.
 */
export function cloneJson<T>(value: T): T {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    const out = value.slice();
    for (let i = 0; i < out.length; i++) {
      const item = out[i];
      if (typeof item === "object" && item !== null) out[i] = cloneJson(item);
    }
    return out as T;
  }
  const out = { ...value } as Record<string, unknown>;
  for (const name in out) {
    const item = out[name];
    // Every key is own data after the spread, so even "__proto__" is set as data.
    if (typeof item === "object" && item !== null) out[name] = cloneJson(item);
  }
  return out as T;
}

/**
 * Small helpers about values the middleware passes around.
 *
 * @module
 */

/** Whether `value` is a promise (or any thenable) rather than a plain result. */
export function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === "function";
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Makes `current` hold the data of `next` without replacing it, so that
 * every handler holding a reference to `current` sees `next`. Returns the
 * value to keep: `current` when it could be updated in place (two plain
 * objects, or two arrays), `next` otherwise.
 */
export function updateInPlace<S>(current: S | undefined, next: S | undefined): S | undefined {
  if (isPlainObject(current) && isPlainObject(next)) {
    for (const name of Object.keys(current)) delete current[name];
    for (const [name, item] of Object.entries(next)) {
      // defineProperty: a key named "__proto__" stays plain data.
      Object.defineProperty(current, name, {
        value: item,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    }
    return current;
  }
  if (Array.isArray(current) && Array.isArray(next)) {
    current.splice(0, current.length, ...next);
    return current;
  }
  return next;
}

/**
 * A deep copy of JSON data that equals `JSON.parse(JSON.stringify(value))`
 * (properties holding `undefined` left out, `-0` as `0`, own `__proto__`
 * keys kept as data), several times faster than that round trip. `value`
 * must be acyclic JSON data, as `serializeSession` checks.
 */
export function copyJson<T>(value: T): T {
  if (typeof value !== "object" || value === null) {
    return (value === 0 ? 0 : value) as T; // -0 becomes 0, as in JSON
  }
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyJson(value[i]);
    return out as T;
  }
  const out: Record<string, unknown> = {};
  for (const name in value) {
    if (!Object.hasOwn(value, name)) continue;
    const item = (value as Record<string, unknown>)[name];
    if (item === undefined) continue;
    if (name === "__proto__") {
      Object.defineProperty(out, name, {
        value: copyJson(item),
        writable: true,
        enumerable: true,
        configurable: true,
      });
    } else out[name] = copyJson(item);
  }
  return out as T;
}

/**
 * A deep copy of clean JSON data: what `JSON.parse` or {@link copyJson}
 * returned (plain objects and arrays, no `undefined`, no `-0`). Faster than
 * `copyJson` because it can copy each object with a spread and only visits
 * the values that are objects themselves.
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
    if (typeof item !== "object" || item === null) continue;
    if (name === "__proto__") {
      // Own data property: a key named "__proto__" stays plain data.
      Object.defineProperty(out, name, {
        value: cloneJson(item),
        writable: true,
        enumerable: true,
        configurable: true,
      });
    } else out[name] = cloneJson(item);
  }
  return out as T;
}

function isPlainPrototype(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Whether `value` is JSON data equal to the clean JSON data `template`:
 * the same plain objects (in any key order), arrays and primitives, so that
 * storing `value` would store the data `template` holds. Answers `false`
 * for anything it cannot tell cheaply (a property holding `undefined`, a
 * hole, a class instance), so a caller falls back to serializing.
 */
export function sameJson(value: unknown, template: unknown): boolean {
  if (typeof template !== "object" || template === null) return value === template;
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(template)) {
    if (!Array.isArray(value) || value.length !== template.length) return false;
    if (!isPlainArray(value)) return false;
    for (let i = 0; i < template.length; i++) {
      if (!(i in value) || !sameJson(value[i], template[i])) return false;
    }
    return true;
  }
  if (Array.isArray(value) || !isPlainPrototype(value)) return false;
  const t = template as Record<string, unknown>;
  let count = 0;
  for (const name in value) {
    if (!Object.hasOwn(value, name) || !Object.hasOwn(t, name)) return false;
    if (!sameJson((value as Record<string, unknown>)[name], t[name])) return false;
    count++;
  }
  for (const _ in t) count--;
  return count === 0;
}

function isPlainArray(value: unknown[]): boolean {
  return Object.getPrototypeOf(value) === Array.prototype;
}

/**
 * The serialization contract shared by every sessionkit storage.
 *
 * A session is JSON data: `null`, booleans, finite numbers, strings, arrays
 * without holes, and plain objects (prototype `Object.prototype` or `null`).
 * It is stored as the text `JSON.stringify` produces, so a session moves
 * between storages byte for byte. Object properties whose value is `undefined`
 * are left out, as JSON does; `-0` is stored as `0`. Anything else (functions,
 * symbols, `BigInt`, `NaN`, `Infinity`, `Date`, `Map`, `Set`, class instances,
 * `undefined` inside arrays, cycles) cannot be stored faithfully and raises a
 * {@link SessionValueError} before anything is written.
 *
 * @module
 */

import { SessionValueError } from "./errors.ts";
import { defineData, isPlainObject } from "./values.ts";

/**
 * Checks that `value` follows the serialization contract and returns its JSON
 * text. Throws a {@link SessionValueError} naming `key` and the path of the
 * first offending value otherwise.
 *
 * @example
 * ```ts
 * import { serializeSession } from "@sessionkit/grammy";
 *
 * serializeSession({ count: 1 }, "42"); // '{"count":1}'
 * ```
 *
 * @param value The session data.
 * @param key The storage key, used in error messages.
 * @returns The JSON text to store.
 */
export function serializeSession(value: unknown, key?: string): string {
  const text = stringify(value, key);
  // No copy is needed here, so the detailed walk checks directly: it costs
  // little next to the storage round trip every public write makes.
  checkAll(value, key);
  return text;
}

/** `JSON.stringify`, naming the path of a cycle or a BigInt when it throws. */
function stringify(value: unknown, key: string | undefined): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    checkAll(value, key); // a cycle or a BigInt: throws with its path
    throw err;
  }
}

/**
 * Checks that `value` follows the serialization contract, like
 * {@link serializeSession}, and returns a deep copy of it as reading its
 * JSON text back would give it, without making the text. The memory storage
 * keeps sessions this way.
 */
export function copySession(value: unknown, key?: string): unknown {
  let copy: unknown;
  try {
    copy = copyIfJson(value);
  } catch (err) {
    // The quick walk keeps no stack, so a cycle overflows it; the detailed
    // walk finds the cycle and names its path.
    checkAll(value, key);
    throw err;
  }
  if (copy === NOT_JSON) checkAll(value, key);
  return copy;
}

/** What {@link copyIfJson} returns for a value that is not JSON data. */
const NOT_JSON: unique symbol = Symbol("not JSON data");

/**
 * A deep copy of `value` equal to `JSON.parse(JSON.stringify(value))`
 * (properties holding `undefined` left out, `-0` as `0`, symbol keys
 * dropped, own `__proto__` keys kept as data), or {@link NOT_JSON} if
 * `value` breaks the contract. Plain objects are copied with a spread and
 * then fixed up, which is several times faster than building them key by key.
 * It keeps no stack of parents, so on a cycle it overflows the call stack.
 */
function copyIfJson(value: unknown): unknown {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? (value === 0 ? 0 : value) : NOT_JSON;
    case "object":
      break;
    default:
      return NOT_JSON;
  }
  if (value === null) return null;
  if (Array.isArray(value)) {
    const out: unknown[] = []; // grown as items are checked: `length` may be huge and holey
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return NOT_JSON;
      const item = value[i];
      if (item === undefined) return NOT_JSON;
      const copied = copyIfJson(item);
      if (copied === NOT_JSON) return NOT_JSON;
      out.push(copied);
    }
    return out;
  }
  if (!isPlainObject(value)) return NOT_JSON;
  // A spread copies symbol keys too, which JSON leaves out.
  if (Object.getOwnPropertySymbols(value).length !== 0) return copyKeys(value);
  const out = { ...value } as Record<string, unknown>;
  for (const name in out) {
    if (!Object.hasOwn(out, name)) continue; // inherited from a polluted Object.prototype
    const item = out[name];
    switch (typeof item) {
      case "string":
      case "boolean":
        continue;
      case "number":
        if (!Number.isFinite(item)) return NOT_JSON;
        if (item === 0) out[name] = 0; // -0 becomes 0; an own "__proto__" is set as data
        continue;
      case "undefined":
        delete out[name];
        continue;
      case "object": {
        if (item === null) continue;
        const copied = copyIfJson(item);
        if (copied === NOT_JSON) return NOT_JSON;
        out[name] = copied; // the key is own data, so "__proto__" stays data
        continue;
      }
      default:
        return NOT_JSON;
    }
  }
  return out;
}

/** {@link copyIfJson} of a plain object, key by key (leaves symbol keys out). */
function copyKeys(value: object): unknown {
  const out: Record<string, unknown> = {};
  for (const name in value) {
    if (!Object.hasOwn(value, name)) continue;
    const item = (value as Record<string, unknown>)[name];
    if (item === undefined) continue;
    const copied = copyIfJson(item);
    if (copied === NOT_JSON) return NOT_JSON;
    defineData(out, name, copied);
  }
  return out;
}

/**
 * Turns stored JSON text back into session data. Properties named
 * `__proto__`, `constructor` or `prototype` come back as plain data.
 *
 * @example
 * ```ts
 * import { deserializeSession } from "@sessionkit/grammy";
 *
 * deserializeSession('{"count":1}'); // { count: 1 }
 * ```
 *
 * @param text JSON text written by {@link serializeSession}.
 * @returns The session data.
 */
export function deserializeSession<T = unknown>(text: string): T {
  return JSON.parse(text) as T;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "number") return String(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  if (typeof value === "bigint") return "a BigInt";
  if (value === undefined) return "undefined";
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name ? `a ${name}` : "an object with a custom prototype";
}

function hint(value: unknown): string {
  if (value instanceof Date) return " Store date.getTime() or date.toISOString() instead.";
  if (value instanceof Map) return " Store Object.fromEntries(map) or [...map] instead.";
  if (value instanceof Set) return " Store [...set] instead.";
  if (typeof value === "bigint") return " Store it as a string instead.";
  return "";
}

function fail(
  key: string | undefined,
  path: (string | number)[],
  what: string,
  value: unknown,
): never {
  const where = key === undefined ? "" : ` of key "${key}"`;
  const shown = "$" + path.map((p) => typeof p === "number" ? `[${p}]` : `.${p}`).join("");
  throw new SessionValueError(
    `Cannot store the session${where}: ${shown} is ${what}, which JSON cannot hold faithfully. ` +
      `Sessions must be JSON data (plain objects, arrays, strings, finite numbers, booleans, null).` +
      hint(value) + " Nothing was written.",
    key,
    shown,
  );
}

/** Walks `value`; `path` is the location (built into text only on failure). */
/**
 * {@link check} from the top. A value nested so deeply that the walk
 * overflows the call stack is refused as such: it could not be read back
 * either, on most platforms.
 */
function checkAll(value: unknown, key: string | undefined): void {
  try {
    check(value, [], [], key);
  } catch (err) {
    if (!(err instanceof RangeError) || err instanceof SessionValueError) throw err;
    if (!/call stack/i.test(err.message)) throw err;
    const where = key === undefined ? "" : ` of key "${key}"`;
    throw new SessionValueError(
      `Cannot store the session${where}: it is nested too deeply to be checked (thousands of ` +
        `levels of objects or arrays overflow the call stack). Store it flatter, for example ` +
        `as a list instead of a chain of nested objects. Nothing was written.`,
      key,
      "$",
    );
  }
}

function check(
  value: unknown,
  path: (string | number)[],
  stack: object[],
  key: string | undefined,
): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) fail(key, path, describe(value), value);
      return;
    case "object":
      break;
    default:
      fail(key, path, describe(value), value);
  }
  if (value === null) return;
  if (stack.includes(value)) {
    fail(key, path, "a reference back to one of its parents (a cycle)", value);
  }
  stack.push(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      if (!(i in value)) fail(key, path, "a hole in an array", undefined);
      const item = value[i];
      if (item === undefined) fail(key, path, "undefined inside an array", item);
      check(item, path, stack, key);
      path.pop();
    }
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) fail(key, path, describe(value), value);
    for (const name in value) {
      if (!Object.hasOwn(value, name)) continue;
      const item = (value as Record<string, unknown>)[name];
      if (item === undefined) continue;
      path.push(name);
      check(item, path, stack, key);
      path.pop();
    }
  }
  stack.pop();
}

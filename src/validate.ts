/**
 * Checks what `session()` and `lazySession()` were given, when the middleware
 * is created: a mistake there would otherwise run the bot on an in-memory
 * storage and lose every session on restart. Each error starts with where it
 * happened (`session(): `, `lazySession() fragment "user": `) and names the
 * fix. Wrong kinds of values are `TypeError`s; values of the right kind
 * outside the allowed ones (a negative count, an unknown mode) are
 * `RangeError`s.
 *
 * @module
 */

import { MAX_LEASE_MS } from "./lease.ts";
import type { StorageAdapter } from "./storage.ts";
import { closest } from "./closest_name.ts";

/** The option names of a single session (and of one fragment of a multi session). */
const OPTION_NAMES = "type initial prefix getSessionKey storage onConflict maxConflictRetries lock"
  .split(" ");
const LOCK_OPTION_NAMES = ["ttl", "wait"];
const STORAGE_METHODS = ["read", "write", "delete"] as const;

/** Options that belong elsewhere, with where they go. */
const ELSEWHERE: Record<string, string> = {
  ttl: "a time to live is an option of the storage, e.g. new MemorySessionStorage({ ttl }), " +
    "new DenoKvStorage(kv, { ttl }) or RedisStorage.connect(url, { ttl })",
  millisecondsToLive: "millisecondsToLive is an option of enhanceStorage({ storage, " +
    "millisecondsToLive }); pass the enhanced storage as storage",
  migrations: "migrations are an option of enhanceStorage({ storage, migrations }); pass the " +
    "enhanced storage as storage",
};

const KV_IMPORT = '`import { DenoKvStorage } from "@sessionkit/grammy/denokv"`';

/**
 * Whether `value` is a storage adapter: it has `read`, `write` and `delete`
 * functions, which session options never have.
 */
function isStorageAdapter(value: unknown): value is StorageAdapter<unknown> {
  return isObjectLike(value) && missingMethods(value).length === 0;
}

/**
 * Checks the argument of `session()` or `lazySession()` and returns the
 * options object to build the middleware from: `{}` for no argument,
 * `{ storage }` for a storage adapter alone, else the argument itself.
 * Throws a `TypeError` or `RangeError` that names the fix on any misuse.
 *
 * @param where `"session()"` or `"lazySession()"`, put in front of messages.
 * @param arg What the caller passed.
 */
export function resolveSessionArgument(where: string, arg: unknown): Record<string, unknown> {
  if (arg === undefined) return {};
  const call = where.replace(/\(\)$/, "");
  if (isThenable(arg)) {
    throw new TypeError(
      `${where}: the argument is a Promise, not options or a storage adapter: did you forget ` +
        `\`await\`? Await the storage first, e.g. \`${call}(await RedisStorage.connect(url))\` ` +
        `or \`${call}({ storage: await RedisStorage.connect(url) })\`.`,
    );
  }
  if (isStorageAdapter(arg)) return { storage: arg };
  if (isKvLike(arg)) {
    throw new TypeError(
      `${where}: the argument is a Deno.Kv database, not a storage adapter. Wrap it: ` +
        `\`${call}(new DenoKvStorage(kv))\` with ${KV_IMPORT}.`,
    );
  }
  if (isObjectLike(arg) && looksLikeStorage(arg)) {
    throw new TypeError(
      `${where}: the argument looks like a storage adapter but has no ${listMissing(arg)}; ` +
        `a storage adapter needs read(), write() and delete() functions.`,
    );
  }
  if (typeof arg === "function") {
    throw new TypeError(
      `${where}: the argument is ${describe(arg)}, not an options object. To create new ` +
        `sessions with it, pass \`{ initial: fn }\`; to pick keys with it, pass ` +
        `\`{ getSessionKey: fn }\`.`,
    );
  }
  if (!isOptionsObject(arg)) {
    throw new TypeError(
      `${where}: the argument must be an options object or a storage adapter, got ` +
        `${describe(arg)}. Pass nothing for an in-memory storage.`,
    );
  }
  if (arg.type === "multi") checkMulti(where, arg);
  else checkSingle(where, arg, true);
  return arg;
}

/** Checks every fragment of a multi session. */
function checkMulti(where: string, options: Record<string, unknown>): void {
  for (const name of Object.keys(options)) {
    if (name === "type") continue;
    const value = options[name];
    const at = `${where} fragment "${name}"`;
    const single = OPTION_NAMES.includes(name)
      ? ` "${name}" is an option of a single session: put it inside a fragment ` +
        `(chat: { ${name} }), or leave out type: "multi".`
      : "";
    if (isThenable(value)) {
      throw new TypeError(
        `${at}: the fragment's options are a Promise: did you forget \`await\`? Write ` +
          `\`${name}: { storage: await RedisStorage.connect(url) }\`.${single}`,
      );
    }
    if (isKvLike(value)) {
      throw new TypeError(
        `${at}: the fragment's options are a Deno.Kv database. Wrap it: ` +
          `\`${name}: { storage: new DenoKvStorage(kv) }\` with ${KV_IMPORT}.${single}`,
      );
    }
    if (isObjectLike(value) && looksLikeStorage(value)) {
      throw new TypeError(
        `${at}: got a storage adapter where the fragment's options belong; write ` +
          `\`${name}: { storage }\`.${single}` +
          (isStorageAdapter(value) ? "" : ` (It also has no ${listMissing(value)}.)`),
      );
    }
    if (!isOptionsObject(value)) {
      throw new TypeError(
        `${at}: each fragment of a multi session needs an options object such as ` +
          `{ initial, storage } (use {} for the defaults), got ${describe(value)}.${single}`,
      );
    }
    checkSingle(at, value, false);
  }
}

/** Checks the options of a single session, or of one fragment. */
function checkSingle(where: string, options: Record<string, unknown>, topLevel: boolean): void {
  checkNames(where, options);
  const { type, initial, prefix, getSessionKey, storage, onConflict, maxConflictRetries, lock } =
    options;
  if (type !== undefined && type !== "single" && !(topLevel && type === "multi")) {
    const allowed = topLevel ? '"single" or "multi"' : '"single" in a fragment';
    const nest = topLevel ? "" : " (multi sessions do not nest)";
    const close = topLevel && typeof type === "string" ? closest(type, ["single", "multi"]) : "";
    throw new (typeof type === "string" ? RangeError : TypeError)(
      `${where}: type must be ${allowed}${nest}, got ${describe(type)}` +
        (close ? ` (did you mean "${close}"?).` : "."),
    );
  }
  if (initial !== undefined && typeof initial !== "function") {
    throw new TypeError(
      `${where}: initial must be a function that creates a new session for each key, e.g. ` +
        `\`initial: () => ({ count: 0 })\`, got ${describe(initial)}.`,
    );
  }
  if (getSessionKey !== undefined && typeof getSessionKey !== "function") {
    throw new TypeError(
      `${where}: getSessionKey must be a function that returns the key of an update (or ` +
        `undefined), such as perUser from sessionkit, got ${describe(getSessionKey)}.`,
    );
  }
  if (prefix !== undefined && typeof prefix !== "string") {
    throw new TypeError(`${where}: prefix must be a string, got ${describe(prefix)}.`);
  }
  if (storage !== undefined) checkStorage(where, storage);
  if (
    onConflict !== undefined && onConflict !== "error" && onConflict !== "overwrite" &&
    typeof onConflict !== "function"
  ) {
    throw new (typeof onConflict === "string" ? RangeError : TypeError)(
      `${where}: onConflict must be "error", "overwrite" or a merge function ` +
        `(stored, mine, base) => merged, got ${describe(onConflict)}.`,
    );
  }
  if (maxConflictRetries !== undefined && !isCount(maxConflictRetries)) {
    throw new (typeof maxConflictRetries === "number" ? RangeError : TypeError)(
      `${where}: maxConflictRetries must be a non-negative integer, got ` +
        `${describe(maxConflictRetries)}.`,
    );
  }
  if (lock !== undefined) checkLock(where, lock);
}

/** Refuses option names that do not exist, suggesting the closest one. */
function checkNames(where: string, options: Record<string, unknown>): void {
  const unknown = Object.keys(options).filter((name) => !OPTION_NAMES.includes(name));
  if (unknown.length === 0) return;
  const parts = unknown.map((name) => {
    const close = closest(name, OPTION_NAMES);
    if (close) return `"${name}" (did you mean "${close}"?)`;
    if (name in ELSEWHERE) return `"${name}" (${ELSEWHERE[name]})`;
    if (isOptionsObject(options[name])) {
      return `"${name}" (if ${name} is a fragment of a multi session, add type: "multi")`;
    }
    return `"${name}"`;
  });
  throw new TypeError(
    `${where}: unknown option${unknown.length > 1 ? "s" : ""} ${parts.join(", ")}. ` +
      `The options of a session are ${OPTION_NAMES.join(", ")}.`,
  );
}

/**
 * Checks that `storage` is a storage adapter, with an error that names the
 * fix for the usual mistakes (a Promise, a raw `Deno.Kv`, a class).
 *
 * @example
 * ```ts
 * import { checkStorage } from "./validate.ts";
 *
 * checkStorage("session(options)", { read() {}, write() {}, delete() {} }); // no error
 * ```
 *
 * @param where Who checks, for the message.
 * @param storage The value to check.
 */
export function checkStorage(where: string, storage: unknown): void {
  if (isThenable(storage)) {
    throw new TypeError(
      `${where}: storage is a Promise, not a storage adapter: did you forget \`await\`? ` +
        `Write \`storage: await RedisStorage.connect(url)\`.`,
    );
  }
  if (isKvLike(storage)) {
    throw new TypeError(
      `${where}: storage is a Deno.Kv database, not a storage adapter. Wrap it: ` +
        `\`storage: new DenoKvStorage(kv)\` with ${KV_IMPORT}.`,
    );
  }
  if (typeof storage === "function" && isStorageClass(storage)) {
    throw new TypeError(
      `${where}: storage is ${describe(storage)}, not a storage adapter: create one with ` +
        `\`new ${storage.name || "Storage"}(...)\`.`,
    );
  }
  if (!isObjectLike(storage) || typeof storage === "function") {
    throw new TypeError(
      `${where}: storage must be a storage adapter (an object with read(), write() and ` +
        `delete() functions), got ${describe(storage)}. Leave storage out for an in-memory ` +
        `storage.`,
    );
  }
  if (missingMethods(storage).length > 0) {
    throw new TypeError(
      `${where}: storage has no ${listMissing(storage)}; a storage adapter needs read(), ` +
        `write() and delete() functions.`,
    );
  }
}

/** Checks the `lock` option. */
function checkLock(where: string, lock: unknown): void {
  if (!isOptionsObject(lock)) {
    throw new TypeError(
      `${where}: lock must be an object { ttl, wait } (both in milliseconds, both optional), ` +
        `got ${describe(lock)}.`,
    );
  }
  for (const name of Object.keys(lock)) {
    if (LOCK_OPTION_NAMES.includes(name)) continue;
    const close = closest(name, LOCK_OPTION_NAMES);
    throw new TypeError(
      `${where}: unknown option "lock.${name}"` + (close ? ` (did you mean "${close}"?)` : "") +
        `. lock takes ttl and wait, both in milliseconds.`,
    );
  }
  for (const name of LOCK_OPTION_NAMES) {
    const value = lock[name];
    if (value === undefined || (typeof value === "number" && value > 0 && isFinite(value))) {
      if (name !== "ttl" || value === undefined || (value as number) <= MAX_LEASE_MS) continue;
      throw new RangeError(
        `${where}: lock.ttl must be at most ${MAX_LEASE_MS} ms (about 24 days), got ${value}. ` +
          `A lease only needs to outlast the longest handler.`,
      );
    }
    throw new (typeof value === "number" ? RangeError : TypeError)(
      `${where}: lock.${name} must be a positive number of milliseconds, got ${describe(value)}.`,
    );
  }
}

function isObjectLike(value: unknown): value is Record<string, unknown> {
  return (typeof value === "object" && value !== null) || typeof value === "function";
}

/** A non-null object that is neither an array nor a function. */
function isOptionsObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return isObjectLike(value) && typeof value.then === "function";
}

/** A `Deno.Kv` (or `Kv` of `npm:@deno/kv`): `get`, `set` and `atomic`, but no `read`. */
function isKvLike(value: unknown): boolean {
  return isObjectLike(value) && typeof value.get === "function" &&
    typeof value.set === "function" && typeof value.atomic === "function" &&
    typeof value.read !== "function";
}

/** Has at least one of the storage methods. */
function looksLikeStorage(value: Record<string, unknown>): boolean {
  return missingMethods(value).length < STORAGE_METHODS.length;
}

function missingMethods(value: Record<string, unknown>): string[] {
  return STORAGE_METHODS.filter((name) => typeof value[name] !== "function");
}

/** "delete() function", "write() and delete() functions", ... */
function listMissing(value: Record<string, unknown>): string {
  const missing = missingMethods(value).map((name) => `${name}()`);
  const last = missing.pop()!;
  return missing.length === 0 ? `${last} function` : `${missing.join(", ")} and ${last} functions`;
}

function isStorageClass(fn: unknown): boolean {
  const proto = typeof fn === "function" ? (fn as { prototype?: unknown }).prototype : undefined;
  return isObjectLike(proto) && looksLikeStorage(proto);
}

function isCount(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** A short description of a value for an error message. */
function describe(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "..." : value);
  }
  if (typeof value === "function") {
    const source = Function.prototype.toString.call(value);
    const kind = /^class\b/.test(source) || isStorageClass(value) ? "a class" : "a function";
    return value.name ? `${kind} (${value.name})` : kind;
  }
  if (typeof value === "symbol") return "a symbol";
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return "an array";
  const name: unknown = Object.getPrototypeOf(value)?.constructor?.name;
  return typeof name === "string" && name !== "" && name !== "Object" ? `a ${name}` : "an object";
}

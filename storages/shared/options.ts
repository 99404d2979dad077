/**
 * Checking a storage's options the same way for every storage: a misspelt
 * name or a wrong type fails when the storage is created, naming the fix,
 * instead of silently falling back to a default.
 *
 * @module
 */

import { closest } from "../../src/validate.ts";

/** The longest TTL, in ms (100 years): what every backend can store as an expiry. */
export const MAX_TTL_MS = 100 * 365.25 * 24 * 60 * 60 * 1000;

/**
 * Returns `options` as a record after checking that it is an object (or
 * `undefined`) whose names are all in `known`.
 *
 * @example
 * ```ts
 * import { checkOptionNames } from "./options.ts";
 *
 * checkOptionNames("MyStorage", { ttl: 1000 }, ["prefix", "ttl"]); // { ttl: 1000 }
 * ```
 *
 * @param name The storage's name, which starts the error message.
 * @param options What the user passed.
 * @param known Every option name the storage takes.
 */
export function checkOptionNames(
  name: string,
  options: unknown,
  known: readonly string[],
): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(
      `${name}: options must be an object such as { ${known.join(", ")} }, got ${
        options === null ? "null" : Array.isArray(options) ? "an array" : typeof options
      }.`,
    );
  }
  for (const option of Object.keys(options)) {
    if (known.includes(option)) continue;
    const close = closest(option, known);
    throw new TypeError(
      `${name}: unknown option "${option}"` + (close ? ` (did you mean "${close}"?)` : "") +
        `. The options are ${known.join(", ")}.`,
    );
  }
  return options as Record<string, unknown>;
}

/**
 * Checks a `ttl` option: `undefined` or `Infinity` for none, otherwise a
 * number of milliseconds from 1 to {@link MAX_TTL_MS}.
 *
 * @example
 * ```ts
 * import { checkTtl } from "./options.ts";
 *
 * checkTtl("MyStorage", 60_000); // 60000
 * checkTtl("MyStorage", Infinity); // undefined
 * ```
 *
 * @param name The storage's name, which starts the error message.
 * @param ttl What the user passed.
 * @returns The TTL, or `undefined` for none.
 */
export function checkTtl(name: string, ttl: unknown): number | undefined {
  if (ttl === undefined || ttl === Infinity) return undefined;
  if (typeof ttl === "number" && ttl >= 1 && ttl <= MAX_TTL_MS) return ttl;
  throw new (typeof ttl === "number" ? RangeError : TypeError)(
    `${name}: ttl must be a positive number of milliseconds, got ${
      typeof ttl === "string" ? JSON.stringify(ttl) : String(ttl)
    } (at least 1, at most 100 years). Leave it out for sessions that never expire.`,
  );
}

/**
 * Checks an option that must be `true`, `false` or left out.
 *
 * @example
 * ```ts
 * import { checkFlag } from "./options.ts";
 *
 * checkFlag("MyStorage", "createTable", false); // false
 * ```
 *
 * @param name The storage's name, which starts the error message.
 * @param option The option's name.
 * @param value What the user passed.
 * @returns The value, or `undefined`.
 */
export function checkFlag(name: string, option: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw new TypeError(
    `${name}: ${option} must be true or false, got ${
      typeof value === "string" ? JSON.stringify(value) : String(value)
    }.`,
  );
}

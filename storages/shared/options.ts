/**
 * Checking a storage's options the same way for every storage: a misspelt
 * name or a wrong type fails when the storage is created, naming the fix,
 * instead of silently falling back to a default.
 *
 * @module
 */

import { closest } from "../../src/closest_name.ts";

/** The longest TTL, in ms (100 years): what every backend can store as an expiry. */
export const MAX_TTL_MS = 100 * 365.25 * 24 * 60 * 60 * 1000;

/**
 * How long one operation of a networked storage may take by default, in ms
 * (the `timeout` option). A healthy server answers a session read or write
 * in milliseconds, so 10 s is far above any normal answer, and above a short
 * outage the clients ride out by themselves (a Redis restart: node-redis
 * reconnects within 2 s and sends what it queued; a PostgreSQL backend that
 * was killed: the pool opens another): such updates wait and succeed. It is
 * also the default `lock.wait` and `lock.ttl`. A server gone silent fails the
 * update after 10 s instead of never, which matters because grammY handles
 * updates one after another with long polling: one hung update stops the bot.
 */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** The longest finite `timeout`, in ms (about 24.8 days): what a timer can hold. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

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
 * Checks a `timeout` option: `undefined` for {@link DEFAULT_TIMEOUT_MS},
 * `Infinity` for no bound, otherwise a number of milliseconds from 1 to
 * {@link MAX_TIMEOUT_MS}. `0` is refused rather than read as "none", so that
 * neither reading ("fail at once", "never") is guessed.
 *
 * @example
 * ```ts
 * import { checkTimeout } from "./options.ts";
 *
 * checkTimeout("MyStorage", undefined); // 10000
 * checkTimeout("MyStorage", 2000); // 2000
 * checkTimeout("MyStorage", Infinity); // Infinity: no bound
 * ```
 *
 * @param name The storage's name, which starts the error message.
 * @param timeout What the user passed.
 * @returns The bound in ms, `Infinity` for none.
 */
export function checkTimeout(name: string, timeout: unknown): number {
  if (timeout === undefined) return DEFAULT_TIMEOUT_MS;
  if (timeout === Infinity) return Infinity;
  if (typeof timeout === "number" && timeout >= 1 && timeout <= MAX_TIMEOUT_MS) return timeout;
  throw new (typeof timeout === "number" ? RangeError : TypeError)(
    `${name}: timeout must be a number of milliseconds from 1 to ${MAX_TIMEOUT_MS} (about ` +
      `24.8 days), or Infinity for no bound, got ${
        typeof timeout === "string" ? JSON.stringify(timeout) : String(timeout)
      }. ` +
      (timeout === 0
        ? "0 does not turn the bound off: pass Infinity for that."
        : `Leave it out for the default of ${DEFAULT_TIMEOUT_MS} ms.`),
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

/**
 * Errors thrown by sessionkit. Each one says what went wrong and what to do.
 *
 * @module
 */

/** The message of `err` for an error text: its `message`, or it as a string. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The error of a failed storage write or delete of the session of `key`:
 * `err` itself if it is a {@link SessionError}, else one that says the
 * changes may not have been saved (a lost reply may have landed).
 *
 * @example
 * ```ts
 * import { saveError } from "./errors.ts";
 *
 * saveError("42", new Error("connection reset"), false).message.startsWith("Could not write"); // true
 * ```
 */
export function saveError(key: string, err: unknown, deleting: boolean): SessionError {
  if (err instanceof SessionError) return err;
  return new SessionError(
    `Could not ${deleting ? "delete" : "write"} the session of key "${key}": ` +
      `${messageOf(err)}. This update's session changes may not have been saved (a write ` +
      `whose reply was lost, with the connection, may still have landed).`,
    key,
    { cause: err },
  );
}

/**
 * Base class of every error sessionkit throws. `key` is the storage key of the
 * session involved, when there is one.
 *
 * @example Telling session errors apart in `bot.catch`
 * ```ts
 * import { Bot } from "npm:grammy@^1.46";
 * import { SessionError } from "@sessionkit/grammy";
 *
 * const bot = new Bot("token");
 * bot.catch((err) => {
 *   if (err.error instanceof SessionError) {
 *     console.error("session trouble for key", err.error.key, err.error.message);
 *   }
 * });
 * ```
 */
export class SessionError extends Error {
  /** The storage key of the session, if the error concerns one. */
  readonly key: string | undefined;
  /**
   * Creates a session error.
   *
   * @param message What went wrong and how to fix it.
   * @param key The storage key involved, if any.
   * @param options Standard error options, e.g. `cause`.
   */
  constructor(message: string, key?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SessionError";
    this.key = key;
  }
}

/**
 * A session value cannot be stored faithfully under the serialization contract
 * (a function, a `BigInt`, a `Date`, a cycle, `NaN`, ...). Thrown at write time,
 * before anything is written.
 *
 * @example
 * ```ts
 * import { SessionValueError } from "@sessionkit/grammy";
 *
 * const err = new SessionValueError("session.when is a Date", "42", "$.when");
 * console.log(err.path); // "$.when"
 * ```
 */
export class SessionValueError extends SessionError {
  /** Where in the session the offending value sits, e.g. `$.user.born`. */
  readonly path: string;
  /**
   * Creates the error.
   *
   * @param message What is wrong with the value.
   * @param key The storage key of the session.
   * @param path The location of the offending value.
   */
  constructor(message: string, key: string | undefined, path: string) {
    super(message, key);
    this.name = "SessionValueError";
    this.path = path;
  }
}

/**
 * `ctx.session` was used on an update that has no session key (an inline
 * query, a poll, ... with the default per-chat key).
 *
 * @example
 * ```ts
 * import { SessionKeyError } from "@sessionkit/grammy";
 *
 * const err = new SessionKeyError("inline_query");
 * console.log(err.updateType); // "inline_query"
 * ```
 */
export class SessionKeyError extends SessionError {
  /** The type of the update that had no key, e.g. `inline_query`. */
  readonly updateType: string;
  /**
   * Creates the error.
   *
   * @param updateType The update type, e.g. `inline_query`.
   * @param property The context property that was used, `session` by default.
   */
  constructor(updateType: string, property = "session") {
    super(
      `Cannot use ctx.${property}: this update (${updateType}) has no session key. ` +
        `The default key is the chat, and ${updateType} updates have no chat. ` +
        `Pass getSessionKey in the session options to key these updates differently ` +
        `(for example perUser from sessionkit), or check ctx.sessionKey before touching ctx.${property}.`,
    );
    this.name = "SessionKeyError";
    this.updateType = updateType;
  }
}

/**
 * Another process changed the session after this update read it, so this
 * update's changes were not saved (conflict detection, on by default for
 * storages that support conditional writes).
 *
 * @example Counting conflicts in `bot.catch`
 * ```ts
 * import { Bot } from "npm:grammy@^1.46";
 * import { SessionConflictError } from "@sessionkit/grammy";
 *
 * const bot = new Bot("token");
 * bot.catch((err) => {
 *   if (err.error instanceof SessionConflictError) console.warn("conflict on", err.error.key);
 * });
 * ```
 */
export class SessionConflictError extends SessionError {
  /**
   * Creates the error.
   *
   * @param key The storage key of the session.
   * @param detail What was tried, e.g. how many merges.
   * @param locked Whether the update held the key's lease (`lock`).
   */
  constructor(key: string, detail = "", locked = false) {
    super(
      `The session of key "${key}" was changed by another process after this update read it, ` +
        `so this update's changes were not saved${detail}. ` +
        (locked
          ? `This update held the key's lease, so one of two things happened: the session ` +
            `expired while the update ran (keep the storage's TTL far above the longest ` +
            `handler), or a process writes without the lease (give every process that writes ` +
            `to this storage the lock option and, on PostgreSQL, the same schema option, so ` +
            `that all of them use one lease table). Or pass onConflict: (stored, mine, base) => ` +
            `merged to merge both changes.`
          : `Retry the update, pass onConflict: (stored, mine, base) => merged to merge both ` +
            `changes, or use lock: { ttl, wait } to handle the updates of one key one at a time.`),
      key,
    );
    this.name = "SessionConflictError";
  }
}

/**
 * Per-key locking failed: the lease of a key could not be taken within the
 * `wait` time, or it was lost before the session was written.
 *
 * @example
 * ```ts
 * import { SessionLockError } from "@sessionkit/grammy";
 *
 * const err = new SessionLockError("The lease of key \"42\" could not be taken.", "42");
 * console.log(err.key); // "42"
 * ```
 */
export class SessionLockError extends SessionError {
  /**
   * Creates the error.
   *
   * @param message What happened and what to do.
   * @param key The storage key of the session.
   */
  constructor(message: string, key: string) {
    super(message, key);
    this.name = "SessionLockError";
  }
}

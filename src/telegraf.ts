/**
 * `telegrafStore`: any sessionkit storage (or grammY storage adapter) as the
 * `store` of Telegraf 4's `session()` middleware.
 *
 * Telegraf's store shape is `get(key)`, `set(key, value)` and `delete(key)`;
 * sessionkit storages speak grammY's `read`, `write` and `delete`. The
 * adapter maps one onto the other, and adds what a store can add without
 * help from Telegraf's middleware: values checked as JSON data before
 * anything is written, calls of one key sent to the storage in the order
 * Telegraf made them, no write of a session that did not change, and
 * conflict detection across processes. docs/telegraf.md says what that does
 * and does not fix. Only structural types are used: Telegraf is not imported.
 *
 * @module
 */

import { isConditionalStorage } from "./capabilities.ts";
import { messageOf, SessionConflictError, SessionError, SessionKeyError } from "./errors.ts";
import { deserializeSession, serializeSession } from "./serialization.ts";
import type { StorageAdapter } from "./storage.ts";
import { SessionMemory } from "./telegraf_memory.ts";
import { delay } from "./timers.ts";
import { checkStorage } from "./validate.ts";

/**
 * The store shape Telegraf 4's `session({ store })` takes (its
 * `AsyncSessionStore`), written out so that sessionkit need not depend on
 * Telegraf.
 *
 * @example
 * ```ts
 * import { MemorySessionStorage, type TelegrafSessionStore, telegrafStore } from "@sessionkit/grammy";
 *
 * const store: TelegrafSessionStore<{ count: number }> = telegrafStore(
 *   new MemorySessionStorage<{ count: number }>(),
 * );
 * await store.set("7:7", { count: 1 });
 * console.log(await store.get("7:7")); // { count: 1 }
 * ```
 */
export interface TelegrafSessionStore<T> {
  /** The session stored under `key`, or `undefined`. */
  get(key: string): Promise<T | undefined>;
  /** Stores `value` under `key`; `null` or `undefined` deletes it, as Telegraf does. */
  set(key: string, value: T): Promise<void>;
  /** Removes the session stored under `key`; a missing key is fine. */
  delete(key: string): Promise<void>;
}

/**
 * Options of {@link telegrafStore}.
 *
 * @example
 * ```ts
 * import type { TelegrafStoreOptions } from "@sessionkit/grammy";
 *
 * const options: TelegrafStoreOptions = { onConflict: "overwrite" };
 * ```
 */
export interface TelegrafStoreOptions {
  /**
   * What a save does when another process changed the session after this
   * process read it. `"error"` (the default where the storage has
   * conditional writes, as every sessionkit storage does): nothing is
   * written and the save rejects with a `SessionConflictError`, so the
   * update fails in Telegraf (`bot.catch`). `"overwrite"`: the last write
   * wins, as with Telegraf's own stores (and the only choice for a storage
   * without conditional writes).
   */
  onConflict?: "error" | "overwrite";
}

/** A failed read is tried this many times in all before `get` rejects. */
const READ_ATTEMPTS = 3;
/** Pause before the second and third attempt, in ms. */
const READ_PAUSES = [50, 250];

/**
 * Makes a Telegraf 4 session store of a sessionkit storage (any grammY
 * `StorageAdapter` works too), for `session({ store })` of `telegraf`.
 *
 * What it does, on top of passing calls through:
 *
 * - **JSON data only.** A value JSON cannot hold faithfully (a `Date`, a
 *   `Map`, a cycle, `NaN`, ...) is refused with a `SessionValueError` naming
 *   the key and the path of the bad value, before anything is written. The
 *   value is copied when `set` is called, so later changes to the live
 *   object do not leak into a write still waiting its turn.
 * - **In order per key.** `get`, `set` and `delete` of one key reach the
 *   storage one after another, in the order Telegraf called them. Telegraf
 *   drops its shared in-process session as soon as the last update using it
 *   ends and only then saves it, so without this a new update of the chat
 *   could read the old session from a pooled database before the save has
 *   landed, and lose it.
 * - **No needless writes.** Telegraf saves every session that a handler
 *   read, changed or not. A value equal to what this store last read into
 *   or wrote from that session object is not written again, so an update that only reads
 *   the session never overwrites another process's newer data.
 * - **Conflicts are errors, not silent losses** (`onConflict: "error"`,
 *   the default where the storage has conditional writes): a save whose
 *   session another process changed since this process read it writes
 *   nothing and rejects with a `SessionConflictError`. Telegraf cannot run
 *   the update again, so the change of that update is not saved: it is
 *   reported instead of being overwritten without a trace.
 * - `set(key, null)` or `set(key, undefined)` deletes, as Telegraf's own
 *   middleware does when `ctx.session` is set to `null` or `undefined`.
 *
 * Use one store per `session()` middleware and per process. What was read
 * is remembered on the session object handed to Telegraf (and, for a
 * handler that assigns a new object, per key for the 10,000 keys used most
 * recently; a key forgotten between its read and its save is saved without
 * the checks). A failed read is tried three times before `get` rejects,
 * since Telegraf 4.16 hands a rejected read to every later update of the
 * chat. docs/telegraf.md has the details.
 *
 * @example Telegraf sessions in SQLite
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import { session, Telegraf, type Context } from "npm:telegraf@^4.16";
 * import { telegrafStore } from "@sessionkit/grammy";
 * import { SqliteStorage } from "@sessionkit/grammy/sqlite";
 *
 * interface MyContext extends Context {
 *   session?: { count: number };
 * }
 * const storage = new SqliteStorage<{ count: number }>(new DatabaseSync("sessions.db"));
 * const bot = new Telegraf<MyContext>("token");
 * bot.use(session({ store: telegrafStore(storage), defaultSession: () => ({ count: 0 }) }));
 * bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session!.count}`));
 * ```
 *
 * @param storage Where the sessions live: a sessionkit storage, or any grammY storage adapter.
 * @param options See {@link TelegrafStoreOptions}.
 * @returns The store for Telegraf's `session({ store })`.
 */
export function telegrafStore<T>(
  storage: StorageAdapter<T>,
  options: TelegrafStoreOptions = {},
): TelegrafSessionStore<T> {
  checkStorage("telegrafStore(storage)", storage);
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(
      `telegrafStore(storage, options): options must be an object such as ` +
        `{ onConflict: "overwrite" }, got ${JSON.stringify(options) ?? String(options)}.`,
    );
  }
  const unknownOption = Object.keys(options).find((name) => name !== "onConflict");
  if (unknownOption !== undefined) {
    throw new TypeError(
      `telegrafStore(storage, options): unknown option "${unknownOption}"; the only option is onConflict.`,
    );
  }
  const onConflict = options.onConflict;
  if (onConflict !== undefined && onConflict !== "error" && onConflict !== "overwrite") {
    throw new TypeError(
      `telegrafStore(storage, options): onConflict must be "error" or "overwrite", got ${
        JSON.stringify(onConflict) ?? String(onConflict)
      }.`,
    );
  }
  const conditional = isConditionalStorage<T>(storage) ? storage : undefined;
  if (onConflict === "error" && conditional === undefined) {
    throw new TypeError(
      `telegrafStore(storage, { onConflict: "error" }): this storage has no conditional writes ` +
        `(readVersioned, writeIfVersion, deleteIfVersion), so conflicts cannot be detected. ` +
        `Use a sessionkit storage, or onConflict: "overwrite".`,
    );
  }
  const versioned = onConflict !== "overwrite" ? conditional : undefined;

  /** The tail of the calls of each key that has calls in flight. */
  const tails = new Map<string, Promise<void>>();
  const memory = new SessionMemory();

  /** Runs `call` once every earlier call of `key` has settled. */
  function inTurn<R>(key: string, call: () => R | Promise<R>): Promise<R> {
    const before = tails.get(key);
    const run = before === undefined
      ? new Promise<R>((resolve) => resolve(call()))
      : before.then(call);
    const tail = run.then(() => {}, () => {});
    tails.set(key, tail);
    tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return run;
  }

  function conflict(key: string, what: string): SessionConflictError {
    const err = new SessionConflictError(key);
    err.message = `telegrafStore: the session of key "${key}" was changed or deleted by another ` +
      `process (or another bot on this storage), or it expired or was evicted (a ttl, ` +
      `maxEntries), after this process read it, so this update's ${what} was not saved, and ` +
      `what is stored now was kept. Telegraf cannot run the update again: handle the updates of ` +
      `one chat in one process, keep a ttl far above the longest handler (and maxEntries above ` +
      `the chats in use), or pass onConflict: "overwrite" to let the last save win silently.`;
    return err;
  }

  /** Reads `key` with its version (`undefined` when not tracked), trying again on failure. */
  async function readOnce(key: string): Promise<{ value: T | undefined; version?: string | null }> {
    if (versioned === undefined) return { value: (await storage.read(key)) ?? undefined };
    const { value, version } = await versioned.readVersioned(key);
    return { value: value ?? undefined, version };
  }

  async function read(key: string): Promise<{ value: T | undefined; version?: string | null }> {
    for (let attempt = 1;; attempt++) {
      try {
        return await readOnce(key);
      } catch (err) {
        // Telegraf 4.16 keeps a rejected read and hands it to every later
        // update of the chat, so a passing fault is worth a second try.
        if (attempt >= READ_ATTEMPTS || err instanceof SessionKeyError) throw err;
        await delay(READ_PAUSES[attempt - 1]);
      }
    }
  }

  async function remove(key: string): Promise<void> {
    const version = versioned === undefined ? undefined : memory.recall(key, undefined)?.version;
    if (version === undefined) {
      await storage.delete(key);
    } else if (!(await versioned!.deleteIfVersion(key, version))) {
      throw conflict(key, "deletion");
    }
    memory.remember(key, undefined, versioned === undefined ? {} : { version: null });
  }

  return {
    get(key: string): Promise<T | undefined> {
      return inTurn(key, async () => {
        const { value, version } = await read(key);
        if (value === undefined) {
          memory.remember(key, undefined, { version });
          return undefined;
        }
        let text: string;
        try {
          text = serializeSession(value, key);
        } catch (err) {
          throw new SessionError(
            `telegrafStore: the session stored under "${key}" is not JSON data ` +
              `(${messageOf(err)}), so it cannot be handed to Telegraf. Delete it ` +
              `(storage.delete(key)), or use a storage that keeps JSON data.`,
            key,
            { cause: err },
          );
        }
        // A copy, so that a change in a handler cannot reach an adapter that
        // hands out its stored object before the change is checked and saved.
        const copy = deserializeSession<T>(text);
        memory.remember(key, copy, { version, text });
        return copy;
      });
    },

    set(key: string, value: T): Promise<void> {
      if (value === undefined || value === null) return inTurn(key, () => remove(key));
      let text: string;
      try {
        text = serializeSession(value, key);
      } catch (err) {
        return Promise.reject(err);
      }
      // A copy as of now: the live object may change before the write's turn.
      const copy = deserializeSession<T>(text);
      return inTurn(key, async () => {
        const known = memory.recall(key, value);
        if (known?.text === text) return; // unchanged since it was read or saved
        if (versioned === undefined || known?.version === undefined) {
          await storage.write(key, copy);
          memory.remember(key, value, { text });
          return;
        }
        const version = await versioned.writeIfVersion(key, copy, known.version);
        if (version === null) throw conflict(key, "change");
        memory.remember(key, value, { version, text });
      });
    },

    delete(key: string): Promise<void> {
      return inTurn(key, () => remove(key));
    },
  };
}

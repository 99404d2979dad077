/**
 * sessionkit: sessions for grammY bots.
 *
 * A drop-in for grammY's built-in session (same option names, same default
 * key, same storage adapter shape) that writes only what changed, loses
 * nothing when updates of one chat run at the same time, never replaces
 * stored data with initial data after a failed read, and refuses values JSON
 * cannot hold before anything is written.
 *
 * Storages: `MemorySessionStorage` here, and Deno KV, Redis, PostgreSQL,
 * SQLite and MySQL/MariaDB at `./denokv`, `./redis`, `./postgres`, `./sqlite`
 * and `./mysql`. `telegrafStore` makes any of them the store of Telegraf 4's
 * `session()`.
 *
 * @example Strict sessions
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { session, type SessionFlavor } from "@sessionkit/grammy";
 *
 * type MyContext = Context & SessionFlavor<{ count: number }>;
 * const bot = new Bot<MyContext>("token");
 * bot.use(session({ initial: () => ({ count: 0 }) }));
 * bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
 * ```
 *
 * @example Lazy sessions: no storage I/O unless a handler awaits ctx.session
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { lazySession, type LazySessionFlavor } from "@sessionkit/grammy";
 *
 * type MyContext = Context & LazySessionFlavor<{ count: number }>;
 * const bot = new Bot<MyContext>("token");
 * bot.use(lazySession({ initial: () => ({ count: 0 }) }));
 * bot.command("count", async (ctx) => {
 *   const data = await ctx.session;
 *   await ctx.reply(`Count: ${++data.count}`);
 * });
 * ```
 *
 * @module
 */

export { session } from "./src/session.ts";
export type { SessionContext, SessionMiddleware } from "./src/context.ts";
export { lazySession } from "./src/lazy.ts";
export type { LazyMultiSessionFlavor, LazySessionFlavor, SessionFlavor } from "./src/flavors.ts";
export type {
  ConflictMerge,
  LockOptions,
  MultiSessionOptions,
  SessionOptions,
} from "./src/options.ts";
export type { MaybePromise, StorageAdapter } from "./src/storage.ts";
export { perChat, perChatAndUser, perForumTopic, perUser, type SessionKeyFn } from "./src/keys.ts";
export {
  SessionConflictError,
  SessionError,
  SessionKeyError,
  SessionLockError,
  SessionValueError,
} from "./src/errors.ts";
export { deserializeSession, serializeSession } from "./src/serialization.ts";
export {
  type Enhance,
  enhanceStorage,
  type MigrationOptions,
  type Migrations,
} from "./src/enhance.ts";
export {
  type TelegrafSessionStore,
  telegrafStore,
  type TelegrafStoreOptions,
} from "./src/telegraf.ts";
export { type CopyOptions, type CopyProgress, type CopyReport, copySessions } from "./src/copy.ts";
export { type ExportOptions, exportSessions, importSessions } from "./src/jsonl.ts";
export { MemorySessionStorage, type MemorySessionStorageOptions } from "./storages/memory.ts";
export { DriverStorage } from "./storages/shared/driver_storage.ts";
export { AsyncDriverStorage } from "./storages/shared/async_driver_storage.ts";
export type { KeyRules, ScanPage, SessionDriver, StoredRecord } from "./storages/shared/driver.ts";
export { jsonCopy, jsonText, type PayloadCodec } from "./storages/shared/codec.ts";
export {
  type ConditionalStorage,
  isConditionalStorage,
  isLeaseStorage,
  type LeaseStorage,
  type LockedSave,
  type LockedStorage,
  type VersionedValue,
} from "./src/capabilities.ts";

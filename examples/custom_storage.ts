/**
 * A complete storage of your own: a driver over a shared in-process `Map`
 * "database", turned into a full sessionkit storage by `DriverStorage`.
 * docs/storages.md walks through it; tests/custom_storage_test.ts runs the
 * storage contract against it.
 *
 * Run it (no token, no network: three made-up updates go through
 * `bot.handleUpdate`, then it prints what was stored):
 *
 *   deno run --allow-env examples/custom_storage.ts
 *
 * @module
 */

import { Bot, type Context } from "npm:grammy@^1.46/web";
import type { UserFromGetMe } from "npm:grammy@^1.46/types";
import {
  DriverStorage,
  type ScanPage,
  session,
  type SessionDriver,
  type SessionFlavor,
  type StoredRecord,
} from "../mod.ts";

/** What the "database" holds per row. */
interface Row {
  payload: string;
  version: string;
  /** Epoch ms, or `null` for no expiry. */
  expires: number | null;
}

/** The backend: one shared map of rows and one of leases, like a server. */
export class MapDatabase {
  readonly rows = new Map<string, Row>();
  readonly leases = new Map<string, { owner: string; expires: number }>();
}

/** Options of {@link MapStorage}. */
export interface MapStorageOptions {
  /** Namespace of this storage inside the database. Default `"session:"`. */
  prefix?: string;
  /** Time to live in ms; none by default. */
  ttl?: number;
}

/** The driver: it moves payloads and versions, nothing else. */
function mapDriver(db: MapDatabase, prefix: string, ttl: number | undefined) {
  const live = (key: string, now = Date.now()): Row | undefined => {
    const row = db.rows.get(prefix + key);
    if (row === undefined || (row.expires !== null && row.expires <= now)) return undefined;
    return row;
  };
  const matches = (key: string, expected: string | null | undefined) =>
    expected === undefined || (live(key)?.version ?? null) === expected;
  const expiry = () => (ttl === undefined ? null : Date.now() + ttl);

  const driver: SessionDriver<string> = {
    name: "MapStorage",
    synchronous: true,
    keys: { wellFormed: true, maxBytes: 1024 },
    read(key): StoredRecord<string> | undefined {
      const row = live(key);
      if (row === undefined) return undefined;
      row.expires = expiry(); // renew, or clear a leftover expiry: never the version
      return { payload: row.payload, version: row.version };
    },
    write(key, payload, expected) {
      if (!matches(key, expected)) return null;
      const version = crypto.randomUUID();
      db.rows.set(prefix + key, { payload, version, expires: expiry() });
      return version;
    },
    delete(key, expected) {
      if (!matches(key, expected)) return false;
      db.rows.delete(prefix + key);
      return true;
    },
    has: (key) => live(key) !== undefined,
    scan(cursor, limit, values): ScanPage<string> {
      // Keyset paging in key order: the cursor is the last key of the page before.
      const keys = [...db.rows.keys()]
        .filter((k) => k.startsWith(prefix) && live(k.slice(prefix.length)) !== undefined)
        .map((k) => k.slice(prefix.length))
        .filter((k) => cursor === undefined || k > cursor)
        .sort()
        .slice(0, limit);
      return {
        keys,
        payloads: values ? keys.map((k) => live(k)?.payload) : undefined,
        cursor: keys.length === limit ? keys.at(-1) : undefined,
      };
    },
    acquireLease(key, owner, ms) {
      const now = Date.now();
      const lease = db.leases.get(prefix + key);
      if (lease !== undefined && lease.owner !== owner && lease.expires > now) return false;
      db.leases.set(prefix + key, { owner, expires: now + ms });
      return true;
    },
    renewLease(key, owner, ms) {
      const lease = db.leases.get(prefix + key);
      if (lease?.owner !== owner || lease.expires <= Date.now()) return false;
      lease.expires = Date.now() + ms;
      return true;
    },
    releaseLease(key, owner) {
      if (db.leases.get(prefix + key)?.owner === owner) db.leases.delete(prefix + key);
    },
  };
  return driver;
}

/**
 * The public storage: everything else (key checks, JSON, listings,
 * conflict detection, leases, error messages) comes from `DriverStorage`.
 */
export class MapStorage<T> extends DriverStorage<T> {
  /** The namespace of this storage. */
  readonly prefix: string;

  constructor(db: MapDatabase, options: MapStorageOptions = {}) {
    const prefix = options.prefix ?? "session:";
    super(mapDriver(db, prefix, options.ttl));
    this.prefix = prefix;
  }
}

if (import.meta.main) {
  type MyContext = Context & SessionFlavor<{ count: number }>;
  const storage = new MapStorage<{ count: number }>(new MapDatabase());
  const bot = new Bot<MyContext>("0:example", {
    botInfo: {
      id: 1,
      is_bot: true,
      first_name: "Example",
      username: "example_bot",
      can_join_groups: true,
      can_read_all_group_messages: false,
      supports_inline_queries: false,
      can_connect_to_business: false,
      has_main_web_app: false,
    } as UserFromGetMe, // known up front, so the bot never calls getMe
  });
  bot.use(session({ initial: () => ({ count: 0 }), storage }));
  bot.on("message", (ctx) => void ctx.session.count++);
  const chat = { id: 42, type: "private" as const, first_name: "A" };
  for (let i = 1; i <= 3; i++) {
    await bot.handleUpdate({
      update_id: i,
      message: { message_id: i, date: 0, chat, from: { ...chat, is_bot: false }, text: "hi" },
    });
  }
  console.log("stored:", storage.read("42")); // stored: { count: 3 }
}

/**
 * Opening a storage named by URL (see `urls.ts`), for a role.
 *
 * A storage is opened for a role. A **source** (what `list`, `count`, `get`,
 * `delete` and the FROM of `copy` and `export` read) must exist: a missing
 * SQLite or KV file or a missing table is an error, never created. A
 * **target** (the TO of `copy` and `import`) is created as needed. A
 * **dry-run target** is never created: where it does not exist yet, an
 * empty stand-in in memory takes its place. Each storage is tried once
 * right after opening, so an unreachable server, a refused login or a
 * missing table is reported before the command starts (exit code 3).
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import type { StorageAdapter } from "../storage.ts";
import { MemorySessionStorage } from "../../storages/memory.ts";
import { CliError, EXIT, reason, usage } from "./exit.ts";
import { BatchTransactions } from "./transactions.ts";
import type { StorageSpec } from "./urls.ts";

/** How a storage is used: see the module documentation. */
export type Role = "source" | "target" | "dry-target";

/** An opened storage. */
export interface OpenedStorage {
  /** The storage. */
  storage: StorageAdapter<unknown>;
  /** The URL for messages (password hidden). */
  label: string;
  /** A dry-run target that does not exist yet: `storage` is an empty stand-in. */
  standIn: boolean;
  /** Closes what was opened; never throws. */
  close(): Promise<void>;
  /** A SQLite target: its writes, batched into transactions (see transactions.ts). */
  batches?: BatchTransactions;
}

/** The deepest useful reason of a driver's error, in one line. */
function rootReason(err: unknown): string {
  let deepest: unknown = err;
  while (deepest instanceof Error && deepest.cause instanceof Error) deepest = deepest.cause;
  if (deepest instanceof AggregateError && !deepest.message && deepest.errors.length > 0) {
    return [...new Set(deepest.errors.map(reason))].join("; ");
  }
  return reason(deepest);
}

/** The error code of `err` or of a cause of it. */
function codeOf(err: unknown): unknown {
  for (let e = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (code !== undefined) return code;
  }
  return undefined;
}

/** Whether `path` exists. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new CliError(EXIT.open, `cannot open ${path}: ${reason(err)}`);
  }
}

/** A stand-in for a dry-run target that does not exist yet. */
function standIn(label: string): OpenedStorage {
  return {
    storage: new MemorySessionStorage(),
    label,
    standIn: true,
    close: async () => {},
  };
}

/** Closes with `close`, ignoring failures, bounded to 5 s. */
function closer(close: () => unknown): () => Promise<void> {
  return async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.resolve().then(close).catch(() => {}),
      new Promise((resolve) => (timer = setTimeout(resolve, 5000))),
    ]);
    clearTimeout(timer);
  };
}

/** A key no session of a bot has: the first operation tried on every storage. */
const PROBE = "sessionkit-cli:probe";

/**
 * Opens the storage `spec` names for `role`, and tries it once. Throws a
 * `CliError`: exit code 2 for options the storage refuses, 3 when it
 * cannot be opened.
 */
export async function openStorage(spec: StorageSpec, role: Role): Promise<OpenedStorage> {
  const { label } = spec;
  const opened = await construct(spec, role).catch((err) => {
    if (err instanceof CliError) throw err;
    if (err instanceof TypeError || err instanceof RangeError) {
      throw usage(`${label}: ${reason(err)}`);
    }
    throw new CliError(EXIT.open, `cannot open ${label}: ${rootReason(err)}`, { cause: err });
  });
  if (opened.standIn) return opened;
  try {
    await opened.storage.has!(PROBE);
    return opened;
  } catch (err) {
    await opened.close();
    const code = codeOf(err);
    const noTable = code === "42P01" || code === "ER_NO_SUCH_TABLE";
    if (noTable && role === "dry-target") return standIn(label);
    const table = spec.options.table ?? "sessions";
    const line = noTable
      ? `cannot open ${label}: it has no table "${table}"` +
        (spec.options.schema === undefined ? "" : ` in schema "${spec.options.schema}"`) +
        "; name the table with --table or ?table="
      : `cannot open ${label}: ${rootReason(err)}`;
    throw new CliError(EXIT.open, line, { cause: err });
  }
}

async function construct(spec: StorageSpec, role: Role): Promise<OpenedStorage> {
  const { kind, label, target, options } = spec;
  const create = role === "target";
  switch (kind) {
    case "redis": {
      const { RedisStorage } = await import("../../storages/redis.ts");
      const storage = await RedisStorage.connect<unknown>(target, {
        ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
        ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
      });
      return { storage, label, standIn: false, close: closer(() => storage.close()) };
    }
    case "postgres": {
      const { PostgresStorage } = await import("../../storages/postgres.ts");
      const storage = PostgresStorage.connect<unknown>(target, {
        ...options,
        createTable: create,
      });
      return { storage, label, standIn: false, close: closer(() => storage.close()) };
    }
    case "mysql": {
      const { MysqlStorage } = await import("../../storages/mysql.ts");
      const { table, ttl } = options;
      const storage = MysqlStorage.connect<unknown>(target, { table, ttl, createTable: create });
      return { storage, label, standIn: false, close: closer(() => storage.close()) };
    }
    case "sqlite": {
      const { SqliteStorage } = await import("../../storages/sqlite.ts");
      const table = options.table ?? "sessions";
      if (!create && !(await exists(target))) {
        if (role === "dry-target") return standIn(label);
        throw new CliError(EXIT.open, `cannot open ${label}: no such file ${target}`);
      }
      let db: DatabaseSync;
      try {
        db = new DatabaseSync(target);
      } catch (err) {
        throw new CliError(EXIT.open, `cannot open ${label}: ${reason(err)}`);
      }
      const close = closer(() => db.close());
      if (!create) {
        let tables: string[];
        try {
          tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
            name: string;
          }[]).map((row) => row.name);
        } catch (err) {
          await close();
          throw new CliError(EXIT.open, `cannot open ${label}: ${reason(err)}`);
        }
        if (!tables.some((name) => name.toLowerCase() === table.toLowerCase())) {
          await close();
          if (role === "dry-target") return standIn(label);
          const user = tables.filter((name) => !name.startsWith("sqlite_"));
          throw new CliError(
            EXIT.open,
            `cannot open ${label}: it has no table "${table}" (` +
              (user.length === 0 ? "it has no tables" : `its tables: ${user.join(", ")}`) +
              "); name the table with --table or ?table=",
          );
        }
      }
      try {
        const storage = new SqliteStorage<unknown>(db, { table, ttl: options.ttl });
        const batches = create ? new BatchTransactions(db) : undefined;
        return { storage, label, standIn: false, close, batches };
      } catch (err) {
        await close();
        throw err;
      }
    }
    case "kv": {
      if (typeof Deno.openKv !== "function") {
        throw new CliError(
          EXIT.open,
          `cannot open ${label}: Deno KV is not enabled; run deno with --unstable-kv ` +
            "(deno run -A --unstable-kv …)",
        );
      }
      const { DenoKvStorage } = await import("../../storages/denokv.ts");
      const remote = /^https?:\/\//i.test(target);
      if (!create && target !== "" && !remote && !(await exists(target))) {
        if (role === "dry-target") return standIn(label);
        throw new CliError(EXIT.open, `cannot open ${label}: no such file ${target}`);
      }
      const kv = await Deno.openKv(target === "" ? undefined : target);
      const close = closer(() => kv.close());
      try {
        const storage = new DenoKvStorage<unknown>(kv, {
          ...(options.prefix === undefined ? {} : { prefix: options.prefix.split(",") }),
          ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
        });
        return { storage, label, standIn: false, close };
      } catch (err) {
        await close();
        throw err;
      }
    }
  }
}

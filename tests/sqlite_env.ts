/**
 * Shared setup of the SQLite tests: database files in a temporary directory
 * of their own (removed by `cleanup`), one `node:sqlite` handle per storage
 * instance (as separate processes would have), and a raw look at the rows.
 */
import { DatabaseSync, type DatabaseSyncOptions } from "node:sqlite";
import { SqliteStorage, type SqliteStorageOptions } from "../storages/sqlite.ts";

/** A temporary directory with database files and every handle opened on them. */
export class SqliteFiles {
  readonly dir: string = Deno.makeTempDirSync({ prefix: "sk-sqlite-" });
  readonly #handles: DatabaseSync[] = [];
  #n = 0;

  /** A fresh file path in the directory. */
  path(name = `db${++this.#n}.sqlite`): string {
    return `${this.dir}/${name}`;
  }

  /** Opens a handle on `path`, closed by `cleanup`. */
  open(path: string, options?: DatabaseSyncOptions, wal = false): DatabaseSync {
    const db = new DatabaseSync(path, options);
    if (wal) db.exec("PRAGMA journal_mode = WAL");
    this.#handles.push(db);
    return db;
  }

  /** A storage on a handle of its own on `path`. */
  storage<T>(path: string, options?: SqliteStorageOptions, wal = false): SqliteStorage<T> {
    return new SqliteStorage<T>(this.open(path, undefined, wal), options);
  }

  /** Closes every handle and removes the directory. */
  cleanup(): void {
    for (const db of this.#handles) if (db.isOpen) db.close();
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/** One row of a session table as stored. */
export interface RawRow {
  key: string;
  value: string;
  version: string;
  expires_at: number | null;
}

/** The rows of `table` in key order, read on a handle of their own. */
export function rawRows(db: DatabaseSync, table: string): RawRow[] {
  const sql = `SELECT key, value, version, expires_at FROM "${table.replaceAll('"', '""')}"
    ORDER BY key`;
  return db.prepare(sql).all().map((row) => ({ ...row }) as unknown as RawRow);
}

/** How many rows `table` holds (0 if it does not exist). */
export function rawCount(db: DatabaseSync, table: string): number {
  const exists = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?")
    .get(table);
  if (exists === undefined) return 0;
  const row = db.prepare(`SELECT count(*) AS n FROM "${table.replaceAll('"', '""')}"`).get();
  return Number(row!.n);
}

/**
 * Naming a storage by URL: what each scheme opens, and the options its query takes.
 *
 * | URL                                         | storage                                      |
 * | ------------------------------------------- | -------------------------------------------- |
 * | `redis://…`, `rediss://…`                   | `RedisStorage.connect(url)`                  |
 * | `postgres://…`, `postgresql://…`            | `PostgresStorage.connect(url)`               |
 * | `mysql://…`, `mariadb://…`                  | `MysqlStorage.connect(url)`                  |
 * | `sqlite:PATH`                               | `SqliteStorage` on `new DatabaseSync(PATH)`  |
 * | `kv:PATH`, `kv:` (Deno's default database)  | `DenoKvStorage` on `Deno.openKv(PATH)`       |
 *
 * The storage's own options go in the URL's query, under the storage's
 * option names, and are taken out before the URL reaches the driver:
 * `prefix` (Redis: the key prefix, default `session:`; Deno KV: the key
 * prefix as comma-separated parts, default `sessions`), `table` (SQL,
 * default `sessions`, or the command's `--table`), `schema` (PostgreSQL)
 * and `ttl` (every storage, in ms). Other query parameters stay for the
 * driver (`?sslmode=…`, `?connectionLimit=…`).
 *
 * Opening a storage so named is in `open_storage.ts`.
 *
 * @module
 */

import { usage } from "./exit.ts";

/** The kinds of storage a URL can name. */
export type StorageKind = "redis" | "postgres" | "mysql" | "sqlite" | "kv";

/** A storage URL, parsed and checked (nothing opened yet). */
export interface StorageSpec {
  /** Which storage. */
  kind: StorageKind;
  /** The URL as given, with any password replaced by `***`: for messages. */
  label: string;
  /** What the driver gets: the URL without this tool's query parameters, or the path. */
  target: string;
  /** The storage's options from the query (and `--table`). */
  options: { prefix?: string; table?: string; schema?: string; ttl?: number };
}

const SCHEMES: Record<string, StorageKind> = {
  "redis:": "redis",
  "rediss:": "redis",
  "postgres:": "postgres",
  "postgresql:": "postgres",
  "mysql:": "mysql",
  "mariadb:": "mysql",
  "sqlite:": "sqlite",
  "kv:": "kv",
};

/** The query parameters each storage takes from the URL. */
const OWN: Record<StorageKind, readonly string[]> = {
  redis: ["prefix", "ttl"],
  postgres: ["table", "schema", "ttl"],
  mysql: ["table", "ttl"],
  sqlite: ["table", "ttl"],
  kv: ["prefix", "ttl"],
};

const FORMS = "redis://HOST:PORT, postgres://USER@HOST/DB, mysql://USER@HOST/DB, " +
  "sqlite:PATH, kv:PATH or kv:";

/** Whether a storage of this kind has tables (so `--table` applies to it). */
export function hasTables(kind: StorageKind): boolean {
  return kind === "postgres" || kind === "mysql" || kind === "sqlite";
}

/** `url` with its password replaced by `***`. */
export function redact(url: string): string {
  const at = url.indexOf("@");
  const scheme = url.indexOf("://");
  if (scheme === -1 || at === -1) return url;
  const colon = url.indexOf(":", scheme + 3);
  return colon !== -1 && colon < at ? `${url.slice(0, colon + 1)}***${url.slice(at)}` : url;
}

/**
 * Parses a storage URL. `table` is `--table`, the default table of SQL
 * storages. Throws a usage `CliError` for a string that is no storage URL
 * or a query parameter this kind of storage does not take.
 *
 * @example
 * ```ts
 * import { parseStorageUrl } from "./urls.ts";
 *
 * parseStorageUrl("sqlite:bot.db?table=wizard").options; // { table: "wizard" }
 * ```
 */
export function parseStorageUrl(text: string, table?: string): StorageSpec {
  const label = redact(text);
  const match = /^([a-z][a-z0-9+.-]*:)/i.exec(text);
  const kind = match ? SCHEMES[match[1].toLowerCase()] : undefined;
  if (kind === undefined) {
    const what = match
      ? `unknown storage scheme "${match[1]}" in "${label}"`
      : `"${label}" is no storage URL`;
    throw usage(`${what}; a storage is named as ${FORMS}`);
  }
  let query: URLSearchParams;
  let target: string;
  if (kind === "sqlite" || kind === "kv") {
    const rest = text.slice(match![1].length);
    const q = rest.indexOf("?");
    let path = q === -1 ? rest : rest.slice(0, q);
    if (path.startsWith("//")) path = path.slice(2); // sqlite:///abs/path, kv://file
    query = new URLSearchParams(q === -1 ? "" : rest.slice(q + 1));
    if (kind === "sqlite" && path === "") {
      throw usage(`"${label}" names no file; write sqlite:PATH, e.g. sqlite:sessions.db`);
    }
    // SQLite opens "file:a.db" as a URI naming a.db: the tool would take it
    // for another file (and its checks, such as a copy into itself, would
    // be wrong), so only plain paths are taken.
    if (kind === "sqlite" && /^file:/i.test(path)) {
      throw usage(
        `"${label}": SQLite's file: URIs are not taken here; write the path itself, e.g. ` +
          `sqlite:${path.replace(/^file:(\/\/)?/i, "").replace(/\?.*$/, "") || "sessions.db"}`,
      );
    }
    for (const name of query.keys()) {
      if (!OWN[kind].includes(name)) {
        throw usage(
          `"${label}": unknown parameter "${name}"; ${text.slice(0, match![1].length)} takes ` +
            OWN[kind].join(", "),
        );
      }
    }
    target = path;
  } else {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw usage(`"${label}" is no valid URL; a storage is named as ${FORMS}`);
    }
    if (url.hostname === "") throw usage(`"${label}" names no host, e.g. ${kindExample(kind)}`);
    query = url.searchParams;
    const driverUrl = new URL(url);
    for (const name of OWN[kind]) driverUrl.searchParams.delete(name);
    if (kind === "mysql") driverUrl.protocol = "mysql:";
    target = driverUrl.searchParams.size === 0 ? driverUrl.href.replace(/\?$/, "") : driverUrl.href;
  }
  const options: StorageSpec["options"] = {};
  const own = new URLSearchParams();
  for (const [name, value] of query) if (OWN[kind].includes(name)) own.append(name, value);
  query = own;
  const prefix = query.get("prefix");
  if (prefix !== null) options.prefix = prefix;
  const fromQuery = query.get("table");
  if (fromQuery !== null) options.table = fromQuery;
  else if (table !== undefined && hasTables(kind)) options.table = table;
  const schema = query.get("schema");
  if (schema !== null) options.schema = schema;
  const ttl = query.get("ttl");
  if (ttl !== null) {
    if (!/^\d+$/.test(ttl) || Number(ttl) < 1) {
      throw usage(`"${label}": ttl must be a whole number of milliseconds, got "${ttl}"`);
    }
    options.ttl = Number(ttl);
  }
  return { kind, label, target, options };
}

function kindExample(kind: StorageKind): string {
  return kind === "redis"
    ? "redis://127.0.0.1:6379"
    : kind === "postgres"
    ? "postgres://postgres@127.0.0.1:5432/mydb"
    : "mysql://root@127.0.0.1:3306/mydb";
}

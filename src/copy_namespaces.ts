/**
 * The checks that refuse a copy into itself: one storage underneath two
 * `enhanceStorage` wrappers (or a wrapper over the other), and two
 * `RedisStorage` namespaces of one server whose prefixes overlap.
 *
 * @module
 */

import { WRAPPED } from "./enhance.ts";

/** What `checkNamespaces` sees of a `RedisStorage` (without importing it). */
interface RedisLike {
  client: object;
  prefix: string;
  leasePrefix: string;
}

function redisLike(storage: unknown): storage is RedisLike {
  const s = storage as Partial<RedisLike>;
  return typeof s.prefix === "string" && typeof s.leasePrefix === "string" &&
    typeof s.client === "object" && s.client !== null;
}

/**
 * The server and database a Redis client talks to, as one spelling (every
 * loopback name as `loopback`), from node-redis's or ioredis's options; or
 * `undefined` when they do not say (a cluster client, another library).
 */
function redisServer(client: object): string | undefined {
  const options = (client as { options?: Record<string, unknown> }).options;
  if (typeof options !== "object" || options === null) return undefined;
  let host: unknown;
  let port: unknown;
  let db: unknown;
  if (typeof options.url === "string") {
    try {
      const url = new URL(options.url);
      [host, port, db] = [url.hostname, url.port, url.pathname.replace(/^\//, "")];
    } catch {
      return undefined;
    }
  }
  const socket = options.socket as { host?: unknown; port?: unknown } | undefined;
  host = (host || undefined) ?? socket?.host ?? options.host;
  port = (port || undefined) ?? socket?.port ?? options.port;
  db = (db || undefined) ?? options.database ?? options.db;
  if (
    typeof options.path === "string" || typeof (socket as { path?: unknown })?.path === "string"
  ) {
    return undefined; // a Unix socket
  }
  const name = String(host ?? "localhost").toLowerCase().replace(/^\[|\]$/g, "");
  const loopback = name === "localhost" || name === "::1" || /^127\.\d+\.\d+\.\d+$/.test(name);
  return `${loopback ? "loopback" : name}:${port || 6379}/${Number(db ?? 0) || 0}`;
}

/** The storage an `enhanceStorage` wrapper (or a wrapper of one) stores into; else `storage`. */
export function underneath(storage: object): object {
  let s = storage as { [WRAPPED]?: object };
  while (typeof s[WRAPPED] === "object" && s[WRAPPED] !== null) s = s[WRAPPED] as typeof s;
  return s;
}

/**
 * Refuses a copy between two `RedisStorage`s of one server and database
 * whose prefixes overlap (one starts with the other): the source's listing
 * (`SCAN MATCH prefix*`) would take in the sessions the copy writes, or the
 * copy would write into the source. One server is known when both use the
 * same client, or when their clients' options name the same host (the
 * loopback names as one), port and database. `from` and `to` are the
 * storages underneath any `enhanceStorage` wrappers; other wrappers are not
 * looked into.
 */
export function checkNamespaces(where: string, from: unknown, to: unknown): void {
  if (!redisLike(from) || !redisLike(to)) return;
  const server = redisServer(from.client);
  const same = from.client === to.client ||
    (server !== undefined && server === redisServer(to.client));
  if (!same) return;
  const [a, b] = [from.prefix, to.prefix];
  if (a === b) {
    throw new RangeError(
      `${where}: from and to are the same storage (the same Redis server and prefix ` +
        `${JSON.stringify(a)}); copy into another prefix or database.`,
    );
  }
  if (!a.startsWith(b) && !b.startsWith(a)) return;
  const [outer, inner] = a.startsWith(b) ? [b, a] : [a, b];
  throw new RangeError(
    `${where}: from and to are namespaces of the same Redis server whose prefixes overlap ` +
      `(${JSON.stringify(inner)} starts with ${JSON.stringify(outer)}): ` +
      (inner === b
        ? "the source's listing would take in the sessions the copy writes"
        : "the source's sessions lie inside the target's namespace") +
      `. Give the target a prefix that neither starts with the source's nor is the start of ` +
      `it, or use another database (redis://host:6379/1).`,
  );
}

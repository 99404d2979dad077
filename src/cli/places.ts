/**
 * Where a storage named by URL keeps its sessions, spelt one way, and the
 * check that refuses a copy from a storage into itself however it is spelt
 * (or into a namespace nested in it).
 *
 * @module
 */

import { usage } from "./exit.ts";
import type { StorageSpec } from "./urls.ts";

/**
 * Where a storage keeps its sessions, spelt one way: `server` names the
 * file, database or server (paths resolved through symbolic links; the
 * loopback names localhost, 127.0.0.1 and ::1 as one; default ports and
 * databases filled in), `space` the table or namespace in it (defaults
 * filled in). Redis's namespace is its key prefix, in `prefix`.
 */
interface Place {
  server: string;
  space: string;
  prefix?: string;
}

/** A host name as one spelling: every loopback name is `loopback`. */
function hostOf(url: URL): string {
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || host === "::1" || host === "0:0:0:0:0:0:0:1" ||
    host === "0.0.0.0" || /^127\.\d+\.\d+\.\d+$/.test(host);
  return loopback ? "loopback" : host;
}

/** The path of a file as one spelling: absolute, through symbolic links. */
async function realPath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    // Not there (yet): its directory resolved, and its name.
    const slash = path.lastIndexOf("/");
    const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
    try {
      return `${await Deno.realPath(dir)}/${path.slice(slash + 1)}`;
    } catch {
      return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
    }
  }
}

/** Where `spec` keeps its sessions (see {@link Place}). */
async function placeOf(spec: StorageSpec): Promise<Place> {
  const { kind, target, options } = spec;
  switch (kind) {
    case "sqlite":
      return {
        // Every ":memory:" database is one of its own.
        server: target === ":memory:" ? `memory:${crypto.randomUUID()}` : await realPath(target),
        space: (options.table ?? "sessions").toLowerCase(), // SQLite's names ignore case
      };
    case "kv":
      return {
        server: target === "" || /^https?:\/\//i.test(target) ? target : await realPath(target),
        space: JSON.stringify((options.prefix ?? "sessions").split(",")),
      };
    case "redis": {
      const url = new URL(target);
      const db = Number(url.pathname.replace(/^\//, "") || "0");
      return {
        server: `${hostOf(url)}:${url.port || "6379"}/${db}`,
        space: "",
        prefix: options.prefix ?? "session:",
      };
    }
    case "postgres": {
      const url = new URL(target);
      const db = decodeURIComponent(url.pathname.replace(/^\//, "")) ||
        decodeURIComponent(url.username);
      return {
        server: `${hostOf(url)}:${url.port || "5432"}/${db}`,
        // No schema means the first on the search path: public, unless the server says else.
        space: `${options.schema === "public" ? "" : options.schema ?? ""}.${
          options.table ?? "sessions"
        }`,
      };
    }
    case "mysql": {
      const url = new URL(target);
      const db = decodeURIComponent(url.pathname.replace(/^\//, ""));
      return {
        server: `${hostOf(url)}:${url.port || "3306"}/${db}`,
        space: options.table ?? "sessions",
      };
    }
  }
}

/**
 * Refuses a copy from a storage into itself however it is spelt (`sqlite:a.db`
 * and `sqlite:./a.db`, `localhost` and `127.0.0.1`, a default spelt out), and
 * a copy between two Redis namespaces of one server where one key prefix
 * starts with the other: the source's listing would take in the sessions the
 * copy writes (or the copy would write into the source). Names that only
 * resolve to the same server (another host name, an address of its own) are
 * not recognised.
 */
export async function checkDistinct(from: StorageSpec, to: StorageSpec): Promise<void> {
  if (from.kind !== to.kind) return;
  const [a, b] = await Promise.all([placeOf(from), placeOf(to)]);
  if (from.kind === "kv" && a.server === b.server && a.space !== b.space) {
    // One KV key prefix starting with the other: one storage's entries lie
    // inside the other's namespace, where a write or a delete of a session
    // can reach them.
    const [pa, pb] = [JSON.parse(a.space) as string[], JSON.parse(b.space) as string[]];
    const [short, long] = pa.length < pb.length ? [pa, pb] : [pb, pa];
    if (short.every((part, i) => long[i] === part)) {
      throw usage(
        `FROM and TO are namespaces of the same Deno KV database whose key prefixes are nested ` +
          `(${JSON.stringify(long)} starts with ${JSON.stringify(short)}); use a prefix for TO ` +
          `that neither starts with FROM's nor is the start of it, or another KV file`,
      );
    }
  }
  if (a.server !== b.server || a.space !== b.space) return;
  if (a.prefix === b.prefix) {
    throw usage(
      `FROM and TO are the same storage (${from.label} and ${to.label}); copy into another one`,
    );
  }
  const [outer, inner, which] = a.prefix!.startsWith(b.prefix!)
    ? [b.prefix!, a.prefix!, "FROM's sessions lie inside TO's namespace"]
    : b.prefix!.startsWith(a.prefix!)
    ? [a.prefix!, b.prefix!, "FROM's listing would take in the sessions the copy writes"]
    : [];
  if (outer === undefined) return;
  const suggestion = suggestPrefix(a.prefix!, b.prefix!);
  throw usage(
    `FROM and TO are namespaces of the same Redis server whose key prefixes overlap ` +
      `(${JSON.stringify(inner)} starts with ${JSON.stringify(outer)}): ${which}; ` +
      (suggestion === undefined
        ? 'the prefix "" takes in every key of the database, so '
        : `use a prefix for TO that neither starts with FROM's nor is the start of it (such ` +
          `as ?prefix=${suggestion}), or `) +
      `copy into another database (redis://HOST:PORT/1)`,
  );
}

/** A prefix for TO that overlaps neither way with `from`; none when `from` is empty. */
function suggestPrefix(from: string, to: string): string | undefined {
  if (from === "") return undefined;
  for (const candidate of [`${to.replace(/[:_.-]$/, "")}_copy:`, `copy:${to}`]) {
    if (candidate !== "" && !candidate.startsWith(from) && !from.startsWith(candidate)) {
      return candidate;
    }
  }
  return undefined;
}

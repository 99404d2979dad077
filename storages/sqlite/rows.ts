/**
 * Recognizing rows of the session table that sessionkit cannot have
 * written, before they turn into wrong keys, wrong values or a listing
 * cursor that does not move: keys that are not text, or text the driver
 * reads back as other bytes than SQLite stores (a NUL, bytes that are not
 * UTF-8); values that are not text.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { SessionError } from "../../src/errors.ts";
import type { Row } from "./database.ts";
import { quoteIdentifier } from "./sql.ts";

/** A database's text encoding, as `PRAGMA encoding` names it. */
export type TextEncoding = "UTF-8" | "UTF-16le" | "UTF-16be";

/**
 * The text encoding of a `PRAGMA encoding` row (UTF-8 when unknown).
 *
 * @example
 * ```ts
 * encodingOf({ encoding: "UTF-16le" }); // "UTF-16le"
 * ```
 */
export function encodingOf(row: Row | undefined): TextEncoding {
  const name = String(row?.encoding ?? "UTF-8");
  return name === "UTF-16le" || name === "UTF-16be" ? name : "UTF-8";
}

/** `text` as the bytes a database of `encoding` stores, in upper-case hex (as `hex()`). */
function storedHex(text: string, encoding: TextEncoding): string {
  if (encoding === "UTF-8") return Buffer.from(text, "utf8").toString("hex").toUpperCase();
  const bytes = Buffer.from(text, "utf16le");
  if (encoding === "UTF-16be") bytes.swap16();
  return bytes.toString("hex").toUpperCase();
}

/**
 * The key of a listed row (`key` and `raw`, its stored bytes in hex),
 * exactly as stored; a `SessionError` naming `table` for a key sessionkit
 * cannot have written.
 *
 * @example
 * ```ts
 * listedKey({ key: "a", raw: "61" }, "sessions", "UTF-8"); // "a"
 * ```
 */
export function listedKey(row: Row, table: string, encoding: TextEncoding): string {
  const key = row.key;
  if (typeof key !== "string") {
    throw foreign(table, `whose key is ${kindOf(key)}, not text`, `typeof("key") <> 'text'`);
  }
  if (storedHex(key, encoding) !== String(row.raw).toUpperCase()) {
    throw foreign(
      table,
      `whose key holds a NUL character or bytes that are not UTF-8 (stored as X'${
        short(String(row.raw))
      }')`,
      `hex("key") = '${String(row.raw).toUpperCase()}'`,
    );
  }
  return key;
}

/**
 * The value of a row as the JSON text sessionkit stores; a `SessionError`
 * naming `table` for a value that is not text.
 *
 * @example
 * ```ts
 * payloadOf("{}", "a", "sessions"); // "{}"
 * ```
 */
export function payloadOf(value: unknown, key: string, table: string): string {
  if (typeof value === "string") return value;
  const error = foreign(
    table,
    `under the key ${JSON.stringify(key)} whose value is ${kindOf(value)}, not JSON text`,
    `typeof("value") <> 'text'`,
  );
  throw new SessionError(error.message, key);
}

function kindOf(value: unknown): string {
  if (value instanceof Uint8Array) return "a BLOB";
  if (value === null || value === undefined) return "NULL";
  return typeof value === "string" ? "text" : "a number";
}

function short(hex: string): string {
  return hex.length > 64 ? `${hex.slice(0, 64)}…` : hex;
}

function foreign(table: string, what: string, where: string): SessionError {
  const t = quoteIdentifier(table);
  return new SessionError(
    `SqliteStorage: the table ${JSON.stringify(table)} holds a row ${what}, so sessionkit did ` +
      `not write it and cannot list or read it. Delete the rows sessionkit did not write (such ` +
      `as DELETE FROM ${t} WHERE ${where}), or give this storage a table of its own (the table ` +
      `option).`,
  );
}

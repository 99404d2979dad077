/**
 * Backups as JSON Lines: `exportSessions()` writes every session of a
 * storage as one `{"key": ..., "value": ...}` object per line, and
 * `importSessions()` reads such a file into a storage, with the same
 * batching, skipping, dry run, progress and abort as `copySessions()`. The
 * backup is a plain text file that any tool can read.
 *
 * @module
 */

import type { StorageAdapter } from "./storage.ts";
import { checkStorage } from "./validate.ts";
import { serializeSession } from "./serialization.ts";
import {
  checkCopyOptions,
  type CopyItem,
  type CopyOptions,
  type CopyReport,
  type Outcome,
} from "./copy_options.ts";
import { listSource, valueOf } from "./copy_source.ts";
import { runCopy, targetWriter } from "./copy_run.ts";
import { messageOf } from "./errors.ts";

/** Options of {@link exportSessions}: those of `copySessions` but `overwrite`, and one more. */
export interface ExportOptions extends Omit<CopyOptions, "overwrite"> {
  /**
   * Leave the stream open at the end (to write more after the sessions).
   * Default `false`: the stream is closed when the export ends, as
   * `pipeTo` does.
   */
  preventClose?: boolean;
}

const EXPORT_OPTIONS = [
  "prefix",
  "dryRun",
  "batchSize",
  "onProgress",
  "signal",
  "keys",
  "preventClose",
] as const;
const IMPORT_OPTIONS = ["prefix", "overwrite", "dryRun", "batchSize", "onProgress", "signal"];

/** The byte that ends a line. */
const NEWLINE = 0x0a;

function checkWritable(where: string, stream: unknown): asserts stream is WritableStream {
  if (typeof (stream as WritableStream | undefined)?.getWriter !== "function") {
    throw new TypeError(
      `${where}: the second argument must be a WritableStream<Uint8Array>, such as ` +
        `(await Deno.open(path, { write: true, create: true, truncate: true })).writable.`,
    );
  }
}

function checkReadable(where: string, stream: unknown): asserts stream is ReadableStream {
  if (typeof (stream as ReadableStream | undefined)?.getReader !== "function") {
    throw new TypeError(
      `${where}: the first argument must be a ReadableStream<Uint8Array>, such as ` +
        `(await Deno.open(path)).readable.`,
    );
  }
}

/**
 * Writes every session of `from` to `to` as JSON Lines: one
 * `JSON.stringify({ key, value })` and a newline per session, UTF-8. The
 * value's text is exactly what a sessionkit storage stores for it (the
 * serialization contract), and a value that breaks the contract (a `Date`,
 * a `BigInt`, ...) is counted as failed instead of being written changed.
 *
 * The source is listed as by `copySessions` (`readAllEntries`, else
 * `readAllKeys` and `read`, or the given `keys`), a batch at a time: each
 * batch becomes one chunk written to the stream, and the next batch waits
 * until the stream has taken it (backpressure), so memory stays bounded by
 * one batch. `copied` counts the sessions written, `skipped` the keys that
 * were gone when read. With `dryRun`, nothing is written. The stream is
 * closed at the end (also after an abort) unless `preventClose` is set;
 * when the export fails, the stream is aborted.
 *
 * @example Backing up a SQLite storage to a file
 * ```ts ignore
 * import { DatabaseSync } from "node:sqlite";
 * import { exportSessions } from "@sessionkit/grammy";
 * import { SqliteStorage } from "@sessionkit/grammy/sqlite";
 *
 * const storage = new SqliteStorage(new DatabaseSync("sessions.db"));
 * const file = await Deno.open("sessions.jsonl", { write: true, create: true, truncate: true });
 * const report = await exportSessions(storage, file.writable);
 * console.log(`${report.copied} sessions saved`);
 * ```
 *
 * @example Into memory
 * ```ts
 * import { exportSessions, MemorySessionStorage } from "@sessionkit/grammy";
 *
 * const storage = new MemorySessionStorage<{ count: number }>();
 * storage.write("42", { count: 1 });
 * const chunks: Uint8Array[] = [];
 * await exportSessions(storage, new WritableStream({ write: (c) => void chunks.push(c) }));
 * console.log(new TextDecoder().decode(chunks[0])); // {"key":"42","value":{"count":1}}
 * ```
 *
 * @param from The storage to export (any `StorageAdapter` that lists, or `keys`).
 * @param to Where the lines go.
 * @param options Prefix, dry run, batch size, progress, abort signal, keys, preventClose.
 * @returns What was written, skipped and failed, and whether the export was aborted.
 */
export async function exportSessions<T>(
  from: StorageAdapter<T>,
  to: WritableStream<Uint8Array>,
  options?: ExportOptions,
): Promise<CopyReport> {
  const where = "exportSessions";
  checkStorage(`${where}: from (the source)`, from);
  checkWritable(where, to);
  const settings = checkCopyOptions(where, options, EXPORT_OPTIONS);
  const preventClose = (options as ExportOptions | undefined)?.preventClose;
  if (preventClose !== undefined && typeof preventClose !== "boolean") {
    throw new TypeError(`${where}: preventClose must be true or false.`);
  }
  const source = listSource(where, from, settings.keys, settings.prefix);
  // Taken in a dry run too: nothing is written, and the stream is closed all the same.
  const writer = to.getWriter();
  const encoder = new TextEncoder();
  let report: CopyReport;
  try {
    report = await runCopy(
      where,
      source,
      settings,
      async (batch) => {
        const read = await Promise.all(batch.map(async (item) => {
          try {
            return { value: await valueOf(from, item) };
          } catch (error) {
            return { error };
          }
        }));
        let text = "";
        const outcomes = read.map((r, i): Outcome => {
          if ("error" in r) return { error: r.error };
          if (r.value == null) return "skipped";
          const key = batch[i].key;
          try {
            text += `{"key":${JSON.stringify(key)},"value":${serializeSession(r.value, key)}}\n`;
            return "copied";
          } catch (error) {
            return { error };
          }
        });
        if (!settings.dryRun && text !== "") {
          try {
            await writer.write(encoder.encode(text));
          } catch (err) {
            throw new Error(
              `${where}: writing to the stream failed, so the export stopped: ${messageOf(err)}`,
              { cause: err },
            );
          }
        }
        return outcomes;
      },
      undefined,
      settings.keys !== undefined,
    );
  } catch (err) {
    if (!preventClose) await writer.abort(err).catch(() => {});
    writer.releaseLock();
    throw err;
  }
  if (!preventClose) await writer.close();
  else writer.releaseLock();
  return report;
}

/**
 * The lines of `stream`, split at newline bytes (so any line length works
 * and a multi-byte character is never split), as items: a session, or a
 * failure naming the line. Blank lines are left out; a byte order mark at
 * the start is ignored. The stream is cancelled when the consumer stops
 * early.
 */
async function* lines<T>(stream: ReadableStream<Uint8Array>): AsyncGenerator<CopyItem<T>> {
  const reader = stream.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let number = 0;
  let pieces: Uint8Array[] = [];
  let done = false;
  const parse = (bytes: Uint8Array): CopyItem<T> | undefined => {
    number++;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch (cause) {
      return failure(number, `line ${number} is not valid UTF-8 text`, { cause });
    }
    if (number === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === "") return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      return failure(number, `line ${number} is not valid JSON: ${messageOf(cause)}`, { cause });
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return failure(number, `line ${number} is not a JSON object {"key": ..., "value": ...}`);
    }
    const { key, value } = parsed as { key?: unknown; value?: unknown };
    if (typeof key !== "string") {
      return failure(number, `line ${number} has no "key" string`);
    }
    if (!Object.hasOwn(parsed, "value")) {
      return failure(number, `line ${number} (key ${JSON.stringify(key)}) has no "value"`, {
        key,
      });
    }
    if (value === null) {
      return failure(
        number,
        `line ${number} (key ${JSON.stringify(key)}) has "value": null, which a storage ` +
          `reads as "no session"; leave the line out to have no session`,
        { key },
      );
    }
    // An integer of 16 digits or more may be beyond what a number holds
    // exactly; an exponent of 3 digits, beyond what it holds at all.
    const inexact = /\d{16}|[eE][+-]?\d{3}/.test(text) ? inexactInteger(text) : undefined;
    if (inexact !== undefined && !Number.isFinite(Number(inexact))) {
      return failure(
        number,
        `line ${number} (key ${JSON.stringify(key)}) has the number ${inexact}, beyond what a ` +
          `JavaScript number holds (it would be stored as null); write it as a string to keep it`,
        { key },
      );
    }
    if (inexact !== undefined) {
      return failure(
        number,
        `line ${number} (key ${JSON.stringify(key)}) has the integer ${inexact}, which a ` +
          `JavaScript number cannot keep as written (it would be stored as ` +
          `${JSON.stringify(Number(inexact.replace(/\.0+$/, "")))}); ` +
          `write it as a string ("${inexact.replace(/\.0+$/, "")}") to keep it`,
        { key },
      );
    }
    return { key, given: true, value: value as T, line: number };
  };
  try {
    while (!done) {
      const chunk = await reader.read();
      if (chunk.done) {
        done = true;
        break;
      }
      const bytes = chunk.value;
      let start = 0;
      for (;;) {
        const end = bytes.indexOf(NEWLINE, start);
        if (end < 0) break;
        let line = bytes.subarray(start, end);
        if (pieces.length > 0) {
          line = concat([...pieces, line]);
          pieces = [];
        }
        const item = parse(line);
        if (item !== undefined) yield item;
        start = end + 1;
      }
      if (start < bytes.length) pieces.push(bytes.subarray(start));
    }
    if (pieces.length > 0) {
      const item = parse(concat(pieces));
      pieces = [];
      if (item !== undefined) yield item;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * The first integer written in the `"value"` of the JSON object text `text`
 * (digits, with no fraction or a fraction of zeros only, as in `123.0`; no
 * exponent) that a number cannot keep as written, such as a 64-bit id beyond
 * 2^53 from another language, whose digits would be stored otherwise; not
 * the digits `JSON.stringify` writes for a number (an export of sessions
 * that hold large numbers imports as it was); or the first number beyond
 * what a number holds at all (`1e400`, which reads as `Infinity`);
 * `undefined` if there is none. Other numbers with digits after the point
 * or with an exponent are floating point by their writer's choice
 * (`JSON.stringify` writes large numbers as `1e+30`) and are not checked;
 * text inside strings and the line's other members are skipped. `text` is
 * valid JSON (it was parsed).
 */
function inexactInteger(text: string): string | undefined {
  const token = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[{}[\]:]/g;
  let depth = 0;
  let last = "";
  let member: string | undefined;
  for (const [match] of text.matchAll(token)) {
    const first = match.charCodeAt(0);
    if (match === "{" || match === "[") depth++;
    else if (match === "}" || match === "]") depth--;
    else if (match === ":" && depth === 1) member = JSON.parse(last);
    else if (member !== "value" || !(first === 0x2d || (first >= 0x30 && first <= 0x39))) {
      // not a number of the value
    } else if (!Number.isFinite(Number(match))) {
      return match; // such as 1e400: Infinity, which JSON cannot hold
    } else if (/^-?\d+(?:\.0+)?$/.test(match)) {
      const digits = match.replace(/\.0+$/, "");
      // What JSON.stringify writes for a number (as exportSessions does)
      // reads back as the same number and is written again as the same
      // digits, such as 1152921504606847000 for 2^60: kept. Other digits
      // that a number cannot keep (9007199254740993, or 2^64 spelt out
      // exactly, which would be stored as 18446744073709552000): refused.
      if (digits.replace(/^-?0*/, "").length >= 16 && JSON.stringify(Number(digits)) !== digits) {
        return match;
      }
    }
    last = match;
  }
  return undefined;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** An input line that is no session: its error names the line, and the key if it has one. */
function failure<T>(
  line: number,
  message: string,
  { cause, key }: { cause?: unknown; key?: string } = {},
): CopyItem<T> {
  const error = new SyntaxError(message, cause === undefined ? undefined : { cause });
  return key === undefined
    ? { key: "", keyless: true, given: true, line, error }
    : { key, given: true, line, error };
}

/**
 * Reads JSON Lines (as {@link exportSessions} writes them) from `from` into
 * `to`: one `{"key": ..., "value": ...}` object per line, UTF-8. Each
 * session is written as `copySessions` writes it: without `overwrite`, a key
 * `to` already holds is skipped (by an atomic create-if-absent where `to`
 * has conditional writes), so importing the same file twice, or again after
 * an interrupted import, writes nothing twice.
 *
 * A line that is not valid JSON, not an object, has no `"key"` string or no
 * `"value"` (or `"value": null`), or whose value holds an integer (written
 * without exponent, with no fraction or `.0`) that a number cannot keep as
 * written, such as a 64-bit id beyond 2^53 (not the digits `JSON.stringify`
 * writes for a number, which read back as that number), is counted as failed, with an error naming its line
 * number (`failures[i].line`), and the import goes on. A key on several
 * lines: without `overwrite` its first line is imported and the others are
 * skipped, whatever the batch size (the keys are remembered for that, about
 * 60 bytes each; if the first line fails, so does the key); with
 * `overwrite` the last one wins. A dry run counts the same. Blank lines
 * are ignored; lines of any length are read. At most one batch of sessions
 * is held at a time, and the stream is read no faster than the storage
 * writes. With `prefix`, only lines whose key starts with it are imported.
 * The stream is read to its end, or cancelled when the import stops early.
 *
 * @example Restoring a backup file into Deno KV
 * ```ts ignore
 * import { importSessions } from "@sessionkit/grammy";
 * import { DenoKvStorage } from "@sessionkit/grammy/denokv";
 *
 * const storage = new DenoKvStorage(await Deno.openKv("sessions.kv"));
 * const file = await Deno.open("sessions.jsonl");
 * const report = await importSessions(file.readable, storage);
 * for (const { line, error } of report.failures) console.error(`line ${line}:`, error);
 * ```
 *
 * @example From a string
 * ```ts
 * import { importSessions, MemorySessionStorage } from "@sessionkit/grammy";
 *
 * const text = '{"key":"42","value":{"count":1}}\n{"key":"43","value":{"count":2}}\n';
 * const storage = new MemorySessionStorage<{ count: number }>();
 * const report = await importSessions(new Blob([text]).stream(), storage);
 * console.log(report.copied, storage.read("43")); // 2 { count: 2 }
 * ```
 *
 * @param from The JSON Lines bytes.
 * @param to The storage to write into (any `StorageAdapter`).
 * @param options Prefix, overwrite, dry run, batch size, progress, abort signal.
 * @returns What was written, skipped and failed, and whether the import was aborted.
 */
export async function importSessions<T>(
  from: ReadableStream<Uint8Array>,
  to: StorageAdapter<T>,
  options?: CopyOptions,
): Promise<CopyReport> {
  const where = "importSessions";
  checkReadable(where, from);
  checkStorage(`${where}: to (the target)`, to);
  const settings = checkCopyOptions(where, options, IMPORT_OPTIONS);
  const put = targetWriter(to, settings);
  return await runCopy(
    where,
    lines<T>(from),
    settings,
    (batch) =>
      Promise.all(batch.map(async (item): Promise<Outcome> => {
        if (item.error !== undefined) return { error: item.error };
        try {
          return await put(item.key, item.value as T);
        } catch (error) {
          return { error };
        }
      })),
    "reading the input",
    true,
  );
}

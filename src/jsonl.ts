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
  type CopyOptions,
  type CopyReport,
  type Outcome,
} from "./copy_options.ts";
import { listSource, valueOf } from "./copy_source.ts";
import { runCopy, targetWriter } from "./copy_run.ts";
import { messageOf } from "./errors.ts";
import { jsonLines } from "./jsonl_lines.ts";

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
    jsonLines<T>(from),
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

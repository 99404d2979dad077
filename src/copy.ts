/**
 * `copySessions()`: moves every session of one storage into another, in
 * bounded batches, skipping or overwriting what the target already holds,
 * with a dry run, a progress callback and an abort signal. Works on any
 * `StorageAdapter`: sessionkit's storages, grammY's adapters and
 * `enhanceStorage` wrappers. The parts: `copy_options.ts` (options and
 * reports), `copy_source.ts` (what is copied), `copy_run.ts` (batches,
 * counts, the target's writes), `copy_namespaces.ts` (a copy into itself).
 *
 * @module
 */

import type { StorageAdapter } from "./storage.ts";
import { checkStorage } from "./validate.ts";
import {
  checkCopyOptions,
  type CopyOptions,
  type CopyReport,
  type Outcome,
} from "./copy_options.ts";
import { listSource, valueOf } from "./copy_source.ts";
import { runCopy, targetWriter } from "./copy_run.ts";
import { checkNamespaces, underneath } from "./copy_namespaces.ts";

export type { CopyOptions, CopyProgress, CopyReport } from "./copy_options.ts";

const COPY_OPTIONS = [
  "prefix",
  "overwrite",
  "dryRun",
  "batchSize",
  "onProgress",
  "signal",
  "keys",
] as const;

/**
 * Copies every session of `from` into `to`, a batch of keys at a time.
 *
 * - **Listing.** The source is listed with `readAllEntries` when it has it
 *   (the values come with the listing), else with `readAllKeys` and a
 *   `read` per key. A source with neither (such as
 *   `@grammyjs/storage-file`) is an error, unless `keys` names the keys to
 *   copy. At most `batchSize` sessions are held at a time (besides the page
 *   a storage's listing holds; sessionkit's storages list in pages of 500,
 *   except the memory storage, which is all in memory anyway), and, with
 *   `readAllEntries`, the keys handed out so far (to finish a listing that
 *   fails, below).
 * - **What the target holds.** Without `overwrite`, a key the target holds
 *   is skipped: on a storage with conditional writes (every sessionkit
 *   storage) by `writeIfVersion(key, value, null)`, an atomic
 *   create-if-absent that never overwrites a rerun's or a concurrent
 *   writer's data; else by `has` (or `read`) before a plain `write`. With
 *   `overwrite`, every session is written with `write`.
 * - **Failures.** A key whose read or write throws is counted as failed,
 *   with its error (the first 100 are kept), and the copy goes on. A key
 *   listed but gone when read is skipped. A session the listing cannot read
 *   fails alone too: when `readAllEntries` throws (sessionkit's storages
 *   decode a page of 500 at once, so one value that is not JSON fails the
 *   page; an `enhanceStorage` wrapper throws on a session a migration cannot
 *   open), the source is listed again by `readAllKeys`, each key not handed
 *   out yet is read by itself, and nothing is copied twice. A listing that
 *   still throws stops the copy with an error saying how far it got, and
 *   whether a rerun can help (not when it names a session it cannot read).
 * - **A key that comes more than once** (in `keys`): without `overwrite`
 *   only its first occurrence is handled, whatever the batches (the keys
 *   handled are remembered for that); with `overwrite`, once per batch, the
 *   last occurrence. The others are counted as skipped.
 * - **Into itself.** `from === to` is refused, and so is an
 *   `enhanceStorage` wrapper over the other (or two wrappers of one storage),
 *   and so are two `RedisStorage`s of one server and database (the same
 *   client, or clients whose options name the same host, port and database;
 *   looked for underneath `enhanceStorage` wrappers) whose prefixes are equal
 *   or one starts with the other: the source's listing would take in what
 *   the copy writes. Other overlaps (two objects over one SQL table, two
 *   `DenoKvStorage`s with nested prefixes, a wrapper other than
 *   `enhanceStorage`) are not detected.
 * - **A dry run** asks the target what it holds, as the run does; it does
 *   not try the values, so one the target would refuse (too large for its
 *   server) is counted as copied, and the run then reports it as failed.
 * - **Interrupted runs.** With `signal`, the copy stops after the batch in
 *   flight and reports `aborted: true`. Running it again (without
 *   `overwrite`) skips what was copied and copies the rest.
 * - **The event loop** gets a turn between batches, even between storages
 *   that answer synchronously (memory, SQLite): timers (such as an
 *   `AbortSignal.timeout` signal), I/O and a bot's other updates in the same
 *   process run during a long copy.
 * - **Values** are handed over as the source gives them. For an
 *   `enhanceStorage` wrapper that is the choice of what to pass: the wrapper
 *   gives migrated data without its envelope (expired sessions left out),
 *   the storage it wraps gives the stored envelopes `{ __d, v, e }` as they
 *   are.
 *
 * @example Moving from Redis to PostgreSQL
 * ```ts ignore
 * import { copySessions } from "@sessionkit/grammy";
 * import { RedisStorage } from "@sessionkit/grammy/redis";
 * import { PostgresStorage } from "@sessionkit/grammy/postgres";
 *
 * const from = await RedisStorage.connect("redis://127.0.0.1:6379");
 * const to = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/bot");
 * const report = await copySessions(from, to, {
 *   onProgress: (p) => console.log(`${p.copied} copied, ${p.skipped} skipped`),
 * });
 * console.log(report.failed === 0 ? "done" : report.failures);
 * await from.close();
 * await to.close();
 * ```
 *
 * @example A dry run of some keys
 * ```ts
 * import { copySessions, MemorySessionStorage } from "@sessionkit/grammy";
 *
 * const from = new MemorySessionStorage<{ count: number }>();
 * from.write("user:1", { count: 1 });
 * from.write("chat:1", { count: 2 });
 * const to = new MemorySessionStorage<{ count: number }>();
 * const report = await copySessions(from, to, { prefix: "user:", dryRun: true });
 * console.log(report.copied, to.size); // 1 0
 * ```
 *
 * @param from The storage to copy from (any `StorageAdapter`).
 * @param to The storage to copy into (any `StorageAdapter`).
 * @param options Prefix, overwrite, dry run, batch size, progress, abort signal, keys.
 * @returns What was copied, skipped and failed, and whether the copy was aborted.
 */
export async function copySessions<T>(
  from: StorageAdapter<T>,
  to: StorageAdapter<T>,
  options?: CopyOptions,
): Promise<CopyReport> {
  const where = "copySessions";
  checkStorage(`${where}: from (the source)`, from);
  checkStorage(`${where}: to (the target)`, to);
  if (from === to) {
    throw new TypeError(
      `${where}: from and to are the same storage; copy into another storage (or another ` +
        `prefix or table of the same backend).`,
    );
  }
  if (underneath(from) === underneath(to)) {
    throw new TypeError(
      `${where}: from and to are the same storage underneath (an enhanceStorage wrapper ` +
        `stores into the other, or both wrap one storage); copy into another storage (or ` +
        `another prefix or table of the same backend).`,
    );
  }
  checkNamespaces(where, underneath(from), underneath(to));
  const settings = checkCopyOptions(where, options, COPY_OPTIONS);
  const put = targetWriter(to, settings);
  const source = listSource(where, from, settings.keys, settings.prefix);
  return await runCopy(
    where,
    source,
    settings,
    (batch) =>
      Promise.all(batch.map(async (item): Promise<Outcome> => {
        try {
          const value = await valueOf(from, item);
          if (value == null) return "skipped";
          return await put(item.key, value);
        } catch (error) {
          return { error };
        }
      })),
    undefined,
    settings.keys !== undefined,
  );
}

/**
 * How a copy runs: batch by batch from its source, each key handled once
 * (see `owners`), written into the target as the options say
 * (`targetWriter`), counted (`Tally`), with progress, an abort signal and a
 * turn of the event loop between batches.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { StorageAdapter } from "./storage.ts";
import { isConditionalStorage } from "./capabilities.ts";
import { messageOf, SessionError } from "./errors.ts";
import type { CopyItem, CopyProgress, CopyReport, CopySettings, Outcome } from "./copy_options.ts";

/** Failures kept in a report. */
const MAX_FAILURES = 100;

/**
 * How one session goes into `to` under `settings`: a plain write with
 * `overwrite`; otherwise an atomic create-if-absent on a storage with
 * conditional writes, else a `has` (or `read`) check before the write. In
 * a dry run, only the check.
 *
 * @param to The target storage.
 * @param settings The checked options.
 * @returns A function that puts one session and says what became of it.
 */
export function targetWriter<T>(
  to: StorageAdapter<T>,
  settings: CopySettings,
): (key: string, value: T) => Promise<"copied" | "skipped"> {
  const exists = typeof to.has === "function"
    ? async (key: string) => await to.has!(key)
    : async (key: string) => (await to.read(key)) != null;
  if (settings.overwrite) {
    if (settings.dryRun) return () => Promise.resolve("copied");
    return async (key, value) => {
      await to.write(key, value);
      return "copied";
    };
  }
  if (settings.dryRun) return async (key) => (await exists(key)) ? "skipped" : "copied";
  if (isConditionalStorage<T>(to)) {
    return async (key, value) =>
      (await to.writeIfVersion(key, value, null)) === null ? "skipped" : "copied";
  }
  return async (key, value) => {
    if (await exists(key)) return "skipped";
    await to.write(key, value);
    return "copied";
  };
}

/** Counts outcomes and keeps the first failures. */
export class Tally {
  /** The counts and failures so far. */
  readonly report: CopyReport = {
    listed: 0,
    copied: 0,
    skipped: 0,
    failed: 0,
    failures: [],
    aborted: false,
  };

  /** Counts what became of `item`. */
  add(item: CopyItem<unknown>, outcome: Outcome): void {
    if (outcome === "copied") this.report.copied++;
    else if (outcome === "skipped") this.report.skipped++;
    else {
      this.report.failed++;
      if (this.report.failures.length < MAX_FAILURES) {
        const failure: CopyReport["failures"][number] = { key: item.key, error: outcome.error };
        if (item.line !== undefined) failure.line = item.line;
        this.report.failures.push(failure);
      }
    }
  }

  /** A snapshot of the counts. */
  progress(): CopyProgress {
    const { listed, copied, skipped, failed } = this.report;
    return { listed, copied, skipped, failed };
  }

  /** The counts in words, for an error message. */
  toString(): string {
    const { listed, copied, skipped, failed } = this.report;
    return `${listed} listed: ${copied} copied, ${skipped} skipped, ${failed} failed`;
  }
}

/**
 * One turn of the event loop: resolves from a macrotask, after the timers
 * that are due, I/O callbacks and signal handlers have run. Between two
 * storages that answer synchronously (memory, SQLite), every `await` of a
 * copy resolves as a microtask, which never lets those run: without this, an
 * `AbortSignal.timeout`, a progress display and a bot's other updates in the
 * same process would wait for the whole copy. `setImmediate` rather than
 * `setTimeout(0)`: the same turn at a few microseconds, where a timer of 0 ms
 * waits a millisecond or two (a copy into memory would run at a fraction of
 * its speed).
 */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Which items of a batch are handled (the others are counted as skipped):
 * each key once per batch, the first of its items without `overwrite`, the
 * last with it; none of a key in `handled` (keys handled in earlier
 * batches), and the keys handled now are added to it. Items that failed
 * already (an unreadable input line) are always handled: they fail, and do
 * not count as their key's line.
 */
function owners(
  batch: readonly CopyItem<unknown>[],
  overwrite: boolean,
  handled: Set<string> | undefined,
): boolean[] {
  const winner = new Map<string, number>();
  for (const [i, item] of batch.entries()) {
    if (item.keyless || item.error !== undefined || handled?.has(item.key)) continue;
    if (overwrite || !winner.has(item.key)) winner.set(item.key, i);
  }
  for (const key of winner.keys()) handled?.add(key);
  return batch.map((item, i) =>
    item.keyless === true || item.error !== undefined || winner.get(item.key) === i
  );
}

/**
 * Runs a copy: takes `source` a batch at a time (only keys with the
 * prefix), hands each batch to `handle` (which answers one outcome per
 * item, in order), counts, reports progress and stops early on abort. At
 * most one batch is held at a time. Every `batchSize` elements taken from
 * the source (so before every batch is handed on, and as often while a
 * prefix leaves elements out), the event loop gets a turn, and an abort is
 * seen there even when nothing in the copy waits for I/O. A listing that
 * throws stops the copy after the batch already listed, with an error
 * saying how far it got.
 *
 * @param where Who copies, for messages.
 * @param source The sessions to copy.
 * @param settings The checked options.
 * @param handle Copies one batch.
 * @param what What the source is, for the message of a failed listing.
 * @param repeats Whether the source may give a key more than once (a JSON
 *   Lines file, a `keys` list): without `overwrite`, a key handled in an
 *   earlier batch is then skipped without being looked at again, so that
 *   which line wins never depends on the batch size (its keys are
 *   remembered, about 60 bytes each).
 */
export async function runCopy<T>(
  where: string,
  source: AsyncIterable<CopyItem<T>>,
  settings: CopySettings,
  handle: (batch: CopyItem<T>[]) => Promise<Outcome[]>,
  what = "listing the source",
  repeats = false,
): Promise<CopyReport> {
  const { prefix, batchSize, onProgress, signal } = settings;
  const tally = new Tally();
  if (signal?.aborted) {
    tally.report.aborted = true;
    return tally.report;
  }
  const iterator = source[Symbol.asyncIterator]();
  let batch: CopyItem<T>[] = [];
  let finished = false;
  let listingFailed = false;
  let listingError: unknown;
  /** Elements taken from the source since the event loop last had a turn. */
  let sinceTurn = 0;
  // Keys handled in earlier batches, for an input that may repeat a key
  // (without overwrite only: the first of a key's items wins, in any batch).
  const handled = repeats && !settings.overwrite ? new Set<string>() : undefined;
  const flush = async () => {
    const taken = batch;
    batch = [];
    const own = owners(taken, settings.overwrite, handled);
    const answers = await handle(taken.filter((_, i) => own[i]));
    let next = 0;
    for (const [i, item] of taken.entries()) tally.add(item, own[i] ? answers[next++] : "skipped");
    onProgress?.(tally.progress());
  };
  try {
    for (;;) {
      if (signal?.aborted) {
        tally.report.aborted = true;
        break;
      }
      let next: IteratorResult<CopyItem<T>>;
      try {
        next = await iterator.next();
      } catch (err) {
        listingFailed = true;
        listingError = err;
        break;
      }
      if (next.done) {
        finished = true;
        break;
      }
      const item = next.value;
      if (prefix === undefined || item.keyless || item.key.startsWith(prefix)) {
        tally.report.listed++;
        batch.push(item);
      }
      // Before the batch is handed on: what waits for the event loop (a
      // count running alongside, a Ctrl-C) has its turn first.
      if (++sinceTurn >= batchSize) {
        sinceTurn = 0;
        await turn();
      }
      if (batch.length >= batchSize) await flush();
    }
    if (batch.length > 0) await flush();
  } finally {
    // Stopped early (abort, or a handler or callback threw): close the listing.
    if (!finished && !listingFailed) await iterator.return?.();
  }
  if (listingFailed) {
    // A rerun helps when the storage failed for a while (a lost connection),
    // not when the listing cannot read one session: then it stops at the same
    // place every time, and saying "run it again" would be false.
    const key = listingError instanceof SessionError ? listingError.key : undefined;
    throw new Error(
      `${where}: ${what} failed after ${tally}; what came after was not copied. ` +
        (key !== undefined
          ? `The listing could not read the session under key ${JSON.stringify(key)}, and ` +
            `the source cannot list its keys alone (it has no readAllKeys) to go on without ` +
            `it, so a rerun stops at the same place: fix or delete that session, or pass the ` +
            `keys to copy as the keys option (each is then read alone, and one that cannot ` +
            `be read fails alone). `
          : `If the ${what === "listing the source" ? "storage" : "input"} failed for a while ` +
            `(a lost connection, a timeout), a rerun (without overwrite) skips what is ` +
            `already there and goes on. `) +
        messageOf(listingError),
      { cause: listingError },
    );
  }
  return tally.report;
}

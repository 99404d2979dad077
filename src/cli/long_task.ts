/**
 * How the command-line tool runs a long command (copy, export, import):
 * progress on stderr with a total counted alongside, a stop after the batch
 * in flight on Ctrl-C, and the summary line and exit code at the end; and
 * the message helpers the commands share.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { CopyReport } from "../copy.ts";
import type { StorageAdapter } from "../storage.ts";
import type { Invocation } from "./args.ts";
import { CliError, EXIT, type ExitCode, fold, reason } from "./exit.ts";
import { catchInterrupt } from "./interrupt.ts";
import { count, type Counts, duration, modeFor, Progress, writeStderr } from "./progress.ts";

/** A message line on stderr. */
export function say(text: string): void {
  writeStderr(`${text}\n`);
}

/**
 * `n sessions` / `1 session`.
 *
 * @example
 * ```ts
 * import { sessions } from "./long_task.ts";
 *
 * sessions(1); // "1 session"
 * sessions(1500); // "1,500 sessions"
 * ```
 */
export function sessions(n: number): string {
  return `${count(n)} session${n === 1 ? "" : "s"}`;
}

/** Turns a failure in the middle of a command into one line with exit code 1. */
export function during(command: string, err: unknown): never {
  if (err instanceof CliError) throw err;
  throw new CliError(EXIT.failed, `${command} stopped: ${reason(err)}`, { cause: err });
}

/** Keys the count alongside takes between two turns of the event loop. */
const COUNT_TURN_EVERY = 500;

/** One turn of the event loop (timers, I/O and signal handlers run). */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Counts the sessions of `source` under the prefix alongside a long
 * command, for the progress display's total and time left: a listing of
 * keys only, much cheaper than the command itself. Every 500 keys it gives
 * the event loop a turn: a SQLite listing answers synchronously, so a count
 * that never waited would hold up the command, the progress display and
 * Ctrl-C until it had counted every key (seconds for a million sessions).
 * Stops when `stop` is aborted; a failure only leaves the total unknown.
 */
function countAlongside(
  source: StorageAdapter<unknown>,
  prefix: string | undefined,
  progress: Progress,
  stop: AbortSignal,
): void {
  if (typeof source.readAllKeys !== "function") return;
  (async () => {
    let n = 0;
    let taken = 0;
    for await (const key of source.readAllKeys!()) {
      if (stop.aborted) return;
      if (prefix === undefined || key.startsWith(prefix)) n++;
      if (++taken % COUNT_TURN_EVERY === 0) await turn();
    }
    if (!stop.aborted) progress.total = n;
  })().catch(() => {});
}

/** How a long command reports its outcome. */
export interface Outcome {
  /** The verb for the summary: `copied`. */
  done: string;
  /** Where from and to, for the summary: `from A to B`. */
  path: string;
  /** How to resume after Ctrl-C. */
  resume: string;
  /** A note for a dry run. */
  dryNote?: string;
  /** The whole line after Ctrl-C, when the usual one does not fit (an export to a file). */
  interrupted?: (report: CopyReport) => string;
}

/** Prints the summary of a long command and picks its exit code. */
export function conclude(
  inv: Invocation,
  report: CopyReport,
  seconds: number,
  outcome: Outcome,
): ExitCode {
  const { copied, skipped, failed } = report;
  const rest = [
    skipped > 0 ? `${count(skipped)} skipped` : "",
    failed > 0 ? `${count(failed)} failed` : "",
  ].filter(Boolean).join(", ");
  if (report.aborted && outcome.interrupted !== undefined) {
    say(`interrupted after ${duration(seconds)}: ${outcome.interrupted(report)}`);
  } else if (report.aborted) {
    say(
      `interrupted: ${sessions(copied)} ${outcome.done} ${outcome.path}` +
        (rest ? ` (${rest})` : "") + `, in ${duration(seconds)}. ${outcome.resume}`,
    );
  } else if (inv.dryRun) {
    say(
      `dry run: ${sessions(copied)} would be ${outcome.done} ${outcome.path}` +
        (skipped > 0
          ? `, ${count(skipped)} skipped (the target holds them` +
            (inv.command === "import" ? ", or their key is on another line too)" : ")")
          : "") +
        (failed > 0 ? `, ${count(failed)} failed` : "") +
        `; nothing was written${outcome.dryNote ?? ""}`,
    );
  } else {
    say(
      `${outcome.done} ${sessions(copied)} ${outcome.path} in ${duration(seconds)}` +
        (rest ? ` (${rest})` : ""),
    );
  }
  if (failed > 0) {
    for (const { key, error, line } of report.failures.slice(0, 10)) {
      const text = fold(reason(error));
      // An import's errors name their line already: `line 2 is not valid JSON`.
      if (line !== undefined && new RegExp(`^line ${line}\\b`).test(text)) say(`  ${text}`);
      else say(`  ${line === undefined ? JSON.stringify(key) : `line ${line}`}: ${text}`);
    }
    if (failed > 10) say(`  … and ${count(failed - 10)} more`);
  }
  if (report.aborted) return EXIT.interrupted;
  return failed > 0 ? EXIT.failed : EXIT.ok;
}

/** A long command, for {@link long}. */
export interface LongTask {
  /** For the progress display: `copying`. */
  verb: string;
  /** The storage read, to count its sessions alongside; none for an import. */
  source?: StorageAdapter<unknown>;
  /** Runs the command with these options of the copy functions. */
  run: (options: { onProgress: (counts: Counts) => void; signal: AbortSignal }) => Promise<
    CopyReport
  >;
  /** Sets up the progress display. */
  setup?: (progress: Progress) => void;
  /** Runs after every batch, and at the end: commits a SQLite target's transaction. */
  afterBatch?: () => void;
}

/**
 * Runs a long command: shows progress, counts alongside when it can, stops
 * after the batch on Ctrl-C, and prints the outcome.
 */
export async function long(
  inv: Invocation,
  task: LongTask,
): Promise<{ report: CopyReport; seconds: number }> {
  const { verb, source, run, setup = () => {}, afterBatch = () => {} } = task;
  const progress = new Progress({
    verb: inv.dryRun ? "checking" : verb,
    mode: modeFor(inv.progress),
  });
  setup(progress);
  const counted = new AbortController();
  if (source !== undefined) countAlongside(source, inv.prefix, progress, counted.signal);
  const interrupt = catchInterrupt(() => {
    progress.stop();
    say("stopping after the batch in flight (Ctrl-C again to quit at once)");
  });
  const started = performance.now();
  const onProgress = (counts: Counts) => {
    afterBatch();
    progress.update(counts);
  };
  try {
    const report = await run({ onProgress, signal: interrupt.signal });
    afterBatch();
    return { report, seconds: (performance.now() - started) / 1000 };
  } catch (err) {
    try {
      afterBatch();
    } catch {
      // the failure already caught is the one to report
    }
    return during(inv.command, err);
  } finally {
    counted.abort();
    interrupt.dispose();
    progress.stop();
  }
}

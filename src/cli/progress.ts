/**
 * The progress display of long commands (`copy`, `export`, `import`), on
 * stderr. On a terminal: one line redrawn in place, with a bar when the
 * total is known, the count, the rate over the last seconds and the time
 * left. Elsewhere (a pipe, a log file): a plain line every few seconds with
 * the same figures. Nothing at all with `--no-progress`.
 *
 * @module
 */

/** The counts the copy functions report. */
export interface Counts {
  /** Sessions listed (or read from the file) so far. */
  listed: number;
  /** Sessions written (with `--dry-run`: that would be written). */
  copied: number;
  /** Sessions the target held already, kept. */
  skipped: number;
  /** Sessions that could not be read or written. */
  failed: number;
}

/** How progress is shown. */
export type ProgressMode = "bar" | "lines" | "none";

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** What is being done, as a verb: `copying`. */
  verb: string;
  /** How to show it. */
  mode: ProgressMode;
  /** Where to write; default stderr. */
  write?: (text: string) => void;
  /** The terminal's width in columns; default: asked from stderr. */
  columns?: () => number;
  /** Redraw interval of the bar in ms (default 100). */
  barEveryMs?: number;
  /** Interval of plain lines in ms (default 2000). */
  linesEveryMs?: number;
  /** The clock, in ms (default `performance.now`). */
  now?: () => number;
}

const encoder = new TextEncoder();

/** Writes all of `text` to stderr, ignoring a closed stderr. */
export function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  try {
    for (let done = 0; done < bytes.length;) done += Deno.stderr.writeSync(bytes.subarray(done));
  } catch {
    // stderr closed: nothing to tell anyone
  }
}

/** The mode for stderr: a bar on a terminal, lines otherwise, none when turned off. */
export function modeFor(enabled: boolean): ProgressMode {
  if (!enabled) return "none";
  return Deno.stderr.isTerminal() ? "bar" : "lines";
}

/** `n` with thousands separators. */
export function count(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** A duration in seconds, short: `8s`, `3m 05s`, `2h 07m`. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** How far back the rate looks, in ms. */
const WINDOW_MS = 5000;

/**
 * A progress display. Feed it counts with {@link Progress.update} (as often
 * as they come: it draws on its own timer), the total once known with
 * {@link Progress.total}, and call {@link Progress.stop} before printing
 * anything else.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 *
 * const progress = new Progress({ verb: "copying", mode: "lines" });
 * progress.total = 20_000;
 * progress.update({ listed: 5000, copied: 5000, skipped: 0, failed: 0 });
 * progress.stop();
 * ```
 */
export class Progress {
  /** The number of sessions in all, once known. */
  total: number | undefined;
  /** The share done in [0, 1] when the total is not a count (the bytes of a file). */
  fraction: (() => number | undefined) | undefined;
  readonly #options: Required<Omit<ProgressOptions, "columns">> & { columns: () => number };
  readonly #started: number;
  readonly #samples: [time: number, done: number][] = [];
  #counts: Counts = { listed: 0, copied: 0, skipped: 0, failed: 0 };
  #timer: ReturnType<typeof setInterval> | undefined;
  #drawn = false;

  /** Starts showing progress (nothing happens in mode `"none"`). */
  constructor(options: ProgressOptions) {
    this.#options = {
      write: writeStderr,
      columns: () => {
        try {
          return Deno.consoleSize().columns || 80;
        } catch {
          return 80;
        }
      },
      barEveryMs: 100,
      linesEveryMs: 2000,
      now: () => performance.now(),
      ...options,
    };
    this.#started = this.#options.now();
    this.#samples.push([this.#started, 0]);
    if (options.mode === "none") return;
    const every = options.mode === "bar" ? this.#options.barEveryMs : this.#options.linesEveryMs;
    const timer = setInterval(() => this.draw(), every);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** The latest counts. */
  update(counts: Counts): void {
    this.#counts = { ...counts };
    const now = this.#options.now();
    this.#samples.push([now, done(counts)]);
    while (this.#samples.length > 2 && now - this.#samples[1][0] >= WINDOW_MS) {
      this.#samples.shift();
    }
    // Plain lines: the first one as soon as a batch is done and the total is
    // known (the count alongside may take a few batches), to show it runs;
    // without a total, the timer draws it.
    if (
      this.#options.mode === "lines" && !this.#drawn && this.#timer !== undefined &&
      (this.total !== undefined || this.fraction !== undefined)
    ) this.draw();
  }

  /** Sessions per second over the last few seconds. */
  rate(): number {
    const [t0, d0] = this.#samples[0];
    const [t1, d1] = this.#samples[this.#samples.length - 1];
    return t1 > t0 ? ((d1 - d0) * 1000) / (t1 - t0) : 0;
  }

  /** The figures of the display, as text: `12,345/20,000 62% 4,120/s 2s left`. */
  figures(): { done: string; percent?: string; rate: string; left?: string; share?: number } {
    const processed = done(this.#counts);
    const rate = this.rate();
    const share = this.total !== undefined
      ? this.total === 0 ? 1 : Math.min(1, processed / this.total)
      : this.fraction?.();
    let left: string | undefined;
    if (share !== undefined && share > 0 && share < 1) {
      const seconds = this.total !== undefined && rate > 0
        ? (this.total - processed) / rate
        : ((this.#options.now() - this.#started) / 1000) * (1 - share) / share;
      left = `${duration(Math.ceil(seconds))} left`;
    }
    return {
      done: this.total === undefined
        ? count(processed)
        : `${count(processed)}/${count(this.total)}`,
      percent: share === undefined ? undefined : `${Math.floor(share * 100)}%`,
      rate: `${count(rate)}/s`,
      left,
      share,
    };
  }

  /** Draws once now (the timer does it too). */
  draw(): void {
    const { mode, verb, write } = this.#options;
    const { skipped, failed } = this.#counts;
    const f = this.figures();
    const extra = (skipped > 0 ? `, ${count(skipped)} skipped` : "") +
      (failed > 0 ? `, ${count(failed)} failed` : "");
    if (mode === "lines") {
      write(
        `${verb}: ${f.done} sessions` + (f.percent === undefined ? "" : ` (${f.percent})`) +
          `${extra}, ${f.rate}` + (f.left === undefined ? "" : `, ${f.left}`) + "\n",
      );
      this.#drawn = true;
      return;
    }
    const tail = ` ${f.done}` + (f.percent === undefined ? "" : ` ${f.percent}`) +
      ` ${f.rate}` + (f.left === undefined ? "" : ` ${f.left}`) + extra;
    const columns = this.#options.columns() - 1;
    let line = `${verb}${tail}`;
    const room = columns - line.length - 3;
    if (f.share !== undefined && room >= 10) {
      const width = Math.min(40, room);
      const full = Math.round(f.share * width);
      line = `${verb} ${"█".repeat(full)}${"░".repeat(width - full)}${tail}`;
    }
    write(`\r${line.slice(0, Math.max(0, columns))}\x1b[K`);
    this.#drawn = true;
  }

  /** Stops the display and clears the bar; safe to call twice. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#drawn && this.#options.mode === "bar") this.#options.write("\r\x1b[K");
    this.#drawn = false;
  }
}

function done(counts: Counts): number {
  return counts.copied + counts.skipped + counts.failed;
}

/**
 * The options of a copy (`copySessions`, `exportSessions`,
 * `importSessions`), what a copy reports, and the checking of the options,
 * with messages that name the fix.
 *
 * @module
 */

import { closest } from "./closest_name.ts";

/**
 * Options of `copySessions` (and, with the exceptions their
 * signatures name, of `exportSessions` and `importSessions`).
 */
export interface CopyOptions {
  /** Only sessions whose key starts with this are copied (the rest are not listed). */
  prefix?: string;
  /**
   * `true`: every session is written, replacing what the target holds under
   * its key. Default `false`: a key the target already holds is skipped (on
   * a storage with conditional writes, by an atomic create-if-absent, so
   * neither a rerun nor a concurrent writer is ever overwritten).
   */
  overwrite?: boolean;
  /** Counts what would be copied and skipped, and writes nothing. */
  dryRun?: boolean;
  /** How many keys are in flight at once (read, checked, written). Default 100. */
  batchSize?: number;
  /** Called after every batch with the counts so far. */
  onProgress?: (progress: CopyProgress) => void;
  /**
   * Stops the copy after the batch in flight once aborted; the report then
   * has `aborted: true`. A rerun (without `overwrite`) copies the rest. The
   * copy gives the event loop a turn between batches, so a signal aborted
   * by a timer (`AbortSignal.timeout(ms)`) takes effect even between
   * storages that answer synchronously (memory, SQLite).
   */
  signal?: AbortSignal;
  /**
   * The keys to copy, for a source that cannot list its sessions (such as
   * `@grammyjs/storage-file`): each is read from the source, and a key with
   * no session there is skipped. Without it, the source is listed.
   */
  keys?: Iterable<string> | AsyncIterable<string>;
}

/** Counts of a copy so far: `listed` is always `copied + skipped + failed` after a batch. */
export interface CopyProgress {
  /** Sessions listed from the source (with the prefix, if one is given). */
  listed: number;
  /** Sessions written to the target (with `dryRun`: that would be written). */
  copied: number;
  /**
   * Sessions not written: the target already held the key (without
   * `overwrite`), the key was listed but had no session when it was read,
   * or the key came again (a JSON Lines file or a `keys` list that repeats
   * it: without `overwrite` only its first occurrence is handled, in any
   * batch, and if that one fails the key fails; with `overwrite` each key
   * once per batch, the last occurrence, so the last one wins).
   */
  skipped: number;
  /** Sessions whose read or write threw; the copy went on with the others. */
  failed: number;
}

/** The outcome of a copy. */
export interface CopyReport extends CopyProgress {
  /**
   * The first 100 failures: the key and what was thrown. `line` is the line
   * number of the JSON Lines input, for `importSessions`; a line with no
   * readable key has `key: ""`.
   */
  failures: { key: string; error: unknown; line?: number }[];
  /** Whether the copy stopped early because `signal` was aborted. */
  aborted: boolean;
}

/** Keys in flight at once by default. */
const DEFAULT_BATCH = 100;

/**
 * One session on its way: its key, and its value when the listing (or the
 * input) gave it. `error` marks an item that failed before it got here.
 */
export interface CopyItem<T> {
  /** The session key (`""` when the item has none: see `keyless`). */
  key: string;
  /** Set for an input line whose key could not be read (it passes any prefix filter). */
  keyless?: boolean;
  /** Whether `value` holds the session (a listing of entries, or an input line). */
  given: boolean;
  /** The session, when `given`. */
  value?: T | null;
  /** The input line number, for JSON Lines. */
  line?: number;
  /** Why this item failed already (an unreadable input line). */
  error?: unknown;
}

/** What became of one item. */
export type Outcome = "copied" | "skipped" | { error: unknown };

/** The options of a copy, checked. */
export interface CopySettings {
  /** The prefix filter, if any. */
  prefix: string | undefined;
  /** Overwrite what the target holds. */
  overwrite: boolean;
  /** Write nothing. */
  dryRun: boolean;
  /** Keys in flight at once. */
  batchSize: number;
  /** The progress callback. */
  onProgress: ((progress: CopyProgress) => void) | undefined;
  /** The abort signal. */
  signal: AbortSignal | undefined;
  /** Keys to copy instead of a listing. */
  keys: Iterable<string> | AsyncIterable<string> | undefined;
}

/** A value as a message names it: `null`, `an array`, `number 5`. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
}

/**
 * Checks the options of `where` (a copy, an export or an import), naming the
 * fix for a misspelt name or a wrong type.
 *
 * @param where Who checks, for the message.
 * @param options What the caller passed.
 * @param names The option names `where` takes.
 */
export function checkCopyOptions(
  where: string,
  options: unknown,
  names: readonly string[],
): CopySettings {
  if (options === undefined) options = {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(
      `${where}: options must be an object such as { prefix, batchSize }, got ${
        describe(options)
      }.`,
    );
  }
  const o = options as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    if (names.includes(name)) continue;
    const known = ["prefix", "overwrite", "dryRun", "batchSize", "onProgress", "signal", "keys"];
    const close = closest(name, names);
    throw new TypeError(
      `${where}: ` +
        (known.includes(name)
          ? `the option "${name}" does not apply here`
          : `unknown option "${name}"` + (close ? ` (did you mean "${close}"?)` : "")) +
        `. The options are ${names.join(", ")}.`,
    );
  }
  const flag = (name: string): boolean => {
    const value = o[name];
    if (value === undefined) return false;
    if (typeof value !== "boolean") {
      throw new TypeError(`${where}: ${name} must be true or false, got ${describe(value)}.`);
    }
    return value;
  };
  const { prefix, batchSize, onProgress, signal, keys } = o;
  if (prefix !== undefined && typeof prefix !== "string") {
    throw new TypeError(`${where}: prefix must be a string, got ${describe(prefix)}.`);
  }
  if (
    batchSize !== undefined &&
    !(typeof batchSize === "number" && Number.isSafeInteger(batchSize) && batchSize >= 1)
  ) {
    throw new RangeError(
      `${where}: batchSize must be a whole number of keys, 1 or more, got ${describe(batchSize)}.`,
    );
  }
  if (onProgress !== undefined && typeof onProgress !== "function") {
    throw new TypeError(`${where}: onProgress must be a function, got ${describe(onProgress)}.`);
  }
  if (
    signal !== undefined &&
    (typeof signal !== "object" || signal === null ||
      typeof (signal as AbortSignal).aborted !== "boolean")
  ) {
    throw new TypeError(
      `${where}: signal must be an AbortSignal (controller.signal, or ` +
        `AbortSignal.timeout(ms)), got ${describe(signal)}.`,
    );
  }
  if (
    keys !== undefined &&
    (typeof keys !== "object" || keys === null ||
      (typeof (keys as Iterable<string>)[Symbol.iterator] !== "function" &&
        typeof (keys as AsyncIterable<string>)[Symbol.asyncIterator] !== "function"))
  ) {
    throw new TypeError(
      `${where}: keys must be an iterable or async iterable of key strings, got ${describe(keys)}.`,
    );
  }
  return {
    prefix: prefix === "" ? undefined : prefix as string | undefined,
    overwrite: flag("overwrite"),
    dryRun: flag("dryRun"),
    batchSize: (batchSize as number | undefined) ?? DEFAULT_BATCH,
    onProgress: onProgress as CopySettings["onProgress"],
    signal: signal as AbortSignal | undefined,
    keys: keys as CopySettings["keys"],
  };
}

/**
 * `copySessions()`: moves every session of one storage into another, in
 * bounded batches, skipping or overwriting what the target already holds,
 * with a dry run, a progress callback and an abort signal. Works on any
 * `StorageAdapter`: sessionkit's storages, grammY's adapters and
 * `enhanceStorage` wrappers.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { StorageAdapter } from "./storage.ts";
import { isConditionalStorage } from "./capabilities.ts";
import { checkStorage, closest } from "./validate.ts";
import { messageOf, SessionError } from "./errors.ts";
import { PEEK, WRAPPED } from "./enhance.ts";
import { resumeByKeys } from "./listing.ts";

/**
 * Options of {@link copySessions} (and, with the exceptions their
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

/** Failures kept in a report. */
const MAX_FAILURES = 100;
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

function describe(value: unknown): string {
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

/**
 * The sessions of `from`, as items: the given keys, else its
 * `readAllEntries` (values come with the listing; if it fails part way, it
 * is finished by `readAllKeys` where the source has it, each key not handed
 * out yet read by itself, so that a session the listing cannot decode, such
 * as a page of 500 in sessionkit's storages, or an `enhanceStorage` session a
 * migration throws on, fails alone; only keys under `prefix` are
 * remembered for it), else its `readAllKeys` (each value is read
 * when its batch runs). Throws a `TypeError` naming what to do for a source
 * that cannot list.
 *
 * @param where Who lists, for the message.
 * @param from The source storage.
 * @param keys The keys to copy instead of a listing.
 * @param prefix The prefix filter of the copy (only those keys are remembered).
 */
export function listSource<T>(
  where: string,
  from: StorageAdapter<T>,
  keys?: Iterable<string> | AsyncIterable<string>,
  prefix?: string,
): AsyncIterable<CopyItem<T>> {
  if (keys !== undefined) return items(() => keys, (key) => ({ key, given: false }));
  if (typeof from.readAllEntries === "function") {
    const keysAlone = typeof from.readAllKeys === "function"
      ? () => keysListing(from.readAllKeys!())
      : undefined;
    return items(
      () =>
        resumeByKeys(
          () => from.readAllEntries!(),
          keysAlone,
          (key) => prefix === undefined || key.startsWith(prefix),
        ),
      (listed): CopyItem<T> => listed,
    );
  }
  if (typeof from.readAllKeys === "function") {
    return items(() => from.readAllKeys!(), (key) => ({ key, given: false }));
  }
  throw new TypeError(
    `${where}: the source storage cannot list its sessions: it has neither readAllEntries() ` +
      `nor readAllKeys() (grammY's @grammyjs/storage-file, for one, has neither). Pass the ` +
      `keys to copy as the keys option (the source's read() is then called for each), or copy ` +
      `from a storage that lists: every sessionkit storage does.`,
  );
}

/**
 * The keys listing of a source that finishes its entries listing (see
 * {@link resumeByKeys}): an error there is wrapped, so that it is not taken
 * for the entries listing's "cannot read this session" (whose message says
 * that the source has no keys listing to go on with).
 */
async function* keysListing(keys: Iterable<string> | AsyncIterable<string>) {
  try {
    yield* keys;
  } catch (err) {
    throw new Error(
      `the entries listing failed, and then listing the keys alone failed too: ${messageOf(err)}`,
      { cause: err },
    );
  }
}

/**
 * Maps a listing lazily, one element at a time, closing it when the
 * consumer stops. The listing is asked for on the first pull, so a listing
 * method that throws at once fails like one that throws later.
 */
async function* items<E, T>(
  listing: () => Iterable<E> | AsyncIterable<E>,
  make: (element: E) => CopyItem<T>,
): AsyncGenerator<CopyItem<T>> {
  for await (const element of listing()) {
    const item = make(element);
    if (typeof item.key !== "string") {
      item.error = new TypeError(
        `the source listed a key that is not a string (${describe(item.key)})`,
      );
      item.key = String(item.key);
    }
    yield item;
  }
}

/**
 * The value of `item`: the one its listing gave, or a read of the source
 * (on an `enhanceStorage` wrapper a read that writes nothing back, so that
 * copying neither renews nor migrates the source in place). `undefined` or
 * `null` means there is no session (it went away).
 */
export async function valueOf<T>(
  from: StorageAdapter<T>,
  item: CopyItem<T>,
): Promise<T | null | undefined> {
  if (item.error !== undefined) throw item.error;
  if (item.given) return item.value;
  const peek = (from as { [PEEK]?: (key: string) => Promise<T | undefined> })[PEEK];
  return typeof peek === "function" ? await peek(item.key) : await from.read(item.key);
}

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
function underneath(storage: object): object {
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
function checkNamespaces(where: string, from: unknown, to: unknown): void {
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

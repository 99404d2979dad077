/**
 * The history of the kill tests (issue 19): every update of a worker process
 * appends what happened to it to a JSON-lines file as it happens, each line
 * with one `write` system call, so a process killed with SIGKILL loses at
 * most the line it was writing and the checker (`checker.ts`) sees every
 * update it started.
 *
 * Lines of one update, by its unique id:
 *
 * - `start`: the process, its incarnation, the mode, the key, the time;
 * - `read`: each read the middleware made for it (the first is what the
 *   update read; later ones are the re-reads of a merge), with the value's
 *   digest and the version the storage gave (hashed), and how many lease
 *   attempts it took under `lock`;
 * - `write` / `wrote`: each write the middleware made for it, before and
 *   after: the expected version, the value's digest, and what the storage
 *   answered (`ok` with the new version, `conflict`, `lease`, or `threw`);
 * - `end`: the outcome the bot was told (`ok`, `conflict`, `error`, or
 *   `unknown` when a write got no answer), what the handler saw and left.
 *
 * An update with a `start` and no `end` was in flight when its process was
 * killed: its outcome is `unknown`.
 *
 * @module
 */

/** The session of the kill tests: a counter and the id of every update counted. */
export interface HistorySession {
  count: number;
  ids: string[];
}

/** The modes the workers run: sessionkit's three, and grammY's own session. */
export type Mode = "detect" | "merge" | "lock" | "grammy";

/** What an update was told. */
export type Outcome = "ok" | "conflict" | "error" | "unknown";

/**
 * A session in a few bytes: its count, how many ids it holds, and a hash of
 * the list of ids that is computed link by link, so the checker can compare
 * it with every prefix of the stored list in one pass.
 */
export interface Digest {
  count: number;
  n: number;
  h: string;
}

/** One line of a history file. */
export type Line =
  | { t: "start"; id: string; proc: string; inc: number; mode: Mode; key: string; at: number }
  | {
    t: "read";
    id: string;
    /** When the first try started (with `lock`, the first lease attempt). */
    at0: number;
    /** When the try that got the session started (and, with `lock`, took the lease). */
    last0: number;
    /** With `lock`, when the last try that found the lease held by someone else started. */
    miss0?: number;
    /** When the session was delivered. */
    at1: number;
    tries: number;
    value: Digest | null;
    version?: string | null;
  }
  | { t: "write"; id: string; n: number; at0: number; expected?: string | null; value: Digest }
  | {
    t: "wrote";
    id: string;
    n: number;
    at1: number;
    result: "ok" | "conflict" | "lease" | "threw";
    version?: string | null;
    error?: string;
  }
  | {
    t: "end";
    id: string;
    at: number;
    outcome: Outcome;
    saw: Digest | null;
    left: Digest | null;
    error?: string;
  };

/** A 53-bit string hash (cyrb53), as 14 hex digits. */
export function hash(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}

/** The hash of the empty list of ids. */
export const EMPTY_CHAIN = "0";

/** The hash of a list of ids, given the hash of the list without its last id. */
export function chain(previous: string, id: string): string {
  return hash(`${previous}\u0000${id}`);
}

/** The digest of a session value (`null` for no session). */
export function digest(value: unknown): Digest | null {
  if (value === undefined || value === null) return null;
  const session = value as Partial<HistorySession>;
  const ids = Array.isArray(session.ids) ? session.ids : [];
  let h = EMPTY_CHAIN;
  for (const id of ids) h = chain(h, String(id));
  return { count: Number(session.count ?? NaN), n: ids.length, h };
}

/** A version token as the history keeps it: hashed, `null` kept, `undefined` for none. */
export function versionOf(version: string | null | undefined): string | null | undefined {
  return version === null || version === undefined ? version : hash(version);
}

/** An append-only JSON-lines file, one `write` call per line. */
export class HistoryFile {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();

  constructor(readonly path: string) {
    this.#file = Deno.openSync(path, { append: true, create: true });
  }

  /** Appends one line; it is in the kernel's hands when this returns. */
  line(line: Line): void {
    const bytes = this.#encoder.encode(JSON.stringify(line) + "\n");
    let written = 0;
    while (written < bytes.length) written += this.#file.writeSync(bytes.subarray(written));
  }

  close(): void {
    this.#file.close();
  }
}

/** What the recorder keeps of an update in flight. */
interface InFlight {
  tries: number;
  readAt0: number | undefined;
  missAt0: number | undefined;
  writes: number;
  threw: boolean;
}

function describe(err: unknown): string {
  return (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 300);
}

/** Calls `then` with the result of `call`, whether it answers at once or with a promise. */
function observe<R>(
  call: () => R | Promise<R>,
  then: (result: R) => void,
  failed: (err: unknown) => void,
): R | Promise<R> {
  let result: R | Promise<R>;
  try {
    result = call();
  } catch (err) {
    failed(err);
    throw err;
  }
  if (result instanceof Promise) {
    return result.then((value) => {
      then(value);
      return value;
    }, (err) => {
      failed(err);
      throw err;
    });
  }
  then(result);
  return result;
}

// deno-lint-ignore no-explicit-any
type AnyMethod = (...args: any[]) => any;

/**
 * Records the storage calls of each update: wraps `storage`'s read and write
 * methods on the instance (passing every call and its answer through
 * unchanged) and writes a line per call for the update that `updateOf`
 * names for the key. A replacement of the joined lease calls themselves
 * keeps them joined (rule A1 of docs/semantics.md), so a locked update
 * still takes two round trips.
 */
export class Recorder {
  readonly #flight = new Map<string, InFlight>();

  constructor(
    readonly file: HistoryFile,
    readonly updateOf: (key: string) => string | undefined,
  ) {}

  /** Starts an update: its `start` line. */
  start(line: Omit<Extract<Line, { t: "start" }>, "t">): void {
    this.#flight.set(line.id, {
      tries: 0,
      readAt0: undefined,
      missAt0: undefined,
      writes: 0,
      threw: false,
    });
    this.file.line({ t: "start", ...line });
  }

  /** Whether a write of update `id` got no answer (it may have landed). */
  writeThrew(id: string): boolean {
    return this.#flight.get(id)?.threw ?? false;
  }

  /** Ends an update: its `end` line. */
  end(line: Omit<Extract<Line, { t: "end" }>, "t">): void {
    this.#flight.delete(line.id);
    this.file.line({ t: "end", ...line });
  }

  #of(key: string): [string, InFlight] | undefined {
    const id = this.updateOf(key);
    const flight = id === undefined ? undefined : this.#flight.get(id);
    return id === undefined || flight === undefined ? undefined : [id, flight];
  }

  #read(key: string, call: () => unknown, answer: (result: unknown) => unknown) {
    const of = this.#of(key);
    if (of === undefined) return call();
    const [id, flight] = of;
    const tried = Date.now();
    flight.readAt0 ??= tried;
    flight.tries++;
    return observe(call, (result) => {
      const got = answer(result) as { value: unknown; version?: string | null } | null;
      if (got === null) {
        flight.missAt0 = tried; // the lease is held by someone else: another try follows
        return;
      }
      this.file.line({
        t: "read",
        id,
        at0: flight.readAt0!,
        last0: tried,
        miss0: flight.missAt0,
        at1: Date.now(),
        tries: flight.tries,
        value: digest(got.value),
        version: versionOf(got.version),
      });
      flight.readAt0 = undefined;
      flight.missAt0 = undefined;
      flight.tries = 0;
    }, () => {});
  }

  #write(
    key: string,
    value: unknown,
    expected: string | null | undefined,
    call: () => unknown,
    answer: (result: unknown) => { result: "ok" | "conflict" | "lease"; version?: string | null },
  ) {
    const of = this.#of(key);
    if (of === undefined) return call();
    const [id, flight] = of;
    const n = ++flight.writes;
    this.file.line({
      t: "write",
      id,
      n,
      at0: Date.now(),
      expected: versionOf(expected),
      value: digest(value)!,
    });
    return observe(call, (result) => {
      const { result: outcome, version } = answer(result);
      this.file.line({
        t: "wrote",
        id,
        n,
        at1: Date.now(),
        result: outcome,
        version: versionOf(version),
      });
    }, (err) => {
      flight.threw = true;
      this.file.line({ t: "wrote", id, n, at1: Date.now(), result: "threw", error: describe(err) });
    });
  }

  /** Wraps the read and write methods of `storage` (on the instance). */
  instrument<S extends object>(storage: S): S {
    const s = storage as unknown as Record<string, AnyMethod | undefined>;
    const wrap = (name: string, make: (original: AnyMethod) => AnyMethod) => {
      const original = s[name];
      if (typeof original === "function") {
        Object.defineProperty(storage, name, {
          value: make(original.bind(storage)),
          writable: true,
          configurable: true,
        });
      }
    };
    wrap("read", (o) => (key: string) => this.#read(key, () => o(key), (value) => ({ value })));
    wrap("readVersioned", (o) => (key: string) => this.#read(key, () => o(key), (r) => r));
    wrap(
      "acquireLeaseAndRead",
      (o) => (key: string, owner: string, ttl: number) =>
        this.#read(key, () => o(key, owner, ttl), (r) => r),
    );
    wrap(
      "write",
      (o) => (key: string, value: unknown) =>
        this.#write(key, value, undefined, () => o(key, value), () => ({ result: "ok" })),
    );
    wrap(
      "writeIfVersion",
      (o) => (key: string, value: unknown, expected: string | null) =>
        this.#write(
          key,
          value,
          expected,
          () => o(key, value, expected),
          (r) => r === null ? { result: "conflict" } : { result: "ok", version: r as string },
        ),
    );
    wrap(
      "saveAndReleaseLease",
      (o) => (key: string, value: unknown, expected: string | null | undefined, owner: string) =>
        this.#write(key, value, expected, () => o(key, value, expected, owner), (r) => {
          const saved = r as { saved: boolean; version?: string | null; reason?: string };
          return saved.saved
            ? { result: "ok", version: saved.version }
            : { result: saved.reason === "lease" ? "lease" : "conflict" };
        }),
    );
    return storage;
  }
}

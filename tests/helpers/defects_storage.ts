/**
 * Storages and tools for the defect and parity tests of issue 15: a plain
 * wrapper object whose calls can be counted, paused and slowed, an adapter
 * that returns `Date`s as `@grammyjs/storage-redis` does with
 * `autoParseDates`, a plain JSON adapter, and a watch for unhandled
 * rejections.
 */
import type {
  ConditionalStorage,
  LeaseStorage,
  StorageAdapter,
  VersionedValue,
} from "../../mod.ts";

/** Every storage method the middleware may call (rule A1). */
export const METHODS = [
  "read",
  "write",
  "delete",
  "readVersioned",
  "writeIfVersion",
  "deleteIfVersion",
  "acquireLease",
  "renewLease",
  "releaseLease",
] as const;

/** The name of a storage method. */
export type Method = typeof METHODS[number];

/** Both kinds of read. */
export const READS: Method[] = ["read", "readVersioned"];

/** A storage with every capability, as `MemorySessionStorage` is. */
export type FullStorage<T> = StorageAdapter<T> & ConditionalStorage<T> & LeaseStorage;

/** A paused storage call: `reached` resolves when a call arrives, `release` lets it run. */
export interface Pause {
  /** Resolves with the method name once a call reaches the pause. */
  reached: Promise<Method>;
  /** Lets the paused call go on to the wrapped storage. */
  release(): void;
}

interface PendingPause {
  methods: Method[];
  reached: PromiseWithResolvers<Method>;
  gate: PromiseWithResolvers<void>;
}

/** Zero counts for every method. */
export function zeroCounts(): Record<Method, number> {
  return Object.fromEntries(METHODS.map((m) => [m, 0])) as Record<Method, number>;
}

/**
 * A plain object (no sessionkit class) delegating to a full storage. It
 * counts every call, logs it, can pause the next call of chosen methods until
 * the test releases it, can delay calls, and knows how many calls are in
 * flight.
 */
export class ControlledStorage<T> implements FullStorage<T> {
  /** Calls per method. */
  counts: Record<Method, number> = zeroCounts();
  /** Every call in order, e.g. "readVersioned:1". */
  log: string[] = [];
  /** Calls started and not yet settled. */
  inFlight = 0;
  /** Milliseconds to wait before each call (the call's index is passed). */
  delay: ((method: Method, index: number) => number) | undefined;
  /** Set by `close()`: renewals fail from then on, so no renewal loop outlives a test. */
  closed = false;
  #pauses: PendingPause[] = [];
  #index = 0;

  constructor(readonly inner: FullStorage<T>) {}

  /** Pauses the next call of any of `methods` (before it reaches the wrapped storage). */
  pause(methods: Method | Method[]): Pause {
    const p: PendingPause = {
      methods: Array.isArray(methods) ? methods : [methods],
      reached: Promise.withResolvers<Method>(),
      gate: Promise.withResolvers<void>(),
    };
    this.#pauses.push(p);
    return { reached: p.reached.promise, release: () => p.gate.resolve() };
  }

  /** Total calls of the given methods. */
  total(methods: readonly Method[] = METHODS): number {
    return methods.reduce((sum, m) => sum + this.counts[m], 0);
  }

  /** Forgets counts and log. */
  reset(): void {
    this.counts = zeroCounts();
    this.log = [];
  }

  /** Makes every later renewal fail (cleanup for lease tests). */
  close(): void {
    this.closed = true;
  }

  async #call<R>(method: Method, key: string, run: () => R | Promise<R>): Promise<R> {
    this.counts[method]++;
    this.log.push(`${method}:${key}`);
    this.inFlight++;
    const index = this.#index++;
    try {
      const at = this.#pauses.findIndex((p) => p.methods.includes(method));
      if (at >= 0) {
        const [p] = this.#pauses.splice(at, 1);
        p.reached.resolve(method);
        await p.gate.promise;
      }
      const ms = this.delay?.(method, index) ?? 0;
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
      return await run();
    } finally {
      this.inFlight--;
    }
  }

  read(key: string): Promise<T | undefined> {
    return this.#call("read", key, () => this.inner.read(key));
  }
  write(key: string, value: T): Promise<void> {
    return this.#call("write", key, () => this.inner.write(key, value));
  }
  delete(key: string): Promise<void> {
    return this.#call("delete", key, () => this.inner.delete(key));
  }
  readVersioned(key: string): Promise<VersionedValue<T>> {
    return this.#call("readVersioned", key, () => this.inner.readVersioned(key));
  }
  writeIfVersion(key: string, value: T, expected: string | null): Promise<string | null> {
    return this.#call("writeIfVersion", key, () => this.inner.writeIfVersion(key, value, expected));
  }
  deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    return this.#call("deleteIfVersion", key, () => this.inner.deleteIfVersion(key, expected));
  }
  acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.#call("acquireLease", key, () => this.inner.acquireLease(key, owner, ttl));
  }
  renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.#call(
      "renewLease",
      key,
      () => this.closed ? false : this.inner.renewLease(key, owner, ttl),
    );
  }
  releaseLease(key: string, owner: string): Promise<void> {
    return this.#call("releaseLease", key, () => this.inner.releaseLease(key, owner));
  }
}

/** ISO 8601 timestamps, as `@grammyjs/storage-redis` recognizes them with `autoParseDates`. */
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?$/;

/** A plain JSON adapter over a map (copies in and out), with call counts. */
export class JsonAdapter<T> implements StorageAdapter<T> {
  readonly texts = new Map<string, string>();
  counts = { read: 0, write: 0, delete: 0 };
  /** A promise each read waits for before answering, when set. */
  readGate: Promise<void> | undefined;

  async read(key: string): Promise<T | undefined> {
    this.counts.read++;
    if (this.readGate !== undefined) await this.readGate;
    const text = this.texts.get(key);
    return text === undefined ? undefined : JSON.parse(text);
  }
  write(key: string, value: T): Promise<void> {
    this.counts.write++;
    this.texts.set(key, JSON.stringify(value));
    return Promise.resolve();
  }
  delete(key: string): Promise<void> {
    this.counts.delete++;
    this.texts.delete(key);
    return Promise.resolve();
  }
  /** What is stored under `key`, parsed. */
  get(key: string): T | undefined {
    const text = this.texts.get(key);
    return text === undefined ? undefined : JSON.parse(text);
  }
  /** Stores `value` under `key` directly, as another process would. */
  set(key: string, value: T): void {
    this.texts.set(key, JSON.stringify(value));
  }
}

/**
 * A third-party style adapter (a plain object, no versions, no leases) that
 * keeps JSON text and, on read, turns every ISO timestamp string into a
 * `Date`, as `@grammyjs/storage-redis` does with `autoParseDates: true`.
 */
export class DateParsingAdapter<T> extends JsonAdapter<T> {
  /** Every value handed to `write`, as handed. */
  readonly written: T[] = [];

  override read(key: string): Promise<T | undefined> {
    this.counts.read++;
    const text = this.texts.get(key);
    if (text === undefined) return Promise.resolve(undefined);
    return Promise.resolve(
      JSON.parse(
        text,
        (_k, v) =>
          typeof v === "string" && ISO.test(v) ? new Date(v.endsWith("Z") ? v : v + "Z") : v,
      ),
    );
  }
  override write(key: string, value: T): Promise<void> {
    this.written.push(value);
    return super.write(key, value);
  }
  /** The stored session parsed without date revival. */
  raw(key: string): unknown {
    return this.get(key);
  }
}

/** Records unhandled promise rejections until `stop()` (and keeps Deno alive through them). */
export function watchUnhandledRejections(): { reasons: unknown[]; stop(): void } {
  const reasons: unknown[] = [];
  const listener = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    reasons.push(event.reason);
  };
  globalThis.addEventListener("unhandledrejection", listener);
  return {
    reasons,
    stop: () => globalThis.removeEventListener("unhandledrejection", listener),
  };
}

/** A one-line description of an error, for assertion messages. */
export function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

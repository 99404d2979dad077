/**
 * A scheduled storage: an in-process model of a remote storage (sessions,
 * versions and leases in `Map`s, values kept as JSON text) whose every call
 * travels through `fc.scheduler()` twice, once as a request and once as a
 * reply, so the scheduler decides when a call is applied and when its caller
 * hears about it. Faults come from a generated plan, one entry per call:
 * a delay (extra scheduled hops), a failed call (rejected, nothing applied),
 * a lost reply (applied, then rejected), or a call given up by a timeout
 * (rejected, and applied when the scheduler says: before the rejection, or
 * after it, even after the update ended and later calls were applied).
 *
 * Each bot instance gets its own view (`view(i)`), one object implementing
 * StorageAdapter + ConditionalStorage + LeaseStorage over the one shared
 * state, so every call is logged with the instance that made it. The log and
 * the history of applied changes are what the checker reads.
 *
 * @module
 */
import type fc from "npm:fast-check@^4";
import type {
  ConditionalStorage,
  LeaseStorage,
  LockedSave,
  LockedStorage,
  StorageAdapter,
  VersionedValue,
} from "../../mod.ts";
import type { Clock } from "./clock.ts";

/** What can go wrong with one call. */
export type Fault = "ok" | "delay" | "fail" | "lost" | "late";

export const DATA_METHODS = [
  "read",
  "readVersioned",
  "write",
  "writeIfVersion",
  "delete",
  "deleteIfVersion",
] as const;
export const LEASE_METHODS = ["acquireLease", "renewLease", "releaseLease"] as const;
export type Method = typeof DATA_METHODS[number] | typeof LEASE_METHODS[number];

export const READ_METHODS: ReadonlySet<Method> = new Set(["read", "readVersioned"]);
export const WRITE_METHODS: ReadonlySet<Method> = new Set([
  "write",
  "writeIfVersion",
  "delete",
  "deleteIfVersion",
]);

/** One call as the storage saw it. Times are ticks of the run's {@link Clock}. */
export interface CallRecord {
  seq: number;
  inst: number;
  method: Method;
  key: string;
  start: number;
  /** When it was applied on the "server"; undefined if it never was. */
  applied?: number;
  /** When its caller got the reply (or the rejection). */
  end?: number;
  fault: Fault;
  /** For conditional calls: whether the version matched. */
  matched?: boolean;
}

/** One applied change of a key, in the order they were applied. */
export interface Change {
  time: number;
  inst: number;
  method: Method;
  /** The stored value after the change (parsed); undefined for a delete. */
  value: unknown;
  /** Whether the change came from an unconditional call (write, delete). */
  blind: boolean;
  /** Whether the caller never heard that it landed (lost reply). */
  lost: boolean;
  /** The call that made it (its `seq` in the log). */
  seq: number;
}

interface Entry {
  text: string;
  version: string;
}

/** A remote-like storage driven by a fast-check scheduler. */
export class ScheduledStorage {
  readonly sessions = new Map<string, Entry>();
  readonly leases = new Map<string, { owner: string; expires: number }>();
  readonly log: CallRecord[] = [];
  readonly history = new Map<string, Change[]>();
  /** Keys whose lease was taken over after it expired (C6 no longer guaranteed). */
  readonly takeovers = new Set<string>();
  /** When false, every call is answered without faults (probes). */
  faulty = true;
  #versions = 0;
  #calls = 0;

  constructor(
    readonly scheduler: fc.Scheduler,
    readonly plan: readonly Fault[],
    readonly clock: Clock,
    /** Serialize written values when the write is applied (late), not when it is called. */
    readonly lateSerialize = false,
  ) {}

  /** Seeds or overwrites a key directly (no call, no log, no scheduling). */
  put(key: string, value: unknown): void {
    this.sessions.set(key, { text: JSON.stringify(value), version: this.#nextVersion() });
  }

  /** What is stored under `key`, parsed (directly). */
  get(key: string): unknown {
    const entry = this.sessions.get(key);
    return entry === undefined ? undefined : JSON.parse(entry.text);
  }

  versionOf(key: string): string | null {
    return this.sessions.get(key)?.version ?? null;
  }

  /** Leases still held (not expired) right now. */
  heldLeases(): string[] {
    const now = Date.now();
    return [...this.leases].filter(([, l]) => l.expires > now).map(([k]) => k);
  }

  #nextVersion(): string {
    return `v${++this.#versions}`;
  }

  #fault(method: Method): Fault {
    if (!this.faulty || this.plan.length === 0) return "ok";
    const fault = this.plan[this.#calls++ % this.plan.length];
    // Faults on leases are limited to what a process can recover from: a
    // failed acquire (nothing applied) and delays. A lost acquire reply or a
    // failed release leaves a lease nobody can know about until it expires.
    if (method === "releaseLease" || method === "renewLease") {
      return fault === "delay" ? fault : "ok";
    }
    // A conditional write given up may land whenever: on the version it
    // expected, it cannot undo a later change. An unconditional one landing
    // late would undo any change made after it (C5 gives no protection
    // against that), so for every other call a late fault is a lost reply.
    if (fault === "late" && method !== "writeIfVersion" && method !== "deleteIfVersion") {
      return "lost";
    }
    if (method === "acquireLease" && fault === "lost") return "fail";
    return fault;
  }

  #record(change: Omit<Change, "time">, key: string): void {
    let list = this.history.get(key);
    if (list === undefined) this.history.set(key, list = []);
    list.push({ ...change, time: this.clock.tick() });
  }

  /**
   * One call: request hop(s), apply, reply hop. The request is serialized at
   * call time, as a client would (or, with `lateSerialize`, when it is
   * applied), and the reply parsed when it arrives.
   */
  async #call<T>(inst: number, method: Method, key: string, apply: (rec: CallRecord) => T) {
    return await this.#callMany(inst, [method], key, ([rec]) => apply(rec));
  }

  /**
   * One call that does the work of several methods at once (a joined lease
   * call): one record per method, with the same times, so the checker sees
   * what it did as separate calls made in one step. `apply` marks the
   * records of the parts it did not do (`skip`), which stay unapplied.
   */
  async #callMany<T>(
    inst: number,
    methods: Method[],
    key: string,
    apply: (recs: CallRecord[], skip: (rec: CallRecord) => void) => T,
  ) {
    const fault = this.#fault(methods[0]);
    const start = this.clock.tick();
    const recs = methods.map((method): CallRecord => {
      const rec: CallRecord = { seq: this.log.length, inst, method, key, start, fault };
      this.log.push(rec);
      return rec;
    });
    const s = this.scheduler;
    const label = `#${recs[0].seq} i${inst}.${methods.join("+")}(${key})`;
    try {
      await s.schedule(Promise.resolve(), `${label} request`);
      if (fault === "delay") await s.schedule(Promise.resolve(), `${label} delayed`);
      if (fault === "fail") throw new Error(`simulated failure of ${methods.join("+")}("${key}")`);
      const skipped = new Set<CallRecord>();
      const land = () => {
        const result = apply(recs, (rec) => skipped.add(rec));
        const applied = this.clock.tick();
        for (const rec of recs) if (!skipped.has(rec)) rec.applied = applied;
        return result;
      };
      if (fault === "late") {
        // The caller gives up; the request is still on its way.
        void s.schedule(Promise.resolve(), `${label} late landing`).then(land);
        await s.schedule(Promise.resolve(), `${label} given up`);
        throw new Error(`simulated timeout of ${methods.join("+")}("${key}"): it may still land`);
      }
      const result = land();
      await s.schedule(Promise.resolve(), `${label} reply`);
      if (fault === "lost") {
        throw new Error(`simulated lost reply of ${methods.join("+")}("${key}")`);
      }
      return result;
    } finally {
      const end = this.clock.tick();
      for (const rec of recs) rec.end = end;
    }
  }

  #store(inst: number, method: Method, key: string, text: string, rec: CallRecord): string {
    const version = this.#nextVersion();
    this.sessions.set(key, { text, version });
    this.#record({
      inst,
      method,
      value: JSON.parse(text),
      blind: method === "write",
      lost: rec.fault === "lost" || rec.fault === "late",
      seq: rec.seq,
    }, key);
    return version;
  }

  #remove(inst: number, method: Method, key: string, rec: CallRecord): void {
    const had = this.sessions.delete(key);
    if (had) {
      this.#record({
        inst,
        method,
        value: undefined,
        blind: method === "delete",
        lost: rec.fault === "lost" || rec.fault === "late",
        seq: rec.seq,
      }, key);
    }
  }

  /** The storage as bot instance `inst` sees it. */
  view<T>(inst: number): StorageAdapter<T> & ConditionalStorage<T> & LeaseStorage {
    const parse = (entry: Entry | undefined) =>
      entry === undefined ? undefined : JSON.parse(entry.text) as T;
    const separate = this.#separate(inst, parse);
    // Odd instances also have the joined lease calls (LockedStorage), so a
    // run with several instances has both ways of locking side by side.
    // Even instances say that every write makes a new version (it does: a
    // counter); odd ones leave it unsaid, as a storage whose versions are
    // the content (Redis) does, so both ways of telling what a write
    // without an answer did are run (C1).
    return inst % 2 === 0
      ? { ...separate, uniqueVersions: true }
      : { ...separate, ...this.#joined(inst, parse) };
  }

  /** Takes a free, expired or own lease of `key` for `owner`; whether it was taken. */
  #takeLease(key: string, owner: string, ttl: number): boolean {
    const now = Date.now();
    const lease = this.leases.get(key);
    if (lease !== undefined && lease.owner !== owner) {
      if (lease.expires > now) return false;
      this.takeovers.add(key);
    }
    this.leases.set(key, { owner, expires: now + ttl });
    return true;
  }

  /** The joined lease calls of instance `inst` (`LockedStorage`). */
  #joined<T>(inst: number, parse: (entry: Entry | undefined) => T | undefined): LockedStorage<T> {
    return {
      acquireLeaseAndRead: (key, owner, ttl) =>
        this.#callMany(inst, ["acquireLease", "readVersioned"], key, ([, read], skip) => {
          if (!this.#takeLease(key, owner, ttl)) {
            skip(read);
            return null;
          }
          const entry = this.sessions.get(key);
          return { value: parse(entry), version: entry?.version ?? null };
        }),
      saveAndReleaseLease: (key, value, expected, owner) =>
        this.#lockedSave(inst, key, value, expected, owner, true),
      saveKeepingLease: (key, value, expected, owner) =>
        this.#lockedSave(inst, key, value, expected, owner, false),
    };
  }

  /** A joined locked save of instance `inst`; with `release`, it gives the lease up. */
  #lockedSave(
    inst: number,
    key: string,
    value: unknown,
    expected: string | null | undefined,
    owner: string,
    release: boolean,
  ): Promise<LockedSave> {
    const write: Method = value === undefined
      ? (expected === undefined ? "delete" : "deleteIfVersion")
      : (expected === undefined ? "write" : "writeIfVersion");
    const early = value === undefined || this.lateSerialize ? undefined : JSON.stringify(value);
    const methods: Method[] = release ? [write, "releaseLease"] : [write];
    return this.#callMany(inst, methods, key, ([rec, released], skip) => {
      const lease = this.leases.get(key);
      if (lease === undefined || lease.owner !== owner || lease.expires <= Date.now()) {
        skip(rec);
        if (released !== undefined) skip(released);
        return { saved: false, reason: "lease" } as const;
      }
      if (expected !== undefined) {
        rec.matched = this.versionOf(key) === expected;
        if (!rec.matched) {
          if (released !== undefined) skip(released);
          return { saved: false, reason: "conflict" } as const;
        }
      }
      let version: string | null = null;
      if (value === undefined) this.#remove(inst, write, key, rec);
      else version = this.#store(inst, write, key, early ?? JSON.stringify(value), rec);
      if (release) this.leases.delete(key);
      return { saved: true, version } as const;
    });
  }

  #separate<T>(
    inst: number,
    parse: (entry: Entry | undefined) => T | undefined,
  ): StorageAdapter<T> & ConditionalStorage<T> & LeaseStorage {
    return {
      read: (key: string) =>
        this.#call(inst, "read", key, () => this.sessions.get(key)).then(parse),
      readVersioned: (key: string): Promise<VersionedValue<T>> =>
        this.#call(inst, "readVersioned", key, () => this.sessions.get(key)).then((entry) => ({
          value: parse(entry),
          version: entry?.version ?? null,
        })),
      write: (key: string, value: T) => {
        const early = this.lateSerialize ? undefined : JSON.stringify(value);
        return this.#call(inst, "write", key, (rec) => {
          this.#store(inst, "write", key, early ?? JSON.stringify(value), rec);
        });
      },
      writeIfVersion: (key: string, value: T, expected: string | null) => {
        const early = this.lateSerialize ? undefined : JSON.stringify(value);
        return this.#call(inst, "writeIfVersion", key, (rec) => {
          rec.matched = this.versionOf(key) === expected;
          if (!rec.matched) return null;
          return this.#store(inst, "writeIfVersion", key, early ?? JSON.stringify(value), rec);
        });
      },
      delete: (key: string) =>
        this.#call(inst, "delete", key, (rec) => this.#remove(inst, "delete", key, rec)),
      deleteIfVersion: (key: string, expected: string | null) =>
        this.#call(inst, "deleteIfVersion", key, (rec) => {
          rec.matched = this.versionOf(key) === expected;
          if (rec.matched) this.#remove(inst, "deleteIfVersion", key, rec);
          return rec.matched;
        }),
      acquireLease: (key: string, owner: string, ttl: number) =>
        this.#call(inst, "acquireLease", key, () => this.#takeLease(key, owner, ttl)),
      renewLease: (key: string, owner: string, ttl: number) =>
        this.#call(inst, "renewLease", key, () => {
          const now = Date.now();
          const lease = this.leases.get(key);
          if (lease === undefined || lease.owner !== owner || lease.expires <= now) return false;
          lease.expires = now + ttl;
          return true;
        }),
      releaseLease: (key: string, owner: string) =>
        this.#call(inst, "releaseLease", key, () => {
          if (this.leases.get(key)?.owner === owner) this.leases.delete(key);
        }),
    };
  }
}

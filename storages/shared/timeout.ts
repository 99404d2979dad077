/**
 * A bound on how long each call of a networked driver may take: the
 * `timeout` option of `RedisStorage`, `PostgresStorage` and `MysqlStorage`.
 * {@link withTimeout} wraps a driver so that every call (reads, writes,
 * deletes, lease calls, each page of a listing) races its bound; a call
 * that has not settled when the bound has passed is given up with a
 * `SessionError` that names the storage, the call, the key and the bound.
 * The calls of one bound share one timer (./deadlines.ts), which never keeps
 * a process alive.
 *
 * Giving up does not cancel: the client may still send the command, or the
 * server may still run it, and a write may land after its caller was told it
 * failed. The error says so for every call that changes something, and the
 * middleware treats it as a write whose outcome is unknown (a conditional
 * write that failed this way leaves the session's version unknown until the
 * next read, see `Slot.uncertain`).
 *
 * @module
 */

import type { LockedSave } from "../../src/capabilities.ts";
import { SessionError } from "../../src/errors.ts";
import type { MaybePromise } from "../../src/storage.ts";
import { isPromiseLike } from "../../src/values.ts";
import { Deadlines } from "./deadlines.ts";
import type { ScanPage, SessionDriver, StoredRecord } from "./driver.ts";

/** What a bounded call is, for the error it fails with. */
export interface TimedCall {
  /** The call, as a phrase: `the read of key "42"`. */
  what: string;
  /** The session key, if the call has one. */
  key?: string;
  /** What became of the call, when that matters: `Its outcome is unknown: ...`. */
  outcome?: string;
}

/** For a call that changes something: it may still land. */
const UNKNOWN = "Its outcome is unknown: it may still land on the server later, or may not.";

/** The error of a call that did not answer within `ms`. */
export function timeoutError(name: string, ms: number, call: TimedCall): SessionError {
  return new SessionError(
    `${name}: ${call.what} did not finish within ${ms} ms (the storage's timeout), so it was ` +
      `given up. ${call.outcome === undefined ? "" : `${call.outcome} `}Check that the server ` +
      `is up, reachable and not overloaded or blocked (by a lock another connection holds, for ` +
      `example), or raise the storage's timeout option (now ${ms} ms) if it can take this ` +
      `long.`,
    call.key,
  );
}

/**
 * `result` itself if it is no promise or `ms` is `Infinity`; otherwise a
 * promise that settles as `result` does, or rejects with
 * {@link timeoutError} once `ms` have passed without an answer. A late
 * rejection of `result` is absorbed; a late answer is handed to `late`
 * (taking a lease that was given up: the lease is then given back), and
 * `gaveUp` is called when the bound gives the call up.
 *
 * @example
 * ```ts
 * import { timed } from "./timeout.ts";
 *
 * declare function ping(): Promise<void>;
 * await timed("MyStorage", 2000, { what: "a ping" }, ping());
 * ```
 *
 * @param name The storage's name, which starts the error message.
 * @param ms The bound in ms.
 * @param call What the call is, for the error (or a function that says it, called only then).
 * @param result What the call returned.
 * @param late Called with an answer that came after the call was given up.
 * @param gaveUp Called when the call is given up.
 */
export function timed<R>(
  name: string,
  ms: number,
  call: TimedCall | (() => TimedCall),
  result: MaybePromise<R>,
  late?: (value: R) => void,
  gaveUp?: () => void,
): MaybePromise<R> {
  if (ms === Infinity || !isPromiseLike<R>(result)) return result;
  return new Promise<R>((resolve, reject) => {
    let givenUp = false;
    const watch = deadlinesOf(ms).watch(() => {
      givenUp = true;
      reject(timeoutError(name, ms, typeof call === "function" ? call() : call));
      try {
        gaveUp?.();
      } catch {
        // A check of the connection that fails is no reason to fail otherwise.
      }
    });
    Promise.resolve(result).then(
      (value) => {
        watch.done();
        if (givenUp) late?.(value);
        resolve(value);
      },
      (err) => {
        watch.done();
        reject(err);
      },
    );
  });
}

/** The watch of every call bounded by `ms`, one per bound (see deadlines.ts). */
const watches = new Map<number, Deadlines>();

function deadlinesOf(ms: number): Deadlines {
  let deadlines = watches.get(ms);
  if (deadlines === undefined) watches.set(ms, deadlines = new Deadlines(ms));
  return deadlines;
}

/** `key` quoted for a message. */
function quoted(key: string): string {
  return JSON.stringify(key);
}

/** A write or a delete under `expected`, as a phrase. */
function change(kind: "write" | "delete", key: string, expected: unknown): string {
  return `the ${expected === undefined ? "" : "conditional "}${kind} of key ${quoted(key)}`;
}

/**
 * `driver` with every call bounded by `ms` (see the module doc); `driver`
 * itself for `Infinity`. The wrapper has the same optional calls as
 * `driver` (so joined lease calls stay joined), passes its properties
 * through, and leaves `close` unbounded.
 *
 * @example
 * ```ts
 * import { AsyncDriverStorage, type SessionDriver } from "@sessionkit/grammy";
 * import { withTimeout } from "./timeout.ts";
 *
 * declare const driver: SessionDriver<string>;
 * const storage = new AsyncDriverStorage<{ count: number }>(withTimeout(driver, 5000));
 * ```
 *
 * @param driver The driver whose calls go to a server.
 * @param ms The bound of each call in ms, or `Infinity` for none.
 */
export function withTimeout<P>(driver: SessionDriver<P>, ms: number): SessionDriver<P> {
  if (ms === Infinity) return driver;
  // A call given up: the driver may check the connection it went over.
  const timedOut = () => driver.timedOut?.();
  const bound = <R>(
    call: () => TimedCall,
    result: MaybePromise<R>,
    late?: (value: R) => void,
  ): MaybePromise<R> => timed(driver.name, ms, call, result, late, timedOut);
  // A take of a lease given up by the bound that lands later: its caller
  // failed and will not release it, so it is given back here (rule C6).
  const giveBack = (key: string, owner: string) => (taken: unknown) => {
    if (taken === false) return;
    try {
      Promise.resolve(driver.releaseLease(key, owner)).catch(() => {});
    } catch {
      // It expires after its ttl.
    }
  };
  const timedDriver: SessionDriver<P> = {
    get name() {
      return driver.name;
    },
    get synchronous() {
      return driver.synchronous;
    },
    get repeats() {
      return driver.repeats;
    },
    get keys() {
      return driver.keys;
    },
    get uniqueVersions() {
      return driver.uniqueVersions;
    },
    get leaseProblem() {
      return driver.leaseProblem;
    },
    read: (key) =>
      bound<StoredRecord<P> | undefined>(
        () => ({
          what: `the read of key ${quoted(key)}`,
          key,
          outcome: "The session was not read.",
        }),
        driver.read(key),
      ),
    write: (key, payload, expected) =>
      bound<string | null>(
        () => ({ what: change("write", key, expected), key, outcome: UNKNOWN }),
        driver.write(key, payload, expected),
      ),
    delete: (key, expected) =>
      bound<boolean>(
        () => ({ what: change("delete", key, expected), key, outcome: UNKNOWN }),
        driver.delete(key, expected),
      ),
    has: (key) =>
      bound<boolean>(
        () => ({ what: `the existence check of key ${quoted(key)}`, key }),
        driver.has(key),
      ),
    scan: (cursor, limit, values) =>
      bound<ScanPage<P>>(
        () => ({
          what: `a page of the listing of ${values ? "sessions" : "session keys"}`,
          outcome: "The listing stopped there.",
        }),
        driver.scan(cursor, limit, values),
      ),
    acquireLease: (key, owner, ttl) =>
      bound<boolean>(
        () => ({
          what: `taking the lease of key ${quoted(key)}`,
          key,
          outcome: "If it is taken later, it is given back at once.",
        }),
        driver.acquireLease(key, owner, ttl),
        giveBack(key, owner),
      ),
    renewLease: (key, owner, ttl) =>
      bound<boolean>(
        () => ({
          what: `renewing the lease of key ${quoted(key)}`,
          key,
          outcome: "Whether the lease was renewed is unknown.",
        }),
        driver.renewLease(key, owner, ttl),
      ),
    releaseLease: (key, owner) =>
      bound<void>(
        () => ({
          what: `giving up the lease of key ${quoted(key)}`,
          key,
          outcome: "The lease may be held until its ttl runs out.",
        }),
        driver.releaseLease(key, owner),
      ),
  };
  const { acquireLeaseAndRead, saveAndReleaseLease, saveKeepingLease, close } = driver;
  if (acquireLeaseAndRead !== undefined) {
    timedDriver.acquireLeaseAndRead = (key, owner, ttl) =>
      bound<StoredRecord<P> | undefined | false>(
        () => ({
          what: `taking the lease of key ${quoted(key)} with the read of its session`,
          key,
          outcome: "The session was not read; if the lease is taken later, it is given back " +
            "at once.",
        }),
        acquireLeaseAndRead.call(driver, key, owner, ttl),
        giveBack(key, owner),
      ) as Promise<StoredRecord<P> | undefined | false>;
  }
  if (saveAndReleaseLease !== undefined) {
    timedDriver.saveAndReleaseLease = (key, payload, expected, owner) =>
      bound<LockedSave>(
        () => ({
          what: `the locked ${payload === undefined ? "delete" : "write"} of key ${
            quoted(key)
          } (under its lease, which it gives up)`,
          key,
          outcome: UNKNOWN,
        }),
        saveAndReleaseLease.call(driver, key, payload, expected, owner),
      ) as Promise<LockedSave>;
  }
  if (saveKeepingLease !== undefined) {
    timedDriver.saveKeepingLease = (key, payload, expected, owner) =>
      bound<LockedSave>(
        () => ({
          what: `the locked ${payload === undefined ? "delete" : "write"} of key ${
            quoted(key)
          } (under its lease, which it keeps)`,
          key,
          outcome: UNKNOWN,
        }),
        saveKeepingLease.call(driver, key, payload, expected, owner),
      ) as Promise<LockedSave>;
  }
  if (close !== undefined) timedDriver.close = () => close.call(driver);
  if (driver.timedOut !== undefined) timedDriver.timedOut = () => driver.timedOut!();
  return timedDriver;
}

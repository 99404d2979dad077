/**
 * Holding the lease of one key: taken before the session is read, renewed in
 * the background while the key is in use, checked before every write, and
 * given up when the key is idle.
 *
 * @module
 */

import type { LeaseStorage, LockedStorage, VersionedValue } from "./capabilities.ts";
import { messageOf, SessionError, SessionLockError } from "./errors.ts";
import { backgroundTimeout, delay, type TimerId } from "./timers.ts";

/** The longest lease, in ms (about 24.8 days): what every backend and timer can hold. */
export const MAX_LEASE_MS = 2 ** 31 - 1;

/** Options of per-key locking (`lock` in the session options). */
export interface LockOptions {
  /**
   * How long a lease lasts without renewal, in ms. A process that dies while
   * holding it blocks the key at most this long. Default 10 000.
   */
  ttl?: number;
  /** How long an update waits for a lease before failing, in ms. Default 10 000. */
  wait?: number;
}

/** One lease of one key, for one holder. */
export class Lease {
  readonly #owner = crypto.randomUUID();
  readonly #ttl: number;
  readonly #wait: number;
  #held = false;
  #validUntil = 0;
  #timer: TimerId | undefined;
  #acquiring: Promise<void> | undefined;
  /** A renewal in flight, which `release` waits for. */
  #renewing: Promise<void> | undefined;
  /** Settles once this holder has given the lease up (or lost it) for good. */
  readonly #freed = Promise.withResolvers<void>();

  /**
   * @param after Settles when the previous holder in this process gives the
   * lease up: the first attempt waits for it (at most `wait` ms) instead of
   * finding the lease still held.
   */
  constructor(
    readonly storage: LeaseStorage,
    readonly key: string,
    options: LockOptions,
    readonly after?: Promise<void>,
  ) {
    this.#ttl = options.ttl ?? 10_000;
    this.#wait = options.wait ?? 10_000;
  }

  /** Whether the lease is held now. */
  get held(): boolean {
    return this.#held;
  }

  /** Whether a take of the lease is in flight. */
  get acquiring(): boolean {
    return this.#acquiring !== undefined;
  }

  /** Settles once this holder has given the lease up for good (never rejects). */
  get freed(): Promise<void> {
    return this.#freed.promise;
  }

  /** Takes the lease, waiting up to `wait` ms for its holder to give it up. */
  acquire(): Promise<void> {
    if (this.#held) return Promise.resolve();
    this.#acquiring ??= this.#take(
      async () => (await this.storage.acquireLease(this.key, this.#owner, this.#ttl)) || null,
      leaseError,
    ).then(() => {}).finally(() => (this.#acquiring = undefined));
    return this.#acquiring;
  }

  /**
   * Takes the lease and reads the session in one call of `locked`, waiting
   * as {@link Lease.acquire} does. Only while the lease is neither held nor
   * being taken (the caller checks).
   */
  acquireAndRead<T>(locked: LockedStorage<T>): Promise<VersionedValue<T>> {
    const reading = this.#take(
      () => locked.acquireLeaseAndRead(this.key, this.#owner, this.#ttl),
      readError,
    );
    this.#acquiring = reading.then(() => {}).finally(() => (this.#acquiring = undefined));
    this.#acquiring.catch(() => {}); // the caller gets the rejection from `reading`
    return reading;
  }

  async #take<R>(
    attempt: () => Promise<R | null>,
    failure: (key: string, err: unknown) => SessionError,
  ): Promise<R> {
    const deadline = Date.now() + this.#wait;
    if (this.after !== undefined) await settledOrTimeout(this.after, this.#wait);
    let pause = 5;
    while (true) {
      const started = Date.now();
      let got: R | null;
      try {
        got = await attempt();
      } catch (err) {
        // It may have taken the lease before it failed (a lost reply, or a
        // joined read that failed after the lease): give it back, at best.
        await this.#giveBack();
        throw failure(this.key, err);
      }
      if (got !== null) {
        this.#held = true;
        this.#validUntil = started + this.#ttl;
        this.#schedule();
        return got;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new SessionLockError(
          `The lease of key "${this.key}" could not be taken within ${this.#wait} ms: another ` +
            `update of this key is still running (or its process died and the lease, ` +
            `${this.#ttl} ms, has not expired yet). Raise lock.wait, shorten slow handlers, or ` +
            `lower lock.ttl so that leases of dead processes expire sooner.`,
          this.key,
        );
      }
      await delay(Math.min(left, pause * (0.5 + Math.random())));
      pause = Math.min(pause * 2, 100);
    }
  }

  /** Gives up a lease this holder may hold without knowing; never throws. */
  async #giveBack(): Promise<void> {
    try {
      await this.storage.releaseLease(this.key, this.#owner);
    } catch {
      // It expires after its TTL.
    }
  }

  /** Stops renewing, waiting for a renewal in flight (rule U6: nothing outlives the update). */
  async #stopRenewing(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#renewing !== undefined) await this.#renewing; // never rejects
    // The renewal may have scheduled the next one.
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    this.#timer = backgroundTimeout(() => {
      const renewing = this.#renew().finally(() => (this.#renewing = undefined));
      this.#renewing = renewing;
    }, this.#ttl / 3);
  }

  async #renew(): Promise<void> {
    this.#timer = undefined;
    if (!this.#held) return;
    const started = Date.now();
    try {
      if (await this.storage.renewLease(this.key, this.#owner, this.#ttl)) {
        this.#validUntil = started + this.#ttl;
      } else {
        this.#validUntil = 0; // someone else has it now
      }
    } catch {
      // Keep the old deadline: the lease may still be ours until then.
    }
    if (this.#held && this.#validUntil > Date.now()) this.#schedule();
  }

  /** Throws unless the lease is held and still valid (called before writing). */
  assertHeld(): void {
    if (this.#held && Date.now() < this.#validUntil) return;
    throw this.#lost();
  }

  #lost(): SessionLockError {
    return new SessionLockError(
      `The lease of key "${this.key}" was lost before the session could be written (it was not ` +
        `renewed within ${this.#ttl} ms, so another process may have taken it). This update's ` +
        `changes were not saved. Raise lock.ttl above the longest time a handler can take.`,
      this.key,
    );
  }

  /**
   * Saves through `locked` and gives the lease up, in one call (the last
   * save of a key in this process). Resolves to the new version (`null`
   * after a delete); to `undefined` when the stored version was not
   * `expected`, the lease then still held; rejects with a
   * {@link SessionLockError} when the lease was lost (nothing written).
   */
  async saveAndRelease<T>(
    locked: LockedStorage<T>,
    value: T | undefined,
    expected: string | null | undefined,
  ): Promise<string | null | undefined> {
    this.assertHeld();
    await this.#stopRenewing();
    this.assertHeld(); // the renewal may have found it lost
    let result;
    try {
      result = await locked.saveAndReleaseLease(this.key, value, expected, this.#owner);
    } catch (err) {
      if (this.#held) this.#schedule(); // still ours as far as we know; `release` follows
      throw err;
    }
    if (result.saved) {
      this.#gone();
      return result.version;
    }
    if (result.reason === "conflict") {
      this.#schedule();
      return undefined;
    }
    this.#gone();
    throw this.#lost();
  }

  /** The lease is not held any more: given up with a save, or lost. */
  #gone(): void {
    this.#held = false;
    this.#validUntil = 0;
    this.#freed.resolve();
  }

  /** Gives the lease up. Never throws: an unreleased lease expires by itself. */
  async release(): Promise<void> {
    if (!this.#held) {
      await this.#stopRenewing();
      this.#freed.resolve();
      return;
    }
    this.#held = false;
    await this.#stopRenewing();
    await this.#giveBack();
    this.#freed.resolve();
  }
}

/** A failed take of a lease: what the backend said, and what to check. */
function leaseError(key: string, err: unknown): SessionError {
  // A SessionError already says what to do; anything else came from the backend.
  const reason = messageOf(err).replace(/\.$/, "");
  return new SessionError(
    `Could not take the lease of key "${key}": ${reason}.` +
      (err instanceof SessionError ? "" : " Check that the storage is reachable."),
    key,
    { cause: err },
  );
}

/** A failed take of a lease with the read of the session joined to it. */
function readError(key: string, err: unknown): SessionError {
  if (err instanceof SessionError) return err;
  return new SessionError(
    `Could not take the lease of key "${key}" and read its session: ${messageOf(err)}. The ` +
      `update was stopped so that the stored session is not replaced by initial data; check ` +
      `that the storage is reachable.`,
    key,
    { cause: err },
  );
}

/** Resolves once `promise` has settled, or after `ms` ms, whichever comes first. */
function settledOrTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = backgroundTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}

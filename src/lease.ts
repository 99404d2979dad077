/**
 * Holding the lease of one key: taken before the session is read, renewed in
 * the background while the key is in use, checked before every write, and
 * given up when the key is idle.
 *
 * @module
 */

import type { LeaseStorage, LockedStorage, VersionedValue } from "./capabilities.ts";
import type { SessionError, SessionLockError } from "./errors.ts";
import { leaseError, leaseLostError, leaseWaitError, readError } from "./lease_errors.ts";
import { backgroundTimeout, delay, settledOrTimeout, type TimerId } from "./timers.ts";
import { claimTurn, type HoldRuns, returnTurn } from "./turns.ts";

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
  /** Set when a renewal found another process next in line (rule C7). */
  #yielding = false;

  /**
   * @param after Settles when the previous holder in this process gives the
   * lease up: the first attempt waits for it (at most `wait` ms) instead of
   * finding the lease still held.
   * @param runs How long this process has held each key without a break,
   * shared by the leases of one table: after a third of `min(ttl, wait)`,
   * the holder lets a waiting process go first (rule C7, `src/turns.ts`).
   */
  constructor(
    readonly storage: LeaseStorage,
    readonly key: string,
    options: LockOptions,
    readonly after?: Promise<void>,
    readonly runs?: HoldRuns,
  ) {
    this.#ttl = options.ttl ?? 10_000;
    this.#wait = options.wait ?? 10_000;
  }

  /** How long a run of holds lasts before the holder checks for a waiter. */
  get #fairAfter(): number {
    return Math.min(this.#ttl, this.#wait) / 3;
  }

  /**
   * Whether a renewal found an update of another process waiting for this
   * key: no update of this process should join this holder any more.
   */
  get yielding(): boolean {
    return this.#yielding;
  }

  /** Whether the lease is held now. */
  get held(): boolean {
    return this.#held;
  }

  /** Whether the lease is held and, by this process's clock, not expired yet. */
  get valid(): boolean {
    return this.#held && Date.now() < this.#validUntil;
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
    // Rule C7: after a long run of holds, go first only if nobody else is next.
    let queued = this.runs?.heldFor(this.key, this.#fairAfter) ?? false;
    let turnSince: number | undefined; // when this holder last took the turn
    let pause = 5;
    while (true) {
      let claimed = false; // whether this round asked for the turn already
      if (queued && (turnSince === undefined || Date.now() - turnSince > TURN_REFRESH_MS)) {
        const now = Date.now();
        turnSince = await claimTurn(this.storage, this.key, this.#owner) ? now : undefined;
        claimed = true;
      }
      if (!queued || turnSince !== undefined) {
        const started = Date.now();
        let got: R | null;
        try {
          got = await attempt();
        } catch (err) {
          // It may have taken the lease before it failed (a lost reply, or a
          // joined read that failed after the lease): give it back, at best.
          await this.#giveBack();
          if (turnSince !== undefined) await returnTurn(this.storage, this.key, this.#owner);
          throw failure(this.key, err);
        }
        if (got !== null) {
          this.#held = true;
          this.#validUntil = started + this.#ttl;
          this.#schedule();
          this.runs?.taken(this.key);
          if (turnSince !== undefined) {
            this.runs?.checked(this.key);
            await returnTurn(this.storage, this.key, this.#owner);
          }
          return got;
        }
        // Held by another: from now on, this update asks for its turn.
        queued = true;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        if (turnSince !== undefined) await returnTurn(this.storage, this.key, this.#owner);
        throw leaseWaitError(this.key, this.#wait, this.#ttl);
      }
      if (queued && !claimed && turnSince === undefined) {
        // First failure: take the turn right away, before pausing.
        turnSince = await claimTurn(this.storage, this.key, this.#owner) ? Date.now() : undefined;
      }
      await delay(Math.min(left, pause * (0.5 + Math.random())));
      // Next in line polls often, so that the key does not stay free for long;
      // so does an update that has waited long, so that it gets the next turn.
      const urgent = turnSince !== undefined || this.#wait - left > this.#fairAfter;
      pause = Math.min(pause * 2, urgent ? 25 : 100);
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
    }, this.#fairAfter); // ttl / 3, sooner when `wait` is shorter (rule C7)
  }

  async #renew(): Promise<void> {
    this.#timer = undefined;
    if (!this.#held) return;
    const started = Date.now();
    try {
      if (await this.storage.renewLease(this.key, this.#owner, this.#ttl)) {
        this.#validUntil = started + this.#ttl;
        if (!this.#yielding && this.runs?.heldFor(this.key, this.#fairAfter)) {
          await this.#checkTurn();
        }
      } else {
        this.#validUntil = 0; // someone else has it now
      }
    } catch {
      // Keep the old deadline: the lease may still be ours until then.
    }
    if (this.#held && this.#validUntil > Date.now()) this.#schedule();
  }

  /**
   * Rule C7 for a holder whose updates overlap: after a long run, it looks
   * whether another process is next in line, and if so stops taking updates
   * in (see {@link Lease.yielding}).
   */
  async #checkTurn(): Promise<void> {
    if (await claimTurn(this.storage, this.key, this.#owner)) {
      this.runs?.checked(this.key);
      await returnTurn(this.storage, this.key, this.#owner);
    } else {
      this.#yielding = true;
    }
  }

  /** Throws unless the lease is held and still valid (called before writing). */
  assertHeld(): void {
    if (this.valid) return;
    throw this.#lost();
  }

  #lost(): SessionLockError {
    return leaseLostError(this.key, this.#ttl);
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

  /**
   * Saves through `locked` while keeping the lease (a save while another
   * update of the key runs in this process): the storage checks the lease
   * in the write. Resolves as {@link Lease.saveAndRelease} does; the lease
   * stays held, and renewed meanwhile, unless it was lost.
   */
  async saveKeeping<T>(
    locked: LockedStorage<T>,
    value: T | undefined,
    expected: string | null | undefined,
  ): Promise<string | null | undefined> {
    this.assertHeld();
    const result = await locked.saveKeepingLease!(this.key, value, expected, this.#owner);
    if (result.saved) return result.version;
    if (result.reason === "conflict") return undefined;
    this.#validUntil = 0; // as a renewal that found it gone; given back when the key is idle
    throw this.#lost();
  }

  /** The lease is not held any more: given up with a save, or lost. */
  #gone(): void {
    this.runs?.freed(this.key);
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
    this.runs?.freed(this.key);
    this.#freed.resolve();
  }
}

/** A waiter takes its turn again after this long, well within TURN_TTL_MS. */
const TURN_REFRESH_MS = 300;

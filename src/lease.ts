/**
 * Holding the lease of one key: taken before the session is read, renewed in
 * the background while the key is in use, checked before every write, and
 * given up when the key is idle.
 *
 * @module
 */

import type { LeaseStorage } from "./capabilities.ts";
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

  constructor(
    readonly storage: LeaseStorage,
    readonly key: string,
    options: LockOptions,
  ) {
    this.#ttl = options.ttl ?? 10_000;
    this.#wait = options.wait ?? 10_000;
  }

  /** Whether the lease is held now. */
  get held(): boolean {
    return this.#held;
  }

  /** Takes the lease, waiting up to `wait` ms for its holder to give it up. */
  acquire(): Promise<void> {
    if (this.#held) return Promise.resolve();
    this.#acquiring ??= this.#take().finally(() => (this.#acquiring = undefined));
    return this.#acquiring;
  }

  async #take(): Promise<void> {
    const deadline = Date.now() + this.#wait;
    let pause = 5;
    while (true) {
      const started = Date.now();
      let ok: boolean;
      try {
        ok = await this.storage.acquireLease(this.key, this.#owner, this.#ttl);
      } catch (err) {
        // A SessionError already says what to do; anything else came from the backend.
        const reason = messageOf(err).replace(/\.$/, "");
        throw new SessionError(
          `Could not take the lease of key "${this.key}": ${reason}.` +
            (err instanceof SessionError ? "" : " Check that the storage is reachable."),
          this.key,
          { cause: err },
        );
      }
      if (ok) {
        this.#held = true;
        this.#validUntil = started + this.#ttl;
        this.#schedule();
        return;
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
    throw new SessionLockError(
      `The lease of key "${this.key}" was lost before the session could be written (it was not ` +
        `renewed within ${this.#ttl} ms, so another process may have taken it). This update's ` +
        `changes were not saved. Raise lock.ttl above the longest time a handler can take.`,
      this.key,
    );
  }

  /** Gives the lease up. Never throws: an unreleased lease expires by itself. */
  async release(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#held) return;
    this.#held = false;
    if (this.#renewing !== undefined) await this.#renewing; // never rejects
    try {
      await this.storage.releaseLease(this.key, this.#owner);
    } catch {
      // It expires after its TTL.
    }
  }
}

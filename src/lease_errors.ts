/**
 * The errors a lease reports, each saying what to do.
 *
 * @module
 */

import { messageOf, SessionError, SessionLockError } from "./errors.ts";

/**
 * The lease of `key` could not be taken within `wait` ms.
 *
 * @example
 * ```ts
 * console.log(leaseWaitError("42", 5000, 10000).message);
 * ```
 */
export function leaseWaitError(key: string, wait: number, ttl: number): SessionLockError {
  return new SessionLockError(
    `The lease of key "${key}" could not be taken within ${wait} ms: another update of this ` +
      `key is still running, in this process or another (or its process died and the lease, ` +
      `${ttl} ms, has not expired yet). Raise lock.wait, shorten slow handlers, or lower ` +
      `lock.ttl so that leases of dead processes expire sooner. With lock, a later update of a ` +
      `key can wait for an earlier one of this process, so a handler must not wait for a later ` +
      `update of its own key.`,
    key,
  );
}

/**
 * The lease of `key` (`ttl` ms) was lost before a save, which was not made.
 *
 * @example
 * ```ts
 * console.log(leaseLostError("42", 10000).message);
 * ```
 */
export function leaseLostError(key: string, ttl: number): SessionLockError {
  return new SessionLockError(
    `The lease of key "${key}" was lost before the session could be written (it was not ` +
      `renewed within ${ttl} ms, so another process may have taken it), so this save was not ` +
      `made: this update's changes are not in storage, unless a later update of the same key ` +
      `in this process, which shares the session, saves them. Raise lock.ttl above the longest ` +
      `time a handler can take.`,
    key,
  );
}

/**
 * A failed take of a lease: what the backend said, and what to check.
 *
 * @example
 * ```ts
 * console.log(leaseError("42", new Error("ECONNREFUSED")).message);
 * ```
 */
export function leaseError(key: string, err: unknown): SessionError {
  // A SessionError already says what to do; anything else came from the backend.
  const reason = messageOf(err).replace(/\.$/, "");
  return new SessionError(
    `Could not take the lease of key "${key}": ${reason}.` +
      (err instanceof SessionError ? "" : " Check that the storage is reachable."),
    key,
    { cause: err },
  );
}

/**
 * A failed take of a lease with the read of the session joined to it.
 *
 * @example
 * ```ts
 * console.log(readError("42", new Error("ECONNREFUSED")).message);
 * ```
 */
export function readError(key: string, err: unknown): SessionError {
  if (err instanceof SessionError) return err;
  return new SessionError(
    `Could not take the lease of key "${key}" and read its session: ${messageOf(err)}. The ` +
      `update was stopped so that the stored session is not replaced by initial data; check ` +
      `that the storage is reachable.`,
    key,
    { cause: err },
  );
}

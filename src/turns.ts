/**
 * Fair turns at one key's lease (docs/semantics.md, rule C7). A process
 * whose updates keep a key busy takes its lease back the moment it gave it
 * up, or never gives it up while its updates overlap; an update of another
 * process that polls for the lease would then wait until `lock.wait` runs
 * out. So:
 *
 * - an update that finds the lease held marks itself next in line, with a
 *   short lease of its own on the key's *turn* (`turnKey`), kept while it
 *   waits and given back once it holds the key's lease;
 * - a process that has held a key without a break (its updates taking the
 *   lease back within {@link BREAK_MS} of giving it up, or overlapping) for
 *   a third of `min(lock.ttl, lock.wait)` checks the turn, at its next take
 *   or renewal: if another process is marked, it lets that one go first.
 *
 * Everything goes through `acquireLease` and `releaseLease` of the storage
 * (on the turn key), so it works with every lease storage, and costs no
 * call while nobody waits but for two per third of the TTL of a key held
 * without a break.
 *
 * @module
 */

import type { LeaseStorage } from "./capabilities.ts";

/**
 * How long a mark of the next in line lasts unless its waiter takes it
 * again, in ms: a waiter that died blocks its key at most this long.
 */
export const TURN_TTL_MS = 1000;

/** A key given up and taken back within this many ms has been held without a break. */
export const BREAK_MS = 200;

/** What follows a key in the key of its turn. */
const TURN_SUFFIX = "\u{E000}turn";

/** The key whose lease marks the next in line for `key`'s lease. */
export function turnKey(key: string): string {
  return key + TURN_SUFFIX;
}

/** The key that `turn` is the turn of, if it is a turn key. */
export function keyOfTurn(turn: string): string | undefined {
  return turn.endsWith(TURN_SUFFIX) ? turn.slice(0, -TURN_SUFFIX.length) : undefined;
}

/**
 * Takes the turn of `key` for `owner` (or extends it). `true` when `owner`
 * has it, or when the storage failed (a mark is a courtesy, not a lock).
 */
export async function claimTurn(
  storage: LeaseStorage,
  key: string,
  owner: string,
): Promise<boolean> {
  try {
    return await storage.acquireLease(turnKey(key), owner, TURN_TTL_MS);
  } catch {
    return true;
  }
}

/** Gives the turn of `key` back, if `owner` has it; never throws. */
export async function returnTurn(storage: LeaseStorage, key: string, owner: string) {
  try {
    await storage.releaseLease(turnKey(key), owner);
  } catch {
    // It expires after TURN_TTL_MS.
  }
}

/** Keys whose run of holds is remembered at most, per table (the oldest go first). */
const MAX_RUNS = 4096;

/**
 * How long this process has held each key of one table without a break:
 * when the current run of holds started, and when the lease was last given
 * up (`undefined` while held).
 */
export class HoldRuns {
  readonly #runs = new Map<string, { since: number; freedAt: number | undefined }>();

  /** Records that the lease of `key` was taken; a run goes on if the key was given up just now. */
  taken(key: string, now = Date.now()): void {
    const run = this.#runs.get(key);
    if (run !== undefined && (run.freedAt === undefined || now - run.freedAt <= BREAK_MS)) {
      run.freedAt = undefined;
      return;
    }
    this.#runs.delete(key);
    if (this.#runs.size >= MAX_RUNS) this.#runs.delete(this.#runs.keys().next().value!);
    this.#runs.set(key, { since: now, freedAt: undefined });
  }

  /** Records that the lease of `key` was given up (or lost). */
  freed(key: string, now = Date.now()): void {
    const run = this.#runs.get(key);
    if (run !== undefined) run.freedAt = now;
  }

  /** Whether `key` has been held without a break for `ms` ms or more (as of `now`). */
  heldFor(key: string, ms: number, now = Date.now()): boolean {
    const run = this.#runs.get(key);
    if (run === undefined) return false;
    if (run.freedAt !== undefined && now - run.freedAt > BREAK_MS) return false;
    return now - run.since >= ms;
  }

  /** Starts the run of `key` afresh: its turn was checked and nobody was waiting. */
  checked(key: string, now = Date.now()): void {
    const run = this.#runs.get(key);
    if (run !== undefined) run.since = now;
  }
}

/**
 * What one update does with one session fragment: the accessor behind
 * `ctx.session` (or one fragment of a multi session) for that update, and
 * the end of the update for that fragment (docs/semantics.md, rules U1 to
 * U8).
 *
 * @module
 */

import type { SessionContext } from "./context.ts";
import type { SessionHandle } from "./install.ts";
import type { Slot } from "./slot.ts";
import type { SlotTable } from "./slot_table.ts";
import { SessionError, SessionKeyError } from "./errors.ts";
import { isPromiseLike } from "./values.ts";
import { OPAQUE, snapshot } from "./snapshot.ts";

/** The update type of `ctx`, such as `message` or `inline_query`. */
export function updateTypeOf(ctx: SessionContext): string {
  for (const name in ctx.update) if (name !== "update_id") return name;
  return "unknown";
}

const ignore = () => {};

/** Marks `promise` as handled (its rejection still reaches whoever awaits it). */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(ignore);
  return promise;
}

/** One update's use of one fragment. */
export class Binding<S> implements SessionHandle {
  #slot: Slot<S> | undefined;
  /** Whether the update read or assigned the session. */
  #touched = false;
  /** Whether the update has read the session once (lazy mode, rule U2). */
  #accessed = false;
  /** Whether the update has assigned the session (lazy mode, rule C6: it works on its own value). */
  #assigned = false;
  /** Whether the update has ended for this fragment (rule U7). */
  #ended = false;
  /** Whether `#last` holds the last value the update saw. */
  #seen = false;
  #last: unknown = undefined;
  /** Reads started for this update that it has not waited for yet (rule U6). */
  #reads: Set<Promise<unknown>> | undefined;
  /** The first of those that failed. */
  #readFailure: { error: unknown } | undefined;
  /** The promise assigned last, until it has settled and been applied. */
  #pending: Promise<void> | undefined;
  /** The key's assignment turn of `#pending`: once another assignment came, it is not waited for. */
  #pendingTurn = 0;
  /** The rejection of the promise assigned last. */
  #assignError: { error: unknown } | undefined;

  constructor(
    readonly table: SlotTable<S>,
    readonly key: string | undefined,
    readonly ctx: SessionContext,
    readonly property: string,
  ) {}

  /** Whether the fragment's keys are locked (`lock`, on a storage with leases). */
  get locked(): boolean {
    return this.table.source.lock !== undefined && this.table.source.leases !== undefined;
  }

  #join(): Slot<S> {
    return this.#slot ??= this.table.join(this.key!);
  }

  /**
   * What a read after the end gives (rule U7): a copy of the session, so
   * that changing it reaches nobody.
   */
  #afterEnd(): unknown {
    const copy = snapshot(this.#last); // a fresh copy nobody else holds
    return copy === OPAQUE ? this.#last : copy;
  }

  #keyError(): SessionKeyError {
    return new SessionKeyError(updateTypeOf(this.ctx), this.property);
  }

  /** Reads the session before the handler runs (strict mode, rule U1). */
  load(): Promise<void> | undefined {
    const slot = this.#join();
    if (!slot.known) return slot.load();
    slot.present();
    return undefined;
  }

  /** The live value (strict mode). */
  get(): unknown {
    if (this.key === undefined) throw this.#keyError();
    if (this.#ended) return this.#afterEnd();
    this.#touched = true;
    return this.#join().expose();
  }

  /**
   * The value once it is known, else a promise of it; the first read starts
   * the storage read (lazy mode, rule U2).
   */
  getLazy(): unknown {
    if (this.key === undefined) throw this.#keyError();
    if (this.#ended) {
      if (this.#seen) return this.#afterEnd();
      return handled(Promise.reject(
        new SessionError(
          `ctx.${this.property} was read after its update had finished, so it was not loaded. ` +
            `Await everything that uses the session inside the handler.`,
          this.key,
        ),
      ));
    }
    this.#touched = true;
    const slot = this.#join();
    const first = !this.#accessed;
    this.#accessed = true;
    // After assigning a promise, this update reads what the last promise
    // assigned to the key (by it or by another update) gives (rule U3).
    if (this.#pending !== undefined) {
      const after = (slot.assigning ?? Promise.resolve()).then(() =>
        this.#valueAfterAssigning(slot)
      );
      // Waited for, but its rejection is the assignment's, not a failed read.
      return this.#wait(after, false);
    }
    if (!slot.known) return this.#startRead(slot);
    // With lock, a value another update assigned before the lease was taken
    // is given to an update that has not assigned only once it is (rule C6).
    const lease = slot.lease;
    if (lease !== undefined && !lease.held && !this.#assigned) {
      return this.#wait(lease.acquire().then(() => this.#present(slot, first)));
    }
    if (!first) return slot.expose();
    return Promise.resolve(this.#present(slot, true)); // the first read gives a promise, as in grammY
  }

  /** The live value for a read; the first read of an update may start from `initial()` (K1). */
  #present(slot: Slot<S>, first: boolean): unknown {
    if (first) slot.present();
    return slot.expose();
  }

  /** Reads storage for a lazy read; a promise even if the storage throws at once. */
  #startRead(slot: Slot<S>): Promise<unknown> {
    let loading: Promise<void> | undefined;
    try {
      loading = slot.load();
    } catch (err) {
      return this.#wait(Promise.reject(err)); // fails the update too (rule U6)
    }
    if (loading === undefined) return Promise.resolve(slot.expose()); // read synchronously
    return this.#wait(loading.then(() => slot.expose()));
  }

  /** The value once the promise assigned last has settled: assigned, or read. */
  #valueAfterAssigning(slot: Slot<S>): unknown {
    const assigning = slot.assigning;
    if (assigning !== undefined) return assigning.then(() => this.#valueAfterAssigning(slot));
    if (slot.rejected !== undefined) throw slot.rejected.error;
    return slot.known ? slot.expose() : this.#startRead(slot);
  }

  /** Assigns the session, or a promise of it (rule U3). */
  set(value: unknown): void {
    if (this.key === undefined) throw this.#keyError();
    if (this.#ended) {
      throw new SessionError(
        `ctx.${this.property} was assigned after its update had finished; the assignment was ` +
          `not saved. Await everything that changes the session inside the handler.`,
        this.key,
      );
    }
    this.#touched = true;
    this.#accessed = true;
    this.#assigned = true;
    const slot = this.#join();
    const lease = slot.lease;
    if (lease !== undefined && !lease.held) {
      // Locked keys: take the lease now, not only when saving (rule C6).
      this.#wait(lease.acquire());
    }
    const turn = slot.countAssignment();
    this.#assignError = undefined;
    if (!isPromiseLike(value)) {
      this.#pending = undefined;
      slot.assigning = undefined;
      slot.assign(value as S);
      return;
    }
    // Applies only if no update of the key assigned anything since; while it
    // is the last assignment, reads wait for it and get what it gives, or
    // its rejection.
    const assigning = Promise.resolve(value).then(
      (v) => {
        if (turn === slot.assignments) slot.assign(v as S);
      },
      (error) => {
        if (turn !== slot.assignments) return;
        this.#assignError = slot.rejected = { error };
        throw error;
      },
    );
    const settled = () => {
      if (this.#pending === pending) this.#pending = undefined;
      if (slot.assigning === assigning) slot.assigning = undefined;
    };
    const pending: Promise<void> = assigning.then(settled, settled);
    slot.assigning = handled(assigning);
    this.#pending = pending;
    this.#pendingTurn = turn;
  }

  /**
   * Ends the update for this fragment: waits for the reads and the promise
   * assignment it started (rule U6), then saves when `ok` (rules U4, U5),
   * and leaves the key's shared state. Throws or rejects if a read, the
   * assigned promise or the save failed; returns `undefined` when it is
   * done at once (a synchronous storage), else a promise.
   */
  finish(ok: boolean): Promise<void> | undefined {
    const slot = this.#slot;
    if (slot === undefined) {
      this.#ended = true;
      return undefined;
    }
    if ((this.#reads?.size ?? 0) > 0 || this.#pending !== undefined) {
      return this.#finishLater(slot, ok);
    }
    return this.#complete(slot, ok, this.#readFailure ?? this.#assignError);
  }

  /**
   * Tracks a read (or lease) this update started until it settles; the
   * first failure is kept, to fail the update (rule U6).
   */
  #wait<T>(promise: Promise<T>, fails = true): Promise<T> {
    const reads = this.#reads ??= new Set();
    reads.add(promise);
    promise.then(
      () => void reads.delete(promise),
      (error) => {
        reads.delete(promise);
        if (fails) this.#readFailure ??= { error };
      },
    );
    return promise;
  }

  /** Waits for the reads and the assigned promise this update started, then completes. */
  async #finishLater(slot: Slot<S>, ok: boolean): Promise<void> {
    while ((this.#reads?.size ?? 0) > 0 || this.#pending !== undefined) {
      const pending = this.#pending;
      if (pending !== undefined && this.#pendingTurn !== slot.assignments) {
        this.#pending = undefined; // another assignment replaced it: nothing to wait for (U3)
        continue;
      }
      const waits: Promise<unknown>[] = [...this.#reads ?? []];
      if (pending === undefined) await Promise.allSettled(waits);
      // Wakes up when the promise is replaced, so a replaced one that never settles cannot hang.
      else await Promise.race([Promise.allSettled([...waits, pending]), slot.nextAssignment()]);
    }
    await this.#complete(slot, ok, this.#readFailure ?? this.#assignError);
  }

  /** Ends the update, saves when `ok` and nothing failed, and leaves the key. */
  #complete(
    slot: Slot<S>,
    ok: boolean,
    failure: { error: unknown } | undefined,
  ): Promise<void> | undefined {
    this.#ended = true;
    // The last user of a locked key: its save may give the lease up too.
    if (slot.users === 1 && slot.lease?.held === true) this.table.detach(slot);
    if (slot.known) {
      this.#seen = true;
      this.#last = slot.value;
    }
    if (ok && failure === undefined && this.#touched) {
      let saving: Promise<void> | undefined;
      try {
        saving = slot.save();
      } catch (error) {
        return this.#leave(slot, ok, { error });
      }
      if (saving !== undefined) {
        return saving.then(
          () => this.#leave(slot, ok, undefined),
          (error) => this.#leave(slot, ok, { error }),
        );
      }
    }
    return this.#leave(slot, ok, failure);
  }

  /** Leaves the key's shared state, then throws what failed (if the update was ok so far). */
  #leave(
    slot: Slot<S>,
    ok: boolean,
    failure: { error: unknown } | undefined,
  ): Promise<void> | undefined {
    const releasing = this.table.leave(slot);
    if (releasing !== undefined) {
      return releasing.then(() => {
        if (failure !== undefined && ok) throw failure.error;
      });
    }
    if (failure !== undefined && ok) throw failure.error;
    return undefined;
  }
}

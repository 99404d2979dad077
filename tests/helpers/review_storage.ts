/**
 * A storage for the review regression tests: a `ControlledStorage`
 * (tests/helpers/defects_storage.ts) that can also hold back the answer of
 * a call that has already reached the wrapped storage (a slow network on
 * the way back), and logs when each call starts and settles.
 */
import type { VersionedValue } from "../../mod.ts";
import { ControlledStorage, type Method, type Pause } from "./defects_storage.ts";

interface PendingHold {
  methods: Method[];
  reached: PromiseWithResolvers<Method>;
  gate: PromiseWithResolvers<void>;
}

/** A controlled storage whose answers can be held back, and whose calls log when they settle. */
export class LateStorage<T> extends ControlledStorage<T> {
  /** Every call as it starts and as it settles, e.g. "renewLease:1 called", "renewLease:1 done". */
  events: string[] = [];
  #holds: PendingHold[] = [];

  /**
   * Holds back the answer of the next call of any of `methods`: the call
   * runs against the wrapped storage at once (so what it read is what the
   * storage held then), and its result reaches the caller only once the
   * test releases it. `reached` resolves when the answer is ready.
   */
  hold(methods: Method | Method[]): Pause {
    const h: PendingHold = {
      methods: Array.isArray(methods) ? methods : [methods],
      reached: Promise.withResolvers<Method>(),
      gate: Promise.withResolvers<void>(),
    };
    this.#holds.push(h);
    return { reached: h.reached.promise, release: () => h.gate.resolve() };
  }

  async #late<R>(method: Method, key: string, call: () => Promise<R>): Promise<R> {
    this.events.push(`${method}:${key} called`);
    try {
      const result = await call();
      const at = this.#holds.findIndex((h) => h.methods.includes(method));
      if (at >= 0) {
        const [h] = this.#holds.splice(at, 1);
        h.reached.resolve(method);
        await h.gate.promise;
      }
      return result;
    } finally {
      this.events.push(`${method}:${key} done`);
    }
  }

  override read(key: string): Promise<T | undefined> {
    return this.#late("read", key, () => super.read(key));
  }
  override write(key: string, value: T): Promise<void> {
    return this.#late("write", key, () => super.write(key, value));
  }
  override delete(key: string): Promise<void> {
    return this.#late("delete", key, () => super.delete(key));
  }
  override readVersioned(key: string): Promise<VersionedValue<T>> {
    return this.#late("readVersioned", key, () => super.readVersioned(key));
  }
  override writeIfVersion(key: string, value: T, expected: string | null): Promise<string | null> {
    return this.#late("writeIfVersion", key, () => super.writeIfVersion(key, value, expected));
  }
  override deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    return this.#late("deleteIfVersion", key, () => super.deleteIfVersion(key, expected));
  }
  override acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.#late("acquireLease", key, () => super.acquireLease(key, owner, ttl));
  }
  override renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.#late("renewLease", key, () => super.renewLease(key, owner, ttl));
  }
  override releaseLease(key: string, owner: string): Promise<void> {
    return this.#late("releaseLease", key, () => super.releaseLease(key, owner));
  }
}

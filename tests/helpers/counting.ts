/** A storage wrapper that counts (and can fail) every call to the storage it wraps. */
import type { StorageAdapter } from "../../mod.ts";

export interface Counts {
  read: number;
  write: number;
  delete: number;
}

export class CountingStorage<T> implements StorageAdapter<T> {
  counts: Counts = { read: 0, write: 0, delete: 0 };
  /** Operations that fail with an error while listed here. */
  failing = new Set<keyof Counts>();
  /** Log of operations in order, e.g. "write:42". */
  log: string[] = [];

  constructor(readonly inner: StorageAdapter<T>) {}

  get total(): number {
    return this.counts.read + this.counts.write + this.counts.delete;
  }

  reset(): void {
    this.counts = { read: 0, write: 0, delete: 0 };
    this.log = [];
  }

  #count(op: keyof Counts, key: string): void {
    this.counts[op]++;
    this.log.push(`${op}:${key}`);
    if (this.failing.has(op)) throw new Error(`simulated ${op} failure`);
  }

  async read(key: string): Promise<T | undefined> {
    this.#count("read", key);
    return await this.inner.read(key);
  }

  async write(key: string, value: T): Promise<void> {
    this.#count("write", key);
    await this.inner.write(key, value);
  }

  async delete(key: string): Promise<void> {
    this.#count("delete", key);
    await this.inner.delete(key);
  }
}

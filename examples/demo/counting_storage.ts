/**
 * A `DenoKvStorage` that counts the session reads and writes asked of it, so
 * the demo can print what each update cost: lazy sessions read only the
 * fragments a handler awaits, and write only the ones that changed.
 *
 * The middleware calls a storage only through its public methods
 * (docs/semantics.md, rule A1), so overriding them sees every call.
 */

import { DenoKvStorage } from "../../storages/denokv.ts";

/** Counts `read`/`readVersioned` as reads, `write`/`delete` (and their conditional forms) as writes. */
export class CountingKvStorage<T> extends DenoKvStorage<T> {
  /** Session reads since the last `take()`. */
  reads = 0;
  /** Session writes (deletions included) since the last `take()`. */
  writes = 0;

  override read(key: string): Promise<T | undefined> {
    this.reads++;
    return super.read(key);
  }

  override readVersioned(key: string): ReturnType<DenoKvStorage<T>["readVersioned"]> {
    this.reads++;
    return super.readVersioned(key);
  }

  override write(key: string, value: T): Promise<void> {
    this.writes++;
    return super.write(key, value);
  }

  override writeIfVersion(key: string, value: T, expected: string | null): Promise<string | null> {
    this.writes++;
    return super.writeIfVersion(key, value, expected);
  }

  override delete(key: string): Promise<void> {
    this.writes++;
    return super.delete(key);
  }

  override deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    this.writes++;
    return super.deleteIfVersion(key, expected);
  }

  /** Returns the reads and writes counted so far and starts again from zero. */
  take(): { reads: number; writes: number } {
    const counted = { reads: this.reads, writes: this.writes };
    this.reads = 0;
    this.writes = 0;
    return counted;
  }
}

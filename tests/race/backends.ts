/**
 * Where a run keeps its sessions: the scheduled storage (every call ordered
 * by the scheduler, faults, a call log), the memory storage, or a real
 * storage (tests/race/real.ts). The runner reaches the storage two ways:
 * through the views it hands to the session middlewares, and directly (to
 * seed, to look at the end state and to make the changes of the probes).
 *
 * @module
 */
import type fc from "npm:fast-check@^4";
import {
  type ConditionalStorage,
  type LeaseStorage,
  MemorySessionStorage,
  type StorageAdapter,
} from "../../mod.ts";
import type { Clock } from "./clock.ts";
import type { Data } from "./data.ts";
import type { Program } from "./program.ts";
import { ScheduledStorage } from "./storage.ts";

export type FullStorage = StorageAdapter<Data> & ConditionalStorage<Data> & LeaseStorage;

export interface Backend {
  readonly name: string;
  /** Put in front of every session key (unique per run on shared servers). */
  readonly prefix: string;
  /** The storage object instance `inst` is given. */
  storage(inst: number): StorageAdapter<Data>;
  /** Direct access, outside any middleware. */
  get(key: string): Promise<unknown>;
  put(key: string, value: Data): Promise<void>;
  version(key: string): Promise<string | null>;
  /** Whether nobody holds the lease of `key`. */
  leaseFree(key: string): Promise<boolean>;
  /** Set for the scheduled storage only. */
  readonly scheduled?: ScheduledStorage;
  cleanup(): Promise<void>;
}

export type BackendFactory = (
  s: fc.Scheduler,
  program: Program,
  clock: Clock,
  run: number,
) => Promise<Backend>;

/** Direct access to any storage with every capability. */
export function directBackend(
  name: string,
  prefix: string,
  storage: FullStorage,
  cleanup: () => Promise<void> = () => Promise.resolve(),
): Backend {
  return {
    name,
    prefix,
    storage: () => storage,
    get: async (key) => await storage.read(key),
    put: async (key, value) => await storage.write(key, value),
    version: async (key) => (await storage.readVersioned(key)).version,
    async leaseFree(key) {
      const owner = `race-checker-${crypto.randomUUID()}`;
      const free = await storage.acquireLease(key, owner, 1000);
      if (free) await storage.releaseLease(key, owner);
      return free;
    },
    cleanup,
  };
}

export const memoryBackend: BackendFactory = () =>
  Promise.resolve(directBackend("memory", "", new MemorySessionStorage<Data>()));

export const scheduledBackend: BackendFactory = (s, program, clock) => {
  const storage = new ScheduledStorage(s, program.faults, clock, program.lateSerialize);
  return Promise.resolve({
    name: "scheduled",
    prefix: "",
    storage: (inst) => storage.view<Data>(inst),
    get: (key) => Promise.resolve(storage.get(key)),
    put: (key, value) => Promise.resolve(storage.put(key, value)),
    version: (key) => Promise.resolve(storage.versionOf(key)),
    leaseFree: (key) => Promise.resolve(!storage.heldLeases().includes(key)),
    scheduled: storage,
    cleanup: () => Promise.resolve(),
  });
};

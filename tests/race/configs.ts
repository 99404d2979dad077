/**
 * The configurations the race suite runs: which storage, which programs, and
 * how many runs in the normal test run (`deno task test`) and in
 * `deno task test:race` (scaled by RACE_RUNS).
 *
 * @module
 */
import { type BackendFactory, memoryBackend, scheduledBackend } from "./backends.ts";
import type { ProgramShape } from "./program.ts";

export interface RaceConfig {
  name: string;
  backend: BackendFactory;
  shape: Partial<ProgramShape>;
  /** Runs in `deno task test`. */
  runs: number;
}

export const CONFIGS: RaceConfig[] = [
  {
    name: "memory storage, any mode, 1-3 instances",
    backend: memoryBackend,
    shape: {},
    runs: 3000,
  },
  {
    name: "memory storage, counter merge, 2-3 instances",
    backend: memoryBackend,
    shape: { modes: ["merge"], minInstances: 2 },
    runs: 2000,
  },
  {
    name: "scheduled storage, any mode, faults",
    backend: scheduledBackend,
    shape: { faults: true },
    runs: 4000,
  },
  {
    name: "scheduled storage, counter merge, 2-3 instances",
    backend: scheduledBackend,
    shape: { modes: ["merge"], minInstances: 2 },
    runs: 3000,
  },
  {
    name: "scheduled storage, lazy sessions, faults",
    backend: scheduledBackend,
    shape: { lazy: true, faults: true },
    runs: 3000,
  },
  {
    name: "memory storage, lock",
    backend: memoryBackend,
    shape: { lock: true, maxUpdates: 4 },
    runs: 200,
  },
  {
    name: "scheduled storage, lock, faults",
    backend: scheduledBackend,
    shape: { lock: true, faults: true, maxUpdates: 4 },
    runs: 200,
  },
];

/**
 * Narrow configurations for checking that the suite finds a given defect
 * when the broad ones stop at a more frequent one (survey.ts runs them too).
 */
export const FOCUSED: RaceConfig[] = [
  {
    name: "focus: merges of plain sessions (defect 2)",
    backend: scheduledBackend,
    shape: {
      modes: ["merge"],
      minInstances: 2,
      maxChats: 1,
      actions: ["step", "read", "mutate"],
      late: false,
      unkeyed: false,
      frozen: false,
    },
    runs: 1500,
  },
  {
    name: "focus: merges of plain and frozen sessions (defects 2, 5)",
    backend: scheduledBackend,
    shape: {
      modes: ["merge"],
      minInstances: 2,
      maxChats: 1,
      actions: ["step", "read", "mutate"],
      late: false,
      unkeyed: false,
    },
    runs: 1500,
  },
  {
    name: "focus: merges with writes given up by a timeout (C1)",
    backend: scheduledBackend,
    shape: {
      modes: ["merge"],
      maxInstances: 2,
      maxChats: 1,
      actions: ["step", "read", "mutate", "delete"],
      late: false,
      unkeyed: false,
      faults: true,
      faultMix: { ok: 4, delay: 2, fail: 0, lost: 1, late: 3 },
    },
    runs: 1500,
  },
  {
    name: "focus: memory merges (defects 2, 5)",
    backend: memoryBackend,
    shape: {
      modes: ["merge"],
      minInstances: 2,
      maxChats: 1,
      actions: ["step", "read", "mutate"],
      late: false,
      unkeyed: false,
    },
    runs: 1500,
  },
];

/** Survey-only: un-awaited lazy reads (defect 3) without late actions. */
export const SURVEY_ONLY: RaceConfig[] = [
  {
    name: "survey: un-awaited lazy reads (defect 3)",
    backend: scheduledBackend,
    shape: {
      lazy: true,
      actions: ["step", "read", "mutate", "fire", "throw"],
      late: false,
      unkeyed: false,
      frozen: false,
    },
    runs: 300,
  },
  {
    name: "survey: un-awaited lazy reads with lock (defect 3)",
    backend: memoryBackend,
    shape: {
      lazy: true,
      lock: true,
      actions: ["step", "read", "mutate", "fire", "throw"],
      late: false,
      unkeyed: false,
      frozen: false,
    },
    runs: 30,
  },
];

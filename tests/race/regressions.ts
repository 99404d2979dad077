/**
 * Regression programs: shrunk counterexamples the suite found on the core
 * before the rewrite of #15 (commit 95ddeb5), one or more per defect of the
 * issue. Each is run under many schedules (the schedule is still generated);
 * on that core every one of them fails for at least one schedule.
 *
 * @module
 */
import { type BackendFactory, memoryBackend, scheduledBackend } from "./backends.ts";
import type { Action, Program, UpdateSpec } from "./program.ts";

export interface Regression {
  name: string;
  backend: BackendFactory;
  program: Program;
  /** What the old core did. */
  found: string;
}

const mutate: Action = { t: "mutate", immer: false };
const immer: Action = { t: "mutate", immer: true };
const step: Action = { t: "step" };

function u(inst: number, actions: Action[], more: Partial<UpdateSpec> = {}): UpdateSpec {
  return { inst, chat: 0, after: null, actions, late: [], ...more };
}

function program(fields: Partial<Program>): Program {
  return {
    mode: "error",
    lock: false,
    lazy: [false],
    seeded: [true],
    updates: [],
    faults: [],
    readOnly: false,
    lateSerialize: false,
    ...fields,
  };
}

const mergeQueued = program({
  mode: "merge",
  lazy: [false, false],
  updates: [u(1, [mutate]), u(0, [mutate]), u(0, [], { after: 0 })],
});

/** With lock: one lazy update assigns without reading, another of its process then reads. */
const blindLockRead = program({
  lock: true,
  lazy: [false, true],
  updates: [
    u(1, [step, { t: "assign", frozen: false }]),
    u(1, [step, mutate]),
    u(0, []),
    u(0, [step, step]),
  ],
});

/**
 * A merge replaces a frozen live value while another update of the process
 * holds what it read before: its later assignment, derived from that, must
 * not drop the merge.
 */
const staleAfterMerge = program({
  mode: "merge",
  lazy: [true, false],
  updates: [
    u(1, [mutate], { late: ["read"] }),
    u(0, [step]),
    u(0, []),
    u(0, [mutate, step, { t: "assignPromise", reject: false }, step], { late: ["read"] }),
    u(0, [step, immer, { t: "fire" }, mutate]),
  ],
});

/**
 * After a merge landed on a frozen value, the next save's merge fails on a
 * failed read: the save after it must still merge, not write over the merge.
 */
const mergeNextAfterFailure = program({
  mode: "merge",
  lazy: [false, false],
  updates: [
    u(1, [mutate], { late: ["read"] }),
    u(0, []),
    u(0, [{ t: "read" }], { after: 0, late: ["read"] }),
    u(0, [immer], { after: 0, late: ["read"] }),
    u(0, [mutate], { late: ["read"] }),
    u(1, [step, step, mutate], { late: ["read"] }),
  ],
  faults: ["ok", "fail", "ok", "delay", "delay", "ok", "ok"],
});

/**
 * Lazy: a busy key's blind write (C5) loses its reply; another instance
 * builds on what it wrote; the next save of the busy key must not write
 * blindly over that.
 */
const lostBlindWrite = program({
  lazy: [true, true],
  updates: [
    u(0, [{ t: "assign", frozen: false }, step, step, step, step, step, step, step, step]),
    u(0, [{ t: "assign", frozen: false }]),
    u(1, [mutate], { after: 1 }),
    u(0, [{ t: "read" }, mutate], { after: 2 }),
  ],
  faults: ["lost", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"],
});

/**
 * Merge mode: a lazy update deletes without reading and the delete fails;
 * another update of the busy key starts from initial() and adds a mark; its
 * save merges onto the seed that is still there (C1: a value made after a
 * delete is merged as made from nothing, and a delete that did not land is
 * dropped with its update).
 */
const failedBlindDelete = program({
  mode: "merge",
  lazy: [true, false],
  updates: [
    u(0, [step, step, { t: "delete" }], { after: 0 }),
    u(1, []),
    u(0, [mutate]),
    u(0, []),
    u(0, []),
  ],
  faults: ["ok", "fail", "ok", "ok"],
});

/**
 * Merge mode, one lazy instance: an update deletes without reading; another
 * starts from initial(), adds a mark, and its blind write fails; the first
 * one's save then merges the live value onto the seed still stored (no
 * base: the blind write's outcome cannot be told, C1).
 */
const failedBlindAfterDelete = program({
  mode: "merge",
  lazy: [true],
  seeded: [true, true],
  updates: [
    u(0, [], { after: 0, late: ["read"] }),
    u(0, [], { late: ["read", "read"] }),
    u(0, [mutate], { chat: 1 }),
    u(0, [{ t: "delete" }, step]),
    u(0, [step, mutate]),
  ],
  faults: ["fail", "ok", "ok"],
});

export const REGRESSIONS: Regression[] = [
  {
    name: "C1: after a blind write that failed, a merge keeps the seed with the later mark " +
      "(scheduled storage)",
    backend: scheduledBackend,
    program: failedBlindAfterDelete,
    found: "P2 by the model, not the core (RACE_FULL on 1aaabbe, seed -1982063781): as the " +
      "failed blind delete above, for a failed blind write after a delete in the live value",
  },
  {
    name: "C1: after a blind delete that failed, a merge keeps the seed with the later mark " +
      "(scheduled storage)",
    backend: scheduledBackend,
    program: failedBlindDelete,
    found: "P2 by the model, not the core (RACE_FULL on 2107af9, seed -1321850395): the model " +
      "took the seed surviving a failed delete as a generation that came back; C1 says a " +
      "delete that did not land is dropped, so the model now allows it when the mark is kept",
  },
  {
    name: "C1, C5: a blind write whose reply was lost does not turn off conflict detection " +
      "(scheduled storage)",
    backend: scheduledBackend,
    program: lostBlindWrite,
    found: "P2 (attack19 F4, then by this program with the model's exemption for lost blind " +
      "writes removed): the next save of the busy key wrote blindly again and dropped the " +
      "other instance's acknowledged mark",
  },
  {
    name: "C2: a failed merge after a merge that landed on a frozen value is tried again",
    backend: scheduledBackend,
    program: mergeNextAfterFailure,
    found: "P2 (found by the normal race run on a first version of Slot.mergeNext, seed " +
      "552249086): the flag was cleared before the merge's read, which failed; the next save " +
      "wrote over the merge and lost two acknowledged changes of the other process",
  },
  ...[memoryBackend, scheduledBackend].map((backend) => ({
    name: `C2: an assignment made from a frozen value a merge landed on keeps the merge ` +
      `(${backend === memoryBackend ? "memory" : "scheduled"} storage)`,
    backend,
    program: staleAfterMerge,
    found: "P2 (found by the clean-clone CI's RACE_FULL run on e95e552, then with seed 99 of a " +
      "shaped search): the other process's mark was lost, because the update assigned an " +
      "immer-style copy of the value it had read just before the merge landed",
  })),
  {
    name: "defect 2: a merge undone by a queued save (scheduled storage)",
    backend: scheduledBackend,
    program: mergeQueued,
    found: "P2: a write of the same generation dropped the mark of a successful update",
  },
  {
    name: "defects 2, 5: a frozen merge undone (memory storage)",
    backend: memoryBackend,
    program: program({
      mode: "merge",
      lazy: [false, false],
      updates: [
        u(1, [mutate], { after: 0 }),
        u(0, [immer], { after: 0 }),
        u(0, [step, step, step, step]),
      ],
    }),
    found: "P2: the final value lacks the mark of a successful update",
  },
  {
    name: "defect 3: a lazy read started and not awaited outlives its update",
    backend: scheduledBackend,
    program: program({ lazy: [true], seeded: [false], updates: [u(0, [{ t: "fire" }])] }),
    found: "P7: readVersioned outside the update; P5: the next update saw stale state",
  },
  {
    name: "defect 3: ... and with lock keeps the key",
    backend: memoryBackend,
    program: program({
      lock: true,
      lazy: [true],
      seeded: [false],
      updates: [u(0, [{ t: "fire" }]), u(0, [])],
    }),
    found: "P5: the next update saw stale state",
  },
  {
    name: "defect 4: a promise assignment superseded by a later one is stored",
    backend: scheduledBackend,
    program: program({
      lazy: [true],
      updates: [u(0, [{ t: "assignPromise", reject: false }, { t: "delete" }])],
    }),
    found: "P4: the superseded promise's value was written",
  },
  {
    name: "defect 4: an assignment after the end is written by the next update",
    backend: scheduledBackend,
    program: program({ updates: [u(0, [], { late: ["assign"] }), u(0, [])] }),
    found: "P7: no SessionError; P4: the late value was written",
  },
  {
    name: "defect 5: a frozen merge that landed is reported as failed",
    backend: scheduledBackend,
    program: program({
      mode: "merge",
      lazy: [false, false],
      updates: [u(0, [mutate]), u(1, [immer])],
    }),
    found: "P4: storage holds the mark of an update reported as failed",
  },
  {
    name: "defect 6: an un-awaited lazy access without a key",
    backend: memoryBackend,
    program: program({ lazy: [true], updates: [u(0, [{ t: "read" }], { chat: null })] }),
    found: "P1: unhandled SessionKeyError; P8: no synchronous throw",
  },
  ...[memoryBackend, scheduledBackend].map((backend) => ({
    name: `C6 with lock: a lazy read waiting for the lease, then a promise assigned (${
      backend === memoryBackend ? "memory" : "scheduled"
    } storage)`,
    backend,
    program: program({
      lock: true,
      lazy: [true, false],
      updates: [
        u(0, [], { late: ["read"] }),
        u(0, [step, { t: "fire" }, { t: "assignPromise", reject: false }, mutate], {
          late: ["read"],
        }),
        u(1, [step]),
      ],
    }),
    found: "found on the rewritten core by the tightened model (P6); C6 now says an update " +
      "that assigns before its read delivered works on its own value, so P6 exempts it",
  })),
  {
    name: "after a lost reply of a write, an ABA on null: created, deleted by another process, " +
      "then written over on the old expectation (scheduled storage)",
    backend: scheduledBackend,
    program: program({
      lazy: [false, false],
      seeded: [false],
      updates: [
        u(0, [{ t: "read" }]),
        u(1, [{ t: "delete" }]),
        u(0, [step, step, mutate], { late: ["read"] }),
        u(0, [{ t: "assign", frozen: false }]),
      ],
      faults: ["delay", "delay", "lost"],
    }),
    found: "P2 (found by RACE_FULL on the core of #15, seed -109428978): a save after a lost " +
      "reply kept expecting null, and brought back a session another process had deleted",
  },
  ...[memoryBackend, scheduledBackend].map((backend) => ({
    name: `C6 with lock: a lazy update reads what another update of its instance assigned ` +
      `before the lease was taken (${backend === memoryBackend ? "memory" : "scheduled"} storage)`,
    backend,
    program: program({
      lock: true,
      lazy: [false, true],
      updates: [
        u(1, [step, { t: "fire" }, { t: "assign", frozen: false }], { late: ["read"] }),
        u(1, [step, mutate]),
        u(0, []),
        u(0, [step]),
      ],
    }),
    found: "P6 (found by RACE_FULL on 85a7f07 and later, seed -1343669228): the second lazy " +
      "update got the first one's assigned value at once and changed it while the other " +
      "instance's update held the lease; C6 now says an update that has not assigned gets " +
      "the session only once its process holds the lease",
  })),
  {
    name: "C6 with lock: a lazy update reads what another update of its instance assigned " +
      "without reading, while another instance holds the key (memory storage)",
    backend: memoryBackend,
    program: blindLockRead,
    found: "P6 (the blind variant of seed -1343669228, caught once the model also checks " +
      "episodes that began with an assignment)",
  },
  {
    name: "C6 with lock: the same, blind variant (scheduled storage)",
    backend: scheduledBackend,
    program: blindLockRead,
    found: "P6, as above",
  },
  {
    name: "C1, C2: two writes given up by a timeout in a row, one process, with a merge " +
      "function (scheduled storage)",
    backend: scheduledBackend,
    program: program({
      mode: "merge",
      updates: [u(0, [mutate]), u(0, [mutate]), u(0, [mutate, step, step]), u(0, [])],
      faults: ["delay", "late", "delay", "ok"],
    }),
    found: "P2 (attack23 F1; found again by the focus config on cec3c44, seed 5, once the " +
      "scheduled storage gave calls up and the counter merge counted by n): the fence's own " +
      "lost write replaced the record of the first, whose late landing was then merged as " +
      "another process's change, counting it twice",
  },
];

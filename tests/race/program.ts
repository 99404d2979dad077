/**
 * Programs of the race suite and their generator: 1-3 bot instances (each its
 * own `session()` or `lazySession()` over one shared storage), a few chats,
 * and several updates, each a list of handler actions plus actions taken
 * after the update finished. Generated values are plain data, so fast-check
 * prints and shrinks them.
 *
 * Actions that only make sense lazily (a promise assignment, an un-awaited
 * read) are turned into their strict counterparts on strict instances by
 * the runner, so the generator needs no dependency between instances and
 * actions (and shrinks freely).
 *
 * @module
 */
import fc from "npm:fast-check@^4";
import type { Fault } from "./storage.ts";

/** How concurrent writes of different instances are handled (`onConflict`). */
export type Mode = "error" | "merge" | "overwrite";

export type Action =
  /** Awaits one scheduled step (another update or a storage reply may run). */
  | { t: "step" }
  /** Reads the session (lazy: awaits it). */
  | { t: "read" }
  /** Adds the action's own mark and increments the counter; `immer`: as a frozen copy. */
  | { t: "mutate"; immer: boolean }
  /** Assigns a new value (a new generation); `frozen`: deep-frozen. */
  | { t: "assign"; frozen: boolean }
  /** Lazy: assigns a promise of a new value, resolved (or rejected) by the scheduler. */
  | { t: "assignPromise"; reject: boolean }
  /** Assigns null: deletes the session. */
  | { t: "delete" }
  /** Throws: the update fails. */
  | { t: "throw" }
  /** Lazy: starts a read without awaiting it (`void ctx.session`). */
  | { t: "fire" };

/** What an update does with its `ctx` after it finished (after its middleware settled). */
export type LateAction = "read" | "mutate" | "assign";

export interface UpdateSpec {
  /** The instance it is sent to (taken modulo the number of instances). */
  inst: number;
  /** Its chat (taken modulo the number of chats), or null for an update without a key. */
  chat: number | null;
  /** Starts only after this earlier update (modulo its own index) settled. */
  after: number | null;
  actions: Action[];
  late: LateAction[];
}

export interface Program {
  mode: Mode;
  lock: boolean;
  /** One entry per instance: whether it uses lazySession(). */
  lazy: boolean[];
  /** One entry per chat: whether storage holds a session for it before the run. */
  seeded: boolean[];
  updates: UpdateSpec[];
  /** Faults of the scheduled storage, one per call, cycled. */
  faults: Fault[];
  /** Turns every change into a read: a run in which nothing may be written. */
  readOnly: boolean;
  /**
   * The scheduled storage serializes a written value when the write is
   * applied, not when it is called (as a client that queues requests would):
   * whatever the middleware hands to `write` must not change meanwhile (K2, V2).
   */
  lateSerialize: boolean;
}

/** What a generated program may contain. */
export interface ProgramShape {
  modes: readonly Mode[];
  /** Whether runs lock keys: always, never, or either. */
  lock: boolean | "either";
  minInstances: number;
  maxInstances: number;
  maxChats: number;
  maxUpdates: number;
  maxActions: number;
  /** Whether instances are lazy: always, never, or either (each). */
  lazy: boolean | "either";
  /** Whether the storage gets a fault plan. */
  faults: boolean;
  /** How often each fault appears in a plan, relative to the others. */
  faultMix: Readonly<Record<Fault, number>>;
  /** Whether updates without a key (inline queries) appear. */
  unkeyed: boolean;
  /** The handler actions that may appear (all by default). */
  actions: readonly Action["t"][];
  /** Whether updates touch the session after they finished. */
  late: boolean;
  /** Whether immer-style (frozen) values appear. */
  frozen: boolean;
}

export const DEFAULT_SHAPE: ProgramShape = {
  modes: ["error", "merge", "overwrite"],
  lock: false,
  minInstances: 1,
  maxInstances: 3,
  maxChats: 2,
  maxUpdates: 6,
  maxActions: 5,
  lazy: "either",
  faults: false,
  faultMix: { ok: 8, delay: 3, fail: 1, lost: 1, late: 1 },
  unkeyed: true,
  actions: ["step", "read", "mutate", "assign", "assignPromise", "delete", "throw", "fire"],
  late: true,
  frozen: true,
};

const actionsOf = (
  frozen: fc.Arbitrary<boolean>,
): { [K in Action["t"]]: { weight: number; arbitrary: fc.Arbitrary<Action> } } => ({
  step: { weight: 5, arbitrary: fc.constant({ t: "step" as const }) },
  read: { weight: 2, arbitrary: fc.constant({ t: "read" as const }) },
  mutate: {
    weight: 5,
    arbitrary: fc.record({ t: fc.constant("mutate" as const), immer: frozen }),
  },
  assign: {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("assign" as const), frozen }),
  },
  assignPromise: {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("assignPromise" as const),
      reject: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, fc.constant(true)),
    }),
  },
  delete: { weight: 1, arbitrary: fc.constant({ t: "delete" as const }) },
  throw: { weight: 1, arbitrary: fc.constant({ t: "throw" as const }) },
  fire: { weight: 1, arbitrary: fc.constant({ t: "fire" as const }) },
});

const late: fc.Arbitrary<LateAction[]> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<LateAction[]>([]) },
  {
    weight: 1,
    arbitrary: fc.array(fc.constantFrom<LateAction>("read", "mutate", "assign"), {
      minLength: 1,
      maxLength: 2,
    }),
  },
);

/** One fault of a plan, drawn by `mix`. */
function faultOf(mix: Readonly<Record<Fault, number>>): fc.Arbitrary<Fault> {
  const kinds = (Object.keys(mix) as Fault[]).filter((kind) => mix[kind] > 0);
  return fc.oneof(...kinds.map((kind) => ({ weight: mix[kind], arbitrary: fc.constant(kind) })));
}

/** The arbitrary of programs of a shape. */
export function programs(shape: Partial<ProgramShape> = {}): fc.Arbitrary<Program> {
  const sh = { ...DEFAULT_SHAPE, ...shape };
  const ACTIONS = actionsOf(sh.frozen ? fc.boolean() : fc.constant(false));
  const update: fc.Arbitrary<UpdateSpec> = fc.record({
    inst: fc.nat({ max: sh.maxInstances - 1 }),
    chat: sh.unkeyed
      ? fc.oneof(
        { weight: 12, arbitrary: fc.nat({ max: sh.maxChats - 1 }) },
        { weight: 1, arbitrary: fc.constant(null) },
      )
      : fc.nat({ max: sh.maxChats - 1 }),
    after: fc.oneof(
      { weight: 3, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.nat({ max: sh.maxUpdates }) },
    ),
    actions: fc.array(fc.oneof(...sh.actions.map((t) => ACTIONS[t])), {
      maxLength: sh.maxActions,
    }),
    late: sh.late ? late : fc.constant<LateAction[]>([]),
  });
  const lazyArb = sh.lazy === "either" ? fc.boolean() : fc.constant(sh.lazy);
  return fc.record({
    mode: fc.constantFrom(...sh.modes),
    lock: sh.lock === "either" ? fc.boolean() : fc.constant(sh.lock),
    lazy: fc.array(lazyArb, { minLength: sh.minInstances, maxLength: sh.maxInstances }),
    seeded: fc.array(fc.oneof({ weight: 2, arbitrary: fc.constant(true) }, fc.constant(false)), {
      minLength: 1,
      maxLength: sh.maxChats,
    }),
    updates: fc.array(update, { minLength: 1, maxLength: sh.maxUpdates }),
    faults: sh.faults ? fc.array(faultOf(sh.faultMix), { maxLength: 8 }) : fc.constant([]),
    readOnly: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, fc.constant(true)),
    lateSerialize: fc.boolean(),
  });
}

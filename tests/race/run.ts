/**
 * Runs one program: builds the bot instances (each: a recorder middleware,
 * its own `session()` or `lazySession()`, and an interpreter of the
 * program's actions), starts every update at a time the scheduler picks,
 * drives the scheduler until everything (late actions included) has
 * finished and nothing is left to run, then looks at storage and probes
 * every key in every instance. Everything observed goes into a
 * {@link RunTrace} for the checker (model.ts).
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type fc from "npm:fast-check@^4";
import type { Context } from "npm:grammy@^1.46";
import type { Update } from "npm:grammy@^1.46/types";
import {
  lazySession,
  session,
  SessionError,
  SessionKeyError,
  type SessionOptions,
} from "../../mod.ts";
import { createHarness, inlineQuery, message } from "../helpers/bot.ts";
import type { Backend, BackendFactory } from "./backends.ts";
import { Clock } from "./clock.ts";
import {
  counterMerge,
  type Data,
  deepFreeze,
  initialValue,
  isData,
  probeValue,
  seedValue,
  snapshot,
} from "./data.ts";
import type { Action, LateAction, Program } from "./program.ts";
import type { ScheduledStorage } from "./storage.ts";

export interface Touch {
  t: number;
  kind: "read" | "assign";
}
export interface MutationRec {
  mark: string;
  /** The generation of the value the mark was added to. */
  gen: string;
  /** When it was made. */
  t: number;
  /** When the handler asked for the value it went into (any assignment since may have detached it). */
  rt: number;
  /** Made immer-style: a frozen copy with the mark was assigned. */
  immer: boolean;
}
export interface AssignRec {
  /** The generation assigned; null for a delete. */
  gen: string | null;
  /** When the assignment was made. */
  t: number;
  promise: boolean;
  reject: boolean;
  /** When the assigned promise settled. */
  resolved?: number;
}
export interface LateRec {
  kind: LateAction;
  t: number;
  /** A late mutation that happened: its mark and the generation it went into. */
  mark?: string;
  gen?: string;
  /** A late assignment: its generation. */
  assigned?: string;
  /** What a late access threw synchronously (error name). */
  threw?: string;
  sessionError?: boolean;
  /** A late read whose promise rejected. */
  rejected?: boolean;
}
/** One access of a lazy `ctx.session` inside the handler (U2). */
export interface LazyAccess {
  /** Its touch (the tick taken right before the access). */
  t: number;
  /** Whether it gave a promise rather than the value. */
  thenable: boolean;
}
export interface KeyAccess {
  what: "read" | "assign";
  /** Whether it threw synchronously. */
  sync: boolean;
  keyError: boolean;
}

export interface UpdateTrace {
  idx: number;
  inst: number;
  chat: number | null;
  key: string | undefined;
  lazy: boolean;
  /** The actions it ran (after lazy-only actions were turned strict, and read-only runs). */
  actions: Action[];
  late: LateAction[];
  probe: boolean;
  start?: number;
  settle?: number;
  ok?: boolean;
  error?: unknown;
  hstart?: number;
  hend?: number;
  touches: Touch[];
  /** When the handler first held the value under the key's lease (lock runs). */
  guardStart?: number;
  /** Whether an awaited read of the session resolved (lazy). */
  loaded?: boolean;
  /** When the first awaited read resolved (lazy). */
  loadedAt?: number;
  /** When each awaited read resolved (lazy). */
  loads: number[];
  /** Every read of a lazy ctx.session in the handler, awaited or not. */
  lazyAccess: LazyAccess[];
  reads: { t: number; value: unknown }[];
  mutations: MutationRec[];
  assigns: AssignRec[];
  /** When an immer-style mutation assigned its frozen copy (it replaces the live value). */
  replaced: number[];
  fires: number[];
  lateRecs: LateRec[];
  keyAccess: KeyAccess[];
  /** An error that was not a BotError (escaped the harness). */
  escaped?: unknown;
}

export interface ProbeTrace {
  inst: number;
  key: string;
  expected: Data;
  seen?: unknown;
  update: UpdateTrace;
}

export interface RunTrace {
  program: Program;
  backend: string;
  instances: number;
  keys: string[];
  seeded: Set<string>;
  updates: UpdateTrace[];
  versionsBefore: Map<string, string | null>;
  final: Map<string, unknown>;
  versionsAfter: Map<string, string | null>;
  leasesHeld: string[];
  probeStart: number;
  probes: ProbeTrace[];
  /** Per key: version right after the probe's direct write, and after all probe updates. */
  probeVersions: Map<string, { before: string | null; after: string | null }>;
  unhandled: unknown[];
  stuck?: string;
  scheduled?: ScheduledStorage;
}

/** Lock options of lock runs: a ttl far above a run's length, a short wait. */
export const LOCK = { ttl: 4000, wait: 1000 };

class HandlerFailure extends Error {
  override name = "HandlerFailure";
}

class Stuck extends Error {
  override name = "Stuck";
}

/** One turn of the event loop (setTimeout would be clamped to 1-4 ms). */
export const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Waits for the next thing to happen when nothing is scheduled: a turn of
 * the event loop, and after many idle turns a real millisecond (real timers:
 * the lease's backoff, real storages' I/O).
 */
async function idleTurn(idle: number): Promise<void> {
  if (idle < 20) await macrotask();
  else await sleep(1);
}

/** Resolves scheduled tasks (and lets real timers run) until `done` settles. */
async function drive(s: fc.Scheduler, done: Promise<unknown>, deadline: number, what: string) {
  let finished = false;
  done.then(() => (finished = true), () => (finished = true));
  for (let idle = 0; !finished;) {
    if (s.count() > 0) {
      idle = 0;
      await s.waitNext(1);
      continue;
    }
    await idleTurn(idle++);
    if (Date.now() > deadline) throw new Stuck(`${what} did not finish in time`);
  }
}

/** Drives until nothing is scheduled for a few turns of the event loop in a row. */
async function quiesce(s: fc.Scheduler, deadline: number) {
  for (let idle = 0; idle < 3;) {
    if (s.count() > 0) {
      idle = 0;
      await s.waitNext(1);
      continue;
    }
    await idleTurn(idle++);
    if (Date.now() > deadline) throw new Stuck("the run did not become quiet");
  }
}

type Ctx = Context & { session: unknown };

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown>)?.then === "function";
}

function normalize(program: Program): UpdateTrace[] {
  const instances = program.lazy.length;
  const chats = program.seeded.length;
  return program.updates.map((spec, idx) => {
    const inst = spec.inst % instances;
    const lazy = program.lazy[inst];
    const chat = spec.chat === null ? null : spec.chat % chats;
    const actions = spec.actions.map((a): Action => {
      if (program.readOnly && ["mutate", "assign", "assignPromise", "delete"].includes(a.t)) {
        return { t: "read" };
      }
      if (!lazy && a.t === "assignPromise") return { t: "assign", frozen: false };
      if (!lazy && a.t === "fire") return { t: "read" };
      return a;
    });
    const late = chat === null
      ? []
      : spec.late.map((l): LateAction => program.readOnly ? "read" : l);
    return newTrace({ idx, inst, chat, lazy, actions, late, probe: false });
  });
}

function newTrace(
  fields: Pick<UpdateTrace, "idx" | "inst" | "chat" | "lazy" | "actions" | "late" | "probe">,
): UpdateTrace {
  return {
    ...fields,
    key: undefined,
    touches: [],
    reads: [],
    loads: [],
    lazyAccess: [],
    mutations: [],
    assigns: [],
    replaced: [],
    fires: [],
    lateRecs: [],
    keyAccess: [],
  };
}

export interface RunOptions {
  /** Where unhandled rejections of this run are collected. */
  unhandled: unknown[];
  run: number;
  budgetMs?: number;
}

/** Runs `program` on a fresh backend and returns what was observed. */
export async function runProgram(
  program: Program,
  s: fc.Scheduler,
  factory: BackendFactory,
  options: RunOptions,
): Promise<RunTrace> {
  const clock = new Clock();
  const backend = await factory(s, program, clock, options.run);
  try {
    return await execute(program, s, backend, clock, options);
  } finally {
    await backend.cleanup();
  }
}

async function execute(
  program: Program,
  s: fc.Scheduler,
  backend: Backend,
  clock: Clock,
  options: RunOptions,
): Promise<RunTrace> {
  const tick = () => clock.tick();
  const instances = program.lazy.length;
  const keyOf = (chat: number) => `${backend.prefix}${chat + 1}`;
  const keys = program.seeded.map((_, c) => keyOf(c));
  const seeded = new Set<string>();
  for (const [c, seed] of program.seeded.entries()) {
    if (seed) {
      await backend.put(keyOf(c), seedValue());
      seeded.add(keyOf(c));
    }
  }
  const versionsBefore = new Map<string, string | null>();
  for (const key of keys) versionsBefore.set(key, await backend.version(key));

  const updates = normalize(program);
  for (const u of updates) if (u.chat !== null) u.key = keyOf(u.chat);
  const byUpdateId = new Map<number, UpdateTrace>();
  /** The context each update was handled with, kept for its late actions. */
  const contexts = new Map<UpdateTrace, Ctx>();
  const probeOf = new Map<UpdateTrace, ProbeTrace>();

  // --- the handler's actions -------------------------------------------------
  const step = (label: string) => s.schedule(Promise.resolve(), label);
  const touch = (u: UpdateTrace, kind: Touch["kind"]) => {
    if (u.lazy) u.touches.push({ t: tick(), kind });
  };
  const set = (ctx: Ctx, value: unknown) => {
    ctx.session = value;
  };
  /** The session and when it was asked for; strict: synchronously, so nothing runs in between. */
  const get = (ctx: Ctx, u: UpdateTrace): [unknown, number] | Promise<[unknown, number]> => {
    if (!u.lazy) return [ctx.session, tick()];
    return getLazy(ctx, u);
  };
  const getLazy = async (ctx: Ctx, u: UpdateTrace): Promise<[unknown, number]> => {
    touch(u, "read");
    const got = ctx.session;
    u.lazyAccess.push({ t: u.touches.at(-1)!.t, thenable: isThenable(got) });
    let rt = tick();
    let value = await got;
    // Once loaded, ctx.session is the value itself (U2): take it fresh, so that
    // nothing assigned while the await resumed is overwritten by a stale copy.
    const again = ctx.session;
    if (!isThenable(again)) {
      value = again;
      rt = tick();
    }
    u.loaded = true;
    u.loadedAt ??= tick();
    u.loads.push(tick());
    // C6: the update holds the key once a read of storage delivered to it;
    // one that assigned before its read delivered works on its own value.
    if (
      u.guardStart === undefined && u.touches[0].kind === "read" &&
      !u.touches.some((t) => t.kind === "assign")
    ) u.guardStart = tick();
    return [value, rt];
  };

  async function act(ctx: Ctx, u: UpdateTrace, a: Action, j: number): Promise<void> {
    const name = `u${u.idx}`;
    switch (a.t) {
      case "step":
        await step(`${name} step ${j}`);
        return;
      case "read": {
        const [value] = await get(ctx, u);
        u.reads.push({ t: tick(), value: snapshot(value) });
        return;
      }
      case "mutate": {
        const got = get(ctx, u);
        const [v, rt] = Array.isArray(got) ? got : await got; // strict: no await in between
        if (!isData(v)) return; // deleted or never there: nothing to add to
        const mark = `${u.idx}.m${j}`;
        const immer = a.immer || Object.isFrozen(v) || Object.isFrozen(v.marks);
        if (immer) {
          touch(u, "assign");
          set(ctx, deepFreeze({ gen: v.gen, n: v.n + 1, marks: { ...v.marks, [mark]: 1 } }));
          u.replaced.push(tick());
        } else {
          v.n++;
          v.marks[mark] = 1;
        }
        u.mutations.push({ mark, gen: v.gen, t: tick(), rt, immer });
        return;
      }
      case "assign": {
        const value: Data = { gen: `${u.idx}.a${j}`, n: 0, marks: {} };
        touch(u, "assign");
        set(ctx, a.frozen ? deepFreeze(value) : value);
        u.assigns.push({ gen: value.gen, t: tick(), promise: false, reject: false });
        return;
      }
      case "assignPromise": {
        const value: Data = { gen: `${u.idx}.a${j}`, n: 0, marks: {} };
        const rec: AssignRec = { gen: value.gen, t: 0, promise: true, reject: a.reject };
        const promise = step(`${name} promise ${j}`).then(() => {
          rec.resolved = tick();
          if (a.reject) throw new HandlerFailure(`${name}: assigned promise ${j} rejects`);
          return value;
        });
        // The handler handed it over; whether the core awaits it is the core's business.
        if (a.reject) promise.catch(() => {});
        touch(u, "assign");
        set(ctx, promise);
        rec.t = tick();
        u.assigns.push(rec);
        return;
      }
      case "delete":
        touch(u, "assign");
        set(ctx, null);
        u.assigns.push({ gen: null, t: tick(), promise: false, reject: false });
        return;
      case "throw":
        throw new HandlerFailure(`${name} throws at action ${j}`);
      case "fire":
        touch(u, "read");
        u.lazyAccess.push({ t: u.touches.at(-1)!.t, thenable: isThenable(ctx.session) }); // never awaited
        u.fires.push(tick());
        return;
    }
  }

  async function handle(ctx: Ctx, u: UpdateTrace): Promise<void> {
    u.hstart = tick();
    if (!u.lazy) u.guardStart = u.hstart;
    try {
      for (const [j, a] of u.actions.entries()) await act(ctx, u, a, j);
    } finally {
      u.hend = tick();
    }
  }

  async function handleUnkeyed(ctx: Ctx, u: UpdateTrace): Promise<void> {
    u.hstart = tick();
    try {
      for (const [j, a] of u.actions.entries()) {
        if (a.t === "step") await step(`u${u.idx} step ${j}`);
        else if (a.t === "throw") throw new HandlerFailure(`u${u.idx} throws at action ${j}`);
        else {
          const what = ["read", "mutate", "fire"].includes(a.t) ? "read" : "assign";
          try {
            if (what === "read") void ctx.session; // as an un-awaited lazy access would
            else set(ctx, { gen: `${u.idx}.a${j}`, n: 0, marks: {} });
            u.keyAccess.push({ what, sync: false, keyError: false });
          } catch (err) {
            u.keyAccess.push({ what, sync: true, keyError: err instanceof SessionKeyError });
          }
        }
      }
    } finally {
      u.hend = tick();
    }
  }

  async function lateAct(ctx: Ctx, u: UpdateTrace, kind: LateAction, j: number) {
    await step(`u${u.idx} late ${kind} ${j}`);
    const rec: LateRec = { kind, t: 0 };
    const value = async () => {
      try {
        const v = ctx.session;
        return isThenable(v) ? await v : v;
      } catch (err) {
        if (err instanceof Error) rec.threw = err.name;
        rec.rejected = true;
        return undefined;
      }
    };
    if (kind === "read") {
      await value();
    } else if (kind === "mutate") {
      const v = await value();
      if (isData(v) && !Object.isFrozen(v) && !Object.isFrozen(v.marks)) {
        const mark = `${u.idx}.L${j}`;
        v.n++;
        v.marks[mark] = 1;
        rec.mark = mark;
        rec.gen = v.gen;
      }
    } else {
      const gen = `${u.idx}.LA${j}`;
      rec.assigned = gen;
      try {
        set(ctx, { gen, n: 0, marks: {} });
      } catch (err) {
        rec.threw = err instanceof Error ? err.name : String(err);
        rec.sessionError = err instanceof SessionError;
      }
    }
    rec.t = tick();
    u.lateRecs.push(rec);
  }

  // --- the instances ------------------------------------------------------------
  const harnesses = program.lazy.map((lazy, inst) => {
    const h = createHarness<Ctx>();
    h.bot.use(async (ctx, next) => {
      const u = byUpdateId.get(ctx.update.update_id)!;
      contexts.set(u, ctx);
      u.start = tick();
      if (u.key !== undefined && !u.lazy) u.touches.push({ t: u.start, kind: "read" });
      try {
        await next();
        u.ok = true;
      } catch (err) {
        u.ok = false;
        u.error = err;
        throw err;
      } finally {
        u.settle = tick();
      }
    });
    const opts: SessionOptions<Data> = {
      initial: initialValue,
      storage: backend.storage(inst),
      prefix: backend.prefix,
      onConflict: program.mode === "merge" ? counterMerge : program.mode,
      ...(program.lock ? { lock: LOCK } : {}),
    };
    // deno-lint-ignore no-explicit-any
    h.bot.use((lazy ? lazySession(opts) : session(opts)) as any);
    h.bot.use(async (ctx) => {
      const u = byUpdateId.get(ctx.update.update_id)!;
      const probe = probeOf.get(u);
      if (probe !== undefined) {
        u.hstart = tick();
        const v = u.lazy ? await ctx.session : ctx.session;
        probe.seen = snapshot(v);
        u.reads.push({ t: tick(), value: probe.seen });
        u.hend = tick();
      } else if (u.key === undefined) await handleUnkeyed(ctx, u);
      else await handle(ctx, u);
    });
    return h;
  });

  const send = async (u: UpdateTrace, update: Update) => {
    byUpdateId.set(update.update_id, u);
    try {
      await harnesses[u.inst].send(update);
    } catch (err) {
      u.escaped = err;
    }
  };

  const trace: RunTrace = {
    program,
    backend: backend.name,
    instances,
    keys,
    seeded,
    updates,
    versionsBefore,
    final: new Map(),
    versionsAfter: new Map(),
    leasesHeld: [],
    probeStart: 0,
    probes: [],
    probeVersions: new Map(),
    unhandled: options.unhandled,
    scheduled: backend.scheduled,
  };

  const budget = options.budgetMs ?? (program.lock ? 10_000 : 4_000);
  const deadline = Date.now() + budget;
  try {
    // --- the run ---------------------------------------------------------------
    const settled: Promise<void>[] = [];
    const finished: Promise<void>[] = [];
    for (const [idx, u] of updates.entries()) {
      const spec = program.updates[idx];
      const gate = spec.after !== null && idx > 0 ? settled[spec.after % idx] : Promise.resolve();
      const update = u.chat === null
        ? inlineQuery(1000 + idx, `u${idx}`)
        : message(u.chat + 1, `u${idx}`);
      const done = gate.then(() => step(`start u${idx}`)).then(() => send(u, update));
      settled.push(done);
      finished.push(done.then(async () => {
        for (const [j, kind] of u.late.entries()) {
          const ctx = contexts.get(u);
          if (ctx !== undefined) await lateAct(ctx, u, kind, j);
        }
      }));
    }
    await drive(s, Promise.all(finished), deadline, "the updates");
    await quiesce(s, deadline);

    // --- the end state -----------------------------------------------------------
    for (const key of keys) {
      trace.final.set(key, snapshot(await backend.get(key)));
      trace.versionsAfter.set(key, await backend.version(key));
      if (!(await backend.leaseFree(key))) trace.leasesHeld.push(key);
    }

    // --- probes: change storage directly, then a new update of each key in each
    // instance must see the change, and write nothing.
    if (backend.scheduled) backend.scheduled.faulty = false;
    trace.probeStart = tick();
    if (trace.leasesHeld.length === 0) {
      for (const key of keys) {
        const expected = probeValue(key);
        await backend.put(key, expected);
        const before = await backend.version(key);
        const chat = keys.indexOf(key);
        for (let inst = 0; inst < instances; inst++) {
          const u = newTrace({
            idx: updates.length + trace.probes.length,
            inst,
            chat,
            lazy: program.lazy[inst],
            actions: [],
            late: [],
            probe: true,
          });
          u.key = key;
          const probe: ProbeTrace = { inst, key, expected, update: u };
          probeOf.set(u, probe);
          trace.probes.push(probe);
          await drive(s, send(u, message(chat + 1, "probe")), deadline, `the probe of ${key}`);
        }
        await quiesce(s, deadline);
        trace.probeVersions.set(key, { before, after: await backend.version(key) });
      }
    }
  } catch (err) {
    if (!(err instanceof Stuck)) throw err;
    trace.stuck = err.message;
  }
  // Let rejections nobody handled surface before the checker looks.
  await macrotask();
  await macrotask();
  return trace;
}

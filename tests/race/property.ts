/**
 * The race property: generate a program and a schedule, run it, check the
 * trace against the model. A failing run throws a {@link RaceFailure} that
 * lists every violated rule and what each update did, so fast-check's report
 * (seed, path, shrunk program and the scheduler's order of tasks) comes with
 * an explanation.
 *
 * @module
 */
import fc from "npm:fast-check@^4";
import type { BackendFactory } from "./backends.ts";
import { check, type Violation } from "./model.ts";
import { type Program, programs, type ProgramShape } from "./program.ts";
import { runProgram, type RunTrace, type UpdateTrace } from "./run.ts";

/** Where `unhandledrejection` events go while a run is on. */
let sink: unknown[] | undefined;
let installed = false;

/**
 * Catches unhandled rejections for the race runs (and keeps Deno from
 * exiting on them); each is charged to the run that is on when it surfaces.
 */
export function catchUnhandledRejections(): void {
  if (installed) return;
  installed = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (sink === undefined) return; // not ours: let Deno report it
    event.preventDefault();
    sink.push(event.reason);
  });
}

export class RaceFailure extends Error {
  override name = "RaceFailure";
  constructor(readonly violations: Violation[], readonly trace: RunTrace) {
    super(describe(violations, trace));
  }
}

function outcome(u: UpdateTrace): string {
  if (u.start === undefined) return "never started";
  if (u.ok) return "ok";
  const err = u.error;
  return err instanceof Error ? `failed: ${err.name}: ${err.message.split("\n")[0]}` : "failed";
}

function describeUpdate(u: UpdateTrace): string {
  const what = [
    `u${u.idx}${u.probe ? " (probe)" : ""} instance ${u.inst} ${u.lazy ? "lazy" : "strict"}`,
    u.key === undefined ? "no key" : `key ${u.key}`,
    `[${u.start}-${u.settle}] handler [${u.hstart}-${u.hend}]`,
    outcome(u),
  ];
  const acts = u.actions.map((a) => a.t).join(" ");
  const marks = u.mutations.map((m) => `${m.mark}@${m.gen}(t${m.t})`).join(" ");
  const assigns = u.assigns.map((a) =>
    `${a.gen ?? "null"}(t${a.t}${a.promise ? ` promise, settled t${a.resolved}` : ""})`
  ).join(" ");
  const late = u.lateRecs.map((l) =>
    `${l.kind}(t${l.t}${l.mark ? ` ${l.mark}` : ""}${l.threw ? ` threw ${l.threw}` : ""})`
  ).join(" ");
  return `  ${what.join(", ")}\n    actions: ${acts || "-"}` +
    (marks ? `\n    marks: ${marks}` : "") +
    (assigns ? `\n    assigned: ${assigns}` : "") +
    (late ? `\n    late: ${late}` : "");
}

function describe(violations: Violation[], trace: RunTrace): string {
  const p = trace.program;
  const lines = [
    `${violations.length} violation(s) on ${trace.backend} storage ` +
    `(mode ${p.mode}${p.lock ? ", lock" : ""}, instances ${
      p.lazy.map((l) => l ? "lazy" : "strict").join("/")
    }${p.readOnly ? ", read-only" : ""}${
      p.faults.length ? `, faults ${p.faults.join(",")}` : ""
    }):`,
    ...violations.map((v) => `- [${v.property}; ${v.rules}] ${v.message}`),
    "updates:",
    ...trace.updates.map(describeUpdate),
    `final: ${[...trace.final].map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")}`,
  ];
  const s = trace.scheduled;
  if (s !== undefined) {
    lines.push(
      "storage calls:",
      ...s.log.map((c) =>
        `  #${c.seq} i${c.inst} ${c.method}(${c.key}) [${c.start}-${c.end}]` +
        `${c.applied !== undefined ? ` applied t${c.applied}` : ""}` +
        `${c.fault !== "ok" ? ` ${c.fault}` : ""}${c.matched === false ? " mismatch" : ""}`
      ),
    );
  }
  return lines.join("\n");
}

let runs = 0;

/** Runs one program on a backend and throws a RaceFailure if the model objects. */
export async function checkProgram(
  program: Program,
  s: fc.Scheduler,
  backend: BackendFactory,
): Promise<RunTrace> {
  const unhandled: unknown[] = [];
  sink = unhandled;
  let trace: RunTrace;
  try {
    trace = await runProgram(program, s, backend, { unhandled, run: ++runs });
  } finally {
    sink = undefined;
  }
  const violations = check(trace);
  if (violations.length > 0) throw new RaceFailure(violations, trace);
  return trace;
}

/** The property over programs of `shape` on `backend`. */
export function raceProperty(
  backend: BackendFactory,
  shape: Partial<ProgramShape> = {},
): fc.IAsyncPropertyWithHooks<[Program, fc.Scheduler]> {
  catchUnhandledRejections();
  return fc.asyncProperty(programs(shape), fc.scheduler(), async (program, s) => {
    await checkProgram(program, s, backend);
  });
}

/** The property of one fixed program under generated schedules. */
export function regressionProperty(
  backend: BackendFactory,
  program: Program,
): fc.IAsyncPropertyWithHooks<[fc.Scheduler]> {
  catchUnhandledRejections();
  return fc.asyncProperty(fc.scheduler(), async (s) => {
    await checkProgram(program, s, backend);
  });
}

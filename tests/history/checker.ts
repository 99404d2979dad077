/**
 * Judges a history of the kill tests (`recorder.ts`) against what storage
 * holds at the end, by the rules of docs/semantics.md. Every update
 * appended its unique id to its key's list, so the final list of a key says
 * exactly which updates are in storage, in the order their writes landed.
 *
 * For every key and mode:
 *
 * - **whole**: the stored count equals the length of the list, no id is
 *   there twice, and every id is an update of that key in the history
 *   (nothing half-written, nothing invented);
 * - **no acknowledged write lost**: every update told `ok` is in the list;
 * - **a failed update wrote nothing**: no update told `conflict` or `error`
 *   is in it;
 * - **each landed write holds what came before it**: the value the update
 *   in place `i` wrote is the list up to and including it (for a merge: the
 *   merge of everything before it), and its expected version is the version
 *   the write in place `i - 1` produced (`null` for the first);
 * - **based on the latest version** (conflict detection, `lock`): what the
 *   update in place `i` read is exactly the list before it;
 * - **never overlapping** (`lock`): from the moment an update of a key had
 *   read its session to the moment it started writing (or ended, or its
 *   process died), no update of that key in another process had read it.
 *
 * An update whose outcome is `unknown` (its process was killed while it ran,
 * or its write got no answer) is counted apart: in storage, it must be
 * there wholly, as above; absent, it must be absent wholly.
 *
 * @module
 */

import {
  chain,
  type Digest,
  EMPTY_CHAIN,
  type HistorySession,
  type Line,
  type Mode,
  type Outcome,
} from "./recorder.ts";

/** One write an update made: what it sent, and (unless its process died first) the answer. */
export interface Write {
  n: number;
  at0: number;
  /** The version it expected (hashed); `undefined` for an unconditional write. */
  expected?: string | null;
  value: Digest;
  at1?: number;
  result?: "ok" | "conflict" | "lease" | "threw";
  /** The version it produced (hashed), after `ok`. */
  version?: string | null;
  error?: string;
}

/** One update as the history tells it. */
export interface Update {
  id: string;
  proc: string;
  inc: number;
  mode: Mode;
  key: string;
  start: number;
  reads: Extract<Line, { t: "read" }>[];
  writes: Write[];
  end?: Extract<Line, { t: "end" }>;
  /** What the update was told; `unknown` when its process died before it ended. */
  outcome: Outcome;
}

/** A SIGKILL of one incarnation of a process, at `at` (ms since the epoch). */
export interface Kill {
  at: number;
  proc: string;
  inc: number;
}

/** Which rules a history is judged by. */
export type Rules = "detect" | "merge" | "lock";

/** The verdict on the updates of one mode. */
export interface Verdict {
  mode: Mode;
  rules: Rules;
  keys: number;
  updates: number;
  outcomes: Record<Outcome, number>;
  /** Updates whose outcome is unknown: in storage, and absent. */
  unknownIn: number;
  unknownOut: number;
  /** Ids of updates told `ok` that storage does not hold. */
  lost: string[];
  /** Every broken rule, one line each (`lost` ones included). */
  violations: string[];
  /** The longest time an update waited for its session (lease tries included), ms. */
  longestWait: number;
  /** The same over keys no killed process ever used, ms (`undefined`: no such key). */
  longestWaitUntouched: number | undefined;
  /**
   * The most lease attempts an update of such a key needed (1: its lease
   * was never found held by someone else).
   */
  mostTriesUntouched: number | undefined;
  /** What the updates told `error` were told (at most 10). */
  errors: string[];
  /**
   * For each update of a killed process that had its session (and so the
   * lease): ms from the kill to the next read of its key by another
   * process; `held` when it was killed before it started writing (the lease
   * was surely still its), else `writing` (the write that gives the lease up
   * may have landed).
   */
  deadLeaseClear: {
    key: string;
    /**
     * Ms from the kill to the last kill that may have left the lease held
     * (a later incarnation killed after taking it anew, before its read came
     * back); 0 when that is the kill itself. A dead lease must be gone a TTL
     * after that.
     */
    since: number;
    ms: number;
    /** When, from the kill, the lease attempt that got it started (ms). */
    tried: number;
    /**
     * When, from the kill, the last attempt of that reader that found the
     * lease held started (ms; `undefined`: its first attempt got it).
     */
    heldUntil: number | undefined;
    /** Whether only incarnations of the dead process use the key (no live competitor). */
    sole: boolean;
    held: "handler" | "writing";
  }[];
}

/** Reads every `*.jsonl` history file in `dir` into updates. */
export async function loadHistory(dir: string): Promise<Update[]> {
  const byId = new Map<string, Update>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".jsonl")) continue;
    const text = await Deno.readTextFile(`${dir}/${entry.name}`);
    const lines = text.split("\n");
    for (const [i, raw] of lines.entries()) {
      if (raw === "") continue;
      let line: Line;
      try {
        line = JSON.parse(raw);
      } catch (err) {
        // Only the last line of a killed process can be cut short.
        if (i === lines.length - 1) continue;
        throw new Error(`${entry.name}:${i + 1}: not JSON: ${raw.slice(0, 80)}`, { cause: err });
      }
      apply(byId, line);
    }
  }
  return [...byId.values()];
}

/** Adds one line to the updates it belongs to. */
export function apply(byId: Map<string, Update>, line: Line): void {
  if (line.t === "start") {
    byId.set(line.id, {
      id: line.id,
      proc: line.proc,
      inc: line.inc,
      mode: line.mode,
      key: line.key,
      start: line.at,
      reads: [],
      writes: [],
      outcome: "unknown",
    });
    return;
  }
  const update = byId.get(line.id);
  if (update === undefined) throw new Error(`a "${line.t}" line of ${line.id} before its start`);
  switch (line.t) {
    case "read":
      update.reads.push(line);
      break;
    case "write":
      update.writes.push({ n: line.n, at0: line.at0, expected: line.expected, value: line.value });
      break;
    case "wrote": {
      const write = update.writes.find((w) => w.n === line.n);
      if (write === undefined) throw new Error(`"wrote" of ${line.id} without its write`);
      Object.assign(write, { at1: line.at1, result: line.result, version: line.version });
      if (line.error !== undefined) write.error = line.error;
      break;
    }
    case "end":
      update.end = line;
      update.outcome = line.outcome;
      break;
  }
}

const EMPTY: Digest = { count: 0, n: 0, h: EMPTY_CHAIN };

function same(a: Digest | null, b: Digest): boolean {
  const x = a ?? EMPTY;
  return x.count === b.count && x.n === b.n && x.h === b.h;
}

function show(d: Digest | null): string {
  return d === null ? "nothing" : `count ${d.count}, ${d.n} ids`;
}

/** The write of `u` that landed, if any answered `ok`, else its last one (which may have). */
function landedWrite(u: Update): Write | undefined {
  const ok = u.writes.filter((w) => w.result === "ok");
  if (ok.length > 0) return ok.at(-1);
  return u.outcome === "unknown" ? u.writes.at(-1) : undefined;
}

/**
 * Judges the updates of one mode against `finals` (what storage holds per
 * key at the end), by `rules`.
 */
export function judge(
  updates: readonly Update[],
  finals: ReadonlyMap<string, HistorySession | undefined>,
  rules: Rules,
  kills: readonly Kill[] = [],
  lockTtl = Infinity,
): Verdict {
  const mode = updates[0]?.mode ?? "detect";
  const outcomes: Record<Outcome, number> = { ok: 0, conflict: 0, error: 0, unknown: 0 };
  const violations: string[] = [];
  const lost: string[] = [];
  let unknownIn = 0;
  let unknownOut = 0;
  const byKey = new Map<string, Update[]>();
  for (const u of updates) {
    outcomes[u.outcome]++;
    const list = byKey.get(u.key) ?? [];
    list.push(u);
    byKey.set(u.key, list);
  }
  for (const [key, ofKey] of byKey) {
    const stored = finals.get(key);
    const ids = stored?.ids ?? [];
    const where = new Map<string, number>();
    for (const [i, id] of ids.entries()) {
      if (where.has(id)) violations.push(`${key}: id ${id} is stored twice`);
      where.set(id, i);
    }
    if (stored !== undefined && stored.count !== ids.length) {
      violations.push(`${key}: stored count ${stored.count} but ${ids.length} ids`);
    }
    const byId = new Map(ofKey.map((u) => [u.id, u]));
    for (const id of ids) {
      if (!byId.has(id)) violations.push(`${key}: stored id ${id} is no update of this key`);
    }
    // The digest of the list up to each place.
    const prefix: Digest[] = [EMPTY];
    for (const [i, id] of ids.entries()) {
      prefix.push({ count: i + 1, n: i + 1, h: chain(prefix[i].h, id) });
    }
    for (const u of ofKey) {
      if (
        u.end !== undefined && u.reads.length > 0 && !same(u.end.saw, u.reads[0].value ?? EMPTY)
      ) {
        violations.push(
          `${key}: the handler of ${u.id} saw ${show(u.end.saw)}, storage gave ` +
            show(u.reads[0].value),
        );
      }
      const at = where.get(u.id);
      if (u.outcome === "ok" && at === undefined) {
        lost.push(u.id);
        violations.push(`${key}: acknowledged write of ${u.id} (${u.proc}) is lost`);
      }
      if ((u.outcome === "conflict" || u.outcome === "error") && at !== undefined) {
        violations.push(`${key}: ${u.id} was told "${u.outcome}" but is stored`);
      }
      if (u.outcome === "unknown") at === undefined ? unknownOut++ : unknownIn++;
      if (at === undefined) continue;
      const write = landedWrite(u);
      if (write === undefined) {
        violations.push(`${key}: ${u.id} is stored, but it never wrote`);
        continue;
      }
      if (!same(write.value, prefix[at + 1])) {
        violations.push(
          `${key}: ${u.id} wrote ${show(write.value)}, but the list up to it has ${at + 1}`,
        );
      }
      if (write.expected !== undefined) {
        const before = at === 0 ? undefined : byId.get(ids[at - 1]);
        const previous = before === undefined ? undefined : landedWrite(before);
        const expected = at === 0 ? null : previous?.result === "ok" ? previous.version : "?";
        if (expected !== "?" && write.expected !== expected) {
          violations.push(
            `${key}: ${u.id} wrote over version ${write.expected}, but the version before it ` +
              `was ${expected} (written by ${before?.id ?? "nobody"})`,
          );
        }
      }
      if (rules !== "merge" && u.reads.length > 0 && !same(u.reads[0].value, prefix[at])) {
        violations.push(
          `${key}: ${u.id} (${u.outcome}) was based on ${show(u.reads[0].value)}, ` +
            `not on the latest (${at} ids)`,
        );
      }
    }
    if (rules === "lock") violations.push(...overlaps(key, ofKey, lockTtl));
  }
  // Waits, and how long the leases of killed processes kept their keys.
  const killed = new Map(kills.map((k) => [`${k.proc}.${k.inc}`, k]));
  const touched = new Set(
    updates.filter((u) => killed.has(`${u.proc}.${u.inc}`)).map((u) => u.key),
  );
  let longestWait = 0;
  let longestWaitUntouched: number | undefined;
  let mostTriesUntouched: number | undefined;
  for (const u of updates) {
    if (u.reads.length === 0) continue;
    const wait = u.reads[0].at1 - u.start;
    longestWait = Math.max(longestWait, wait);
    if (touched.has(u.key)) continue;
    longestWaitUntouched = Math.max(longestWaitUntouched ?? 0, wait);
    mostTriesUntouched = Math.max(mostTriesUntouched ?? 0, u.reads[0].tries);
  }
  const deadLeaseClear: Verdict["deadLeaseClear"] = [];
  if (rules === "lock") {
    for (const u of updates) {
      const kill = killed.get(`${u.proc}.${u.inc}`);
      if (kill === undefined || u.end !== undefined || u.reads.length === 0) continue;
      if (u.writes.some((w) => w.result === "ok")) continue; // saved, and the lease given up
      const next = byKey.get(u.key)!
        .filter((v) => v !== u && v.reads.length > 0 && v.reads[0].at1 >= kill.at)
        .sort((a, b) => a.reads[0].at1 - b.reads[0].at1)[0];
      if (next === undefined) continue;
      // A later incarnation may have taken the lease anew and been killed
      // too, before its read came back (it then never recorded a read): its
      // lease runs from its own kill. The last such kill before the reader's
      // successful attempt started.
      let lastKill = kill.at;
      for (const v of byKey.get(u.key)!) {
        const k = killed.get(`${v.proc}.${v.inc}`);
        if (v.reads.length > 0 || k === undefined || v.start >= k.at) continue;
        if (k.at > lastKill && k.at <= next.reads[0].last0) lastKill = k.at;
      }
      deadLeaseClear.push({
        key: u.key,
        since: lastKill - kill.at,
        ms: next.reads[0].at1 - kill.at,
        tried: Math.max(0, next.reads[0].last0 - kill.at),
        heldUntil: next.reads[0].miss0 === undefined ? undefined : next.reads[0].miss0 - kill.at,
        sole: byKey.get(u.key)!.every((v) => v.proc === u.proc),
        held: u.writes.length === 0 ? "handler" : "writing",
      });
    }
  }
  return {
    mode,
    rules,
    keys: byKey.size,
    updates: updates.length,
    outcomes,
    unknownIn,
    unknownOut,
    lost,
    violations,
    longestWait,
    longestWaitUntouched,
    mostTriesUntouched,
    errors: updates.filter((u) => u.outcome === "error").slice(0, 10)
      .map((u) => `${u.id}: ${u.end?.error}`),
    deadLeaseClear,
  };
}

/**
 * Where the updates of `key` of different processes overlap. Each holds the
 * key from its first read's answer: one whose write landed (only while its
 * lease was held, and a lease that lapsed cannot be renewed) until that
 * write started; any other (failed, or its process died) until it started
 * writing, or until its lease could expire at the earliest, `lockTtl` after
 * the try that took it started, whichever comes first (its renewals may
 * have failed).
 */
function overlaps(key: string, ofKey: readonly Update[], lockTtl: number): string[] {
  const spans = ofKey.flatMap((u) => {
    if (u.reads.length === 0) return [];
    const from = u.reads[0].at1;
    const landed = u.writes.some((w) => w.result === "ok");
    const to = landed
      ? u.writes[0].at0
      : Math.min(u.writes[0]?.at0 ?? Infinity, u.reads[0].last0 + lockTtl);
    return Number.isFinite(to) ? [{ u, from, to }] : [];
  }).sort((a, b) => a.from - b.from);
  const found: string[] = [];
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length && spans[j].from < spans[i].to; j++) {
      const a = spans[i];
      const b = spans[j];
      if (a.u.proc === b.u.proc && a.u.inc === b.u.inc) continue;
      if (b.to > a.from) {
        found.push(
          `${key}: ${a.u.id} held it ${a.from}..${a.to} and ${b.u.id} ${b.from}..${b.to}`,
        );
      }
    }
  }
  return found;
}

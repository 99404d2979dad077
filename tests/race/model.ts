/**
 * The reference model of docs/semantics.md and the checker of one run.
 *
 * The model does not replay the middleware (the rules leave it free to pick
 * when a save starts or how often it reads); it states what any run that
 * keeps the rules must show, from what the runner and the storage observed:
 *
 * - Every update of a keyed chat has an interval, from the moment the first
 *   middleware saw it to the moment it settled. The intervals of one key in
 *   one instance that overlap form an **episode**: the longest stretch during
 *   which the key may be non-idle there, so the most one live value can be
 *   shared (K1, K3; "idle" in the table of states). Nothing may cross from
 *   one episode to the next.
 * - Data say where they came from (tests/race/data.ts): `gen` is the
 *   assignment (or seed, or `initial()`) a value descends from, each mark
 *   names the mutation that made it, and `n === |marks|` for every value a
 *   handler or the counter merge makes.
 * - A change is **allowed in storage** when its update succeeded, or when the
 *   rules let it out anyway: K3 (another update of its episode succeeded and
 *   settled after the change was made, so its save may have carried it), or a
 *   write of its episode whose reply was lost (it landed). A late mutation
 *   never is: it changes a copy (U7). A promise
 *   assignment takes effect when it resolves unless the update assigned
 *   again before (U3); a rejected or superseded one never does. A late
 *   assignment never does (U7).
 *
 * Properties, and the rules each checks:
 *
 * - **P1 no unhandled rejection, nothing stuck** (U6, U8): no rejection
 *   reaches `unhandledrejection`; every update and late action finishes.
 * - **P2 acknowledged changes stay** (U3, U4, K2, C1, C2, C3, C4): a mark of a
 *   successful update is in the final value while the final value is still of
 *   the generation the mark went into (unless an assignment of its episode
 *   came after it, or with `"overwrite"` or blind writes across instances,
 *   where last write wins: C4, C5); a successful mutation is not followed by
 *   the key's removal unless a delete was allowed; the only assigner's last
 *   assignment is what storage holds (U3); `n === |marks|` (the merge keeps
 *   the counter exact, C2); with the scheduled storage, every applied write
 *   keeps every mark of the value it replaced when it has its generation
 *   (lost update, C1/C2/K2: a conditional write, or a write of the same
 *   instance right after its own), and no generation comes back once
 *   replaced by another (C1, with "error"; after a delete it may: versions are
 *   null again; a merge may let a replacement win); with conflict detection every unconditional write belongs
 *   to an episode with a blind assignment (C1, C5).
 * - **P3 reading writes nothing** (U4, U2, C1): a key no update changed keeps
 *   its version; with the scheduled storage an episode without changes makes
 *   no write or delete call and no update of it fails with a conflict (a read
 *   never conflicts), and a lazy episode that never touched the session makes
 *   no storage call at all (U2); `initial()` untouched is never stored (U4).
 * - **P4 a failed update changes nothing beyond K3** (U5, K3, U3, U1, U7, C3):
 *   every generation and mark in the final value (and, with the scheduled
 *   storage, in every applied write) is allowed in storage (see above); a
 *   seeded key loses its session only through an allowed delete, and holds an
 *   `initial()` value only after some delete (U1: a failed read never puts
 *   `initial()` in place of stored data); a rejected promise assignment fails
 *   its update (U3). A frozen merge reported as failed (C3) shows up here: its
 *   mark is in storage although its update failed.
 * - **P5 nothing left behind** (C6, idle state, K1): when all is done no lease
 *   is held; after storage is changed directly, a new read-only update of each
 *   key in each instance sees the change and writes nothing; with the
 *   scheduled storage, every episode whose first touch was a read (and that
 *   used the value) read storage.
 * - **P6 locking excludes** (C6): with `lock`, the handlers of one key never
 *   hold the session at the same time in two instances (strict: the whole
 *   handler; lazy: from the first awaited read, in episodes that began with a
 *   read, for updates that did not assign before that read delivered: those
 *   work on their own value; keys whose lease was taken over after expiring
 *   are left out).
 * - **P7 after the end** (U7, U6): an assignment after the update settled
 *   throws a `SessionError`; a late read of a lazy session never loaded
 *   rejects; with the scheduled storage, every storage call of an instance
 *   for a key (lease renewals and releases aside) starts and settles within
 *   one update of that key in that instance (the middleware waits for what
 *   it started, and nothing after the end reaches storage).
 * - **P8 no key** (U8): on an update without a key, touching `ctx.session`
 *   throws a `SessionKeyError` synchronously.
 *
 * Added where docs/semantics.md decided what the first version left open
 * (tests/race/README.md lists them): the last effective assignment of any
 * update wins (U3, P2), a rejection superseded before it settled does not
 * fail its update (U3, P4), an update joining a deleted live value reads
 * initial() (K1, P2), lazy reads give a promise first and the value once
 * the update has it (U2, P2), a late mutation reaches no read (U7, P7), a
 * write never holds a mutation made after it was called (K2, V2, P2, with
 * `lateSerialize`), a failed update's change saved by a later save of its
 * slot stays (K3, P2), unconditional writes after an acknowledged blind
 * write are lost updates (C1, P2), and a conflict needs another instance's
 * write (C1, P3).
 *
 * A1 (only public methods) holds for the scheduled storage by construction:
 * it is a plain object, so every call the checks count is one of its public
 * methods. V1/V2 are not exercised (all values are JSON data).
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";
import { SessionConflictError } from "../../mod.ts";
import { isData, SEED_MARK } from "./data.ts";
import { keyOfTurn } from "../../src/turns.ts";
import type { RunTrace, UpdateTrace } from "./run.ts";
import { type CallRecord, DATA_METHODS, READ_METHODS, WRITE_METHODS } from "./storage.ts";

export interface Violation {
  property: string;
  rules: string;
  message: string;
}

interface Episode {
  inst: number;
  key: string;
  start: number;
  end: number;
  members: UpdateTrace[];
}

type Origin =
  | { u: UpdateTrace; late: false; t: number; assign?: number }
  | { u: UpdateTrace; late: true; t: number };

const P1 = "P1 no unhandled rejection, nothing stuck";
const P2 = "P2 acknowledged changes stay";
const P3 = "P3 reading writes nothing";
const P4 = "P4 a failed update changes nothing beyond K3";
const P5 = "P5 nothing left behind";
const P6 = "P6 locking excludes";
const P7 = "P7 after the end";
const P8 = "P8 no key";

const json = (v: unknown) => v === undefined ? "nothing" : JSON.stringify(v);
const errorText = (err: unknown) =>
  err instanceof Error ? `${err.name}: ${err.message.split("\n")[0]}` : String(err);

/** Checks one run; returns every violation found (empty: the run keeps the rules). */
export function check(trace: RunTrace): Violation[] {
  return new Checker(trace).run();
}

class Checker {
  readonly out: Violation[] = [];
  readonly keyed: UpdateTrace[];
  readonly all: UpdateTrace[];
  readonly episodes: Episode[] = [];
  readonly episodeOf = new Map<UpdateTrace, Episode>();
  readonly origins = new Map<string, Origin>();
  readonly lost: CallRecord[];
  readonly log: CallRecord[];
  readonly multi: boolean;

  constructor(readonly t: RunTrace) {
    this.all = [...t.updates, ...t.probes.map((p) => p.update)];
    this.keyed = t.updates.filter((u) => u.key !== undefined && u.start !== undefined);
    this.log = t.scheduled?.log ?? [];
    this.lost = this.log.filter((c) =>
      (c.fault === "lost" || c.fault === "late") && c.applied !== undefined &&
      WRITE_METHODS.has(c.method)
    );
    this.multi = t.instances > 1;
    this.#episodes();
    for (const u of t.updates) {
      for (const m of u.mutations) this.origins.set(m.mark, { u, late: false, t: m.t });
      u.assigns.forEach((a, j) => {
        if (a.gen !== null) this.origins.set(a.gen, { u, late: false, t: a.t, assign: j });
      });
      for (const l of u.lateRecs) {
        if (l.mark) this.origins.set(l.mark, { u, late: true, t: l.t });
        if (l.assigned) this.origins.set(l.assigned, { u, late: true, t: l.t });
      }
    }
  }

  #episodes(): void {
    const groups = new Map<string, UpdateTrace[]>();
    for (const u of this.keyed) {
      const id = `${u.inst}\u0000${u.key}`;
      groups.set(id, [...groups.get(id) ?? [], u]);
    }
    for (const list of groups.values()) {
      list.sort((a, b) => a.start! - b.start!);
      let ep: Episode | undefined;
      for (const u of list) {
        const end = u.settle ?? Infinity;
        if (ep === undefined || u.start! > ep.end) {
          ep = { inst: u.inst, key: u.key!, start: u.start!, end, members: [] };
          this.episodes.push(ep);
        }
        ep.end = Math.max(ep.end, end);
        ep.members.push(u);
        this.episodeOf.set(u, ep);
      }
    }
  }

  v(property: string, rules: string, message: string): void {
    this.out.push({ property, rules, message });
  }

  name(u: UpdateTrace): string {
    const where = u.key === undefined ? "no key" : `key ${u.key}`;
    return `u${u.idx} (instance ${u.inst}, ${u.lazy ? "lazy" : "strict"}, ${where})`;
  }

  // --- what the rules allow in storage -------------------------------------------

  /** K3 or a lost reply: a save of u's episode may have carried a change made at `t`. */
  savedAfter(u: UpdateTrace, t: number): boolean {
    const ep = this.episodeOf.get(u);
    if (ep === undefined) return false;
    if (ep.members.some((w) => w !== u && w.ok === true && (w.settle ?? Infinity) > t)) {
      return true;
    }
    // A write given up by a timeout may land after the episode: it carries
    // what was made before it was sent.
    return this.lost.some((c) =>
      c.inst === u.inst && c.key === u.key &&
      (c.fault === "late"
        ? c.matched !== false && c.start > t && c.start <= ep.end
        : c.applied! > t && c.applied! <= ep.end)
    );
  }

  /** When assignment j of u took effect; undefined if it never did (U3). */
  effective(u: UpdateTrace, j: number): number | undefined {
    const a = u.assigns[j];
    if (!a.promise) return a.t;
    if (a.reject || a.resolved === undefined) return undefined;
    const next = u.assigns[j + 1];
    if (next !== undefined && next.t < a.resolved) return undefined;
    // Another update's assignment to the shared value in between also supersedes it.
    const others = (this.episodeOf.get(u)?.members ?? []).filter((w) => w !== u);
    const between = (t: number) => t > a.t && t < a.resolved!;
    if (others.some((w) => w.assigns.some((b) => between(b.t)) || w.replaced.some(between))) {
      return undefined;
    }
    return a.resolved;
  }

  /** Whether assignment j is the last of u that took effect (later ones never did). */
  lastEffective(u: UpdateTrace, j: number): boolean {
    for (let k = j + 1; k < u.assigns.length; k++) {
      if (this.effective(u, k) !== undefined) return false;
    }
    return true;
  }

  /** Why assignment j of u may not be in storage, or undefined if it may. */
  assignBlocked(u: UpdateTrace, j: number): string | undefined {
    const eff = this.effective(u, j);
    if (eff === undefined) {
      return u.assigns[j].reject
        ? "a rejected promise assignment"
        : "a promise assignment superseded by a later assignment before it resolved (U3)";
    }
    if (this.lastEffective(u, j) && u.ok) return undefined;
    if (this.savedAfter(u, eff)) return undefined;
    return u.ok
      ? "not its update's last assignment, and no other update of its episode saved after it"
      : "its update failed, and no other update of its episode saved after it (U5, K3)";
  }

  /** Why `gen` may not be stored under `key`, or undefined if it may. */
  genBlocked(gen: string, key: string): string | undefined {
    if (gen === "seed") return this.t.seeded.has(key) ? undefined : "a seed of another key";
    if (gen === "init") return undefined;
    const o = this.origins.get(gen);
    if (o === undefined) return "made by nobody in this run";
    if (o.u.key !== key) return `made by ${this.name(o.u)}, of another key`;
    if (o.late) return `assigned by ${this.name(o.u)} after it finished (U7)`;
    const why = this.assignBlocked(o.u, o.assign!);
    if (why === undefined) return undefined;
    // An immer-style mutation assigns a copy of the value it read, generation included.
    const copied = this.keyed.some((u) =>
      u.key === key &&
      u.mutations.some((m) =>
        m.immer && m.gen === gen && this.markBlocked(m.mark, key) === undefined
      )
    );
    return copied ? undefined : `assigned by ${this.name(o.u)}: ${why}`;
  }

  markBlocked(mark: string, key: string): string | undefined {
    if (mark === SEED_MARK) return this.t.seeded.has(key) ? undefined : "a seed of another key";
    const o = this.origins.get(mark);
    if (o === undefined) return "made by nobody in this run";
    if (o.u.key !== key) return `made by ${this.name(o.u)}, of another key`;
    if (o.late) {
      return `made by ${
        this.name(o.u)
      } after it finished, on what ctx.session gave then (a copy: U7)`;
    }
    if (o.u.ok || this.savedAfter(o.u, o.t)) return undefined;
    return `made by ${this.name(o.u)}, which failed (${
      errorText(o.u.error)
    }), and no other update of its episode saved after it (U5, K3)`;
  }

  deletes(key: string): { u: UpdateTrace; j: number }[] {
    const out: { u: UpdateTrace; j: number }[] = [];
    for (const u of this.keyed) {
      if (u.key === key) u.assigns.forEach((a, j) => a.gen === null && out.push({ u, j }));
    }
    return out;
  }

  allowedDelete(key: string): boolean {
    return this.deletes(key).some(({ u, j }) => this.assignBlocked(u, j) === undefined);
  }

  /**
   * A lazy update that assigned before any read of it completed (first touch an
   * assignment, or an assignment while an un-awaited read was in flight): its
   * write may be unconditional (C5).
   */
  blind(u: UpdateTrace): boolean {
    if (!u.lazy) return false;
    if (u.touches[0]?.kind === "assign") return true;
    const loaded = u.loadedAt ?? Infinity;
    return u.assigns.some((a) => a.t < loaded) || u.replaced.some((r) => r < loaded);
  }

  /**
   * Whether a merge kept the seed with `mark` merged onto it after a delete
   * or a blind write of `key` failed without an answer: the next save merges
   * the live value as made from nothing (no base), so what storage holds
   * stays, with the value merged on top, also when a delete in the live value
   * came before (C1: a delete that did not land is dropped with its update;
   * a blind write's outcome cannot be told).
   */
  deleteDropped(key: string, final: { marks: Record<string, unknown> }, mark: string): boolean {
    return this.t.program.mode === "merge" && final.marks[mark] !== undefined &&
      this.log.some((c) =>
        c.key === key &&
        (c.method === "delete" || c.method === "deleteIfVersion" || c.method === "write") &&
        (c.fault === "fail" || c.fault === "lost" || c.fault === "late")
      );
  }

  /**
   * Whether another instance's marks may be lost for good: with "overwrite"
   * (C4). A blind (unconditional, C5) write makes later saves of its slot
   * conditional (C1), also when it failed without an answer.
   */
  lossAllowed(): boolean {
    return this.multi && this.t.program.mode === "overwrite";
  }

  /** When u joined the key's shared state (lazy: its first touch; strict: by its handler's start). */
  joinedAt(u: UpdateTrace): number | undefined {
    return u.lazy ? u.touches[0]?.t : u.hstart;
  }

  /** Whether u touched ctx.session in its handler (so that its end saves). */
  touchedSession(u: UpdateTrace): boolean {
    return u.actions.some((a) => a.t !== "step" && a.t !== "throw");
  }

  /**
   * K3: an update of the same instance and key that was using the shared
   * value when the failing update u made mutation m, and whose handler ended
   * after m and whose save succeeded: its save started after m, so it wrote
   * m (unless an assignment detached the value, see assignedAfter).
   */
  k3Saver(u: UpdateTrace, m: UpdateTrace["mutations"][number]): UpdateTrace | undefined {
    return this.keyed.find((w) => {
      const joined = this.joinedAt(w);
      return w !== u && w.inst === u.inst && w.key === u.key && w.ok === true &&
        w.hend !== undefined && w.hend > m.t && joined !== undefined &&
        joined < (u.hend ?? -Infinity) && this.touchedSession(w);
    });
  }

  /**
   * Whether an immer-style mutation on the key may have copied a stale value:
   * its update awaited the session, and another assignment of its episode came
   * while the await resumed; its frozen copy then replaces newer data (legal).
   */
  staleCopies(key: string): boolean {
    return this.keyed.some((u) =>
      u.key === key &&
      u.mutations.some((m) =>
        m.immer && (this.episodeOf.get(u)?.members ?? []).some((w) =>
          w.assigns.some((a) => a.t > m.rt && a.t < m.t - 1) ||
          w.replaced.some((r) => r > m.rt && r < m.t - 1)
        )
      )
    );
  }

  /**
   * Whether a delta merge may have counted a write without an answer twice:
   * it landed, and another instance wrote the key after it, so a read cannot
   * tell "landed, then written over" from "never landed" (C1: taken as never
   * landed). Without such a write the count stays exact.
   */
  lostThenOverwritten(key: string): boolean {
    return this.lost.some((c) =>
      c.key === key && c.matched !== false &&
      this.log.some((w) =>
        w.key === key && w.inst !== c.inst && WRITE_METHODS.has(w.method) &&
        w.applied !== undefined && w.applied > c.applied! && w.matched !== false
      )
    );
  }

  // --- checks -------------------------------------------------------------------------

  run(): Violation[] {
    const t = this.t;
    if (t.unhandled.length > 0) {
      this.v(P1, "U6, U8", `unhandled rejection(s): ${t.unhandled.map(errorText).join("; ")}`);
    }
    if (t.stuck !== undefined) this.v(P1, "U6", `stuck: ${t.stuck}`);
    for (const u of this.all) {
      if (u.escaped !== undefined) {
        this.v(P1, "U6", `${this.name(u)}: error outside bot.catch: ${errorText(u.escaped)}`);
      }
    }
    for (const key of t.keys) {
      const final = t.final.get(key);
      this.value(key, final, "the final value");
      if (final === undefined && t.seeded.has(key) && !this.allowedDelete(key)) {
        this.v(P4, "U5, K3", `${key}: its session is gone, but no allowed delete was made`);
      }
    }
    this.persistence();
    this.history();
    this.readOnly();
    this.leftovers();
    this.locks();
    this.late();
    this.unkeyed();
    this.lazyReads();
    this.reinit();
    this.lateCopies();
    this.spuriousConflicts();
    for (const u of t.updates) {
      const last = u.assigns.at(-1);
      // Superseded (by any assignment of its episode) before it settled, a
      // rejected promise may be ignored: U3 does not say (left open).
      if (last?.promise && last.reject && u.ok && !this.supersededInEpisode(u, last)) {
        this.v(P4, "U3", `${this.name(u)} succeeded although its assigned promise rejected`);
      }
      // A rejected promise that another assignment (of any update of the key)
      // superseded before it settled never applies, and does not fail its update.
      u.assigns.forEach((a) => {
        if (!a.promise || !a.reject || a.resolved === undefined || u.ok !== false) return;
        const j = a.gen!.split(".a")[1];
        if (
          !(u.error instanceof Error) ||
          u.error.message !== `u${u.idx}: assigned promise ${j} rejects`
        ) {
          return;
        }
        if (this.supersededBefore(u, a, a.resolved)) {
          this.v(
            P4,
            "U3",
            `${
              this.name(u)
            } failed with the rejection of its promise assignment ${a.gen}, which a later assignment had superseded before it settled`,
          );
        }
      });
    }
    return this.out;
  }

  /** P4 (and the value-level parts of P2, P3) for one stored value. */
  value(key: string, value: unknown, where: string): void {
    if (value === undefined) return;
    if (!isData(value)) {
      this.v(P4, "U5", `${key}: ${where} is not a session of this program: ${json(value)}`);
      return;
    }
    const gen = this.genBlocked(value.gen, key);
    if (gen !== undefined) {
      this.v(
        P4,
        "U3, U5, K3, U7",
        `${key}: ${where} ${json(value)} is of generation ${value.gen}, ${gen}`,
      );
    }
    for (const mark of Object.keys(value.marks)) {
      const why = this.markBlocked(mark, key);
      if (why !== undefined) {
        this.v(P4, "U5, K3, U7, C3", `${key}: ${where} ${json(value)} holds mark ${mark}, ${why}`);
      }
    }
    const count = Object.keys(value.marks).length;
    if (value.n !== count && !(this.t.program.mode === "merge" && this.lostThenOverwritten(key))) {
      this.v(P2, "C2", `${key}: ${where} ${json(value)} has n=${value.n} for ${count} marks`);
    }
    if (value.gen === "init" && count === 0) {
      this.v(P3, "U4", `${key}: ${where} is an untouched initial value, stored`);
    }
    if (value.gen === "init" && this.t.seeded.has(key) && this.deletes(key).length === 0) {
      this.v(
        P4,
        "U1",
        `${key}: ${where} ${
          json(value)
        } is an initial value, but storage held a session and nobody deleted it`,
      );
    }
  }

  /** P2 on the final state. */
  persistence(): void {
    const t = this.t;
    for (const key of t.keys) {
      const final = t.final.get(key);
      const updates = this.keyed.filter((u) => u.key === key);
      const assigners = updates.filter((u) => u.assigns.length > 0 || u.replaced.length > 0);
      for (const u of updates) {
        for (const m of u.mutations) {
          const saver = u.ok ? undefined : this.k3Saver(u, m);
          if (!u.ok && saver === undefined) continue;
          const by = u.ok ? "succeeded" : `failed, but ${this.name(saver!)} saved after it (K3)`;
          if (final === undefined) {
            if (!this.allowedDelete(key)) {
              this.v(
                P2,
                "U4, K2",
                `${key}: ${
                  this.name(u)
                } ${by} with mark ${m.mark}, but nothing is stored and no allowed delete was made`,
              );
            }
            continue;
          }
          if (!isData(final) || this.lossAllowed() || this.assignedAfter(u, m.rt)) continue;
          if (this.staleCopies(key)) continue;
          if (final.gen === m.gen && final.marks[m.mark] === undefined) {
            if (m.gen === "init" && this.deletes(key).length > 0) continue;
            this.v(
              P2,
              "U4, K2, C1, C2, C3",
              `${key}: ${
                this.name(u)
              } ${by}, but its mark ${m.mark} is missing from the final value ${
                json(final)
              } of the same generation (lost update)`,
            );
          }
          if (final.gen === "seed" && m.gen !== "seed" && !this.deleteDropped(key, final, m.mark)) {
            this.v(
              P2,
              "C1, K2",
              `${key}: the seed came back (${json(final)}) after ${
                this.name(u)
              } saved generation ${m.gen}`,
            );
          }
        }
      }
      this.lastAssignment(key, updates, assigners, final);
    }
  }

  /**
   * U3 on the final state: when one instance made every change of the key and
   * every update of the key succeeded, storage holds the generation of the
   * last assignment that took effect, by any update (a delete: nothing, or a
   * new initial value, K1); an immer-style copy assigns the generation it
   * copied.
   */
  lastAssignment(
    key: string,
    updates: UpdateTrace[],
    assigners: UpdateTrace[],
    final: unknown,
  ): void {
    const changers = updates.filter((u) => u.mutations.length > 0 || assigners.includes(u));
    if (assigners.length === 0 || new Set(changers.map((u) => u.inst)).size !== 1) return;
    if (!updates.every((u) => u.ok === true) || this.lossAllowed()) return;
    const events: { t: number; gen: string | null; u: UpdateTrace }[] = [];
    for (const u of assigners) {
      u.assigns.forEach((a, j) => {
        const t = this.effective(u, j);
        if (t !== undefined) events.push({ t, gen: a.gen, u });
      });
      for (const m of u.mutations) if (m.immer) events.push({ t: m.t, gen: m.gen, u });
    }
    const last = events.sort((a, b) => a.t - b.t).at(-1);
    if (last === undefined) return;
    const ok = last.gen === null
      ? final === undefined || (isData(final) && final.gen === "init")
      : isData(final) && final.gen === last.gen;
    if (!ok) {
      this.v(
        P2,
        "U3, U4",
        `${key}: every update succeeded and the last assignment to take effect was ${
          last.gen ?? "null (delete)"
        } by ${this.name(last.u)} (t${last.t}), but storage holds ${json(final)}`,
      );
    }
  }

  /** Whether any update of u's episode assigned after `a` was made and before `until`. */
  supersededBefore(u: UpdateTrace, a: UpdateTrace["assigns"][number], until: number): boolean {
    const ep = this.episodeOf.get(u);
    const between = (t: number) => t > a.t && t < until;
    return (ep?.members ?? [u]).some((w) =>
      w.assigns.some((b) => b !== a && between(b.t)) || w.replaced.some(between)
    );
  }

  /** Whether any update of u's episode assigned after `a` was made. */
  supersededInEpisode(u: UpdateTrace, a: UpdateTrace["assigns"][number]): boolean {
    const ep = this.episodeOf.get(u);
    return (ep?.members ?? [u]).some((w) =>
      w.assigns.some((b) => b !== a && b.t > a.t) || w.replaced.some((r) => r > a.t)
    );
  }

  /** Whether an assignment of u's episode took effect after `t` (so t's value may never land). */
  assignedAfter(u: UpdateTrace, t: number): boolean {
    const ep = this.episodeOf.get(u);
    return (ep?.members ?? [u]).some((w) =>
      w.assigns.some((a) => a.t > t || (a.resolved ?? 0) > t) || w.replaced.some((r) => r > t)
    );
  }

  /** P2 and P4 on every applied change (scheduled storage). */
  history(): void {
    const s = this.t.scheduled;
    if (s === undefined) return;
    const mode = this.t.program.mode;
    for (const key of this.t.keys) {
      const retired = new Set<string>();
      let prev: unknown;
      let prevInst = -1;
      for (const [i, change] of (s.history.get(key) ?? []).entries()) {
        const where = `write ${i + 1} (${change.method} by instance ${change.inst})`;
        const next = change.value;
        if (next === undefined) {
          if (!this.allowedDelete(key)) {
            this.v(
              P4,
              "U5, K3",
              `${key}: ${where} deleted the session, but no allowed delete was made`,
            );
          }
          if (isData(prev)) retired.add(prev.gen);
        } else {
          this.value(key, next, where);
          this.copiedAtStart(key, change, where);
          if (isData(prev) && isData(next)) {
            // An unconditional write never drops what another instance built on
            // a blind write of this one, heard or not (C1, C5).
            const checked = change.inst === prevInst || mode !== "overwrite";
            // A delete in memory followed by a read starts a new initial value.
            const fresh = next.gen === "init" && this.deletes(key).length > 0;
            if (next.gen === prev.gen && checked && !fresh && !this.staleCopies(key)) {
              const missing = Object.keys(prev.marks).filter((m) => next.marks[m] === undefined);
              if (missing.length > 0) {
                this.v(
                  P2,
                  "C1, C2, K2",
                  `${key}: ${where} ${json(next)} dropped marks ${
                    missing.join(", ")
                  } of the value it replaced ${json(prev)} (same generation: a lost update)`,
                );
              }
            }
            if (next.gen !== prev.gen) retired.add(prev.gen);
          }
          if (
            isData(next) && isData(prev) && mode === "error" && !change.blind &&
            next.gen !== "init" && retired.has(next.gen)
          ) {
            this.v(
              P2,
              "C1",
              `${key}: ${where} brought back generation ${next.gen} after it had been replaced`,
            );
          }
        }
        prev = next;
        prevInst = change.inst;
      }
    }
    if (mode === "overwrite") return;
    for (const c of this.log) {
      if (c.method !== "write" && c.method !== "delete") continue;
      const ep = this.episodes.find((e) =>
        e.inst === c.inst && e.key === c.key && e.start <= c.start && c.start <= e.end
      );
      const blind = ep?.members.some((u) => this.blind(u));
      if (!blind) {
        this.v(
          P2,
          "C1, C5",
          `${c.key}: instance ${c.inst} made an unconditional ${c.method} (call #${c.seq}) with conflict detection on, outside any blind assignment`,
        );
      }
    }
  }

  /**
   * K2, V2: `write` gets a copy of the value taken when the save started, so
   * a write never holds a mutation of its instance made after the call began
   * (the storage may serialize late: Program.lateSerialize).
   */
  copiedAtStart(key: string, change: { inst: number; seq: number; value: unknown }, where: string) {
    const call = this.log[change.seq];
    if (call === undefined || !isData(change.value)) return;
    for (const mark of Object.keys(change.value.marks)) {
      const o = this.origins.get(mark);
      if (o === undefined || o.late || o.u.inst !== change.inst || o.u.key !== key) continue;
      if (o.t > call.start) {
        this.v(
          P2,
          "K2, V2",
          `${key}: ${where} (call #${call.seq}, started t${call.start}) holds mark ${mark}, made at t${o.t} by ${
            this.name(o.u)
          } after the write was called: write was handed the live value, not a copy taken when the save started`,
        );
      }
    }
  }

  changed(ep: Episode): boolean {
    if (ep.members.some((u) => u.mutations.length > 0 || u.assigns.length > 0)) return true;
    return this.keyed.some((u) =>
      u.inst === ep.inst && u.key === ep.key &&
      u.lateRecs.some((l) => l.mark !== undefined && l.t >= ep.start && l.t <= ep.end)
    );
  }

  callsIn(ep: { inst: number; key: string; start: number; end: number }, methods: Set<string>) {
    return this.log.filter((c) =>
      c.inst === ep.inst && c.key === ep.key && methods.has(c.method) && c.start >= ep.start &&
      c.start <= ep.end
    );
  }

  /** P3. */
  readOnly(): void {
    const t = this.t;
    for (const key of t.keys) {
      const changes = t.updates.some((u) =>
        u.key === key && (u.mutations.length > 0 || u.assigns.length > 0 ||
          u.lateRecs.some((l) => l.mark !== undefined))
      );
      if (
        !changes && t.versionsAfter.has(key) &&
        t.versionsAfter.get(key) !== t.versionsBefore.get(key)
      ) {
        this.v(
          P3,
          "U4",
          `${key}: no update changed it, yet it was written (version ${
            t.versionsBefore.get(key)
          } -> ${t.versionsAfter.get(key)}; now ${json(t.final.get(key))})`,
        );
      }
    }
    for (const ep of this.episodes) {
      const names = ep.members.map((u) => `u${u.idx}`).join(", ");
      if (!this.changed(ep)) {
        for (const u of ep.members) {
          if (u.error instanceof SessionConflictError) {
            this.v(
              P3,
              "C1",
              `${this.name(u)} failed with a conflict, but its episode (${names}) only read`,
            );
          }
        }
        if (t.scheduled) {
          const writes = this.callsIn(ep, WRITE_METHODS as Set<string>);
          if (writes.length > 0) {
            this.v(
              P3,
              "U4",
              `${ep.key}: instance ${ep.inst} made ${
                writes.map((c) => `${c.method} #${c.seq}`).join(", ")
              } for updates ${names}, which changed nothing`,
            );
          }
        }
      }
      const lazy = ep.members.every((u) => u.lazy);
      if (t.scheduled && lazy && ep.members.every((u) => u.touches.length === 0)) {
        const calls = this.callsIn(ep, new Set([...DATA_METHODS, "acquireLease"]));
        if (calls.length > 0) {
          this.v(
            P3,
            "U2",
            `${ep.key}: instance ${ep.inst} made ${
              calls.map((c) => `${c.method} #${c.seq}`).join(", ")
            } for lazy updates ${names}, which never touched the session`,
          );
        }
      }
    }
  }

  /** P5. */
  leftovers(): void {
    const t = this.t;
    if (t.leasesHeld.length > 0) {
      this.v(P5, "C6", `leases still held after everything finished: ${t.leasesHeld.join(", ")}`);
    }
    for (const p of t.probes) {
      const u = p.update;
      if (u.ok !== true) {
        this.v(
          P5,
          "idle state, C6",
          `the probe of ${p.key} in instance ${p.inst} failed: ${errorText(u.error)}`,
        );
      } else if (!isDeepStrictEqual(p.seen, p.expected)) {
        this.v(
          P5,
          "idle state, U7",
          `${p.key}: after the run, storage was changed directly to ${
            json(p.expected)
          }, but a new update in instance ${p.inst} saw ${json(p.seen)} (state left behind)`,
        );
      }
      if (t.scheduled && u.start !== undefined) {
        const reads = this.callsIn(
          { inst: u.inst, key: p.key, start: u.start, end: u.settle ?? Infinity },
          READ_METHODS as Set<string>,
        );
        if (reads.length === 0) {
          this.v(
            P5,
            "idle state, K1",
            `${p.key}: the probe in instance ${p.inst} did not read storage`,
          );
        }
      }
    }
    for (const [key, { before, after }] of t.probeVersions) {
      if (before !== after) {
        this.v(P5, "U4", `${key}: a read-only probe update wrote (${before} -> ${after})`);
      }
    }
    if (!t.scheduled) return;
    for (const ep of this.episodes) {
      const first = ep.members.flatMap((u) => u.touches).sort((a, b) => a.t - b.t)[0];
      // A blind assignment gives the episode a value without a read (K1 shares it).
      const used = !ep.members.some((u) => this.blind(u)) &&
        ep.members.some((u) => (!u.lazy && u.hstart !== undefined) || u.loaded);
      if (first?.kind !== "read" || !used) continue;
      if (this.callsIn(ep, READ_METHODS as Set<string>).length === 0) {
        this.v(
          P5,
          "idle state, K1",
          `${ep.key}: instance ${ep.inst} used the session for ${
            ep.members.map((u) => `u${u.idx}`).join(", ")
          } without reading storage (state kept from an earlier episode)`,
        );
      }
    }
  }

  /** P6. */
  locks(): void {
    if (!this.t.program.lock) return;
    const takeovers = this.t.scheduled?.takeovers ?? new Set<string>();
    for (const key of this.t.keys) {
      if (takeovers.has(key)) continue;
      // Lazy updates count from their first awaited read (guardStart is set
      // only for updates that did not assign before that read delivered),
      // also in episodes that began with an assignment (C6).
      const regions = this.keyed.filter((u) =>
        u.key === key && u.guardStart !== undefined && u.hend !== undefined
      );
      for (const a of regions) {
        for (const b of regions) {
          if (a.inst < b.inst && a.guardStart! < b.hend! && b.guardStart! < a.hend!) {
            this.v(
              P6,
              "C6",
              `${key}: ${this.name(a)} and ${
                this.name(b)
              } held the session at the same time with lock on`,
            );
          }
        }
      }
    }
  }

  /** P7. */
  late(): void {
    for (const u of this.keyed) {
      if (u.hstart === undefined) continue;
      for (const l of u.lateRecs) {
        if (l.kind === "assign" && !l.sessionError) {
          this.v(
            P7,
            "U7",
            `${this.name(u)}: assigning ctx.session after the update finished ${
              l.threw ? `threw ${l.threw}` : "did not throw"
            }, not a SessionError`,
          );
        }
        if (l.kind === "read" && u.lazy && u.touches.length === 0 && !l.rejected) {
          this.v(
            P7,
            "U7",
            `${
              this.name(u)
            }: reading a never loaded lazy session after the update finished did not reject`,
          );
        }
      }
    }
    const lease = new Set<string>([...DATA_METHODS, "acquireLease"]);
    for (const c of this.log) {
      if (!lease.has(c.method)) continue;
      // A call on a key's turn (rule C7) is made for an update of the key.
      const key = keyOfTurn(c.key) ?? c.key;
      const inside = this.all.some((u) =>
        u.inst === c.inst && u.key === key && u.start !== undefined && u.start <= c.start &&
        (c.end ?? Infinity) <= (u.settle ?? Infinity)
      );
      if (!inside) {
        this.v(
          P7,
          "U6, U7",
          `${c.key}: instance ${c.inst} called ${c.method} (#${c.seq}, ticks ${c.start}-${c.end}) outside any update of the key, or an update settled before the call did`,
        );
      }
    }
  }

  /**
   * U2: in a lazy update, the first read of ctx.session (its first touch)
   * gives a promise, even when another update has loaded the value; once this
   * update has the value (an awaited read resolved, or it assigned a value,
   * or an awaited read resolved after its last promise assignment, which
   * took effect), reading gives the value itself. (After a promise that
   * rejected, or that another update's promise superseded, the rules do not
   * say what reading gives: the value may never have been loaded.)
   */
  lazyReads(): void {
    for (const u of this.keyed) {
      if (!u.lazy) continue;
      for (const acc of u.lazyAccess) {
        if (u.touches[0]?.t === acc.t) {
          if (!acc.thenable) {
            this.v(
              P2,
              "U2",
              `${
                this.name(u)
              }: its first read of ctx.session (t${acc.t}) gave the value, not a promise`,
            );
          }
          continue;
        }
        const own = [
          ...u.assigns.map((a, j) => ({ t: a.t, promise: a.promise, j })),
          ...u.replaced.map((t) => ({ t, promise: false, j: -1 })),
        ].filter((e) => e.t < acc.t).sort((a, b) => a.t - b.t).at(-1);
        const settled = own === undefined ? u.loads.some((l) => l < acc.t) : !own.promise ||
          (this.effective(u, own.j) !== undefined && u.loads.some((l) => l > own.t && l < acc.t));
        if (settled && acc.thenable) {
          this.v(
            P2,
            "U2",
            `${
              this.name(u)
            }: reading ctx.session at t${acc.t} gave a promise, though the update already had the value`,
          );
        }
      }
    }
  }

  /**
   * K1: an update whose first use of the key (a read) comes while another
   * update that deleted the live value still uses it, with no assignment
   * since, starts from initial().
   */
  reinit(): void {
    // A landed merge replaces the live value too (C2), which no event here
    // records, so with a merge function the check cannot tell.
    if (this.t.program.mode === "merge") return;
    for (const u of this.keyed) {
      const first = u.actions.find((a) => a.t !== "step");
      const r = u.reads[0];
      if (first?.t !== "read" || r === undefined) continue;
      if (u.lazy && u.touches[0]?.kind !== "read") continue;
      const tf = u.lazy ? u.touches[0].t : u.start!;
      const ep = this.episodeOf.get(u);
      if (ep === undefined) continue;
      const events: { t: number; del: boolean; u: UpdateTrace }[] = [];
      for (const w of ep.members) {
        for (const a of w.assigns) {
          events.push({ t: a.t, del: a.gen === null, u: w });
          if (a.resolved !== undefined) events.push({ t: a.resolved, del: false, u: w });
        }
        for (const t of w.replaced) events.push({ t, del: false, u: w });
      }
      const before = events.filter((e) => e.t < tf).sort((a, b) => a.t - b.t).at(-1);
      if (before === undefined || !before.del || before.u === u) continue;
      if (events.some((e) => e.t >= tf && e.t <= r.t)) continue;
      if ((before.u.hend ?? Infinity) <= r.t) continue; // it may have left: a new read
      if (!isData(r.value) || r.value.gen !== "init") {
        this.v(
          P2,
          "K1",
          `${this.name(u)} started using the key after ${
            this.name(before.u)
          } deleted its live value (t${before.t}), but read ${json(r.value)}, not initial()`,
        );
      }
    }
  }

  /** U7: what a read after the end gave is a copy: changing it reaches nobody. */
  lateCopies(): void {
    for (const u of this.all) {
      for (const r of u.reads) {
        if (!isData(r.value)) continue;
        for (const mark of Object.keys(r.value.marks)) {
          if (this.origins.get(mark)?.late) {
            this.v(
              P7,
              "U7",
              `${this.name(u)} read ${
                json(r.value)
              } at t${r.t}, with mark ${mark} made on a value read after its update had finished`,
            );
          }
        }
      }
    }
  }

  /**
   * C1: a conflict means another process wrote the key. An update fails with
   * SessionConflictError only if another instance changed the key (with the
   * scheduled storage: a write of another instance landed), or a write of its
   * own instance landed unheard (lost reply) or failed (it cannot tell).
   */
  spuriousConflicts(): void {
    for (const u of this.keyed) {
      if (!(u.error instanceof SessionConflictError)) continue;
      const others = this.t.scheduled
        ? this.log.some((c) =>
          c.key === u.key && c.inst !== u.inst && WRITE_METHODS.has(c.method) &&
          c.applied !== undefined
        )
        : this.keyed.some((w) =>
          w.key === u.key && w.inst !== u.inst &&
          (w.mutations.length > 0 || w.assigns.length > 0 || w.replaced.length > 0)
        );
      // A write of its own instance that failed may have landed for all it
      // knows (a failure and a lost reply look alike): C1's read-back after it
      // may report a conflict when it cannot tell (semantics.md C1).
      const unheard = this.log.some((c) =>
        c.key === u.key && c.inst === u.inst && WRITE_METHODS.has(c.method) &&
        (c.fault === "fail" || c.fault === "late")
      );
      if (others || unheard || this.lost.some((c) => c.key === u.key && c.inst === u.inst)) {
        continue;
      }
      this.v(
        P3,
        "C1",
        `${
          this.name(u)
        } failed with a conflict, but no other instance wrote ${u.key} (its own writes were stale news to it)`,
      );
    }
  }

  /** P8. */
  unkeyed(): void {
    for (const u of this.t.updates) {
      if (u.chat !== null) continue;
      for (const a of u.keyAccess) {
        if (!a.sync || !a.keyError) {
          this.v(
            P8,
            "U8",
            `${this.name(u)}: ${a.what === "read" ? "reading" : "assigning"} ctx.session ${
              a.sync ? "threw another error" : "did not throw synchronously"
            }`,
          );
        }
      }
    }
  }
}

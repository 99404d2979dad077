/**
 * The session data of the race suite, designed so that the checker can tell
 * where every part of a stored value came from:
 *
 * - `gen` names the generation: the assignment that created the value
 *   (`"<update>.a<action>"`), `"seed"` (stored before the run), `"init"`
 *   (`initial()`, also the start of a merge onto nothing stored) or a probe.
 *   Mutations keep it; only an assignment starts a new one.
 * - `marks` holds one mark per mutation (`"<update>.m<action>"`, late ones
 *   `"<update>.L<action>"`), so a mark in storage names the update that made
 *   the change.
 * - `n` counts the mutations: every value a handler produces has
 *   `n === Object.keys(marks).length`, and the counter merge keeps it so
 *   (that is how "the counter is exact" is checked).
 *
 * @module
 */

export interface Data {
  gen: string;
  n: number;
  marks: Record<string, 1>;
}

/** What storage holds for a seeded chat before the run. */
export const SEED_MARK = "seed";
export function seedValue(): Data {
  return { gen: "seed", n: 1, marks: { [SEED_MARK]: 1 } };
}

export function initialValue(): Data {
  return { gen: "init", n: 0, marks: {} };
}

export function probeValue(key: string): Data {
  return { gen: `probe:${key}`, n: 0, marks: {} };
}

export function isData(value: unknown): value is Data {
  const v = value as Data;
  return typeof v === "object" && v !== null && typeof v.gen === "string" &&
    typeof v.n === "number" && typeof v.marks === "object" && v.marks !== null;
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** A plain copy for the trace (what the handler saw at that moment). */
export function snapshot(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/**
 * The counter merge (README's `onConflict` example, extended to the marks):
 * when `mine` only added to `base` (same generation, or a fresh initial value
 * over nothing), its additions go on top of `stored` (or of a fresh initial
 * value when nothing is stored), and `n` moves by what `mine` added, as the
 * README's counter does: a change merged twice shows as `n` above the
 * number of marks. When `mine` did not derive from `base` but is of the
 * generation stored (mine landed before, e.g. with a lost reply, and others
 * added to it), the marks of both are kept; when `mine` is another new
 * generation (it was replaced), it wins; when `mine` is a delete, it wins.
 * Never changes its arguments (they may be frozen).
 */
export function counterMerge(
  stored: Data | undefined,
  mine: Data | undefined,
  base: Data | undefined,
): Data | undefined {
  if (mine == null) return undefined;
  // Derived: only added to base (a value re-initialized after a delete has
  // base's generation "init" but not its marks: it replaced base).
  const derived = base == null
    ? mine.gen === "init"
    : mine.gen === base.gen && Object.keys(base.marks).every((m) => mine.marks[m] !== undefined);
  if (!derived) {
    if (stored == null || stored.gen !== mine.gen) return mine;
    const marks = { ...stored.marks, ...mine.marks };
    return { gen: mine.gen, n: Object.keys(marks).length, marks };
  }
  const start = stored ?? initialValue();
  const marks = { ...start.marks };
  for (const mark of Object.keys(mine.marks)) {
    if (base?.marks[mark] === undefined) marks[mark] = 1;
  }
  return { gen: start.gen, n: start.n + mine.n - (base?.n ?? 0), marks };
}

/**
 * The report of the multi-process benchmark: one markdown row per storage,
 * configuration (processes x updates in flight per process) and mode, with
 * the figures of every round side by side ("a · b"; throughputs and ratios
 * led by their median in bold), each throughput also as a ratio to grammY's
 * run of the same storage, configuration and round; and
 * a line on the noise: how far repeated runs of one cell moved.
 *
 * @module
 */

/** One run's figures (or why it failed). */
export interface Row {
  backend: string;
  /** "processes x in flight". */
  config: string;
  mode: string;
  round: number;
  failed?: string;
  perSecond?: number;
  handled?: number;
  conflicts?: number;
  merges?: number;
  lockErrors?: number;
  errors?: number;
  samples?: string[];
  lost?: number;
  roundTrips?: number;
  p50?: number;
  p99?: number;
  load?: number;
}

const MODE_NAMES: Record<string, string> = {
  detect: "sessionkit, detection (default)",
  merge: "sessionkit, onConflict merge",
  lock: "sessionkit, lock",
  grammY: "grammY session() (baseline)",
};

function join<T>(rows: Row[], pick: (r: Row) => T | undefined, show: (v: T) => string): string {
  return rows.map((r) => r.failed ? "failed" : show(pick(r) as T)).join(" · ");
}

/** The median of the rounds' numbers, then every round's in parentheses. */
function medianFirst(
  rows: Row[],
  pick: (r: Row) => number | undefined,
  show: (v: number) => string,
) {
  const each = join(rows, pick, (v) => v === undefined ? "?" : show(v));
  const values = rows.filter((r) => !r.failed).map(pick).filter((v): v is number =>
    v !== undefined
  );
  if (rows.length < 2 || values.length === 0) return each;
  return `**${show(median(values))}** (${each})`;
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The markdown table of `rows`, and the noise seen between rounds. */
export function table(rows: Row[]): string {
  const cells = new Map<string, Row[]>();
  for (const r of rows) {
    const id = `${r.backend}|${r.config}|${r.mode}`;
    cells.set(id, [...(cells.get(id) ?? []), r]);
  }
  const baseline = (r: Row) =>
    rows.find((b) =>
      b.backend === r.backend && b.config === r.config && b.round === r.round &&
      b.mode === "grammY"
    );
  const out = [
    "| storage | processes x in flight | mode | updates/s | x grammY | conflicts | merges | " +
    "lock / other errors | lost (of sent) | round trips / update | p50 / p99 ms |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  const spreads: number[] = [];
  const failures: string[] = [];
  for (const list of cells.values()) {
    const r0 = list[0];
    const ratio = medianFirst(list, (r) => {
      const b = baseline(r);
      return b?.perSecond ? r.perSecond! / b.perSecond : undefined;
    }, (v) => `${v.toFixed(2)}x`);
    const lost = join(
      list,
      (r) => r,
      (r) => r.lost === 0 ? "0" : `${int(r.lost!)} (${(100 * r.lost! / r.handled!).toFixed(1)}%)`,
    );
    out.push(
      `| ${r0.backend} | ${r0.config} | ${MODE_NAMES[r0.mode] ?? r0.mode} | ${
        medianFirst(list, (r) => r.perSecond, int)
      } | ${r0.mode === "grammY" ? "1" : ratio} | ${join(list, (r) => r.conflicts, int)} | ${
        join(list, (r) => r.merges, int)
      } | ${join(list, (r) => r, (r) => `${r.lockErrors} / ${r.errors}`)} | ${lost} | ${
        join(list, (r) => r.roundTrips, (v) => v.toFixed(2))
      } | ${join(list, (r) => r, (r) => `${r.p50!.toFixed(2)} / ${r.p99!.toFixed(1)}`)} |`,
    );
    const ok = list.filter((r) => !r.failed);
    if (ok.length >= 2) {
      const values = ok.map((r) => r.perSecond!);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      spreads.push((Math.max(...values) - Math.min(...values)) / mean);
    }
    for (const r of list) {
      if (r.failed) failures.push(`${r.backend}, ${r.config}, ${r.mode}: ${r.failed}`);
      for (const s of r.samples ?? []) failures.push(`${r.backend}, ${r.config}, ${r.mode}: ${s}`);
    }
  }
  const loads = rows.map((r) => r.load).filter((l): l is number => l !== undefined);
  if (spreads.length > 0) {
    out.push(
      "",
      `Noise: throughput of the same cell in different rounds differs by ${
        (100 * median(spreads)).toFixed(0)
      }% (median over ${spreads.length} repeated cells), ${
        (100 * Math.max(...spreads)).toFixed(0)
      }% at most. Load average at the start of a run: ${Math.min(...loads)} to ${
        Math.max(...loads)
      }.`,
    );
  } else if (loads.length > 0) {
    out.push(
      "",
      `Load average at the start of a run: ${Math.min(...loads)} to ${Math.max(...loads)}.`,
    );
  }
  if (failures.length > 0) out.push("", "Errors:", ...failures.slice(0, 20).map((f) => `- ${f}`));
  return out.join("\n");
}

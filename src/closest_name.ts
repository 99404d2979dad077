/**
 * "Did you mean ...?": the known name closest to a misspelt one, for
 * errors about unknown option names, commands and flags.
 *
 * @module
 */

/**
 * The name in `names` closest to `name`: equal ignoring case, containing it
 * (or contained in it), or within a small edit distance.
 */
export function closest(name: string, names: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const candidate of names) {
    const other = candidate.toLowerCase();
    if (other === lower) return candidate;
    const d = distance(lower, other);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  if (best !== undefined || lower.length < 3) return best;
  return names.find((candidate) => {
    const other = candidate.toLowerCase();
    return other.includes(lower) || lower.includes(other);
  });
}

/** Edit distance counting insertions, deletions, substitutions and swaps of neighbours. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...b].map((_, j) => i + j));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

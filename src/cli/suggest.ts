/** "Did you mean": the known word a mistyped one most likely meant (commands, flags, pools). */

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and transpositions of
 * two neighbours each cost 1, so `stauts` is one edit from `status` (Levenshtein says two).
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const up = rows[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(
        (up[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (up[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return (rows[a.length] as number[])[b.length] as number;
}

/**
 * The candidate closest to `word`, or undefined when none is close enough to be a typo: at most
 * one edit for words up to 4 characters, two beyond; else the only candidate `word` is a prefix
 * of (3+ characters: `repl` -> `replicas`). Case is ignored; ties go to the first candidate.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const typed = word.toLowerCase();
  const limit = typed.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    const d = editDistance(typed, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined) return best;
  if (typed.length < 3) return undefined;
  const prefixed = candidates.filter((c) => c.toLowerCase().startsWith(typed));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** `: did you mean "x"?` to end a message with, or '' when nothing is close. */
export function didYouMean(word: string, candidates: readonly string[], quote = true): string {
  const match = closest(word, candidates);
  if (match === undefined) return '';
  return `: did you mean ${quote ? JSON.stringify(match) : match}?`;
}

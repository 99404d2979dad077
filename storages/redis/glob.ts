/**
 * Escaping for Redis glob patterns (`SCAN MATCH`, `KEYS`).
 *
 * @module
 */

/**
 * Escapes every character that Redis glob patterns treat specially
 * (`*`, `?`, `[`, `]` and `\`), so that `text` matches only itself.
 */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => "\\" + c);
}

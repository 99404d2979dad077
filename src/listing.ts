/**
 * A listing of entries that is finished by a listing of keys when it fails
 * part way: what `copySessions` and `enhanceStorage`'s `readAllKeys` use so
 * that one session a storage cannot decode does not hide every session
 * listed after it. Internal to sessionkit.
 *
 * @module
 */

/** One element of {@link resumeByKeys}: an entry with its value, or a key alone. */
export type Listed<V> =
  | { key: string; given: true; value: V }
  | { key: string; given: false };

/**
 * The entries of `entries()`; if that listing throws part way, the keys of
 * `keys()` that it did not hand out yet, as keys alone (their values are for
 * the caller to read one by one, so the one that cannot be read fails by
 * itself). Without `keys`, the listing's error is thrown as it is. An error
 * of the keys listing is thrown as it is. The keys handed out are
 * remembered (only those `remember` accepts), one string each.
 *
 * @example
 * ```ts ignore
 * for await (const item of resumeByKeys(() => storage.readAllEntries(), () => storage.readAllKeys())) {
 *   const value = item.given ? item.value : await storage.read(item.key);
 * }
 * ```
 *
 * @param entries Lists key and value pairs (a storage's `readAllEntries`).
 * @param keys Lists keys only (a storage's `readAllKeys`), if there is such a listing.
 * @param remember Which keys can come again from `keys()` (default: all).
 */
export async function* resumeByKeys<V>(
  entries: () => Iterable<[string, V]> | AsyncIterable<[string, V]>,
  keys: (() => Iterable<string> | AsyncIterable<string>) | undefined,
  remember: (key: string) => boolean = () => true,
): AsyncGenerator<Listed<V>> {
  const handed = new Set<string>();
  try {
    for await (const [key, value] of entries()) {
      if (keys !== undefined && remember(key)) handed.add(key);
      yield { key, given: true, value };
    }
    return;
  } catch (err) {
    if (keys === undefined) throw err;
    // Finished by keys below; a value that cannot be read fails with its key there.
  }
  for await (const key of keys()) {
    if (!handed.has(key)) yield { key, given: false };
  }
}

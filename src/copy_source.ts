/**
 * The sessions a copy takes from its source: the `keys` given, or the
 * source's listing (entries, finished key by key if the listing fails part
 * way; or keys, each read when its batch runs), and the value of each.
 *
 * @module
 */

import type { StorageAdapter } from "./storage.ts";
import { messageOf } from "./errors.ts";
import { PEEK } from "./enhance.ts";
import { resumeByKeys } from "./listing.ts";
import { type CopyItem, describe } from "./copy_options.ts";

/**
 * The sessions of `from`, as items: the given keys, else its
 * `readAllEntries` (values come with the listing; if it fails part way, it
 * is finished by `readAllKeys` where the source has it, each key not handed
 * out yet read by itself, so that a session the listing cannot decode, such
 * as a page of 500 in sessionkit's storages, or an `enhanceStorage` session a
 * migration throws on, fails alone; only keys under `prefix` are
 * remembered for it), else its `readAllKeys` (each value is read
 * when its batch runs). Throws a `TypeError` naming what to do for a source
 * that cannot list.
 *
 * @param where Who lists, for the message.
 * @param from The source storage.
 * @param keys The keys to copy instead of a listing.
 * @param prefix The prefix filter of the copy (only those keys are remembered).
 */
export function listSource<T>(
  where: string,
  from: StorageAdapter<T>,
  keys?: Iterable<string> | AsyncIterable<string>,
  prefix?: string,
): AsyncIterable<CopyItem<T>> {
  if (keys !== undefined) return items(() => keys, (key) => ({ key, given: false }));
  if (typeof from.readAllEntries === "function") {
    const keysAlone = typeof from.readAllKeys === "function"
      ? () => keysListing(from.readAllKeys!())
      : undefined;
    return items(
      () =>
        resumeByKeys(
          () => from.readAllEntries!(),
          keysAlone,
          (key) => prefix === undefined || key.startsWith(prefix),
        ),
      (listed): CopyItem<T> => listed,
    );
  }
  if (typeof from.readAllKeys === "function") {
    return items(() => from.readAllKeys!(), (key) => ({ key, given: false }));
  }
  throw new TypeError(
    `${where}: the source storage cannot list its sessions: it has neither readAllEntries() ` +
      `nor readAllKeys() (grammY's @grammyjs/storage-file, for one, has neither). Pass the ` +
      `keys to copy as the keys option (the source's read() is then called for each), or copy ` +
      `from a storage that lists: every sessionkit storage does.`,
  );
}

/**
 * The keys listing of a source that finishes its entries listing (see
 * {@link resumeByKeys}): an error there is wrapped, so that it is not taken
 * for the entries listing's "cannot read this session" (whose message says
 * that the source has no keys listing to go on with).
 */
async function* keysListing(keys: Iterable<string> | AsyncIterable<string>) {
  try {
    yield* keys;
  } catch (err) {
    throw new Error(
      `the entries listing failed, and then listing the keys alone failed too: ${messageOf(err)}`,
      { cause: err },
    );
  }
}

/**
 * Maps a listing lazily, one element at a time, closing it when the
 * consumer stops. The listing is asked for on the first pull, so a listing
 * method that throws at once fails like one that throws later.
 */
async function* items<E, T>(
  listing: () => Iterable<E> | AsyncIterable<E>,
  make: (element: E) => CopyItem<T>,
): AsyncGenerator<CopyItem<T>> {
  for await (const element of listing()) {
    const item = make(element);
    if (typeof item.key !== "string") {
      item.error = new TypeError(
        `the source listed a key that is not a string (${describe(item.key)})`,
      );
      item.key = String(item.key);
    }
    yield item;
  }
}

/**
 * The value of `item`: the one its listing gave, or a read of the source
 * (on an `enhanceStorage` wrapper a read that writes nothing back, so that
 * copying neither renews nor migrates the source in place). `undefined` or
 * `null` means there is no session (it went away).
 */
export async function valueOf<T>(
  from: StorageAdapter<T>,
  item: CopyItem<T>,
): Promise<T | null | undefined> {
  if (item.error !== undefined) throw item.error;
  if (item.given) return item.value;
  const peek = (from as { [PEEK]?: (key: string) => Promise<T | undefined> })[PEEK];
  return typeof peek === "function" ? await peek(item.key) : await from.read(item.key);
}

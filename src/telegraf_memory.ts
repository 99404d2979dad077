/**
 * What `telegrafStore` remembers between a `get` and the `set` of the same
 * session: the version it read (for conflict detection) and its JSON text
 * (to skip writing a session that did not change).
 *
 * Telegraf's middleware hands `set` the very object `get` returned, unless
 * the handler assigned a new one, so the memory is kept first **on the
 * object**, in a `WeakMap`: it lives exactly as long as Telegraf (or the
 * handler) holds the session, whatever its size and however many chats are
 * in use. A bounded record per key (the version only, and the text of
 * primitive sessions) covers a handler that replaced the object. What is kept
 * on an object counts only for the key it was recorded under, and only while
 * nothing newer was recorded for that key (a delete, or another object saved
 * in between): an object handed to two keys (one shared `defaultSession`
 * value) or put back after its key was deleted is then compared with the
 * record per key, not with its own stale text.
 *
 * @module
 */

/** What is known of one stored session. */
export interface Known {
  /** The version read or written; `null`: nothing stored; absent: not tracked. */
  readonly version?: string | null;
  /** The JSON text read or written; absent: nothing stored. */
  readonly text?: string;
}

/** What was recorded for one key, numbered in the order of recording. */
interface Entry {
  readonly stamp: number;
  readonly known: Known;
}

/** What was recorded on a session object, and for which key. */
interface ObjectEntry extends Entry {
  readonly key: string;
}

/** Keys whose last version is kept for sessions replaced by their handler. */
export const KEYS_KEPT = 10_000;
/** The versions and texts kept per key hold at most this many characters in all. */
export const CHARS_KEPT = 8 * 1024 * 1024;

/**
 * The memory of one store.
 *
 * @example
 * ```ts
 * import { SessionMemory } from "./telegraf_memory.ts";
 *
 * const memory = new SessionMemory();
 * const session = { count: 1 };
 * memory.remember("7", session, { version: "v1", text: '{"count":1}' });
 * memory.recall("7", session)?.version; // "v1"
 * memory.recall("7", { count: 1 })?.version; // "v1" (from the per-key record)
 * ```
 */
export class SessionMemory {
  readonly #byObject = new WeakMap<object, ObjectEntry>();
  /** Least recently used first. */
  readonly #byKey = new Map<string, Entry>();
  #chars = 0;
  /** Numbers the records, so that an object's record can be told from a newer one of its key. */
  #stamp = 0;

  /**
   * What is known for the session `value` of `key`: what was read into or
   * written from that object for that key, unless something newer was
   * recorded for the key since; else the last version seen for the key.
   */
  recall(key: string, value: unknown): Known | undefined {
    const latest = this.#byKey.get(key);
    if (isObject(value)) {
      const own = this.#byObject.get(value);
      // A record per key that is gone (dropped for the bound) cannot be
      // newer than one still held by the object.
      if (own?.key === key && (latest === undefined || latest.stamp === own.stamp)) {
        return own.known;
      }
    }
    return latest?.known;
  }

  /** Records what is now stored for `key`, handed out (or saved) as `value`. */
  remember(key: string, value: unknown, known: Known): void {
    const stamp = ++this.#stamp;
    if (isObject(value)) this.#byObject.set(value, { key, stamp, known });
    // Per key: the version always; the text only of a primitive session
    // (an object's text is kept on the object).
    const kept: Entry = { stamp, known: isObject(value) ? { version: known.version } : known };
    this.#drop(key);
    this.#byKey.set(key, kept);
    this.#chars += size(kept.known);
    while (this.#byKey.size > KEYS_KEPT || this.#chars > CHARS_KEPT) {
      this.#drop(this.#byKey.keys().next().value!);
    }
  }

  #drop(key: string): void {
    const kept = this.#byKey.get(key);
    if (kept === undefined) return;
    this.#chars -= size(kept.known);
    this.#byKey.delete(key);
  }
}

function isObject(value: unknown): value is object {
  return (typeof value === "object" && value !== null) || typeof value === "function";
}

function size(known: Known): number {
  return (known.version?.length ?? 0) + (known.text?.length ?? 0);
}

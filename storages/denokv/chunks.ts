/**
 * Generations of chunks: the mutations that write one, the mutations that
 * remove one, and reading one back completely or not at all.
 *
 * @module
 */

import type { Mutation } from "./batch.ts";
import type { KvLike } from "./kv.ts";
import { KV_LIMITS } from "./limits.ts";
import type { ChunkedHead, Layout } from "./records.ts";

/** The bytes of one chunk: a full KV value of raw bytes. */
export const CHUNK_BYTES: number = KV_LIMITS.maxValueBytes;

/**
 * The mutations that write generation `gen` of `bytes`: its marker first,
 * then its chunks.
 *
 * @example
 * ```ts
 * import { writeGeneration } from "./chunks.ts";
 * import { Layout } from "./records.ts";
 *
 * const muts = writeGeneration(new Layout(["s"]), "42", "g1", new Uint8Array(70000), undefined);
 * console.log(muts.length); // 3: the marker and two chunks
 * ```
 *
 * @param layout The key layout.
 * @param key The session key.
 * @param gen The generation id.
 * @param bytes The JSON text's bytes.
 * @param expireIn KV expiry in ms, if any.
 * @returns The mutations.
 */
export function writeGeneration(
  layout: Layout,
  key: string,
  gen: string,
  bytes: Uint8Array,
  expireIn: number | undefined,
): Mutation[] {
  const n = Math.ceil(bytes.length / CHUNK_BYTES);
  const out: Mutation[] = [{
    type: "set",
    key: layout.marker(key, gen),
    value: { at: Date.now(), n },
    expireIn,
  }];
  for (let i = 0; i < n; i++) {
    out.push({
      type: "set",
      key: layout.chunk(key, gen, i),
      value: bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES),
      expireIn,
    });
  }
  return out;
}

/**
 * The mutations that remove generation `gen` (`n` chunks) and its marker.
 *
 * @example
 * ```ts
 * import { deleteGeneration } from "./chunks.ts";
 * import { Layout } from "./records.ts";
 *
 * deleteGeneration(new Layout(["s"]), "42", "g1", 2).length; // 3
 * ```
 *
 * @param layout The key layout.
 * @param key The session key.
 * @param gen The generation id.
 * @param n Its number of chunks.
 * @returns The mutations.
 */
export function deleteGeneration(layout: Layout, key: string, gen: string, n: number): Mutation[] {
  const out: Mutation[] = [];
  for (let i = 0; i < n; i++) out.push({ type: "delete", key: layout.chunk(key, gen, i) });
  out.push({ type: "delete", key: layout.marker(key, gen) });
  return out;
}

/**
 * Reads every chunk of the generation a manifest names. Resolves to
 * `undefined` when a chunk is missing or has the wrong size, which happens
 * when a writer replaced the session and removed the generation meanwhile:
 * the caller then reads the head again. Chunks of one generation never
 * change, so a complete read is never torn.
 *
 * @example
 * ```ts
 * import { readGeneration } from "./chunks.ts";
 * import { Layout } from "./records.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * const head = { v: 1 as const, exp: null, gen: "g", n: 1, bytes: 3 };
 * console.log(await readGeneration(kv, new Layout(["s"]), "42", head)); // undefined
 * kv.close();
 * ```
 *
 * @param kv The database.
 * @param layout The key layout.
 * @param key The session key.
 * @param head The manifest.
 * @returns The JSON text's bytes, or `undefined` if incomplete.
 */
export async function readGeneration(
  kv: KvLike,
  layout: Layout,
  key: string,
  head: ChunkedHead,
): Promise<Uint8Array | undefined> {
  const groups: Promise<Uint8Array[] | undefined>[] = [];
  for (let first = 0; first < head.n; first += KV_LIMITS.maxGetMany) {
    const keys = [];
    for (let i = first; i < Math.min(head.n, first + KV_LIMITS.maxGetMany); i++) {
      keys.push(layout.chunk(key, head.gen, i));
    }
    groups.push(
      kv.getMany(keys).then((entries) => {
        const parts = entries.map((e) => e.value);
        return parts.every((p) => p instanceof Uint8Array) ? parts as Uint8Array[] : undefined;
      }),
    );
  }
  const out = new Uint8Array(head.bytes);
  let offset = 0;
  for (const group of await Promise.all(groups)) {
    if (group === undefined) return undefined;
    for (const part of group) {
      if (offset + part.length > head.bytes) return undefined;
      out.set(part, offset);
      offset += part.length;
    }
  }
  return offset === head.bytes ? out : undefined;
}

/**
 * Checks of a storage's text access (`src/text.ts`) that every networked
 * storage shares.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { StorageAdapter } from "../../mod.ts";
import type { TextAccess } from "../../src/text.ts";
import { textAccessOf } from "../../src/text.ts";

/**
 * After `other` (another process's storage on the same data) writes key
 * `t`, the version `access` read before is stale: its conditional write and
 * delete are refused and `other`'s text stays, as `storedText` reads it.
 */
export async function assertOtherWriteMakesVersionStale(
  access: TextAccess,
  other: StorageAdapter<unknown>,
  storedText: () => Promise<string | null | undefined>,
): Promise<void> {
  const seen = await access.read("t");
  const seenThere = await textAccessOf(other)!.read("t");
  assert.equal(seenThere.version, seen.version, "versions compare across processes");
  await other.write("t", { by: "other" });
  assert.equal(await access.write("t", '{"by":"me"}', seen.version), null);
  assert.equal(await access.delete("t", seen.version), false);
  assert.equal(await storedText(), '{"by":"other"}');
}

/**
 * `@grammyjs/storage-file` (the real package, in a temporary directory) inside
 * sessionkit's `session()`, `lazySession()` and `enhanceStorage`, and the same
 * scenarios on grammY's: counting, restart, deletion, migrations and expiry.
 * The outcomes are equal but for the documented differences.
 */
import { assertCounterParity, assertEnhanceParity, fileSpace, KINDS } from "./adapters_shared.ts";

Deno.test("storage-file: count, restart, delete, on both libraries", async (t) => {
  for (const kind of KINDS) await t.step(kind, () => assertCounterParity(fileSpace, kind));
});

Deno.test("storage-file: enhanceStorage migrations and TTL, on both libraries", async (t) => {
  for (const kind of KINDS) await t.step(kind, () => assertEnhanceParity(fileSpace, kind));
});

/**
 * `@grammyjs/storage-psql` (the real package with npm:pg, on a real
 * PostgreSQL, a table of its own per scenario, dropped afterwards) inside
 * sessionkit's `session()`, `lazySession()` and `enhanceStorage`, and the same
 * scenarios on grammY's: counting, restart, deletion, migrations and expiry.
 * The outcomes are equal but for the documented differences.
 */
import { pgTest } from "../postgres_setup.ts";
import { assertCounterParity, assertEnhanceParity, KINDS } from "./adapters_shared.ts";
import { psqlSpace } from "./adapter_spaces.ts";

pgTest("storage-psql: count, restart, delete, on both libraries", async (t) => {
  for (const kind of KINDS) await t.step(kind, () => assertCounterParity(psqlSpace, kind));
});

pgTest("storage-psql: enhanceStorage migrations and TTL, on both libraries", async (t) => {
  for (const kind of KINDS) await t.step(kind, () => assertEnhanceParity(psqlSpace, kind));
});

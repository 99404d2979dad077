/**
 * DenoKvStorage's driver hands back the exact payload text it was given: a
 * payload starting with U+FEFF (a custom codec may write one) keeps it,
 * inline and chunked, when read and when listed.
 */
import assert from "node:assert/strict";
import { KvDriver } from "../storages/denokv/driver.ts";

Deno.test("KvDriver: a payload's leading U+FEFF is kept", async (t) => {
  const kv = await Deno.openKv(":memory:");
  try {
    const driver = new KvDriver(kv, { prefix: ["bom"] });
    const cases: [string, string][] = [
      ["inline", '\uFEFF"x"'],
      ["chunked", `\uFEFF"${"y".repeat(200_000)}"`],
    ];
    for (const [name, payload] of cases) {
      await t.step(name, async () => {
        await driver.write(name, payload, undefined);
        // Compared as a flag: a failure would otherwise print 200 KB twice.
        const read = (await driver.read(name))?.payload;
        assert.ok(read === payload, `read gave ${JSON.stringify(read?.slice(0, 8))}…`);
        const page = await driver.scan(undefined, 500, true);
        const listed = page.payloads?.[page.keys.indexOf(name)];
        assert.ok(listed === payload, `listing gave ${JSON.stringify(listed?.slice(0, 8))}…`);
      });
    }
    await t.step("a key starting with U+FEFF keeps it", async () => {
      await driver.write("\uFEFFk", "1", undefined);
      assert.ok((await driver.scan(undefined, 500, false)).keys.includes("\uFEFFk"));
    });
  } finally {
    kv.close();
  }
});

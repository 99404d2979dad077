/**
 * storages/redis/redis_module.d.ts declares the part of node-redis that
 * storages/redis/connect.ts uses (so that `deno doc` does not walk
 * node-redis's and Node's declarations). This test fails to type-check
 * (`deno check`, `deno test`) when node-redis's real `createClient` no longer
 * fits that declaration, and checks at run time that the members exist.
 */
import assert from "node:assert/strict";
import { createClient as realCreateClient } from "npm:redis@^5";
import type { createClient as declaredCreateClient } from "../storages/redis/redis_module.d.ts";

// The real function must be usable wherever the declared one is.
const asDeclared: typeof declaredCreateClient = realCreateClient;

Deno.test("node-redis's createClient fits storages/redis/redis_module.d.ts", () => {
  const client = asDeclared({ url: "redis://127.0.0.1:1", socket: { reconnectStrategy: () => 1 } });
  for (const member of ["on", "connect", "close", "destroy", "sendCommand"] as const) {
    assert.equal(typeof client[member], "function", member);
  }
  assert.equal(client.isOpen, false);
});

/**
 * The storage of docs/storages.md (examples/custom_storage.ts): the contract
 * suite runs against it unchanged, as it does against every shipped storage.
 */
import assert from "node:assert/strict";
import { MapDatabase, MapStorage } from "../examples/custom_storage.ts";
import { type CreateOptions, storageContract } from "./contract.ts";

const db = new MapDatabase();
let n = 0;

storageContract("MapStorage (docs/storages.md)", {
  create(options?: CreateOptions) {
    const shared = options?.sharing as MapStorage<unknown> | undefined;
    return new MapStorage<unknown>(db, {
      prefix: shared?.prefix ?? `contract-${++n}:`,
      ttl: options?.ttl,
    });
  },
  largeValueBytes: 1024 * 1024,
  ttl: true,
  ttlMs: 300,
});

Deno.test("examples/custom_storage.ts runs as its header says", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-env",
      new URL("../examples/custom_storage.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.match(new TextDecoder().decode(out.stdout), /stored: \{ count: 3 \}/);
});

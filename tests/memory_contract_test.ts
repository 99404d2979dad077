import { MemorySessionStorage } from "../mod.ts";
import { storageContract } from "./contract.ts";

storageContract("MemorySessionStorage", {
  // One process: a second "process" on the same sessions is the same instance.
  create: (options) =>
    (options?.sharing as MemorySessionStorage<unknown> | undefined) ??
      new MemorySessionStorage(options?.ttl),
  persistent: false,
  largeValueBytes: 8 * 1024 * 1024,
  ttl: true,
  ttlMs: 300,
});

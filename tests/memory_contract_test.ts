import { MemorySessionStorage } from "../mod.ts";
import { storageContract } from "./contract.ts";

// One process: a second "process" on the same sessions is the same instance.
for (const maxEntries of [undefined, 10_000]) {
  storageContract(
    maxEntries === undefined ? "MemorySessionStorage" : "MemorySessionStorage with maxEntries",
    {
      create: (options) =>
        (options?.sharing as MemorySessionStorage<unknown> | undefined) ??
          new MemorySessionStorage({ ttl: options?.ttl, maxEntries }),
      persistent: false,
      largeValueBytes: 8 * 1024 * 1024,
      ttl: true,
      ttlMs: 300,
    },
  );
}

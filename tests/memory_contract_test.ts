import { MemorySessionStorage } from "../mod.ts";
import { storageContract } from "./contract.ts";

storageContract("MemorySessionStorage", {
  create: (options) => new MemorySessionStorage(options),
  largeValueBytes: 8 * 1024 * 1024,
  ttl: true,
  ttlMs: 300,
});

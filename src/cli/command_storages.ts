/**
 * The storages a command names: their URLs parsed, the storages opened for
 * the command and closed after it, and the keys they hold.
 *
 * @module
 */

import type { StorageAdapter } from "../storage.ts";
import type { Invocation } from "./args.ts";
import { CliError, EXIT, usage } from "./exit.ts";
import { hasTables, parseStorageUrl, type StorageSpec } from "./urls.ts";
import { type OpenedStorage, openStorage, type Role } from "./open_storage.ts";

/** The storage URLs among `urls`, parsed; checks that `--table` applies to one of them. */
export function parseAll(inv: Invocation, urls: string[]): StorageSpec[] {
  const specs = urls.map((url) => parseStorageUrl(url, inv.table));
  if (inv.table !== undefined && !specs.some((spec) => hasTables(spec.kind))) {
    throw usage(
      "--table applies to sqlite:, postgres: and mysql: storages only (a Redis key prefix " +
        "goes in the URL: redis://host:6379?prefix=bot:)",
    );
  }
  return specs;
}

/** Opens the storages, then runs `body`; closes them afterwards, whatever happens. */
export async function withStorages<R>(
  wanted: [StorageSpec, Role][],
  body: (opened: OpenedStorage[]) => Promise<R>,
): Promise<R> {
  const opened: OpenedStorage[] = [];
  try {
    for (const [spec, role] of wanted) opened.push(await openStorage(spec, role));
    return await body(opened);
  } finally {
    await Promise.all(opened.map((storage) => storage.close()));
  }
}

/** The keys of `storage` that start with `prefix`, lazily. */
export async function* keysOf(
  storage: StorageAdapter<unknown>,
  prefix: string | undefined,
): AsyncGenerator<string> {
  for await (const key of storage.readAllKeys!()) {
    if (prefix === undefined || key.startsWith(prefix)) yield key;
  }
}

/** The first key of `storage` under `prefix`, if it holds any. */
async function firstKey(
  storage: StorageAdapter<unknown>,
  prefix: string | undefined,
): Promise<string | undefined> {
  for await (const key of keysOf(storage, prefix)) return key;
  return undefined;
}

/**
 * Refuses to write into a target that already holds sessions (under the
 * prefix), unless `--overwrite` or `--skip-existing` says what to do with
 * them.
 */
export async function checkTargetEmpty(inv: Invocation, target: OpenedStorage): Promise<void> {
  if (inv.overwrite || inv.skipExisting || target.standIn) return;
  const key = await firstKey(target.storage, inv.prefix);
  if (key === undefined) return;
  throw new CliError(
    EXIT.refused,
    `${target.label} already holds sessions` +
      (inv.prefix === undefined ? "" : ` with keys starting with ${JSON.stringify(inv.prefix)}`) +
      ` (such as ${JSON.stringify(key)}); pass --skip-existing to keep them and ${inv.command} ` +
      "the rest, or --overwrite to replace them",
  );
}

/**
 * Shared setup of the Redis tests: the server at REDIS_URL (default
 * redis://127.0.0.1:6379), a loud skip when it is unreachable locally (a
 * failure when CI=true), unique prefixes per run, and cleanup.
 */
import { createClient } from "npm:redis@^5";
import { RedisStorage, type RedisStorageOptions } from "../storages/redis.ts";
import { escapeGlob } from "../storages/redis/glob.ts";

export const REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const IN_CI = Deno.env.get("CI") === "true";

/** A raw client for the tests' own look at what Redis holds. */
export type Admin = ReturnType<typeof createClient>;

async function probe(): Promise<string | undefined> {
  const client = createClient({
    url: REDIS_URL,
    socket: { connectTimeout: 2000, reconnectStrategy: false },
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    if (client.isOpen) client.destroy();
  }
}

const problem = await probe();
if (problem !== undefined && !IN_CI) {
  console.error(
    `\n${"!".repeat(78)}\n!!! SKIPPING the Redis tests: no Redis at ${REDIS_URL} (${problem}).\n` +
      `!!! Start one (redis-server) or set REDIS_URL. With CI=true they fail instead.\n` +
      `${"!".repeat(78)}\n`,
  );
}

/** Registers a test that needs Redis: skipped loudly locally, failing in CI. */
export function redisTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  if (problem === undefined) {
    Deno.test(name, fn);
  } else if (IN_CI) {
    Deno.test(name, () => {
      throw new Error(`Redis at ${REDIS_URL} is unreachable (${problem}); CI needs it.`);
    });
  } else {
    Deno.test({ name, ignore: true, fn });
  }
}

/** Whether Redis answered the probe. */
export const redisAvailable: boolean = problem === undefined;

/** A prefix unique to this call, under this run's base. */
export function uniquePrefix(): string {
  return `sessionkit-test:${crypto.randomUUID()}:`;
}

/** Opens a raw client. */
export async function openAdmin(): Promise<Admin> {
  const client = createClient({ url: REDIS_URL });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Deletes every key starting with `prefix` (SCAN + DEL), never with KEYS. */
export async function deleteUnder(admin: Admin, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = "0";
  do {
    const reply = await admin.scan(cursor, { MATCH: escapeGlob(prefix) + "*", COUNT: 1000 });
    cursor = String(reply.cursor);
    if (reply.keys.length > 0) deleted += await admin.del(reply.keys);
  } while (cursor !== "0");
  return deleted;
}

/**
 * Tracks what a test opens: storages made with `storage()` share one client
 * (`client`), every prefix they use is deleted by `cleanup()`, and every
 * storage or client opened through here is closed.
 */
export class RedisFixture {
  readonly prefixes: string[] = [];
  readonly #closers: (() => Promise<unknown>)[] = [];
  #admin: Admin | undefined;

  /** The shared raw client (opened on first use). */
  async admin(): Promise<Admin> {
    if (this.#admin === undefined) {
      this.#admin = await openAdmin();
      const admin = this.#admin;
      this.#closers.push(() => admin.close());
    }
    return this.#admin;
  }

  /** Remembers `prefix` (and its default lease prefix) for cleanup. */
  track(prefix: string): string {
    this.prefixes.push(prefix, `sessionkit-lease:${prefix}`);
    return prefix;
  }

  /** A storage over the shared admin client with a fresh unique prefix. */
  async storage<T>(options: RedisStorageOptions = {}): Promise<RedisStorage<T>> {
    const prefix = this.track(options.prefix ?? uniquePrefix());
    return new RedisStorage<T>(await this.admin(), { ...options, prefix });
  }

  /** A storage with a client of its own (another "process"), closed at cleanup. */
  async connect<T>(
    options: RedisStorageOptions = {},
    url: string = REDIS_URL,
  ): Promise<RedisStorage<T>> {
    if (options.prefix !== undefined) this.track(options.prefix);
    if (options.leasePrefix !== undefined) this.track(options.leasePrefix);
    const storage = await RedisStorage.connect<T>(url, {
      ...options,
      onError: () => {},
    });
    this.#closers.push(() => storage.close());
    return storage;
  }

  /** Deletes every key under the tracked prefixes and closes everything. */
  async cleanup(): Promise<void> {
    try {
      if (this.prefixes.length > 0) {
        const admin = await this.admin();
        for (const prefix of this.prefixes) {
          // Never delete outside the tests' own namespace on a shared server.
          if (prefix.includes("sessionkit-test:")) await deleteUnder(admin, prefix);
        }
      }
    } finally {
      for (const close of this.#closers.reverse()) await close().catch(() => {});
      this.#closers.length = 0;
      this.#admin = undefined;
    }
  }
}

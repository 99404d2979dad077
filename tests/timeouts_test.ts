/**
 * The `timeout` option of the networked storages (issue #19): a server that
 * goes silent fails the update after the bound, with a `SessionError` that
 * says what timed out, instead of leaving `bot.handleUpdate` pending forever.
 *
 * Through the fault proxy (tests/fixtures/fault_proxy.ts) in `swallow` mode
 * (connections open, nothing forwarded: a server stopped by SIGSTOP), on
 * Redis (node-redis via `RedisStorage.connect`, and ioredis), PostgreSQL and
 * MariaDB, with a real grammY Bot and `session()`, `lazySession()` and
 * `session()` with `lock`: the read, then the write, of an update time out
 * within bound + slack, the error reaches bot.catch, and after `heal` the
 * next update works. PostgreSQL also with the session row locked by another
 * session (`SELECT ... FOR UPDATE`, no proxy). Then every driver call at the
 * storage level (leases and listing pages included), a write that timed out
 * but landed (the middleware must treat its outcome as unknown), the option's
 * checks, and that a pending bound keeps no process alive. A test that sees
 * an update still pending after 5 s heals the proxy and fails. Deno's
 * sanitizers check that no timer or connection is left behind.
 */
import assert from "node:assert/strict";
import { Redis } from "npm:ioredis@^5";
import type { Context } from "npm:grammy@^1.46";
import type { Update } from "npm:grammy@^1.46/types";
import {
  lazySession,
  type LazySessionFlavor,
  session,
  SessionError,
  type SessionFlavor,
  SessionKeyError,
  SessionLockError,
  SessionValueError,
} from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import { DEFAULT_TIMEOUT_MS } from "../storages/shared/options.ts";
import { FaultProxy } from "./fixtures/fault_proxy.ts";
import { createHarness, type Harness, message, sleep } from "./helpers/bot.ts";
import { deleteUnder, openAdmin, REDIS_URL, redisTest, uniquePrefix } from "./redis_env.ts";
import {
  admin as pgAdmin,
  DATABASE_URL,
  dropTables as pgDropTables,
  pgTest,
  RUN as PG_RUN,
} from "./postgres_setup.ts";
import {
  admin as mysqlAdmin,
  dropTables as mysqlDropTables,
  MYSQL_URL,
  mysqlTest,
  RUN as MYSQL_RUN,
} from "./mysql_setup.ts";

/** The bound the tests set. */
const BOUND = 300;
/** How much later than the bound a failed update may end. */
const SLACK = 1200;
/** An update still pending this long means the bound did not hold. */
const GUARD = 5000;
/** Leases short enough that one left by a given-up call expires soon. */
const LOCK = { ttl: 1000, wait: 4000 };

type Data = { count: number };
// deno-lint-ignore no-explicit-any
type AnyStorage = RedisStorage<Data, any> | PostgresStorage<Data> | MysqlStorage<Data>;

/** One networked backend: a storage through a URL, and cleanup on the real server. */
interface Backend {
  name: string;
  /** The real server. */
  url: string;
  /** Registers a test that needs the server. */
  test(name: string, fn: () => Promise<void>): void;
  /** Whether lease takes are joined with the read (one call) on this backend. */
  joined: boolean;
  /**
   * Whether calls go over a pool of connections: calls held by the proxy
   * are then answered in any order once it heals.
   */
  pooled: boolean;
  /** A storage through `url` (the proxy) with a fresh namespace. */
  open(url: string, timeout: number): Promise<Opened>;
}

interface Opened {
  storage: AnyStorage;
  /** Closes the storage and its client, and removes what it stored. */
  close(): Promise<void>;
}

let tables = 0;

/**
 * Has `direct` (on the real server, default timeout) create the session
 * and lease tables (and PostgreSQL's locked-read function), then closes it:
 * creating them can take longer than the tests' bound on a loaded machine.
 */
async function createTables(direct: PostgresStorage<Data> | MysqlStorage<Data>): Promise<void> {
  try {
    await direct.write("warm", { count: 0 });
    await direct.delete("warm");
    await direct.acquireLeaseAndRead("warm", "warm", 1000);
    await direct.releaseLease("warm", "warm");
  } finally {
    await direct.close();
  }
}

/** Opens the connections of `storage` through the proxy, retrying a slow first connect. */
async function warmUp(storage: AnyStorage): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      await storage.read("warm");
      return;
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
}

const backends: Backend[] = [
  {
    name: "Redis (node-redis, RedisStorage.connect)",
    url: REDIS_URL,
    test: redisTest,
    joined: true,
    pooled: false,
    async open(url, timeout) {
      const prefix = uniquePrefix();
      const storage = await RedisStorage.connect<Data>(url, {
        prefix,
        timeout,
        onError: () => {},
      });
      return {
        storage,
        async close() {
          await storage.close();
          const admin = await openAdmin();
          await deleteUnder(admin, prefix);
          await deleteUnder(admin, `sessionkit-lease:${prefix}`);
          await admin.close();
        },
      };
    },
  },
  {
    name: "Redis (ioredis)",
    url: REDIS_URL,
    test: redisTest,
    joined: true,
    pooled: false,
    async open(url, timeout) {
      const prefix = uniquePrefix();
      const client = new Redis(url);
      client.on("error", () => {});
      await client.ping();
      const storage = new RedisStorage<Data, Redis>(client, { prefix, timeout });
      return {
        storage,
        async close() {
          await client.quit().catch(() => client.disconnect());
          const admin = await openAdmin();
          await deleteUnder(admin, prefix);
          await deleteUnder(admin, `sessionkit-lease:${prefix}`);
          await admin.close();
        },
      };
    },
  },
  {
    name: "PostgreSQL",
    url: DATABASE_URL,
    test: (name, fn) => pgTest(name, fn),
    joined: true,
    pooled: true,
    async open(url, timeout) {
      const table = `${PG_RUN}_timeouts_${++tables}`;
      await createTables(PostgresStorage.connect<Data>(DATABASE_URL, { table }));
      const storage = PostgresStorage.connect<Data>(url, { table, timeout });
      return await Promise.resolve({
        storage,
        async close() {
          await storage.close();
          const db = await pgAdmin();
          await pgDropTables(db, storage);
          await db.end();
        },
      });
    },
  },
  {
    name: "MariaDB",
    url: MYSQL_URL,
    test: mysqlTest,
    joined: false,
    pooled: true,
    async open(url, timeout) {
      const table = `${MYSQL_RUN}_timeouts_${++tables}`;
      await createTables(MysqlStorage.connect<Data>(MYSQL_URL, { table }));
      const storage = MysqlStorage.connect<Data>(url, { table, timeout });
      return await Promise.resolve({
        storage,
        async close() {
          await storage.close();
          const db = mysqlAdmin();
          await mysqlDropTables(db, storage);
          await db.end();
        },
      });
    },
  },
];

/**
 * Delivers `update` through the harness (a failure goes to bot.catch) and
 * returns how long it took. If it is still pending after {@link GUARD} ms,
 * runs `unstick` (heal the proxy, roll back the lock), lets it end, and
 * fails.
 */
async function deliver<C extends Context>(
  h: Harness<C>,
  update: Update,
  unstick: () => unknown,
): Promise<number> {
  const started = performance.now();
  const sending = h.send(update).then(() => "done" as const);
  const outcome = await within(sending, GUARD);
  const elapsed = performance.now() - started;
  if (outcome === undefined) {
    await unstick();
    await sending;
    assert.fail(`bot.handleUpdate was still pending after ${GUARD} ms`);
  }
  return elapsed;
}

/** What `promise` resolves to, or `undefined` if it is still pending after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<undefined>((
    resolve,
  ) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error of the one failed update since `before` errors, checked to be a timeout. */
function timeoutOf<C extends Context>(h: Harness<C>, before: number): SessionError {
  assert.equal(h.errors.length, before + 1, "the failed update reached bot.catch");
  const err = h.errors[before].error;
  assert.ok(err instanceof SessionError, `a SessionError, got ${String(err)}`);
  assert.match(err.message, new RegExp(`did not finish within ${BOUND} ms`));
  assert.match(err.message, /raise the storage's timeout option/);
  assert.match(err.message, /Check that the server is up/);
  return err;
}

function assertWithinBound(elapsed: number, what: string): void {
  assert.ok(
    elapsed >= BOUND - 5 && elapsed < BOUND + SLACK,
    `${what} failed after ${elapsed.toFixed(0)} ms, expected ${BOUND} to ${BOUND + SLACK} ms`,
  );
}

/** Polls `storage` until `key` holds `count`, for up to `ms`. */
async function stored(
  storage: AnyStorage,
  key: string,
  count: number,
  ms = 3000,
): Promise<Data | undefined> {
  let value: Data | undefined;
  for (let i = 0; i < ms / 50; i++) {
    value = await storage.read(key);
    if (value?.count === count) break;
    await sleep(50);
  }
  return value;
}

type Mode = "session()" | "lazySession()" | "session() with lock";
const modes: Mode[] = ["session()", "lazySession()", "session() with lock"];

let chats = 100;

for (const backend of backends) {
  for (const mode of modes) {
    backend.test(`timeouts: ${backend.name}, ${mode}: a silent server fails the update after the bound; heal and it works`, async () => {
      const proxy = await FaultProxy.forUrl(backend.url);
      let opened: Opened | undefined;
      try {
        opened = await backend.open(proxy.url, BOUND);
        const { storage } = opened;
        const chat = ++chats;
        const key = String(chat);
        let swallowOnSave = false;
        let handled = 0;
        const after = () => {
          handled++;
          if (swallowOnSave) proxy.swallow(); // the save that follows gets no answer
        };
        let h: Harness<Context>;
        if (mode === "lazySession()") {
          const lazy = createHarness<Context & LazySessionFlavor<Data>>();
          lazy.bot.use(lazySession({ initial: () => ({ count: 0 }), storage }));
          lazy.bot.on("message", async (ctx) => {
            (await ctx.session).count++;
            after();
          });
          h = lazy as unknown as Harness<Context>;
        } else {
          const strict = createHarness<Context & SessionFlavor<Data>>();
          strict.bot.use(session({
            initial: () => ({ count: 0 }),
            storage,
            ...(mode === "session() with lock" ? { lock: LOCK } : {}),
          }));
          strict.bot.on("message", (ctx) => {
            ctx.session.count++;
            after();
          });
          h = strict as unknown as Harness<Context>;
        }
        const unstick = () => proxy.heal();

        // Warm up: tables created, connections open.
        await warmUp(storage);
        await deliver(h, message(chat), unstick);
        assert.equal(h.errors.length, 0, String(h.errors[0]?.error));
        assert.deepEqual(await storage.read(key), { count: 1 });

        // The read gets no answer.
        proxy.swallow();
        let elapsed = await deliver(h, message(chat), unstick);
        const readMs = elapsed;
        assertWithinBound(elapsed, "the read");
        const readError = timeoutOf(h, 0);
        assert.equal(readError.key, key);
        const read = mode !== "session() with lock"
          ? `the read of key "${key}"`
          : backend.joined
          ? `taking the lease of key "${key}" with the read of its session`
          : `taking the lease of key "${key}"`;
        assert.ok(readError.message.includes(read), readError.message);
        assert.equal(handled, 1, "the handler did not run without its session");
        proxy.heal();
        await sleep(BOUND); // the held calls are answered, their connections idle again

        // After heal, the next update works (with lock, once the lease the
        // given-up call took has expired).
        elapsed = await deliver(h, message(chat), unstick);
        assert.equal(h.errors.length, 1, String(h.errors[1]?.error));
        assert.deepEqual(await storage.read(key), { count: 2 });
        assert.ok(elapsed < LOCK.ttl + SLACK, `recovered in ${elapsed.toFixed(0)} ms`);

        // The write gets no answer: the handler stops the proxy before the save.
        swallowOnSave = true;
        elapsed = await deliver(h, message(chat), unstick);
        const writeMs = elapsed;
        swallowOnSave = false;
        assert.equal(handled, 3);
        // With lock, the update also waits for the lease's release (bounded too).
        assertWithinBound(elapsed - (mode === "session() with lock" ? BOUND : 0), "the write");
        const writeError = timeoutOf(h, 1);
        assert.equal(writeError.key, key);
        const write = mode === "session() with lock"
          ? `the locked write of key "${key}"`
          : `the conditional write of key "${key}"`;
        assert.ok(writeError.message.includes(write), writeError.message);
        assert.match(writeError.message, /Its outcome is unknown: it may still land/);
        assert.ok(
          !(writeError instanceof SessionValueError || writeError instanceof SessionKeyError ||
            writeError instanceof SessionLockError),
          "not an error of a write that was never sent",
        );
        proxy.heal();
        // A connection check started when the write was given up may still
        // drop its connection within one bound, failing a read sent now.
        await sleep(BOUND);
        // The held write is delivered now: it lands after it was reported
        // failed. With lock over a pool, the lease's release (held too, on
        // another connection) may run first; the locked write then finds no
        // lease and writes nothing: either outcome is what "unknown" means.
        const mayMiss = mode === "session() with lock" && backend.pooled;
        const landed = await stored(storage, key, 3, mayMiss ? 1000 : 3000);
        if (mayMiss) assert.ok([2, 3].includes(landed?.count ?? -1), JSON.stringify(landed));
        else assert.deepEqual(landed, { count: 3 }, "the given-up write landed");

        await deliver(h, message(chat), unstick);
        assert.equal(h.errors.length, 2, String(h.errors[2]?.error));
        const next = (landed?.count ?? 0) + 1;
        assert.deepEqual(await stored(storage, key, next), { count: next });
        console.log(
          `timeouts: ${backend.name}, ${mode}: bound ${BOUND} ms; silent read failed the update ` +
            `after ${readMs.toFixed(0)} ms, silent write after ${writeMs.toFixed(0)} ms; the ` +
            `given-up write ${landed?.count === 3 ? "landed after heal" : "did not land"}`,
        );
      } finally {
        proxy.heal();
        await opened?.close();
        await proxy.close();
      }
    });
  }

  backend.test(`timeouts: ${backend.name}: every call of the storage is bounded (reads, writes, leases, listing pages)`, async () => {
    const proxy = await FaultProxy.forUrl(backend.url);
    let opened: Opened | undefined;
    try {
      opened = await backend.open(proxy.url, BOUND);
      const storage = opened.storage;
      await warmUp(storage);
      await storage.write("seed", { count: 1 });
      assert.equal(await storage.acquireLease("held", "me", 10_000), true);
      const { version } = await storage.readVersioned("seed");
      proxy.swallow();
      const calls: [string, RegExp, () => Promise<unknown>][] = [
        ["read", /the read of key "a"/, () => storage.read("a")],
        ["readVersioned", /the read of key "b"/, () => storage.readVersioned("b")],
        ["has", /the existence check of key "c"/, () => storage.has("c")],
        [
          "write",
          /the write of key "d".*outcome is unknown/,
          () => storage.write("d", { count: 1 }),
        ],
        [
          "writeIfVersion",
          /the conditional write of key "seed".*outcome is unknown/,
          () => storage.writeIfVersion("seed", { count: 2 }, version),
        ],
        ["delete", /the delete of key "e".*outcome is unknown/, () => storage.delete("e")],
        [
          "deleteIfVersion",
          /the conditional delete of key "f".*outcome is unknown/,
          () => storage.deleteIfVersion("f", null),
        ],
        [
          "acquireLease",
          /taking the lease of key "g"/,
          () => storage.acquireLease("g", "me", 10_000),
        ],
        [
          "renewLease",
          /renewing the lease of key "held"/,
          () => storage.renewLease("held", "me", 10_000),
        ],
        [
          "releaseLease",
          /giving up the lease of key "held"/,
          () => storage.releaseLease("held", "me"),
        ],
        [
          "acquireLeaseAndRead",
          backend.joined
            ? /taking the lease of key "h" with the read/
            : /taking the lease of key "h"/,
          () => storage.acquireLeaseAndRead("h", "me", 10_000),
        ],
        [
          "saveAndReleaseLease",
          /the locked write of key "i".*outcome is unknown/,
          () => storage.saveAndReleaseLease("i", { count: 1 }, undefined, "me"),
        ],
        [
          "readAllKeys",
          /a page of the listing of session keys/,
          () => Array.fromAsync(storage.readAllKeys()),
        ],
        [
          "readAllEntries",
          /a page of the listing of sessions/,
          () => Array.fromAsync(storage.readAllEntries()),
        ],
      ];
      if (!(storage instanceof RedisStorage)) {
        calls.push(["purgeExpired", /purging expired sessions/, () => storage.purgeExpired()]);
      }
      const started = performance.now();
      const all = Promise.all(calls.map(async ([name, expected, call]) => {
        try {
          await call();
          return `${name}: no error`;
        } catch (err) {
          const elapsed = performance.now() - started;
          if (!(err instanceof SessionError)) return `${name}: ${String(err)}`;
          if (!expected.test(err.message)) return `${name}: ${err.message}`;
          if (!err.message.includes(`did not finish within ${BOUND} ms`)) return err.message;
          return elapsed < BOUND + SLACK ? `${name}: bounded` : `${name}: ${elapsed} ms`;
        }
      }));
      const outcomes = await within(all, GUARD);
      if (outcomes === undefined) {
        proxy.heal();
        await all;
        assert.fail(`storage calls were still pending after ${GUARD} ms`);
      }
      assert.deepEqual(outcomes, calls.map(([name]) => `${name}: bounded`));
      proxy.heal();
      // Everything given up is answered now; the storage works again.
      await storage.write("after", { count: 5 });
      assert.deepEqual(await storage.read("after"), { count: 5 });
    } finally {
      proxy.heal();
      await sleep(100); // let the held calls be answered before the client closes
      await opened?.close();
      await proxy.close();
    }
  });
}

for (const lock of [false, true]) {
  pgTest(
    `timeouts: PostgreSQL, session()${
      lock ? " with lock" : ""
    }: a session row locked by another session fails the update after the bound`,
    async () => {
      const table = `${PG_RUN}_timeouts_locked_${++tables}`;
      await createTables(PostgresStorage.connect<Data>(DATABASE_URL, { table }));
      const storage = PostgresStorage.connect<Data>(DATABASE_URL, { table, timeout: BOUND });
      const blocker = await pgAdmin();
      let locked = false;
      const unlock = async () => {
        if (!locked) return;
        locked = false;
        await blocker.query("ROLLBACK");
      };
      try {
        const h = createHarness<Context & SessionFlavor<Data>>();
        h.bot.use(session({
          initial: () => ({ count: 0 }),
          storage,
          ...(lock ? { lock: LOCK } : {}),
        }));
        h.bot.on("message", (ctx) => void ctx.session.count++);
        const chat = ++chats;
        const key = String(chat);
        await deliver(h, message(chat), unlock);
        assert.deepEqual(await storage.read(key), { count: 1 });

        await blocker.query("BEGIN");
        locked = true;
        const { rows } = await blocker.query(
          `SELECT value FROM ${blocker.escapeIdentifier(table)} WHERE key = $1 FOR UPDATE`,
          [key],
        );
        assert.equal(rows.length, 1, "the session row is locked");
        const elapsed = await deliver(h, message(chat), unlock);
        console.log(
          `timeouts: PostgreSQL, session()${lock ? " with lock" : ""}: bound ${BOUND} ms; the ` +
            `write behind a row lock failed the update after ${elapsed.toFixed(0)} ms`,
        );
        assertWithinBound(elapsed - (lock ? BOUND : 0), "the write behind the row lock");
        const err = timeoutOf(h, 0);
        const write = lock ? `the locked write of key "${key}"` : `the conditional write of key`;
        assert.ok(err.message.includes(write), err.message);
        assert.match(err.message, /outcome is unknown/);
        assert.equal(err.key, key);

        await unlock();
        // The statement waited for the lock on the server and now runs: it lands.
        assert.deepEqual(await stored(storage, key, 2), { count: 2 });
        await deliver(h, message(chat), unlock);
        assert.equal(h.errors.length, 1, String(h.errors[1]?.error));
        assert.deepEqual(await stored(storage, key, 3), { count: 3 });
      } finally {
        await unlock();
        await storage.close();
        await pgDropTables(blocker, storage);
        await blocker.end();
      }
    },
  );
}

redisTest(
  "timeouts: a conditional write that timed out but landed leaves the version unknown (a concurrent update's save still lands)",
  async () => {
    // Update B reads and waits; update A (same chat, same live session) sets
    // n = 1, and its write is slowed past the bound: it fails, then lands.
    // B then sets n back to 0. Had the middleware taken the timeout for a
    // write that was never sent, B's value would equal what it believes is
    // stored (0) and B's save would be skipped, leaving A's 1.
    //
    // On a client passed in (ioredis here): a client RedisStorage.connect
    // opened would see its connection answer nothing for a second bound
    // after the timeout and drop it (tests/chaos_test.ts, half-open
    // connections), and A's write would then not land at all.
    const proxy = await FaultProxy.forUrl(REDIS_URL);
    let opened: Opened | undefined;
    try {
      opened = await backends[1].open(proxy.url, BOUND);
      const storage = opened.storage;
      await storage.write("1", { count: 0 });
      const h = createHarness<Context & SessionFlavor<Data>>();
      h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      const aDone = Promise.withResolvers<void>();
      h.bot.on("message", async (ctx) => {
        if (ctx.message.text === "A") {
          ctx.session.count = 1;
          proxy.latency(BOUND + 300); // A's save gets its answer too late
          return;
        }
        await aDone.promise;
        ctx.session.count = 0;
      });
      const b = h.send(message(1, "B"));
      await sleep(50);
      await h.send(message(1, "A"));
      const err = h.errors[0]?.error;
      assert.ok(err instanceof SessionError, String(err));
      assert.match(err.message, /the conditional write of key "1" did not finish within 300 ms/);
      // A's write lands at BOUND + 300 ms, its answer comes back as late; the
      // slowed chunks are all through after twice that.
      await sleep(2 * (BOUND + 300));
      proxy.heal();
      assert.deepEqual(await storage.read("1"), { count: 1 }, "A's write landed after it failed");
      aDone.resolve();
      await b;
      assert.equal(h.errors.length, 1, String(h.errors[1]?.error));
      assert.deepEqual(await storage.read("1"), { count: 0 }, "B's save landed");
    } finally {
      proxy.heal();
      await opened?.close();
      await proxy.close();
    }
  },
);

Deno.test("timeouts: the option is checked when the storage is created, naming the fix", async () => {
  const fakeRedis = { sendCommand: () => Promise.resolve(null) } as never;
  const fakePg = { query: () => Promise.resolve({ rows: [], rowCount: 0 }) } as never;
  const fakeMysql = {
    query: () => Promise.resolve([[], []]),
    execute: () => Promise.resolve([[], []]),
  } as never;
  const makers: [string, (options: Record<string, unknown>) => { timeout: number }][] = [
    ["RedisStorage", (o) => new RedisStorage(fakeRedis, o)],
    ["PostgresStorage", (o) => new PostgresStorage(fakePg, o)],
    ["MysqlStorage", (o) => new MysqlStorage(fakeMysql, o)],
  ];
  assert.equal(DEFAULT_TIMEOUT_MS, 10_000);
  for (const [name, make] of makers) {
    assert.equal(make({}).timeout, 10_000, `${name}: the default`);
    assert.equal(make({ timeout: 250 }).timeout, 250);
    assert.equal(make({ timeout: Infinity }).timeout, Infinity, `${name}: no bound`);
    for (const timeout of [0, -1, NaN, 0.5, 2 ** 31, -Infinity]) {
      assert.throws(
        () => make({ timeout }),
        (err: Error) =>
          err instanceof RangeError &&
          err.message.startsWith(`${name}: timeout must be a number of milliseconds`) &&
          err.message.includes("or Infinity for no bound"),
        `${name} ${timeout}`,
      );
    }
    assert.throws(() => make({ timeout: 0 }), /0 does not turn the bound off: pass Infinity/);
    assert.throws(() => make({ timeout: "300" }), TypeError, `${name} "300"`);
    assert.throws(() => make({ timeout: "300" }), /got "300"/);
    assert.throws(
      () => make({ timout: 300 }),
      /unknown option "timout" \(did you mean "timeout"\?\)/,
    );
  }
  // The connect helpers refuse a bad timeout before opening anything.
  await assert.rejects(RedisStorage.connect("redis://127.0.0.1:1", { timeout: 0 }), RangeError);
  assert.throws(
    () => PostgresStorage.connect("postgres://127.0.0.1:1/x", { timeout: -5 }),
    RangeError,
  );
  assert.throws(() => MysqlStorage.connect("mysql://127.0.0.1:1/x", { timeout: -5 }), RangeError);
});

redisTest(
  "timeouts: the calls of one bound share one timer, which settled calls do not re-arm",
  async () => {
    // Deno's sanitizers do not count unref'd timers, so the timers of the
    // bound (a minute long here, told apart by that) are counted as they are
    // set, fire and are cleared.
    const BOUND_MS = 60_000;
    const live = new Set<unknown>();
    let armed = 0;
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      const bound = ms !== undefined && ms > BOUND_MS - 1000 && ms <= BOUND_MS;
      const id = realSet(() => {
        live.delete(id);
        fn();
      }, ms);
      if (bound) {
        live.add(id);
        armed++;
      }
      return id;
    }) as typeof setTimeout;
    globalThis.clearTimeout = ((id?: number) => {
      live.delete(id);
      realClear(id);
    }) as typeof clearTimeout;
    const prefix = uniquePrefix();
    let storage: RedisStorage<Data> | undefined;
    try {
      storage = await RedisStorage.connect<Data>(REDIS_URL, {
        prefix,
        timeout: BOUND_MS,
        onError: () => {},
      });
      armed = 0; // connecting has a timer of its own
      for (let i = 0; i < 20; i++) {
        await storage.write("a", { count: i });
        assert.deepEqual(await storage.read("a"), { count: i });
        assert.equal(await storage.acquireLease("a", "me", 1000), true);
        await storage.releaseLease("a", "me");
      }
      assert.deepEqual(await Array.fromAsync(storage.readAllKeys()), ["a"]);
      await storage.delete("a");
      const { timed } = await import("../storages/shared/timeout.ts");
      assert.equal(await timed("X", BOUND_MS, { what: "a call" }, Promise.resolve(1)), 1);
      await assert.rejects(
        timed("X", BOUND_MS, { what: "a call" }, Promise.reject(new Error("no"))) as Promise<never>,
        /no/,
      );
    } finally {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
      for (const id of live) realClear(id as number);
      await storage?.close();
    }
    // Over 80 bounded calls, all within the first call's bound: one timer,
    // armed for the first call's deadline (where it would find nothing left to
    // watch and stop), and no timer of a call's own.
    assert.equal(armed, 1, `${armed} bound timers were set`);
    assert.ok(live.size <= 1, `${live.size} bound timers were left running`);
  },
);

Deno.test("timeouts: a bound still pending keeps no process alive", async () => {
  // A driver call that never answers, bounded by 30 s: the process must
  // end at once when nothing else is left to do.
  const script = `
    import { timed } from ${
    JSON.stringify(new URL("../storages/shared/timeout.ts", import.meta.url).href)
  };
    timed("X", 30_000, { what: "a call" }, new Promise(() => {})).catch(() => {});
  `;
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", script],
    stdout: "null",
    stderr: "piped",
  }).output();
  const elapsed = performance.now() - started;
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.ok(elapsed < 15_000, `the process ended after ${elapsed.toFixed(0)} ms`);
});

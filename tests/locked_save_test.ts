/**
 * A locked save is written only while the lease is still held, on every
 * storage: when the save reaches the storage after the lease ran out (the
 * call waited in a pool's queue or on the network) and another process took
 * the lease and wrote meanwhile, nothing is written, and the late update
 * fails with a `SessionLockError`. With `onConflict: "overwrite"` nothing
 * else would stop it from writing over the other process's update.
 * Two grammY bots, one storage each, as two processes would have them.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  MemorySessionStorage,
  session,
  type SessionFlavor,
  SessionLockError,
  type StorageAdapter,
} from "../mod.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
import { type Backend, openStorage } from "./fixtures/counter_worker.ts";
import { deleteUnder, openAdmin, REDIS_URL, redisAvailable } from "./redis_env.ts";
import { admin, DATABASE_URL, dropTables, RUN } from "./postgres_setup.ts";
import { tableNames } from "../storages/postgres/sql.ts";
import * as mysql from "./mysql_setup.ts";
import { DriverStorage } from "../storages/shared/driver_storage.ts";
import { MemoryDriver } from "../storages/memory/driver.ts";
import { jsonCopy } from "../storages/shared/codec.ts";

type Data = { count: number; by?: string };
type C = Context & SessionFlavor<Data>;

/** The lease time: far shorter than the delay of the late save. */
const LEASE_TTL = 300;
const LATE_MS = 1200;

/** A bot whose updates set `by` to `name` and count, locked, last write wins. */
function bot(storage: StorageAdapter<Data>, name: string) {
  const h = createHarness<C>();
  h.bot.use(session({
    initial: () => ({ count: 0 }),
    storage,
    lock: { ttl: LEASE_TTL, wait: 5000 },
    onConflict: "overwrite",
  }));
  h.bot.on("message", (ctx) => {
    ctx.session.count++;
    ctx.session.by = name;
  });
  return h;
}

/** Makes the next locked save of `storage` reach it `ms` late. */
function delayNextSave(storage: StorageAdapter<Data>, ms: number): void {
  const locked = storage as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const save = locked.saveAndReleaseLease;
  assert.equal(typeof save, "function", "the storage joins the save with the release");
  let late = true;
  locked.saveAndReleaseLease = async function (...args: unknown[]) {
    if (late) {
      late = false;
      await sleep(ms);
    }
    return await save.apply(this, args);
  };
}

async function scenario(a: StorageAdapter<Data>, b: StorageAdapter<Data>) {
  const first = bot(a, "A");
  const second = bot(b, "B");
  delayNextSave(a, LATE_MS);
  const late = first.send(message(1));
  await sleep(50); // A holds the lease and has reached its save
  await second.send(message(1)); // takes the lease once A's ran out, reads, writes
  await late;
  assert.deepEqual(second.errors.map((e) => String(e.error)), []);
  assert.equal(first.errors.length, 1, "A's late save fails");
  assert.ok(first.errors[0].error instanceof SessionLockError, String(first.errors[0].error));
  assert.deepEqual(await b.read("1"), { count: 1, by: "B" }, "B's update is kept");
  // And afterwards both bots go on as usual.
  await first.send(message(1));
  assert.deepEqual(await b.read("1"), { count: 2, by: "A" });
}

/** `saveAndReleaseLease` as every storage with a joined save defines it. */
type Joined = StorageAdapter<Data> & {
  readVersioned(key: string): Promise<{ value: Data | undefined; version: string | null }>;
  acquireLease(key: string, owner: string, ttl: number): Promise<boolean>;
  releaseLease(key: string, owner: string): Promise<void>;
  renewLease(key: string, owner: string, ttl: number): Promise<boolean>;
  saveAndReleaseLease(
    key: string,
    value: Data | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<{ saved: true; version: string | null } | { saved: false; reason: string }>;
  saveKeepingLease: Joined["saveAndReleaseLease"];
};

/**
 * `saveKeepingLease`: nothing written without the lease (none, another
 * owner's, expired); a conflict, a save and a delete each keep it.
 */
async function keepingCalls(storage: Joined, big?: Data) {
  const key = "keeping";
  await storage.write(key, { count: 1 });
  const { version } = await storage.readVersioned(key);
  const refused = async (why: string, owner = "me") => {
    for (const [expected, value] of [[version, { count: 2 }], [undefined, undefined]] as const) {
      assert.deepEqual(
        await storage.saveKeepingLease(key, value, expected, owner),
        { saved: false, reason: "lease" },
        `${why}: ${expected} ${JSON.stringify(value)}`,
      );
      assert.deepEqual(await storage.read(key), { count: 1 }, `${why}: nothing written`);
    }
  };
  await refused("no lease");
  assert.equal(await storage.acquireLease(key, "other", 5000), true);
  await refused("another owner's lease");
  await storage.releaseLease(key, "other");
  assert.equal(await storage.acquireLease(key, "me", 30), true);
  await sleep(60);
  await refused("my expired lease");

  assert.equal(await storage.acquireLease(key, "me", 5000), true);
  assert.deepEqual(await storage.saveKeepingLease(key, { count: 9 }, "0", "me"), {
    saved: false,
    reason: "conflict",
  });
  const saved = await storage.saveKeepingLease(key, big ?? { count: 2 }, version, "me");
  assert.equal(saved.saved, true);
  assert.deepEqual(await storage.read(key), big ?? { count: 2 });
  const next = saved.saved ? saved.version : null;
  const again = await storage.saveKeepingLease(key, { count: 3 }, next ?? undefined, "me");
  assert.equal(again.saved, true, "the lease was kept for the next save");
  assert.deepEqual(await storage.saveKeepingLease(key, undefined, undefined, "me"), {
    saved: true,
    version: null,
  });
  assert.equal(await storage.read(key), undefined);
  assert.equal(await storage.acquireLease(key, "other", 5000), false, "still held");
  // The holder's renewals go on beside such saves (Deno KV checks the lease
  // by its versionstamp, which a renewal changes).
  for (let i = 0; i < 20; i++) {
    const [kept, renewed] = await Promise.all([
      storage.saveKeepingLease(key, { count: i }, undefined, "me"),
      storage.renewLease(key, "me", 5000),
    ]);
    assert.equal(kept.saved, true, `save ${i} beside a renewal`);
    assert.equal(renewed, true);
  }
  if (big !== undefined) {
    // A save in several commits, renewed all along (attack38 F2: on Deno KV
    // every attempt of it met a renewal, and it gave up as "lease").
    let saving = true;
    const renewing = (async () => {
      while (saving) {
        assert.equal(await storage.renewLease(key, "me", 5000), true);
        await sleep(2);
      }
    })();
    const kept = await storage.saveKeepingLease(key, big, undefined, "me");
    saving = false;
    await renewing;
    assert.equal(kept.saved, true, "a big save beside renewals");
    assert.deepEqual(await storage.read(key), big);
  }
  assert.equal((await storage.saveKeepingLease(key, undefined, undefined, "me")).saved, true);
  await storage.releaseLease(key, "me");
}

/**
 * The calls themselves: without the lease (none, another owner's, expired,
 * taken over) nothing is written or deleted, whatever the condition; a
 * conflict keeps the lease; a save gives it up. `big` is a session larger
 * than the storage keeps in one record, where it splits them.
 */
async function calls(storage: Joined, big?: Data) {
  const key = "calls";
  await storage.write(key, { count: 1 });
  const { version } = await storage.readVersioned(key);
  const tries: [string | null | undefined, Data | undefined][] = [
    [version, { count: 2 }],
    [undefined, { count: 2 }],
    [null, { count: 2 }],
    [version, undefined],
    [undefined, undefined],
    [null, undefined],
  ];
  if (big !== undefined) tries.push([version, big], [undefined, big]);
  const attempt = async (why: string) => {
    for (const [expected, value] of tries) {
      const what = `${why}: ${expected} ${value === big ? "big" : JSON.stringify(value)}`;
      assert.deepEqual(
        await storage.saveAndReleaseLease(key, value, expected, "me"),
        { saved: false, reason: "lease" },
        what,
      );
      assert.deepEqual(await storage.read(key), { count: 1 }, `${what}: nothing written`);
    }
  };
  await attempt("no lease");
  assert.equal(await storage.acquireLease(key, "other", 5000), true);
  await attempt("another owner's lease");
  assert.equal(await storage.acquireLease(key, "me", 5000), false, "theirs is kept");
  await storage.releaseLease(key, "other");
  assert.equal(await storage.acquireLease(key, "me", 30), true);
  await sleep(60);
  await attempt("my expired lease");
  assert.equal(await storage.acquireLease(key, "other", 5000), true);
  await attempt("taken over after it expired");
  await storage.releaseLease(key, "other");

  assert.equal(await storage.acquireLease(key, "me", 5000), true);
  assert.deepEqual(
    await storage.saveAndReleaseLease(key, { count: 9 }, "0", "me"),
    { saved: false, reason: "conflict" },
  );
  assert.equal(await storage.acquireLease(key, "other", 5000), false, "a conflict keeps it");
  const saved = await storage.saveAndReleaseLease(key, big ?? { count: 2 }, version, "me");
  assert.equal(saved.saved, true);
  assert.deepEqual(await storage.read(key), big ?? { count: 2 });
  assert.equal(await storage.acquireLease(key, "other", 5000), true, "a save gives it up");
  await storage.releaseLease(key, "other");
  assert.equal(await storage.acquireLease(key, "me", 5000), true);
  assert.deepEqual(await storage.saveAndReleaseLease(key, undefined, undefined, "me"), {
    saved: true,
    version: null,
  });
  assert.equal(await storage.read(key), undefined);
  assert.equal(await storage.acquireLease(key, "other", 5000), true, "a delete gives it up");
  await storage.releaseLease(key, "other");
  assert.equal(await storage.acquireLease(key, "me", 5000), true);
  assert.deepEqual(await storage.saveAndReleaseLease(key, undefined, null, "me"), {
    saved: true,
    version: null,
  });
  assert.equal(await storage.acquireLease(key, "other", 5000), true, "so does a delete of nothing");
  await storage.releaseLease(key, "other");
}

/** Drops what a run left on a server: the PostgreSQL tables and functions, the Redis keys. */
async function cleanUp(backend: Backend): Promise<void> {
  if (backend.kind === "postgres") {
    const db = await admin();
    try {
      const { leaseTable } = tableNames(undefined, backend.table);
      await dropTables(db, { schema: undefined, table: backend.table, leaseTable });
    } finally {
      await db.end();
    }
  } else if (backend.kind === "mysql") {
    const db = mysql.admin();
    try {
      await mysql.dropTables(db, { table: backend.table, leaseTable: `${backend.table}_leases` });
    } finally {
      await db.end();
    }
  } else if (backend.kind === "redis") {
    const client = await openAdmin();
    try {
      await deleteUnder(client, backend.prefix);
    } finally {
      await client.quit();
    }
  }
}

Deno.test("a locked save that arrives after its lease ran out writes nothing", async (t) => {
  await t.step("MemorySessionStorage: the calls", async () => {
    await calls(new MemorySessionStorage<Data>() as unknown as Joined);
    await keepingCalls(new MemorySessionStorage<Data>() as unknown as Joined);
  });
  await t.step("a MemorySessionStorage subclass (two bots on one storage)", async () => {
    // Its own `read` turns the memory storage's direct access off, so the
    // save goes through `saveAndReleaseLease`, which can now arrive late.
    class Subclass extends MemorySessionStorage<Data> {
      override read(key: string) {
        return super.read(key);
      }
    }
    const storage = new Subclass();
    await scenario(storage, storage);
  });

  const dir = await Deno.makeTempDir({ prefix: "sk-locked-save-" });
  const tag = RUN.replace(/\W/g, "_");
  const backends: [string, Backend, boolean][] = [
    ["SqliteStorage", { kind: "sqlite", path: `${dir}/s.sqlite`, table: `${tag}_s` }, true],
    ["DenoKvStorage", { kind: "denokv", path: `${dir}/kv.sqlite`, prefix: tag }, true],
    ["RedisStorage", { kind: "redis", url: REDIS_URL, prefix: `${tag}:` }, redisAvailable],
    ["PostgresStorage", { kind: "postgres", url: DATABASE_URL, table: `${tag}_ls` }, true],
    [
      "MysqlStorage",
      { kind: "mysql", url: mysql.MYSQL_URL, table: `${tag}_ls` },
      mysql.mysqlAvailable,
    ],
  ];
  try {
    for (const [name, backend, available] of backends) {
      await t.step({
        name: `${name} (two storages, as two processes)`,
        ignore: !available && Deno.env.get("CI") !== "true",
        fn: async () => {
          const a = await openStorage(backend);
          const b = await openStorage(backend);
          try {
            await scenario(a.storage, b.storage);
            await b.storage.delete("1");
            // Deno KV keeps a session over 64 KiB in chunks, and one over
            // 800 KiB in several commits; the others in one row each.
            const big = { count: 7, by: "x".repeat(backend.kind === "denokv" ? 900_000 : 1000) };
            await calls(a.storage as Joined, big);
            await keepingCalls(a.storage as Joined, big);
            if (backend.kind === "denokv") {
              // Nothing left behind: no chunks of the saves refused, no lease.
              const kv = await Deno.openKv(backend.path);
              const left = await Array.fromAsync(kv.list({ prefix: [backend.prefix] }));
              kv.close();
              assert.deepEqual(left.map((e) => e.key), []);
            }
          } finally {
            await a.close();
            await b.close();
            await cleanUp(backend);
          }
        },
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SqliteStorage: a locked save refused by a reader leaves no transaction open", async () => {
  // In rollback-journal mode the savepoint's RELEASE is the commit, which a
  // reader's shared lock holds off until the busy timeout (attack34 F1).
  const { DatabaseSync } = await import("node:sqlite");
  const { SqliteStorage } = await import("../storages/sqlite.ts");
  const dir = await Deno.makeTempDir({ prefix: "sk-locked-save-rj-" });
  const path = `${dir}/s.sqlite`;
  const db = new DatabaseSync(path);
  const reader = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = DELETE");
    const storage = new SqliteStorage<Data>(db, { busyTimeout: 100 }) as unknown as Joined;
    await storage.write("k", { count: 1 });
    const { version } = await storage.readVersioned("k");
    assert.equal(await storage.acquireLease("k", "me", 5000), true);
    reader.exec("BEGIN");
    reader.prepare(`SELECT count(*) FROM "sessions"`).get();
    await assert.rejects(storage.saveAndReleaseLease("k", { count: 2 }, version, "me"), /locked/);
    assert.equal(db.isTransaction, false, "nothing left open on the handle");
    // Refusals still answer, and leave nothing open either.
    assert.deepEqual(await storage.saveAndReleaseLease("k", { count: 2 }, "0", "me"), {
      saved: false,
      reason: "conflict",
    });
    assert.deepEqual(await storage.saveAndReleaseLease("k", { count: 2 }, version, "other"), {
      saved: false,
      reason: "lease",
    });
    assert.equal(db.isTransaction, false);
    reader.exec("COMMIT");
    const seen = () => ({
      ...reader.prepare(`SELECT "value" FROM "sessions" WHERE "key" = 'k'`).get(),
    });
    assert.deepEqual(seen(), { value: '{"count":1}' }, "the refused save wrote nothing");
    assert.equal((await storage.saveAndReleaseLease("k", { count: 3 }, version, "me")).saved, true);
    assert.equal(db.isTransaction, false);
    assert.deepEqual(seen(), { value: '{"count":3}' }, "the next save is committed");
  } finally {
    db.close();
    reader.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a conflict met while holding the lease says what breaks the lock", async () => {
  // A bot with lock and one without on one storage: the unlocked one writes
  // while the locked one holds the lease (attack33b: the error told a bot
  // that uses lock to use lock).
  const storage = new MemorySessionStorage<Data>();
  const locked = createHarness<C>();
  locked.bot.use(session({
    initial: () => ({ count: 0 }),
    storage,
    lock: { ttl: 3000, wait: 5000 },
    onConflict: "error",
  }));
  let resume!: () => void;
  const paused = new Promise<void>((resolve) => resume = resolve);
  let reached!: () => void;
  const read = new Promise<void>((resolve) => reached = resolve);
  locked.bot.on("message", async (ctx) => {
    ctx.session.count++;
    reached();
    await paused;
  });
  const unlocked = createHarness<C>();
  unlocked.bot.use(session({ initial: () => ({ count: 0 }), storage, onConflict: "error" }));
  let writes = 0;
  unlocked.bot.on("message", (ctx) => void (ctx.session.by = `unlocked ${++writes}`));
  const first = locked.send(message(1));
  await read;
  await unlocked.send(message(1));
  resume();
  await first;
  assert.deepEqual(unlocked.errors, []);
  assert.equal(locked.errors.length, 1);
  const text = String(locked.errors[0].error);
  assert.match(text, /SessionConflictError/);
  assert.match(text, /held the key's lease/);
  assert.match(text, /writes without the lease/);
  assert.doesNotMatch(text, /or use lock/);
  // Without lock the advice is to use it.
  const plain = createHarness<C>();
  plain.bot.use(session({ initial: () => ({ count: 0 }), storage, onConflict: "error" }));
  let go!: () => void;
  const wait = new Promise<void>((resolve) => go = resolve);
  let seen!: () => void;
  const inside = new Promise<void>((resolve) => seen = resolve);
  plain.bot.on("message", async (ctx) => {
    ctx.session.count++;
    seen();
    await wait;
  });
  const slow = plain.send(message(1));
  await inside;
  await unlocked.send(message(1));
  go();
  await slow;
  assert.match(String(plain.errors[0]?.error), /or use lock: \{ ttl, wait \}/);
});

mysql.mysqlTest(
  "MysqlStorage: a locked save waits for a take-over in progress, then writes nothing",
  async (t) => {
    // The save reads the lease row with a shared lock: without it, under
    // READ COMMITTED, it would see the lease as it was before the take-over
    // and write beside the new holder.
    const { MysqlStorage } = await import("../storages/mysql.ts");
    for (const level of ["REPEATABLE READ", "READ COMMITTED"]) {
      await t.step(level, async () => {
        const table = `${mysql.RUN}_lw`;
        const conn = await mysql.mysql.createConnection(mysql.MYSQL_URL);
        const other = await mysql.mysql.createConnection(mysql.MYSQL_URL);
        const storage = new MysqlStorage<Data>(conn, { table });
        const joined = storage as unknown as Joined;
        try {
          await conn.query(`SET SESSION TRANSACTION ISOLATION LEVEL ${level}`);
          await storage.write("k", { count: 1 });
          const { version } = await joined.readVersioned("k");
          assert.equal(await joined.acquireLease("k", "me", 5000), true);
          await other.query("BEGIN");
          await other.query(
            `UPDATE ${mysql.id(storage.leaseTable)} SET owner = 'other' WHERE \`key\` = 'k'`,
          );
          let settled = false;
          const save = joined.saveAndReleaseLease("k", { count: 2 }, version, "me");
          save.finally(() => settled = true).catch(() => {});
          await sleep(300);
          assert.equal(settled, false, "the save waits for the take-over to end");
          await other.query("COMMIT");
          assert.deepEqual(await save, { saved: false, reason: "lease" });
          assert.deepEqual(await storage.read("k"), { count: 1 }, "nothing written");
        } finally {
          await other.end();
          await conn.end();
          const db = mysql.admin();
          await mysql.dropTables(db, storage);
          await db.end();
        }
      });
    }
  },
);

Deno.test("a locked update whose session expired while it ran is told so", async () => {
  // attack36 F1, attack37 F2: one process, every update locked, the handler
  // longer than the storage's TTL; the conflict said only that some process
  // wrote without the lease.
  const storage = new MemorySessionStorage<Data>({ ttl: 100 });
  const h = createHarness<C>();
  h.bot.use(session({
    initial: () => ({ count: 0 }),
    storage,
    lock: { ttl: 3000, wait: 5000 },
    onConflict: "error",
  }));
  h.bot.on("message", async (ctx) => {
    ctx.session.count++;
    if (ctx.session.count > 1) await sleep(250);
  });
  await h.send(message(1));
  await h.send(message(1));
  assert.equal(h.errors.length, 1);
  const text = String(h.errors[0].error);
  assert.match(text, /SessionConflictError/);
  assert.match(text, /expired while the update ran \(keep the storage's TTL far above/);
  assert.equal(await storage.acquireLease("1", "other", 1000), true, "no lease left behind");
});

/**
 * `driver` behind one connection: each call waits for the one before, and
 * the first save (of any kind) takes `ms` on the way, so that every call
 * sent meanwhile (the renewals of the lease) waits behind it.
 */
function oneSlowConnection(driver: MemoryDriver, ms: number): MemoryDriver {
  const saves = new Set(["write", "delete", "saveKeepingLease", "saveAndReleaseLease"]);
  let queue: Promise<unknown> = Promise.resolve();
  let slow = true;
  return new Proxy(driver, {
    get(target, name) {
      const value = Reflect.get(target, name, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const run = queue.then(async () => {
          if (slow && saves.has(String(name))) {
            slow = false;
            await sleep(ms);
          }
          return value.apply(target, args);
        });
        queue = run.catch(() => {});
        return run;
      };
    },
  });
}

Deno.test("a save while another update of the key runs in this process is written only under the lease", async (t) => {
  // attack36 F4: only the key's last save in a process checked the lease in
  // the write. The save of an update that ended while another update of its
  // key still ran was a plain write, checked against the lease only before
  // it was sent; with "overwrite", one that landed after another process
  // had taken the lease replaced that process's update.
  for (const onConflict of ["overwrite", "error"] as const) {
    await t.step(onConflict, async () => {
      const shared = new MemoryDriver({ ttl: undefined, maxEntries: undefined });
      const a = new DriverStorage<Data, unknown>(oneSlowConnection(shared, LATE_MS), jsonCopy);
      const b = new DriverStorage<Data, unknown>(shared, jsonCopy);
      const bots = [a, b].map((storage) => {
        const h = createHarness<C>();
        h.bot.use(session({
          initial: () => ({ count: 0 }),
          storage,
          lock: { ttl: LEASE_TTL, wait: 5000 },
          onConflict,
        }));
        return h;
      });
      let open!: () => void;
      const gate = new Promise<void>((resolve) => open = resolve);
      bots[0].bot.on("message", async (ctx) => {
        if (ctx.message.text === "hold") return await gate; // reads nothing, changes nothing
        ctx.session.count++;
        ctx.session.by = "A";
      });
      bots[1].bot.on("message", (ctx) => {
        ctx.session.count++;
        ctx.session.by = "B";
      });
      const held = bots[0].send({
        ...message(1),
        message: { ...message(1).message!, text: "hold" },
      });
      await sleep(20);
      const late = bots[0].send(message(1)); // ends first: its save is not the key's last
      await sleep(50);
      await bots[1].send(message(1)); // once A's lease ran out (its renewals wait)
      await late;
      open();
      await held;
      assert.deepEqual(bots[1].errors.map((e) => String(e.error)), []);
      assert.ok(
        bots[0].errors.some((e) => e.error instanceof SessionLockError),
        bots[0].errors.map((e) => String(e.error)).join("\n") || "A's late save succeeded",
      );
      assert.deepEqual(await b.read("1"), { count: 1, by: "B" }, "B's update is kept");
    });
  }
});

Deno.test("a slow answer to a save that keeps the lease does not hold its renewals up", async () => {
  // attack38 F1: renewals waited for such a save; one whose answer took
  // two thirds of the TTL cost the lease, although it had landed in time.
  const driver = new MemoryDriver({ ttl: undefined, maxEntries: undefined });
  const keep = driver.saveKeepingLease.bind(driver);
  let slow = true;
  (driver as unknown as Record<string, unknown>).saveKeepingLease = (
    ...args: Parameters<typeof keep>
  ) => {
    const result = keep(...args); // lands at once
    if (!slow) return result;
    slow = false;
    return sleep(250).then(() => result); // the answer comes late
  };
  const storage = new DriverStorage<Data, unknown>(driver, jsonCopy);
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ count: 0 }), storage, lock: { ttl: 300, wait: 5000 } }));
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  h.bot.on("message", async (ctx) => {
    ctx.session.count++;
    if (ctx.message.text !== "hold") return;
    await gate;
    ctx.session.by = "hold"; // saved under the lease, which must still be held
  });
  const held = h.send({ ...message(1), message: { ...message(1).message!, text: "hold" } });
  await sleep(85); // just before the first renewal, at a third of the TTL
  await h.send(message(1)); // its save keeps the lease
  await sleep(200);
  open();
  await held;
  assert.deepEqual(h.errors.map((e) => String(e.error)), []);
  assert.deepEqual(await storage.read("1"), { count: 2, by: "hold" });
});

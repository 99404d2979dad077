/**
 * `telegrafStore` under the real npm:telegraf 4: its `session({ store })`
 * middleware driven through `bot.handleUpdate`, with `botInfo` given and
 * every API call answered by tests/fixtures/fake_bot_api.ts over plain HTTP
 * (`telegram.apiRoot`), on every storage: memory, Deno KV (temporary file),
 * Redis, PostgreSQL, SQLite and MySQL (skipped loudly without a server,
 * failing with CI=true).
 *
 * Per storage: a counter across updates and a restart; concurrent updates
 * of one chat in one process (Telegraf shares one session object); an
 * update that arrives while the previous save is still in flight (a hand
 * made adapter loses it, `telegrafStore` does not); two bot instances on one
 * storage (what is lost, what is reported, what a read-only update does);
 * and a measured run of two bots on one chat. Without a backend: what the
 * adapter checks and how it maps Telegraf's calls.
 */
import assert from "node:assert/strict";
import { session, Telegraf } from "npm:telegraf@^4.16";
import type { Context } from "npm:telegraf@^4.16";
import type { Update, UserFromGetMe } from "npm:telegraf@^4.16/types";
import {
  MemorySessionStorage,
  SessionConflictError,
  SessionValueError,
  type StorageAdapter,
} from "../mod.ts";
import { type TelegrafSessionStore, telegrafStore } from "../mod.ts";
import { FAKE_BOT, type FakeBotApi, startFakeBotApi } from "./fixtures/fake_bot_api.ts";
import {
  type BackendStorage,
  telegrafBackends,
  withNamespace,
} from "./helpers/telegraf_backends.ts";

interface Counter {
  count: number;
}
interface MyContext extends Context {
  session?: Counter;
}
type Storage = BackendStorage<Counter>;
type Store = TelegrafSessionStore<Counter> | {
  get(key: string): Promise<Counter | undefined>;
  set(key: string, value: Counter): Promise<unknown>;
  delete(key: string): Promise<unknown>;
};

const CHAT = 77;
/** Telegraf's default session key: `<from id>:<chat id>`. */
const KEY = `${CHAT}:${CHAT}`;

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Bots

let updateId = 0;
/** A text message in the private chat `chat` (the user being the chat). */
function message(chat = CHAT, text = "/count"): Update {
  const id = ++updateId;
  const command = text.startsWith("/")
    ? { entities: [{ type: "bot_command" as const, offset: 0, length: text.length }] }
    : {};
  return {
    update_id: id,
    message: {
      message_id: id,
      date: Math.floor(Date.now() / 1000),
      chat: { id: chat, type: "private", first_name: "Ann" },
      from: { id: chat, is_bot: false, first_name: "Ann" },
      text,
      ...command,
    },
  } as Update;
}

/** A Telegraf bot on the fake API, with Telegraf's `session({ store })`; errors collected. */
function telegraf(api: FakeBotApi, store: Store) {
  const bot = new Telegraf<MyContext>("123:telegraf-test", { telegram: { apiRoot: api.root } });
  bot.botInfo = FAKE_BOT as UserFromGetMe;
  const errors: unknown[] = [];
  bot.catch((err) => void errors.push(err));
  bot.use(session({ store, defaultSession: (): Counter => ({ count: 0 }) }));
  return { bot, errors };
}

/** What a bot author writes by hand without sessionkit: calls passed straight through. */
function handMade(storage: Storage): Store {
  return {
    get: async (key) => (await storage.read(key)) ?? undefined,
    set: async (key, value) => await storage.write(key, value),
    delete: async (key) => await storage.delete(key),
  };
}

/**
 * A pass-through to `inner` whose writes can be held back (as a slow
 * network or a busy pool would), so that a test can place other calls
 * while a write is in flight.
 */
function holdingWrites(inner: Storage) {
  let gate: PromiseWithResolvers<void> | undefined;
  let held = Promise.withResolvers<void>();
  const hold = <A extends unknown[], R>(f: (...args: A) => R | Promise<R>) =>
  async (
    ...args: A
  ): Promise<R> => {
    if (gate !== undefined) {
      held.resolve();
      await gate.promise;
    }
    return await f(...args);
  };
  const storage: Storage = {
    read: (key) => inner.read(key),
    readVersioned: (key) => inner.readVersioned(key),
    write: hold((key: string, value: Counter) => inner.write(key, value)),
    writeIfVersion: hold((key: string, value: Counter, v: string | null) =>
      inner.writeIfVersion(key, value, v)
    ),
    delete: hold((key: string) => inner.delete(key)),
    deleteIfVersion: hold((key: string, v: string | null) => inner.deleteIfVersion(key, v)),
  };
  return {
    storage,
    /** From now on, writes wait for `release()`. */
    hold() {
      gate = Promise.withResolvers();
      held = Promise.withResolvers();
    },
    /** Resolves once a write is waiting. */
    get held() {
      return held.promise;
    },
    release() {
      gate?.resolve();
      gate = undefined;
    },
  };
}

// ---------------------------------------------------------------------------
// Backends

const BACKENDS = telegrafBackends<Counter>({ kvDir: "sk-telegraf-kv-", table: "telegraf" });

// ---------------------------------------------------------------------------
// Scenarios, on every storage

for (const backend of BACKENDS) {
  backend.register(
    `telegraf: a counter across updates and a restart (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        const storage = await ns.open();
        const first = telegraf(api, telegrafStore(storage));
        first.bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session!.count}`));
        first.bot.command("peek", (ctx) => ctx.reply(`Still ${ctx.session!.count}`));
        for (const update of [message(), message(), message(CHAT + 1), message(), message()]) {
          await first.bot.handleUpdate(update);
        }
        await first.bot.handleUpdate(message(CHAT, "/peek"));
        assert.deepEqual(first.errors, []);
        assert.deepEqual(api.texts(), [
          "Count: 1",
          "Count: 2",
          "Count: 1",
          "Count: 3",
          "Count: 4",
          "Still 4",
        ]);
        assert.deepEqual(await storage.read(KEY), { count: 4 }, "stored under <from>:<chat>");
        assert.deepEqual(await storage.read(`${CHAT + 1}:${CHAT + 1}`), { count: 1 });

        // A restart: a new bot, a new storage instance on the same data.
        const restarted = telegraf(api, telegrafStore(await ns.open()));
        restarted.bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session!.count}`));
        await restarted.bot.handleUpdate(message());
        await restarted.bot.handleUpdate(message(CHAT + 1));
        assert.deepEqual(restarted.errors, []);
        assert.deepEqual(api.texts().slice(6), ["Count: 5", "Count: 2"]);
        assert.deepEqual(await storage.read(KEY), { count: 5 });
      }),
  );

  backend.register(
    `telegraf: concurrent updates of one chat, one process (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        const count = async (make: (storage: Storage) => Store) => {
          const storage = await ns.open();
          await storage.delete(KEY);
          const { bot, errors } = telegraf(api, make(storage));
          bot.on("message", async (ctx) => {
            ctx.session!.count++;
            await tick(2); // the updates overlap
          });
          // All at once: Telegraf reads once and hands every update the same object.
          await Promise.all(Array.from({ length: 20 }, () => bot.handleUpdate(message())));
          // Staggered: updates start while earlier ones still run or save.
          const staggered: Promise<void>[] = [];
          for (let i = 0; i < 20; i++) {
            staggered.push(bot.handleUpdate(message()));
            await tick(i % 3);
          }
          await Promise.all(staggered);
          return { errors, stored: (await storage.read(KEY))?.count };
        };
        assert.deepEqual(await count((s) => telegrafStore(s)), { errors: [], stored: 40 });
        // The same with calls passed straight through: what gets lost depends on timing.
        const naive = await count(handMade);
        assert.deepEqual(naive.errors, []);
        console.log(
          `${backend.name}, one process, hand-made store: 40 increments, ${naive.stored} stored`,
        );
      }),
  );

  backend.register(
    `telegraf: an update arriving while the last save is in flight (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        // Telegraf drops its shared session when the last update using it
        // ends, then saves; the next update of the chat reads the storage.
        const run = async (make: (storage: Storage) => Store) => {
          const slow = holdingWrites(await ns.open());
          await slow.storage.delete(KEY);
          const { bot, errors } = telegraf(api, make(slow.storage));
          const seen: number[] = [];
          bot.on("message", (ctx) => void seen.push(++ctx.session!.count));
          slow.hold();
          const a = bot.handleUpdate(message());
          await slow.held; // A's save is in flight
          const b = bot.handleUpdate(message());
          const bRan = await Promise.race([
            (async () => {
              while (seen.length < 2) await tick(1);
              return true;
            })(),
            tick(300).then(() => false),
          ]);
          slow.release();
          await Promise.all([a, b]);
          assert.deepEqual(errors, []);
          return { bRan, seen, stored: await slow.storage.read(KEY) };
        };

        const naive = await run(handMade);
        assert.equal(naive.bRan, true, "B read the storage before A's save landed");
        assert.deepEqual(naive.seen, [1, 1]);
        assert.deepEqual(naive.stored, { count: 1 }, "the hand-made store lost A's increment");

        const kit = await run((storage) => telegrafStore(storage));
        assert.equal(kit.bRan, false, "B's read waits for A's save");
        assert.deepEqual(kit.seen, [1, 2]);
        assert.deepEqual(kit.stored, { count: 2 }, "telegrafStore lost nothing");
      }),
  );

  backend.register(
    `telegraf: two bot instances on one storage (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        /**
         * Bot 1 and bot 2 (two processes) each take an update of the chat:
         * both read the session before either saves; bot 1 saves first.
         * `second` is what bot 2's handler does.
         */
        const race = async (make: (storage: Storage) => Store, second: "count" | "read") => {
          const s1 = await ns.open();
          await s1.write(KEY, { count: 5 });
          const one = telegraf(api, make(s1));
          const two = telegraf(api, make(await ns.open()));
          const entered = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
          const bothIn = Promise.all(entered.map((e) => e.promise));
          const goTwo = Promise.withResolvers<void>();
          let peeked: number | undefined;
          one.bot.on("message", async (ctx) => {
            entered[0].resolve();
            await bothIn;
            ctx.session!.count++;
          });
          two.bot.on("message", async (ctx) => {
            entered[1].resolve();
            await goTwo.promise;
            if (second === "count") ctx.session!.count++;
            else peeked = ctx.session!.count;
          });
          const twoDone = two.bot.handleUpdate(message());
          await one.bot.handleUpdate(message());
          goTwo.resolve();
          await twoDone;
          return { stored: await s1.read(KEY), errors: [...one.errors, ...two.errors], peeked };
        };

        // Both count: one increment cannot survive. Silently lost, or reported.
        const naive = await race(handMade, "count");
        assert.deepEqual(naive, { stored: { count: 6 }, errors: [], peeked: undefined });
        const overwrite = await race((s) => telegrafStore(s, { onConflict: "overwrite" }), "count");
        assert.deepEqual(overwrite, { stored: { count: 6 }, errors: [], peeked: undefined });
        const detected = await race((s) => telegrafStore(s), "count");
        assert.deepEqual(detected.stored, { count: 6 }, "bot 1's save is kept");
        assert.equal(detected.errors.length, 1, "bot 2's lost increment is reported");
        assert.ok(detected.errors[0] instanceof SessionConflictError);
        assert.equal(detected.errors[0].key, KEY);
        assert.match(detected.errors[0].message, /changed or deleted by another process/);

        // Bot 2 only reads: Telegraf still saves what it read, over bot 1's change.
        const naiveRead = await race(handMade, "read");
        assert.deepEqual(naiveRead, { stored: { count: 5 }, errors: [], peeked: 5 });
        for (const onConflict of ["overwrite", "error"] as const) {
          const kitRead = await race((s) => telegrafStore(s, { onConflict }), "read");
          assert.deepEqual(kitRead, { stored: { count: 6 }, errors: [], peeked: 5 }, onConflict);
        }
      }),
  );

  backend.register(
    `telegraf: two bots counting on one chat, measured (${backend.name})`,
    () =>
      withNamespace(backend, async (ns, api) => {
        const measure = async (onConflict: "error" | "overwrite") => {
          const storage = await ns.open();
          const other = await ns.open();
          await storage.delete(KEY);
          await other.read(KEY); // connected before the run, so that the two bots overlap
          const bots = [
            telegraf(api, telegrafStore(storage, { onConflict })),
            telegraf(api, telegrafStore(other, { onConflict })),
          ];
          for (const { bot } of bots) {
            bot.on("message", async (ctx) => {
              ctx.session!.count++;
              await tick(1);
            });
          }
          const total = 40;
          const running: Promise<void>[] = [];
          for (let i = 0; i < total; i++) {
            running.push(bots[i % 2].bot.handleUpdate(message()));
            if (i % 4 === 3) await tick(1);
          }
          await Promise.all(running);
          const errors = bots.flatMap((b) => b.errors);
          const stored = (await storage.read(KEY))?.count ?? 0;
          return { total, stored, failed: errors.length, errors };
        };

        const lww = await measure("overwrite");
        assert.deepEqual(lww.errors, [], "last write wins: nothing is reported");
        assert.ok(lww.stored >= 1 && lww.stored <= lww.total);
        console.log(
          `${backend.name}, two bots, onConflict "overwrite": ${lww.total} increments, ` +
            `${lww.stored} stored, ${lww.total - lww.stored} lost without a trace`,
        );

        const err = await measure("error");
        assert.ok(err.errors.every((e) => e instanceof SessionConflictError), String(err.errors));
        const saved = err.total - err.failed;
        // Every update that did not fail has its increment stored: nothing vanished silently.
        assert.ok(err.stored >= saved, `stored ${err.stored} < ${saved} saved updates`);
        assert.ok(err.stored <= err.total);
        console.log(
          `${backend.name}, two bots, onConflict "error": ${err.total} increments, ` +
            `${err.failed} reported as conflicts, ${err.stored} stored`,
        );
      }),
  );
}

// ---------------------------------------------------------------------------
// The adapter itself

/** A memory storage that counts the calls reaching it. */
function counted() {
  const inner = new MemorySessionStorage<Counter>();
  const calls: string[] = [];
  const storage: Storage = {
    read: (key) => (calls.push("read"), inner.read(key)),
    readVersioned: (key) => (calls.push("readVersioned"), inner.readVersioned(key)),
    write: (key, value) => (calls.push("write"), inner.write(key, value)),
    writeIfVersion: (
      key,
      value,
      v,
    ) => (calls.push("writeIfVersion"), inner.writeIfVersion(key, value, v)),
    delete: (key) => (calls.push("delete"), inner.delete(key)),
    deleteIfVersion: (key, v) => (calls.push("deleteIfVersion"), inner.deleteIfVersion(key, v)),
  };
  return { inner, storage, calls };
}

Deno.test("telegraf: how Telegraf's calls reach the storage", async (t) => {
  const api = startFakeBotApi({ tls: false });
  try {
    await t.step("a handler that only reads the session: no write", async () => {
      const { inner, storage, calls } = counted();
      inner.write(KEY, { count: 3 });
      const { bot, errors } = telegraf(api, telegrafStore(storage));
      bot.on("message", (ctx) => void ctx.session!.count);
      await bot.handleUpdate(message());
      assert.deepEqual(errors, []);
      assert.deepEqual(calls, ["readVersioned"]);

      // The hand-made store writes it back, because Telegraf calls set.
      const naive = counted();
      naive.inner.write(KEY, { count: 3 });
      const plain = telegraf(api, handMade(naive.storage));
      plain.bot.on("message", (ctx) => void ctx.session!.count);
      await plain.bot.handleUpdate(message());
      assert.deepEqual(naive.calls, ["read", "write"]);
    });

    await t.step("a handler that does not touch the session: Telegraf reads only", async () => {
      const { storage, calls } = counted();
      const { bot } = telegraf(api, telegrafStore(storage));
      bot.on("message", () => {});
      await bot.handleUpdate(message());
      assert.deepEqual(calls, ["readVersioned"]);
    });

    await t.step("ctx.session = null deletes the session", async () => {
      const { inner, storage, calls } = counted();
      inner.write(KEY, { count: 3 });
      const { bot, errors } = telegraf(api, telegrafStore(storage));
      bot.on("message", (ctx) => void (ctx.session = undefined));
      await bot.handleUpdate(message());
      assert.deepEqual(errors, []);
      assert.deepEqual(calls, ["readVersioned", "deleteIfVersion"]);
      assert.equal(inner.read(KEY), undefined);
    });

    await t.step("a value JSON cannot hold fails the update, nothing written", async () => {
      const { inner, storage } = counted();
      inner.write(KEY, { count: 3 });
      const { bot, errors } = telegraf(api, telegrafStore(storage));
      bot.on("message", (ctx) => {
        (ctx.session as unknown as { when: Date }).when = new Date();
      });
      await bot.handleUpdate(message());
      assert.equal(errors.length, 1);
      const err = errors[0];
      assert.ok(err instanceof SessionValueError, String(err));
      assert.equal(err.key, KEY);
      assert.equal(err.path, "$.when");
      assert.deepEqual(inner.read(KEY), { count: 3 });
    });

    await t.step("Telegraf saves the session of a handler that failed", async () => {
      // Telegraf's middleware saves in a `finally`; a store cannot tell.
      const { inner, storage } = counted();
      const { bot, errors } = telegraf(api, telegrafStore(storage));
      bot.on("message", (ctx) => {
        ctx.session!.count = 9;
        throw new Error("handler failed");
      });
      await bot.handleUpdate(message());
      assert.equal((errors[0] as Error).message, "handler failed");
      assert.deepEqual(inner.read(KEY), { count: 9 });
    });

    await t.step("updates without a user or chat have no session", async () => {
      const { storage, calls } = counted();
      const { bot } = telegraf(api, telegrafStore(storage));
      let session: unknown = "unset";
      bot.on("channel_post", (ctx) => void (session = ctx.session));
      await bot.handleUpdate({
        update_id: ++updateId,
        channel_post: {
          message_id: 1,
          date: 0,
          chat: { id: -100, type: "channel", title: "News" },
          text: "hi",
        },
      } as Update);
      assert.equal(session, undefined);
      assert.deepEqual(calls, []);
    });
  } finally {
    await api.close();
  }
});

Deno.test("telegraf: the store on its own", async (t) => {
  await t.step("get, set, delete; null and undefined delete", async () => {
    const storage = new MemorySessionStorage<Counter>();
    const store = telegrafStore(storage);
    assert.equal(await store.get("k"), undefined);
    await store.set("k", { count: 1 });
    assert.deepEqual(await store.get("k"), { count: 1 });
    await store.set("k", null as unknown as Counter);
    assert.equal(storage.read("k"), undefined);
    await store.set("k", { count: 2 });
    await store.set("k", undefined as unknown as Counter);
    assert.equal(storage.read("k"), undefined);
    await store.delete("missing");
  });

  await t.step("the value is copied when set is called", async () => {
    const storage = new MemorySessionStorage<Counter>();
    const store = telegrafStore(storage);
    const live = { count: 1 };
    const reading = store.get("k"); // in flight: the write has to wait its turn
    const first = store.set("k", live);
    live.count = 2; // after the call, before the write's turn
    await Promise.all([reading, first]);
    assert.deepEqual(storage.read("k"), { count: 1 });
  });

  await t.step("a grammY adapter without versions works, last write wins", async () => {
    const map = new Map<string, Counter>();
    const plain: StorageAdapter<Counter> = {
      read: (key) => map.get(key),
      write: (key, value) => void map.set(key, value),
      delete: (key) => void map.delete(key),
    };
    const store = telegrafStore(plain);
    await store.set("k", { count: 1 });
    assert.deepEqual(await store.get("k"), { count: 1 });
    await assert.rejects(store.set("k", { count: NaN }), SessionValueError);
    assert.deepEqual(map.get("k"), { count: 1 });
    assert.throws(
      () => telegrafStore(plain, { onConflict: "error" }),
      /no conditional writes.*onConflict: "overwrite"/,
    );
  });

  await t.step("misuse is refused when the store is made", () => {
    const storage = new MemorySessionStorage<Counter>();
    assert.throws(
      () => telegrafStore(Promise.resolve(storage) as unknown as Storage),
      /is a Promise, not a storage adapter: did you forget `await`/,
    );
    assert.throws(
      () => telegrafStore({ read() {} } as unknown as Storage),
      /has no write\(\) and delete\(\) functions/,
    );
    assert.throws(
      () => telegrafStore({ get() {}, set() {}, atomic() {} } as unknown as Storage),
      /Deno.Kv database, not a storage adapter. Wrap it: `storage: new DenoKvStorage\(kv\)`/,
    );
    assert.throws(() => telegrafStore(storage, null as never), /options must be an object/);
    assert.throws(
      () => telegrafStore(storage, "overwrite" as never),
      /options must be an object such as \{ onConflict: "overwrite" \}, got "overwrite"/,
    );
    assert.throws(
      () => telegrafStore(storage, { onConflit: "error" } as never),
      /unknown option "onConflit"/,
    );
    assert.throws(
      () => telegrafStore(storage, { onConflict: "merge" } as never),
      /"error" or "overwrite", got "merge"/,
    );
  });
});

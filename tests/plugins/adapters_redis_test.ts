/**
 * `@grammyjs/storage-redis` (the real package, on a real Redis, through
 * ioredis and through node-redis v5) inside sessionkit's `session()`,
 * `lazySession()` and `enhanceStorage`, and the same scenarios on grammY's:
 * counting, restart, deletion, migrations and expiry, `autoParseDates` Dates,
 * and the adapter's own `ttl`. The outcomes are equal but for the documented
 * differences.
 */
import assert from "node:assert/strict";
import { createHarness, message } from "../helpers/bot.ts";
import { redisTest } from "../redis_env.ts";
import {
  assertCounterParity,
  assertEnhanceParity,
  counted,
  enhance,
  errorsOf,
  type Kind,
  KINDS,
  type Lib,
  LIBS,
  type Loose,
  middleware,
} from "./adapters_shared.ts";
import { REDIS_LIBS, type RedisLib, redisSpace } from "./adapter_spaces.ts";

for (const lib of REDIS_LIBS) {
  redisTest(`storage-redis (${lib}): count, restart, delete, on both libraries`, async (t) => {
    for (const kind of KINDS) {
      await t.step(kind, () => assertCounterParity(() => redisSpace(lib), kind));
    }
  });

  redisTest(`storage-redis (${lib}): enhanceStorage migrations and TTL, on both`, async (t) => {
    for (const kind of KINDS) {
      await t.step(kind, () => assertEnhanceParity(() => redisSpace(lib), kind));
    }
  });
}

const T = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
const ISO = new Date(T).toISOString();

/** A Date stored by one bot, read after a restart by another: what the second one saw. */
async function dates(lib: RedisLib, who: Lib, kind: Kind, enhanced: boolean) {
  const space = await redisSpace(lib, { autoParseDates: true });
  try {
    const bot = (adapter: Parameters<typeof counted>[0]) => {
      const storage = enhanced
        ? enhance(who, { storage: adapter, millisecondsToLive: 60_000 })
        : adapter;
      const h = createHarness<Loose>();
      h.bot.use(middleware(who, kind, { initial: () => ({}), storage, prefix: space.prefix }));
      h.bot.command("stamp", async (ctx) => void ((await ctx.session).at = new Date(T)));
      h.bot.command("look", async (ctx) => {
        const { at } = await ctx.session;
        await ctx.reply(`${at instanceof Date} ${at instanceof Date ? at.getTime() : at}`);
      });
      return h;
    };
    const first = bot(await space.adapter());
    await first.send(message(1, "/stamp"));
    const stored = await space.stored("1") as Record<string, unknown>;
    const adapter = counted(await space.adapter());
    const second = bot(adapter);
    await second.send(message(1, "/look"));
    return {
      replies: second.replies(),
      errors: [...errorsOf(first), ...errorsOf(second)],
      stored: enhanced ? { ...stored, e: typeof stored.e } : stored,
      readOnlyWrites: adapter.counts.write,
    };
  } finally {
    await space.close();
  }
}

for (const lib of REDIS_LIBS) {
  redisTest(
    `storage-redis (${lib}): autoParseDates gives a stored Date back as a Date`,
    async (t) => {
      for (const kind of KINDS) {
        for (const enhanced of [false, true]) {
          await t.step(`${kind}${enhanced ? ", through enhanceStorage" : ""}`, async () => {
            const grammY = await dates(lib, "grammY", kind, enhanced);
            const expected = {
              replies: [`true ${T}`],
              errors: [],
              stored: enhanced ? { __d: { at: ISO }, e: "number" } : { at: ISO },
              readOnlyWrites: 1,
            };
            assert.deepEqual(grammY, expected, "grammY");
            assert.deepEqual(
              await dates(lib, "sessionkit", kind, enhanced),
              { ...expected, readOnlyWrites: 0 },
              "documented difference only: an unchanged session (its Date compared by content) " +
                "is not written",
            );
          });
        }
      }
    },
  );
}

redisTest("storage-redis: the adapter's ttl, and what a read-only update does to it", async (t) => {
  /** The PTTL after "/inc", and after a read-only update once the TTL was cut to 5 s. */
  const run = async (lib: RedisLib, who: Lib) => {
    const space = await redisSpace(lib, { ttl: 60 }); // seconds, as the adapter takes it
    try {
      const h = createHarness<Loose>();
      h.bot.use(middleware(who, "strict", {
        initial: () => ({ count: 0 }),
        storage: await space.adapter(),
        prefix: space.prefix,
      }));
      h.bot.command("inc", (ctx) => void ctx.session.count++);
      h.bot.command("look", (ctx) => ctx.reply(String(ctx.session.count)));
      await h.send(message(1, "/inc"));
      const afterWrite = await space.raw.pttl(space.prefix + "1");
      await space.raw.pexpire(space.prefix + "1", 5000);
      await h.send(message(1, "/look"));
      const afterRead = await space.raw.pttl(space.prefix + "1");
      assert.deepEqual(errorsOf(h), []);
      assert.deepEqual(h.replies(), ["1"]);
      return { afterWrite, afterRead };
    } finally {
      await space.close();
    }
  };

  await t.step(
    "ioredis: set with EX; grammY's rewrite renews it, sessionkit's read does not",
    async () => {
      for (const who of LIBS) {
        const { afterWrite, afterRead } = await run("ioredis", who);
        assert.ok(afterWrite > 55_000 && afterWrite <= 60_000, `${who}: ${afterWrite}`);
        if (who === "grammY") assert.ok(afterRead > 55_000, `grammY rewrote: ${afterRead}`);
        else {
          assert.ok(
            afterRead > 0 && afterRead <= 5000,
            `documented difference: sessionkit does not rewrite an unchanged session, so a TTL ` +
              `that only writes renew runs out (${afterRead})`,
          );
        }
      }
    },
  );

  await t.step("node-redis: the adapter's ttl is not applied (SET gets no EX)", async () => {
    for (const who of LIBS) {
      const { afterWrite } = await run("node-redis", who);
      assert.equal(afterWrite, -1, `${who}: the key has no TTL`);
    }
  });
});

/**
 * The migration path of the README ("Switching from grammY's built-in
 * session"), on real adapter packages (`@grammyjs/storage-file`,
 * `@grammyjs/storage-redis` through ioredis and node-redis,
 * `@grammyjs/storage-psql`): sessions written by grammY's `session()` and
 * `enhanceStorage` (migrations and a TTL) are read, changed and migrated (a
 * migration added at the switch) by sessionkit's `session()` and
 * `enhanceStorage` on the same data, and a grammY bot pointed back at the data
 * reads what sessionkit wrote. The raw envelope `{ __d, v, e }` is checked
 * after every step. The rollback difference (grammY's `enhanceStorage` lowers
 * `v` to its newest migration, so the new migration runs again after the next
 * switch) is asserted.
 */
import assert from "node:assert/strict";
import { FakeTime } from "../helpers/clock.ts";
import { createHarness, message } from "../helpers/bot.ts";
import { pgTest } from "../postgres_setup.ts";
import { redisTest } from "../redis_env.ts";
import {
  counted,
  enhance,
  errorsOf,
  fileSpace,
  type Lib,
  type Loose,
  middleware,
  MIGRATIONS,
  type Space,
  TTL,
} from "./adapters_shared.ts";
import { psqlSpace, REDIS_LIBS, redisSpace } from "./adapter_spaces.ts";

type Data = { pets: string[]; count: number; tags?: string[] };

/** The stored envelope, its expiry as milliseconds from now. */
async function envelope(space: Space, key: string) {
  const raw = await space.stored(key) as { v?: number; __d: Data; e?: number } | undefined;
  if (raw === undefined) return undefined;
  return { ...raw, e: raw.e === undefined ? undefined : raw.e - Date.now() };
}

async function migrationPath(space: Space): Promise<void> {
  using clock = new FakeTime();
  let ran3 = 0;
  /** The migrations after the switch: 3 is new (and, on purpose, not idempotent). */
  const withThree = {
    ...MIGRATIONS,
    3: (old: Data): Data => (ran3++, { ...old, tags: [...old.tags ?? [], "m3"] }),
  };
  const bot = async (lib: Lib, migrations: typeof MIGRATIONS) => {
    const adapter = counted(await space.adapter());
    const storage = enhance(lib, { storage: adapter, migrations, millisecondsToLive: TTL });
    const h = createHarness<Loose>();
    h.bot.use(middleware(lib, "strict", {
      initial: (): Data => ({ pets: [], count: 0 }),
      storage,
      prefix: space.prefix,
    }));
    const show = (s: Data) => `${s.pets.join(",")}:${s.count}:${(s.tags ?? []).join(",")}`;
    h.bot.command("inc", (ctx) => {
      ctx.session.count++;
      return ctx.reply(show(ctx.session));
    });
    h.bot.command("look", (ctx) => ctx.reply(show(ctx.session)));
    return { h, adapter };
  };

  // 1. grammY's session and enhanceStorage, migrations 1 and 2. Chat 1 was
  // stored by a plain session() before enhanceStorage was added.
  await space.put("1", { pet: "cat" });
  const grammY = await bot("grammY", MIGRATIONS);
  await grammY.h.send(message(1, "/inc"));
  await grammY.h.send(message(2, "/inc"));
  assert.deepEqual(grammY.h.replies(), ["cat:1:", ":1:"]);
  assert.deepEqual(await envelope(space, "1"), { v: 2, __d: { pets: ["cat"], count: 1 }, e: TTL });
  assert.deepEqual(await envelope(space, "2"), { v: 2, __d: { pets: [], count: 1 }, e: TTL });

  // 2. The switch: sessionkit's session and enhanceStorage with a new migration 3.
  clock.tick(TTL / 2);
  const kit = await bot("sessionkit", withThree);
  await kit.h.send(message(1, "/look"));
  assert.equal(ran3, 1);
  assert.equal(kit.adapter.counts.write, 1, "the migrated data is written back once");
  assert.deepEqual(await envelope(space, "1"), {
    v: 3,
    __d: { pets: ["cat"], count: 1, tags: ["m3"] },
    e: TTL * 1.5,
  });
  await kit.h.send(message(1, "/inc"));
  await kit.h.send(message(1, "/look"));
  assert.equal(kit.adapter.counts.write, 2, "the change written, the read-only update not");
  await kit.h.send(message(2, "/inc"));
  assert.equal(ran3, 2, "migration 3 ran once per session");
  assert.deepEqual(kit.h.replies(), ["cat:1:m3", "cat:2:m3", "cat:2:m3", ":2:m3"]);
  assert.deepEqual(errorsOf(kit.h), []);
  const atThree = { v: 3, __d: { pets: ["cat"], count: 2, tags: ["m3"] }, e: TTL * 1.5 };
  assert.deepEqual(await envelope(space, "1"), atThree);
  assert.deepEqual(await envelope(space, "2"), {
    v: 3,
    __d: { pets: [], count: 2, tags: ["m3"] },
    e: TTL * 1.5,
  });

  // 3. Rollback: grammY pointed back at the data reads what sessionkit wrote.
  clock.tick(1000);
  const oldCode = await bot("grammY", MIGRATIONS); // the code from before the switch
  await oldCode.h.send(message(1, "/look"));
  const newCode = await bot("grammY", withThree); // grammY, with migration 3 too
  await newCode.h.send(message(2, "/look"));
  assert.deepEqual([...oldCode.h.replies(), ...newCode.h.replies()], ["cat:2:m3", ":2:m3"]);
  assert.equal(ran3, 2, "grammY runs no migration on data at version 3");
  assert.deepEqual(
    await envelope(space, "1"),
    { ...atThree, v: 2, e: TTL },
    "documented difference: grammY's enhanceStorage rewrites data of a newer version at its " +
      "own newest one (v lowered from 3 to 2)",
  );
  assert.deepEqual(await envelope(space, "2"), {
    v: 3,
    __d: { pets: [], count: 2, tags: ["m3"] },
    e: TTL,
  });

  // 4. Forward again: the session grammY lowered to v 2 is migrated a second time.
  const again = await bot("sessionkit", withThree);
  await again.h.send(message(1, "/look"));
  await again.h.send(message(2, "/look"));
  assert.deepEqual(again.h.replies(), ["cat:2:m3,m3", ":2:m3"]);
  assert.equal(ran3, 3, "migration 3 ran again on chat 1 only");
  assert.deepEqual(await envelope(space, "1"), {
    v: 3,
    __d: { pets: ["cat"], count: 2, tags: ["m3", "m3"] },
    e: TTL * 1.5,
  });
  // grammY's expiry (one TTL ahead) is renewed on the first read, nothing else changes.
  assert.deepEqual(await envelope(space, "2"), {
    v: 3,
    __d: { pets: [], count: 2, tags: ["m3"] },
    e: TTL * 1.5,
  });
  assert.deepEqual([...errorsOf(grammY.h), ...errorsOf(oldCode.h), ...errorsOf(newCode.h)], []);
}

async function within(open: () => Promise<Space>): Promise<void> {
  const space = await open();
  try {
    await migrationPath(space);
  } finally {
    await space.close();
  }
}

Deno.test("migration path: grammY to sessionkit and back on @grammyjs/storage-file", () =>
  within(fileSpace));

for (const lib of REDIS_LIBS) {
  redisTest(
    `migration path: grammY to sessionkit and back on @grammyjs/storage-redis (${lib})`,
    () => within(() => redisSpace(lib)),
  );
}

pgTest(
  "migration path: grammY to sessionkit and back on @grammyjs/storage-psql",
  () => within(psqlSpace),
);

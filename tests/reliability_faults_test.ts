/**
 * Server faults in the middle of a stream of updates through a real grammY
 * Bot with `session()`: a private Redis server killed and restarted, the
 * storage's PostgreSQL backends terminated, a Deno KV handle closed.
 *
 * For every fault: the updates it hits fail with a SessionError that reaches
 * bot.catch; the updates after recovery succeed; and every stored session is
 * consistent with the updates that succeeded: its count equals the number of
 * successful updates of its chat, plus at most the failed updates whose
 * write was sent but whose reply was lost (the client cannot tell whether
 * those landed). It is never corrupted, half-written or reset to the initial
 * value.
 */
import assert from "node:assert/strict";
import { createClient } from "npm:redis@^5";
import { SessionError } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { DenoKvStorage } from "../storages/denokv.ts";
import { sleep } from "./helpers/bot.ts";
import { admin, DATABASE_URL, dropTables, pgTest, RUN } from "./postgres_setup.ts";
import {
  type Count,
  isReadFailure,
  isWriteFailure,
  Stream,
} from "./fixtures/reliability_stream.ts";
import { PrivateRedis, redisServerInstalled } from "./fixtures/reliability_redis_server.ts";

const CHATS = Array.from({ length: 20 }, (_, i) => 910_000 + i);

/** Checks stored counts against the stream; returns a one-line summary. */
function checkCounts(stream: Stream, stored: Map<number, unknown>): string {
  let exact = 0;
  let landed = 0;
  for (const chat of stream.chats) {
    const ok = stream.successes(chat);
    const doubt = stream.inDoubt(chat);
    const value = stored.get(chat);
    if (ok === 0 && doubt === 0) {
      assert.equal(value, undefined, `chat ${chat}: nothing stored without a success`);
      continue;
    }
    assert.ok(
      typeof value === "object" && value !== null && Object.keys(value).join() === "count",
      `chat ${chat}: a whole session, got ${JSON.stringify(value)}`,
    );
    const count = (value as Count).count;
    assert.ok(
      count >= ok && count <= ok + doubt,
      `chat ${chat}: count ${count}, ${ok} successful updates, ${doubt} in doubt`,
    );
    if (count === ok) exact++;
    else landed += count - ok;
  }
  const failures = stream.failures();
  const reads = failures.filter((f) => isReadFailure(f.error)).length;
  const writes = failures.filter((f) => isWriteFailure(f.error)).length;
  return `${stream.sent.length} updates, ${stream.sent.length - failures.length} ok, ` +
    `${failures.length} failed (${reads} on read, ${writes} on write); ` +
    `${exact}/${stream.chats.length} chats exactly equal to their successes, ` +
    `${landed} failed writes found to have landed`;
}

function assertSessionErrors(stream: Stream): void {
  for (const f of stream.failures()) {
    assert.ok(f.error instanceof SessionError, `a SessionError, got ${String(f.error)}`);
    assert.ok(isReadFailure(f.error) || isWriteFailure(f.error), String(f.error));
  }
}

const installed = await redisServerInstalled();

function privateRedisTest(name: string, fn: () => Promise<void>): void {
  if (installed) Deno.test(name, fn);
  else if (Deno.env.get("CI") === "true") {
    Deno.test(name, () => {
      throw new Error("redis-server is not installed; CI needs it for the fault tests.");
    });
  } else {
    console.error(`\n!!!!!!!! SKIPPING "${name}": redis-server is not installed. !!!!!!!!\n`);
    Deno.test({ name, ignore: true, fn });
  }
}

privateRedisTest(
  "reliability fault: Redis killed and restarted under a stream of updates",
  async () => {
    const server = new PrivateRedis();
    await server.start();
    const storage = await RedisStorage.connect<Count>(server.url, {
      prefix: "fault:",
      onError: () => {},
    });
    try {
      // No pause in the handler, so that commands are nearly always in flight.
      const stream = new Stream(storage, CHATS, 0);
      stream.start();
      await sleep(400);
      const killedAt = performance.now();
      // A kill that falls between two commands hits nothing; kill again (at
      // most 3 times) until it has hit some updates.
      let recovered = 0;
      let kills = 0;
      while (kills < 3 && (kills === 0 || stream.failures().length === 0)) {
        kills++;
        await server.kill();
        await sleep(500);
        await server.start();
        // Recovered once the storage's own client answers again.
        for (let i = 0; i < 100; i++) {
          try {
            await storage.read("probe");
            break;
          } catch {
            await sleep(50);
          }
        }
        recovered = performance.now();
        await sleep(300);
      }
      await stream.stop();

      assertSessionErrors(stream);
      const failures = stream.failures();
      assert.ok(failures.length > 0, `the kills hit some updates (${kills} kills)`);
      assert.ok(failures.every((f) => f.started < recovered), "no update failed after recovery");
      assert.ok(
        stream.sent.filter((s) => s.started > recovered).length >= CHATS.length,
        "updates after recovery ran",
      );
      assert.ok(stream.sent.some((s) => s.ok && s.started < killedAt), "updates before the kill");

      const raw = createClient({ url: server.url });
      raw.on("error", () => {});
      await raw.connect();
      const stored = new Map<number, unknown>();
      try {
        for (const chat of CHATS) {
          const text = await raw.get(`fault:${chat}`);
          stored.set(chat, text === null ? undefined : JSON.parse(text));
        }
      } finally {
        await raw.close();
      }
      console.log(
        `[reliability fault] Redis SIGKILL + restart (${kills} kill(s)): ${
          checkCounts(stream, stored)
        }`,
      );
    } finally {
      await storage.close();
      await server.stop();
    }
  },
);

pgTest("reliability fault: PostgreSQL backends terminated under a stream of updates", async () => {
  const table = `${RUN}_fault`;
  const url = new URL(DATABASE_URL);
  url.searchParams.set("application_name", table);
  const storage = PostgresStorage.connect<Count>(url.href, { table });
  const db = await admin();
  try {
    const stream = new Stream(storage, CHATS);
    stream.start();
    let terminated = 0;
    for (let round = 0; round < 3; round++) {
      await sleep(300);
      const { rows } = await db.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        [table],
      );
      terminated += rows.length;
    }
    await sleep(200); // the pool notices its dead idle connections
    const recovered = performance.now();
    await sleep(400);
    await stream.stop();

    assertSessionErrors(stream);
    assert.ok(terminated > 0, "backends were terminated");
    assert.ok(stream.failures().length > 0, "the terminations hit some updates");
    assert.ok(
      stream.failures().every((f) => f.started < recovered),
      "no update failed after recovery",
    );
    assert.ok(stream.sent.filter((s) => s.started > recovered).length >= CHATS.length);

    const { rows } = await db.query(`SELECT key, value::text AS v FROM ${JSON.stringify(table)}`);
    const stored = new Map<number, unknown>(
      rows.map((r) => [Number(r.key), JSON.parse(r.v as string)]),
    );
    assert.equal(rows.length, stored.size);
    console.log(
      `[reliability fault] PostgreSQL, ${terminated} backends terminated in 3 rounds: ${
        checkCounts(stream, stored)
      }`,
    );
  } finally {
    await dropTables(db, storage).catch(() => {});
    await db.end();
    await storage.close();
  }
});

Deno.test("reliability fault: Deno KV handle closed under a stream of updates", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sk-kv-fault-" });
  const path = `${dir}/kv.sqlite`;
  try {
    const kv = await Deno.openKv(path);
    const stream = new Stream(new DenoKvStorage<Count>(kv, { prefix: ["fault"] }), CHATS);
    stream.start();
    await sleep(400);
    const closedAt = performance.now();
    kv.close();
    await sleep(300);
    await stream.stop();

    assertSessionErrors(stream);
    const after = stream.sent.filter((s) => s.started > closedAt);
    assert.ok(after.length >= CHATS.length, "updates arrived after the close");
    assert.ok(after.every((s) => !s.ok), "every update after the close fails");
    for (const s of after) {
      const err = s.error as SessionError;
      assert.match(err.message, /Could not read the session of key "\d+" from storage/);
      assert.match(err.message, /not replaced by initial data/);
      assert.match(String((err.cause as Error)?.name), /BadResource/);
    }

    const reopened = await Deno.openKv(path);
    try {
      const storage = new DenoKvStorage<Count>(reopened, { prefix: ["fault"] });
      const stored = new Map<number, unknown>();
      for (const chat of CHATS) stored.set(chat, await storage.read(String(chat)));
      const summary = checkCounts(stream, stored);

      // A new bot on the reopened database continues from the stored counts.
      const resumed = new Stream(storage, CHATS, 0);
      resumed.start();
      await sleep(100);
      await resumed.stop();
      assert.equal(resumed.failures().length, 0);
      for (const chat of CHATS) {
        const before = (stored.get(chat) as Count | undefined)?.count ?? 0;
        assert.deepEqual(await storage.read(String(chat)), {
          count: before + resumed.successes(chat),
        });
      }
      console.log(
        `[reliability fault] Deno KV closed under the bot: ${summary}; ` +
          `${after.length} updates after the close all failed; ` +
          `${resumed.sent.length} updates on the reopened file all succeeded`,
      );
    } finally {
      reopened.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

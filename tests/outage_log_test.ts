/**
 * What `RedisStorage.connect` prints while its server is down (issue 19):
 * without an `onError`, one console line when the connection is lost (with
 * the reason, no stack), one when it is back (how long it was down, how many
 * reconnection attempts and errors in between), nothing in between; with an
 * `onError`, every error goes there and nothing to the console. A private
 * `redis-server` on a free loopback port is killed with SIGKILL and started
 * again on the same port; the shared server is never touched.
 */
import assert from "node:assert/strict";
import { RedisStorage } from "../storages/redis.ts";
import { PrivateRedis, redisServerInstalled } from "./fixtures/reliability_redis_server.ts";
import { sleep } from "./helpers/bot.ts";

const installed = await redisServerInstalled();

function privateRedisTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  if (installed) Deno.test(name, fn);
  else if (Deno.env.get("CI") === "true") {
    Deno.test(name, () => {
      throw new Error("redis-server is not installed; CI needs it for the outage log test.");
    });
  } else {
    console.error(`\n!!!!!!!! SKIPPING "${name}": redis-server is not installed. !!!!!!!!\n`);
    Deno.test({ name, ignore: true, fn });
  }
}

/** Every `console.error` call made while `fn` runs, each as its arguments. */
async function capturingConsoleError(fn: () => Promise<void>): Promise<unknown[][]> {
  const calls: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void calls.push(args);
  try {
    await fn();
  } finally {
    console.error = original;
  }
  return calls;
}

/** Kills the server, keeps it down for `downMs` while the storage is used, starts it again. */
async function outage(server: PrivateRedis, storage: RedisStorage<unknown>, downMs: number) {
  await server.kill();
  // A write made while the server is down fails (if the client had not yet
  // seen the connection drop) or waits in the client's queue.
  const pending = storage.write("during", { n: 1 }).then(() => true, () => false);
  await sleep(downMs);
  await server.start();
  if (await pending) assert.deepEqual(await storage.read("during"), { n: 1 });
  await storage.write("after", { n: 2 });
}

const BACK =
  /^RedisStorage: the connection to Redis at (\S+) is back after (\d+) ms down \((\d+) reconnection attempts, (\d+) errors\)$/;

privateRedisTest("outage log: one line when Redis is lost, one when it is back", async (t) => {
  const server = new PrivateRedis();
  await server.start();
  const storage = await RedisStorage.connect(server.url, { prefix: "outage:" });
  try {
    await storage.write("before", { n: 0 });
    for (const round of [1, 2]) {
      await t.step(`outage ${round}: exactly one "lost" and one "back" line`, async () => {
        const started = Date.now();
        const calls = await capturingConsoleError(() => outage(server, storage, 1500));
        const took = Date.now() - started;
        for (const call of calls) {
          assert.equal(call.length, 1, `one string per line, no error object: ${call}`);
          assert.equal(typeof call[0], "string");
          assert.doesNotMatch(String(call[0]), /\n|\.js:\d+|^\s+at /m, "no stack trace");
        }
        const lines = calls.map((call) => String(call[0]));
        console.log(lines.map((line) => `      ${line}`).join("\n"));
        assert.equal(lines.length, 2, lines.join("\n"));
        assert.match(
          lines[0],
          /^RedisStorage: lost the connection to Redis at redis:\/\/127\.0\.0\.1:\d+\/? \(.+\); reconnecting$/,
        );
        const back = BACK.exec(lines[1]);
        assert.ok(back, lines[1]);
        const [, url, ms, attempts, errors] = back;
        assert.equal(new URL(url).port, String(server.port));
        assert.ok(Number(ms) >= 1400 && Number(ms) <= took, `down ${ms} ms of ${took}`);
        // Backoff 50, 100, 200, 400, 800 ms: several failed attempts in 1.5 s.
        assert.ok(Number(attempts) >= 3, `${attempts} attempts`);
        assert.ok(Number(errors) >= 3, `${errors} errors`);
      });
    }
    await t.step("connected again, nothing more is printed", async () => {
      const calls = await capturingConsoleError(async () => {
        await sleep(300);
        assert.deepEqual(await storage.read("before"), { n: 0 });
      });
      assert.deepEqual(calls, []);
    });
  } finally {
    await storage.close();
    await server.stop();
  }
});

privateRedisTest("outage log: a user's onError gets every error, the console nothing", async () => {
  const server = new PrivateRedis();
  await server.start();
  const errors: Error[] = [];
  const storage = await RedisStorage.connect(server.url, {
    prefix: "outage:",
    onError: (err) => void errors.push(err),
  });
  try {
    const calls = await capturingConsoleError(() => outage(server, storage, 1500));
    assert.deepEqual(calls, []);
    // The dropped connection, then one refused connection per failed attempt.
    assert.ok(errors.length >= 4, `${errors.length} errors`);
    assert.ok(errors.every((err) => err instanceof Error));
    const refused = errors.filter((err) => /ECONNREFUSED/.test(String(err))).length;
    assert.ok(refused >= 3, `${refused} refused reconnection attempts: ${errors}`);
  } finally {
    await storage.close();
    await server.stop();
  }
});

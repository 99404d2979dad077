/**
 * The fault proxy (tests/fixtures/fault_proxy.ts) through the real Redis at
 * REDIS_URL: commands pass, latency is added, swallow makes a command hang
 * until heal, cut fails it with a connection error, refuse refuses new
 * connections only, and the proxy stops by itself after its lifetime.
 * Deno's sanitizers check that nothing is left open or pending.
 */
import assert from "node:assert/strict";
import { createClient } from "npm:redis@^5";
import { FaultProxy } from "./fixtures/fault_proxy.ts";
import { sleep } from "./helpers/bot.ts";
import { REDIS_URL, redisTest } from "./redis_env.ts";

type Client = ReturnType<typeof createClient>;

/** A client through `proxy` that does not reconnect, so a cut stays visible. */
async function connect(proxy: FaultProxy): Promise<Client> {
  const client = createClient({ url: proxy.url, socket: { reconnectStrategy: false } });
  client.on("error", () => {});
  await client.connect();
  return client;
}

function dispose(client: Client): void {
  if (client.isOpen) client.destroy();
}

/** Whether `promise` is still pending after `ms`. */
async function pendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  await sleep(ms);
  return !settled;
}

async function timed<T>(call: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await call();
  return [result, performance.now() - started];
}

redisTest("fault proxy: commands pass; latency is added per chunk, both ways", async () => {
  const proxy = await FaultProxy.forUrl(REDIS_URL);
  const client = await connect(proxy);
  try {
    const key = `sessionkit-test:${crypto.randomUUID()}`;
    assert.equal(await client.set(key, "v", { PX: 10_000 }), "OK");
    assert.equal(await client.get(key), "v");
    const [, fast] = await timed(() => client.ping());
    assert.ok(fast < 50, `no latency: ${fast.toFixed(1)} ms`);

    proxy.latency(100);
    const [pong, slow] = await timed(() => client.ping());
    assert.equal(pong, "PONG");
    // 100 ms on the way there, 100 ms on the way back.
    assert.ok(slow >= 195 && slow < 600, `latency 100: ${slow.toFixed(1)} ms`);

    proxy.latency(50, 100);
    const [, jittered] = await timed(() => client.ping());
    assert.ok(jittered >= 95 && jittered < 800, `latency 50 + jitter 100: ${jittered} ms`);

    proxy.heal();
    const [, healed] = await timed(() => client.ping());
    assert.ok(healed < 50, `healed: ${healed.toFixed(1)} ms`);
    assert.equal(await client.del(key), 1);
    assert.equal(proxy.accepted, 1);
    assert.equal(proxy.connections, 1);
  } finally {
    dispose(client);
    await proxy.close();
  }
});

redisTest("fault proxy: swallow makes a command hang until heal", async () => {
  const proxy = await FaultProxy.forUrl(REDIS_URL);
  const client = await connect(proxy);
  try {
    proxy.swallow();
    assert.equal(proxy.swallowing, true);
    const ping = client.ping();
    assert.equal(await pendingAfter(ping, 500), true, "no answer while swallowed");
    assert.equal(proxy.connections, 1, "the connection stays open");
    proxy.heal();
    const [pong, late] = await timed(() => ping);
    assert.equal(pong, "PONG", "the held command is delivered on heal");
    assert.ok(late < 100, `answered ${late.toFixed(1)} ms after heal`);
    assert.equal(await client.ping(), "PONG");
  } finally {
    dispose(client);
    await proxy.close();
  }
});

redisTest("fault proxy: cut fails a pending command with a connection error", async () => {
  const proxy = await FaultProxy.forUrl(REDIS_URL);
  const client = await connect(proxy);
  let again: Client | undefined;
  try {
    proxy.latency(300); // the command is on its way when the cut comes
    const ping = client.ping();
    await sleep(50);
    proxy.cut();
    await assert.rejects(ping, (err: Error) => /closed|reset|connection/i.test(err.message));
    proxy.heal();
    again = await connect(proxy);
    assert.equal(await again.ping(), "PONG", "new connections work after a cut");
    assert.equal(proxy.accepted, 2);
  } finally {
    dispose(client);
    if (again !== undefined) dispose(again);
    await proxy.close();
  }
});

redisTest("fault proxy: refuse refuses new connections, open ones carry on", async () => {
  const proxy = await FaultProxy.forUrl(REDIS_URL);
  const client = await connect(proxy);
  try {
    await proxy.refuse();
    await assert.rejects(
      Deno.connect({ hostname: proxy.hostname, port: proxy.port }),
      Deno.errors.ConnectionRefused,
    );
    assert.equal(await client.ping(), "PONG", "the open connection still works");
    proxy.heal();
    const conn = await Deno.connect({ hostname: proxy.hostname, port: proxy.port });
    conn.close();
    assert.equal(await client.ping(), "PONG");
  } finally {
    dispose(client);
    await proxy.close();
  }
});

redisTest("fault proxy: stops by itself after its lifetime", async () => {
  const proxy = await FaultProxy.start({
    hostname: new URL(REDIS_URL).hostname,
    port: Number(new URL(REDIS_URL).port || 6379),
    lifetimeMs: 300,
  });
  proxy.url = `redis://${proxy.hostname}:${proxy.port}`;
  const client = await connect(proxy);
  try {
    assert.equal(await client.ping(), "PONG");
    await sleep(500);
    await assert.rejects(Deno.connect({ hostname: proxy.hostname, port: proxy.port }));
    await assert.rejects(client.ping(), "its connections were closed");
    assert.equal(proxy.connections, 0);
  } finally {
    dispose(client);
    await proxy.close();
  }
});

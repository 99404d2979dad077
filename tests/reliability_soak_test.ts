/**
 * Soak for memory: 1,000,000 distinct chats through `MemorySessionStorage`
 * bounded by `maxEntries` (through a real grammY Bot) and by a TTL (a fake
 * clock, writing the storage directly) keep the heap flat. An unbounded
 * storage is the control: it shows that the measurement sees growth.
 *
 * Each soak runs in a subprocess started with `--v8-flags=--expose-gc`
 * (tests/fixtures/reliability_soak.ts), which collects garbage before every
 * `Deno.memoryUsage().heapUsed` sample.
 */
import assert from "node:assert/strict";

const MiB = 1024 * 1024;

interface Soak {
  mode: string;
  chats: number;
  seconds: number;
  size: number;
  samples: { chats: number; heapUsed: number }[];
}

async function soak(mode: string, chats: number): Promise<Soak> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./fixtures/reliability_soak.ts", import.meta.url).pathname,
      mode,
      String(chats),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  assert.ok(out.success, `soak ${mode} failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(stdout.split("\n").at(-1)!);
}

function heapAt(result: Soak, chats: number): number {
  const sample = result.samples.find((s) => s.chats === chats);
  assert.ok(sample, `a sample at ${chats}`);
  return sample.heapUsed;
}

function report(result: Soak): void {
  const figures = result.samples.map((s) => `${s.chats / 1000}k: ${(s.heapUsed / MiB).toFixed(2)}`);
  console.log(
    `[reliability soak] ${result.mode}, ${result.chats} chats in ${
      result.seconds.toFixed(1)
    } s, ${result.size} kept; heapUsed MiB after gc: ${figures.join(", ")}`,
  );
}

Deno.test("reliability soak: 1,000,000 chats keep the memory storage's heap bounded", async (t) => {
  // The two long soaks run side by side (two cores); the control is short.
  const [lru, ttl, control] = await Promise.all([
    soak("bot-lru", 1_000_000),
    soak("ttl", 1_000_000),
    soak("unbounded", 200_000),
  ]);
  for (const result of [lru, ttl, control]) report(result);

  await t.step("maxEntries 10,000, through a real Bot: heap flat after 100k", () => {
    assert.equal(lru.size, 10_000);
    assert.ok(
      heapAt(lru, 1_000_000) < heapAt(lru, 100_000) + 2 * MiB,
      "heap after 1M < heap after 100k + 2 MiB",
    );
  });

  await t.step("ttl 10 s with a fake clock at 1 ms per chat: heap flat after 100k", () => {
    assert.ok(ttl.size <= 10_001, `about 10,000 live sessions, got ${ttl.size}`);
    assert.ok(
      heapAt(ttl, 1_000_000) < heapAt(ttl, 100_000) + 2 * MiB,
      "heap after 1M < heap after 100k + 2 MiB",
    );
  });

  await t.step("control: without a bound the same measurement sees the heap grow", () => {
    assert.equal(control.size, 200_000);
    assert.ok(
      heapAt(control, 200_000) > heapAt(control, 20_000) + 20 * MiB,
      "an unbounded storage grows by more than 20 MiB from 20k to 200k chats",
    );
  });
});

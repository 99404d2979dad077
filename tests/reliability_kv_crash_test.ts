/**
 * Deno KV chunked sessions under SIGKILL: a subprocess writes a 4 MiB
 * session (64 chunks, more than one atomic operation can hold) again and
 * again, alternating two versions; the test kills it with SIGKILL at random
 * moments, then opens the KV file and checks that the session is exactly the
 * last finished write or the one in progress, never a mix, and lists the raw
 * KV records to account for every chunk.
 *
 * The storage's design: a generation's marker is written before its chunks
 * and deleted after them, and the head switches generations atomically. A
 * crash can leave one unreferenced generation behind (the one being written,
 * or the old one not yet removed); such generations are swept by a later
 * write of the key once they are 10 minutes old.
 */
import assert from "node:assert/strict";
import { DenoKvStorage } from "../storages/denokv.ts";
import { KEY, PREFIX, sessionFor } from "./fixtures/reliability_kv_writer.ts";
import { sleep } from "./helpers/bot.ts";

const BYTES = 4 * 1024 * 1024;
const ROUNDS = 10;
const WRITER = new URL("./fixtures/reliability_kv_writer.ts", import.meta.url).pathname;

type Big = ReturnType<typeof sessionFor>;

/** The writer's stdout, line by line, with a bounded wait for a line. */
class Lines {
  readonly lines: string[] = [];
  readonly done: Promise<void>;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      let rest = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const parts = rest.split("\n");
        rest = parts.pop()!;
        this.lines.push(...parts);
      }
    })();
  }
  async waitFor(line: string, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.lines.includes(line)) {
      if (Date.now() > until) throw new Error(`writer did not print "${line}" within ${ms} ms`);
      await sleep(5);
    }
  }
  last(word: string): number {
    const hits = this.lines.filter((l) => l.startsWith(word + " "));
    return hits.length === 0 ? 0 : Number(hits.at(-1)!.split(" ")[1]);
  }
}

interface RawState {
  headGen: string | undefined;
  headChunks: number;
  chunksByGen: Map<string, number[]>;
  markers: Set<string>;
  others: unknown[][];
}

async function rawState(kv: Deno.Kv): Promise<RawState> {
  const state: RawState = {
    headGen: undefined,
    headChunks: 0,
    chunksByGen: new Map(),
    markers: new Set(),
    others: [],
  };
  for await (const entry of kv.list({ prefix: PREFIX })) {
    const [, kind, key, gen, index] = entry.key;
    if (kind === "s" && key === KEY && entry.key.length === 3) {
      const head = entry.value as { gen?: string; n?: number };
      state.headGen = head.gen;
      state.headChunks = head.n ?? 0;
    } else if (kind === "c" && key === KEY && typeof gen === "string") {
      const list = state.chunksByGen.get(gen) ?? [];
      list.push(Number(index));
      state.chunksByGen.set(gen, list);
    } else if (kind === "g" && key === KEY && typeof gen === "string") {
      state.markers.add(gen);
    } else {
      state.others.push([...entry.key]);
    }
  }
  return state;
}

/** Checks the raw records; returns the number of unreferenced generations. */
function checkRaw(state: RawState): number {
  assert.deepEqual(state.others, [], "nothing but the head, chunks and markers");
  assert.ok(state.headGen !== undefined, "the head is a chunked manifest");
  const mine = state.chunksByGen.get(state.headGen) ?? [];
  assert.deepEqual(
    [...mine].sort((a, b) => a - b),
    [...Array(state.headChunks).keys()],
    "the head's generation has every chunk",
  );
  assert.ok(state.markers.has(state.headGen), "the head's generation has its marker");
  for (const gen of state.chunksByGen.keys()) {
    assert.ok(state.markers.has(gen), `chunks of generation ${gen} have a marker (sweepable)`);
  }
  return [...state.markers].filter((gen) => gen !== state.headGen).length;
}

Deno.test("reliability Deno KV: SIGKILL while writing a 4 MiB session leaves old or new, never a mix", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sk-kv-crash-" });
  const path = `${dir}/kv.sqlite`;
  let next = 1;
  let kills = 0;
  const outcomes: string[] = [];
  const orphanTrail: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--unstable-kv", WRITER, path, String(next), String(BYTES)],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const lines = new Lines(child.stdout);
      try {
        await lines.waitFor(`DONE ${next}`, 20_000);
        await sleep(Math.random() * 200);
      } finally {
        child.kill("SIGKILL");
        await child.status;
        await lines.done;
      }
      kills++;
      const done = lines.last("DONE");
      const begun = lines.last("BEGIN");
      next = begun + 1;

      const kv = await Deno.openKv(path);
      try {
        const storage = new DenoKvStorage<Big>(kv, { prefix: PREFIX });
        const got = await storage.read(KEY);
        assert.ok(got !== undefined, "a session is readable");
        assert.ok(got.n === done || got.n === begun, `got write ${got.n}: ${done} or ${begun}`);
        assert.deepEqual(got, sessionFor(got.n, BYTES), "the whole session of one write");
        const orphans = checkRaw(await rawState(kv));
        assert.ok(orphans <= kills, `${orphans} unreferenced generations after ${kills} kills`);
        const phase = begun === done
          ? "between writes"
          : got.n === begun
          ? "after the switch (new)"
          : "before the switch (old)";
        outcomes.push(phase);
        orphanTrail.push(orphans);
      } finally {
        kv.close();
      }
    }

    // A later write sweeps generations older than 10 minutes.
    const kv = await Deno.openKv(path);
    const realNow = Date.now;
    try {
      const storage = new DenoKvStorage<Big>(kv, { prefix: PREFIX });
      const before = checkRaw(await rawState(kv));
      const offset = 11 * 60 * 1000;
      Date.now = () => realNow() + offset;
      await storage.write(KEY, sessionFor(next, BYTES));
      Date.now = realNow;
      const after = await rawState(kv);
      assert.equal(checkRaw(after), 0, "no unreferenced generation left after the sweep");
      assert.deepEqual([...after.chunksByGen.keys()], [after.headGen]);
      assert.deepEqual(await storage.read(KEY), sessionFor(next, BYTES));
      const counts = new Map<string, number>();
      for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
      console.log(
        `[reliability kv crash] ${kills} SIGKILLs of a 4 MiB writer: ${
          [...counts].map(([o, n]) => `${n}x ${o}`).join("; ")
        }; unreferenced generations after each kill: ${orphanTrail.join(", ")}; ` +
          `${before} before the sweep, 0 after`,
      );
    } finally {
      Date.now = realNow;
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * One bot process of the multi-process benchmark (bench/multiprocess.ts
 * starts several and keeps them for all groups). It reads jobs from stdin,
 * one JSON line each. A job is one group: for each of its modes it opens the
 * storage and builds a real grammY Bot (`botInfo` given, API calls answered
 * by a transformer, errors routed to `bot.catch`); it prints `@mp ready`,
 * waits for `go <epoch ms>`, then, on a timetable shared by all processes,
 * sends updates through `bot.handleUpdate` with `inflight` of them at a time,
 * one mode per slice, and prints `@mp result` with each mode's counts.
 *
 * @module
 */

import { type Context, session as grammySession } from "npm:grammy@^1.46";
import { session, SessionConflictError, type SessionFlavor, SessionLockError } from "../../mod.ts";
import { createHarness } from "../../tests/helpers/bot.ts";
import { BACKENDS, type Library, type Place } from "./backends.ts";
import { chatPicker, type Data, initial, message } from "./workload.ts";

/** How a run's sessions are handled. */
export type Mode = "detect" | "merge" | "lock" | "grammY";

/** What a bot process is told to do: one group, every mode of it. */
export interface Job {
  backend: string;
  /** The modes, in the order of the first slice round. */
  modes: Mode[];
  /** Where each mode's sessions live (same order as `modes`). */
  places: Place[];
  inflight: number;
  /** Warm-up per mode, before anything is measured. */
  warmMs: number;
  /** Length of one measured slice. */
  sliceMs: number;
  /** Measured slices per mode. */
  slices: number;
  chats: number;
  zipf: number;
  seed: number;
}

/** What a bot process reports for one mode of a job. */
export interface Result {
  mode: Mode;
  /** Updates sent in the measured slices (each waited for). */
  measured: number;
  /** Time from the start of each measured slice to its last update's end, summed. */
  busyMs: number;
  /** Every update sent (warm-up included), per chat: [chat, count]. */
  sent: [number, number][];
  /** Updates sent, all of them. */
  handled: number;
  /** Round trips the client sent while the updates ran. */
  roundTrips: number;
  /** Updates that failed with `SessionConflictError`. */
  conflicts: number;
  /** Updates that failed with `SessionLockError`. */
  lockErrors: number;
  /** Updates that failed otherwise. */
  errors: number;
  /** The first few error messages. */
  samples: string[];
  /** Calls of the merge function (retries after a conflict). */
  merges: number;
  /** Time per update in the measured slices, in ms (rounded to 10 µs). */
  latencies: number[];
}

/** Whose middleware a mode uses. */
export function libraryOf(mode: Mode): Library {
  return mode === "grammY" ? "grammY" : "sessionkit";
}

/**
 * The order of the slices: warm-up in `modes` order, then rounds of every
 * mode, forwards and backwards in turn (ABCD DCBA ABCD ...), so that a
 * drift of the machine's load hits every mode alike.
 */
export function schedule(modes: number, slices: number): number[] {
  const forwards = Array.from({ length: modes }, (_, i) => i);
  const out: number[] = [];
  for (let k = 0; k < slices; k++) out.push(...(k % 2 ? [...forwards].reverse() : forwards));
  return out;
}

type C = Context & SessionFlavor<Data>;

/** One mode's bot in this process, with its counts. */
async function prepare(job: Job, index: number) {
  const backend = BACKENDS.find((b) => b.name === job.backend);
  if (backend === undefined) throw new Error(`unknown backend ${job.backend}`);
  const mode = job.modes[index];
  const pool = Math.min(job.inflight + 1, 10);
  const opened = await backend.open(job.places[index], libraryOf(mode), pool);
  const h = createHarness<C>();
  const state = { merges: 0 };
  const storage = opened.storage;
  switch (mode) {
    case "detect":
      h.bot.use(session<Data, C>({ initial, storage }));
      break;
    case "merge":
      h.bot.use(session<Data, C>({
        initial,
        storage,
        onConflict: (stored, mine, base) => {
          state.merges++;
          return { count: (stored?.count ?? 0) + (mine?.count ?? 0) - (base?.count ?? 0) };
        },
      }));
      break;
    case "lock":
      h.bot.use(session<Data, C>({ initial, storage, lock: {} }));
      break;
    case "grammY":
      h.bot.use(grammySession<Data, C>({ initial, storage, prefix: opened.prefix }));
      break;
  }
  h.bot.on("message", (ctx) => {
    ctx.session.count++;
  });
  return {
    mode,
    opened,
    h,
    state,
    // The same seed for every mode: each sees the same sequence of chats.
    pick: chatPicker(job.chats, job.zipf, job.seed),
    sent: new Map<number, number>(),
    latencies: [] as number[],
    measured: 0,
    busyMs: 0,
    handled: 0,
    roundTrips: 0,
  };
}

type Bot = Awaited<ReturnType<typeof prepare>>;

/** Sends updates through `bot` until `end`, `inflight` at a time; waits for all. */
async function slice(bot: Bot, inflight: number, end: number, measure: boolean) {
  const start = Date.now();
  const before = bot.opened.counter.n;
  let sent = 0;
  const loop = async () => {
    while (Date.now() < end) {
      const chat = bot.pick();
      bot.sent.set(chat, (bot.sent.get(chat) ?? 0) + 1);
      sent++;
      const t0 = performance.now();
      await bot.h.send(message(++bot.handled, chat));
      if (measure) bot.latencies.push(Math.round((performance.now() - t0) * 100) / 100);
    }
  };
  await Promise.all(Array.from({ length: inflight }, loop));
  bot.roundTrips += bot.opened.counter.n - before;
  if (measure) {
    bot.measured += sent;
    bot.busyMs += Date.now() - start;
  }
}

async function run(job: Job, waitForGo: () => Promise<number>): Promise<Result[]> {
  const bots: Bot[] = [];
  try {
    for (let i = 0; i < job.modes.length; i++) bots.push(await prepare(job, i));
    console.log("@mp ready");
    let at = await waitForGo();
    const wait = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
    // Slices start on a common timetable, so the processes run one mode at
    // a time together; one that is late (a slow drain) starts at once.
    for (const bot of bots) {
      await wait(at);
      await slice(bot, job.inflight, Math.max(Date.now(), at) + job.warmMs, false);
      at += job.warmMs + GAP_MS;
    }
    for (const index of schedule(bots.length, job.slices)) {
      await wait(at);
      await slice(bots[index], job.inflight, Math.max(Date.now(), at) + job.sliceMs, true);
      at += job.sliceMs + GAP_MS;
    }
  } finally {
    for (const bot of bots) await bot.opened.close();
  }
  return bots.map((bot) => {
    const kinds = { conflicts: 0, lockErrors: 0, errors: 0 };
    const samples: string[] = [];
    for (const { error } of bot.h.errors) {
      if (error instanceof SessionConflictError) kinds.conflicts++;
      else if (error instanceof SessionLockError) kinds.lockErrors++;
      else {
        kinds.errors++;
        if (samples.length < 3) samples.push(String(error));
      }
    }
    return {
      mode: bot.mode,
      measured: bot.measured,
      busyMs: bot.busyMs,
      sent: [...bot.sent],
      handled: bot.handled,
      roundTrips: bot.roundTrips,
      ...kinds,
      samples,
      merges: bot.state.merges,
      latencies: bot.latencies,
    };
  });
}

/** Pause between two slices (the drain of the one before usually fits in it). */
const GAP_MS = 60;

if (import.meta.main) {
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const nextLine = async (): Promise<string | undefined> => {
    while (!buffer.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) return undefined;
      buffer += value;
    }
    const at = buffer.indexOf("\n");
    const line = buffer.slice(0, at);
    buffer = buffer.slice(at + 1);
    return line;
  };
  for (let line = await nextLine(); line !== undefined; line = await nextLine()) {
    if (line.trim() === "") continue;
    try {
      const result = await run(JSON.parse(line), async () => {
        const go = await nextLine();
        if (go === undefined || !go.startsWith("go ")) throw new Error(`expected go, got ${go}`);
        return Number(go.slice(3));
      });
      console.log(`@mp result ${JSON.stringify(result)}`);
    } catch (err) {
      console.log(`@mp failed ${JSON.stringify(String((err as Error)?.stack ?? err))}`);
    }
  }
}

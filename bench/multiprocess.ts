/**
 * Many bot processes on one storage (#18): 1, 2 and 4 OS processes (Deno
 * subprocesses, bench/multiprocess/worker.ts), each a real grammY Bot driven
 * through `bot.handleUpdate`, against one Redis, Redis Cluster, PostgreSQL
 * (directly, or through pgbouncer in transaction pooling mode), Deno KV
 * file, SQLite file or MySQL/MariaDB; and one process at 100 updates in
 * flight. Every update increments its chat's session, so every update
 * writes. The cluster (six local redis-server processes) and the pgbouncer
 * are started for the run and stopped at its end, also on Ctrl-C
 * (bench/multiprocess/backends.ts).
 *
 * Modes: sessionkit with conflict detection (the default), with an
 * `onConflict` merge function, with `lock`; and, as the baseline of each
 * group, grammY's own `session()` (on `@grammyjs/storage-redis` and
 * `@grammyjs/storage-psql`, and on sessionkit's storage for the others).
 * The four modes of a group (one storage, one configuration) are measured
 * together: each has its own key space, and the processes switch from mode
 * to mode in slices of a few hundred ms on a common timetable (ABCD DCBA
 * ...), so that a drift of the machine's load hits every mode alike and a
 * ratio to grammY compares runs interleaved within the same seconds. The
 * mode order rotates from group to group and round to round.
 *
 * Per mode: updates per second (each process's updates over the time its
 * measured slices took, drains included, added up), conflicts, merge calls,
 * errors, lost updates (sent, minus failed, minus the sum of the stored
 * counters read back afterwards), round trips per update counted at the
 * client (bench/multiprocess/counting.ts), latency.
 *
 * Run: `deno run -A bench/multiprocess.ts` (about 11 minutes: every backend
 * twice, Redis and PostgreSQL a third time), `--quick` (about a minute, one
 * round of 2 x 1 and 1 x 100), or with `--backends redis,postgres`
 * (names: redis, redis-cluster, postgres, pgbouncer, denokv, sqlite, mysql),
 * `--configs 1x1,4x1` (processes x updates in flight per process), `--modes
 * detect,grammY`, `--rounds 2` (rounds of every backend), `--key-rounds 3`
 * (rounds of the backends in `--repeat`, default redis,postgres),
 * `--slices 5`, `--slice-ms 300`, `--warm-ms 250`, `--chats 10000`,
 * `--zipf 1` (0 = uniform), `--json file` (raw rows). Prints markdown.
 *
 * @module
 */

import { type Backend, BACKENDS, type Place } from "./multiprocess/backends.ts";
import { type Job, libraryOf, type Mode, type Result } from "./multiprocess/worker.ts";
import { hottestShare } from "./multiprocess/workload.ts";
import { type Row, table } from "./multiprocess/table.ts";

const WORKER = new URL("./multiprocess/worker.ts", import.meta.url).pathname;
const MODES: Mode[] = ["detect", "merge", "lock", "grammY"];

function option(name: string): string | undefined {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 ? Deno.args[at + 1] : undefined;
}

const quick = Deno.args.includes("--quick");
const configs = (option("configs") ?? (quick ? "2x1,1x100" : "1x1,2x1,4x1,1x100"))
  .split(",").map((c) => {
    const [processes, inflight] = c.split("x").map(Number);
    return { processes, inflight };
  });
const modes = (option("modes")?.split(",") as Mode[] | undefined) ?? MODES;
const sliceMs = Number(option("slice-ms") ?? (quick ? 250 : 300));
const slices = Number(option("slices") ?? (quick ? 2 : 5));
const warmMs = Number(option("warm-ms") ?? (quick ? 150 : 250));
const chats = Number(option("chats") ?? 10_000);
const zipf = Number(option("zipf") ?? 1);
const rounds = Number(option("rounds") ?? (quick ? 1 : 2));
const keyRounds = Math.max(rounds, Number(option("key-rounds") ?? (quick ? 1 : 3)));
const repeat = (option("repeat") ?? "redis,postgres").split(",");
const jsonPath = option("json");
const wanted = option("backends")?.split(",");
for (const m of modes) if (!MODES.includes(m)) throw new Error(`unknown mode ${m}`);

const RUN = `skmp_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;

/** Every bot process started, for a Ctrl-C to kill. */
const children = new Set<Deno.ChildProcess>();

/** A bot process kept for every run, with its stdout read line by line. */
class Worker {
  readonly child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: string[] = [];
  #waiting: (() => void) | undefined;
  #stderr = "";
  #closed = false;

  constructor() {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-kv", "--no-check=remote", WORKER],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    children.add(this.child);
    this.#writer = this.child.stdin.getWriter();
    this.#read(this.child.stdout, (line) => {
      if (!line.startsWith("@mp ")) return;
      this.#lines.push(line.slice(4));
      this.#waiting?.();
    });
    this.#read(this.child.stderr, (line) => {
      this.#stderr = (this.#stderr + line + "\n").slice(-4000);
    });
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let at;
      while ((at = buffer.indexOf("\n")) >= 0) {
        onLine(buffer.slice(0, at));
        buffer = buffer.slice(at + 1);
      }
    }
    this.#closed = true;
    this.#waiting?.();
  }

  send(line: string): Promise<void> {
    return this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** The next `@mp` line, or an error with the process's stderr. */
  async next(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.#closed) throw new Error(`bot process exited:\n${this.#stderr}`);
      if (Date.now() > deadline) throw new Error(`bot process silent:\n${this.#stderr}`);
      await new Promise<void>((resolve) => {
        this.#waiting = resolve;
        setTimeout(resolve, 500);
      });
    }
    return this.#lines.shift()!;
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.child.status;
    clearTimeout(timer);
  }
}

function loadavg(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return NaN;
  }
}

/** Reads back the counters of every chat sent to, and sums them. */
async function storedTotal(backend: Backend, place: Place, mode: Mode, chatIds: number[]) {
  const opened = await backend.open(place, libraryOf(mode), 8);
  try {
    let total = 0;
    for (let i = 0; i < chatIds.length; i += 32) {
      const values = await Promise.all(
        chatIds.slice(i, i + 32).map((c) => opened.storage.read(`${opened.prefix ?? ""}${c}`)),
      );
      for (const v of values) total += v?.count ?? 0;
    }
    return total;
  } finally {
    await opened.close();
  }
}

/** Runs every mode of one group together (slices alternate), one row per mode. */
async function runGroup(
  workers: Worker[],
  backend: Backend,
  order: Mode[],
  places: Place[],
  processes: number,
  inflight: number,
  seed: number,
): Promise<Omit<Row, "backend" | "config" | "round">[]> {
  for (const [i, mode] of order.entries()) await backend.prepare(places[i], libraryOf(mode));
  const load = loadavg();
  const used = workers.slice(0, processes);
  await Promise.all(used.map((w, i) => {
    const job: Job = {
      backend: backend.name,
      modes: order,
      places,
      inflight,
      warmMs,
      sliceMs,
      slices,
      chats,
      zipf,
      seed: seed * 31 + i + 1,
    };
    return w.send(JSON.stringify(job));
  }));
  const ready = await Promise.all(used.map((w) => w.next(60_000)));
  const failed = ready.find((line) => !line.startsWith("ready"));
  if (failed !== undefined) {
    // Let the others finish their job, so that every process is idle again.
    const startAt = Date.now();
    await Promise.all(used.map((w, i) => ready[i] === "ready" ? w.send(`go ${startAt}`) : null));
    await Promise.all(used.map((w, i) => ready[i] === "ready" ? w.next(300_000) : null));
    throw new Error(failed);
  }
  const startAt = Date.now() + 50;
  await Promise.all(used.map((w) => w.send(`go ${startAt}`)));
  const lines = await Promise.all(used.map((w) => w.next(300_000)));
  const perProcess: Result[][] = lines.map((line) => {
    if (!line.startsWith("result ")) throw new Error(line);
    return JSON.parse(line.slice(7));
  });
  const rows: Omit<Row, "backend" | "config" | "round">[] = [];
  for (const [m, mode] of order.entries()) {
    const results = perProcess.map((list) => list[m]);
    const sent = new Map<number, number>();
    for (const r of results) {
      for (const [chat, n] of r.sent) sent.set(chat, (sent.get(chat) ?? 0) + n);
    }
    const stored = await storedTotal(backend, places[m], mode, [...sent.keys()]);
    const sum = (pick: (r: Result) => number) => results.reduce((n, r) => n + pick(r), 0);
    const handled = sum((r) => r.handled);
    const failedUpdates = sum((r) => r.conflicts + r.lockErrors + r.errors);
    const latencies = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const at = (q: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    rows.push({
      mode,
      // Each process's own rate over its busy time, added up.
      perSecond: sum((r) => r.busyMs > 0 ? r.measured / (r.busyMs / 1000) : 0),
      handled,
      conflicts: sum((r) => r.conflicts),
      merges: sum((r) => r.merges),
      lockErrors: sum((r) => r.lockErrors),
      errors: sum((r) => r.errors),
      samples: results.flatMap((r) => r.samples),
      lost: handled - failedUpdates - stored,
      roundTrips: sum((r) => r.roundTrips) / handled,
      p50: at(0.5) ?? NaN,
      p99: at(0.99) ?? NaN,
      load,
    });
  }
  return rows;
}

/** Backends whose `start()` ran: stopped at the end, on failure, or on Ctrl-C. */
const running: Backend[] = [];

async function stopStarted(): Promise<void> {
  for (const b of running.splice(0).reverse()) {
    await b.stop?.().catch((err) => console.error(`[mp] stopping ${b.label} failed: ${err}`));
  }
}

/** The signal that interrupted the run, if one did: nothing more is run or printed. */
let stopping: Deno.Signal | undefined;

function interrupted(signal: Deno.Signal) {
  if (stopping !== undefined) return;
  stopping = signal;
  console.error(`\n[mp] ${signal}: killing the bot processes, stopping the servers started`);
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  stopStarted().finally(() => Deno.exit(130));
}

async function main() {
  const backends: Backend[] = [];
  for (const b of BACKENDS) {
    if (wanted !== undefined && !wanted.includes(b.name)) continue;
    let problem: string | undefined;
    try {
      if (b.start !== undefined) {
        running.push(b);
        await b.start();
      }
      problem = await b.probe();
    } catch (err) {
      problem = (err as Error).message;
    }
    if (problem === undefined) backends.push(b);
    else {
      await b.stop?.().catch(() => {});
      console.error(
        `\n${"!".repeat(78)}\n!!! SKIPPING ${b.label}: ${problem}\n${"!".repeat(78)}\n`,
      );
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "sk-multiprocess-" });
  const workers = Array.from(
    { length: Math.max(...configs.map((c) => c.processes)) },
    () => new Worker(),
  );
  const rows: Row[] = [];
  const used = new Map<Backend, Place[]>();
  const started = Date.now();
  const loadStart = loadavg();
  let runIndex = 0;
  try {
    for (let round = 1; round <= keyRounds; round++) {
      const inRound = round <= rounds ? backends : backends.filter((b) => repeat.includes(b.name));
      for (const backend of inRound) {
        const groups = round % 2 === 1 ? configs : [...configs].reverse();
        for (const [g, { processes, inflight }] of groups.entries()) {
          if (stopping !== undefined) break;
          const shift = (g + round - 1) % modes.length;
          let order = [...modes.slice(shift), ...modes.slice(0, shift)];
          if (round % 2 === 0) order = order.reverse();
          const places = order.map(() => ({ ns: `${RUN}_${runIndex++}`, dir }));
          used.set(backend, [...(used.get(backend) ?? []), ...places]);
          const config = `${processes} x ${inflight}`;
          console.error(`[mp] round ${round}: ${backend.label}, ${config}, ${order.join(", ")}`);
          const seed = configs.findIndex((c) =>
            c.processes === processes && c.inflight === inflight
          ) +
            round * 100;
          const t0 = Date.now();
          try {
            const list = await runGroup(workers, backend, order, places, processes, inflight, seed);
            for (const r of list) rows.push({ backend: backend.label, config, round, ...r });
            console.error(
              `[mp]   ${list.map((r) => `${r.mode} ${Math.round(r.perSecond!)}/s`).join(", ")}; ` +
                `${Date.now() - t0} ms`,
            );
          } catch (err) {
            console.error(`[mp] FAILED: ${(err as Error).message}`);
            for (const mode of order) {
              rows.push({
                backend: backend.label,
                config,
                mode,
                round,
                failed: String((err as Error).message).split("\n")[0],
              });
            }
          }
        }
      }
    }
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    for (const [backend, list] of stopping === undefined ? used : []) {
      await backend.cleanup(list).catch((err) =>
        console.error(`[mp] cleanup of ${backend.label} failed: ${err}`)
      );
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  if (stopping !== undefined) return;
  const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  console.log(
    `Machine: ${cpu}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}. ` +
      `${chats} chats, Zipf exponent ${zipf} (busiest chat ${
        (hottestShare(chats, zipf) * 100).toFixed(1)
      }% of updates); ` +
      `Per group: ${warmMs} ms warm-up per mode, then ${slices} slices of ${sliceMs} ms per mode, ` +
      `modes alternating (ABCD DCBA ...); every update writes. ` +
      `Total ${((Date.now() - started) / 1000).toFixed(0)} s; load average ${loadStart} at the ` +
      `start, ${loadavg()} at the end.\n`,
  );
  const rank = (r: Row) => [
    backends.findIndex((b) => b.label === r.backend),
    configs.findIndex((c) => `${c.processes} x ${c.inflight}` === r.config),
    MODES.indexOf(r.mode as Mode),
    r.round,
  ];
  rows.sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    const i = x.findIndex((v, k) => v !== y[k]);
    return i < 0 ? 0 : x[i] - y[i];
  });
  console.log(table(rows));
  if (jsonPath !== undefined) await Deno.writeTextFile(jsonPath, JSON.stringify(rows, null, 1));
}

const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
const handlers = signals.map((signal) => {
  const handler = () => interrupted(signal);
  Deno.addSignalListener(signal, handler);
  return [signal, handler] as const;
});
try {
  await main();
} finally {
  await stopStarted();
  for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
}

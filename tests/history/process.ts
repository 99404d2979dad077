/**
 * A bot process of the history tests (tests/kill_test.ts,
 * tests/fixtures/chaos_run.ts): `tests/history/worker.ts` started with its
 * job, waiting for READY, started with a go line, SIGKILLed, and its output
 * collected; the seeded generator those runs draw their moments from; and
 * the judging of a run's history against what storage holds at the end.
 *
 * @module
 */
import { judge, type Kill, loadHistory, type Rules, type Update, type Verdict } from "./checker.ts";
import type { HistorySession, Mode } from "./recorder.ts";
import { type Backend, keyOf, openStorage, type WorkerJob } from "./worker.ts";

const WORKER = new URL("./worker.ts", import.meta.url).pathname;

/** A small seeded generator (mulberry32), so that a run's moments can be repeated. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A running worker: its process, its READY, its stdout and stderr. */
export class WorkerProcess {
  readonly child: Deno.ChildProcess;
  readonly ready: Promise<void>;
  readonly done: Promise<{ code: number; stdout: string; stderr: string }>;
  #started = false;
  #exited = false;

  constructor(readonly job: WorkerJob) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-kv", WORKER, JSON.stringify(job)],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    const ready = Promise.withResolvers<void>();
    this.ready = ready.promise;
    this.ready.catch(() => {});
    const stdout = (async () => {
      let text = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        if (text.includes("READY")) ready.resolve();
      }
      ready.reject(new Error(`worker ${job.proc}.${job.inc} ended before READY`));
      return text;
    })();
    const stderr = new Response(child.stderr).text();
    this.done = Promise.all([child.status, stdout, stderr]).then(([s, out, err]) => {
      this.#exited = true;
      return { code: s.code, stdout: out, stderr: err };
    });
  }

  /** Whether the process has ended and its output is collected. */
  get exited(): boolean {
    return this.#exited;
  }

  /** Sends the go line: run until `until` (a Unix time in ms). */
  async go(until: number): Promise<void> {
    this.#started = true;
    const writer = this.child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(`${until}\n`));
    await writer.close();
  }

  /** SIGKILL; resolves once the process is gone. Throws if a started one had failed by itself. */
  async kill(): Promise<void> {
    let ended = false;
    try {
      this.child.kill("SIGKILL");
    } catch {
      ended = true;
    }
    if (!this.#started) await this.child.stdin.close().catch(() => {});
    const out = await this.done;
    if (ended && this.#started && out.code !== 0) {
      throw new Error(`worker ${this.job.proc}.${this.job.inc} ended by itself: ${out.stderr}`);
    }
  }
}

/** How each mode is judged: grammY's session by the rules of conflict detection. */
const RULES: Record<Mode, Rules> = {
  detect: "detect",
  merge: "merge",
  lock: "lock",
  grammy: "detect",
};

/**
 * After a run: what storage holds under every key of `keyed`, the history
 * the workers wrote to `dir`, and the verdict for each mode of `judged`.
 *
 * @param backend Where the sessions live (opened once more to read them).
 * @param dir The workers' history files.
 * @param keyed The modes and chats whose keys the run used.
 * @param judged The modes to judge, in the order of the verdicts.
 * @param kills The kills of the run.
 * @param lockTtl The lease TTL of the `lock` mode, ms.
 */
export async function judgeRun(
  backend: Backend,
  dir: string,
  keyed: readonly { mode: Mode; chats: readonly number[] }[],
  judged: readonly Mode[],
  kills: readonly Kill[],
  lockTtl: number,
): Promise<
  { finals: Map<string, HistorySession | undefined>; history: Update[]; verdicts: Verdict[] }
> {
  const finals = new Map<string, HistorySession | undefined>();
  const { storage, close } = await openStorage(backend);
  try {
    for (const { mode, chats } of keyed) {
      for (const chat of chats) {
        const key = keyOf(mode, chat);
        finals.set(key, (await storage.read(key)) ?? undefined);
      }
    }
  } finally {
    await close();
  }
  const history = await loadHistory(dir);
  const verdicts = judged.map((mode) =>
    judge(history.filter((u) => u.mode === mode), finals, RULES[mode], kills, lockTtl)
  );
  return { finals, history, verdicts };
}

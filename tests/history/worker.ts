/**
 * One bot process of the kill tests (issue 19). Reads its job as JSON from
 * the first argument, opens the storage, builds one real grammY `Bot` per
 * mode (sessionkit's `session()` with conflict detection, with a counter
 * merge, with `lock`, or grammY's own `session()`), prints READY, waits for
 * its go line on stdin (the time to stop at; with `go`, it starts at once
 * and stops at `until`), and then, until that time, keeps one update
 * in flight per key: each one increments the session's counter and appends
 * its own unique id to the session's list of ids. Every update's history
 * goes to `<dir>/<proc>.<inc>.jsonl` as it happens (`recorder.ts`), so a
 * SIGKILL loses at most the update in flight. Prints a JSON summary line
 * and exits once the updates in flight have ended.
 */
import { type Context, session as grammySession } from "npm:grammy@^1.46";
import {
  type LeaseStorage,
  type LockedStorage,
  session,
  SessionConflictError,
  type SessionFlavor,
  type SessionOptions,
  type StorageAdapter,
} from "../../mod.ts";
import { createHarness, message, sleep } from "../helpers/bot.ts";
import {
  type Digest,
  digest,
  HistoryFile,
  type HistorySession,
  type Mode,
  type Outcome,
  Recorder,
} from "./recorder.ts";

/**
 * Where the workers' sessions live. `timeout` is the networked storages'
 * option of that name (their default when left out); `redis-cluster` is a
 * Redis Cluster through `RedisStorage.connectCluster` with `urls` as seeds.
 */
export type Backend =
  | { kind: "denokv"; path: string; prefix: string }
  | { kind: "redis"; url: string; prefix: string; timeout?: number }
  | { kind: "redis-cluster"; urls: string[]; prefix: string; timeout?: number }
  | { kind: "postgres"; url: string; table: string; timeout?: number }
  | { kind: "sqlite"; path: string; table: string }
  | { kind: "mysql"; url: string; table: string; timeout?: number };

/** The job of one worker process. */
export interface WorkerJob {
  backend: Backend;
  /** The directory of the history files. */
  dir: string;
  /** The process's name ("a", "b", ...), the same across restarts. */
  proc: string;
  /** Its incarnation: 0, then one more at each restart. */
  inc: number;
  /**
   * The chats each mode drives, one update in flight per chat, and the
   * longest pause of its handler between reading and changing the session
   * (ms): the window in which others may write, or wait for the lease.
   */
  modes: { mode: Mode; chats: number[]; pause: number }[];
  /** With `go`: no update starts after this time (ms since the epoch). */
  until: number;
  /** Start at once instead of waiting for a line on stdin that gives `until`. */
  go: boolean;
  /** The lease TTL of the `lock` mode, ms. */
  lockTtl: number;
  /**
   * After an update that failed, wait this long (ms) before the key's next
   * one, as a bot waits for its next update from the network. Without it,
   * updates that fail at once (a client that refuses commands while it is
   * offline) follow one another in promise callbacks only and starve the
   * event loop: no timer fires, no reply is read, no client reconnects.
   * Default 0: no pause.
   */
  pauseAfterError?: number;
}

/** The storage key of `chat` in `mode` (each mode has keys of its own). */
export function keyOf(mode: Mode, chat: number): string {
  return `${mode}:${chat}`;
}

/** Opens the storage of `backend`, and how to close it. */
export async function openStorage(
  backend: Backend,
): Promise<{ storage: StorageAdapter<HistorySession>; close: () => Promise<void> }> {
  switch (backend.kind) {
    case "denokv": {
      const { DenoKvStorage } = await import("../../storages/denokv.ts");
      const kv = await Deno.openKv(backend.path);
      return {
        storage: new DenoKvStorage<HistorySession>(kv, { prefix: [backend.prefix] }),
        close: () => Promise.resolve(kv.close()),
      };
    }
    case "redis": {
      const { RedisStorage } = await import("../../storages/redis.ts");
      const storage = await RedisStorage.connect<HistorySession>(backend.url, {
        prefix: backend.prefix,
        timeout: backend.timeout,
      });
      return { storage, close: () => storage.close() };
    }
    case "redis-cluster": {
      const { RedisStorage } = await import("../../storages/redis.ts");
      const storage = await RedisStorage.connectCluster<HistorySession>(backend.urls, {
        prefix: backend.prefix,
        timeout: backend.timeout,
      });
      return { storage, close: () => storage.close() };
    }
    case "postgres": {
      const { PostgresStorage } = await import("../../storages/postgres.ts");
      const storage = PostgresStorage.connect<HistorySession>(backend.url, {
        table: backend.table,
        timeout: backend.timeout,
      });
      return { storage, close: () => storage.close() };
    }
    case "sqlite": {
      const { DatabaseSync } = await import("node:sqlite");
      const { SqliteStorage } = await import("../../storages/sqlite.ts");
      const db = new DatabaseSync(backend.path);
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
      const storage = new SqliteStorage<HistorySession>(db, { table: backend.table });
      return { storage, close: () => storage.close().then(() => db.close()) };
    }
    case "mysql": {
      const { MysqlStorage } = await import("../../storages/mysql.ts");
      const storage = MysqlStorage.connect<HistorySession>(backend.url, {
        table: backend.table,
        timeout: backend.timeout,
      });
      return { storage, close: () => storage.close() };
    }
  }
}

/** The merge of the README's counter example, carrying the list of ids along. */
export function mergeSessions(
  stored: HistorySession | undefined,
  mine: HistorySession | undefined,
  base: HistorySession | undefined,
): HistorySession {
  return {
    count: (stored?.count ?? 0) + (mine?.count ?? 0) - (base?.count ?? 0),
    ids: [...(stored?.ids ?? []), ...(mine?.ids ?? []).slice(base?.ids.length ?? 0)],
  };
}

function sessionOptions(
  mode: Exclude<Mode, "grammy">,
  job: WorkerJob,
): Partial<SessionOptions<HistorySession>> {
  switch (mode) {
    case "detect":
      return {};
    case "merge":
      return { onConflict: mergeSessions, maxConflictRetries: 1000 };
    case "lock":
      return { lock: { ttl: job.lockTtl, wait: 30_000 } };
  }
}

type Ctx = Context & SessionFlavor<HistorySession>;

async function main(job: WorkerJob): Promise<void> {
  const { storage, close } = await openStorage(job.backend);
  const file = new HistoryFile(`${job.dir}/${job.proc}.${job.inc}.jsonl`);
  const inFlight = new Map<string, string>(); // key -> update id
  const recorder = new Recorder(file, (key) => inFlight.get(key));
  recorder.instrument(storage);
  const saw = new Map<string, Digest | null>();
  const left = new Map<string, Digest | null>();
  const outcomes: Record<Outcome, number> = { ok: 0, conflict: 0, error: 0, unknown: 0 };

  const bots = job.modes.map(({ mode, chats, pause }) => {
    const h = createHarness<Ctx>();
    const getSessionKey = (ctx: Context) =>
      ctx.chat === undefined ? undefined : keyOf(mode, ctx.chat.id);
    const initial = (): HistorySession => ({ count: 0, ids: [] });
    h.bot.use(
      mode === "grammy"
        // deno-lint-ignore no-explicit-any
        ? grammySession({ initial, storage, getSessionKey }) as any
        : session<HistorySession, Ctx>({
          ...sessionOptions(mode, job),
          initial,
          storage,
          getSessionKey,
        }),
    );
    h.bot.on("message", async (ctx) => {
      const id = ctx.message.text!;
      const data = ctx.session;
      saw.set(id, digest(data));
      await sleep(Math.random() * pause);
      data.count++;
      data.ids.push(id);
      left.set(id, digest(data));
    });
    return { mode, chats, h };
  });

  // Before READY: connects as many connections as there will be updates in
  // flight, and creates the tables (and the lease table), so that the run
  // measures updates, not warming up.
  const loops = job.modes.reduce((n, m) => n + m.chats.length, 0);
  await Promise.all(Array.from({ length: loops }, () => storage.read(keyOf("detect", 0))));
  const locked = storage as Partial<LockedStorage<HistorySession> & LeaseStorage>;
  if (job.modes.some((m) => m.mode === "lock") && locked.acquireLeaseAndRead !== undefined) {
    const owner = crypto.randomUUID();
    await locked.acquireLeaseAndRead(`warm-up:${job.proc}`, owner, 1000);
    await locked.releaseLease!(`warm-up:${job.proc}`, owner);
  }
  console.log("READY");
  let until = job.until;
  if (!job.go) {
    // The go line: the time to stop at, as a number.
    const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) Deno.exit(1); // the test went away
      text += value;
    }
    until = Number(text.trim());
    void reader.cancel().catch(() => {});
  }

  let seq = 0;
  async function drive(mode: Mode, chat: number, h: ReturnType<typeof createHarness<Ctx>>) {
    const key = keyOf(mode, chat);
    while (Date.now() < until) {
      const id = `${job.proc}${job.inc}.${(seq++).toString(36)}`;
      inFlight.set(key, id);
      recorder.start({ id, proc: job.proc, inc: job.inc, mode, key, at: Date.now() });
      await h.send(message(chat, id));
      inFlight.delete(key);
      const i = h.errors.findIndex((e) => e.ctx.message?.text === id);
      const error = i < 0 ? undefined : h.errors.splice(i, 1)[0].error;
      const outcome: Outcome = error === undefined
        ? "ok"
        : error instanceof SessionConflictError
        ? "conflict"
        : recorder.writeThrew(id)
        ? "unknown"
        : "error";
      outcomes[outcome]++;
      recorder.end({
        id,
        at: Date.now(),
        outcome,
        saw: saw.get(id) ?? null,
        left: left.get(id) ?? null,
        error: error === undefined ? undefined : String(error).slice(0, 300),
      });
      saw.delete(id);
      left.delete(id);
      if (outcome !== "ok" && (job.pauseAfterError ?? 0) > 0) await sleep(job.pauseAfterError!);
    }
  }
  await Promise.all(
    bots.flatMap(({ mode, chats, h }) => chats.map((chat) => drive(mode, chat, h))),
  );
  file.close();
  await close();
  console.log(JSON.stringify({ proc: job.proc, inc: job.inc, outcomes }));
}

if (import.meta.main) await main(JSON.parse(Deno.args[0]) as WorkerJob);

/**
 * Shared pieces of the benchmarks: a real grammY Bot whose API calls never
 * leave the process, prebuilt updates, and the workloads every group uses.
 * Not a bench file itself (the leading underscore keeps `deno bench` off it).
 *
 * @module
 */

import { Bot, type Context, type MiddlewareFn } from "npm:grammy@^1.46";
import type { Update } from "npm:grammy@^1.46/types";
import { botInfo } from "../tests/helpers/bot.ts";

/** The session every benchmark stores: small, as most bots' are. */
export interface Data {
  count: number;
  lang: string;
  step: string;
}

/** A new session value (a fresh object each call). */
export const initial = (): Data => ({ count: 0, lang: "en", step: "idle" });

/** What the handler does with the session. */
export type Workload = "ignores" | "reads" | "changes";

/** Chats the benchmarks cycle through; each has its own session. */
export const CHATS = 100;

/** Builds `count` text messages from private chats 1..count. */
export function messages(count: number, first = 1): Update[] {
  const out: Update[] = [];
  for (let i = 0; i < count; i++) {
    const chat = first + i;
    out.push({
      update_id: i + 1,
      message: {
        message_id: i + 1,
        date: 1_700_000_000,
        chat: { id: chat, type: "private", first_name: "User" },
        from: { id: chat, is_bot: false, first_name: "User" },
        text: "hello",
      },
    } as Update);
  }
  return out;
}

/**
 * A real Bot: `botInfo` given (no getMe), every API call answered by a
 * transformer in-process. Errors are not caught: `handleUpdate` rejects,
 * so a broken row fails the benchmark instead of measuring nothing.
 */
export function makeBot<C extends Context>(
  // deno-lint-ignore no-explicit-any
  session: MiddlewareFn<any> | undefined,
  handler: MiddlewareFn<C>,
): Bot<C> {
  const bot = new Bot<C>("0:bench-token", { botInfo });
  bot.api.config.use(() =>
    // deno-lint-ignore no-explicit-any
    Promise.resolve({ ok: true, result: true } as any)
  );
  if (session !== undefined) bot.use(session);
  bot.on("message", handler);
  return bot;
}

/** A sink the handlers write into, so reads cannot be optimized away. */
export const sink = { total: 0 };

type Strict = Context & { session: Data };
type Lazy = Context & { session: Promise<Data> | Data };

/** The handler of a strict session for a workload. */
export function strictHandler(workload: Workload): MiddlewareFn<Strict> {
  switch (workload) {
    case "ignores":
      return () => {
        sink.total++;
      };
    case "reads":
      return (ctx) => {
        sink.total += ctx.session.count + ctx.session.lang.length;
      };
    case "changes":
      return (ctx) => {
        ctx.session.count++;
      };
  }
}

/** The handler of a lazy session for a workload: it awaits `ctx.session`. */
export function lazyHandler(workload: Workload): MiddlewareFn<Lazy> {
  switch (workload) {
    case "ignores":
      return () => {
        sink.total++;
      };
    case "reads":
      return async (ctx) => {
        const data = await ctx.session;
        sink.total += data.count + data.lang.length;
      };
    case "changes":
      return async (ctx) => {
        const data = await ctx.session;
        data.count++;
      };
  }
}

/**
 * The handler of the "no session" limit: the same work as the session
 * handlers, on plain objects kept in a `Map` by chat (free, unsaved state).
 */
export function plainHandler(workload: Workload): MiddlewareFn<Context> {
  const state = new Map<number, Data>();
  const data = (ctx: Context) => {
    const id = ctx.chatId!;
    let d = state.get(id);
    if (d === undefined) state.set(id, d = initial());
    return d;
  };
  switch (workload) {
    case "ignores":
      return () => {
        sink.total++;
      };
    case "reads":
      return (ctx) => {
        const d = data(ctx);
        sink.total += d.count + d.lang.length;
      };
    case "changes":
      return (ctx) => {
        data(ctx).count++;
      };
  }
}

/**
 * Read-mostly and write-heavy mixes: a strict handler that changes the
 * session on every `every`-th update and only reads it otherwise.
 */
export function mixedHandler(every: number): MiddlewareFn<Strict> {
  return (ctx) => {
    if (ctx.update.update_id % every === 0) ctx.session.count++;
    else sink.total += ctx.session.count;
  };
}

/** Cycles through prebuilt updates, `batch` of them per call. */
export function driver(bot: Bot<Context>, updates: Update[], batch: number): () => Promise<void> {
  let i = 0;
  return async () => {
    for (let n = 0; n < batch; n++) {
      await bot.handleUpdate(updates[i]);
      i = (i + 1) % updates.length;
    }
  };
}

/**
 * The updates of the read-mostly / write-heavy mixes: `count` updates over
 * `CHATS` chats, with update ids 1..count so `mixedHandler` can pick.
 */
export function mixedUpdates(count: number): Update[] {
  const out: Update[] = [];
  for (let i = 0; i < count; i++) {
    const chat = (i % CHATS) + 1;
    out.push({
      update_id: i + 1,
      message: {
        message_id: i + 1,
        date: 1_700_000_000,
        chat: { id: chat, type: "private", first_name: "User" },
        from: { id: chat, is_bot: false, first_name: "User" },
        text: "hello",
      },
    } as Update);
  }
  return out;
}

/** Prints a loud line when a group is skipped because its server is missing. */
export function loudSkip(what: string, url: string, problem: string): void {
  console.error(
    `\n${"!".repeat(78)}\n!!! SKIPPING the ${what} benchmarks: ${url} unreachable (${problem}).\n` +
      `${"!".repeat(78)}\n`,
  );
}

/**
 * The limit of a networked storage: a hand-written session middleware that
 * does the fewest round trips, straight on the driver. It reads the JSON
 * text of the chat's session and writes it back only when it changed; no
 * validation, no sharing between concurrent updates, no conflict checks.
 */
export function rawSession(
  get: (key: string) => Promise<string | null | undefined>,
  set: (key: string, text: string) => Promise<unknown>,
): MiddlewareFn<Context & { session: Data }> {
  return async (ctx, next) => {
    const key = String(ctx.chatId);
    const before = await get(key);
    const data: Data = before == null ? initial() : JSON.parse(before);
    Object.defineProperty(ctx, "session", { value: data, writable: true });
    await next();
    const after = JSON.stringify(ctx.session);
    if (after !== before) await set(key, after);
  };
}

/** A unique name part for this run: keys and tables start with it. */
export const RUN = `skbench_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;

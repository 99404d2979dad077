/**
 * Two bots racing on one session, as two processes would: each has its own
 * session middleware (its own in-process state) over one shared storage.
 */
import type { Context } from "npm:grammy@^1.46";
import {
  session,
  type SessionFlavor,
  type SessionOptions,
  type StorageAdapter,
} from "../../mod.ts";
import { createHarness, type Harness, message, sleep } from "./bot.ts";

/** The session both bots count in. */
export type Count = { count: number };

/** A merge function that keeps both sides' increments. */
export const addIncrements = (stored?: Count, mine?: Count, base?: Count): Count => ({
  count: (stored?.count ?? 0) + (mine?.count ?? 0) - (base?.count ?? 0),
});

/**
 * Bot A reads chat 1's count, waits, then stores count + 1; bot B increments
 * the count in between. Resolves once both updates are done.
 */
export async function race(
  storage: StorageAdapter<Count>,
  options: Partial<SessionOptions<Count>>,
): Promise<
  { a: Harness<Context & SessionFlavor<Count>>; b: Harness<Context & SessionFlavor<Count>> }
> {
  type C = Context & SessionFlavor<Count>;
  const gate = Promise.withResolvers<void>();
  const read = Promise.withResolvers<void>();
  const a = createHarness<C>();
  a.bot.use(session({ initial: () => ({ count: 0 }), storage, ...options }));
  a.bot.on("message", async (ctx) => {
    const n = ctx.session.count;
    read.resolve();
    await gate.promise;
    ctx.session.count = n + 1;
  });
  const b = createHarness<C>();
  b.bot.use(session({ initial: () => ({ count: 0 }), storage, ...options }));
  b.bot.on("message", (ctx) => void ctx.session.count++);
  const first = a.send(message(1));
  await read.promise;
  const second = b.send(message(1));
  await sleep(20);
  gate.resolve();
  await Promise.all([first, second]);
  return { a, b };
}

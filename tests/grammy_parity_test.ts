/**
 * The same scenario on grammY's built-in `session`/`lazySession` and on
 * sessionkit's, side by side: the outcome is the same, or differs exactly as
 * documented (the assertion message names the difference). Scenarios are the
 * grammY features that issue 15's defects touch. Both run on the same kind of
 * storage: a plain third-party adapter (tests/helpers/defects_storage.ts).
 */
import assert from "node:assert/strict";
import {
  type Context,
  lazySession as grammyLazySession,
  type MiddlewareFn,
  session as grammySession,
} from "npm:grammy@^1.46";
import {
  type Conversation,
  type ConversationFlavor,
  conversations,
  createConversation,
} from "npm:@grammyjs/conversations@^1";
import { lazySession, session, SessionKeyError, type StorageAdapter } from "../mod.ts";
import { createHarness, type Harness, inlineQuery, message, sleep } from "./helpers/bot.ts";
import {
  DateParsingAdapter,
  describe,
  JsonAdapter,
  watchUnhandledRejections,
} from "./helpers/defects_storage.ts";

type Data = { count: number };
/** Both libraries' contexts, loosely typed so that one scenario runs on both. */
// deno-lint-ignore no-explicit-any
type Loose = Context & { session: any };
type Options = { initial?: () => unknown; storage: StorageAdapter<unknown> };
type Make = (options: Options) => MiddlewareFn<Loose>;

interface Impl {
  name: "grammY" | "sessionkit";
  strict: Make;
  lazy: Make;
}

const IMPLS: Impl[] = [
  {
    name: "grammY",
    strict: (o) => grammySession(o as never) as unknown as MiddlewareFn<Loose>,
    lazy: (o) => grammyLazySession(o as never) as unknown as MiddlewareFn<Loose>,
  },
  {
    name: "sessionkit",
    strict: (o) => session(o as never) as unknown as MiddlewareFn<Loose>,
    lazy: (o) => lazySession(o as never) as unknown as MiddlewareFn<Loose>,
  },
];

const initial = (): Data => ({ count: 0 });

function errorsOf(h: Harness<Loose>): string[] {
  return h.errors.map((e) => describe(e.error));
}

/** Runs `scenario` on both libraries; returns their outcomes by name. */
async function both<R>(scenario: (impl: Impl) => Promise<R>): Promise<Record<Impl["name"], R>> {
  return {
    grammY: await scenario(IMPLS[0]),
    sessionkit: await scenario(IMPLS[1]),
  };
}

function adapter(count?: number): JsonAdapter<Data> {
  const storage = new JsonAdapter<Data>();
  if (count !== undefined) storage.set("1", { count });
  return storage;
}

Deno.test("parity: lazy ctx.session is the value once loaded, a promise before", async (t) => {
  await t.step(
    "a promise first, the loaded value after await, and ctx.session.count++ works",
    async () => {
      const out = await both(async (impl) => {
        const storage = adapter(4);
        const h = createHarness<Loose>();
        h.bot.use(impl.lazy({ initial, storage: storage as StorageAdapter<unknown> }));
        const seen: Record<string, boolean> = {};
        h.bot.on("message", async (ctx) => {
          const first = ctx.session;
          seen.firstIsPromise = first instanceof Promise;
          const value = await first;
          seen.thenTheValue = ctx.session === value;
          ctx.session.count++;
        });
        await h.send(message(1));
        return { seen, stored: storage.get("1"), errors: errorsOf(h) };
      });
      assert.deepEqual(out.grammY, {
        seen: { firstIsPromise: true, thenTheValue: true },
        stored: { count: 5 },
        errors: [],
      });
      assert.deepEqual(out.sessionkit, out.grammY, "sessionkit differs from grammY");
    },
  );

  await t.step("after an assignment, ctx.session is the assigned value", async () => {
    const out = await both(async (impl) => {
      const storage = adapter(4);
      const h = createHarness<Loose>();
      h.bot.use(impl.lazy({ initial, storage: storage as StorageAdapter<unknown> }));
      h.bot.on("message", (ctx) => {
        ctx.session = { count: 10 };
        ctx.session.count++;
      });
      await h.send(message(1));
      return { stored: storage.get("1"), errors: errorsOf(h) };
    });
    assert.deepEqual(out.grammY, { stored: { count: 11 }, errors: [] });
    assert.deepEqual(out.sessionkit, out.grammY, "sessionkit differs from grammY");
  });
});

Deno.test("parity: the middleware waits for read ops to complete", async (t) => {
  for (const ending of ["returns", "throws"] as const) {
    await t.step(`a handler starts a read, does not await it, and ${ending}`, async () => {
      const out = await both(async (impl) => {
        const storage = adapter(1);
        const gate = Promise.withResolvers<void>();
        storage.readGate = gate.promise;
        const h = createHarness<Loose>();
        h.bot.use(impl.lazy({ initial, storage: storage as StorageAdapter<unknown> }));
        const order: string[] = [];
        h.bot.on("message", (ctx) => {
          void Promise.resolve(ctx.session).then(() => order.push("read settled"));
          if (ending === "throws") throw new Error("handler failed");
        });
        const sent = h.send(message(1)).then(() => order.push("middleware settled"));
        await sleep(30);
        const settledBeforeRead = order.includes("middleware settled");
        gate.resolve();
        await sent;
        await sleep(10);
        return { settledBeforeRead, errors: errorsOf(h), writes: storage.counts.write };
      });
      if (ending === "returns") {
        assert.deepEqual(out.grammY, { settledBeforeRead: false, errors: [], writes: 1 });
        assert.equal(
          out.sessionkit.settledBeforeRead,
          false,
          "sessionkit settled before the read (grammY waits)",
        );
        assert.deepEqual(out.sessionkit.errors, []);
        assert.equal(
          out.sessionkit.writes,
          0,
          "documented difference: grammY writes every session that was read, sessionkit only changed ones",
        );
      } else {
        assert.equal(
          out.grammY.settledBeforeRead,
          true,
          "grammY does not wait when the handler threw",
        );
        assert.equal(
          out.sessionkit.settledBeforeRead,
          false,
          "documented difference (U6): sessionkit waits for a read started by a failing handler too",
        );
        assert.deepEqual(out.sessionkit.errors, out.grammY.errors);
        assert.deepEqual([out.grammY.writes, out.sessionkit.writes], [0, 0]);
      }
    });
  }
});

Deno.test("parity: the last assignment wins", async (t) => {
  for (const when of ["before the handler returns", "after the update ended"] as const) {
    await t.step(`ctx.session = promiseOfA; ctx.session = b (A settles ${when})`, async () => {
      const out = await both(async (impl) => {
        const storage = adapter(1);
        const h = createHarness<Loose>();
        h.bot.use(impl.lazy({ initial, storage: storage as StorageAdapter<unknown> }));
        h.bot.on("message", async (ctx) => {
          const a = Promise.withResolvers<Data>();
          ctx.session = a.promise;
          ctx.session = { count: 2 };
          if (when === "before the handler returns") {
            a.resolve({ count: 100 });
            await sleep(5);
          } else {
            setTimeout(() => a.resolve({ count: 100 }), 40);
          }
        });
        await h.send(message(1));
        await sleep(80);
        return { stored: storage.get("1"), errors: errorsOf(h) };
      });
      assert.deepEqual(out.grammY, { stored: { count: 2 }, errors: [] });
      assert.deepEqual(out.sessionkit, out.grammY, "sessionkit differs from grammY");
    });
  }
});

Deno.test("parity: touching ctx.session on an update without a key throws at once", async (t) => {
  for (const kind of ["lazy", "strict"] as const) {
    await t.step(`${kind}: an inline query with the default per-chat key`, async () => {
      const out = await both(async (impl) => {
        const watch = watchUnhandledRejections();
        try {
          const storage = adapter();
          const h = createHarness<Loose>();
          h.bot.use(impl[kind]({ initial, storage: storage as StorageAdapter<unknown> }));
          let sync: unknown;
          h.bot.on("inline_query", (ctx) => {
            try {
              void ctx.session;
            } catch (err) {
              sync = err;
              throw err;
            }
          });
          await h.send(inlineQuery(7));
          await sleep(30);
          return {
            threwSynchronously: sync !== undefined,
            reachedCatch: h.errors.length === 1 && h.errors[0].error === sync,
            unhandled: watch.reasons.map(describe),
            storageCalls: storage.counts.read + storage.counts.write + storage.counts.delete,
            sessionKeyError: sync instanceof SessionKeyError,
          };
        } finally {
          watch.stop();
        }
      });
      const common = {
        threwSynchronously: true,
        reachedCatch: true,
        unhandled: [],
        storageCalls: 0,
      };
      assert.deepEqual({ ...out.grammY, sessionKeyError: undefined }, {
        ...common,
        sessionKeyError: undefined,
      });
      assert.deepEqual({ ...out.sessionkit, sessionKeyError: undefined }, {
        ...common,
        sessionKeyError: undefined,
      });
      assert.equal(out.grammY.sessionKeyError, false);
      assert.equal(
        out.sessionkit.sessionKeyError,
        true,
        "documented difference: sessionkit throws a SessionKeyError (grammY a plain Error)",
      );
    });
  }
});

type Dated = { count: number; since: string | Date; last?: Date };
const SINCE = "2024-01-02T03:04:05.678Z";

Deno.test("parity: a third-party adapter that returns Dates (as storage-redis with autoParseDates)", async (t) => {
  for (const kind of ["strict", "lazy"] as const) {
    await t.step(`${kind}: a read-only update`, async () => {
      const out = await both(async (impl) => {
        const storage = new DateParsingAdapter<Dated>();
        storage.texts.set("1", JSON.stringify({ count: 1, since: SINCE }));
        const h = createHarness<Loose>();
        h.bot.use(impl[kind]({ storage: storage as StorageAdapter<unknown> }));
        h.bot.on("message", async (ctx) => {
          const s = await ctx.session;
          await ctx.reply(`count ${s.count} since ${(s.since as Date).getTime()}`);
        });
        await h.send(message(1));
        return {
          replies: h.replies(),
          errors: errorsOf(h),
          writes: storage.counts.write,
          stored: storage.raw("1"),
        };
      });
      const reply = `count 1 since ${Date.parse(SINCE)}`;
      assert.deepEqual(out.grammY, {
        replies: [reply],
        errors: [],
        writes: 1,
        stored: { count: 1, since: SINCE },
      });
      assert.deepEqual(
        out.sessionkit,
        { ...out.grammY, writes: 0 },
        "documented difference: sessionkit writes nothing for an unchanged session (grammY rewrites it)",
      );
    });
  }

  await t.step(
    "strict: a changed session is written as the handler left it, Dates included",
    async () => {
      const last = new Date(Date.UTC(2025, 0, 1));
      const out = await both(async (impl) => {
        const storage = new DateParsingAdapter<Dated>();
        storage.texts.set("1", JSON.stringify({ count: 1, since: SINCE }));
        const h = createHarness<Loose>();
        h.bot.use(impl.strict({ storage: storage as StorageAdapter<unknown> }));
        h.bot.on("message", (ctx) => {
          ctx.session.count++;
          ctx.session.last = last;
        });
        await h.send(message(1));
        const written = storage.written[0];
        return {
          errors: errorsOf(h),
          writes: storage.counts.write,
          sinceIsDate: written?.since instanceof Date,
          lastAsLeft: written?.last === last,
          stored: storage.texts.get("1"),
        };
      });
      assert.deepEqual(out.grammY, {
        errors: [],
        writes: 1,
        sinceIsDate: true,
        lastAsLeft: true,
        stored: JSON.stringify({ count: 2, since: SINCE, last: last.toISOString() }),
      });
      assert.deepEqual(
        out.sessionkit,
        { ...out.grammY, lastAsLeft: false },
        "documented difference: sessionkit hands write a copy of the session as the handler " +
          "left it (Dates as Dates), so a storage that serializes later stores the value of the " +
          "moment the save started (rule K2); grammY hands over the live object",
      );
    },
  );
});

type ConvData = { count: number; conversation?: unknown };
type ConvCtx = Loose & ConversationFlavor;

/** Two steps, both changing the session through `conversation.session`: +1, then +n. */
async function counting(conversation: Conversation<ConvCtx>, ctx: ConvCtx): Promise<void> {
  conversation.session.count += 1;
  await ctx.reply("how many?");
  const next = await conversation.wait();
  conversation.session.count += Number(next.message?.text ?? 0);
  await next.reply("added");
}

Deno.test("parity: @grammyjs/conversations v1 keeps conversation.session writes", async (t) => {
  for (const kind of ["lazy", "strict"] as const) {
    await t.step(
      `${kind}: a two-step conversation that changes the session in both steps`,
      async () => {
        const out = await both(async (impl) => {
          const storage = new JsonAdapter<ConvData>();
          const h = createHarness<ConvCtx>();
          h.bot.use(
            impl[kind]({
              initial: (): ConvData => ({ count: 0 }),
              storage: storage as StorageAdapter<unknown>,
            }) as MiddlewareFn<ConvCtx>,
          );
          h.bot.use(conversations());
          h.bot.use(createConversation(counting));
          h.bot.command("start", (ctx) => ctx.conversation.enter("counting"));
          await h.send(message(1, "/start"));
          const afterFirst = storage.get("1")?.count;
          await h.send(message(1, "5"));
          return {
            afterFirst,
            stored: storage.get("1"),
            replies: h.replies(),
            errors: errorsOf(h as unknown as Harness<Loose>),
          };
        });
        assert.deepEqual(out.grammY, {
          afterFirst: 1,
          stored: { count: 6 },
          replies: ["how many?", "added"],
          errors: [],
        });
        assert.deepEqual(out.sessionkit, out.grammY, "sessionkit differs from grammY");
      },
    );
  }
});

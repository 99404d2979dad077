/**
 * `@grammyjs/conversations` v1 (its state lives in `ctx.session`) with
 * grammY's own `session()`/`lazySession()` and with sessionkit's, on the same
 * sessionkit storages (Deno KV in a temporary file, Redis): a two-step
 * conversation (name, then age) in three chats whose steps interleave, with
 * the bot restarted (new Bot, new middleware, new storage connection) between
 * the steps. Both libraries must give the same replies and leave the same
 * data. A lazy multi session exists only in sessionkit; its documented
 * behaviour (the conversation is not resumed) is asserted exactly.
 */
import assert from "node:assert/strict";
import { lazySession as grammyLazySession, type MiddlewareFn } from "npm:grammy@^1.46";
import {
  type Conversation,
  conversations,
  createConversation,
} from "npm:@grammyjs/conversations@^1";
import { MemorySessionStorage, type StorageAdapter } from "../../mod.ts";
import {
  ANN,
  type Backend,
  BACKENDS,
  backendTest,
  BOB,
  type Connection,
  createFetchHarness,
  CY,
  EXPECTED_REPLIES,
  expectedStored,
  keysOf,
  type Library,
  type Loose,
  type Mode,
  type Outcome,
  profileOf,
  runScript,
  sessionMiddleware,
  whoAmI,
} from "./conversations_helpers.ts";

/**
 * Asks the name, waits, asks the age, waits, stores the profile in the
 * session and sums it up. v1 replays this function from the start on every
 * update, so what it writes to the session before a wait is written again on
 * replay: only assignments of the same value.
 */
function profileConversation(mode: Mode) {
  return async function profile(conversation: Conversation<Loose>, ctx: Loose): Promise<void> {
    await ctx.reply("What is your name?");
    const nameCtx = await conversation.waitFor("message:text");
    const name = nameCtx.message!.text!;
    (await profileOf(mode, conversation.session)).name = name;
    await nameCtx.reply(`How old are you, ${name}?`);
    const ageCtx = await conversation.waitFor("message:text");
    const age = Number(ageCtx.message!.text);
    (await profileOf(mode, conversation.session)).age = age;
    await ageCtx.reply(`${name} is ${age}.`);
  };
}

/** One bot process: session, conversations v1, /start enters, other messages get the profile. */
function boot(library: Library, mode: Mode, preload = false) {
  return async (conn: Connection) => {
    const storage = await conn.storage<unknown>("sessions");
    const h = createFetchHarness();
    h.bot.use(sessionMiddleware(library, mode, storage as never));
    if (preload) h.bot.use(loadConversationFragment);
    h.bot.use(conversations() as unknown as MiddlewareFn<Loose>);
    h.bot.use(
      createConversation(profileConversation(mode), "profile") as unknown as MiddlewareFn<Loose>,
    );
    h.bot.command("start", (ctx) => ctx.conversation.enter("profile"));
    h.bot.on("message", async (ctx) => {
      await ctx.reply(whoAmI(await profileOf(mode, await ctx.session)));
    });
    return h;
  };
}

/**
 * The workaround for a lazy multi session: load the `conversation` fragment
 * before the plugin runs, so that every read the plugin makes gives the value.
 */
const loadConversationFragment: MiddlewareFn<Loose> = async (ctx, next) => {
  await ctx.session.conversation;
  await next();
};

function run(backend: Backend, library: Library, mode: Mode, preload = false): Promise<Outcome> {
  return runScript(backend, boot(library, mode, preload), {
    storage: "sessions",
    keys: (chat) => keysOf(mode, chat),
  });
}

const BOTH: Library[] = ["grammY", "sessionkit"];

for (const backend of BACKENDS) {
  backendTest(
    backend,
    "conversations v1: two steps, three interleaved chats, two restarts",
    async (t, fresh) => {
      for (const mode of ["strict", "lazy", "strict multi"] as const) {
        await t.step(`${mode} session: grammY and sessionkit give the same outcome`, async () => {
          const out: Partial<Record<Library, Outcome>> = {};
          for (const library of BOTH) out[library] = await run(await fresh(), library, mode);
          assert.deepEqual(out.grammY, {
            replies: EXPECTED_REPLIES,
            errors: [],
            stored: expectedStored(mode),
            processes: 3,
          });
          assert.deepEqual(out.sessionkit, out.grammY, "sessionkit differs from grammY");
        });
      }

      await t.step(
        "lazy multi session (sessionkit only): the conversation is never resumed",
        async () => {
          const out = await run(await fresh(), "sessionkit", "lazy multi");
          assertNeverResumed(out);
        },
      );

      await t.step(
        "lazy multi session with the conversation fragment loaded first: resumes as strict does",
        async () => {
          const out = await run(await fresh(), "sessionkit", "lazy multi", true);
          assert.deepEqual(out, {
            replies: EXPECTED_REPLIES,
            errors: [],
            stored: expectedStored("lazy multi"),
            processes: 3,
          });
        },
      );
    },
  );
}

/**
 * v1 reads `session.conversation` without awaiting it, several times per
 * update. With a lazy multi session a read of a fragment that is still
 * loading gives a promise; whether a storage read that needs I/O (Deno KV
 * file, Redis) has finished by the plugin's next read depends on timing. Two
 * outcomes were seen per chat, and in both the conversation never gets past
 * its first question:
 *
 * - /start fails with a TypeError inside `ctx.conversation.enter` before
 *   anything is sent, and nothing is stored;
 * - or /start asks the name, but the answer is not resumed and the plugin's
 *   state is left in the `conversation` fragment (a bigger array after every
 *   update: it is encoded again without being decoded).
 *
 * Either way every answer reaches the outer handler and no profile is stored.
 */
const ENTER_FAILS = "TypeError: Cannot read properties of undefined (reading 'length')";
const NOT_KNOWN = "I do not know you.";

function assertNeverResumed(out: Outcome): void {
  let failedEnters = 0;
  for (const chat of [ANN, BOB, CY]) {
    const replies = out.replies[chat];
    const entered = replies[0] === "What is your name?";
    if (!entered) failedEnters++;
    assert.deepEqual(
      replies,
      [...(entered ? ["What is your name?"] : []), NOT_KNOWN, NOT_KNOWN, NOT_KNOWN],
      `chat ${chat}: never resumed`,
    );
    assert.equal(out.stored[`profile:${chat}`], undefined, `chat ${chat}: no profile`);
    const left = out.stored[`conversation:${chat}`];
    if (entered) assert.ok(Array.isArray(left), `chat ${chat}: its state is left behind`);
    else assert.equal(left, undefined, `chat ${chat}: nothing stored`);
  }
  assert.deepEqual(out.errors, Array(failedEnters).fill(ENTER_FAILS));
  assert.equal(out.processes, 3);
}

Deno.test("conversations v1: grammY's lazySession refuses a multi session", () => {
  assert.throws(
    () =>
      grammyLazySession({
        type: "multi",
        conversation: {},
      } as never),
    Error,
  );
});

Deno.test("conversations v1: a lazy multi session on a storage that reads synchronously works", async () => {
  // MemorySessionStorage answers a read at once (a storage whose read is a
  // promise that resolves without I/O behaves the same), so here the
  // conversation is entered and resumed. The three bot instances share the
  // in-memory data.
  const storage = new MemorySessionStorage<unknown>();
  const backend: Backend = {
    connect: () =>
      Promise.resolve({
        storage: <T>() => Promise.resolve(storage as StorageAdapter<T>),
        close: () => Promise.resolve(),
      }),
  };
  assert.deepEqual(await run(backend, "sessionkit", "lazy multi"), {
    replies: EXPECTED_REPLIES,
    errors: [],
    stored: expectedStored("lazy multi"),
    processes: 3,
  });
});

/**
 * `@grammyjs/conversations` v2 with grammY's own `session()`/`lazySession()`
 * and with sessionkit's. v2 keeps its conversation state in a storage of its
 * own (here a sessionkit storage, through its `{ type: "key", adapter,
 * version, prefix }` option), and a conversation reaches the session only
 * through `conversation.external((ctx) => ctx.session)`. The same two-step
 * conversation (name, then age) runs in three interleaved chats with the bot
 * restarted between the steps, on Deno KV (a temporary file) and Redis; both
 * libraries must give the same replies and leave the same data. Also: a
 * sessionkit storage given directly as v2's `storage`, and a new `version`
 * after a restart discarding the old conversation state.
 */
import assert from "node:assert/strict";
import type { MiddlewareFn } from "npm:grammy@^1.46";
import {
  type Conversation,
  conversations,
  type ConversationStorage,
  createConversation,
} from "npm:@grammyjs/conversations@^2";
import type { StorageAdapter } from "../../mod.ts";
import { message } from "../helpers/bot.ts";
import {
  ANN,
  type Backend,
  BACKENDS,
  backendTest,
  type Connection,
  createFetchHarness,
  EXPECTED_REPLIES,
  expectedStored,
  keysOf,
  type Library,
  type Loose,
  type Mode,
  type Outcome,
  type Profile,
  profileOf,
  runScript,
  sessionMiddleware,
  type Step,
  whoAmI,
} from "./conversations_helpers.ts";

/**
 * Asks the name, waits, stores it in the session (through `external`), asks
 * the age, waits, then reads the name back from the session (after a
 * restart, from storage) and stores the finished profile. v2 runs each
 * `external` once and replays its result, so the session is written once.
 */
function profileConversation(mode: Mode) {
  return async function profile(conversation: Conversation<Loose, Loose>, ctx: Loose) {
    await ctx.reply("What is your name?");
    const nameCtx = await conversation.waitFor("message:text");
    const name = nameCtx.message!.text!;
    await conversation.external(async (outer: Loose) => {
      (await profileOf(mode, await outer.session)).name = name;
    });
    await nameCtx.reply(`How old are you, ${name}?`);
    const ageCtx = await conversation.waitFor("message:text");
    const age = Number(ageCtx.message!.text);
    const done: Profile = await conversation.external(async (outer: Loose) => {
      const p = await profileOf(mode, await outer.session);
      p.age = age;
      return { ...p };
    });
    await ageCtx.reply(`${done.name} is ${done.age}.`);
  };
}

type StorageChoice = "key" | "plain";

/** v2's storage option over a sessionkit storage. */
function conversationStorage(
  adapter: StorageAdapter<unknown>,
  choice: StorageChoice,
  version: number,
): ConversationStorage<Loose, never> {
  return (choice === "key"
    ? { type: "key", adapter, version, prefix: "conv:" }
    : adapter) as unknown as ConversationStorage<Loose, never>;
}

interface BootOptions {
  choice?: StorageChoice;
  /** The `version` of each process, by index (default 1). */
  versions?: number[];
}

/** One bot process: session, conversations v2 on a sessionkit storage, /start enters. */
function boot(library: Library, mode: Mode, options: BootOptions = {}) {
  let index = 0;
  return async (conn: Connection) => {
    const version = options.versions?.[index++] ?? 1;
    const sessions = await conn.storage<unknown>("sessions");
    const convs = await conn.storage<unknown>("conversations");
    const h = createFetchHarness();
    h.bot.use(sessionMiddleware(library, mode, sessions));
    h.bot.use(
      conversations<Loose, Loose>({
        storage: conversationStorage(convs, options.choice ?? "key", version),
      }) as unknown as MiddlewareFn<Loose>,
    );
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

function run(
  backend: Backend,
  library: Library,
  mode: Mode,
  options: BootOptions = {},
  script?: Step[],
): Promise<Outcome> {
  return runScript(
    backend,
    boot(library, mode, options),
    { storage: "sessions", keys: (chat) => keysOf(mode, chat) },
    script,
  );
}

const FINISHED = (mode: Mode): Outcome => ({
  replies: EXPECTED_REPLIES,
  errors: [],
  stored: expectedStored(mode),
  processes: 3,
});

for (const backend of BACKENDS) {
  backendTest(
    backend,
    "conversations v2: session through external, two steps, three chats, two restarts",
    async (t, fresh) => {
      for (const mode of ["strict", "lazy", "strict multi"] as const) {
        await t.step(`${mode} session: grammY and sessionkit give the same outcome`, async () => {
          const out: Partial<Record<Library, Outcome>> = {};
          for (const library of ["grammY", "sessionkit"] as const) {
            out[library] = await run(await fresh(), library, mode);
          }
          assert.deepEqual(out.grammY, FINISHED(mode));
          assert.deepEqual(out.sessionkit, out.grammY, "sessionkit differs from grammY");
        });
      }

      await t.step("lazy multi session (sessionkit only): works, unlike v1", async () => {
        assert.deepEqual(
          await run(await fresh(), "sessionkit", "lazy multi"),
          FINISHED("lazy multi"),
        );
      });

      await t.step("a sessionkit storage given directly as v2's storage", async () => {
        assert.deepEqual(
          await run(await fresh(), "sessionkit", "lazy", { choice: "plain" }),
          FINISHED("lazy"),
        );
      });

      await t.step("conversation state: stored under v2's prefix, removed when done", async () => {
        const b = await fresh();
        const conn = await b.connect();
        try {
          const convs = await conn.storage<unknown>("conversations");
          const h = await boot("sessionkit", "strict")(conn);
          await h.send(message(ANN, "/start"));
          const entered = await convs.read(`conv:${ANN}`) as { version: unknown; state: unknown };
          assert.deepEqual(entered.version, [0, 1], "v2's plugin version 0, our version 1");
          assert.ok(Object.keys(entered.state as object).includes("profile"));
          await h.send(message(ANN, "Ann"));
          await h.send(message(ANN, "30"));
          assert.equal(await convs.read(`conv:${ANN}`), undefined, "deleted once finished");
          assert.deepEqual(h.errors, []);
        } finally {
          await conn.close();
        }
      });

      await t.step(
        "a new version after the restart discards the waiting conversation",
        async () => {
          const script: Step[] = [[[ANN, "/start"]], [[ANN, "Ann"]], "restart", [[ANN, "30"]]];
          const same = await run(
            await fresh(),
            "sessionkit",
            "strict",
            { versions: [1, 1] },
            script,
          );
          assert.deepEqual(same.replies[ANN], EXPECTED_REPLIES[ANN].slice(0, 3), "same version");
          const out = await run(
            await fresh(),
            "sessionkit",
            "strict",
            { versions: [1, 2] },
            script,
          );
          assert.deepEqual(out.replies[ANN], [
            "What is your name?",
            "How old are you, Ann?",
            "I do not know you.",
          ]);
          assert.deepEqual([same.errors, out.errors], [[], []]);
          assert.deepEqual(out.stored[String(ANN)], { name: "Ann" }, "the session keeps the name");
        },
      );
    },
  );
}

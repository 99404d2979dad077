/**
 * `@grammyjs/i18n` with `useSession: true` on grammY's built-in
 * `session()`/`lazySession()` and on sessionkit's, side by side: the locale
 * chosen with `ctx.i18n.setLocale` is kept in the session, survives later
 * updates and a restart (a new Bot over the same Deno KV file), replies come
 * in that locale, `useLocale` lasts one update, and chats keep their own
 * locale. The outcome is the same except for the documented difference in
 * writes (grammY rewrites every session the plugin read).
 */
import assert from "node:assert/strict";
import { I18n, type I18nFlavor } from "npm:@grammyjs/i18n@^1";
import {
  type Context,
  lazySession as grammyLazySession,
  type MiddlewareFn,
  session as grammySession,
} from "npm:grammy@^1.46";
import { lazySession, session, type StorageAdapter } from "../../mod.ts";
import { DenoKvStorage } from "../../storages/denokv.ts";
import { createHarness, type Harness, message } from "../helpers/bot.ts";

type Data = { __language_code?: string };
// deno-lint-ignore no-explicit-any
type Ctx = Context & I18nFlavor & { session: any };
type Lib = "grammY" | "sessionkit";
type Kind = "strict" | "lazy";
type Options = { initial?: () => Data; storage: StorageAdapter<Data> };

function sessionOf(lib: Lib, kind: Kind, options: Options): MiddlewareFn<Ctx> {
  const make = lib === "grammY"
    ? (kind === "strict" ? grammySession : grammyLazySession)
    : (kind === "strict" ? session : lazySession);
  return (make as (o: Options) => unknown)(options) as MiddlewareFn<Ctx>;
}

const SOURCES: Record<string, string> = {
  en: "hello = Hello, { $name }!\nlanguage-set = Language: English\n",
  de: "hello = Hallo, { $name }!\nlanguage-set = Sprache: Deutsch\n",
  fr: "hello = Bonjour, { $name } !\nlanguage-set = Langue : français\n",
};

/** A Bot as a restart would build it: fresh I18n, fresh session middleware, same storage. */
function startBot(lib: Lib, kind: Kind, options: Options): Harness<Ctx> {
  const i18n = new I18n<Ctx>({
    defaultLocale: "en",
    useSession: true,
    fluentBundleOptions: { useIsolating: false },
  });
  for (const [locale, source] of Object.entries(SOURCES)) {
    i18n.loadLocaleSync(locale, { source });
  }
  const h = createHarness<Ctx>();
  h.bot.use(sessionOf(lib, kind, options));
  h.bot.use(i18n);
  h.bot.command("lang", async (ctx) => {
    await ctx.i18n.setLocale(ctx.match);
    await ctx.reply(ctx.t("language-set"));
  });
  h.bot.command("once", async (ctx) => {
    ctx.i18n.useLocale("fr");
    await ctx.reply(ctx.t("hello", { name: ctx.from!.first_name }));
  });
  h.bot.on("message", (ctx) => ctx.reply(ctx.t("hello", { name: ctx.from.first_name })));
  return h;
}

/** Counts the storage's writes on the instance, keeping its conditional writes. */
function countWrites(storage: DenoKvStorage<Data>): { writes: number } {
  const counter = { writes: 0 };
  for (const name of ["write", "writeIfVersion"] as const) {
    const original = storage[name].bind(storage) as (...args: unknown[]) => unknown;
    (storage as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      counter.writes++;
      return original(...args);
    };
  }
  return counter;
}

async function withKvFile<R>(fn: (path: string) => Promise<R>): Promise<R> {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-i18n-" });
  try {
    return await fn(`${dir}/kv.sqlite3`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The whole flow on one library: choose a locale, use it, restart, use it again. */
function flow(lib: Lib, kind: Kind) {
  return withKvFile(async (path) => {
    const replies: string[] = [];
    const errors: string[] = [];
    let writes = 0;
    const phase = async (updates: ReturnType<typeof message>[]) => {
      const kv = await Deno.openKv(path);
      try {
        const storage = new DenoKvStorage<Data>(kv);
        const counter = countWrites(storage);
        const h = startBot(lib, kind, { initial: () => ({}), storage });
        for (const update of updates) await h.send(update);
        replies.push(...h.replies());
        errors.push(...h.errors.map((e) => String(e.error)));
        writes += counter.writes;
      } finally {
        kv.close();
      }
    };
    await phase([
      message(1, "hi"),
      message(1, "/lang de"),
      message(1, "hi"),
      message(1, "/once"),
      message(1, "hi"),
    ]);
    // The restart: a new process over the same file.
    await phase([message(1, "hi"), message(2, "hi")]);
    const kv = await Deno.openKv(path);
    try {
      const storage = new DenoKvStorage<Data>(kv);
      return {
        replies,
        errors,
        writes,
        stored: { 1: await storage.read("1"), 2: await storage.read("2") },
      };
    } finally {
      kv.close();
    }
  });
}

Deno.test("i18n: the locale lives in the session, across updates and a restart", async (t) => {
  for (const kind of ["strict", "lazy"] as const) {
    await t.step(`${kind}: setLocale, useLocale, restart, a second chat`, async () => {
      const grammy = await flow("grammY", kind);
      const kit = await flow("sessionkit", kind);
      assert.deepEqual(grammy, {
        replies: [
          "Hello, User!",
          "Sprache: Deutsch",
          "Hallo, User!",
          "Bonjour, User !",
          "Hallo, User!",
          "Hallo, User!", // after the restart
          "Hello, User!", // chat 2 has its own session
        ],
        errors: [],
        writes: 7,
        stored: { 1: { __language_code: "de" }, 2: {} },
      });
      assert.deepEqual(
        kit,
        { ...grammy, writes: 1, stored: { ...grammy.stored, 2: undefined } },
        "documented difference: grammY writes every session the plugin read (7 updates, " +
          "7 writes, chat 2's untouched {} too); sessionkit writes only the setLocale change",
      );
    });
  }
});

Deno.test("i18n: setLocale with no initial session fails the same way on both", async (t) => {
  for (const kind of ["strict", "lazy"] as const) {
    await t.step(kind, async () => {
      const out: Record<Lib, unknown> = { grammY: undefined, sessionkit: undefined };
      for (const lib of ["grammY", "sessionkit"] as const) {
        await withKvFile(async (path) => {
          const kv = await Deno.openKv(path);
          try {
            const storage = new DenoKvStorage<Data>(kv);
            const h = startBot(lib, kind, { storage });
            await h.send(message(1, "hi"));
            await h.send(message(1, "/lang de"));
            out[lib] = {
              replies: h.replies(),
              errors: h.errors.map((e) => `${e.error}`),
              stored: await storage.read("1"),
            };
          } finally {
            kv.close();
          }
        });
      }
      assert.deepEqual(out.grammY, {
        replies: ["Hello, User!"],
        errors: ["TypeError: Cannot set properties of undefined (setting '__language_code')"],
        stored: undefined,
      });
      assert.deepEqual(out.sessionkit, out.grammY, "sessionkit differs from grammY");
    });
  }
});

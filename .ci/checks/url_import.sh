#!/usr/bin/env bash
# Imports mod.ts and storages/denokv.ts by file:// URL from a directory
# outside the project, with --no-config (no deno.json, no import map, no
# lockfile), and drives a grammY Bot through them. Any bare specifier in the
# published modules would fail to resolve here.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export NO_COLOR=1 DENO_NO_PACKAGE_JSON=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "$tmp" in "$root"/*) echo "url_import: temp dir $tmp is inside the project" >&2; exit 1 ;; esac

cat >"$tmp/url_import.ts" <<TS
import assert from "node:assert/strict";
import { Bot, type Context } from "npm:grammy@^1.46/web";
import type { Update, UserFromGetMe } from "npm:grammy@^1.46/types";
import {
  lazySession,
  type LazySessionFlavor,
  MemorySessionStorage,
  session,
  type SessionFlavor,
} from "file://$root/mod.ts";
import { DenoKvStorage } from "file://$root/storages/denokv.ts";

type Counter = { count: number };
const botInfo = {
  id: 1, is_bot: true, first_name: "Probe", username: "probe_bot", can_join_groups: true,
  can_read_all_group_messages: false, supports_inline_queries: false,
} as UserFromGetMe;

function fakeApi(bot: Bot<any>, replies: string[]): void {
  bot.api.config.use((_prev, method, payload: any) => {
    if (method === "sendMessage") replies.push(payload.text);
    const result = method === "sendMessage"
      ? { message_id: 1, date: 0, chat: { id: payload.chat_id, type: "private" }, text: payload.text }
      : true;
    return Promise.resolve({ ok: true, result } as any);
  });
}

let id = 0;
const count = (chat: number): Update => ({
  update_id: ++id,
  message: {
    message_id: id, date: 0, text: "/count",
    chat: { id: chat, type: "private", first_name: "U" },
    from: { id: chat, is_bot: false, first_name: "U" },
    entities: [{ type: "bot_command", offset: 0, length: 6 }],
  },
} as Update);

// Strict session, memory storage.
const memory = new MemorySessionStorage<Counter>();
const strict = new Bot<Context & SessionFlavor<Counter>>("0:probe", { botInfo });
const strictReplies: string[] = [];
fakeApi(strict, strictReplies);
strict.use(session({ initial: () => ({ count: 0 }), storage: memory }));
strict.command("count", (ctx) => ctx.reply(\`Count: \${++ctx.session.count}\`));
for (const chat of [42, 42, 7]) await strict.handleUpdate(count(chat));
assert.deepEqual(strictReplies, ["Count: 1", "Count: 2", "Count: 1"]);
assert.deepEqual(memory.read("42"), { count: 2 });
assert.deepEqual(memory.read("7"), { count: 1 });
console.log("  ok: session() with MemorySessionStorage stored", JSON.stringify(memory.readAllEntries()));

// Lazy session, Deno KV in memory.
const kv = await Deno.openKv(":memory:");
const kvStorage = new DenoKvStorage<Counter>(kv, { prefix: ["url-check"] });
const lazy = new Bot<Context & LazySessionFlavor<Counter>>("0:probe", { botInfo });
const lazyReplies: string[] = [];
fakeApi(lazy, lazyReplies);
lazy.use(lazySession({ initial: () => ({ count: 0 }), storage: kvStorage }));
lazy.command("count", async (ctx) => {
  const data = await ctx.session;
  await ctx.reply(\`Count: \${++data.count}\`);
});
for (const chat of [42, 42, 42]) await lazy.handleUpdate(count(chat));
assert.deepEqual(lazyReplies, ["Count: 1", "Count: 2", "Count: 3"]);
assert.deepEqual(await kvStorage.read("42"), { count: 3 });
const raw = [];
for await (const entry of kv.list({ prefix: ["url-check"] })) raw.push(entry);
assert.ok(raw.length > 0, "DenoKvStorage wrote nothing under its prefix");
console.log("  ok: lazySession() with DenoKvStorage(:memory:) stored", JSON.stringify(await kvStorage.read("42")));
kv.close();
TS

echo "url_import: running a script in $tmp that imports file://$root/mod.ts and storages/denokv.ts with --no-config"
( cd "$tmp" && deno run --no-config -A --unstable-kv --no-check url_import.ts ) || {
  echo "url_import check FAILED" >&2
  exit 1
}
( cd "$tmp" && deno check --no-config --unstable-kv url_import.ts ) >/dev/null 2>"$tmp/check.log" || {
  cat "$tmp/check.log" >&2
  echo "url_import check FAILED: the script does not type-check against the file:// modules" >&2
  exit 1
}
echo "  ok: type-checks with --no-config"
echo "url_import check passed"

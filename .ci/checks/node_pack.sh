#!/usr/bin/env bash
# Builds the npm package as it is published (`deno pack`, then
# .ci/checks/npm_package.ts: database drivers as optional peers) and checks it
# in scratch Node projects outside the repository:
#  1. package.json: no database driver among the dependencies; redis, pg and
#     mysql2 are optional peerDependencies.
#  2. memory only: the tarball plus grammy and nothing else installs no
#     driver, and a bot with memory sessions runs on Node; importing the
#     Redis/PostgreSQL/MySQL entry points fails naming the missing driver.
#  3. with the drivers: tarball, grammy, @deno/kv, redis, pg, mysql2;
#     examples/node_denokv.mjs type-checks with tsc against the .d.ts files
#     and runs (memory + file-backed @deno/kv storage, twice), and each
#     storage entry point writes, reads and deletes a session on the real
#     server (REDIS_URL, DATABASE_URL, MYSQL_URL; skipped loudly when a server
#     is missing, failed when CI=true).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export NO_COLOR=1
unset BOT_TOKEN
node=${NODE:-node}
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export MYSQL_URL="${MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "$tmp" in "$root"/*) echo "node_pack: temp dir $tmp is inside the project" >&2; exit 1 ;; esac
fail() { echo "node_pack check FAILED: $*" >&2; exit 1; }
npm_install() { # log name, packages...
  local log="$tmp/$1.log"
  shift
  npm install --no-audit --no-fund --loglevel=error "$@" >"$log" 2>&1 || { cat "$log"; fail "npm install $* failed"; }
}

echo "node_pack: $($node --version) ($(command -v "$node")), npm $(npm --version 2>/dev/null)"
major=$($node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || fail "Node 20 or newer needed, found $($node --version)"

example="$root/examples/node_denokv.mjs"
echo "node_pack: deno fmt/lint of examples/node_denokv.mjs (excluded from deno.json's globs)"
deno fmt --no-config --line-width=100 --check "$example" || fail "examples/node_denokv.mjs is not formatted"
deno lint --no-config "$example" || fail "examples/node_denokv.mjs has lint errors"

echo "node_pack: deno pack, then .ci/checks/npm_package.ts"
(cd "$root" && deno pack --allow-dirty --output "$tmp/deno-pack.tgz") >"$tmp/pack.log" 2>&1 ||
  { cat "$tmp/pack.log"; fail "deno pack failed"; }
deno run --allow-read --allow-write --allow-run=tar "$root/.ci/checks/npm_package.ts" \
  "$tmp/deno-pack.tgz" "$tmp/sessionkit.tgz" --repository https://github.com/example/sessionkit ||
  fail "npm_package.ts failed"
tar -tzf "$tmp/sessionkit.tgz" >"$tmp/files.txt" || fail "cannot list the tarball"
grep -qx 'package/storages/denokv.d.ts' "$tmp/files.txt" ||
  fail "the tarball has no storages/denokv.d.ts"

# deno pack prints "Could not generate types for '<module>'" for every module
# no public type refers to (denoland/deno#36829); that is harmless exactly
# when every import in the .d.ts files it did write resolves in the tarball.
echo "node_pack: the .d.ts files are complete ($(grep -c '^Could not generate types' "$tmp/pack.log") private modules without one)"
mkdir -p "$tmp/unpacked" && tar -xzf "$tmp/sessionkit.tgz" -C "$tmp/unpacked" || fail "cannot unpack the tarball"
$node --input-type=module - "$tmp/unpacked/package" <<'JS' || fail "a .d.ts file of the tarball imports a module that has none"
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
const root = process.argv[2];
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const missing = [];
for (const [entry, target] of Object.entries(pkg.exports)) {
  if (!existsSync(join(root, target.types))) missing.push(`exports["${entry}"].types ${target.types}`);
}
const files = readdirSync(root, { recursive: true }).filter((f) => f.endsWith(".d.ts"));
for (const file of files) {
  // Declarations only: JSDoc @example code is not an import.
  const code = readFileSync(join(root, file), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  for (const [, spec] of code.matchAll(/(?:from|import\()\s*["'](\.{1,2}\/[^"']+)["']/g)) {
    const target = join(dirname(join(root, file)), spec).replace(/\.js$/, ".d.ts");
    if (!existsSync(target)) missing.push(`${file} imports ${spec} (no ${relative(root, target)})`);
  }
}
if (missing.length > 0) {
  console.error(missing.join("\n"));
  process.exit(1);
}
console.log(`  ok: ${files.length} .d.ts files, every relative import among them resolves`);
JS

echo "node_pack: 1. package.json of the tarball"
tar -xzOf "$tmp/sessionkit.tgz" package/package.json >"$tmp/package.json" || fail "no package.json in the tarball"
$node --input-type=module - "$tmp/package.json" <<'JS' || fail "package.json has a driver as a required dependency"
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
const pkg = JSON.parse(readFileSync(process.argv[2], "utf8"));
for (const driver of ["redis", "pg", "mysql2", "better-sqlite3", "@deno/kv"]) {
  assert.equal(pkg.dependencies?.[driver], undefined, `${driver} is in dependencies`);
}
for (const driver of ["redis", "pg", "mysql2"]) {
  assert.ok(pkg.peerDependencies?.[driver], `${driver} is not a peerDependency`);
  assert.deepEqual(pkg.peerDependenciesMeta?.[driver], { optional: true }, `${driver} is not optional`);
}
// node-redis v4 clients fit RedisStorage too, so a v4 project must be able to install the package.
assert.equal(pkg.peerDependencies.redis, "^4 || ^5", "the redis peer range must admit v4");
assert.equal(pkg.repository?.url, "git+https://github.com/example/sessionkit.git");
console.log("  ok: dependencies", JSON.stringify(pkg.dependencies ?? {}), "optional peers", JSON.stringify(pkg.peerDependencies));
JS

echo "node_pack: 2. memory only: npm install the tarball and grammy, nothing else"
mem="$tmp/memory-only"
mkdir -p "$mem" && cd "$mem" || fail "no scratch project dir"
printf '{ "name": "sessionkit-memory-only", "private": true, "type": "module" }\n' >package.json
npm_install memory "$tmp/sessionkit.tgz" "grammy@^1.46"
for driver in redis pg mysql2 better-sqlite3 @deno/kv; do
  [ ! -e "node_modules/$driver" ] || fail "installing the tarball with grammy also installed $driver"
done
echo "  ok: no redis, pg, mysql2, better-sqlite3 or @deno/kv in node_modules"
cat >bot.mjs <<'JS'
import assert from "node:assert/strict";
import { Bot } from "grammy";
import { lazySession, MemorySessionStorage, session } from "@sessionkit/grammy";

const botInfo = {
  id: 1, is_bot: true, first_name: "Probe", username: "probe_bot", can_join_groups: true,
  can_read_all_group_messages: false, supports_inline_queries: false,
};
let id = 0;
const count = (chat) => ({
  update_id: ++id,
  message: {
    message_id: id, date: 0, text: "/count",
    chat: { id: chat, type: "private", first_name: "U" },
    from: { id: chat, is_bot: false, first_name: "U" },
    entities: [{ type: "bot_command", offset: 0, length: 6 }],
  },
});
function bot(replies) {
  const b = new Bot("0:probe", { botInfo });
  b.api.config.use((_prev, method, payload) => {
    if (method === "sendMessage") replies.push(payload.text);
    return Promise.resolve({ ok: true, result: { message_id: 1, date: 0, chat: { id: payload.chat_id, type: "private" }, text: payload.text } });
  });
  return b;
}

const storage = new MemorySessionStorage();
const replies = [];
const strict = bot(replies);
strict.use(session({ initial: () => ({ count: 0 }), storage }));
strict.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
for (const chat of [42, 42, 7]) await strict.handleUpdate(count(chat));
assert.deepEqual(replies, ["Count: 1", "Count: 2", "Count: 1"]);
assert.deepEqual(storage.read("42"), { count: 2 });

const lazyStorage = new MemorySessionStorage();
const lazyReplies = [];
const lazy = bot(lazyReplies);
lazy.use(lazySession({ initial: () => ({ count: 0 }), storage: lazyStorage }));
lazy.command("count", async (ctx) => ctx.reply(`Count: ${++(await ctx.session).count}`));
for (const chat of [42, 42]) await lazy.handleUpdate(count(chat));
assert.deepEqual(lazyReplies, ["Count: 1", "Count: 2"]);
assert.deepEqual(lazyStorage.read("42"), { count: 2 });
console.log("  ok: session() and lazySession() on MemorySessionStorage:", JSON.stringify(storage.readAllEntries()));

for (const [entry, driver] of [["redis", "redis"], ["postgres", "pg"], ["mysql", "mysql2"]]) {
  await assert.rejects(import(`@sessionkit/grammy/${entry}`), (err) => {
    assert.equal(err.code, "ERR_MODULE_NOT_FOUND");
    assert.match(err.message, new RegExp(`'${driver}'`));
    return true;
  });
  console.log(`  ok: @sessionkit/grammy/${entry} without ${driver} fails with ERR_MODULE_NOT_FOUND naming '${driver}'`);
}
for (const entry of ["denokv", "sqlite"]) {
  const mod = await import(`@sessionkit/grammy/${entry}`);
  assert.ok(Object.keys(mod).length > 0);
  console.log(`  ok: @sessionkit/grammy/${entry} loads with no driver installed`);
}
JS
$node bot.mjs >"$tmp/memory-run.log" 2>&1 || { cat "$tmp/memory-run.log"; fail "the memory-only bot failed on Node"; }
cat "$tmp/memory-run.log"
if grep -E '^\(node:[0-9]+\)|Warning' "$tmp/memory-run.log"; then fail "the memory-only bot printed a warning"; fi

echo "node_pack: 3. with the drivers: the tarball, grammy, @deno/kv, redis, pg, mysql2, typescript"
proj="$tmp/project"
mkdir -p "$proj" && cd "$proj" || fail "no scratch project dir"
printf '{ "name": "sessionkit-node-check", "private": true, "type": "module" }\n' >package.json
npm_install full "$tmp/sessionkit.tgz" "grammy@^1.46" "@deno/kv@^0.14" "redis@^5" "pg@^8" "mysql2@^3" \
  "typescript@^5" "@types/node@^20"

cp "$example" bot.mjs
echo "node_pack: tsc --checkJs bot.mjs against the installed .d.ts files"
npx --no-install tsc --noEmit --allowJs --checkJs --strict --skipLibCheck \
  --module nodenext --moduleResolution nodenext --target es2022 bot.mjs ||
  fail "examples/node_denokv.mjs does not type-check against the npm package"

echo "node_pack: node bot.mjs (memory + file-backed @deno/kv storage)"
KV_PATH="$proj/sessions.kv" $node bot.mjs || fail "the Node bot failed"
[ -s "$proj/sessions.kv" ] || fail "no KV file was written at $proj/sessions.kv"
KV_PATH="$proj/sessions.kv" $node bot.mjs | grep -F 'holds {"count":6}' ||
  fail "a second run did not continue from the count stored in the KV file"

echo "node_pack: each database storage on Node, with its driver installed"
cat >drivers.mjs <<'JS'
import assert from "node:assert/strict";
import pg from "pg";
import mysql from "mysql2/promise";
import { RedisStorage } from "@sessionkit/grammy/redis";
import { PostgresStorage } from "@sessionkit/grammy/postgres";
import { MysqlStorage } from "@sessionkit/grammy/mysql";

const run = `${process.pid}_${Date.now()}`;
const strict = process.env.CI === "true";
let skipped = 0;

async function roundTrip(name, storage, cleanup) {
  try {
    await storage.write("42", { count: 3 });
    assert.deepEqual(await storage.read("42"), { count: 3 });
    await storage.delete("42");
    assert.equal(await storage.read("42"), undefined);
    console.log(`  ok: ${name} wrote, read and deleted a session`);
  } finally {
    await storage.close();
    await cleanup?.();
  }
}
async function server(name, url, body) {
  try {
    await body();
  } catch (err) {
    const unreachable = /ECONNREFUSED|cannot connect|connect ETIMEDOUT|ENOTFOUND/i.test(String(err?.message) + String(err?.cause?.message ?? ""));
    if (!unreachable || strict) throw err;
    console.log(`  SKIPPED: ${name}, no server at ${url} (${err.message})`);
    skipped++;
  }
}

await server("RedisStorage", process.env.REDIS_URL, async () => {
  const storage = await RedisStorage.connect(process.env.REDIS_URL, { prefix: `sk-node-pack-${run}:` });
  await roundTrip("RedisStorage", storage);
});
await server("PostgresStorage", process.env.DATABASE_URL, async () => {
  const table = `sk_node_pack_${run}`;
  const storage = PostgresStorage.connect(process.env.DATABASE_URL, { table });
  await roundTrip("PostgresStorage", storage, async () => {
    const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await client.connect();
    await client.query(`DROP TABLE IF EXISTS "${table}", "${table}_leases"`);
    await client.end();
  });
});
await server("MysqlStorage", process.env.MYSQL_URL, async () => {
  const table = `sk_node_pack_${run}`;
  const storage = MysqlStorage.connect(process.env.MYSQL_URL, { table });
  await roundTrip("MysqlStorage", storage, async () => {
    const conn = await mysql.createConnection(process.env.MYSQL_URL);
    await conn.query(`DROP TABLE IF EXISTS \`${table}\`, \`${table}_leases\``);
    await conn.end();
  });
});
if (skipped > 0) console.log(`  ${skipped} storage(s) skipped: their server is not running here`);
JS
$node drivers.mjs || fail "a database storage failed on Node with its driver installed"
echo "node_pack check passed"

#!/usr/bin/env bash
# Builds the npm tarball with `deno pack`, installs it with grammy and
# @deno/kv into a scratch Node project outside the repository, type-checks
# examples/node_denokv.mjs there with tsc against the tarball's .d.ts files,
# and runs it with Node: a bot driven through bot.handleUpdate with a memory
# storage and a file-backed @deno/kv storage, asserting what was stored.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export NO_COLOR=1
unset BOT_TOKEN
node=${NODE:-node}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "node_pack check FAILED: $*" >&2; exit 1; }

echo "node_pack: $($node --version) ($(command -v "$node")), npm $(npm --version 2>/dev/null)"
major=$($node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || fail "Node 20 or newer needed, found $($node --version)"

example="$root/examples/node_denokv.mjs"
echo "node_pack: deno fmt/lint of examples/node_denokv.mjs (excluded from deno.json's globs)"
deno fmt --no-config --line-width=100 --check "$example" || fail "examples/node_denokv.mjs is not formatted"
deno lint --no-config "$example" || fail "examples/node_denokv.mjs has lint errors"

echo "node_pack: deno pack"
(cd "$root" && deno pack --allow-dirty --output "$tmp/sessionkit.tgz") >"$tmp/pack.log" 2>&1 ||
  { cat "$tmp/pack.log"; fail "deno pack failed"; }
tar -tzf "$tmp/sessionkit.tgz" >"$tmp/files.txt" || fail "cannot list the tarball"
grep -qx 'package/storages/denokv.d.ts' "$tmp/files.txt" ||
  fail "the tarball has no storages/denokv.d.ts"

proj="$tmp/project"
mkdir -p "$proj"
cd "$proj" || fail "no scratch project dir"
printf '{ "name": "sessionkit-node-check", "private": true, "type": "module" }\n' >package.json
echo "node_pack: npm install the tarball, grammy, @deno/kv, typescript in $proj"
npm install --no-audit --no-fund --loglevel=error \
  "$tmp/sessionkit.tgz" "grammy@^1.46" "@deno/kv@^0.14" "typescript@^5" "@types/node@^20" >"$tmp/npm.log" 2>&1 ||
  { cat "$tmp/npm.log"; fail "npm install failed"; }

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
echo "node_pack check passed"

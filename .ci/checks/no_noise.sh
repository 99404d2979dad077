#!/usr/bin/env bash
# Fails on warnings a newcomer would see: runs `deno task demo`, every
# examples/*.ts (without BOT_TOKEN: each loads its whole module graph, then
# stops at the token check or runs its offline script), `deno doc --lint` of
# the published entry points and `deno publish --dry-run`, and looks for
# runtime warnings (`(node:123) [DEP0040] DeprecationWarning ...`) and tool
# warnings (`Warning Failed resolving types ...`) in what they print.
#
# One known exception, explained in the README ("Warnings you may see"):
# examples/telegraf_bot.ts prints the punycode deprecation warning, which
# comes from Telegraf's own dependency node-fetch@2 (whatwg-url@5 and tr46
# require Node's deprecated `punycode`); no import of ours can avoid it.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
export NO_COLOR=1
unset BOT_TOKEN TELEGRAM_API_ROOT

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
noise='^\(node:[0-9]+\)|DeprecationWarning|ExperimentalWarning|^Warning|^warning:|Failed resolving'
punycode='^\(node:[0-9]+\) \[DEP0040\] DeprecationWarning: The `punycode` module is deprecated'
failed=0

look() { # what, log file, allowed pattern (optional)
  local hits
  hits=$(grep -E -- "$noise" "$2" | { if [ -n "${3:-}" ]; then grep -Ev -- "$3"; else cat; fi; })
  if [ -n "$hits" ]; then
    echo "  NOISE: $1 printed:"
    echo "$hits" | sed 's/^/    /' | head -20
    failed=$((failed + 1))
  else
    echo "  ok: $1"
  fi
}

echo "no_noise: deno task demo"
KV_PATH="$tmp/demo.kv" deno task demo >"$tmp/demo.log" 2>&1 || { cat "$tmp/demo.log"; echo "no_noise: the demo failed"; exit 1; }
look "deno task demo" "$tmp/demo.log"

echo "no_noise: every examples/*.ts without BOT_TOKEN"
for example in examples/*.ts; do
  log="$tmp/$(basename "$example").log"
  KV_PATH="$tmp/example.kv" SQLITE_PATH="$tmp/example.db" timeout 60 deno run -A "$example" </dev/null >"$log" 2>&1
  case "$example" in
    examples/telegraf_bot.ts) look "$example (Telegraf's punycode warning allowed)" "$log" "$punycode" ;;
    *) look "$example" "$log" ;;
  esac
done

echo "no_noise: deno doc --lint of the published entry points"
deno doc --lint mod.ts storages/*.ts >"$tmp/doc.log" 2>&1 || { cat "$tmp/doc.log"; failed=$((failed + 1)); }
look "deno doc --lint mod.ts storages/*.ts" "$tmp/doc.log"

echo "no_noise: deno publish --dry-run"
deno publish --dry-run --allow-dirty >"$tmp/publish.log" 2>&1 || { cat "$tmp/publish.log"; failed=$((failed + 1)); }
look "deno publish --dry-run" "$tmp/publish.log"

if [ "$failed" -ne 0 ]; then
  echo "no_noise check FAILED: $failed command(s) printed warnings" >&2
  exit 1
fi
echo "no_noise check passed"

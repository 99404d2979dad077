#!/usr/bin/env bash
# Runs `deno task demo` twice on a fresh data/demo.kv and checks that the
# second run found the counts the first run stored, and continued from them.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NO_COLOR=1
unset BOT_TOKEN

out=$(mktemp -d)
cleanup() { rm -rf "$out" data/demo.kv data/demo.kv-*; }
trap cleanup EXIT
fail() { echo "demo check FAILED: $*" >&2; exit 1; }

echo "demo: removing data/demo.kv* and running 'deno task demo' twice"
rm -f data/demo.kv data/demo.kv-*
deno task demo >"$out/run1.txt" 2>&1 || { cat "$out/run1.txt"; fail "first run exited non-zero"; }
deno task demo >"$out/run2.txt" 2>&1 || { cat "$out/run2.txt"; fail "second run exited non-zero"; }

expect() { # file, fixed string, what it proves
  grep -qF -- "$2" "$1" || { echo "--- $1:"; cat "$1"; fail "missing '$2' ($3)"; }
  echo "  ok: $3"
}
expect "$out/run1.txt" "No counts stored yet" "first run starts empty"
expect "$out/run1.txt" "bot> Count: 3" "first run counts to 3 in Alice's chat"
expect "$out/run1.txt" "storage reads: 0, lazy session untouched" "lazy session: /start reads nothing"
expect "$out/run1.txt" "you counted 4 times in all chats" "multi session: per-user fragment"
expect "$out/run2.txt" \
  "Counts persisted from the previous run: chat -200 = 2, chat 101 = 3, chat 102 = 1" \
  "second run finds the first run's counts"
expect "$out/run2.txt" "bot> Count: 6" "second run continues 4, 5, 6 in Alice's chat"
expect "$out/run2.txt" "you counted 8 times in all chats" "per-user fragment persisted"
echo "demo check passed"

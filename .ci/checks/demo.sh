#!/usr/bin/env bash
# Runs `deno task demo` twice on a fresh data/demo.kv and checks that the
# second run found the counts the first run stored, and continued from them.
# It also checks that the storage reads and writes the demo prints for each
# update are the calls that really reached Deno KV: with DEMO_COUNTS_FILE set,
# the demo counts them on a proxy of its Deno.Kv handle, below DenoKvStorage
# (examples/demo/kv_calls.ts), one line per update.
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
for run in run1 run2; do
  DEMO_COUNTS_FILE="$out/$run.kv.txt" deno task demo >"$out/$run.txt" 2>&1 ||
    { cat "$out/$run.txt"; fail "$run exited non-zero"; }
done

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

# For each update: the demo prints "(storage reads: R, writes: W)", or
# "(storage reads: 0, lazy session untouched)" for none of either; the KV
# line says "<command> get=G getMany=M list=L commit=C other=O". A session read
# is one KV get of its head, a session write one atomic commit; nothing else may
# reach KV during an update. That holds for this script: its sessions are tiny
# (above 63 KiB a read adds getMany calls, a write a list), and each write is
# of a key the storage read earlier in the run (a write of a key it has not
# seen gets the head first). Change the script, and this check tells you.
compare() { # run name
  awk -v run="$1" '
    FNR == NR {
      n++; cmd[n] = $1
      for (i = 2; i <= NF; i++) { split($i, kv, "="); kv_[n, kv[1]] = kv[2] }
      next
    }
    /^[^ ].*> \/[a-z]+$/ { u++; sub(/.*> /, ""); said[u] = $0; next }
    /^  \(storage reads: / {
      if (u == 0 || u in line) { bad = bad "\n  a storage line with no update of its own: " $0; next }
      line[u] = $0
      match($0, /reads: [0-9]+/); reads[u] = substr($0, RSTART + 7, RLENGTH - 7) + 0
      writes[u] = -1
      if (match($0, /writes: [0-9]+/)) writes[u] = substr($0, RSTART + 8, RLENGTH - 8) + 0
      else if ($0 ~ /lazy session untouched\)$/) writes[u] = 0
    }
    END {
      if (u == 0 || u != n) bad = bad "\n  " u " updates printed, " n " lines of KV counts"
      for (k = 1; k <= u && k <= n; k++) {
        g = kv_[k, "get"]; m = kv_[k, "getMany"]; l = kv_[k, "list"]; c = kv_[k, "commit"]
        o = kv_[k, "other"]
        what = "update " k " (" said[k] "): printed \"" line[k] "\", KV " g " get, " m \
          " getMany, " l " list, " c " commit, " o " other"
        if (cmd[k] != said[k]) bad = bad "\n  " what ": KV line is for " cmd[k]
        else if (!(k in line)) bad = bad "\n  " what ": no storage line printed"
        else if (writes[k] < 0) bad = bad "\n  " what ": cannot read the printed writes"
        else if (reads[k] != g || m != 0 || l != 0) bad = bad "\n  " what ": reads differ"
        else if (writes[k] != c || o != 0) bad = bad "\n  " what ": writes differ"
        else if (said[k] == "/start" && g + m + l + c + o != 0) bad = bad "\n  " what ": not lazy"
        else if (said[k] == "/start" && line[k] !~ /lazy session untouched/) {
          bad = bad "\n  " what ": /start should print untouched"
        } else figures = figures " " said[k] " " g "/" c
      }
      if (bad != "") { printf "%s: printed figures do not match the KV calls:%s\n", run, bad; exit 1 }
      printf "  ok: %s: printed reads/writes = KV gets/commits, all %d updates:%s\n", run, u, figures
    }
  ' "$out/$1.kv.txt" "$out/$1.txt"
}
for run in run1 run2; do
  compare "$run" || { echo "--- $run:"; cat "$out/$run.txt"; fail "$run: storage figures wrong"; }
done
echo "demo check passed"

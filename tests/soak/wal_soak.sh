#!/usr/bin/env bash
# WAL soak (not run in CI): steady appends to one store for SOAK_SECONDS (default 600) while a
# drainer (`queue drain --follow`) and two followers (`tail -f`) run; follower 2 is stopped with
# SIGSTOP for PAUSE_SECONDS (default 60) from a quarter of the run on, then continued. The size
# of the store's -wal file is sampled every second; the script prints its maximum and final size.
#
# The bound it checks (README "Limits"). After any commit that leaves the WAL at 4 MiB or more
# (wal_autocheckpoint, which esctl sets to 512 of the 8 KiB pages of a store it creates)
# the committer runs a passive checkpoint, and the first commit after a complete checkpoint
# writes from the start of the file again, so the file stops growing; when it starts over, a
# file larger than journal_size_limit (8 MiB, set on every connection) is cut back to that size.
# The last connection to close checkpoints and removes it.
# The long-running readers (tail -f, drain --follow) hold a read snapshot only while a query
# runs, never while they wait or print, so in steady operation the WAL stays within
#     WAL_LIMIT_BYTES = 2 x 512 pages x (8192 + 24) bytes + 1 MiB  (about 9 MiB)
# — two checkpoint intervals (a checkpoint can find a reader mid-query and complete only at a
# later commit) plus one transaction's frames (this script's are ~25 KB; a big import batch
# adds its own size). A process that keeps one snapshot open (a long `export`, a `read --all`
# held up by its pipe, a reader stopped in the middle of a query) holds back the checkpoint and
# the WAL grows for as long as it does; that is outside the bound, and once the snapshot ends
# the next writer to start the file over cuts it back to 8 MiB (journal_size_limit). The script fails if the WAL passes
# WAL_LIMIT_BYTES, if once the appends stop and the drainer has caught up it is larger than
# WAL_SETTLED_BYTES (one checkpoint interval plus 1 MiB: "shrinks back"), or if the -wal file
# is still there after the followers and the drainer have exited.
#
# Usage: tests/soak/wal_soak.sh            (from the repository root, after building build/esctl)
#   env: ESCTL (binary, default build/esctl), SOAK_SECONDS, PAUSE_SECONDS, APPEND_EVENTS (events
#        per append call, default 50), PAD_BYTES (per event, default 400), WAL_LIMIT_BYTES,
#        WAL_SETTLED_BYTES, SOAK_DIR (kept if given; else a temporary directory, removed).
# Exit: 0 within the bounds; 1 if the WAL exceeded WAL_LIMIT_BYTES, did not shrink back, or a
#       follower or the drainer missed events.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
ESCTL=${ESCTL:-$here/build/esctl}
SOAK_SECONDS=${SOAK_SECONDS:-600}
PAUSE_SECONDS=${PAUSE_SECONDS:-60}
APPEND_EVENTS=${APPEND_EVENTS:-50}
PAD_BYTES=${PAD_BYTES:-400}
WAL_LIMIT_BYTES=${WAL_LIMIT_BYTES:-$((2 * 512 * (8192 + 24) + 1048576))}
WAL_SETTLED_BYTES=${WAL_SETTLED_BYTES:-$((512 * (8192 + 24) + 1048576))}
PAUSE_AT=$((SOAK_SECONDS / 4))

if [[ -n ${SOAK_DIR:-} ]]; then
  dir=$SOAK_DIR
  mkdir -p "$dir"
else
  dir=$(mktemp -d /tmp/esctl-wal-soak.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
fi
store=$dir/events.db
wal=$store-wal
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'cleanup; [[ -z ${SOAK_DIR:-} ]] && rm -rf "$dir"' EXIT

wal_size() { stat -c %s "$wal" 2>/dev/null || echo 0; }
es() { "$ESCTL" --store "$store" --busy-timeout 60s "$@"; }
# Background processes run the binary itself (not the function, whose subshell would be the
# one $! names and the one that SIGSTOP and SIGTERM reach).
esc=("$ESCTL" --store "$store" --busy-timeout 60s)

es -q init
es -q queue create soak --from start
# Followers and drainer first, so each of them must see every event appended afterwards.
"${esc[@]}" --json tail -f -n 0 --all >"$dir/follower1.ndjson" 2>"$dir/follower1.err" & f1=$!
"${esc[@]}" --json tail -f -n 0 --all >"$dir/follower2.ndjson" 2>"$dir/follower2.err" & f2=$!
"${esc[@]}" queue drain soak --follow --batch 100 --exec "wc -l >> '$dir/drained'" >"$dir/drain.out" 2>"$dir/drain.err" & dr=$!
pids+=("$f1" "$f2" "$dr")
sleep 1

pad=$(head -c "$PAD_BYTES" /dev/zero | tr '\0' x)
(
  i=0
  while [[ ! -e $dir/stop ]]; do
    for ((k = 0; k < APPEND_EVENTS; k++)); do
      printf '{"type":"Soaked","data":{"i":%d,"k":%d,"pad":"%s"}}\n' "$i" "$k" "$pad"
    done | es -q append "soak-$((i % 16))" --ndjson - || { echo "append $i failed" >&2; exit 1; }
    i=$((i + 1))
  done
) 2>"$dir/append.err" & ap=$!
pids+=("$ap")

echo "soak: $SOAK_SECONDS s in $dir; follower 2 stopped for $PAUSE_SECONDS s from t=$PAUSE_AT s;" \
     "WAL limit $WAL_LIMIT_BYTES bytes, settled limit $WAL_SETTLED_BYTES bytes"
max=0 max_at=0 over=0 paused=0
for ((t = 1; t <= SOAK_SECONDS; t++)); do
  sleep 1
  if ((t == PAUSE_AT)); then kill -STOP "$f2"; paused=1; echo "t=$t: follower 2 stopped"; fi
  if ((paused && t == PAUSE_AT + PAUSE_SECONDS)); then
    kill -CONT "$f2"; paused=0
    echo "t=$t: follower 2 continued ($(wc -l <"$dir/follower2.ndjson") lines, follower 1 has $(wc -l <"$dir/follower1.ndjson"))"
  fi
  s=$(wal_size)
  echo "$t $s" >>"$dir/wal.samples"
  if ((s > max)); then max=$s max_at=$t; fi
  if ((s > WAL_LIMIT_BYTES)); then over=$((over + 1)); fi
  if ((t % 10 == 0)); then echo "t=$t: wal $s bytes (max $max at t=$max_at)"; fi
  kill -0 "$ap" 2>/dev/null || { echo "soak: the appender stopped: $(cat "$dir/append.err")" >&2; exit 1; }
done
((paused)) && kill -CONT "$f2"

touch "$dir/stop"
wait "$ap" || { echo "soak: the appender failed: $(cat "$dir/append.err")" >&2; exit 1; }
events=$(es --json stats | sed -n 's/.*"events":\([0-9]*\).*/\1/p')
# Let the drainer and the followers catch up, then give the next commits a chance to restart the WAL.
for ((w = 0; w < 120; w++)); do
  lag=$(es --json queue status soak | sed -n 's/.*"lag":\([0-9]*\).*/\1/p')
  f1n=$(wc -l <"$dir/follower1.ndjson") f2n=$(wc -l <"$dir/follower2.ndjson")
  ((lag == 0 && f1n == events && f2n == events)) && break
  sleep 1
done
# An idle store writes nothing; one small commit is what restarts (and limits) a checkpointed WAL.
es -q append soak-end Ended >/dev/null
sleep 2
es -q append soak-end Ended >/dev/null
settled=$(wal_size)
drained=$(awk '{ n += $1 } END { print n + 0 }' "$dir/drained" 2>/dev/null || echo 0)
# SIGTERM, not SIGINT: a background job of a script starts with SIGINT ignored.
for p in "$f1" "$f2" "$dr"; do kill -TERM "$p" 2>/dev/null || true; done
wait "$f1" "$f2" "$dr" 2>/dev/null || true
pids=()
closed=$(wal_size)

echo "events appended: $events; drained (first deliveries and redeliveries): $drained; lag: $lag;" \
     "follower lines: $f1n, $f2n"
echo "WAL max: $max bytes at t=$max_at s ($over samples over $WAL_LIMIT_BYTES); WAL final: $settled bytes" \
     "with the followers and drainer still open; $closed bytes after they closed"
fail=0
((max <= WAL_LIMIT_BYTES)) || { echo "FAIL: the WAL reached $max bytes, over $WAL_LIMIT_BYTES"; fail=1; }
((settled <= WAL_SETTLED_BYTES)) || { echo "FAIL: the WAL did not shrink back: $settled bytes, over $WAL_SETTLED_BYTES"; fail=1; }
((closed == 0)) || { echo "FAIL: the -wal file is still $closed bytes after every connection closed"; fail=1; }
((lag == 0 && drained >= events)) || { echo "FAIL: the drainer did not catch up (lag $lag)"; fail=1; }
((f1n == events && f2n == events)) || { echo "FAIL: a follower missed events ($f1n, $f2n of $events)"; fail=1; }
((fail == 0)) && echo "ok"
exit "$fail"

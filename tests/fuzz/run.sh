#!/usr/bin/env bash
# Builds esctl's libFuzzer targets with clang in their own build dir and runs them: first once
# over the committed corpus (a regression test), then each for its share of a time budget.
#   tests/fuzz/run.sh [--seconds N] [--sqlite-from BUILD] FUZZ_BUILD_DIR
# --seconds N       total fuzzing time, split evenly between the targets (default 60; 0: corpus only)
# --sqlite-from B   reuse the SQLite amalgamation B/_deps/sqlite already fetched by another build
# Exit 0: no findings; 1: a target failed (the input is in FUZZ_BUILD_DIR/artifacts: add it to
# tests/fuzz/corpus/<target>/ with the fix); 77: no clang/libFuzzer here (skipped).
# New inputs found go to FUZZ_BUILD_DIR/work/<target>, never into the committed corpus.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
seconds=60
sqlite_from=
while [[ $# -gt 1 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --sqlite-from) sqlite_from="$2"; shift 2 ;;
    *) echo "run.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ $# -eq 1 ]] || { echo "usage: run.sh [--seconds N] [--sqlite-from BUILD] FUZZ_BUILD_DIR" >&2; exit 2; }
build="$1"
targets=(fuzz_ndjson fuzz_projection fuzz_log)

cc="${FUZZ_CC:-clang}" cxx="${FUZZ_CXX:-clang++}"
if ! command -v "$cxx" >/dev/null || ! command -v "$cc" >/dev/null; then
  echo "run.sh: $cxx not found; skipping the fuzz run (apt-get install clang libclang-rt-dev)"; exit 77
fi
probe="$(mktemp -d)"; trap 'rm -rf "$probe"' EXIT
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' > "$probe/p.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
  cat "$probe/err"; echo "run.sh: $cxx cannot link libFuzzer; skipping the fuzz run (apt-get install libclang-rt-dev)"; exit 77
fi

start=$SECONDS
if [[ -n "$sqlite_from" && -d "$sqlite_from/_deps/sqlite" && ! -d "$build/_deps/sqlite" ]]; then
  mkdir -p "$build/_deps" && cp -r "$sqlite_from/_deps/sqlite" "$build/_deps/"
fi
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  CC="$cc" CXX="$cxx" cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DESCTL_FUZZ=ON -DESCTL_TESTS=OFF >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
fi
cmake --build "$build" -j1 --target "${targets[@]}"
echo "run.sh: built in $((SECONDS - start)) s"

mkdir -p "$build/artifacts"
status=0
for t in "${targets[@]}"; do
  name="${t#fuzz_}"
  exe="$build/tests/fuzz/$t"
  dict=()
  case "$name" in
    ndjson|log) dict=(-dict="$here/json.dict") ;;
    projection) dict=(-dict="$here/projection.dict") ;;
  esac
  echo "== $t: corpus"
  "$exe" "$here/corpus/$name"/* 2>"$build/artifacts/$name.corpus.log" || {
    tail -40 "$build/artifacts/$name.corpus.log"; status=1; continue; }
  (( seconds > 0 )) || continue
  per=$(( seconds / ${#targets[@]} )); (( per > 0 )) || per=1
  echo "== $t: fuzzing for $per s"
  mkdir -p "$build/work/$name"
  if ! "$exe" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
      -artifact_prefix="$build/artifacts/$name-" "$build/work/$name" "$here/corpus/$name" \
      >"$build/artifacts/$name.log" 2>&1; then
    grep -v '^#\|NEW_FUNC' "$build/artifacts/$name.log" | tail -60
    echo "run.sh: $t found a problem; the input is in $build/artifacts/$name-*"
    status=1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::(number_of_executed_units|average_exec_per_sec)' "$build/artifacts/$name.log" || true
done
echo "run.sh: done in $((SECONDS - start)) s"
exit $status

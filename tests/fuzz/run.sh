#!/usr/bin/env bash
# Build the libFuzzer harnesses with clang (ASan + UBSan) and run them.
#
#   tests/fuzz/run.sh replay              replay the committed corpora and crash reproducers
#                                         (fast; what CI runs on every change)
#   tests/fuzz/run.sh fuzz [SECONDS] [HARNESS...]
#                                         fuzz each harness SECONDS (default 60), starting from
#                                         the committed corpus; new inputs go to the build tree
#   tests/fuzz/run.sh runs N [HARNESS...]  fuzz each harness for N executions (the >= 10 M runs)
#   tests/fuzz/run.sh merge               minimise seeds + corpus + what fuzzing found back into
#                                         tests/fuzz/corpus/<harness>/ (maintainers; then review
#                                         and commit)
#   tests/fuzz/run.sh seeds               regenerate the seed inputs (gen_seeds.py) into the
#                                         build tree
#   tests/fuzz/run.sh slowest [HARNESS...]  time every corpus, reproducer and fuzz-work input
#                                         once and print the three slowest of each harness
#
# Any crash, sanitizer report, leak, invariant failure, input slower than 1 s (-timeout=1) or
# RSS above 2048 MB fails the run (exit status != 0); libFuzzer writes the input that did it to
# $BUILD/artifacts/. Environment: CR_FUZZ_BUILD (build directory, default build-fuzz),
# CC (default clang), CR_FUZZ_JOBS (build parallelism), CR_FUZZ_PARALLEL (harnesses fuzzed at
# once by fuzz/runs, default 1), CR_FUZZ_FLAGS (extra libFuzzer flags for fuzz/runs, e.g.
# -use_value_profile=1), CR_FUZZ_ALLOW (known findings to skip, see README.md).
# tests/fuzz/ci.sh is the CI step: it installs clang and libFuzzer if missing, then runs
# `replay` and `fuzz 60`.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${CR_FUZZ_BUILD:-$ROOT/build-fuzz}
HARNESSES=(fuzz_http fuzz_validate fuzz_classify fuzz_config)
COMMON=(-timeout=1 -rss_limit_mb=2048 -print_final_stats=1)

declare -A MAXLEN=([fuzz_http]=16384 [fuzz_validate]=8192 [fuzz_classify]=4096 [fuzz_config]=8192)
declare -A DICT=([fuzz_http]=http.dict [fuzz_validate]=json.dict [fuzz_classify]=json.dict
                 [fuzz_config]=json.dict)

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

build() {
  if ! command -v "${CC:-clang}" >/dev/null; then
    echo "run.sh: ${CC:-clang} not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
  fi
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    CC=${CC:-clang} cmake -S "$ROOT" -B "$BUILD" -DCR_SANITIZE=ON -DCR_FUZZ=ON -DCR_BENCH=OFF \
      -DCR_WERROR=OFF >"$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log" >&2; exit 1; }
  fi
  cmake --build "$BUILD" --target fuzzers -j "${CR_FUZZ_JOBS:-$(nproc)}" >"$BUILD/fuzz-build.log" 2>&1 \
    || { tail -50 "$BUILD/fuzz-build.log" >&2; exit 1; }
  mkdir -p "$BUILD/artifacts"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=64:max_malloc_fill_size=0:malloc_context_size=10}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

bin() { echo "$BUILD/fuzz/$1"; }

# Run every file of the corpus (and the crash reproducers) once; leaks are checked at exit.
replay_one() {
  local h=$1 files
  mapfile -t files < <(find "$HERE/corpus/$h" "$HERE/crashes/$h" -type f 2>/dev/null | sort)
  if [ ${#files[@]} -eq 0 ]; then
    echo "replay $h: no inputs" >&2
    return 1
  fi
  local t0=$SECONDS
  printf '%s\n' "${files[@]}" | xargs -d '\n' -n 2000 "$(bin "$h")" "${COMMON[@]}" \
    -artifact_prefix="$BUILD/artifacts/$h-" >"$BUILD/replay-$h.log" 2>&1 \
    || { tail -40 "$BUILD/replay-$h.log" >&2; echo "replay $h: FAILED" >&2; return 1; }
  echo "replay $h: ${#files[@]} inputs OK ($((SECONDS - t0)) s)"
}

fuzz_one() {
  local h=$1 limit=$2 work="$BUILD/fuzz-work/$1"
  mkdir -p "$work"
  local log="$BUILD/fuzz-$h.log"
  echo "fuzz $h: $limit (log $log)"
  "$(bin "$h")" "${COMMON[@]}" -max_len="${MAXLEN[$h]}" -dict="$HERE/${DICT[$h]}" \
    -artifact_prefix="$BUILD/artifacts/$h-" $limit ${CR_FUZZ_FLAGS:-} \
    "$work" "$HERE/corpus/$h" >"$log" 2>&1 \
    || { tail -60 "$log" >&2; echo "fuzz $h: FAILED (see $log and $BUILD/artifacts/)" >&2; return 1; }
  echo "fuzz $h: $(grep -E "^stat::number_of_executed_units|^Done|^stat::peak_rss_mb" "$log" |
    tr -s ' \n' '  ')"
}

# fuzz_one for each named harness, CR_FUZZ_PARALLEL of them at a time; fails if any failed.
fuzz_all() {
  local limit=$1 par=${CR_FUZZ_PARALLEL:-1} running=0 rc=0
  shift
  for h in "$@"; do
    if [ "$running" -ge "$par" ]; then
      wait -n || rc=1
      running=$((running - 1))
    fi
    fuzz_one "$h" "$limit" &
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do
    wait -n || rc=1
    running=$((running - 1))
  done
  return $rc
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift || true
case "$cmd" in
  replay)
    build
    rc=0
    for h in "${HARNESSES[@]}"; do replay_one "$h" || rc=1; done
    # The HTTP corpus once more through a real TCP listener instead of the socketpair.
    CR_FUZZ_HTTP_TCP=1 replay_one fuzz_http || rc=1
    exit $rc
    ;;
  fuzz|runs)
    n=${1:-60}
    [ $# -gt 0 ] && shift
    sel=("$@")
    [ ${#sel[@]} -gt 0 ] || sel=("${HARNESSES[@]}")
    build
    if [ "$cmd" = fuzz ]; then limit="-max_total_time=$n"; else limit="-runs=$n"; fi
    fuzz_all "$limit" "${sel[@]}"
    ;;
  slowest)
    sel=("$@")
    [ ${#sel[@]} -gt 0 ] || sel=("${HARNESSES[@]}")
    build
    for h in "${sel[@]}"; do
      log="$BUILD/slowest-$h.log"
      # From a snapshot of fuzz-work: a fuzzer still running deletes files there.
      rm -rf "$BUILD/slowest-src-$h"
      [ -d "$BUILD/fuzz-work/$h" ] && cp -r "$BUILD/fuzz-work/$h" "$BUILD/slowest-src-$h"
      dirs=()
      for d in "$HERE/corpus/$h" "$HERE/crashes/$h" "$BUILD/slowest-src-$h"; do
        [ -d "$d" ] && dirs+=("$d")
      done
      find "${dirs[@]}" -type f |
        xargs -d '\n' -n 2000 "$(bin "$h")" "${COMMON[@]}" >"$log" 2>&1 ||
        { tail -40 "$log" >&2; echo "slowest $h: FAILED" >&2; exit 1; }
      # libFuzzer prints "Executed FILE in N ms" for each input it is given.
      echo "slowest $h ($(grep -c '^Executed' "$log") inputs):"
      grep '^Executed' "$log" | awk '{print $(NF-1) " ms  " $2}' | sort -n | tail -3 |
        sed 's/^/  /'
    done
    ;;
  seeds)
    rm -rf "$BUILD/seeds"
    python3 "$HERE/gen_seeds.py" "$BUILD/seeds"
    echo "seeds in $BUILD/seeds"
    ;;
  merge)
    build
    [ -d "$BUILD/seeds" ] || python3 "$HERE/gen_seeds.py" "$BUILD/seeds"
    for h in "${HARNESSES[@]}"; do
      new="$BUILD/merge-$h"
      rm -rf "$new"
      mkdir -p "$new"
      srcs=("$BUILD/seeds/$h")
      [ -d "$HERE/corpus/$h" ] && srcs+=("$HERE/corpus/$h")
      # A snapshot: a fuzzer still running replaces and deletes files in its work dir, which
      # makes a merge reading that dir give up half way.
      if [ -d "$BUILD/fuzz-work/$h" ]; then
        rm -rf "$BUILD/merge-src-$h"
        cp -r "$BUILD/fuzz-work/$h" "$BUILD/merge-src-$h"
        srcs+=("$BUILD/merge-src-$h")
      fi
      "$(bin "$h")" -merge=1 "${COMMON[@]}" -max_len="${MAXLEN[$h]}" "$new" "${srcs[@]}" \
        >"$BUILD/merge-$h.log" 2>&1 || { tail -30 "$BUILD/merge-$h.log" >&2; exit 1; }
      rm -rf "$HERE/corpus/$h"
      mkdir -p "$HERE/corpus"
      mv "$new" "$HERE/corpus/$h"
      echo "merge $h: $(find "$HERE/corpus/$h" -type f | wc -l) inputs, $(du -sh "$HERE/corpus/$h" | cut -f1)"
    done
    ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# tests/chaos/run.sh - run the chaos figures of issue 5 (see tests/chaos/README.md).
#
#   tests/chaos/run.sh                 # every figure, full variant (CHAOS_FULL=1)
#   tests/chaos/run.sh full 1 5 13     # only figures 1, 5 and 13, full variant
#   tests/chaos/run.sh short           # every figure, the short variant (what ctest runs)
#   tests/chaos/run.sh short 9         # one figure, short
#
# Environment:
#   BUILD_DIR    build directory (default build-chaos; configured and built here, Release)
#   SKIP_BUILD=1 use BUILD_DIR as it is
#   SANITIZE=1   configure BUILD_DIR with -DCR_SANITIZE=ON (deadlines stretch by 2x)
#   CHAOS_RATE, CHAOS_SECS    override the rate / duration of figures 1 and 13
#   CHAOS_SLOW   deadline multiplier (default 1, or 2 under ASan)
#
# Writes tests/chaos/results/<UTC date>-<mode>/: results.txt (every "FIGURE" line),
# <program>-<figure>.log (the program's whole output) and the load and delivery logs (TSV).
# Exit status: 0 when every figure run passed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD

mode=full
if [[ $# -gt 0 && ( $1 == full || $1 == short ) ]]; then
  mode=$1
  shift
fi
figs=("$@")
if [[ ${#figs[@]} -eq 0 ]]; then
  figs=(1 2 3 4 5 6 7 8 9 10 11 12 13 14)
fi

BUILD_DIR=${BUILD_DIR:-build-chaos}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  san=OFF
  [[ ${SANITIZE:-0} == 1 ]] && san=ON
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCR_SANITIZE=$san -DCR_BENCH=OFF \
    >/dev/null || exit 1
  make -C "$BUILD_DIR" -j"$(nproc)" crossroads it_test_chaos_kill it_test_chaos_fifo \
    it_test_chaos_pause it_test_chaos_redis it_test_chaos_damage it_test_chaos_dest \
    it_test_chaos_drain >/dev/null || exit 1
fi

program_of() {
  case $1 in
    1 | 4) echo test_chaos_kill ;;
    9) echo test_chaos_fifo ;;
    2 | 3) echo test_chaos_pause ;;
    5 | 6) echo test_chaos_redis ;;
    7 | 8) echo test_chaos_damage ;;
    10 | 11 | 14) echo test_chaos_dest ;;
    12 | 13) echo test_chaos_drain ;;
    *) echo "" ;;
  esac
}

out="tests/chaos/results/$(date -u +%Y%m%dT%H%M%SZ)-$mode"
mkdir -p "$out"
export CR_BIN="$ROOT/$BUILD_DIR/crossroads"
export CR_REDIS_SERVER=${CR_REDIS_SERVER:-$(command -v redis-server)}
export CR_FIXTURES="$ROOT/tests/fixtures"
export CHAOS_RESULTS="$ROOT/$out/results.txt"
export CHAOS_LOG_DIR="$ROOT/$out"
if [[ $mode == full ]]; then
  export CHAOS_FULL=1
else
  unset CHAOS_FULL
fi

{
  echo "# chaos run: $mode, figures ${figs[*]}"
  echo "# date: $(date -u +%FT%TZ); commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
  echo "# machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -sr); $(redis-server --version | awk '{print $1, $2, $3}')"
} >"$CHAOS_RESULTS"

fail=0
for f in "${figs[@]}"; do
  prog=$(program_of "$f")
  if [[ -z $prog ]]; then
    echo "unknown figure $f" >&2
    fail=1
    continue
  fi
  log="$out/$prog-$f.log"
  start=$(date +%s)
  CHAOS_ONLY=$f "$ROOT/$BUILD_DIR/tests/it_$prog" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  if [[ $rc -eq 0 ]]; then
    verdict=PASS
  else
    verdict=FAIL
    fail=1
  fi
  echo "RESULT figure $f ($prog, $mode): $verdict in ${took}s" | tee -a "$CHAOS_RESULTS"
  grep -E '^\[  (FAILED|ERROR) |^\[   LINE' "$log" | sed 's/^/    /'
done
echo "results: $out/results.txt"
exit $fail

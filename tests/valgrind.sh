#!/bin/sh
# tests/valgrind.sh - the HTTP edge-case tests (tests/integration/test_http.c) against a gateway
# running under valgrind memcheck; passes only with 0 errors and 0 bytes definitely or
# indirectly lost in every gateway process the test started.
#
# usage: tests/valgrind.sh [BUILD_DIR] [TEST_PROGRAM...]
#   BUILD_DIR     a build without sanitizers (default: build); valgrind and ASan do not mix
#   TEST_PROGRAM  test programs under BUILD_DIR/tests (default: it_test_http)
#
# How: the harness (tests/support/harness.c) runs the gateway as "$CR_GW_WRAPPER <gateway
# command>" when CR_GW_WRAPPER is set; the gateway keeps its pid, so SIGTERM and the exit
# status go through valgrind unchanged, and --error-exitcode makes any memcheck error (leaks of
# the kinds named included) a non-zero exit, which harness_gw_stop already fails on. Each
# process writes its own valgrind log, which this script also reads for the summary lines.
set -u

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
[ $# -gt 0 ] && shift
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
PROGRAMS=${*:-it_test_http}

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }
[ -x "$BUILD/crossroads" ] || { echo "valgrind.sh: no $BUILD/crossroads (build first)" >&2; exit 2; }
if grep -q '^CR_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    echo "valgrind.sh: $BUILD is a sanitizer build; use a build without -DCR_SANITIZE=ON" >&2
    exit 2
fi

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/cr-valgrind-XXXXXX")
export CR_BIN="$BUILD/crossroads"
export CR_REDIS_SERVER="${CR_REDIS_SERVER:-$(command -v redis-server)}"
export CR_FIXTURES="$SRC/tests/fixtures"
# Split at spaces by the harness: no spaces inside an argument.
export CR_GW_WRAPPER="valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=30 --log-file=$LOGDIR/vg.%p.log"

status=0
for p in $PROGRAMS; do
    echo "== $p (gateway under valgrind memcheck; logs in $LOGDIR)"
    if ! "$BUILD/tests/$p"; then
        echo "valgrind.sh: $p failed" >&2
        status=1
    fi
done

# Every gateway process: its summary lines.
n=0
for log in "$LOGDIR"/vg.*.log; do
    [ -e "$log" ] || continue
    # Only the gateway's own process (valgrind also logs for any child it execs).
    grep -q 'Command: .*cr-gw serve' "$log" || continue
    n=$((n + 1))
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tail -1 | tr -d ,)
    definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1 | tr -d ,)
    indirect=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1 | tr -d ,)
    if grep -q 'All heap blocks were freed' "$log"; then
        definite=${definite:-0}
        indirect=${indirect:-0}
    fi
    echo "$(basename "$log"): ${errors:-?} errors, ${definite:-?} bytes definitely lost, ${indirect:-?} bytes indirectly lost"
    if [ "${errors:-x}" != 0 ] || [ "${definite:-x}" != 0 ] || [ "${indirect:-x}" != 0 ]; then
        status=1
        echo "---- $log ----"
        cat "$log"
        echo "---- end ----"
    fi
done
if [ "$n" -eq 0 ]; then
    echo "valgrind.sh: no gateway ran under valgrind" >&2
    status=1
fi
if [ "$status" -eq 0 ]; then
    echo "valgrind.sh: OK ($n gateway process(es): 0 errors, 0 definitely/indirectly lost)"
    rm -rf "$LOGDIR"
else
    echo "valgrind.sh: FAILED (logs kept in $LOGDIR)" >&2
fi
exit "$status"

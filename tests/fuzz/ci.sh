#!/usr/bin/env bash
# The CI step for the fuzzers (issue 6, item 4): a few minutes on a 2-core machine.
#
#   1. clang and libFuzzer's runtime from Debian's packages, installed when missing (bookworm:
#      clang 14, whose libFuzzer is libclang_rt.fuzzer-x86_64.a in libclang-rt-14-dev; the
#      version-less names clang and libclang-rt-dev pull in the distribution's default);
#   2. the harnesses built in build-fuzz/ (CR_FUZZ_BUILD) with ASan + UBSan;
#   3. every committed corpus input and crash reproducer replayed once (run.sh replay);
#   4. each harness fuzzed CR_FUZZ_SECONDS (default 60) from the committed corpus, as many at
#      once as there are cores (at most 4), with -timeout=1 -rss_limit_mb=2048 (run.sh fuzz).
#
# Any crash, sanitizer report, leak, broken harness invariant, input slower than 1 s or RSS over
# 2 GB fails the step; the input that did it is printed (base64) so it can be replayed from the
# CI log: `base64 -d > crash && build-fuzz/fuzz/<harness> crash`. One exception: a timeout
# whose input then runs in under 1 s three times alone is reported as an overloaded machine
# (a warning), not a failure. New inputs found stay in the
# build tree (build-fuzz/fuzz-work/), never in tests/fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
BUILD=${CR_FUZZ_BUILD:-$PWD/build-fuzz}
export CR_FUZZ_BUILD=$BUILD
t_start=$SECONDS

apt_install() {
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "$@"; }
}

# Can clang link a libFuzzer program? (-fsanitize=fuzzer needs the compiler-rt archive.)
links_fuzzer() {
  local dir
  dir=$(mktemp -d)
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{\n  (void)d;\n  (void)n;\n  return 0;\n}\n' >"$dir/t.c"
  clang -fsanitize=fuzzer,address,undefined "$dir/t.c" -o "$dir/t" >/dev/null 2>&1
  local rc=$?
  rm -rf "$dir"
  return $rc
}

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz ci: installing clang and libclang-rt-dev"
  apt_install clang libclang-rt-dev
fi
if ! links_fuzzer; then
  major=$(clang -dumpversion | cut -d. -f1)
  echo "fuzz ci: installing libclang-rt-$major-dev (libFuzzer runtime for clang $major)"
  apt_install "libclang-rt-$major-dev"
  links_fuzzer || { echo "fuzz ci: clang still cannot link -fsanitize=fuzzer" >&2; exit 1; }
fi
# The project's own build dependencies (a no-op when deps/test.sh already ran).
deps/install.sh

show_artifacts() {
  local f
  for f in "$BUILD"/artifacts/*; do
    [ -f "$f" ] || continue
    echo "fuzz ci: failing input $f ($(stat -c %s "$f") bytes), base64:"
    head -c 65536 "$f" | base64 -w 0
    echo
  done
}

# A timeout that does not come back when its input is run again alone was the machine (CI boxes
# are shared and a process can be descheduled for a second), not the input. True when every
# artifact is a timeout whose input then passes -timeout=1 three times in a row.
only_unrepeatable_timeouts() {
  local f name h i found=0
  for f in "$BUILD"/artifacts/*; do
    [ -f "$f" ] || continue
    found=1
    name=$(basename "$f")
    case "$name" in
      *-timeout-*) h=${name%%-timeout-*} ;;
      *) return 1 ;;
    esac
    for i in 1 2 3; do
      "$BUILD/fuzz/$h" -timeout=1 -rss_limit_mb=2048 "$f" >/dev/null 2>&1 || return 1
    done
    echo "fuzz ci: WARNING: $name timed out while fuzzing but runs in under 1 s alone" \
      "(3 of 3): the machine was overloaded, not a slow input"
  done
  [ "$found" -eq 1 ]
}

rm -rf "$BUILD/artifacts"
export CC=clang
t0=$SECONDS
tests/fuzz/run.sh replay || { show_artifacts; exit 1; }
echo "fuzz ci: build + replay $((SECONDS - t0)) s"

cores=$(nproc)
[ "$cores" -le 4 ] || cores=4
t0=$SECONDS
if ! CR_FUZZ_PARALLEL=$cores tests/fuzz/run.sh fuzz "${CR_FUZZ_SECONDS:-60}"; then
  show_artifacts
  only_unrepeatable_timeouts || exit 1
fi
echo "fuzz ci: fuzzing $((SECONDS - t0)) s; whole step $((SECONDS - t_start)) s"

#!/usr/bin/env bash
# The whole test suite: install dependencies, then build and run every ctest test twice -
# a warnings-as-errors release build, and an ASan+UBSan build.
#   CR_TEST_JOBS - parallel ctest jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."

deps/install.sh
# The OpenAPI linter (test_openapi) comes from the npm registry, pinned by its lock file.
if ! command -v npm >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
npm ci --prefix tests/openapi --no-audit --no-fund --loglevel=error
# The console's browser test: playwright-core driving Debian's chromium (no browser download).
command -v chromium >/dev/null 2>&1 || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
npm ci --prefix tests/console --no-audit --no-fund --loglevel=error
# nginx fronts two gateways in the load-balancer test.
command -v nginx >/dev/null 2>&1 || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx
# promtool validates the /metrics exposition in the tests.
command -v promtool >/dev/null 2>&1 || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
jobs=${CR_TEST_JOBS:-$(nproc)}

cmake -S . -B build -DCR_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure -j"$jobs")

cmake -S . -B build-asan -DCR_WERROR=ON -DCR_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")

# libFuzzer harnesses (clang, ASan+UBSan): replay the corpora and crash reproducers, then fuzz
# 60 s per harness (tests/fuzz/ci.sh installs clang and the libFuzzer runtime if missing).
tests/fuzz/ci.sh

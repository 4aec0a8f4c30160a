#!/usr/bin/env bash
# Installs the Debian packages Crossroads builds, tests and runs with. The one place that names
# them: the README, CI and the Dockerfile all call this script.
#   deps/install.sh          build + test dependencies (default)
#   deps/install.sh runtime  only the shared libraries the binary needs at run time
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config ca-certificates curl
  libuv1-dev        # event loop
  node-llhttp       # llhttp's C sources and header (compiled by deps/llhttp.cmake)
  libhiredis-dev    # async Redis client with a libuv adapter
  libcurl4-openssl-dev
  libssl-dev        # libcrypto: SHA-256, HMAC, random ids
  libjansson-dev    # JSON: strict UTF-8, duplicate-key rejection, byte offsets in errors
  libcmocka-dev     # unit tests
  redis-server      # local Redis for the demo and the integration tests
)
runtime_pkgs=(libuv1 libhiredis0.14 libcurl4 libssl3 libjansson4 ca-certificates curl)

mode=${1:-build}
case "$mode" in
  build) pkgs=("${build_pkgs[@]}") ;;
  runtime) pkgs=("${runtime_pkgs[@]}") ;;
  *) echo "usage: $0 [build|runtime]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

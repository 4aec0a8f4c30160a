#!/usr/bin/env bash
# Newcomer's first command: install dependencies, build, then run a private Redis and the
# gateway on the demo config in the foreground. Ctrl-C stops both.
#   DEMO_PORT (default 8080) - gateway port; DEMO_REDIS_PORT (default 6399) - Redis port.
set -euo pipefail
cd "$(dirname "$0")/.."

deps/install.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target crossroads bench_dest

redis_port=${DEMO_REDIS_PORT:-6399}
data_dir=$(mktemp -d -t crossroads-demo-redis.XXXXXX)
# appendfsync always: an accepted ("pending") request survives a Redis crash (README, Durability).
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$data_dir" --save '' \
  --appendonly yes --appendfsync always --daemonize no >"$data_dir/redis.log" 2>&1 &
redis_pid=$!
# Stand-ins for the demo tenants' webhooks (acme-supply :9101, swift-haul :9104), so sagas run to
# synced: bench/dest.c answers every delivery with 200.
./build/bench/bench_dest --host 127.0.0.1 --port 9101 >"$data_dir/dest-9101.log" 2>&1 &
dest1=$!
./build/bench/bench_dest --host 127.0.0.1 --port 9104 >"$data_dir/dest-9104.log" 2>&1 &
dest2=$!
cleanup() {
  kill "$dest1" "$dest2" 2>/dev/null || true
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  rm -rf "$data_dir"
}
trap cleanup EXIT
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

export CROSSROADS_LISTEN="0.0.0.0:${DEMO_PORT:-8080}"
export CROSSROADS_REDIS_URL="redis://127.0.0.1:${redis_port}/0"
echo "crossroads: demo on http://127.0.0.1:${DEMO_PORT:-8080} (Redis on port $redis_port); Ctrl-C stops" >&2
# Not exec: the trap must still stop Redis after the gateway exits.
trap 'kill -INT "$gw_pid" 2>/dev/null || true' INT TERM
./build/crossroads serve --config config/demo.json &
gw_pid=$!
wait "$gw_pid" || true
wait "$gw_pid" 2>/dev/null || true

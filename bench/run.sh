#!/usr/bin/env bash
# bench/run.sh - the Crossroads benchmark, one command (see bench/README.md).
#
#   bench/run.sh [intake|latency|saga|idle|scale|stored|flood|profile|all]
#                (default: intake; all = all but flood and profile)
#   QUICK=1 bench/run.sh intake                                   (smoke test: 5 s runs, 1 rep)
#
# Installs wrk (apt) if missing, builds the gateway and the bench programs (Release) in
# bench/build, then for each figure starts its own redis-server (private port, fresh data dir),
# the gateway (copy of config/demo.json with the webhook URLs pointed at the loopback
# destination; listen and Redis via CROSSROADS_LISTEN / CROSSROADS_REDIS_URL) or a reference
# server, measures, and stops everything it started (trap EXIT). Results: a markdown section
# per sub-command in bench/results/<sub>.md, all of them gathered in bench/results/latest.md;
# raw rows and logs in bench/results/raw/<date>-<sub>/ (not committed).
#
# Pinning (2 cores): the server under test (gateway or reference) on CPU 0; the load generator,
# redis-server and the loopback destination on CPU 1; Redis's AOF-rewrite child (forked now and
# then) on CPU 0. Override with SRV_CPU, LOAD_CPU, REDIS_CPU, REWRITE_CPU, DEST_CPU. Every knob
# is an environment variable listed under "Knobs" below.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
SUB=${1:-intake}
case "$SUB" in
  intake|latency|saga|idle|scale|stored|flood|profile|all|report) ;;
  -h|--help|help) sed -n '2,19p' "$0"; exit 0 ;;
  *) echo "usage: $0 [intake|latency|saga|idle|scale|stored|flood|profile|all] | $0 report RAWDIR..." >&2; exit 2 ;;
esac
KNOBS="QUICK DURATION REPS CONNS MIXES FSYNCS HEALTH_CONNS REFA_PASS BODY_BYTES WRK_THREADS WRK_TIMEOUT NOISE_MAX_PCT
  NOISE_RETRIES NOISE_WAIT SRV_CPU LOAD_CPU
  REDIS_CPU REWRITE_CPU DEST_CPU GW_LOG_LEVEL BENCH_PORT_BASE GW_BIN SKIP_BUILD SAGA_FSYNC SAGA_CONNS SAGA_DURATION
  DEST_DELAY_MS E2E_RATE E2E_DURATION OPENLOOP_CONNS LAT_MIX IDLE_CONNS SCALE_PROCS SCALE_MIX SCALE_CONNS
  SCALE_FSYNC SCALE_GW_CPUS STORED_CASES STORED_CONNS STORED_FSYNC FLOOD_CONNS FLOOD_RATE PROFILE_SAGAS
  PROFILE_RATE PROFILE_REDIS GW_API PROFILE_WORKERS"
COMMAND_LINE="$(for v in $KNOBS; do if [ -n "${!v:-}" ]; then printf '%s=%q ' "$v" "${!v}"; fi; done)bench/run.sh $*"

# ---------------------------------------------------------------- knobs
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then DEF_DURATION=5; DEF_REPS=1; else DEF_DURATION=10; DEF_REPS=3; fi
DURATION=${DURATION:-$DEF_DURATION}          # seconds per wrk run
REPS=${REPS:-$DEF_REPS}                      # repetitions of every figure
CONNS=${CONNS:-"64 256 1024"}                # wrk connections (intake)
MIXES=${MIXES:-"cancel reset update_status create mixed"}   # bench/lua/<mix>.lua
FSYNCS=${FSYNCS:-"always everysec"}          # redis appendfsync variants
HEALTH_CONNS=${HEALTH_CONNS-"64 256"}        # /healthz vs ref (a) ("" skips it)
REFA_PASS=${REFA_PASS:-${FSYNCS%% *}}        # the fsync pass that also measures ref (a) (no Redis)
BODY_BYTES=${BODY_BYTES:-auto}               # ref answer size; auto = the gateway's, per mix
WRK_THREADS=${WRK_THREADS:-1}                # wrk is pinned to one CPU: one thread
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}               # wrk counts slower answers as timeouts
NOISE_MAX_PCT=${NOISE_MAX_PCT:-25}           # redo an intake run if other processes used more
NOISE_RETRIES=${NOISE_RETRIES:-2}            #   CPU than this (% of one CPU), at most this often,
NOISE_WAIT=${NOISE_WAIT:-5}                  #   after waiting this many seconds
SRV_CPU=${SRV_CPU:-0}                        # gateway / reference server
LOAD_CPU=${LOAD_CPU:-1}                      # wrk, openloop, idle_conns
REDIS_CPU=${REDIS_CPU:-1}
REWRITE_CPU=${REWRITE_CPU:-$SRV_CPU}         # Redis's AOF-rewrite child ("" leaves it with Redis)
REDIS_ARGS=${REDIS_ARGS:-}                   # more redis-server options, e.g. "--hash-max-listpack-value 4096"
DEST_CPU=${DEST_CPU:-1}
GW_LOG_LEVEL=${GW_LOG_LEVEL:-warn}           # access lines off (info would log every request)
PORT_BASE=${BENCH_PORT_BASE:-18400}
BUILD_DIR=${BUILD_DIR:-$BENCH_DIR/build}
GW_BIN=${GW_BIN:-$BUILD_DIR/crossroads}      # set to skip building the gateway
SKIP_BUILD=${SKIP_BUILD:-0}
RESULTS=${RESULTS:-$BENCH_DIR/results}
# saga / latency
SAGA_FSYNC=${SAGA_FSYNC:-always}
SAGA_CONNS=${SAGA_CONNS:-256}
SAGA_DURATION=${SAGA_DURATION:-$DURATION}
SAGA_DRAIN_TIMEOUT=${SAGA_DRAIN_TIMEOUT:-600}
DEST_DELAY_MS=${DEST_DELAY_MS:-10}
E2E_RATE=${E2E_RATE:-1000}
E2E_DURATION=${E2E_DURATION:-$([ "$QUICK" = 1 ] && echo 5 || echo 20)}
OPENLOOP_CONNS=${OPENLOOP_CONNS:-256}
LAT_MIX=${LAT_MIX:-create}
# idle
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SETTLE=${IDLE_SETTLE:-3}
# scale
SCALE_PROCS=${SCALE_PROCS:-"1 2 4"}
SCALE_MIX=${SCALE_MIX:-cancel}
SCALE_CONNS=${SCALE_CONNS:-256}
SCALE_FSYNC=${SCALE_FSYNC:-always}
SCALE_GW_CPUS=${SCALE_GW_CPUS:-$SRV_CPU}
# stored orders
# orders stored:orders the requests pick from (the first ones). With 1,000 orders every order gets
# ~25 updates in a 5 s run, queued behind each other (per-order FIFO); the middle case has the same
# queueing with a million orders stored, so it differs from the first in the stored orders alone.
STORED_CASES=${STORED_CASES:-"1000:1000 1000000:1000 1000000:1000000"}
STORED_CONNS=${STORED_CONNS:-256}
STORED_FSYNC=${STORED_FSYNC:-always}
# a flood of refused requests
FLOOD_CONNS=${FLOOD_CONNS:-1024}             # wrk connections sending requests the API refuses
FLOOD_RATE=${FLOOD_RATE:-50}                 # valid creates per second alongside (open loop)
# the gateway under callgrind
PROFILE_SAGAS=${PROFILE_SAGAS:-500}          # create sagas, intake to synced
PROFILE_RATE=${PROFILE_RATE:-50}             # per second (the gateway runs ~50x slower under valgrind)
PROFILE_REDIS=${PROFILE_REDIS:-1}            # 1: Redis under callgrind too, in the same run
PROFILE_WORKERS=${PROFILE_WORKERS:-1}        # 0: profile the intake path alone (saga.workers false)
GW_API=${GW_API:-0}                          # 1: intake also measures the gateway with saga.workers
                                             #    false (server "gwapi": the intake path alone)

GW_PORT=$PORT_BASE
REFA_PORT=$((PORT_BASE + 1))
REFB_PORT=$((PORT_BASE + 2))
DEST_PORT=$((PORT_BASE + 3))
REDIS_PORT=$((PORT_BASE + 4))
B="$BUILD_DIR/bench"
CLK_TCK=$(getconf CLK_TCK)
RUN_ID=$(date +%s)$$
declare -A BODY_SIZE=() # per mix, filled by body_sizes (an associative array from the start: the
                        # latency sub-command reads it before anything has filled it)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- processes
PIDS=()
track() { PIDS+=("$1"); }
untrack() {
  local p=$1 keep=() x
  for x in "${PIDS[@]}"; do [ "$x" = "$p" ] || keep+=("$x"); done
  PIDS=("${keep[@]}")
}
alive() { # pid: running (not gone, not a zombie on its way out)
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}
stop_pid() { # pid [timeout_s]: SIGTERM, then SIGKILL after the timeout; reaps it
  local p=$1 t=${2:-15} i=0
  if alive "$p"; then
    kill -TERM "$p" 2>/dev/null || true
    while alive "$p" && [ $i -lt $((t * 20)) ]; do sleep 0.05; i=$((i + 1)); done
    if alive "$p"; then
      log "pid $p did not stop within ${t}s: SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
  fi
  wait "$p" 2>/dev/null || true
  untrack "$p"
}
WORK= INTAKE_STATE=
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p" 5; done
  if [ "$INTAKE_STATE" = running ] && [ "$(wc -l <"$RAW/intake.tsv" 2>/dev/null || echo 0)" -gt 1 ]; then
    log "writing the partial intake report of the rows measured so far"
    INTAKE_STATE=partial
    (report_intake "partial: interrupted" "$RAW" >/dev/null) || true
  fi
  [ -n "$WORK" ] && [ "${KEEP_WORK:-0}" != 1 ] && rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() { # url [tries of 50 ms]: until it answers 200
  local url=$1 n=${2:-200} i
  for ((i = 0; i < n; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ] && return 0
    sleep 0.05
  done
  return 1
}

cpu_ticks() { # utime + stime of a pid (clock ticks); 0 if gone
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  set -- $s
  echo $((${12} + ${13}))
}
proc_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sum_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
sum_kb() { local field=$1 t=0 p v; shift; for p in "$@"; do v=$(proc_kb "$p" "$field"); t=$((t + ${v:-0})); done; echo $t; }

# ---------------------------------------------------------------- setup
ensure_tools() {
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  if ! command -v wrk >/dev/null; then
    log "installing wrk (apt)"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
  fi
  "$ROOT/deps/install.sh" >/dev/null
  local t
  for t in wrk redis-server redis-cli taskset curl cmake awk; do
    command -v "$t" >/dev/null || die "$t not found"
  done
}

build() {
  if [ "$SKIP_BUILD" = 1 ]; then log "SKIP_BUILD=1: using $B and $GW_BIN"; return; fi
  log "building (Release) in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCR_BENCH=ON -DCR_TESTS=OFF >/dev/null
  local targets=(bench_ref_http bench_ref_redis bench_dest bench_openloop bench_idle_conns bench_sagastat)
  [ "$GW_BIN" = "$BUILD_DIR/crossroads" ] && targets+=(crossroads)
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${targets[@]}" >"$RAW/build.log" 2>&1 ||
    { tail -30 "$RAW/build.log" >&2; die "build failed (log: $RAW/build.log)"; }
}

make_config() { # max_connections -> $CONFIG (demo.json, connector URLs -> the loopback dest)
  CONFIG="$WORK/config.json"          # and $CONFIG_API: the same with saga.workers false
  sed -e "s#\"url\": *\"http://127\.0\.0\.1:[0-9]*\"#\"url\": \"http://127.0.0.1:$DEST_PORT\"#g" \
      -e "s#\"max_connections\": *[0-9]*#\"max_connections\": $1#" \
      "$ROOT/config/demo.json" >"$CONFIG"
  [ "$(grep -c "\"http://127.0.0.1:$DEST_PORT\"" "$CONFIG")" -ge 2 ] ||
    die "could not point the demo config's connector URLs at the destination"
  "$GW_BIN" check-config --config "$CONFIG" >/dev/null || die "bench config refused"
  CONFIG_API="$WORK/config-api.json"
  if [ "$GW_API" = 1 ] || [ "$PROFILE_WORKERS" = 0 ]; then # (binaries before 0263694 refuse it)
    sed -e 's#"saga": *{#"saga": {"workers": false, #' "$CONFIG" >"$CONFIG_API"
    grep -q '"workers": false' "$CONFIG_API" || die "could not turn the saga workers off in the config"
    "$GW_BIN" check-config --config "$CONFIG_API" >/dev/null || die "bench config (workers off) refused"
  fi
}

# ---------------------------------------------------------------- servers
REDIS_PID= REDIS_DIR= REDIS_WRAP=() # REDIS_WRAP: a command Redis runs under (the profile's valgrind)
start_redis() { # fsync
  REDIS_DIR=$(mktemp -d "$WORK/redis.XXXXXX")
  taskset -c "$REDIS_CPU" "${REDIS_WRAP[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
    --save '' --appendonly yes --appendfsync "$1" --daemonize no \
    ${REWRITE_CPU:+--aof_rewrite_cpulist "$REWRITE_CPU"} \
    --logfile "$REDIS_DIR/redis.log" $REDIS_ARGS &
  REDIS_PID=$!
  track "$REDIS_PID"
  local i
  for ((i = 0; i < 600; i++)); do
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  die "redis-server did not start (log: $REDIS_DIR/redis.log)"
}
stop_redis() {
  [ -n "$REDIS_PID" ] || return 0
  stop_pid "$REDIS_PID" 30
  rm -rf "$REDIS_DIR"
  REDIS_PID=
}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
# AOF rewrites Redis has run since it started (each forks a child that copies the whole dataset)
aof_rewrites() { rcli INFO persistence | sed -n 's/^aof_rewrites:\([0-9]*\).*/\1/p'; }

GW_PIDS=()
start_gateways() { # n [cpus [config]]
  local n=$1 cpus=${2:-$SRV_CPU} config=${3:-$CONFIG} i
  GW_PIDS=()
  for ((i = 0; i < n; i++)); do
    CROSSROADS_LISTEN="127.0.0.1:$GW_PORT" CROSSROADS_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
    CROSSROADS_LOG_LEVEL="$GW_LOG_LEVEL" ACME_WEBHOOK_SECRET=bench-acme-secret \
    SWIFT_WEBHOOK_SECRET=bench-swift-secret \
      taskset -c "$cpus" "$GW_BIN" serve --config "$config" >>"$RAW/gateway.log" 2>&1 &
    GW_PIDS+=($!)
    track $!
  done
  wait_http "http://127.0.0.1:$GW_PORT/readyz" || die "gateway not ready (log: $RAW/gateway.log)"
  sleep 0.3
  for i in "${GW_PIDS[@]}"; do kill -0 "$i" 2>/dev/null || die "gateway $i exited (log: $RAW/gateway.log)"; done
}
stop_gateways() { local p; for p in "${GW_PIDS[@]}"; do stop_pid "$p" 30; done; GW_PIDS=(); }

SRV_PID=
start_ref() { # a|b body_bytes
  if [ "$1" = a ]; then
    taskset -c "$SRV_CPU" "$B/bench_ref_http" --port "$REFA_PORT" --body-bytes "$2" 2>>"$RAW/ref.log" &
  else
    taskset -c "$SRV_CPU" "$B/bench_ref_redis" --port "$REFB_PORT" --redis "127.0.0.1:$REDIS_PORT" \
      --body-bytes "$2" 2>>"$RAW/ref.log" &
  fi
  SRV_PID=$!
  track "$SRV_PID"
  local port=$REFA_PORT
  [ "$1" = b ] && port=$REFB_PORT
  wait_http "http://127.0.0.1:$port/healthz" || die "ref ($1) did not start (log: $RAW/ref.log)"
  [ "$1" = b ] && rcli DEL 'bench:{ref}:sagas' >/dev/null # the probe above stored one
  return 0
}

DEST_PID=
start_dest() { # delay_ms
  stop_dest
  taskset -c "$DEST_CPU" "$B/bench_dest" --port "$DEST_PORT" --delay-ms "$1" 2>>"$RAW/dest.log" &
  DEST_PID=$!
  track "$DEST_PID"
  wait_http "http://127.0.0.1:$DEST_PORT/" || die "destination did not start"
}
stop_dest() { [ -n "$DEST_PID" ] && stop_pid "$DEST_PID" 5; DEST_PID=; return 0; }

# ---------------------------------------------------------------- load
# busy = user + system + steal. Left out: nice (processes at nice > 0, e.g. a background fuzzer,
# yield to the benchmark and mostly soak up its idle time) and irq/softirq (loopback traffic's
# softirq work is the benchmark's own but not charged to its processes). total = all up to steal.
sys_ticks() { awk '/^cpu /{printf "%d %d", $2+$4+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
our_ticks() { # every process this script runs besides wrk
  local p t=0
  for p in "${GW_PIDS[@]}" $SRV_PID $REDIS_PID $DEST_PID; do t=$((t + $(cpu_ticks "$p"))); done
  echo $t
}
KV= OTHER_CPU=0
run_wrk() { # script conns url tag [script args...] -> $KV, $OTHER_CPU
  local script=$1 conns=$2 url=$3 tag=$4
  shift 4
  local out="$RAW/wrk-$tag.txt" s0 s1 o0 o1 TIMEFORMAT='%U %S' wtag
  # The scripts build order numbers "PO-<tag>-<thread>-<n>", which the API caps at 64
  # characters: the whole tag (run id, section, fsync, mix, conns, server, rep) made them
  # longer once a run passed 9,999 requests (422s), so wrk gets the tag's checksum.
  wtag=$(printf '%s' "$tag" | cksum | cut -d' ' -f1)
  s0=$(sys_ticks); o0=$(our_ticks)
  { time taskset -c "$LOAD_CPU" wrk -t"$WRK_THREADS" -c"$conns" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" \
    -s "$BENCH_DIR/lua/$script.lua" "$url" -- "$wtag" "$@" >"$out" 2>&1 || true; } 2>"$out.cpu"
  s1=$(sys_ticks); o1=$(our_ticks)
  KV=$(sed -n 's/^BENCH_KV //p' "$out")
  [ -n "$KV" ] || { log "wrk gave no result (see $out)"; KV="requests=0"; }
  # CPU used by anything but this benchmark during the run, in % of one CPU (the machine has
  # $(nproc) x 100 %): the shared-machine noise indicator of every row.
  OTHER_CPU=$(awk -v s0="$s0" -v s1="$s1" -v o0="$o0" -v o1="$o1" -v hz="$CLK_TCK" -v n="$(nproc)" \
    -v w="$(awk '{print $1 + $2}' "$out.cpu" 2>/dev/null)" 'BEGIN {
      split(s0, a, " "); split(s1, b, " "); busy = b[1] - a[1]; tot = b[2] - a[2]
      other = busy - (o1 - o0) - w * hz; if (other < 0) other = 0
      printf "%.0f", (tot > 0 ? other / (tot / n) * 100 : 0) }')
}
kv() { local f; for f in $KV; do case $f in "$1="*) echo "${f#*=}"; return ;; esac; done; echo 0; }
json_num() { # json key -> number (first match; flat or nested by unique key name)
  sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p" <<<"$1" | head -1
}
json_obj() { # json key -> {...} (one level)
  sed -n "s/.*\"$2\":\({[^}]*}\).*/\1/p" <<<"$1" | head -1
}

saga_count() { "$B/bench_sagastat" --redis "127.0.0.1:$REDIS_PORT" --count-only | sed 's/[^0-9]//g'; }

# ---------------------------------------------------------------- report helpers
git_desc() {
  local d
  d="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/')"
  if [ "$SKIP_BUILD" = 1 ] || [ "$GW_BIN" != "$BUILD_DIR/crossroads" ]; then
    d="$d; gateway binary $GW_BIN of $(date -u -r "$GW_BIN" +%Y-%m-%dT%H:%MZ 2>/dev/null || echo '?') (not rebuilt)"
  fi
  echo "$d"
}
machine_info() {
  local cpu
  cpu=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: \`$(git_desc)\`"
  echo "- machine: $(nproc) CPUs, $cpu, $(awk '/MemTotal/{printf "%.0f GB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "- load average at start: $LOAD_AT_START"
  echo "- tools: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(redis-server --version | cut -d' ' -f1-3)"
  echo "- command: \`$COMMAND_LINE\`"
  echo "- pinning: server under test CPU $SRV_CPU; wrk/openloop CPU $LOAD_CPU; redis-server CPU $REDIS_CPU; its AOF-rewrite child CPU ${REWRITE_CPU:-$REDIS_CPU}; destination CPU $DEST_CPU"
}
write_section() { # name file: results/<name>.md, then rebuild latest.md
  mkdir -p "$RESULTS"
  cp "$2" "$RESULTS/$1.md"
  {
    echo "# Crossroads benchmark: latest results"
    echo
    echo "Generated by \`bench/run.sh\`; each section below is the latest run of its sub-command"
    echo "(see bench/README.md for what every figure means)."
    local s
    for s in intake latency saga idle scale stored flood profile; do
      [ -f "$RESULTS/$s.md" ] && { echo; cat "$RESULTS/$s.md"; }
    done
  } >"$RESULTS/latest.md"
  log "wrote $RESULTS/$1.md and $RESULTS/latest.md"
}

body_sizes() { # -> BODY_SIZE[mix]: the gateway's "pending" answer per mix (when BODY_BYTES=auto)
  declare -gA BODY_SIZE
  local m
  if [ "$BODY_BYTES" != auto ]; then
    for m in $MIXES stored; do BODY_SIZE[$m]=$BODY_BYTES; done
    BODY_SIZE[healthz]=15 # {"status":"ok"}
    return
  fi
  start_redis everysec
  start_gateways 1
  local h=(-H 'X-API-Key: demo-acme-key' -H 'X-Dest-Tenant-Name: swift-haul' -H 'Content-Type: application/json')
  local u="http://127.0.0.1:$GW_PORT/v1/order" n="PO-probe-1-1"
  local create="{\"order_number\":\"$n\",\"lines\":[{\"product\":{\"source_id\":\"ULSD\"},\"terminal\":{\"source_id\":\"HOU-T1\"},\"site\":{\"source_id\":\"ATX-S12\"},\"quantity\":8500,\"uom\":\"gal\"}],\"requested_delivery\":\"2026-05-12T14:00:00Z\"}"
  BODY_SIZE[create]=$(curl -s -o /dev/null -w '%{size_download}' "${h[@]}" "$u/create" -d "$create")
  BODY_SIZE[cancel]=$(curl -s -o /dev/null -w '%{size_download}' "${h[@]}" "$u/cancel" -d "{\"order\":{\"order_number\":\"$n\"},\"reason_code\":\"customer_request\"}")
  BODY_SIZE[reset]=$(curl -s -o /dev/null -w '%{size_download}' "${h[@]}" "$u/reset" -d "{\"order\":{\"order_number\":\"$n\"}}")
  BODY_SIZE[update_status]=$(curl -s -o /dev/null -w '%{size_download}' "${h[@]}" "$u/update_status" -d "{\"order\":{\"order_number\":\"$n\"},\"progress_status\":\"arrived_at_load\",\"location\":{\"source_id\":\"HOU-T1\"},\"eta\":\"2026-05-11T19:25:51.332Z\",\"assigned_to\":\"driver-17\"}")
  BODY_SIZE[mixed]=$(( (4 * BODY_SIZE[create] + 3 * BODY_SIZE[update_status] + 2 * BODY_SIZE[reset] + BODY_SIZE[cancel]) / 10 ))
  BODY_SIZE[stored]=${BODY_SIZE[update_status]}
  BODY_SIZE[healthz]=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$GW_PORT/healthz")
  stop_gateways
  stop_redis
  for m in "${!BODY_SIZE[@]}"; do
    [ "${BODY_SIZE[$m]:-0}" -ge 15 ] 2>/dev/null || die "could not measure the gateway's $m answer"
  done
  log "gateway answer sizes (bytes): $(for m in "${!BODY_SIZE[@]}"; do printf '%s=%s ' "$m" "${BODY_SIZE[$m]}"; done)"
}

# ---------------------------------------------------------------- intake
ROW_HDR="section	fsync	mix	conns	server	rep	rps	p50	p90	p99	max	non2xx	sockerr	requests	ok	sent	stored	inflight	check	hwm_mb	cpu_s	cpu_us_req	other_cpu_pct"
INTAKE_HDR="$ROW_HDR	redis_cpu_s	ok_rps"

# One measurement, repeated (up to NOISE_RETRIES times) while other processes on this shared
# machine used more than NOISE_MAX_PCT % of a CPU during it; the last attempt's row is kept.
measure_intake() {
  local attempt
  for ((attempt = 0; ; attempt++)); do
    measure_intake_once "$@"
    [ "$OTHER_CPU" -le "$NOISE_MAX_PCT" ] && return 0
    [ "$attempt" -lt "$NOISE_RETRIES" ] || { log "keeping it (other CPU ${OTHER_CPU}% after $NOISE_RETRIES retries)"; return 0; }
    sed -i '$ d' "$ROWS"
    log "other processes used ${OTHER_CPU}% of a CPU during that run: measuring it again in ${NOISE_WAIT}s"
    sleep "$NOISE_WAIT"
  done
}

# one measurement: server (gw|gwapi|refa|refb) fsync mix conns rep section -> a row in $ROWS
# (gwapi: the gateway with saga.workers false, the intake path alone)
measure_intake_once() {
  local server=$1 fsync=$2 mix=$3 conns=$4 rep=$5 section=$6
  local tag="$RUN_ID-$section-$fsync-$mix-$conns-$server-$rep" url pids=() script=$mix
  [ "$mix" = healthz ] && script=healthz
  case $server in
    gw|gwapi)
      start_redis "$fsync"
      if [ "$server" = gw ]; then start_gateways 1; else start_gateways 1 "$SRV_CPU" "$CONFIG_API"; fi
      pids=("${GW_PIDS[@]}")
      url="http://127.0.0.1:$GW_PORT/" ;;
    refb)
      start_redis "$fsync"
      start_ref b "${BODY_SIZE[$mix]}"
      pids=("$SRV_PID")
      url="http://127.0.0.1:$REFB_PORT/" ;;
    refa)
      start_ref a "${BODY_SIZE[$mix]}"
      pids=("$SRV_PID")
      url="http://127.0.0.1:$REFA_PORT/" ;;
  esac
  [ "$mix" = healthz ] && url="${url}healthz"
  local t0 t1 r0=0 r1=0
  t0=$(sum_ticks "${pids[@]}")
  [ -n "$REDIS_PID" ] && r0=$(cpu_ticks "$REDIS_PID")
  run_wrk "$script" "$conns" "$url" "$tag"
  t1=$(sum_ticks "${pids[@]}")
  [ -n "$REDIS_PID" ] && r1=$(cpu_ticks "$REDIS_PID")
  local hwm
  hwm=$(sum_kb VmHWM "${pids[@]}")
  sleep 0.5 # let intake writes already sent by wrk (no answer read) land
  local stored=- inflight=- check=-
  local ok sent req
  ok=$(kv ok); sent=$(kv sent); req=$(kv requests)
  if [ "$mix" != healthz ]; then
    case $server in
      gw|gwapi) stored=$(saga_count) ;;
      refb) stored=$(rcli XLEN 'bench:{ref}:sagas') ;;
    esac
    if [ "$stored" != - ]; then
      inflight=$((stored - ok))
      if [ "$stored" -ge "$ok" ] && { [ "$sent" -lt 0 ] || [ "$stored" -le "$sent" ]; }; then check=1; else check=0; fi
      [ "$check" = 1 ] || log "CHECK FAILED: $server $mix c=$conns: stored $stored, 2xx read $ok, sent $sent"
    fi
  fi
  case $server in
    gw|gwapi) stop_gateways; stop_redis ;;
    refb) stop_pid "$SRV_PID" 10; SRV_PID=; stop_redis ;;
    refa) stop_pid "$SRV_PID" 10; SRV_PID= ;;
  esac
  local cpu_s cpu_us redis_cpu=-
  [ "$server" = refa ] || redis_cpu=$(awk -v a="$r0" -v b="$r1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
  cpu_s=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
  cpu_us=$(awk -v c="$cpu_s" -v n="$req" 'BEGIN{printf "%.1f", (n > 0 ? c*1e6/n : 0)}')
  local sockerr=$(( $(kv sock_connect) + $(kv sock_read) + $(kv sock_write) + $(kv sock_timeout) ))
  local f=$fsync
  [ "$server" = refa ] && f=none
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$section" "$f" "$mix" "$conns" "$server" "$rep" "$(kv rps)" "$(kv p50)" "$(kv p90)" "$(kv p99)" \
    "$(kv max)" "$(kv non2xx)" "$sockerr" "$req" "$ok" "$sent" "$stored" "$inflight" "$check" \
    "$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')" "$cpu_s" "$cpu_us" "$OTHER_CPU" "$redis_cpu" \
    "$(awk -v n="$ok" -v d="$(kv duration_s)" 'BEGIN{printf "%.1f", (d > 0 ? n/d : 0)}')" >>"$ROWS"
  log "$section $f $mix c=$conns $server #$rep: $(kv rps) req/s p99 $(kv p99) ms non2xx $(kv non2xx) sockerr $sockerr stored $stored (2xx $ok, sent $sent) rss ${hwm}kB other-cpu ${OTHER_CPU}%"
}

sub_intake() {
  ROWS="$RAW/intake.tsv"
  echo "$INTAKE_HDR" >"$ROWS"
  INTAKE_STATE=running
  body_sizes
  for m in $MIXES healthz; do printf '%s %s; ' "$m" "${BODY_SIZE[$m]}"; done >"$RAW/sizes.txt"
  start_dest 0
  local first_fsync fsync mix conns rep server m
  first_fsync=$REFA_PASS
  local total=0
  for fsync in $FSYNCS; do for mix in $MIXES; do for conns in $CONNS; do
    total=$((total + (2 + GW_API) * REPS))
    [ "$fsync" = "$first_fsync" ] && total=$((total + REPS))
  done; done; done
  log "intake: $total runs of ${DURATION}s (+ /healthz); fsync {$FSYNCS}, mixes {$MIXES}, conns {$CONNS}, $REPS rep(s)"
  for fsync in $FSYNCS; do
    for mix in $MIXES; do
      for conns in $CONNS; do
        for ((rep = 1; rep <= REPS; rep++)); do
          # ref (a) has no Redis: measured once, with the first fsync variant's pass
          for server in gw $([ "$GW_API" = 1 ] && echo gwapi) refb $([ "$fsync" = "$first_fsync" ] && echo refa); do
            measure_intake "$server" "$fsync" "$mix" "$conns" "$rep" intake
          done
        done
      done
    done
  done
  for conns in $HEALTH_CONNS; do
    for ((rep = 1; rep <= REPS; rep++)); do
      for server in gw refa; do
        measure_intake "$server" "$first_fsync" healthz "$conns" "$rep" healthz
      done
    done
  done
  stop_dest
  INTAKE_STATE=done
  report_intake "" "$RAW"
}


# The intake report from raw rows: report_intake NOTE DIR... (rows of every DIR/intake.tsv; an
# empty NOTE for a complete run, else a remark put in the heading).
report_intake() {
  local note=$1
  shift
  local md="$WORK/intake.md" d sizes=
  ROWS="$WORK/intake-rows.tsv"
  echo "$INTAKE_HDR" >"$ROWS"
  for d in "$@"; do
    [ -f "$d/intake.tsv" ] || die "no $d/intake.tsv"
    tail -n +2 "$d/intake.tsv" >>"$ROWS"
    [ -z "$sizes" ] && [ -f "$d/sizes.txt" ] && sizes=$(cat "$d/sizes.txt")
  done
  [ -n "$note" ] && note=" - $note"
  {
    echo "## Intake (\`bench/run.sh intake\`)$note"
    echo
    machine_info
    if [ -n "$note" ]; then
      echo "- rows from: $*"
      echo "- measured at commit(s): $(for d in "$@"; do cat "$d/commit.txt" 2>/dev/null || echo unknown; done | sort -u | paste -sd, -) (the commit line above is the report's)"
    else
      echo "- runs: ${DURATION} s each, $REPS repetition(s); wrk $WRK_THREADS thread, timeout $WRK_TIMEOUT; gateway log level $GW_LOG_LEVEL"
    fi
    echo "- reference answer sizes (bytes, the gateway's own per mix): $sizes"
    echo
    echo "2xx/s (answers with status < 400 per second - an error answered fast does not count): median [min–max] over"
    echo "the repetitions; ratios are of the medians. p99 in ms (median). Rows with non-2xx answers: see Details."
    echo "ref (a) = HTTP ceiling (no Redis, fsync \"none\"), ref (b) = naive MULTI/XADD/HSET/EXEC per request."
    echo
    awk -F'\t' -f "$BENCH_DIR/ratio.awk" -v section=intake "$ROWS"
    echo
    echo "### /healthz against ref (a) answering the same body ({\"status\":\"ok\"})"
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v filter=section=healthz -v group="conns,server" \
      -v metrics="rps:%.0f:range:req/s,p50:%.2f:med:p50 ms,p99:%.2f:med:p99 ms,max:%.2f:max:max ms,non2xx:%d:sum:non-2xx,sockerr:%d:sum:sock err,hwm_mb:%.1f:max:peak RSS MB,cpu_us_req:%.1f:med:CPU µs/req,other_cpu_pct:%d:max:other CPU %" "$ROWS"
    echo
    awk -F'\t' -v s=healthz 'NR>1 && $1==s {k=$4; if ($5=="gw") g[k]=g[k]" "$7; else a[k]=a[k]" "$7}
      function med(str,   n, v, i, j, t) { n = split(str, v, " "); for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] + 0 > t + 0; j--) v[j + 1] = v[j]; v[j + 1] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
      END { for (k in g) if (k in a) printf "- /healthz gateway / ref (a) at %s connections: %.2f×\n", k, med(g[k]) / med(a[k]) }' "$ROWS" | sort -t' ' -k7n
    echo
    echo "### Details"
    echo
    echo "Latencies are medians over repetitions of wrk's percentiles (max: the largest seen). non-2xx: wrk's count of"
    echo "status >= 400. sagas stored: the gateway's saga hashes (ref (b): XLEN of its stream) after the run; check k/n:"
    echo "runs where 2xx read by wrk <= stored <= requests written by wrk (the difference, \"in flight\", is requests the"
    echo "server stored and answered after wrk stopped reading). CPU µs/req: the server's user+system CPU during the run"
    echo "divided by the responses wrk read; server/redis CPU s: their CPU time during the run. Peak RSS: VmHWM of the"
    echo "server process. other CPU %: CPU time used during the run by processes that are not part of this benchmark, in %"
    echo "of one CPU (of $(nproc) × 100 %) - the machine is shared, so this is the noise indicator of each row (max over reps)."
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v filter=section=intake -v group="fsync,mix,conns,server" \
      -v metrics="rps:%.0f:range:req/s,ok_rps:%.0f:med:2xx/s,p50:%.2f:med:p50 ms,p90:%.2f:med:p90 ms,p99:%.2f:med:p99 ms,max:%.2f:max:max ms,non2xx:%d:sum:non-2xx,sockerr:%d:sum:sock err,stored:%d:med:sagas stored,inflight:%d:max:in flight,check:%d:okof:check,hwm_mb:%.1f:max:peak RSS MB,cpu_us_req:%.1f:med:CPU µs/req,cpu_s:%.2f:med:server CPU s,redis_cpu_s:%.2f:med:redis CPU s,other_cpu_pct:%d:max:other CPU %" "$ROWS"
  } >"$md"
  write_section intake "$md"
  cat "$md"
}

# ---------------------------------------------------------------- latency (intake p99 at half the maximum rate)
# open loop at rate on port: a row "section" of $ROWS (Redis must be the one the server uses)
latency_row() { # section rep max rate port tag
  local out il
  out=$(taskset -c "$LOAD_CPU" "$B/bench_openloop" --port "$5" --rate "$4" --duration "$DURATION" \
    --conns "$OPENLOOP_CONNS" --kind "$LAT_MIX" --tag "$6")
  echo "$out" >>"$RAW/openloop.jsonl"
  il=$(json_obj "$out" intake_ms)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(json_num "$out" achieved_rps)" \
    "$(json_num "$il" p50)" "$(json_num "$il" p90)" "$(json_num "$il" p99)" "$(json_num "$il" max)" \
    "$(json_num "$out" non2xx)" "$(json_num "$out" errors)" "$(aof_rewrites)" >>"$ROWS"
  log "$1 #$2: open loop at $4 req/s (max $3): intake $il, AOF rewrites $(aof_rewrites)"
}

# the gateway (config $1) at half of its own maximum, then ref (b) offered the same rate
latency_pair() { # section config rep
  local max rate
  start_redis "$SAGA_FSYNC"
  start_gateways 1 "$SRV_CPU" "$2"
  run_wrk "$LAT_MIX" "$SAGA_CONNS" "http://127.0.0.1:$GW_PORT/" "$RUN_ID-latmax-$1-$3"
  max=$(kv rps)
  rate=$(awk -v m="$max" 'BEGIN{printf "%d", m/2}')
  [ "$rate" -ge 1 ] || die "no maximum rate measured"
  stop_gateways; stop_redis
  start_redis "$SAGA_FSYNC"
  start_gateways 1 "$SRV_CPU" "$2"
  latency_row "$1" "$3" "$max" "$rate" "$GW_PORT" "$RUN_ID-lat-$1-$3"
  stop_gateways; stop_redis
  # ref (b) offered the same rate: what one durable write per request costs here
  start_redis "$SAGA_FSYNC"
  start_ref b "${BODY_SIZE[$LAT_MIX]}"
  latency_row "$1 refb" "$3" "$max" "$rate" "$REFB_PORT" "$RUN_ID-latrefb-$1-$3"
  stop_pid "$SRV_PID" 10; SRV_PID=; stop_redis
}

sub_latency() {
  ROWS="$RAW/latency.tsv"
  echo "section	rep	max_rps	rate	achieved	p50	p90	p99	max	non2xx	errors	aof_rewrites" >"$ROWS"
  [ -n "${BODY_SIZE[$LAT_MIX]:-}" ] || body_sizes
  start_dest 0
  make_config 10000
  local rep
  for ((rep = 1; rep <= REPS; rep++)); do
    latency_pair latency "$CONFIG" "$rep"
    if [ "$GW_API" = 1 ]; then latency_pair "latency workers off" "$CONFIG_API" "$rep"; fi
  done
  stop_dest
  local md="$RAW/latency.md"
  {
    echo "## Intake latency at half the maximum rate (\`bench/run.sh latency\`)"
    echo
    machine_info
    echo "- mix $LAT_MIX, fsync $SAGA_FSYNC: maximum = wrk closed loop at $SAGA_CONNS connections for ${DURATION} s; then bench_openloop at half"
    echo "  that rate for ${DURATION} s on $OPENLOOP_CONNS keep-alive connections, latency from each request's scheduled send time."
    echo "  Row \"latency refb\": ref (b) (one MULTI/XADD/HSET/EXEC per request, same Redis set-up) offered the same rate."
    if [ "$GW_API" = 1 ]; then echo "  Rows \"latency workers off\": the same with the gateway's saga.workers false (its own maximum), and ref (b) at that rate."; fi
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v group="section" \
      -v metrics="max_rps:%.0f:range:max req/s,rate:%.0f:range:offered req/s,achieved:%.0f:range:achieved req/s,p50:%.2f:range:p50 ms,p90:%.2f:range:p90 ms,p99:%.2f:range:p99 ms,max:%.2f:max:max ms,non2xx:%d:sum:non-2xx,errors:%d:sum:errors,aof_rewrites:%d:range:AOF rewrites" "$ROWS"
  } >"$md"
  write_section latency "$md"
  cat "$md"
}

# ---------------------------------------------------------------- saga throughput and end to end
wait_sagas_done() { # until no unfinished saga (cr:{cr}:active empty), or timeout; echoes seconds waited
  local t0 n
  t0=$(date +%s.%N)
  while :; do
    n=$(rcli ZCARD 'cr:{cr}:active')
    [ "${n:-1}" -eq 0 ] && break
    if awk -v a="$t0" -v b="$(date +%s.%N)" -v t="$SAGA_DRAIN_TIMEOUT" 'BEGIN{exit !(b-a > t)}'; then
      log "sagas still unfinished after ${SAGA_DRAIN_TIMEOUT}s: $n"
      break
    fi
    sleep 0.5
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'
}

sub_saga() {
  ROWS="$RAW/saga.tsv"
  echo "section	rep	intake_rps	sagas	synced	other	span_s	sagas_per_s	synced_per_s	gw_p50	gw_p99	drain_s	rss_mb	cpu_s	rewrites" >"$ROWS"
  local E2E="$RAW/e2e.tsv"
  echo "section	rep	rate	achieved	intake_p50	intake_p99	e2e_p50	e2e_p90	e2e_p99	e2e_max	gw_p50	gw_p99	synced	not_synced	unfinished	rewrites" >"$E2E"
  start_dest "$DEST_DELAY_MS"
  make_config 10000
  local rep out st drain t0 t1
  local save_duration=$DURATION
  for ((rep = 1; rep <= REPS; rep++)); do
    # throughput: create as fast as wrk can for SAGA_DURATION, then until every saga is terminal
    start_redis "$SAGA_FSYNC"
    start_gateways 1
    t0=$(sum_ticks "${GW_PIDS[@]}")
    DURATION=$SAGA_DURATION
    run_wrk create "$SAGA_CONNS" "http://127.0.0.1:$GW_PORT/" "$RUN_ID-saga-$rep"
    DURATION=$save_duration
    drain=$(wait_sagas_done)
    t1=$(sum_ticks "${GW_PIDS[@]}")
    st=$("$B/bench_sagastat" --redis "127.0.0.1:$REDIS_PORT")
    echo "$st" >>"$RAW/sagastat.jsonl"
    local n synced gw
    n=$(json_num "$st" sagas); synced=$(json_num "$st" synced); synced=${synced:-0}
    gw=$(json_obj "$st" gw_ms)
    printf 'saga\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$(kv rps)" "$n" "$synced" "$((n - synced))" \
      "$(json_num "$st" span_s)" "$(json_num "$st" terminal_per_s)" "$(json_num "$st" synced_per_s)" \
      "$(json_num "$gw" p50)" "$(json_num "$gw" p99)" "$drain" \
      "$(awk -v k="$(sum_kb VmHWM "${GW_PIDS[@]}")" 'BEGIN{printf "%.1f", k/1024}')" \
      "$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')" "$(aof_rewrites)" >>"$ROWS"
    log "saga #$rep: intake $(kv rps) req/s; $st"
    stop_gateways; stop_redis

    # end to end at a fixed rate (open loop)
    start_redis "$SAGA_FSYNC"
    start_gateways 1
    out=$(taskset -c "$LOAD_CPU" "$B/bench_openloop" --port "$GW_PORT" --rate "$E2E_RATE" --duration "$E2E_DURATION" \
      --conns "$OPENLOOP_CONNS" --kind create --tag "$RUN_ID-e2e-$rep" --redis "127.0.0.1:$REDIS_PORT" \
      --e2e-timeout "$SAGA_DRAIN_TIMEOUT" --out "$RAW/e2e-$rep.csv")
    echo "$out" >>"$RAW/openloop.jsonl"
    local il el gl ss
    il=$(json_obj "$out" intake_ms); el=$(json_obj "$out" e2e_ms); gl=$(json_obj "$out" gw_ms); ss=$(json_obj "$out" statuses)
    printf 'e2e\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$E2E_RATE" "$(json_num "$out" achieved_rps)" \
      "$(json_num "$il" p50)" "$(json_num "$il" p99)" "$(json_num "$el" p50)" "$(json_num "$el" p90)" \
      "$(json_num "$el" p99)" "$(json_num "$el" max)" "$(json_num "$gl" p50)" "$(json_num "$gl" p99)" \
      "$(json_num "$ss" synced)" "$(( $(json_num "$out" scheduled) - $(json_num "$ss" synced) ))" \
      "$(json_num "$out" unfinished)" "$(aof_rewrites)" >>"$E2E"
    log "e2e #$rep: $out"
    stop_gateways; stop_redis
  done
  stop_dest
  local md="$RAW/saga.md"
  {
    echo "## Saga throughput and end-to-end latency (\`bench/run.sh saga\`)"
    echo
    machine_info
    echo "- destination answers every delivery after ${DEST_DELAY_MS} ms; fsync $SAGA_FSYNC; every saga is a create (two lines) delivered to swift-haul's webhook"
    echo
    echo "Throughput: wrk posts creates at $SAGA_CONNS connections for ${SAGA_DURATION} s, then the run waits until no saga is"
    echo "unfinished. sagas/s = terminal sagas / (last finished_at - first created_at); synced/s counts only synced ones."
    echo "gw ms: created_at -> finished_at inside the gateway (includes queueing behind the backlog)."
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v group="section" \
      -v metrics="intake_rps:%.0f:range:intake req/s,sagas:%d:med:sagas,synced:%d:med:synced,other:%d:sum:not synced,span_s:%.1f:range:span s,sagas_per_s:%.0f:range:sagas/s,synced_per_s:%.0f:range:synced/s,gw_p50:%.0f:med:gw p50 ms,gw_p99:%.0f:med:gw p99 ms,drain_s:%.1f:med:drain s after wrk,rss_mb:%.1f:max:peak RSS MB,cpu_s:%.1f:med:CPU s,rewrites:%d:range:AOF rewrites" "$ROWS"
    echo
    echo "End to end at a fixed ${E2E_RATE} req/s (open loop, bench_openloop, ${E2E_DURATION} s, creates): from each request's"
    echo "scheduled send time to its saga's finished_at (synced sagas only); intake = the HTTP answer."
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v group="section,rate" \
      -v metrics="achieved:%.0f:range:achieved req/s,intake_p50:%.2f:med:intake p50 ms,intake_p99:%.2f:range:intake p99 ms,e2e_p50:%.1f:range:e2e p50 ms,e2e_p90:%.1f:med:e2e p90 ms,e2e_p99:%.1f:range:e2e p99 ms,e2e_max:%.1f:max:e2e max ms,gw_p99:%.1f:med:gw p99 ms,synced:%d:med:synced,not_synced:%d:sum:not synced,unfinished:%d:sum:unfinished,rewrites:%d:range:AOF rewrites" "$E2E"
    echo
    echo "Each repetition (Redis rewrites its AOF in a forked child whenever the file has doubled; the"
    echo "child runs on CPU ${REWRITE_CPU:-$REDIS_CPU}, see bench/README.md, \"Pinning\"):"
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v group="rep" \
      -v metrics="intake_p99:%.2f:med:intake p99 ms,e2e_p50:%.1f:med:e2e p50 ms,e2e_p99:%.1f:med:e2e p99 ms,e2e_max:%.1f:med:e2e max ms,rewrites:%d:med:AOF rewrites" "$E2E"
  } >"$md"
  write_section saga "$md"
  cat "$md"
}

# ---------------------------------------------------------------- idle connections
sub_idle() {
  ROWS="$RAW/idle.tsv"
  echo "section	rep	conns	ok	failed	rss_before_mb	rss_mb	hwm_mb	kb_per_conn	connect_s" >"$ROWS"
  local need=$((IDLE_CONNS + 1024)) hard
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null || log "cannot raise the hard fd limit ($hard) to $need"
  fi
  ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  log "idle: fd limit $(ulimit -n)"
  make_config $((IDLE_CONNS + 1000))
  start_dest 0
  local rep before out pid i
  for ((rep = 1; rep <= REPS; rep++)); do
    start_redis "$SAGA_FSYNC"
    start_gateways 1
    before=$(proc_kb "${GW_PIDS[0]}" VmRSS)
    out="$RAW/idle-$rep.jsonl"
    taskset -c "$LOAD_CPU" "$B/bench_idle_conns" --port "$GW_PORT" --conns "$IDLE_CONNS" >"$out" 2>>"$RAW/idle.log" &
    pid=$!
    track "$pid"
    for ((i = 0; i < 1200; i++)); do grep -q '"ready"' "$out" 2>/dev/null && break; sleep 0.1; done
    grep -q '"ready"' "$out" || log "idle_conns not ready after 120 s"
    sleep "$IDLE_SETTLE"
    local rss hwm ready
    rss=$(proc_kb "${GW_PIDS[0]}" VmRSS); hwm=$(proc_kb "${GW_PIDS[0]}" VmHWM)
    ready=$(grep '"ready"' "$out" | head -1)
    stop_pid "$pid" 10
    local ok
    ok=$(json_num "$ready" ok)
    printf 'idle\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$IDLE_CONNS" "$ok" "$(json_num "$ready" failed)" \
      "$(awk -v k="$before" 'BEGIN{printf "%.1f", k/1024}')" "$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" \
      "$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')" \
      "$(awk -v a="$before" -v b="$rss" -v n="${ok:-0}" 'BEGIN{printf "%.2f", (n > 0 ? (b-a)/n : 0)}')" \
      "$(json_num "$ready" seconds)" >>"$ROWS"
    log "idle #$rep: $ready; gateway RSS ${before} kB -> ${rss} kB (HWM ${hwm} kB)"
    stop_gateways; stop_redis
  done
  stop_dest
  local md="$RAW/idle.md"
  {
    echo "## Idle keep-alive connections (\`bench/run.sh idle\`)"
    echo
    machine_info
    echo "- bench_idle_conns opens $IDLE_CONNS connections (256 connecting at a time), sends one GET /healthz on each and holds"
    echo "  them; the gateway's VmRSS is read ${IDLE_SETTLE} s after the last answer (config: max_connections $((IDLE_CONNS + 1000)), fd limit $(ulimit -n))."
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v group="conns" \
      -v metrics="ok:%d:med:answered,failed:%d:sum:failed,rss_before_mb:%.1f:med:RSS before MB,rss_mb:%.1f:range:RSS held MB,hwm_mb:%.1f:max:peak RSS MB,kb_per_conn:%.2f:med:KB/conn,connect_s:%.2f:med:connect+answer s" "$ROWS"
  } >"$md"
  write_section idle "$md"
  cat "$md"
}

# ---------------------------------------------------------------- processes sharing the port
sub_scale() {
  ROWS="$RAW/scale.tsv"
  echo "$ROW_HDR	procs" >"$ROWS"
  make_config 10000
  start_dest 0
  local n rep tag t0 t1 hwm
  for n in $SCALE_PROCS; do
    for ((rep = 1; rep <= REPS; rep++)); do
      start_redis "$SCALE_FSYNC"
      start_gateways "$n" "$SCALE_GW_CPUS"
      tag="$RUN_ID-scale-$n-$rep"
      t0=$(sum_ticks "${GW_PIDS[@]}")
      run_wrk "$SCALE_MIX" "$SCALE_CONNS" "http://127.0.0.1:$GW_PORT/" "$tag"
      t1=$(sum_ticks "${GW_PIDS[@]}")
      hwm=$(sum_kb VmHWM "${GW_PIDS[@]}")
      sleep 0.5
      local stored ok sent check
      stored=$(saga_count); ok=$(kv ok); sent=$(kv sent)
      if [ "$stored" -ge "$ok" ] && [ "$stored" -le "$sent" ]; then check=1; else check=0; fi
      local cpu_s
      cpu_s=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
      printf 'scale\t%s\t%s\t%s\tgw\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$SCALE_FSYNC" "$SCALE_MIX" "$SCALE_CONNS" "$rep" "$(kv rps)" "$(kv p50)" "$(kv p90)" "$(kv p99)" "$(kv max)" \
        "$(kv non2xx)" "$(( $(kv sock_connect) + $(kv sock_read) + $(kv sock_write) + $(kv sock_timeout) ))" \
        "$(kv requests)" "$ok" "$sent" "$stored" "$((stored - ok))" "$check" \
        "$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')" "$cpu_s" \
        "$(awk -v c="$cpu_s" -v r="$(kv requests)" 'BEGIN{printf "%.1f", (r > 0 ? c*1e6/r : 0)}')" "$OTHER_CPU" "$n" >>"$ROWS"
      log "scale $n proc #$rep: $(kv rps) req/s p99 $(kv p99) ms stored $stored (2xx $ok, sent $sent)"
      stop_gateways; stop_redis
    done
  done
  stop_dest
  local md="$RAW/scale.md"
  {
    echo "## Gateway processes sharing one port (\`bench/run.sh scale\`)"
    echo
    machine_info
    echo "- N gateway processes on 127.0.0.1:$GW_PORT (SO_REUSEPORT), one redis-server (fsync $SCALE_FSYNC), all gateways pinned to CPU(s) $SCALE_GW_CPUS;"
    echo "  wrk $SCALE_MIX at $SCALE_CONNS connections, ${DURATION} s. Peak RSS and CPU are summed over the processes."
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v group="procs" \
      -v metrics="rps:%.0f:range:req/s,p50:%.2f:med:p50 ms,p99:%.2f:med:p99 ms,max:%.2f:max:max ms,non2xx:%d:sum:non-2xx,sockerr:%d:sum:sock err,check:%d:okof:saga check,hwm_mb:%.1f:max:peak RSS MB (sum),cpu_us_req:%.1f:med:CPU µs/req,other_cpu_pct:%d:max:other CPU %" "$ROWS"
  } >"$md"
  write_section scale "$md"
  cat "$md"
}

# ---------------------------------------------------------------- stored orders
# Preload N orders of acme-supply (sent to swift-haul) directly into Redis, in the layout of
# src/store_keys.h (order hash, the origin's and the destination's order-number indexes and
# the destination's own reference), as if each had been created and synced.
PRELOAD_LUA='
local P = "cr:{cr}:"
local from, to, now = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local lines = "[{\"product\":{\"source_id\":\"ULSD\"},\"quantity\":8500.0,\"site\":{\"source_id\":\"ATX-S12\"},\"terminal\":{\"source_id\":\"HOU-T1\"},\"uom\":\"gal\"}]"
for i = from, to - 1 do
  local oid = string.format("5e%022x", i)
  local num = "ST-" .. i
  redis.call("HSET", P .. "order:" .. oid, "order_id", oid, "origin_tenant", "acme-supply",
    "destination_tenant", "swift-haul", "order_number", num, "counterparty_order_number", "SW-" .. num,
    "status", "synced", "progress_status", "no_progress", "canceled", "0", "accepted", "1",
    "lines", lines, "requested_delivery", "2026-05-12T14:00:00.000Z", "notes", "",
    "bols", "[]", "drops", "[]", "created_at", now, "updated_at", now)
  redis.call("SET", P .. "ordernum:acme-supply:" .. num, oid)
  redis.call("SET", P .. "ordernum_in:swift-haul:" .. num, oid)
  redis.call("SET", P .. "orderref:swift-haul:SW-" .. num, oid)
end
return to - from
'
wait_aof_rewrite() { # until Redis has no AOF rewrite running or scheduled (at most 10 min)
  local i t0=$SECONDS
  for ((i = 0; i < 6000; i++)); do
    rcli INFO persistence | grep -q -e '^aof_rewrite_in_progress:1' -e '^aof_rewrite_scheduled:1' || break
    sleep 0.1
  done
  [ $((SECONDS - t0)) -lt 1 ] || log "stored: waited $((SECONDS - t0)) s for an AOF rewrite to finish"
}

sub_stored() {
  ROWS="$RAW/stored.tsv"
  echo "$ROW_HDR	orders	picked	used_memory_mb	redis_us_saga	drain_s" >"$ROWS"
  make_config 10000
  start_dest 0
  # One Redis per order count, all loaded first; the repetitions then go through the cases in
  # turn, forward and then backward (ABBA), so drift on this shared machine falls on every case
  # alike instead of on whichever was measured last.
  local -A s_port=() s_pid=() s_dir=() s_mem=()
  local n c pick k=0 rep from batch=20000 now before t0 t1 r0 r1 hwm order counts
  counts=$(for c in $STORED_CASES; do echo "${c%%:*}"; done | awk '!seen[$0]++' | tr '\n' ' ')
  now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
  for n in $counts; do
    REDIS_PORT=$((PORT_BASE + 5 + k)); k=$((k + 1))
    port_free "$REDIS_PORT" || die "port $REDIS_PORT is in use (set BENCH_PORT_BASE)"
    start_redis "$STORED_FSYNC"
    log "stored: preloading $n orders (Redis on port $REDIS_PORT)"
    for ((from = 0; from < n; from += batch)); do
      rcli EVAL "$PRELOAD_LUA" 0 "$from" "$(( from + batch < n ? from + batch : n ))" "$now" >/dev/null
    done
    s_mem[$n]=$(rcli INFO memory | awk -F: '/^used_memory:/{printf "%.0f", $2/1048576}')
    log "stored: $n orders loaded (${s_mem[$n]} MB used by Redis)"
    # What this compares is the stored orders, not Redis's AOF upkeep: the preload's AOF is
    # rewritten (compacted) before measuring, and automatic rewrites are off while measuring.
    # Otherwise a rewrite - a fork writing the whole data set on the core Redis and wrk share -
    # lands in some repetitions and not others (1.8 GB for 1,000,000 orders; every 64 MB of
    # growth for 1,000).
    rcli BGREWRITEAOF >/dev/null
    rcli CONFIG SET auto-aof-rewrite-percentage 0 >/dev/null
    wait_aof_rewrite # the rewrite child runs on the gateway's CPU: not while another N measures
    s_port[$n]=$REDIS_PORT s_pid[$n]=$REDIS_PID s_dir[$n]=$REDIS_DIR
  done
  for ((rep = 1; rep <= REPS; rep++)); do
    order=$STORED_CASES
    [ $((rep % 2)) = 1 ] || order=$(printf '%s\n' $STORED_CASES | tac | tr '\n' ' ')
    for c in $order; do
      n=${c%%:*} pick=${c#*:}
      REDIS_PORT=${s_port[$n]} REDIS_PID=${s_pid[$n]} REDIS_DIR=${s_dir[$n]}
      wait_aof_rewrite
      start_gateways 1
      before=$(saga_count)
      t0=$(sum_ticks "${GW_PIDS[@]}"); r0=$(cpu_ticks "$REDIS_PID")
      run_wrk stored "$STORED_CONNS" "http://127.0.0.1:$GW_PORT/" "$RUN_ID-stored-$n-$pick-$rep" "$pick"
      t1=$(sum_ticks "${GW_PIDS[@]}")
      hwm=$(sum_kb VmHWM "${GW_PIDS[@]}")
      # Redis's CPU from the start of the run until every saga it stored has finished, per saga:
      # the work each request costs Redis, intake and saga, whatever the rate wrk reached. The
      # saga count comes after it: counting SCANs every key (4 M with 1,000,000 orders).
      local stored ok sent check cpu_s drain
      sleep 0.5 # requests wrk sent last are still being stored
      drain=$(wait_sagas_done)
      r1=$(cpu_ticks "$REDIS_PID")
      stored=$(( $(saga_count) - before )); ok=$(kv ok); sent=$(kv sent)
      if [ "$stored" -ge "$ok" ] && [ "$stored" -le "$sent" ]; then check=1; else check=0; fi
      cpu_s=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
      printf 'stored\t%s\tupdate_status\t%s\tgw\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$STORED_FSYNC" "$STORED_CONNS" "$rep" "$(kv rps)" "$(kv p50)" "$(kv p90)" "$(kv p99)" "$(kv max)" \
        "$(kv non2xx)" "$(( $(kv sock_connect) + $(kv sock_read) + $(kv sock_write) + $(kv sock_timeout) ))" \
        "$(kv requests)" "$ok" "$sent" "$stored" "$((stored - ok))" "$check" \
        "$(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}')" "$cpu_s" \
        "$(awk -v c="$cpu_s" -v r="$(kv requests)" 'BEGIN{printf "%.1f", (r > 0 ? c*1e6/r : 0)}')" "$OTHER_CPU" \
        "$n" "$pick" "${s_mem[$n]}" \
        "$(awk -v a="$r0" -v b="$r1" -v hz="$CLK_TCK" -v s="$stored" 'BEGIN{printf "%.1f", (s > 0 ? (b-a)/hz*1e6/s : 0)}')" \
        "$drain" >>"$ROWS"
      log "stored $n (picking from $pick) #$rep: $(kv rps) req/s p99 $(kv p99) ms stored $stored (2xx $ok, sent $sent), drained in $drain s"
      stop_gateways
    done
  done
  for n in $counts; do
    REDIS_PORT=${s_port[$n]} REDIS_PID=${s_pid[$n]} REDIS_DIR=${s_dir[$n]}
    stop_redis
  done
  REDIS_PORT=$((PORT_BASE + 4))
  stop_dest
  local md="$RAW/stored.md"
  {
    echo "## Intake with many stored orders (\`bench/run.sh stored\`)"
    echo
    machine_info
    echo "- N orders preloaded into Redis (order hash + number indexes, the layout of src/store_keys.h), one Redis per N, all"
    echo "  loaded before measuring; wrk posts update_status for a random one of the first \"picked\" of them at $STORED_CONNS connections,"
    echo "  ${DURATION} s; fsync $STORED_FSYNC. The repetitions go through the cases forward, then backward (ABBA). The gateway restarts per repetition; Redis keeps"
    echo "  the orders (and the sagas of earlier repetitions, drained before the next). The preload's AOF is rewritten before"
    echo "  measuring and automatic AOF rewrites are off while measuring (auto-aof-rewrite-percentage 0). Redis µs/saga: Redis's"
    echo "  CPU from the start of the run until all its sagas finished, divided by the sagas it stored."
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v group="orders,picked" -v versus="rps,redis_us_saga" \
      -v metrics="used_memory_mb:%d:med:Redis MB after preload,rps:%.0f:range:req/s,p50:%.2f:med:p50 ms,p99:%.2f:med:p99 ms,max:%.2f:max:max ms,non2xx:%d:sum:non-2xx,check:%d:okof:saga check,cpu_us_req:%.1f:med:gateway CPU µs/req,redis_us_saga:%.1f:range:Redis CPU µs/saga,drain_s:%.1f:med:drain s,other_cpu_pct:%d:max:other CPU %" "$ROWS"
  } >"$md"
  write_section stored "$md"
  cat "$md"
}

# ---------------------------------------------------------------- a flood of refused requests
gw_metric() { # name -> value summed over the gateway's /metrics lines of that name (0 if none)
  curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%d", s}'
}

sub_flood() {
  ROWS="$RAW/flood.tsv"
  echo "section	rep	flood_rps	achieved	p50	p90	p99	max	non2xx	errors	timeouts	paused" >"$ROWS"
  start_dest 0
  make_config $((FLOOD_CONNS + 1000))
  local rep section out il wout flood_rps t0 p0 wpid
  for ((rep = 1; rep <= REPS; rep++)); do
    for section in quiet flood; do
      start_redis always
      start_gateways 1
      t0=$(gw_metric crossroads_redis_timeouts_total); p0=$(gw_metric crossroads_http_reads_paused_total)
      flood_rps=0 wpid=
      if [ "$section" = flood ]; then
        wout="$RAW/wrk-flood-$rep.txt"
        taskset -c "$LOAD_CPU" wrk -t1 -c"$FLOOD_CONNS" -d"$((DURATION + 2))s" --timeout "$WRK_TIMEOUT" \
          -s "$BENCH_DIR/lua/refused.lua" "http://127.0.0.1:$GW_PORT/" -- "$rep" >"$wout" 2>&1 &
        wpid=$!
        track "$wpid"
        sleep 1
      fi
      out=$(taskset -c "$LOAD_CPU" "$B/bench_openloop" --port "$GW_PORT" --rate "$FLOOD_RATE" --duration "$DURATION" \
        --conns 8 --kind create --tag "$RUN_ID-$section-$rep")
      echo "$out" >>"$RAW/openloop.jsonl"
      if [ -n "$wpid" ]; then
        wait "$wpid" || true
        untrack "$wpid"
        flood_rps=$(sed -n 's/^BENCH_KV .*rps=\([0-9.]*\).*/\1/p' "$wout")
      fi
      il=$(json_obj "$out" intake_ms)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$section" "$rep" "${flood_rps:-0}" \
        "$(json_num "$out" achieved_rps)" "$(json_num "$il" p50)" "$(json_num "$il" p90)" "$(json_num "$il" p99)" \
        "$(json_num "$il" max)" "$(json_num "$out" non2xx)" "$(json_num "$out" errors)" \
        "$(($(gw_metric crossroads_redis_timeouts_total) - t0))" "$(($(gw_metric crossroads_http_reads_paused_total) - p0))" >>"$ROWS"
      log "flood #$rep $section: refused $flood_rps req/s; valid creates: $il"
      stop_gateways; stop_redis
    done
  done
  stop_dest
  local md="$RAW/flood.md"
  {
    echo "## Valid creates beside a flood of refused requests (\`bench/run.sh flood\`)"
    echo
    machine_info
    echo "- bench_openloop: $FLOOD_RATE creates/s for ${DURATION} s on 8 keep-alive connections, latency from each request's"
    echo "  scheduled send time; row \"flood\": meanwhile wrk sends \`lua/refused.lua\` (422, answered without Redis) on"
    echo "  $FLOOD_CONNS connections as fast as it is answered; row \"quiet\": without it. fsync always."
    echo "- timeouts: the gateway's crossroads_redis_timeouts_total during the run; paused: crossroads_http_reads_paused_total."
    echo
    awk -F'\t' -f "$BENCH_DIR/mdtable.awk" -v group="section" \
      -v metrics="flood_rps:%.0f:range:refused req/s,achieved:%.0f:range:creates/s,p50:%.2f:range:p50 ms,p90:%.2f:range:p90 ms,p99:%.2f:range:p99 ms,max:%.2f:max:max ms,non2xx:%d:sum:non-2xx,errors:%d:sum:errors,timeouts:%d:sum:Redis timeouts,paused:%d:sum:reads paused" "$ROWS"
  } >"$md"
  write_section flood "$md"
  cat "$md"
}

# ---------------------------------------------------------------- profile
# Redis's side of the profile run (PROFILE_REDIS=1): its instructions per saga over the same
# window, and its functions with the most instructions, self and inclusive. Debian's
# redis-server carries no debug symbols, but its dynamic symbol table names its functions.
profile_redis_md() { # callgrind dump, sagas
  local rout=$1 n=$2 rtotal
  callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$rout" >"$RAW/redis-inclusive.txt"
  callgrind_annotate --auto=no --threshold=100 "$rout" >"$RAW/redis-self.txt"
  rtotal=$(awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1; exit}' "$RAW/redis-self.txt")
  echo
  echo "**$(awk -v t="$rtotal" -v n="$n" 'BEGIN{printf "%d", t / n}') Redis instructions per ${what:-create saga}** ($rtotal in all, the same window; \`redis-server\` under callgrind beside the gateway, the same pinning)"
  echo
  local which
  for which in inclusive self; do
    echo "| Redis function ($which) | instructions per ${unit:-saga} | % |"
    echo "|---|---:|---:|"
    awk -v n="$n" -v w="$which" '/^ *[0-9,]+ +\( *[0-9.]+%\) +[^ ]+:[a-zA-Z_0(]/ {
        c = $1; gsub(",", "", c)
        match($0, /\( *[0-9.]+%\)/); pct = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", pct)
        f = $(NF - 1); sub(/^.*:/, "", f); o = $NF; gsub(/^\[.*\/|\]$/, "", o)
        if (f ~ /^(main|main\)|__libc_start_main.*|0x0*1ab70)$/ || seen[f]++) next # the start-up frames
        if (f ~ /^0x/ && w == "inclusive") next # unnamed frames: the event loop, Lua inside
        if (f ~ /^0x/) f = f " (" o ", no symbol)"
        printf "| `%s` | %d | %s |\n", f, c / n, pct; if (++k == 20) exit }' "$RAW/redis-$which.txt"
    echo
  done
}

# The gateway under valgrind --tool=callgrind: PROFILE_SAGAS creates sent open loop, each saga
# followed to "synced" (destination 0 ms), counted from the gateway being ready to the last
# saga synced. Instructions hardly depend on the machine's load (within 1-2 %), so two binaries
# compare to a few per cent (GW_BIN=old bench/run.sh profile and the new one, alternately).
sub_profile() {
  if ! command -v callgrind_annotate >/dev/null; then
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    log "installing valgrind (apt)"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind >/dev/null
  fi
  command -v callgrind_annotate >/dev/null || die "valgrind (callgrind) not found: apt-get install valgrind"
  local out="$RAW/callgrind.out" n=$PROFILE_SAGAS vp i synced rout= config what unit
  start_dest 0
  make_config 10000
  # PROFILE_WORKERS=0: the gateway with saga.workers false, counted until the last answer: the
  # intake path alone (the sagas stay in the stream)
  config=$CONFIG what="create saga" unit=saga
  [ "$PROFILE_WORKERS" = 1 ] || { config=$CONFIG_API; what="create request (intake alone, saga workers off)"; unit=request; }
  if [ "$PROFILE_REDIS" = 1 ]; then
    # %p: a forked child (an AOF rewrite) writes its own file instead of over the server's
    REDIS_WRAP=(valgrind --tool=callgrind --callgrind-out-file="$RAW/redis.callgrind.%p")
  fi
  start_redis always
  REDIS_WRAP=()
  CROSSROADS_LISTEN="127.0.0.1:$GW_PORT" CROSSROADS_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
  CROSSROADS_LOG_LEVEL="$GW_LOG_LEVEL" ACME_WEBHOOK_SECRET=bench-acme-secret \
  SWIFT_WEBHOOK_SECRET=bench-swift-secret \
    taskset -c "$SRV_CPU" valgrind --tool=callgrind --callgrind-out-file="$out" \
      "$GW_BIN" serve --config "$config" >>"$RAW/gateway.log" 2>&1 &
  vp=$!
  track "$vp"
  wait_http "http://127.0.0.1:$GW_PORT/readyz" 600 || die "gateway not ready under valgrind (log: $RAW/gateway.log)"
  sleep 1
  callgrind_control -z "$vp" >/dev/null
  if [ "$PROFILE_REDIS" = 1 ]; then callgrind_control -z "$REDIS_PID" >/dev/null; fi
  taskset -c "$LOAD_CPU" "$B/bench_openloop" --port "$GW_PORT" --rate "$PROFILE_RATE" \
    --duration "$(awk -v n="$n" -v r="$PROFILE_RATE" 'BEGIN{printf "%.3f", n / r}')" --kind create \
    >"$RAW/openloop.json" 2>>"$RAW/openloop.log" || die "bench_openloop failed"
  if [ "$PROFILE_WORKERS" = 1 ]; then
    for ((i = 0; i < 1200; i++)); do
      synced=$(rcli ZCARD 'cr:{cr}:idx:status:synced')
      [ "${synced:-0}" -ge "$n" ] && break
      sleep 0.5
    done
    [ "${synced:-0}" -eq "$n" ] || die "$synced of $n sagas synced (log: $RAW/gateway.log)"
  else
    synced=$(rcli ZCARD 'cr:{cr}:idx:status:pending')
    [ "${synced:-0}" -eq "$n" ] || die "$synced of $n requests stored (log: $RAW/gateway.log)"
  fi
  callgrind_control -d "$vp" >/dev/null
  for ((i = 0; i < 100; i++)); do [ -s "$out.1" ] && break; sleep 0.1; done
  if [ "$PROFILE_REDIS" = 1 ]; then
    rout="$RAW/redis.callgrind.$REDIS_PID.1"
    callgrind_control -d "$REDIS_PID" >/dev/null
    for ((i = 0; i < 100; i++)); do [ -s "$rout" ] && break; sleep 0.1; done
    [ -s "$rout" ] || die "no callgrind dump from Redis ($rout)"
    rcli INFO commandstats >"$RAW/redis-commandstats.txt"
  fi
  stop_pid "$vp" 60
  untrack "$vp"
  stop_redis
  stop_dest
  callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$out.1" >"$RAW/inclusive.txt"
  callgrind_annotate --auto=no --threshold=100 "$out.1" >"$RAW/self.txt"
  local total
  total=$(awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1; exit}' "$RAW/self.txt")
  local md="$RAW/profile.md"
  {
    echo "## The gateway and Redis under callgrind (\`bench/run.sh profile\`)"
    echo
    machine_info
    if [ "$PROFILE_WORKERS" = 1 ]; then
      echo "- $n creates at $PROFILE_RATE/s (bench_openloop), each saga followed to synced (webhook destination, 0 ms); callgrind counts from the gateway being ready to the last saga synced"
    else
      echo "- $n creates at $PROFILE_RATE/s (bench_openloop) to the gateway with saga.workers false; callgrind counts from the gateway being ready to the last answer (every one stored, none run)"
    fi
    echo "- callgrind output: \`$out.1\`; \`callgrind_annotate\` tables in the same folder"
    echo
    echo "**$(awk -v t="$total" -v n="$n" 'BEGIN{printf "%d", t / n}') instructions per $what** ($total in all)"
    echo
    echo "| function (src/) | instructions per $unit, inclusive | % |"
    echo "|---|---:|---:|"
    awk -v n="$n" '/src\/[a-z_\/]*\.c:[a-zA-Z_]/ {
        c = $1; gsub(",", "", c)
        match($0, /\( *[0-9.]+%\)/); pct = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", pct)
        match($0, /src\/[a-z_\/]*\.c:[a-zA-Z_.0-9]+/); f = substr($0, RSTART + 4, RLENGTH - 4)
        if (f ~ /^(main\.c|app\.c:app_serve)/ || seen[f]++) next
        printf "| `%s` | %d | %s |\n", f, c / n, pct; if (++k == 25) exit }' "$RAW/inclusive.txt"
    if [ -n "$rout" ]; then profile_redis_md "$rout" "$n"; fi
  } >"$md"
  write_section profile "$md"
  cat "$md"
}

# ---------------------------------------------------------------- main
WORK=$(mktemp -d -t crbench.XXXXXX)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$SUB" = report ]; then
  # bench/run.sh report RAWDIR...: the intake report again, from the rows of one or more runs
  # (e.g. an interrupted run and the one that measured the rest)
  shift
  [ $# -ge 1 ] || die "usage: $0 report RAWDIR..."
  report_intake "merged from $# run(s)" "$@"
  exit 0
fi
RAW="$RESULTS/raw/$(date +%Y%m%d-%H%M%S)-$SUB"
mkdir -p "$RAW"
git_desc >"$RAW/commit.txt"
ensure_tools
for p in "$GW_PORT" "$REFA_PORT" "$REFB_PORT" "$DEST_PORT" "$REDIS_PORT"; do
  port_free "$p" || die "port $p is in use (set BENCH_PORT_BASE)"
done
build
[ -x "$GW_BIN" ] || die "gateway binary $GW_BIN not found"
make_config 10000
log "raw results and logs: $RAW"
case "$SUB" in
  intake) sub_intake ;;
  latency) sub_latency ;;
  saga) sub_saga ;;
  idle) sub_idle ;;
  scale) sub_scale ;;
  stored) sub_stored ;;
  flood) sub_flood ;;
  profile) sub_profile ;;
  all) sub_intake; sub_latency; sub_saga; sub_idle; sub_scale; sub_stored ;;
esac
log "done"

#!/usr/bin/env bash
# The same trace-driven, open-loop load four ways in one run, with warmgate-load: the emulator
# directly, nginx as a plain reverse proxy in front of it, warmgate with warming off, and
# warmgate with routing and warming on. Each way gets a fresh emulator at the same time scale,
# so cold starts are comparable. Prints one markdown table (percentiles, cold starts, added
# latency against direct, CPU per request and peak resident memory of the process under test)
# and leaves each way's report and plots under the output directory.
#
# Usage: loadtest/trace-compare.sh [WORKLOAD OPTIONS...]
#   WORKLOAD OPTIONS are warmgate-load's (--trace, --functions, --pick, --from-minute,
#   --minutes, --time-scale, --seed, or --rate); the default is 2 h of the Azure Functions 2019
#   500-function sample (its first 100 functions) at 60x, the first hour as the warm-up.
# Environment: OUT (default target/trace-compare), TRACES (default /work/shared/traces),
#   PORT_BASE (default 19400: ports +1 to +4),
#   INIT (small or model-loading, default model-loading), WARMUP_MINUTES (default 60).
# Needs a release build (it runs one) and installs nginx from Debian if it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

traces="${TRACES:-/work/shared/traces}"
out="${OUT:-target/trace-compare}"
init="${INIT:-model-loading}"
warmup="${WARMUP_MINUTES:-60}"
if [ $# -eq 0 ]; then
  set -- --trace "$traces/azure_functions_2019_invitro_sample500_8h" --functions 100 \
    --minutes 120 --time-scale 60
fi
workload=("$@")

# The time scale, for the emulator: the workload's own, 1 if it sets none.
scale=1
for ((i = 0; i < ${#workload[@]}; i++)); do
  if [ "${workload[$i]}" = --time-scale ]; then scale="${workload[$((i + 1))]}"; fi
done

if ! command -v nginx >/dev/null 2>&1; then
  echo "installing nginx-light from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light >/dev/null
  command -v nginx >/dev/null 2>&1 || { echo "error: nginx is still missing after installing nginx-light" >&2; exit 1; }
fi

cargo build --release --locked --quiet --bin warmgate --bin warmgate-load
bin="${CARGO_TARGET_DIR:-target}/release"

rm -rf "$out"
mkdir -p "$out"
work="$(mktemp -d)"
pids=()
stop() { # stops the processes of one way, by their ids
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'stop; rm -rf "$work"' EXIT

# Ports of the emulator, the gateway (and its admin listener) and nginx; PORT_BASE moves them.
base="${PORT_BASE:-19400}"
emulator_port=$((base + 1)) gateway_port=$((base + 2)) metrics_port=$((base + 3)) nginx_port=$((base + 4))
for port in $emulator_port $gateway_port $metrics_port $nginx_port; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "error: port $port is in use by another process; set PORT_BASE" >&2
    exit 1
  fi
done
"$bin/warmgate-load" plan "${workload[@]}" --init "$init" --out "$out/plan" \
  --emulator-url "http://127.0.0.1:$emulator_port" \
  --gateway-listen "127.0.0.1:$gateway_port" --metrics-listen "127.0.0.1:$metrics_port"

cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 16384; }
http {
  access_log off;
  upstream emulator { server 127.0.0.1:$emulator_port; keepalive 1024; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://emulator;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 900s;
      client_body_temp_path $work/body;
      proxy_temp_path $work/proxy;
    }
  }
}
EOF

wait_for() { # URL, PID: until it answers 200 while PID lives, at most 30 s
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || { echo "error: process $2 for $1 exited; see $out/*.log" >&2; exit 1; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return
    sleep 0.1
  done
  echo "error: $1 did not answer 200 within 30 s" >&2
  exit 1
}

start_emulator() {
  "$bin/warmgate" emulator --config "$out/plan/emulator.toml" \
    --listen "127.0.0.1:$emulator_port" --time-scale "$scale" >"$out/$1-emulator.log" 2>&1 &
  emulator=$!
  pids+=("$emulator")
  wait_for "http://127.0.0.1:$emulator_port/_emulator/health" "$emulator"
}

load() { # label, port, extra warmgate-load options...
  local label=$1 port=$2
  shift 2
  echo "== $label" >&2
  "$bin/warmgate-load" run "${workload[@]}" --warmup-minutes "$warmup" \
    --target "http://127.0.0.1:$port" --label "$label" --out "$out/$label" "$@" >/dev/null
}

# 1. The emulator directly (its own CPU and memory).
start_emulator direct
load direct "$emulator_port" --qualifier live --watch-pid "$emulator"
stop

# 2. nginx in front of a fresh emulator.
start_emulator nginx
nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
proxy=$!
pids+=("$proxy")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$nginx_port/" && break; sleep 0.1; done
kill -0 "$proxy" 2>/dev/null || { echo "error: nginx exited; see $work/nginx-error.log" >&2; exit 1; }
# shellcheck disable=SC2046
load nginx "$nginx_port" --qualifier live $(for p in "$proxy" $(pgrep -P "$proxy"); do echo --watch-pid "$p"; done)
stop

# 3 and 4. warmgate, warming off then on, each on a fresh emulator; no Qualifier, so that
# warmgate routes.
for way in warming-off warming-on; do
  start_emulator "warmgate-$way"
  RUST_LOG=warn "$bin/warmgate" serve --config "$out/plan/gateway-$way.toml" >"$out/warmgate-$way.log" 2>&1 &
  gateway=$!
  pids+=("$gateway")
  wait_for "http://127.0.0.1:$gateway_port/readyz" "$gateway"
  load "warmgate-$way" "$gateway_port" --watch-pid "$gateway"
  stop
done

"$bin/warmgate-load" compare "$out/direct" "$out/nginx" "$out/warmgate-warming-off" \
  "$out/warmgate-warming-on" | tee "$out/table.md"
echo "reports and plots: $out/<way>/report.md" >&2

#!/usr/bin/env bash
# The same saturation load on every path in one run, with wrk: the emulator directly, nginx as a
# plain reverse proxy in front of it, warmgate with warming off, warmgate with routing and
# warming on, the same sharing its attempts through Redis (as replicas do: every attempt
# published, the keep-alive membership beating), and warmgate with 1,000 configured functions
# (each request to one at random).
# Prints a markdown table: requests per second, latency percentiles, the latency added to the
# direct path, CPU per request (from /proc) and its ratio to nginx's, and resident memory of
# the process under test.
#
# Usage: loadtest/compare.sh [SECONDS] [CONNECTIONS...]   (default 10 s, 16 and 64 connections)
# Environment:
#   WARMGATE_BIN=path   the warmgate binary to measure (default: a release build, made here)
#   BASELINE_BIN=path   also measure this binary (warming off), for an A/B in the same run
#   PROFILE=1           record warmgate (warming off, last connection count) with perf and
#                       print where its CPU goes (loadtest/profile-summary.sh)
# Installs wrk, nginx, redis-server (and perf with PROFILE=1) from Debian if they are absent. Every part
# shares the machine's cores: compare the rows of one run, as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
shift || true
connections=("${@:-16 64}")
# shellcheck disable=SC2206
connections=(${connections[*]})

need() {
  command -v "$1" >/dev/null 2>&1 && return
  echo "installing $2 from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is still missing after installing $2" >&2; exit 1; }
}
need wrk wrk
need nginx nginx-light
need redis-server redis-server
[ "${PROFILE:-0}" = 1 ] && need perf linux-perf

if [ -n "${WARMGATE_BIN:-}" ]; then
  bin="$WARMGATE_BIN"
else
  cargo build --release --locked --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/warmgate"
fi
[ -x "$bin" ] || { echo "error: no warmgate binary at $bin" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

many=1000
# A warm handler of 5 ms, limits high enough never to throttle; `bench`, and `bench0` to
# `bench999` for the many-functions row.
{
  cat <<'EOF'
[settings]
scaling_per_10s = 1000000
account_concurrency = 1000000
[[function]]
name = "bench"
memory_mb = 1024
init_ms = 0
duration_ms = 5
EOF
  for i in $(seq 0 $((many - 1))); do
    printf '[[function]]\nname = "bench%d"\nmemory_mb = 1024\ninit_ms = 0\nduration_ms = 5\n' "$i"
  done
} >"$work/emulator.toml"

gateway_config() { # $1 port, $2 admin port, $3 warmer on/off, $4 functions: one or many
  cat <<EOF
[gateway]
listen = "127.0.0.1:$1"
metrics_listen = "127.0.0.1:$2"
max_in_flight = 100000
[backend]
kind = "endpoint"
url = "http://127.0.0.1:9301"
[access]
open = true
[warmer]
enabled = $3
policy = "warmer"
EOF
  if [ "$4" = one ]; then
    printf '[[function]]\nname = "bench"\n'
  else
    for i in $(seq 0 $((many - 1))); do printf '[[function]]\nname = "bench%d"\n' "$i"; done
  fi
}
gateway_config 9302 9312 false one >"$work/warm-off.toml"
gateway_config 9303 9313 true one >"$work/warm-on.toml"
gateway_config 9305 9315 true many >"$work/many.toml"
gateway_config 9306 9316 false one >"$work/baseline.toml"
{
  gateway_config 9307 9317 true one
  printf '[cache.redis]\nurl = "redis://127.0.0.1:9399/"\n'
} >"$work/shared.toml"

cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream emulator { server 127.0.0.1:9301; keepalive 128; }
  server {
    listen 127.0.0.1:9304;
    location / {
      proxy_pass http://emulator;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      client_body_temp_path $work/body;
      proxy_temp_path $work/proxy;
    }
  }
}
EOF

"$bin" emulator --config "$work/emulator.toml" --listen 127.0.0.1:9301 >"$work/emulator.log" 2>&1 &
emulator=$!
pids+=("$emulator")
start_gateway() { # $1 binary, $2 config; prints the pid
  RUST_LOG=warn "$1" serve --config "$2" >"$2.log" 2>&1 &
  echo $!
}
wait_ready() { # $1 port
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return
    sleep 0.1
  done
  echo "error: the gateway on port $1 never became ready" >&2
  exit 1
}
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:9301/ && break; sleep 0.1; done
redis-server --port 9399 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do redis-cli -p 9399 ping >/dev/null 2>&1 && break; sleep 0.1; done
off=$(start_gateway "$bin" "$work/warm-off.toml"); pids+=("$off")
on=$(start_gateway "$bin" "$work/warm-on.toml"); pids+=("$on")
shared=$(start_gateway "$bin" "$work/shared.toml"); pids+=("$shared")
wait_ready 9302
wait_ready 9303
wait_ready 9307
rows=("emulator directly:9301:$emulator:one" "nginx proxy_pass:9304:nginx:one"
  "warmgate, warming off:9302:$off:one" "warmgate, routing and warming on:9303:$on:one"
  "warmgate, warming on, shared in Redis:9307:$shared:one")
if [ -n "${BASELINE_BIN:-}" ]; then
  base=$(start_gateway "$BASELINE_BIN" "$work/baseline.toml"); pids+=("$base")
  wait_ready 9306
  rows+=("baseline binary, warming off:9306:$base:one")
fi
# Started last: its thousand functions resolve and warm while the other rows run.
many_pid=$(start_gateway "$bin" "$work/many.toml"); pids+=("$many_pid")
nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
proxy=$!
pids+=("$proxy")
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:9304/ && break; sleep 0.1; done

cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"text":"warm starts are lovely"}'
wrk.headers["Content-Type"] = "application/json"
EOF
cat >"$work/many.lua" <<EOF
math.randomseed(7)
local headers = { ["Content-Type"] = "application/json" }
request = function()
  local path = "/2015-03-31/functions/bench" .. math.random(0, $((many - 1))) .. "/invocations"
  return wrk.format("POST", path, headers, '{"text":"warm starts are lovely"}')
end
EOF

# CPU ticks (user + system) of a process and, for nginx, its worker.
ticks() {
  local total=0 pid
  for pid in "$@"; do
    read -r -a stat <"/proc/$pid/stat"
    total=$((total + stat[13] + stat[14]))
  done
  echo "$total"
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
nginx_pids() { echo "$proxy" $(pgrep -P "$proxy" || true); }
# A wrk latency percentile in ms.
pct() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}' <<<"$2"; }

hz=$(getconf CLK_TCK)
path=/2015-03-31/functions/bench/invocations
echo "| path | connections | req/s | p50 ms | p99 ms | added p50 / p99 ms | CPU µs per request | CPU vs nginx | resident MB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in "${connections[@]}"; do
  wait_ready 9305
  direct_p50="" direct_p99="" nginx_cpu=""
  for row in "${rows[@]}" "warmgate, $many functions, warming on:9305:$many_pid:many"; do
    IFS=: read -r name port pid functions <<<"$row"
    if [ "$pid" = nginx ]; then watched=$(nginx_pids); rss_of=$(pgrep -P "$proxy" | head -1); else watched=$pid; rss_of=$pid; fi
    script="$work/post.lua"
    [ "$functions" = many ] && script="$work/many.lua"
    profiling=0
    if [ "${PROFILE:-0}" = 1 ] && [ "$port" = 9302 ] && [ "$c" = "${connections[-1]}" ]; then
      profiling=1
      perf record -F 999 -g -p "$pid" -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    # shellcheck disable=SC2086
    before=$(ticks $watched)
    out=$(wrk -t1 -c"$c" -d"${seconds}s" --latency -s "$script" "http://127.0.0.1:$port$path")
    # shellcheck disable=SC2086
    after=$(ticks $watched)
    [ "$profiling" = 1 ] && wait "$perf_pid"
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p50=$(pct 50% "$out") p99=$(pct 99% "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    cpu_us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    rss=$(awk -v k="$(rss_kb "$rss_of")" 'BEGIN {printf "%.1f", k / 1024}')
    added="" ratio=""
    if [ "$port" = 9301 ]; then
      direct_p50=$p50 direct_p99=$p99
    elif [ "$functions" = one ]; then
      added=$(awk -v a="$p50" -v b="$direct_p50" -v c="$p99" -v d="$direct_p99" 'BEGIN {printf "%+.2f / %+.2f", a - b, c - d}')
    fi
    if [ "$pid" = nginx ]; then nginx_cpu=$cpu_us; fi
    if [ -n "$nginx_cpu" ] && [ "$port" != 9301 ]; then
      ratio=$(awk -v a="$cpu_us" -v b="$nginx_cpu" 'BEGIN {printf "%.1f×", a / b}')
    fi
    echo "| $name | $c | $rps | $p50 | $p99 | $added | $cpu_us | $ratio | $rss |${non2xx:+ non-2xx: $non2xx}"
  done
done
if [ "${PROFILE:-0}" = 1 ]; then
  echo
  loadtest/profile-summary.sh "$work/perf.data"
fi

#!/usr/bin/env bash
# The same saturation load four ways in one run, with wrk: the emulator directly, nginx as a
# plain reverse proxy in front of it, warmgate with warming off, and warmgate with routing and
# warming on. Prints requests per second, latency percentiles, CPU per request (from /proc) and
# resident memory of the process under test, as a markdown table.
#
# Usage: loadtest/compare.sh [SECONDS] [CONNECTIONS...]   (default 10 s, 16 and 64 connections)
# Needs a release build (it runs one) and installs nginx and wrk from Debian if they are absent.
# Every part shares the machine's cores: compare the rows of one run, as ratios.
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

cargo build --release --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/release/warmgate"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A warm handler of 5 ms, limits high enough never to throttle.
cat >"$work/emulator.toml" <<'EOF'
[settings]
scaling_per_10s = 100000
account_concurrency = 100000
[[function]]
name = "bench"
memory_mb = 1024
init_ms = 0
duration_ms = 5
EOF

gateway_config() { # $1 port, $2 admin port, $3 warmer on/off
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
[[function]]
name = "bench"
EOF
}
gateway_config 9302 9312 false >"$work/warm-off.toml"
gateway_config 9303 9313 true >"$work/warm-on.toml"

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
RUST_LOG=warn "$bin" serve --config "$work/warm-off.toml" >"$work/warm-off.log" 2>&1 &
off=$!
pids+=("$off")
RUST_LOG=warn "$bin" serve --config "$work/warm-on.toml" >"$work/warm-on.log" 2>&1 &
on=$!
pids+=("$on")
nginx -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
proxy=$!
pids+=("$proxy")

for port in 9301 9302 9303 9304; do
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
done
for port in 9302 9303; do
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && break
    sleep 0.1
  done
done

cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"text":"warm starts are lovely"}'
wrk.headers["Content-Type"] = "application/json"
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

hz=$(getconf CLK_TCK)
path=/2015-03-31/functions/bench/invocations
echo "| path | connections | req/s | p50 ms | p99 ms | CPU µs per request | resident MB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in "${connections[@]}"; do
  for row in "emulator directly:9301:$emulator" "nginx proxy_pass:9304:nginx" \
    "warmgate, warming off:9302:$off" "warmgate, routing and warming on:9303:$on"; do
    IFS=: read -r name port pid <<<"$row"
    if [ "$pid" = nginx ]; then watched=$(nginx_pids); rss_of=$(pgrep -P "$proxy" | head -1); else watched=$pid; rss_of=$pid; fi
    # shellcheck disable=SC2086
    before=$(ticks $watched)
    out=$(wrk -t1 -c"$c" -d"${seconds}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port$path")
    # shellcheck disable=SC2086
    after=$(ticks $watched)
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    pct() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}' <<<"$out"; }
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    cpu_us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    rss=$(awk -v k="$(rss_kb "$rss_of")" 'BEGIN {printf "%.1f", k / 1024}')
    echo "| $name | $c | $rps | $(pct 50%) | $(pct 99%) | $cpu_us | $rss |${non2xx:+ non-2xx: $non2xx}"
  done
done

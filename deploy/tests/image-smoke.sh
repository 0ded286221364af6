#!/usr/bin/env bash
# The image smoke test: builds deploy/Dockerfile's runtime stage around a locally built
# binary, runs it as its non-root user on a read-only root filesystem with every capability
# dropped, and calls /readyz, an invoke (embedded emulator) and /metrics; then stops it as ECS
# does (SIGTERM) and expects a clean exit.
#
# No image registry is reachable here, so the two inputs the Dockerfile would pull come from
# local images made by this script: RUNTIME_BASE, a scratch root with what distroless/cc
# provides that warmgate uses (the binary's shared libraries from this Debian machine, CA
# certificates, a `nonroot` user 65532); and BINARY_FROM, the binary at /out/warmgate.
#
# Usage: deploy/tests/image-smoke.sh WARMGATE_BINARY
# Needs podman and runc (scripts/deploy-check.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=${1:?usage: image-smoke.sh WARMGATE_BINARY}
for tool in podman runc curl python3; do
  command -v "$tool" >/dev/null || { echo "image smoke: $tool is not installed" >&2; exit 1; }
done
# Podman here needs runc (not crun) and explicit limits, which the sandbox does not grant by
# default.
podman=(podman --runtime "$(command -v runc)")
limits=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
tag=$$
base=localhost/warmgate-smoke-base:$tag
bin_image=localhost/warmgate-smoke-binary:$tag
image=localhost/warmgate:smoke-$tag
name=warmgate-smoke-$tag
work=$(mktemp -d)

cleanup() {
  "${podman[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
  "${podman[@]}" rmi -f "$image" "$bin_image" "$base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "image smoke: FAILED: $*" >&2; exit 1; }

# The base: the binary's shared libraries (as ldd resolves them), CA certificates, users.
root=$work/base
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
libs=$(ldd "$binary" | grep -o '/[^ ]*' | sort -u)
[ -n "$libs" ] || fail "ldd found no shared libraries for $binary"
for lib in $libs; do cp -L --parents "$lib" "$root/"; done
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
chown 65532:65532 "$root/home/nonroot"
tar --numeric-owner -C "$root" -cf "$work/base.tar" .
"${podman[@]}" import -q "$work/base.tar" "$base" >/dev/null

# The binary, without its debug sections (the image's size, not the test's, is what matters).
mkdir -p "$work/bin/out"
objcopy --strip-debug "$binary" "$work/bin/out/warmgate"
tar --numeric-owner -C "$work/bin" -cf "$work/bin.tar" .
"${podman[@]}" import -q "$work/bin.tar" "$bin_image" >/dev/null

# The runtime stage of the real Dockerfile, nothing pulled.
"${podman[@]}" build -q --pull=never --target runtime \
  --build-arg RUNTIME_BASE="$base" --build-arg BINARY_FROM="$bin_image" \
  -f deploy/Dockerfile -t "$image" . >/dev/null
user=$("${podman[@]}" image inspect -f '{{.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || fail "the image's user is '$user', not 65532:65532"
healthcheck=$("${podman[@]}" image inspect -f '{{.Config.Healthcheck}}' "$image")
[ "$healthcheck" = "<nil>" ] || fail "the image has a HEALTHCHECK ($healthcheck); the load balancer checks /readyz"
echo "image smoke: built $image (user $user, $("${podman[@]}" image inspect -f '{{.Size}}' "$image") bytes)"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The configuration as ECS gives it (deploy/cloudformation/): the file's text in
# WARMGATE_CONFIG_TOML, here the local one with `sentiment` published as `from-env`.
config_text=$(sed 's/^name = "sentiment"$/name = "from-env"\nlambda_name = "sentiment"/' config/warmgate.toml)
grep -q '^name = "from-env"$' <<<"$config_text" || fail "could not rename sentiment in config/warmgate.toml"
"${podman[@]}" run -d --name "$name" "${limits[@]}" \
  --read-only --cap-drop ALL --security-opt no-new-privileges \
  -e WARMGATE_CONFIG_TOML="$config_text" \
  -e WARMGATE_BACKEND__CONFIG=/etc/warmgate/emulator.toml \
  -p "127.0.0.1:$port:8080" -p "127.0.0.1:$metrics_port:9090" "$image" >/dev/null

logs() { "${podman[@]}" logs "$name" 2>&1 | tail -40; }
pid=$("${podman[@]}" inspect -f '{{.State.Pid}}' "$name")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = "65532" ] || fail "warmgate runs as uid $uid, not 65532"
readonly_root=$("${podman[@]}" inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$name")
[ "$readonly_root" = "true" ] || fail "the root filesystem is not read-only"

ready=""
for _ in $(seq 1 120); do
  if [ "$("${podman[@]}" inspect -f '{{.State.Running}}' "$name")" != "true" ]; then
    logs; fail "the container stopped before it was ready"
  fi
  if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then ready=yes; break; fi
  sleep 0.5
done
[ -n "$ready" ] || { logs; fail "/readyz did not answer 200 within 60 s"; }
echo "image smoke: /readyz 200 (uid $uid, read-only root filesystem)"

answer=$(curl -s -D "$work/headers" --max-time 60 -X POST \
  "http://127.0.0.1:$port/v1/functions/from-env/invoke" -d '{"text":"warm starts are lovely"}')
status=$(head -1 "$work/headers" | awk '{print $2}')
[ "$status" = "200" ] || { logs; fail "invoke answered $status: $answer"; }
grep -qi '^x-warmgate-target: live' "$work/headers" || fail "invoke without x-warmgate-target: $(cat "$work/headers")"
python3 -c 'import json,sys; json.loads(sys.argv[1])' "$answer" || fail "invoke's answer is not JSON: $answer"
echo "image smoke: invoke 200 (configuration from WARMGATE_CONFIG_TOML) $answer"

# Into a file first: with pipefail, `curl | grep -q` fails when grep stops reading early.
curl -sf -o "$work/metrics" "http://127.0.0.1:$metrics_port/metrics" || fail "/metrics did not answer 200"
grep -q '^warmgate_requests_total{function="from-env",target="live",outcome="ok"} 1$' "$work/metrics" \
  || fail "/metrics does not count the invoke: $(grep '^warmgate_requests_total{function="from-env"' "$work/metrics")"
echo "image smoke: /metrics counts it"

"${podman[@]}" stop -t 30 "$name" >/dev/null
code=$("${podman[@]}" inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = "0" ] || { logs; fail "warmgate exited with $code on SIGTERM, not 0"; }
echo "image smoke: stopped by SIGTERM, exit code 0"
echo "image smoke: passed"

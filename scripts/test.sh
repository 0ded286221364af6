#!/usr/bin/env bash
# Runs every check of warmgate on a fresh machine: formatting, lints, the benches' build, and
# every test. Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

# cargo test needs Rust and redis-server (installed below): the Lambda emulator is built
# in. The trace tests read the public traces at ../shared/traces (beside this repository)
# and fail, naming the path, when they are absent.
traces="$(pwd)/../shared/traces"
if [ ! -d "$traces" ]; then
  echo "warning: $traces is absent; the trace tests will fail" >&2
fi

# The cache's tests run a real redis-server (Debian's package); they start and stop their
# own instances on free ports.
if ! command -v redis-server >/dev/null 2>&1; then
  command -v apt-get >/dev/null || { echo "redis-server not found and no apt-get: install Redis 7 yourself" >&2; exit 1; }
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing redis-server (apt)" >&2
  "${sudo[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends redis-server >/dev/null
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# The benches are built (not run) with the test profile, so they share the tests' dependencies:
# `cargo build --benches` would compile every dependency once more, optimised.
cargo test --locked --benches --no-run
cargo test --locked "$@"
# deploy/ and the metrics exposition, with the real tools (hadolint, cfn-lint, checkov,
# promtool, Prometheus, podman), which it installs first. It takes the gateway binary that
# cargo test built: `cargo build` would compile the dependencies again, since the
# dev-dependencies change their features.
WARMGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/warmgate" scripts/deploy-check.sh

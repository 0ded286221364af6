#!/usr/bin/env bash
# Runs every test of warmgate on a fresh machine: installs what the tests need, then runs them.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

# The tests need nothing beyond Rust today: the Lambda emulator is built in, and traces come
# from ../shared/traces when present (tests that read them say so and skip otherwise).
cargo test --locked "$@"

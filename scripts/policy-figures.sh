#!/usr/bin/env bash
# Replays both Azure samples (seeds 0 and 1, small and model-loading inits) and rewrites the
# CSV files and plots behind docs/warmer.md ("One set of defaults on traffic it was not tuned
# on", "With the extension", "With call reports") and docs/provisioning.md, then prints their tables
# (docs/warmer/issue17/table.py, docs/provisioning/table.py) to paste into those documents.
# About 15 minutes on 2 cores.
#
# Usage: scripts/policy-figures.sh   (WARMGATE_BIN: the binary; default target/release/warmgate,
#        built first; TRACES: the traces' directory, default ../shared/traces)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/warmer/issue17/extension docs/warmer/issue17/calls
bin=${WARMGATE_BIN:-target/release/warmgate}
traces=${TRACES:-../shared/traces}
if [ -z "${WARMGATE_BIN:-}" ]; then
  cargo build --release --locked
fi
for trace in sample500_8h sample1350_fullday; do
  [ -d "$traces/azure_functions_2019_invitro_$trace" ] ||
    { echo "no trace $traces/azure_functions_2019_invitro_$trace (set TRACES)" >&2; exit 1; }
done

replay() {
  local trace=$1 init=$2 seed=$3 plot=() pplot=() cplot=()
  local path="$traces/azure_functions_2019_invitro_$trace"
  if [ "$seed" = 0 ]; then
    plot=(--plot "docs/warmer/issue17/plots_${trace}_${init}")
    pplot=(--plot "docs/provisioning/plots_${trace}_${init}")
    cplot=(--plot "docs/warmer/issue17/calls/plots_${trace}_${init}")
  fi
  "$bin" simulate --trace "$path" --seed "$seed" --init "$init" \
    --policy none,fixed-5min,hybrid-histogram,warmer-max1,warmer \
    --out "docs/warmer/issue17/${trace}_${init}_s${seed}.csv" "${plot[@]}" >/dev/null
  "$bin" simulate --trace "$path" --seed "$seed" --init "$init" --policy warmer --wait \
    --out "docs/warmer/issue17/${trace}_${init}_s${seed}_wait.csv" >/dev/null
  # With warmgate's extension on every function ("With the extension").
  "$bin" simulate --trace "$path" --seed "$seed" --init "$init" --policy warmer --wait \
    --extension --out "docs/warmer/issue17/extension/${trace}_${init}_s${seed}.csv" >/dev/null
  # And reporting each call's start and end ("With call reports").
  "$bin" simulate --trace "$path" --seed "$seed" --init "$init" --policy warmer --wait \
    --call-reports --out "docs/warmer/issue17/calls/${trace}_${init}_s${seed}.csv" >/dev/null
  if [ "$seed" = 0 ]; then
    "$bin" simulate --trace "$path" --seed 0 --init "$init" --policy none,fixed-5min,warmer \
      --call-reports "${cplot[@]}" >/dev/null
  fi
  "$bin" simulate --trace "$path" --min-peak-rate 1 --seed "$seed" --init "$init" \
    --policy none,fixed-5min,fixed-peak,target-tracking,pc-planner,warmer,pc-planner-warmer \
    --out "docs/provisioning/${trace}_${init}_s${seed}.csv" "${pplot[@]}" >/dev/null
  echo "replayed $trace, $init, seed $seed" >&2
}

for trace in sample500_8h sample1350_fullday; do
  for seed in 0 1; do
    # Two at a time: each replay runs its policies on every core.
    replay "$trace" small "$seed" &
    replay "$trace" model-loading "$seed" &
    wait
  done
done
python3 docs/warmer/issue17/table.py
python3 docs/provisioning/table.py

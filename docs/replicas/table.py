#!/usr/bin/env python3
"""Prints docs/replicas.md's tables from the replays' CSV files: one gateway (issue 17's
files in docs/warmer/issue17/) against two replicas, keep-alive shared or not.

    python3 docs/replicas/table.py docs/replicas
"""
import csv
import sys
from pathlib import Path

SAMPLES = ["sample500_8h", "sample1350_fullday"]
INITS = ["small", "model-loading"]


def rows(path):
    with open(path) as f:
        return {r["policy"]: r for r in csv.DictReader(f)}


def main(directory):
    directory = Path(directory)
    one_dir = directory.parent / "warmer" / "issue17"
    print("| sample | init | policy | replicas | keep-alive | cold starts | fn p75 % | fn p90 % | pings | bill $ |")
    print("| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for sample in SAMPLES:
        for init in INITS:
            one = rows(one_dir / f"{sample}_{init}_s0.csv")
            one.update(rows(one_dir / f"{sample}_{init}_s0_wait.csv"))
            shared = rows(directory / f"{sample}_{init}_r2.csv")
            unshared = rows(directory / f"{sample}_{init}_r2u.csv")
            for policy in ["fixed-5min", "warmer", "warmer+wait"]:
                cases = [("1", "", one.get(policy))]
                cases.append(("2", "per replica", unshared.get(f"{policy}@2-unshared")))
                cases.append(("2", "shared", shared.get(f"{policy}@2")))
                for n, how, r in cases:
                    if r is None:
                        continue
                    print(
                        f"| {sample} | {init} | {policy} | {n} | {how} | {int(r['cold_starts']):,} "
                        f"| {100 * float(r['function_cold_share_p75']):.2f} "
                        f"| {100 * float(r['function_cold_share_p90']):.2f} "
                        f"| {int(r['pings']):,} | {float(r['bill_usd']):.4f} |"
                    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/replicas")

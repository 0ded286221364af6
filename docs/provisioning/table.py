#!/usr/bin/env python3
"""Prints docs/provisioning.md's tables from the replays' CSV files in this directory."""
import csv
import pathlib

HERE = pathlib.Path(__file__).parent
POLICIES = ["none", "fixed-5min", "fixed-peak", "target-tracking", "pc-planner", "warmer", "pc-planner-warmer"]

for trace in ["sample500_8h", "sample1350_fullday"]:
    for init in ["small", "model-loading"]:
        files = [HERE / f"{trace}_{init}_s{seed}.csv" for seed in (0, 1)]
        if not all(f.exists() for f in files):
            continue
        print(f"\n#### {trace}, `--init {init}`\n")
        print("| policy | seed | cold starts | fn p90 cold % | pings | provisioned GB-s | bill $ | vs fixed-peak $ | vs target-tracking |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for seed, f in zip((0, 1), files):
            rows = {r["policy"]: r for r in csv.DictReader(open(f))}
            peak = float(rows["fixed-peak"]["bill_usd"])
            tt = rows["target-tracking"]
            for p in POLICIES:
                r = rows[p]
                bill = float(r["bill_usd"])
                versus = ""
                if p.startswith("pc-planner"):
                    fewer = int(r["cold_starts"]) < int(tt["cold_starts"])
                    cheaper = bill <= float(tt["bill_usd"])
                    versus = f"{'fewer' if fewer else 'more'} cold starts, {'no more' if cheaper else 'more'} dollars"
                print(
                    f"| {p} | {seed} | {int(r['cold_starts']):,} | {100 * float(r['function_cold_share_p90']):.2f} "
                    f"| {int(r['pings']):,} | {float(r['provisioned_gb_s']):,.0f} | {bill:.4f} "
                    f"| {100 * (bill - peak) / peak:+.1f}% | {versus} |"
                )

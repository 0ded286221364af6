#!/usr/bin/env python3
"""Prints docs/warmer.md's issue-17 tables from the replays' CSV files in this directory:
one table per sample and init (both seeds), then which targets each replay meets, then the
same targets with the extension (`extension/`, the warmer's rows replayed with
`--extension`) and with it reporting calls (`calls/`, `--call-reports`); none and
fixed-5min are the same with it or without."""
import csv
import pathlib

HERE = pathlib.Path(__file__).parent
POLICIES = ["none", "fixed-5min", "hybrid-histogram", "warmer-max1", "warmer", "warmer+wait"]
TRACES = [
    ("sample500_8h", "500-function 8-hour sample (tuning)"),
    ("sample1350_fullday", "1,350-function full-day sample (validation)"),
]
INITS = ["small", "model-loading"]


def rows(trace, init, seed, variant=None):
    found = {}
    for suffix in ("", "_wait"):
        for r in csv.DictReader(open(HERE / f"{trace}_{init}_s{seed}{suffix}.csv")):
            found[r["policy"]] = r
    if variant:
        for r in csv.DictReader(open(HERE / variant / f"{trace}_{init}_s{seed}.csv")):
            found[r["policy"]] = r
    return found


def target_row(trace, init, seed, r):
    """Which targets the replays `r` of one sample, init and seed meet, as a table row."""
    none = int(r["none"]["cold_starts"])
    w, d, f = r["warmer+wait"], r["warmer"], r["fixed-5min"]
    fewer = lambda x: 100 * (none - int(x["cold_starts"])) / none
    shares = all(
        float(x[k]) <= float(f[k])
        for x in (d, w)
        for k in ("function_cold_share_p75", "function_cold_share_p90")
    )
    bill = lambda x: float(x["bill_usd"]) - float(f["bill_usd"])
    met = lambda x: f"{bill(x):+.4f} {'met' if bill(x) <= 0 else 'not met'}"
    return (
        f"| {trace} | {init} | {seed} | {fewer(w):.1f}% {'met' if fewer(w) >= 90 else 'not met'} "
        f"| {fewer(d):.1f}% {'met' if fewer(d) >= 85 else 'not met'} "
        f"| {'met' if shares else 'not met'} | {met(w)} | {met(d)} |"
    )


def pct(r, key):
    return 100 * float(r[key])


targets = []
for trace, role in TRACES:
    for init in INITS:
        print(f"\n#### {role}, `--init {init}`\n")
        print("| policy | seed | cold starts | vs none | fn p75 cold % | fn p90 cold % | pings | bill $ |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for seed in (0, 1):
            r = rows(trace, init, seed)
            none = int(r["none"]["cold_starts"])
            for p in POLICIES:
                x = r[p]
                cold = int(x["cold_starts"])
                print(
                    f"| {p} | {seed} | {cold:,} | {100 * (none - cold) / none:.1f}% fewer "
                    f"| {pct(x, 'function_cold_share_p75'):.2f} | {pct(x, 'function_cold_share_p90'):.2f} "
                    f"| {int(x['pings']):,} | {float(x['bill_usd']):.4f} |"
                )
            targets.append(target_row(trace, init, seed, r))

HEAD = (
    "| sample | init | seed | +wait: fewer than none (≥ 90%) | direct (≥ 85%) "
    "| fn p75, p90 ≤ fixed-5min (both) | bill − fixed-5min $, +wait (≤ 0) "
    "| bill − fixed-5min $, direct |\n| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"
)
print("\n" + HEAD)
print("\n".join(targets))
for variant, flag, title in [
    ("extension", "--extension", "With the extension"),
    ("calls", "--call-reports", "With the extension reporting calls"),
]:
    if not (HERE / variant).is_dir():
        continue
    print(f"\n{title} (`{flag}`):\n\n| warmer | sample | init | seed | cold starts | fn p75, p90 cold % | pings | bill $ |")
    print("| --- | --- | --- | ---: | ---: | --- | ---: | ---: |")
    extended = []
    for trace, _ in TRACES:
        for init in INITS:
            for seed in (0, 1):
                r = rows(trace, init, seed, variant)
                for p in ("warmer", "warmer+wait"):
                    x = r[p]
                    print(
                        f"| {p} | {trace} | {init} | {seed} | {int(x['cold_starts']):,} "
                        f"| {pct(x, 'function_cold_share_p75'):.2f}, {pct(x, 'function_cold_share_p90'):.2f} "
                        f"| {int(x['pings']):,} | {float(x['bill_usd']):.4f} |"
                    )
                extended.append(target_row(trace, init, seed, r))
    print("\n" + HEAD)
    print("\n".join(extended))

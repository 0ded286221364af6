#!/usr/bin/env python3
"""Where one policy's bill differs from another's, by how often a function is called.

Usage: by_calls.py PER_FUNCTION.csv [BASE [OTHER]]
PER_FUNCTION.csv is `warmgate simulate ... --per-function` output; BASE and OTHER are policy
labels in it (default fixed-5min+wait and warmer+wait). Prints a Markdown table: functions,
pings, the pings that started an environment (and paid its init) and cold starts under each,
and OTHER's bill less BASE's, per class of calls in the day (counted after the warm-up).
"""
import csv
import sys

CLASSES = [(10, "0 to 10"), (100, "11 to 100"), (1000, "101 to 1,000"),
           (10000, "1,001 to 10,000"), (None, "more than 10,000")]


def label(calls):
    return next(name for bound, name in CLASSES if bound is None or calls <= bound)


def main():
    path = sys.argv[1]
    base = sys.argv[2] if len(sys.argv) > 2 else "fixed-5min+wait"
    other = sys.argv[3] if len(sys.argv) > 3 else "warmer+wait"
    rows = {}
    for r in csv.DictReader(open(path)):
        rows.setdefault(r["policy"], {})[r["function"]] = r
    for p in (base, other):
        if p not in rows:
            sys.exit(f"{path} has no policy {p!r}; it has {sorted(rows)}")
    sums = {name: [0, 0, 0, 0, 0, 0, 0, 0.0] for _, name in CLASSES}
    for f, o in rows[other].items():
        b = rows[base][f]
        s = sums[label(int(o["invocations"]))]
        s[0] += 1
        s[1] += int(b["pings"])
        s[2] += int(o["pings"])
        s[3] += int(b["cold_starts"])
        s[4] += int(o["cold_starts"])
        s[5] += int(b["cold_pings"])
        s[6] += int(o["cold_pings"])
        s[7] += float(o["bill_usd"]) - float(b["bill_usd"])
    print(f"| calls in the day | functions | {base} pings | {other} pings | "
          f"{base} pings that started one | {other} pings that started one | "
          f"{base} cold starts | {other} cold starts | bill, {other} − {base} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for _, name in CLASSES:
        n, bp, op, bc, oc, bs, os_, dbill = sums[name]
        print(f"| {name} | {n} | {bp:,} | {op:,} | {bs:,} | {os_:,} | {bc:,} | {oc:,} "
              f"| {dbill:+.4f} |")


if __name__ == "__main__":
    main()

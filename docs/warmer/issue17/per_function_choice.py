#!/usr/bin/env python3
"""A policy chosen per function after the fact: where a policy could do better than `warmer`.

Usage: per_function_choice.py CHOOSE.csv SCORE.csv MENU [PRICE] [--direct]
CHOOSE.csv and SCORE.csv are `warmgate simulate ... --wait --per-function` output of the same
trace and init on two seeds; MENU is a comma-separated list of policies replayed in both
(`warmer,warmer-max1`). Each function gets the policy of MENU with the lowest bill plus PRICE
dollars (default 0.0001) per cold start on CHOOSE.csv; the sums are taken on SCORE.csv, so
that a lucky draw does not make the choice. Rows through the gateway (`+wait`) unless
--direct. Prints the mix's cold starts, bill less fixed-5min's and per-function cold share
percentiles, then what each policy chosen in place of `warmer` changed, by calls in the day.
"""
import csv
import math
import sys
from collections import Counter, defaultdict


def load(path, direct):
    rows = defaultdict(dict)
    with open(path) as f:
        for r in csv.DictReader(f):
            policy = r["policy"]
            if policy.endswith("+wait") == direct:
                continue
            rows[r["function"]][policy.removesuffix("+wait")] = (
                int(r["cold_starts"]), float(r["bill_usd"]), int(r["invocations"]), int(r["pings"]))
    return rows


def quantile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def calls_class(calls):
    for bound, name in [(0, "0"), (10, "1 to 10"), (100, "11 to 100"), (1000, "101 to 1,000")]:
        if calls <= bound:
            return name
    return "more than 1,000"


def main(args):
    direct = "--direct" in args
    args = [a for a in args if a != "--direct"]
    choose, score = load(args[0], direct), load(args[1], direct)
    menu = args[2].split(",")
    price = float(args[3]) if len(args) > 3 else 0.0001
    fixed = sum(v["fixed-5min"][1] for v in score.values())
    cold = bill = 0
    shares, picks = [], Counter()
    moved = defaultdict(lambda: [0, 0, 0.0, 0])
    for function, seen in choose.items():
        policy = min(menu, key=lambda p: seen[p][1] + price * seen[p][0])
        picks[policy] += 1
        got = score[function]
        cold += got[policy][0]
        bill += got[policy][1]
        if got[policy][2] > 0:
            shares.append(got[policy][0] / got[policy][2])
        if policy != "warmer" and "warmer" in got:
            # Every policy replays the same calls.
            m = moved[(policy, calls_class(got["warmer"][2]))]
            m[0] += 1
            m[1] += got[policy][0] - got["warmer"][0]
            m[2] += got[policy][1] - got["warmer"][1]
            m[3] += got[policy][3] - got["warmer"][3]
    print(f"cold starts {cold:,}, bill - fixed-5min {bill - fixed:+.4f}, "
          f"fn p75 {100 * quantile(shares, 0.75):.2f}%, p90 {100 * quantile(shares, 0.9):.2f}%; "
          + ", ".join(f"{p} for {n}" for p, n in picks.most_common()))
    print("\n| in place of warmer | calls in the day | functions | cold starts | bill $ | pings |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for (policy, calls), (n, dc, db, dp) in sorted(moved.items()):
        print(f"| {policy} | {calls} | {n} | {dc:+,} | {db:+.4f} | {dp:+,} |")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1:])

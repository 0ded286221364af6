#!/usr/bin/env python3
"""What a shorter floor after a lone call would cost and spare, counted over a trace's minutes.

Usage: lone_call_floor.py INVOCATIONS.csv [FIRST_MINUTE_COLUMN] [WARMUP_MINUTES]
INVOCATIONS.csv is an Azure Functions 2019 per-minute invocation file (the full-day sample's
`1350_inv.csv`: minute columns from index 3, the default; the 8-hour sample's
`invocations.csv`: from 4). The rule counted: a function seen called in only one minute of
the last day is kept for H hours after it rather than a day. Prints, for H of 1 to 24 hours,
the calls after the warm-up (60 minutes) that the rule would leave cold, in how many
functions, and about how many 5-minute pings it would spare. A minute-level count, not a
replay: the warmer's other rules (forecast, bridge) are not modelled.
"""
import csv
import sys

DAY = 1440


def main(path, first=3, warmup=60):
    with open(path) as f:
        reader = csv.reader(f)
        next(reader)
        functions = [list(map(int, row[first:])) for row in reader]
    length = len(functions[0])
    for hours in [1, 2, 4, 8, 12, 24]:
        memory = hours * 60
        cold = cold_functions = spared_minutes = 0
        for counts in functions:
            minutes = [m for m, n in enumerate(counts) if n]
            lone = [len([p for p in minutes[:k + 1] if p > minutes[k] - DAY]) <= 1
                    for k in range(len(minutes))]
            made_cold = sum(
                1 for k in range(1, len(minutes))
                if lone[k - 1] and minutes[k] >= warmup
                and memory < minutes[k] - minutes[k - 1] <= DAY)
            for k, m in enumerate(minutes):
                if lone[k]:
                    following = minutes[k + 1] if k + 1 < len(minutes) else length
                    start = max(min(following, m + memory), warmup)
                    end = min(following, m + DAY, length)
                    spared_minutes += max(0, end - start)
            cold += made_cold
            cold_functions += made_cold > 0
        print(f"{hours:2d} h: {cold} calls left cold in {cold_functions} functions; "
              f"about {spared_minutes // 5:,} pings spared")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))

#!/usr/bin/env python3
"""Prints a random half of the full-day sample's functions, as `simulate --function-id` takes them.

Usage: halves.py SAMPLE_DIR SELECTION
SAMPLE_DIR is ../shared/traces/azure_functions_2019_invitro_sample1350_fullday; SELECTION
(1, 2, 3, ...) seeds the draw of 675 of its 1,350 functions, so that each half is a day of
traffic no default was chosen on (docs/warmer/history.md, "Random halves of the full day"). The ids
come out comma-separated, in the trace's order.
"""
import csv
import os
import random
import sys


def main(sample, selection):
    with open(os.path.join(sample, "1350_inv.csv"), newline="") as f:
        rows = csv.reader(f)
        next(rows)
        ids = [row[0] for row in rows]
    half = sorted(random.Random(selection).sample(range(len(ids)), len(ids) // 2))
    print(",".join(ids[i] for i in half))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))

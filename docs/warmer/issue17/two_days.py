#!/usr/bin/env python3
"""Writes the full-day sample played twice: a two-day trace whose second day repeats the first.

Usage: two_days.py SAMPLE_DIR OUT_DIR
SAMPLE_DIR is ../shared/traces/azure_functions_2019_invitro_sample1350_fullday (files
1350_inv.csv, 1350_run.csv, 1350_mem.csv); OUT_DIR gets the same three files, the
invocations' 1,440 minute columns followed by the same 1,440 again. Replayed with
`--warmup-minutes 1440`, the figures are the second day's, after a day of history: the
hour-of-day profile applies and every function has been seen.
"""
import csv
import os
import shutil
import sys

MINUTES = 1440


def main(src, out):
    os.makedirs(out, exist_ok=True)
    for name in ("1350_run.csv", "1350_mem.csv"):
        shutil.copy(os.path.join(src, name), os.path.join(out, name))
    with open(os.path.join(src, "1350_inv.csv"), newline="") as f, \
            open(os.path.join(out, "1350_inv.csv"), "w", newline="") as g:
        rows = csv.reader(f)
        header = next(rows)
        meta = len(header) - MINUTES
        if meta < 1 or header[meta] != "minute_1":
            sys.exit(f"{src}/1350_inv.csv: expected {MINUTES} minute columns from minute_1")
        w = csv.writer(g)
        w.writerow(header[:meta] + [f"minute_{i}" for i in range(1, 2 * MINUTES + 1)])
        for row in rows:
            w.writerow(row[:meta] + row[meta:] * 2)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

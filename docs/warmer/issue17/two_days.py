#!/usr/bin/env python3
"""Writes the full-day sample played on several days: by default twice, the second day repeating the first.

Usage: two_days.py SAMPLE_DIR OUT_DIR [SHIFT ...]
SAMPLE_DIR is ../shared/traces/azure_functions_2019_invitro_sample1350_fullday (files
1350_inv.csv, 1350_run.csv, 1350_mem.csv); OUT_DIR gets the same three files, the
invocations' 1,440 minute columns followed by one more day for each SHIFT (one day, unshifted,
if none is given). Replayed with `--warmup-minutes 1440` (times the days before the last),
the figures are the last day's, after the days of history before it: the hour-of-day profile
applies and every function has been seen.

Each SHIFT (minutes) plays its day that much later than the first (wrapping at midnight): the
same traffic, but what came at a minute one day does not come at that minute the next, so
what the warmer keeps for the rises of the day before is spent for nothing. For example
`0 0` is three identical days; `0 420` two identical days, then the third 7 hours later;
`420 840` three days none of which repeats the day before.
"""
import csv
import os
import shutil
import sys

MINUTES = 1440


def main(src, out, shifts):
    os.makedirs(out, exist_ok=True)
    for name in ("1350_run.csv", "1350_mem.csv"):
        shutil.copy(os.path.join(src, name), os.path.join(out, name))
    days = 1 + len(shifts)
    with open(os.path.join(src, "1350_inv.csv"), newline="") as f, \
            open(os.path.join(out, "1350_inv.csv"), "w", newline="") as g:
        rows = csv.reader(f)
        header = next(rows)
        meta = len(header) - MINUTES
        if meta < 1 or header[meta] != "minute_1":
            sys.exit(f"{src}/1350_inv.csv: expected {MINUTES} minute columns from minute_1")
        w = csv.writer(g)
        w.writerow(header[:meta] + [f"minute_{i}" for i in range(1, days * MINUTES + 1)])
        for row in rows:
            day = row[meta:]
            later = [day[MINUTES - s:] + day[:MINUTES - s] if s else day for s in shifts]
            w.writerow(row[:meta] + day + [m for d in later for m in d])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    shifts = [int(s) % MINUTES for s in sys.argv[3:]] or [0]
    main(sys.argv[1], sys.argv[2], shifts)

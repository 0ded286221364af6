#!/usr/bin/env python3
"""Keep or drop the rotation per function, with a day's hindsight, scored on another seed.

usage: rotation_choice.py ROT_A NOROT_A ROT_B NOROT_B ROOM

Each argument but ROOM is a `warmgate simulate --per-function` CSV of the `warmer` policy:
with today's rotation and with none (a throwaway build), on seed A and on seed B. Functions
are taken by the bill they save without rotation per cold start they add on seed A, most
first, while the cold starts added stay within ROOM; the choice is then scored on seed B.
docs/warmer/history.md, "Denser refreshes in place of the rotation", quotes its output.
"""
import csv
import sys


def load(path):
    return {r["function"]: r for r in csv.DictReader(open(path)) if r["policy"] == "warmer"}


def added_and_saved(rot, norot, functions):
    added = sum(int(norot[f]["cold_starts"]) - int(rot[f]["cold_starts"]) for f in functions)
    saved = sum(float(rot[f]["bill_usd"]) - float(norot[f]["bill_usd"]) for f in functions)
    return added, saved


def main():
    rot_a, norot_a, rot_b, norot_b = (load(p) for p in sys.argv[1:5])
    room = int(sys.argv[5])
    ranked = []
    for f in rot_a:
        added, saved = added_and_saved(rot_a, norot_a, [f])
        if saved > 0:
            ranked.append((saved / max(added, 0.5), f, max(added, 0)))
    ranked.sort(reverse=True)
    chosen, used = [], 0
    for _, f, added in ranked:
        if used + added <= room:
            chosen.append(f)
            used += added
    added, saved = added_and_saved(rot_a, norot_a, chosen)
    print(f"chosen: {len(chosen)} functions without rotation")
    print(f"on the seed chosen on: {added} cold starts added, ${saved:.4f} saved")
    added, saved = added_and_saved(rot_b, norot_b, chosen)
    print(f"on the other seed: {added} cold starts added, ${saved:.4f} saved")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reads the outputs of deploy/dev/regress.sh and compares each figure with its
baseline (deploy/dev/regress-baseline.json): fails when one is REGRESS_FACTOR (3) times
worse. Prints every figure, its baseline and the ratio.

Usage: regress.py OUT_DIR BASELINE.json
"""
import json
import os
import re
import sys


def number(cell):
    """A figure of the table, or None for its markers (`–`, `never`)."""
    try:
        return float(cell)
    except ValueError:
        return None


def sync_figures(text):
    """Whole-run and steady-state spread p95 (ms) of wp_sync per scenario, from the
    first table (columns as `row()` in sync/benches/sync/main.rs writes them)."""
    figures = {}
    for line in text.split("\nAgainst")[0].splitlines():
        cells = [c.strip().strip("*") for c in line.split("|")]
        if len(cells) > 8 and cells[2] == "wp_sync":
            for name, cell in (("whole-run", cells[4]), ("steady", cells[7])):
                if number(cell) is not None:
                    figures[f"sync {name} p95 ms: {cells[1]}"] = number(cell)
    return figures


def queue_figures(text):
    m = re.search(r"median: direct (\d+) jobs/s, outbox batched (\d+) jobs/s", text)
    if not m:
        return {}
    return {
        "queue direct jobs/s": float(m.group(1)),
        "queue outbox batched jobs/s": float(m.group(2)),
    }


def broadcast_figures(text):
    figures = {}
    m = re.search(r"in-app rows all written in ([\d.]+) s", text)
    if m:
        figures["broadcast in-app s"] = float(m.group(1))
    m = re.search(r"\((\d+) pushes/s from the first push", text)
    if m:
        figures["broadcast pushes/s"] = float(m.group(1))
    return figures


def main():
    out, baseline_path = sys.argv[1], sys.argv[2]
    factor = float(os.environ.get("REGRESS_FACTOR", "3"))
    baseline = json.load(open(baseline_path))
    read = lambda name: open(os.path.join(out, name)).read()
    got = {}
    got.update(sync_figures(read("sync.txt")))
    got.update(queue_figures(read("queue.txt")))
    got.update(broadcast_figures(read("broadcast.txt")))
    failed = False
    print(f"{'figure':60} {'now':>9} {'baseline':>9} {'ratio':>6}")
    for name, spec in baseline["figures"].items():
        base, better = spec["value"], spec["better"]
        if name not in got:
            print(f"{name:60} {'missing':>9} {base:9.1f}   FAIL (not measured)")
            failed = True
            continue
        now = got[name]
        # How many times worse than the baseline (1.0 = the same; < 1 is better).
        worse = now / base if better == "lower" else base / max(now, 1e-9)
        bad = worse >= factor
        failed |= bad
        print(f"{name:60} {now:9.1f} {base:9.1f} {worse:6.2f}{'   FAIL' if bad else ''}")
    print(f"(fails at {factor:g}× worse than the baseline)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

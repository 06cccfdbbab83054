#!/usr/bin/env python3
"""Line coverage per crate from `cargo llvm-cov report --json --summary-only`, and the
gate CI holds it to: at least 90% of lines for the workspace and 80% for each crate
(docs/testing.md). Prints the table; exits 1 under either floor.

Usage: coverage.py REPORT.json [--workspace-floor 90] [--crate-floor 80]
"""
import argparse
import json
import os
import sys

# Source folder -> package, as Cargo.toml's members are laid out.
CRATES = {
    "api": "watch-party-api",
    "core": "watch-party-core",
    "realtime": "watch-party-realtime",
    "scheduler": "watch-party-scheduler",
    "shared": "watch-party-shared",
    "sync": "watch-party-sync",
    "workers": "watch-party-workers",
    "src": "watch-party (the binary)",
}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("report")
    p.add_argument("--workspace-floor", type=float, default=90.0)
    p.add_argument("--crate-floor", type=float, default=80.0)
    args = p.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    data = json.load(open(args.report))["data"][0]
    per = {}
    unknown = []
    for f in data["files"]:
        rel = os.path.relpath(os.path.realpath(f["filename"]), root)
        top = rel.split(os.sep)[0]
        if top not in CRATES:
            unknown.append(rel)
            continue
        lines = f["summary"]["lines"]
        c = per.setdefault(top, [0, 0])
        c[0] += lines["count"]
        c[1] += lines["covered"]
    if unknown:
        # A new crate must be named above so it is held to the floor too.
        print("coverage: files outside the known crates: " + ", ".join(unknown[:10]))
        return 1
    total = [sum(c[0] for c in per.values()), sum(c[1] for c in per.values())]
    pct = lambda c: 100.0 * c[1] / c[0] if c[0] else 100.0
    failed = False
    print(f"{'crate':32} {'lines':>8} {'covered':>8} {'%':>7}")
    for top in sorted(per):
        c = per[top]
        low = pct(c) < args.crate_floor
        failed |= low
        mark = f"  < {args.crate_floor:.0f}%" if low else ""
        print(f"{CRATES[top]:32} {c[0]:8} {c[1]:8} {pct(c):6.1f}%{mark}")
    low = pct(total) < args.workspace_floor
    failed |= low
    mark = f"  < {args.workspace_floor:.0f}%" if low else ""
    print(f"{'workspace':32} {total[0]:8} {total[1]:8} {pct(total):6.1f}%{mark}")
    missing = [t for t in CRATES if t not in per]
    if missing:
        print("coverage: no data for " + ", ".join(missing))
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

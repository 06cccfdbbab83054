#!/usr/bin/env bash
# Checks the monitoring files: the alert rules parse and pass their unit tests
# (promtool, from Debian's prometheus package, installed when missing), the dashboard
# is valid JSON, and every metric either of them names is one the code exports.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (Debian's prometheus package)"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y --no-install-recommends prometheus >/dev/null
fi
promtool check rules alerts.yml
promtool test rules alerts.test.yml
python3 - <<'PY'
import json, re, pathlib, sys
root = pathlib.Path("../..")
dash = json.load(open("grafana-dashboard.json"))
exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
exprs += re.findall(r"expr: *\|?\n?((?:.|\n)*?)\n *(?:for|labels):", open("alerts.yml").read())
names = set()
for e in exprs:
    for n in re.findall(r"\b([a-z_]+(?:_total|_seconds|_bucket|_bytes|_depth|_pending|_connection|_node|_info))\b", e):
        names.add(re.sub(r"_(bucket|sum|count)$", "", n))
src = "".join(p.read_text() for d in ["api", "shared", "workers", "realtime", "scheduler"]
              for p in (root / d / "src").rglob("*.rs"))
missing = sorted(n for n in names if f'"{n}"' not in src)
if missing:
    sys.exit(f"metrics named by the rules or the dashboard but exported nowhere: {missing}")
print(f"dashboard: {len(dash['panels'])} panels; metrics named, all exported: {sorted(names)}")
PY

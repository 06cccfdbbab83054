#!/usr/bin/env python3
"""Runs every ClickHouse migration (clickhouse/0*.sql), every analytics query
(clickhouse/queries/*.sql) and every dashboard panel (deploy/dashboards/*.json) on two
engines: the ClickHouse server the dev scripts start
(Debian's 18.16, over HTTP at $CLICKHOUSE_URL) and a current ClickHouse embedded in
Python (chdb). Seeds a small set of events, then checks that each query runs on both,
returns the columns the Rust rows read (in order), gives the same rows on both, and gives
the figures worked out by hand below.

Usage: deploy/dev/clickhouse-compat.py   (needs chdb: pip install chdb)
Exit status 0 when everything agrees; the differences are printed otherwise.
"""

import glob
import math
import os
import sys
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URL = os.environ.get("CLICKHOUSE_URL", "http://127.0.0.1:8123")
DB = f"wp_compat_{os.getpid()}"
ZERO = "00000000-0000-0000-0000-000000000000"
VIDEO = "0f3d6c1a-7e2b-4c9d-8f51-a2b4c6d8e0f1"
BOB = "5b1e8e2a-3f5c-4d7a-9a61-2f0c4e7d8b13"
CAL = "c47a0f9e-81d2-4b6e-a3c5-6e9f1d2b7a84"
PARTY = "9e8d7c6b-5a49-4382-b716-05f4e3d2c1b0"
DAN = "d2a6b8c0-1e3f-4a5b-9c7d-8e0f2a4b6c8d"
NOW = 1_796_000_400  # 2026-11-30 01:00:00 UTC, a Monday
T = f"toDateTime({NOW})"


def statements(sql):
    """As the Rust runner splits them: comment lines dropped, then split on `;`."""
    code = "\n".join(l for l in sql.splitlines() if not l.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


class Server:
    name = "clickhouse-server"

    def run(self, sql, db=True):
        req = urllib.request.Request(
            URL + "/?" + urllib.parse.urlencode({"database": DB} if db else {}),
            data=(sql + " FORMAT TSVWithNames" if sql.lstrip().upper().startswith(("SELECT", "WITH")) else sql).encode(),
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode()

    def version(self):
        return self.run("SELECT version() AS v", db=False).splitlines()[1]

    def setup(self):
        self.run(f"CREATE DATABASE IF NOT EXISTS {DB}", db=False)

    def drop(self):
        self.run(f"DROP DATABASE IF EXISTS {DB}", db=False)


class Embedded:
    name = "chdb"

    def __init__(self):
        import chdb.session

        self.s = chdb.session.Session()

    def run(self, sql, db=True):
        fmt = "TSVWithNames" if sql.lstrip().upper().startswith(("SELECT", "WITH")) else "TSV"
        return str(self.s.query(sql, fmt))

    def version(self):
        return self.run("SELECT version() AS v").splitlines()[1]

    def setup(self):
        self.run(f"CREATE DATABASE IF NOT EXISTS {DB}")
        self.run(f"USE {DB}")

    def drop(self):
        self.run(f"DROP DATABASE IF EXISTS {DB}")


def events():
    """Bob alone: a view from search on the web, 0 -> 49.5 of a 100 s video, a jump back
    from 30 to 25. Cal in a party from Brazil on iOS: 40 -> 100. Two reactions at 25.5
    and one at 80. A like, a comment."""
    rows = [
        (BOB, ZERO, "video.view_start", '{"position":0,"source":"search","platform":"web"}'),
        (BOB, ZERO, "playback.progress", '{"position":49.5,"from":0,"duration":100,"watched":49.5}'),
        (BOB, ZERO, "playback.seek", '{"position":25,"from":30}'),
        (CAL, PARTY, "video.view_start", '{"position":40,"source":"party","platform":"ios","country":"BR"}'),
        (CAL, PARTY, "playback.progress", '{"position":100,"from":40,"duration":100,"watched":60}'),
        (CAL, PARTY, "party.reaction", '{"emoji":"x","position":25.5}'),
        (BOB, PARTY, "party.reaction", '{"emoji":"y","position":25.9}'),
        (CAL, PARTY, "party.reaction", '{"emoji":"y","position":80}'),
        (BOB, ZERO, "video.like", "{}"),
        (CAL, ZERO, "video.comment", "{}"),
    ]
    deliveries = [
        (ZERO, ZERO, "notification.delivery", '{"kind":"party.invite","channel":"push","outcome":"sent","latency_ms":40}'),
    ]
    # Registrations and other activity (no video), days before NOW (a Monday): Bob
    # registered on 11-16 and came back on 11-24 and today; Cal and Dan on 11-23.
    days = [
        (BOB, 14, "user.registered"),
        (BOB, 6, "search.query"),
        (CAL, 7, "user.registered"),
        (DAN, 7, "user.registered"),
    ]
    values = ",".join(
        [
            f"({T} - {i}, '{t}', '{uuid.UUID(int=i + 1)}', '{u}', '{p}', '{VIDEO}', '{props}')"
            for i, (u, p, t, props) in enumerate(rows)
        ]
        + [
            f"({T} - 30, '{t}', '{uuid.UUID(int=200 + i)}', '{u}', '{p}', '{ZERO}', '{props}')"
            for i, (u, p, t, props) in enumerate(deliveries)
        ]
        + [
            f"({T} - {d * 86400}, '{t}', '{uuid.UUID(int=100 + i)}', '{u}', '{ZERO}', '{ZERO}', '{{}}')"
            for i, (u, d, t) in enumerate(days)
        ]
    )
    return (
        "INSERT INTO events (occurred_at, event_type, event_id, user_id, party_id, video_id, properties) "
        f"VALUES {values}"
    )


DAY = "'2026-11-30'"
RANGE = [f"'{VIDEO}'", str(NOW - 86400), str(NOW + 3600)]
DAYS = [f"'{VIDEO}'", DAY, DAY]
LAST = "'2026-11-30'"
SPAN = ["'2026-11-16'", LAST]
# file -> (binds, expected columns, expected rows or None, {bucket} values)
QUERIES = {
    "predict_daily_views.sql": (
        [str(NOW - 35 * 86400), str(NOW + 3600)],
        ["date", "video", "views"],
        [["2026-11-30", VIDEO, "2"]],
        [""],
    ),
    "predict_hourly_viewers.sql": (
        [str(NOW - 8 * 86400), str(NOW + 3600)],
        ["at", "viewer_count"],
        [[str(NOW - 3600), "2"], [str(NOW), "1"]],
        [""],
    ),
    "predict_user_days.sql": (
        [LAST, "'2026-09-21'", LAST],
        ["user", "days_ago"],
        [[BOB, "[0,6,14]"], [CAL, "[0,7]"], [DAN, "[7]"]],
        [""],
    ),
    "behavior_active.sql": ([LAST] * 4, ["dau", "wau", "mau"], [["2", "2", "3"]], [""]),
    "behavior_daily.sql": (
        SPAN,
        ["date", "active_users", "new_users"],
        [["2026-11-16", "1", "1"], ["2026-11-23", "2", "2"], ["2026-11-24", "1", "0"],
         ["2026-11-30", "2", "0"]],
        [""],
    ),
    "behavior_cohort_sizes.sql": (
        SPAN,
        ["cohort", "cohort_users"],
        [["2026-11-16", "1"], ["2026-11-23", "2"]],
        [""],
    ),
    "behavior_cohorts.sql": (
        SPAN * 2,
        ["cohort", "week", "active_users"],
        [["2026-11-16", "0", "1"], ["2026-11-16", "1", "1"], ["2026-11-16", "2", "1"],
         ["2026-11-23", "0", "2"], ["2026-11-23", "1", "1"]],
        [""],
    ),
    "behavior_features.sql": (
        SPAN,
        ["event_type", "event_count", "user_count"],
        [["user.registered", "3", "3"], ["party.reaction", "3", "2"],
         ["playback.progress", "2", "2"], ["video.view_start", "2", "2"],
         ["playback.seek", "1", "1"], ["search.query", "1", "1"],
         ["video.comment", "1", "1"], ["video.like", "1", "1"]],
        [""],
    ),
    "video_totals.sql": (
        RANGE,
        ["event_type", "event_count", "user_count", "seconds_watched", "party_events", "party_users",
         "party_watch_seconds", "solo_events", "solo_users", "solo_watch_seconds"],
        [
            ["party.reaction", "3", "2", "0", "3", "2", "0", "0", "0", "0"],
            ["playback.progress", "2", "2", "109.5", "1", "1", "60", "1", "1", "49.5"],
            ["playback.seek", "1", "1", "0", "0", "0", "0", "1", "1", "0"],
            ["video.comment", "1", "1", "0", "0", "0", "0", "1", "1", "0"],
            ["video.like", "1", "1", "0", "0", "0", "0", "1", "1", "0"],
            ["video.view_start", "2", "2", "0", "1", "1", "0", "1", "1", "0"],
        ],
        [""],
    ),
    "video_series.sql": (
        RANGE,
        ["at", "event_type", "event_count", "user_count", "seconds_watched"],
        None,
        ["hour", "toStartOfDay(hour)", "toDateTime(toMonday(hour))"],
    ),
    "video_breakdown.sql": (
        RANGE * 3,
        ["dimension", "value", "views"],
        [
            ["country", "", "1"], ["country", "BR", "1"],
            ["platform", "ios", "1"], ["platform", "web", "1"],
            ["source", "party", "1"], ["source", "search", "1"],
        ],
        [""],
    ),
    "video_retention.sql": (
        DAYS,
        ["any_low", "any_high", "party_low", "party_high", "solo_low", "solo_high"],
        None,
        [""],
    ),
    "video_heatmap.sql": (
        DAYS,
        ["second", "rewatches", "seeks", "reactions"],
        [
            ["25", "1", "1", "2"], ["26", "1", "0", "0"], ["27", "1", "0", "0"],
            ["28", "1", "0", "0"], ["29", "1", "0", "0"], ["80", "0", "0", "1"],
        ],
        [""],
    ),
    "realtime_activity.sql": (
        [str(NOW - 60 - NOW % 60), str(NOW - 300)],
        ["event_type", "event_count", "user_count", "last_minute"],
        None,
        [""],
    ),
    "realtime_viewers.sql": ([str(NOW - 120)], ["viewer_count"], [["2"]], [""]),
    "realtime_top_videos.sql": (
        [str(NOW - 300)],
        ["video", "viewer_count", "event_count"],
        [[VIDEO, "2", "4"]],
        [""],
    ),
}


# Every panel of deploy/dashboards/*.json and every template variable query, with the
# columns it must return (the panel's fields). Macros of the Grafana ClickHouse plugin
# are expanded for the seeded range.
PANELS = {
    ("analytics-overview", "Views per hour"): ["time", "views"],
    ("analytics-overview", "Daily active users"): ["time", "active_users"],
    ("analytics-overview", "Watch hours per day, alone and in parties"): ["time", "solo_hours", "party_hours"],
    ("analytics-overview", "Registrations per day"): ["time", "registrations"],
    ("analytics-overview", "Top videos"): ["video", "views", "viewers"],
    ("analytics-overview", "Features used"): ["event_type", "event_count", "user_count"],
    ("analytics-video", "$video"): ["video"],
    ("analytics-video", "Views and viewers per hour"): ["time", "views", "viewers"],
    ("analytics-video", "Retention (viewers per hundredth of the video)"): ["point", "viewer_count", "party_viewers", "solo_viewers"],
    ("analytics-video", "Heatmap (per second of the video)"): ["second", "rewatches", "seeks", "reactions"],
    ("analytics-video", "Traffic sources"): ["source", "views"],
    ("analytics-realtime", "Events per minute by type"): ["time", "event_type", "event_count"],
    ("analytics-realtime", "Viewers per minute"): ["time", "viewer_count"],
    ("analytics-realtime", "Top videos, last 5 minutes"): ["video", "viewer_count", "event_count"],
    ("analytics-notifications", "Deliveries per day by channel and outcome"): ["time", "series", "deliveries"],
    ("analytics-notifications", "Latency to outcome (p50, p95 ms) by channel"): ["channel", "p50_ms", "p95_ms"],
}


def expand(sql, start, end):
    """The plugin's macros for [start, end] (unix seconds), the video variable."""
    import re

    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})", sql)
    sql = re.sub(r"\$__dateFilter\((\w+)\)", rf"\1 >= toDate(toDateTime({start})) AND \1 <= toDate(toDateTime({end}))", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace("$__toTime", f"toDateTime({end})")
    return sql.replace("${video}", VIDEO)


def dashboard_queries():
    """(file, panel title or $variable, SQL) of every dashboard."""
    out = []
    for f in sorted(glob.glob(os.path.join(ROOT, "deploy", "dashboards", "*.json"))):
        import json

        d = json.load(open(f))
        name = os.path.basename(f)[:-5]
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                out.append((name, "$" + v["name"], v["query"]))
        for p in d["panels"]:
            for t in p["targets"]:
                out.append((name, p["title"], t["rawSql"]))
    return out


def bind(sql, values):
    parts = sql.split("?")
    if len(parts) - 1 != len(values):
        raise ValueError(f"{len(parts) - 1} placeholders, {len(values)} values")
    out = parts[0]
    for v, rest in zip(values, parts[1:]):
        out += v + rest
    return out


def table(text):
    lines = [l.split("\t") for l in text.strip("\n").split("\n") if l != ""]
    return lines[0], sorted(lines[1:])


MASKS_VIDEO = "5a5a5a5a-0000-4000-8000-000000000004"


def every_point_range(engine):
    """Migration 4's view: one progress event for every pair of points 0 <= p0 <= p1 <=
    99 (of a 100 s video, from p0 to p1 + 0.5, each by its own user) must set exactly
    the bits p0..p1 of that user's masks (`low`: 0..63, `high`: 64..99)."""
    pairs = [(a, b) for a in range(100) for b in range(a, 100)]
    values = ",".join(
        f"({T}, 'playback.progress', '{uuid.UUID(int=10_000 + i)}', '{uuid.UUID(int=20_000 + i)}', "
        f"'{ZERO}', '{MASKS_VIDEO}', '{{\"from\":{a},\"position\":{b + 0.5},\"duration\":100}}')"
        for i, (a, b) in enumerate(pairs)
    )
    engine.run("INSERT INTO events (occurred_at, event_type, event_id, user_id, party_id, video_id, properties) "
               f"VALUES {values}")
    _, rows = table(engine.run(
        "SELECT toString(user_id) AS u, groupBitOrMerge(low) AS lo, groupBitOrMerge(high) AS hi "
        f"FROM video_retention_viewers WHERE video_id = '{MASKS_VIDEO}' GROUP BY user_id"))
    got = {uuid.UUID(u).int - 20_000: (int(lo), int(hi)) for u, lo, hi in rows}
    wrong = []
    for i, (a, b) in enumerate(pairs):
        lo, hi = got.get(i, (0, 0))
        bits = {p for p in range(64) if lo >> p & 1} | {64 + p for p in range(64) if hi >> p & 1}
        # The points as the view maps seconds to them, in doubles (29 / 100 * 100 is
        # 28.999…: point 28, as in the first retention view).
        p0 = min(99, math.floor(a / 100 * 100))
        p1 = max(p0, min(99, math.floor((b + 0.5) / 100 * 100)))
        if bits != set(range(p0, p1 + 1)):
            wrong.append((a, b))
    return [f"0004 masks: {len(wrong)} of {len(pairs)} point ranges wrong, e.g. {wrong[:3]}"] if wrong else []


def check(engine):
    problems = []
    engine.setup()
    try:
        for f in sorted(glob.glob(os.path.join(ROOT, "clickhouse", "0*.sql"))):
            for st in statements(open(f).read()):
                try:
                    engine.run(st)
                except Exception as e:  # noqa: BLE001 - reported with the statement
                    problems.append(f"{os.path.basename(f)}: {e}\n  {st[:160]}")
                    return problems, {}
        engine.run(events())
        results = {}
        files = sorted(glob.glob(os.path.join(ROOT, "clickhouse", "queries", "*.sql")))
        missing = {os.path.basename(f) for f in files} - set(QUERIES)
        if missing:
            problems.append(f"no check for {sorted(missing)}: add them to QUERIES")
        for f in files:
            name = os.path.basename(f)
            if name not in QUERIES:
                continue
            binds, columns, expected, buckets = QUERIES[name]
            text = "\n".join(l for l in open(f).read().splitlines() if not l.lstrip().startswith("--"))
            for bucket in buckets:
                sql = bind(text.replace("{bucket}", bucket), binds)
                try:
                    head, rows = table(engine.run(sql))
                except Exception as e:  # noqa: BLE001
                    problems.append(f"{name} ({bucket}): {e}")
                    continue
                if head != columns:
                    problems.append(f"{name}: columns {head}, expected {columns}")
                if expected is not None and rows != sorted(expected):
                    problems.append(f"{name}: rows {rows}, expected {sorted(expected)}")
                results[(name, bucket)] = rows
        queries = dashboard_queries()
        seen = {(n, t) for n, t, _ in queries}
        if seen != set(PANELS):
            problems.append(f"dashboards and PANELS differ: {sorted(seen ^ set(PANELS))}")
        for name, title, sql in queries:
            try:
                head, rows = table(engine.run(expand(sql, NOW - 40 * 86400, NOW + 60)))
            except Exception as e:  # noqa: BLE001
                problems.append(f"dashboard {name} / {title}: {e}")
                continue
            if head != PANELS.get((name, title)):
                problems.append(f"dashboard {name} / {title}: columns {head}, expected {PANELS.get((name, title))}")
            if not rows:
                problems.append(f"dashboard {name} / {title}: no rows on the seeded events")
            results[(name, title)] = rows
        # Retention worked out by hand: bob covers 0-49, cal 40-99 (cal in a party).
        # The API counts the viewers per point from each viewer's masks; so does this.
        ret = {}
        viewers = [[int(x) for x in r] for r in results.get(("video_retention.sql", ""), [])]
        for point in range(101):
            counts = []
            for k in (0, 2, 4):
                if point == 100:
                    n = sum(1 for v in viewers if v[k] or v[k + 1])
                else:
                    mask, bit = (k, point) if point < 64 else (k + 1, point - 64)
                    n = sum(1 for v in viewers if v[mask] >> bit & 1)
                counts.append(str(n))
            ret[point] = counts
        for point, want in [(100, ["2", "1", "1"]), (0, ["1", "0", "1"]), (45, ["2", "1", "1"]),
                            (49, ["2", "1", "1"]), (50, ["1", "1", "0"]), (99, ["1", "1", "0"])]:
            if ret.get(point) != want:
                problems.append(f"video_retention.sql: point {point} is {ret.get(point)}, expected {want}")
        if len(viewers) != 2:
            problems.append(f"video_retention.sql: {len(viewers)} viewers, expected 2")
        problems += every_point_range(engine)
        return problems, results
    finally:
        engine.drop()


def main():
    engines = [Server()]
    try:
        engines.append(Embedded())
    except ImportError:
        print("chdb is not installed (pip install chdb): only the server is checked", file=sys.stderr)
        if os.environ.get("CLICKHOUSE_COMPAT_REQUIRE_CHDB"):
            return 1
    failed = False
    outputs = []
    for e in engines:
        problems, results = check(e)
        print(f"{e.name} {e.version()}: {len(results)} query runs, {len(problems)} problems")
        for p in problems:
            print("  " + p)
        failed |= bool(problems)
        outputs.append(results)
    if len(outputs) == 2:
        for key in sorted(set(outputs[0]) | set(outputs[1])):
            a, b = outputs[0].get(key), outputs[1].get(key)
            if a != b:
                failed = True
                print(f"  {key}: the engines differ:\n    {engines[0].name}: {a}\n    {engines[1].name}: {b}")
    print("ClickHouse compatibility: " + ("FAILED" if failed else "every migration and query agrees"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

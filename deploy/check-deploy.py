#!/usr/bin/env python3
"""Cross-checks of the deployment files against each other and the code (run by
deploy/check-deploy.sh with the rendered Kubernetes overlays as arguments):

  - the KEDA objects match deploy/k8s/schemas/keda.schema.json;
  - every queue of the code (shared/src/jobs.rs) is served by exactly one worker pool, in
    each overlay and in deploy/compose/compose.yaml, and only known queues are named;
  - each worker Deployment has a ScaledObject whose Redis triggers read the waiting list
    of each of its queues (`wp.{queue}:active`, the key apalis-redis uses; a unit test in
    shared/src/jobs/tests.rs pins it) and whose Prometheus triggers ask about those queues;
  - grace periods cover the drain times of docs/operations.md (api: REQUEST_TIMEOUT_SECS
    + 5, realtime 15 (5 s preStop, 8 s for the sockets' closes, 2 s to publish their
    departures: realtime/src/lib.rs DRAIN_SOCKETS, DRAIN_PUBLISH), workers WORKER_SHUTDOWN_GRACE_SECS + 5, scheduler 5);
  - probes, Services, the Ingress, HPAs and PodDisruptionBudgets point at ports,
    Services and Deployments that exist;
  - compose: every role's command is one the binary has, files it mounts exist, a
    realtime node's stop_grace_period covers its drain;
  - the pooler: PgBouncer's pgbouncer.ini is in transaction mode with prepared
    statements carried (`max_prepared_statements`) and sqlx's startup parameters
    ignored; where DATABASE_URL goes through it, DATABASE_DIRECT_URL goes around it.
"""

import base64
import configparser
import json
import os
import re
import sys
from urllib.parse import urlparse

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES = {"api", "realtime", "worker", "scheduler", "migrate"}
failures = []


def fail(msg):
    failures.append(msg)


def code_queues():
    src = open(os.path.join(ROOT, "shared/src/jobs.rs")).read()
    names = set(re.findall(r'Queue::\w+ => "([a-z]+)"', src))
    if len(names) < 8:
        sys.exit(f"could not read the queue names from shared/src/jobs.rs: {names}")
    return names


def pool_queues(args):
    """The queues of `worker --queues a=1,b` (or none for the default: every queue)."""
    if "--queues" not in args:
        return None
    spec = args[args.index("--queues") + 1]
    return [part.split("=")[0] for part in spec.split(",")]


def check_cover(where, pools, queues):
    seen = {}
    for pool, qs in pools.items():
        for q in qs:
            if q not in queues:
                fail(f"{where}: {pool} names the queue {q!r}, which the code does not have")
            if q in seen:
                fail(f"{where}: the queue {q} is in {seen[q]} and {pool}")
            seen[q] = pool
    for q in sorted(queues - set(seen)):
        fail(f"{where}: no worker pool takes the queue {q}")


def check_pgbouncer_ini(where, text):
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",), comment_prefixes=(";",))
    ini.read_string(text)
    b = ini["pgbouncer"]
    if b.get("pool_mode") != "transaction":
        fail(f"{where}: pgbouncer.ini pool_mode is {b.get('pool_mode')!r}, not transaction")
    if int(b.get("max_prepared_statements", "0")) < 100:
        fail(f"{where}: pgbouncer.ini max_prepared_statements must carry sqlx's 100 "
             "cached statements per connection")
    ignored = {p.strip() for p in b.get("ignore_startup_parameters", "").split(",")}
    for p in ("extra_float_digits", "options"):
        if p not in ignored:
            fail(f"{where}: pgbouncer.ini does not ignore the startup parameter {p} sqlx sends")


def check_database_urls(where, env, poolers):
    """`env`: a role's variables; `poolers`: the host names of PgBouncer."""
    url = env.get("DATABASE_URL")
    if url is None:
        return
    if urlparse(url).hostname in poolers:
        direct = env.get("DATABASE_DIRECT_URL")
        if not direct:
            fail(f"{where}: DATABASE_URL goes through PgBouncer and DATABASE_DIRECT_URL is "
                 "unset: migrations and LISTEN need PostgreSQL itself")
        elif urlparse(direct).hostname in poolers:
            fail(f"{where}: DATABASE_DIRECT_URL goes through PgBouncer too")


def check_overlay(path, queues, keda):
    where = os.path.basename(path)
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    deployments = by_kind.get("Deployment", {})
    config = by_kind["ConfigMap"]["watch-party"]["data"]
    poolers = set()
    for name, cm in by_kind.get("ConfigMap", {}).items():
        if "pgbouncer.ini" in cm.get("data", {}):
            check_pgbouncer_ini(where, cm["data"]["pgbouncer.ini"])
            poolers.add("pgbouncer")
    for name, sec in by_kind.get("Secret", {}).items():
        data = {k: base64.b64decode(v).decode() for k, v in sec.get("data", {}).items()}
        data.update(sec.get("stringData", {}))
        check_database_urls(f"{where}: Secret {name}", data, poolers)
    drain = {"api": int(config.get("REQUEST_TIMEOUT_SECS", 30)) + 5, "realtime": 15,
             "worker": int(config.get("WORKER_SHUTDOWN_GRACE_SECS", 30)) + 5, "scheduler": 5}
    pools = {}
    for name, d in deployments.items():
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        if c["name"] != "watch-party":
            continue
        role = c["args"][0]
        if role not in ROLES:
            fail(f"{where}: {name} runs the unknown role {role!r}")
            continue
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace < drain.get(role, 0):
            fail(f"{where}: {name} may be killed after {grace} s; {role} drains in {drain[role]} s")
        ports = {p["name"] for p in c.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            port = c.get(probe, {}).get("httpGet", {}).get("port")
            if port is not None and port not in ports:
                fail(f"{where}: {name}'s {probe} names the port {port!r}; it has {sorted(ports)}")
        if role == "worker":
            qs = pool_queues(c["args"])
            if qs is None:
                fail(f"{where}: {name} runs every queue; each pool names its own")
                continue
            pools[name] = qs
    check_cover(where, pools, queues)

    scaled = by_kind.get("ScaledObject", {})
    for kind in ("ScaledObject", "TriggerAuthentication"):
        for name, d in by_kind.get(kind, {}).items():
            for e in jsonschema.Draft7Validator(keda).iter_errors(d):
                fail(f"{where}: {kind} {name}: {e.message} at {list(e.absolute_path)}")
    for name, qs in pools.items():
        so = [s for s in scaled.values() if s["spec"]["scaleTargetRef"]["name"] == name]
        if len(so) != 1:
            fail(f"{where}: {name} has {len(so)} ScaledObjects (one expected)")
            continue
        triggers = so[0]["spec"]["triggers"]
        lists = {t["metadata"]["listName"] for t in triggers if t["type"] == "redis"}
        want = {f"wp.{q}:active" for q in qs}
        if lists != want:
            fail(f"{where}: {name} scales on the lists {sorted(lists)}; its queues are {sorted(want)}")
        for t in triggers:
            if t["type"] == "prometheus":
                asked = set(re.findall(r'queue="(\w+)"', t["metadata"]["query"]))
                if asked != set(qs):
                    fail(f"{where}: {name}'s Prometheus trigger asks about {sorted(asked)}")
        if so[0]["spec"].get("minReplicaCount", 1) == 0 and \
                not any(t["type"] == "prometheus" for t in triggers):
            fail(f"{where}: {name} scales to zero with no trigger on its scheduled jobs: "
                 "retries in backoff would wait for the next new job")
    for name in scaled:
        target = scaled[name]["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            fail(f"{where}: ScaledObject {name} scales {target}, which does not exist")

    def selects(selector, d):
        labels = d["spec"]["template"]["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector["matchLabels"].items())

    services = by_kind.get("Service", {})
    for name, s in services.items():
        matched = [d for d in deployments.values() if selects({"matchLabels": s["spec"]["selector"]}, d)]
        if not matched:
            fail(f"{where}: Service {name} selects no Deployment")
        for p in s["spec"]["ports"]:
            for d in matched:
                names = {x["name"] for x in d["spec"]["template"]["spec"]["containers"][0]["ports"]}
                if p["targetPort"] not in names:
                    fail(f"{where}: Service {name} targets the port {p['targetPort']!r} of "
                         f"{d['metadata']['name']}, which has {sorted(names)}")
    for ing in by_kind.get("Ingress", {}).values():
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                b = p["backend"]["service"]
                svc = services.get(b["name"])
                if not svc or b["port"]["name"] not in {x["name"] for x in svc["spec"]["ports"]}:
                    fail(f"{where}: the Ingress path {p['path']} goes to {b}, which does not exist")
    for name, h in by_kind.get("HorizontalPodAutoscaler", {}).items():
        if h["spec"]["scaleTargetRef"]["name"] not in deployments:
            fail(f"{where}: HPA {name} scales a Deployment that does not exist")
    for name, p in by_kind.get("PodDisruptionBudget", {}).items():
        if not any(selects(p["spec"]["selector"], d) for d in deployments.values()):
            fail(f"{where}: PodDisruptionBudget {name} selects no pod")
    print(f"{where}: {len(docs)} objects; {len(deployments)} Deployments; worker pools "
          f"{ {n: q for n, q in sorted(pools.items())} }")


def check_compose(queues):
    path = os.path.join(ROOT, "deploy/compose/compose.yaml")
    compose = yaml.safe_load(open(path))
    pools = {}
    for name, s in compose["services"].items():
        if s.get("image") != "watch-party:local":
            continue
        cmd = s.get("command", [])
        if not cmd or cmd[0] not in ROLES:
            fail(f"compose: {name} runs {cmd!r}, not a role")
            continue
        if cmd[0] == "worker":
            qs = pool_queues(cmd)
            if qs is None:
                fail(f"compose: {name} runs every queue; each pool names its own")
            else:
                pools[name] = qs
        if "JWT_SECRET" not in s.get("environment", {}):
            fail(f"compose: {name} has no JWT_SECRET")
        # No preStop in compose: the realtime drain alone (DRAIN_SOCKETS + DRAIN_PUBLISH).
        grace = str(s.get("stop_grace_period", "10s"))
        if cmd[0] == "realtime" and (not grace.endswith("s") or int(grace[:-1]) < 10):
            fail(f"compose: {name} may be killed after {grace}; a realtime node drains in 10 s")
    check_cover("compose", pools, queues)
    poolers = {n for n, s in compose["services"].items() if "pgbouncer" in s.get("image", "")}
    for n in poolers:
        for v in compose["services"][n].get("volumes", []):
            src = v.split(":")[0]
            if src.endswith("pgbouncer.ini"):
                check_pgbouncer_ini("compose", open(os.path.join(ROOT, "deploy/compose", src)).read())
    for name, s in compose["services"].items():
        if s.get("command", [None])[0] in ROLES:
            check_database_urls(f"compose: {name}", s.get("environment", {}), poolers)
    for name, s in compose["services"].items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else None
            if src and src.startswith("."):
                if not os.path.exists(os.path.join(os.path.dirname(path), src)):
                    fail(f"compose: {name} mounts {src}, which does not exist")
    print(f"compose: {len(compose['services'])} services; worker pools {pools}")


def main():
    queues = code_queues()
    keda = json.load(open(os.path.join(ROOT, "deploy/k8s/schemas/keda.schema.json")))
    jsonschema.Draft7Validator.check_schema(keda)
    for path in sys.argv[1:]:
        check_overlay(path, queues, keda)
    check_compose(queues)
    if failures:
        print("FAILED:")
        for f in failures:
            print(f"  - {f}")
        sys.exit(1)
    print("deployment files: ok")


if __name__ == "__main__":
    main()

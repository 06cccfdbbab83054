#!/usr/bin/env python3
"""The local cluster (issue 18): the compose topology (deploy/compose/compose.yaml) without
containers. The release binary runs every role as its own process: 2 API processes, 2
realtime nodes, the workers in three pools (notify: notify, email, push; media: media,
search, export; background: analytics, system), 2 schedulers; behind nginx (Debian's), which
routes `/ws/` to the nodes and the rest to the API processes, as the Ingress does. Its own
Redis and ClickHouse, a real SMTP server (aiosmtpd), PostgreSQL.

    cluster.py up --bin BIN                  # bring it up; print the addresses; Ctrl-C stops
    cluster.py scenario --bin BIN --load LOAD [--parties 20 --members 100]

The scenario: party sockets (parties x members, through nginx, from a client that is not
ours: deploy/cluster/members.mjs, Node.js `ws`; the hosts chat every second and seek every
2 s) and REST load (comments and replies that notify by email, views into ClickHouse);
then SIGKILL, one at a time, of one realtime node, one API process, one worker pool (kept
down 5 s so its queues back up) and one scheduler, each started again as a supervisor
would. Reported: lost chat messages, lost writes, duplicated notifications and emails (0
expected), how long the sockets took to come back with the party's state, how long each
role took to be ready, how long the worker pool's backlog took to drain.

Needs PostgreSQL, redis-server, clickhouse-server, nginx, ffmpeg, Node.js with `ws`
(deploy/local-cluster.sh installs what is missing). Standard library only.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "dev"))
from faults import (  # noqa: E402
    free_port, http, psql, role_env, start_smtp, stop_all, verdict)
from kills import (  # noqa: E402
    PG, RestLoad, call, check_delivery, clickhouse_service, redis_service, register,
    upload_video)

POOLS = {
    "workers-notify": "notify=4,email=4,push=2",
    "workers-media": "media=1,search=2,export=1",
    "workers-background": "analytics=50,system=2",
}

# The proxy configuration is compose's own (deploy/compose/nginx.conf), pointed at this
# machine's processes: one routing, written once.
COMPOSE_NGINX = os.path.join(HERE, "..", "compose", "nginx.conf")


class Cluster:
    def __init__(self, binary, work):
        self.bin, self.work = binary, work
        self.run = f"cluster{os.getpid()}"
        self.services_log = open(os.path.join(work, "services.log"), "w")
        self.redis = redis_service(self.services_log)
        self.clickhouse = clickhouse_service(work, self.services_log)
        self.procs, self.logs = {}, {}
        self.nginx = self.smtp = None
        self.db = f"wp_{self.run}"

    def up(self):
        """Starts the services, migrates, starts every role and nginx; returns once
        every role is ready and nginx answers."""
        work, binary = self.work, self.bin
        self.redis.start()
        self.clickhouse.start()
        self.smtp, smtp_port, self.mail_dir = start_smtp(work)
        pg_host, pg_port = PG.rsplit(":", 1)
        env = role_env(self.run, work, "local-cluster-secret")
        env.update({
            "DATABASE_URL": f"postgres://postgres@{pg_host}:{pg_port}/{self.db}",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis.port}",
            "CLICKHOUSE_URL": f"http://127.0.0.1:{self.clickhouse.port}",
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "TRUSTED_PROXIES": "127.0.0.1",
            "COMMENTS_PER_MINUTE": "100000",
            "CHAT_PER_MINUTE": "100000",
            "ACCESS_TOKEN_TTL_SECS": "3600",
            "DATABASE_MAX_CONNECTIONS": "8",
            # A job pushed from the outbox and lost with a killed process is pushed again
            # after this long (600 s in production): within the scenario's 60 s wait for
            # the outbox to drain, as the rest of its time scale is compressed.
            "OUTBOX_REDELIVER_SECS": "15",
        })
        self.env = env
        subprocess.run([binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        self.roles = {}
        for name, argv, public in (
                ("api-1", ["api"], True), ("api-2", ["api"], True),
                ("realtime-1", ["realtime"], True), ("realtime-2", ["realtime"], True),
                *((pool, ["worker", "--queues", q], False) for pool, q in POOLS.items()),
                ("scheduler-1", ["scheduler"], False), ("scheduler-2", ["scheduler"], False)):
            ops = free_port()
            extra = {"OPS_BIND_ADDR": f"127.0.0.1:{ops}", "HOSTNAME": name}
            port = None
            if public:
                port = free_port()
                extra["BIND_ADDR"] = f"127.0.0.1:{port}"
            self.roles[name] = {"argv": argv, "env": extra, "ops": f"http://127.0.0.1:{ops}",
                                "port": port}
        for name in self.roles:
            self.start(name)
        for name in self.roles:
            if self.ready_in(name, time.time()) is None:
                sys.exit(f"{name} never became ready; see {work}/{name}.log")
        self.port = free_port()
        self.nginx = self._nginx()
        self.url = f"http://127.0.0.1:{self.port}"

    def _nginx(self):
        d = os.path.join(self.work, "nginx")
        os.makedirs(d)
        conf = open(COMPOSE_NGINX).read()
        # `server api-1:8000` and the like: the role of that name on this machine.
        conf, n = re.subn(r"server ((?:api|realtime)-\d+):8000",
                          lambda m: f"server 127.0.0.1:{self.roles[m.group(1)]['port']}", conf)
        if n != 4:
            sys.exit(f"{COMPOSE_NGINX}: expected 4 upstream servers, found {n}")
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        # Scratch files in this run's folder (Debian's defaults are under /var/lib/nginx).
        temp = "".join(f"\n  {k}_temp_path {d}/{k};"
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = conf.replace("http {", "http {" + temp, 1)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        main = f"daemon off; pid {d}/nginx.pid; error_log {d}/nginx-error.log warn;"
        if os.geteuid() == 0:
            main += " user root;"
        proc = subprocess.Popen(["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf"),
                                 "-g", main], stdout=self.services_log,
                                stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if http("GET", f"http://127.0.0.1:{self.port}/health", timeout=2)[0] == 200:
                return proc
            time.sleep(0.1)
        sys.exit(f"nginx did not start; see {d}/nginx-error.log")

    def start(self, name):
        r = self.roles[name]
        self.logs.setdefault(name, open(os.path.join(self.work, f"{name}.log"), "a"))
        self.procs[name] = subprocess.Popen([self.bin, *r["argv"]], env=dict(self.env, **r["env"]),
                                            stdout=self.logs[name], stderr=subprocess.STDOUT)

    def kill(self, name):
        self.procs[name].kill()
        self.procs[name].wait()

    def ready_in(self, name, t0, limit=60):
        while time.time() < t0 + limit:
            if http("GET", f"{self.roles[name]['ops']}/ready", timeout=2)[0] == 200:
                return round(time.time() - t0, 2)
            time.sleep(0.05)
        return None

    def queue_depth(self, queues):
        """Jobs waiting or running in `queues` (`job_queue_depth` of /metrics)."""
        status, text = http("GET", f"{self.roles['api-2']['ops']}/metrics", timeout=5)
        if status != 200:
            return None
        n = 0
        for q, state, v in re.findall(
                r'job_queue_depth\{queue="(\w+)",state="(\w+)"\} ([0-9.e+]+)', text):
            if q in queues and state in ("active", "inflight"):
                n += float(v)
        return n

    def stop(self, keep):
        """Stops what was started (SIGTERM to the roles: their exit codes)."""
        exits = stop_all(self.procs)
        for p in (self.nginx, self.smtp):
            if p:
                p.terminate()
                p.wait()
        for service in (self.redis, self.clickhouse):
            if service.proc:
                service.kill()
        if not keep:
            psql("postgres", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        return exits


def pct(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round((len(s) - 1) * p))]


def scenario(c, args, failures):
    api = c.url
    names = ["host"] + [f"fan{i}" for i in range(5)]
    tokens = {n: register(api, f"{c.run}_{n}") for n in names}
    psql(c.db, "UPDATE users SET email_verified_at = now()")
    video = upload_video(api, tokens["host"], c.work)

    setup = os.path.join(c.work, "parties.json")
    subprocess.run([args.load, "--url", f"ws://127.0.0.1:{c.port}", "--parties",
                    str(args.parties), "--members", str(args.members), "--setup-only", setup],
                   env=c.env, check=True, stdout=subprocess.DEVNULL)
    t0 = time.time()
    driver = subprocess.Popen(["node", os.path.join(HERE, "members.mjs"), "--setup", setup],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              stderr=open(os.path.join(c.work, "members.log"), "w"))
    try:
        run_members(c, args, failures, driver, t0, names, tokens, video)
    finally:
        if driver.poll() is None:
            driver.kill()


def run_members(c, args, failures, driver, t0, names, tokens, video):
    api = c.url
    line = driver.stdout.readline().strip()
    if not line.startswith("connected"):
        sys.exit(f"the members never all connected: {line!r}; see {c.work}/members.log")
    sockets = args.parties * args.members
    print(f"ready: {len(c.roles)} processes behind nginx on {c.url}; {sockets} sockets in "
          f"{args.parties} parties connected through it in {time.time() - t0:.1f} s")
    on_nodes = {n: stats_sockets(c, n) for n in ("realtime-1", "realtime-2")}
    print(f"sockets per node: {on_nodes}")

    load = RestLoad(api, video, tokens, commenters=names[1:4], viewers=names[4:])
    faults = []
    print(f"{'SIGKILL':<22}{'ready again (s)':<17}{'backlog drained (s)':<21}")
    for name in ("realtime-1", "api-1", "workers-notify", "scheduler-1"):
        time.sleep(args.gap)
        queues = [q.split("=")[0] for q in POOLS.get(name, "").split(",") if q]
        # The pool's steady backlog under this load (jobs waiting or running), to drain
        # back to.
        steady = max((c.queue_depth(queues) or 0) for _ in range(5)) if queues else 0
        t = time.time()
        c.kill(name)
        # A supervisor's restart delay; a worker pool stays down longer, so that its
        # queues back up under the load.
        time.sleep(5 if name.startswith("workers") else 1)
        c.start(name)
        back = c.ready_in(name, t)
        drained, peak = None, 0
        if queues:
            deadline = time.time() + 60
            while time.time() < deadline:
                depth = c.queue_depth(queues)
                peak = max(peak, depth or 0)
                if depth is not None and depth <= max(steady, 2):
                    drained = f"{time.time() - t:.1f} (backlog {peak:.0f}, steady {steady:.0f})"
                    break
                time.sleep(0.2)
            if drained is None:
                failures.append(f"{name}: its backlog not drained within 60 s of its restart")
        faults.append((name, t, back))
        print(f"{name:<22}{str(back):<17}{drained or '-'}")
        if back is None:
            failures.append(f"{name}: not ready again within 60 s")
    time.sleep(args.gap)
    load.stop()
    driver.stdin.write("finish\n")
    driver.stdin.flush()
    report = json.loads(driver.stdout.readline())
    driver.wait(30)

    print(f"party sockets: {report['sockets']}; chat messages sent {report['sent']}, "
          f"acknowledged {report['acknowledged']}, never acknowledged "
          f"{report['unacknowledged']}; lost {report['lost']} (over "
          f"{report['members_missing_messages']} sockets); delivered twice as frames on one "
          f"connection {report['duplicated']} (in a snapshot and then as a frame: "
          f"{report['snapshot_overlap']}); snapshots with more missed than resumed "
          f"{report['has_more']}; not connected or not at the host's last position "
          f"{report['behind']}; close codes {report['closes']}")
    for key, what in (("lost", "acknowledged chat messages lost"),
                      ("duplicated", "messages delivered twice"),
                      ("behind", "sockets not back in step"),
                      ("unacknowledged", "chat messages never acknowledged")):
        if report[key]:
            failures.append(f"{report[key]} {what}")
    for name, t, _ in faults:
        took = [(back - lost) / 1000 for lost, back in report["reconnects"]
                if t * 1000 - 500 <= lost <= t * 1000 + 10000]
        if name.startswith("realtime"):
            print(f"sockets back with the party's state after SIGKILL {name}: {len(took)}, "
                  f"p50 {pct(took, 0.5):.2f} s, p99 {pct(took, 0.99):.2f} s, "
                  f"max {max(took, default=0):.2f} s")
            if len(took) < on_nodes[name] * 0.9:
                failures.append(f"{name}: {on_nodes[name]} sockets on it, {len(took)} came back")
            if took and max(took) > 30:
                failures.append(f"{name}: a socket took {max(took):.1f} s to come back")
        elif took:
            print(f"sockets that reconnected around SIGKILL {name} (none expected): {len(took)}")
            failures.append(f"{len(took)} sockets dropped when {name} was killed")
    drained = check_delivery(c.db, load, c.mail_dir, c.clickhouse.port, len(names), failures)
    print(f"after the load stopped, notifications and emails were all done in {drained:.1f} s")


def stats_sockets(c, node):
    status, body = http("GET", f"{c.roles[node]['ops']}/ws/stats/", timeout=5)
    return json.loads(body).get("sockets") if status == 200 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["up", "scenario"])
    ap.add_argument("--bin", required=True, help="the watch-party binary (release)")
    ap.add_argument("--load", help="the party_load example (release), for the scenario")
    ap.add_argument("--parties", type=int, default=20)
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--gap", type=float, default=8, help="seconds between faults")
    ap.add_argument("--keep", action="store_true", help="keep logs and data")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="wp-cluster-")
    c = Cluster(args.bin, work)
    failures = []
    try:
        c.up()
        if args.mode == "up":
            print(f"up: {c.url} (API and /ws/ through nginx); processes and their ops "
                  f"addresses:")
            for name, r in c.roles.items():
                print(f"  {name:<20} pid {c.procs[name].pid:<8} {r['ops']}")
            print(f"logs in {work}; Ctrl-C stops")
            threading.Event().wait()
        else:
            scenario(c, args, failures)
    except KeyboardInterrupt:
        pass
    finally:
        exits = c.stop(args.keep or args.mode == "up")
        print(f"exit codes on SIGTERM: {exits}")
        failures += [f"{n} exited with {code} on SIGTERM" for n, code in exits.items() if code]
    verdict(failures, work, "ok: nothing acknowledged lost, nothing notified twice, every "
            "socket back and in step, every role ready again", args.keep)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fault rehearsal: every role as its own process, with Redis, PostgreSQL, ClickHouse and a
real SMTP server (aiosmtpd) behind TCP proxies that this script cuts or stalls while load
runs; then checks that every role is ready again by itself, that every acknowledged
request had its effect (at least once: a cut between a send and its record sends it
again, with the same Message-ID), that no process flooded its log, and that each stops
cleanly on SIGTERM.

The load: password-reset requests for a few accounts. Each 200 commits an email and
its outbox row (PostgreSQL), relays it to the email queue (Redis), and a worker sends
it over SMTP. So every acknowledged request must end as a delivered email. Beside it,
views of a video: each 200 is an analytics event committed with its outbox row, which a
worker writes to ClickHouse; so every acknowledged view must end in ClickHouse.

    deploy/dev/faults.sh            # short form (CI): cuts and stalls of 1-5 s
    deploy/dev/faults.sh --long     # adds 30 s outages of each, and two at once

Needs PostgreSQL, Redis and ClickHouse running (deploy/dev/services.sh --test).
Standard library only.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

PG = os.environ.get("FAULTS_PG", "127.0.0.1:5432")
REDIS = os.environ.get("FAULTS_REDIS", "127.0.0.1:6379")
CLICKHOUSE = os.environ.get("FAULTS_CLICKHOUSE", "http://127.0.0.1:8123")


_GIVEN = set()


def free_port():
    """A free port below the kernel's ephemeral range, never handed out twice in a run. A
    role killed and started again binds its port a second time; a port from the ephemeral
    range may by then be some outgoing connection's local port (a kill rehearsal once lost
    its scheduler to "Address already in use" that way), one below it cannot."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(1000):
        port = random.randrange(10000, max(low, 10001))
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


class Proxy:
    """A TCP proxy: `down()` resets every open connection and refuses new ones."""

    def __init__(self, name, target):
        self.name = name
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()
        self.up_flag = True
        # Cleared while paused: bytes wait in the proxy, as in a partition that heals
        # before TCP gives up.
        self.flowing = threading.Event()
        self.flowing.set()
        self.lock = threading.Lock()
        self.conns = set()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(512)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up_flag:
                self._reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                self._reset(client)
                continue
            with self.lock:
                self.conns.add(client)
                self.conns.add(server)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.lock:
                self.conns.discard(src)
                self.conns.discard(dst)

    @staticmethod
    def _reset(s):
        # shutdown() first: close() alone does not reach a peer while another thread
        # is blocked reading the socket, and the peer would hang instead of seeing a
        # reset.
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    def down(self):
        self.up_flag = False
        with self.lock:
            conns = list(self.conns)
            self.conns.clear()
        for s in conns:
            self._reset(s)

    def up(self):
        self.up_flag = True

    def pause(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()


def aiosmtpd_python():
    # Debian's interpreter carries python3-aiosmtpd; a pyenv `python3` may not.
    for candidate in ("/usr/bin/python3", sys.executable, "python3"):
        ok = subprocess.run([candidate, "-c", "import aiosmtpd"], capture_output=True)
        if ok.returncode == 0:
            return candidate
    sys.exit("no python3 with aiosmtpd (deploy/dev/services.sh --test installs it)")


def role_env(run, work, secret):
    """The environment every role of a rehearsal shares: its own Redis prefix, ClickHouse
    database and storage, JSON logs, short heartbeats and sweeps (the caller adds where
    PostgreSQL, Redis, ClickHouse and SMTP are)."""
    env = dict(os.environ)
    env.update({
        "REDIS_PREFIX": run,
        "CLICKHOUSE_DATABASE": f"wp_{run}",
        "STORAGE_DIR": os.path.join(work, "storage"),
        "JWT_SECRET": f"{secret}-0123456789abcdef",
        "RATE_LIMIT_MULTIPLIER": "100000",
        "LOG_FORMAT": "json",
        "RUST_LOG": "info,access=warn,sqlx=warn,apalis=warn",
        "WORKER_HEARTBEAT_SECS": "1",
        "WORKER_MISSED_HEARTBEATS": "3",
        "WORKER_SHUTDOWN_GRACE_SECS": "5",
        "OUTBOX_SWEEP_SECS": "1",
    })
    return env


def start_smtp(work):
    """A real SMTP server (aiosmtpd) writing a Maildir under `work`: (process, port,
    Maildir), answering once this returns."""
    mail_dir = os.path.join(work, "maildir")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(mail_dir, sub))
    port = free_port()
    proc = subprocess.Popen([aiosmtpd_python(), "-m", "aiosmtpd", "-n", "-l",
                             f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Mailbox",
                             mail_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port, mail_dir


def message_ids(mail_dir):
    """The Message-ID of every message the SMTP server stored, one per message."""
    files = [os.path.join(mail_dir, sub, name) for sub in ("new", "cur")
             for name in os.listdir(os.path.join(mail_dir, sub))]
    ids = []
    for name in files:
        with open(name, errors="replace") as f:
            for row in f:
                if row.lower().startswith("message-id:"):
                    ids.append(row.split(":", 1)[1].strip())
                    break
    return ids


def stop_all(procs):
    """SIGTERM to every process, then each one's exit code (killed after 45 s)."""
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
    exits = {}
    for name, p in procs.items():
        try:
            exits[name] = p.wait(timeout=45)
        except subprocess.TimeoutExpired:
            p.kill()
            exits[name] = "killed after 45 s"
    return exits


def verdict(failures, work, ok, keep):
    """Prints the failures and exits 1, or prints `ok` (and removes `work`)."""
    if failures:
        print(f"FAILED (logs in {work}):")
        for f in failures:
            print(f"  - {f}")
        sys.exit(1)
    print(ok)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)


def http(method, url, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def psql(db, sql):
    host, port = PG.rsplit(":", 1)
    out = subprocess.run(
        ["psql", "-h", host, "-p", port, "-U", "postgres", "-d", db, "-At", "-c", sql],
        capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the watch-party binary")
    ap.add_argument("--long", action="store_true", help="add 30 s outages")
    ap.add_argument("--keep", action="store_true", help="keep logs and data")
    args = ap.parse_args()

    run = f"faults{os.getpid()}"
    work = tempfile.mkdtemp(prefix="wp-faults-")
    # A real SMTP server (aiosmtpd, writing a Maildir), behind its proxy too.
    smtp, smtp_port, mail_dir = start_smtp(work)
    redis_proxy = Proxy("redis", REDIS)
    pg_proxy = Proxy("postgres", PG)
    smtp_proxy = Proxy("smtp", f"127.0.0.1:{smtp_port}")
    ch_proxy = Proxy("clickhouse", CLICKHOUSE.split("://", 1)[1])
    pg_host, pg_port = PG.rsplit(":", 1)
    # (what, proxies, seconds, how): `cut` resets every connection and refuses new
    # ones; `stall` holds every byte (a partition that heals).
    scenarios = [("redis", [redis_proxy], 1, "cut"), ("postgres", [pg_proxy], 1, "cut"),
                 ("redis", [redis_proxy], 5, "cut"), ("postgres", [pg_proxy], 3, "stall"),
                 ("redis", [redis_proxy], 3, "stall"), ("smtp", [smtp_proxy], 5, "cut"),
                 ("clickhouse", [ch_proxy], 5, "cut"), ("clickhouse", [ch_proxy], 5, "stall")]
    if args.long:
        scenarios += [("redis", [redis_proxy], 30, "cut"), ("postgres", [pg_proxy], 30, "cut"),
                      ("smtp", [smtp_proxy], 30, "cut"),
                      ("redis+postgres", [redis_proxy, pg_proxy], 10, "cut"),
                      ("postgres", [pg_proxy], 30, "stall"),
                      ("clickhouse", [ch_proxy], 30, "cut"),
                      ("clickhouse", [ch_proxy], 40, "stall")]
    env = role_env(run, work, "faults-rehearsal-secret")
    env.update({
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pg_proxy.port}/wp_{run}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}",
        "CLICKHOUSE_URL": f"http://127.0.0.1:{ch_proxy.port}",
        # A stalled ClickHouse fails its batches after 5 s (then they are retried).
        "CLICKHOUSE_TIMEOUT_SECS": "5",
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_proxy.port}",
    })
    direct = dict(env, DATABASE_URL=f"postgres://postgres@{pg_host}:{pg_port}/wp_{run}",
                  REDIS_URL=f"redis://{REDIS}", CLICKHOUSE_URL=CLICKHOUSE)
    subprocess.run([args.bin, "migrate"], env=direct, check=True,
                   stdout=subprocess.DEVNULL)

    api_port = free_port()
    roles = {
        "api": (["api"], {"BIND_ADDR": f"127.0.0.1:{api_port}"}, f"http://127.0.0.1:{api_port}"),
    }
    for name, argv in (("realtime", ["realtime"]),
                       ("worker", ["worker", "--queues", "email=4,system=2,media=1,analytics=20"]),
                       ("scheduler", ["scheduler"])):
        ops = free_port()
        extra = {"OPS_BIND_ADDR": f"127.0.0.1:{ops}"}
        if name == "realtime":
            extra["BIND_ADDR"] = f"127.0.0.1:{free_port()}"
        roles[name] = (argv, extra, f"http://127.0.0.1:{ops}")
    procs = {}
    failures = []
    counts = {}
    try:
        for name, (argv, extra, _) in roles.items():
            log = open(os.path.join(work, f"{name}.log"), "w")
            procs[name] = (subprocess.Popen([args.bin, *argv], env=dict(env, **extra),
                                            stdout=log, stderr=subprocess.STDOUT), log)

        def ready(name, deadline):
            base = roles[name][2]
            while time.time() < deadline:
                status, _ = http("GET", f"{base}/ready", timeout=3)
                if status == 200:
                    return True
                time.sleep(0.2)
            return False

        start = time.time()
        for name in roles:
            if not ready(name, time.time() + 60):
                sys.exit(f"{name} never became ready; see {work}/{name}.log")
        print(f"all roles ready in {time.time() - start:.1f} s")

        api = roles["api"][2]
        users = []
        tokens = []
        for i in range(4):
            email = f"fault{i}@example.com"
            status, body = http("POST", f"{api}/api/v1/auth/register/", {
                "username": f"fault_{i}", "email": email,
                "password": "correct horse battery staple"}, timeout=60)
            if status != 201:
                sys.exit(f"registration failed: {status} {body}")
            users.append(email)
            tokens.append(json.loads(body)["data"]["access_token"])
        # Imported here: kills.py imports this module.
        from kills import call, clickhouse_count, upload_video
        video = upload_video(api, tokens[0], work)
        views = [0]

        acked = [0]
        stop = threading.Event()

        def load():
            while not stop.is_set():
                status, _ = http("POST", f"{api}/api/v1/auth/password/reset/",
                                 {"email": random.choice(users)}, timeout=10)
                counts[status] = counts.get(status, 0) + 1
                if status == 200:
                    acked[0] += 1
                time.sleep(0.02)

        def viewer(token):
            while not stop.is_set():
                status, _ = call("POST", f"{api}/api/videos/{video}/view/", token,
                                 {"position": 0})
                counts[f"view {status}"] = counts.get(f"view {status}", 0) + 1
                if status == 200:
                    views[0] += 1
                time.sleep(0.05)

        loaders = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        loaders += [threading.Thread(target=viewer, args=(t,), daemon=True) for t in tokens[:2]]
        for t in loaders:
            t.start()

        print(f"{'outage':<28}{'back to ready (s), per role':<50}")
        for what, proxies, secs, how in scenarios:
            time.sleep(3)
            for p in proxies:
                p.down() if how == "cut" else p.pause()
            time.sleep(secs)
            for p in proxies:
                p.up() if how == "cut" else p.resume()
            t0 = time.time()
            back = {}
            while len(back) < len(roles) and time.time() < t0 + 60:
                for name in roles:
                    if name not in back and http("GET", f"{roles[name][2]}/ready",
                                                 timeout=3)[0] == 200:
                        back[name] = round(time.time() - t0, 1)
                time.sleep(0.1)
            for name in roles:
                if name not in back:
                    failures.append(f"{name} not ready 60 s after a {secs} s {what} {how}")
            print(f"{what + ' ' + how + ' ' + str(secs) + ' s':<28}{back}")
        time.sleep(2)
        stop.set()
        for t in loaders:
            t.join()
        print(f"load: {acked[0]} acknowledged resets, {views[0]} acknowledged views; answers "
              f"by status: {dict(sorted(counts.items(), key=str))}")

        deadline = time.time() + (240 if args.long else 90)
        sent = -1
        while time.time() < deadline:
            sent = int(psql(f"wp_{run}", "SELECT count(*) FROM emails "
                                         "WHERE kind = 'reset_password' AND status = 'sent'"))
            committed = int(psql(f"wp_{run}", "SELECT count(*) FROM emails "
                                              "WHERE kind = 'reset_password'"))
            if sent >= committed:
                break
            time.sleep(0.5)
        total = int(psql(f"wp_{run}", "SELECT count(*) FROM emails WHERE kind = 'reset_password'"))
        delivered = message_ids(mail_dir)
        ids = set(delivered)
        print(f"emails: {total} committed, {sent} sent, {len(delivered)} files with "
              f"{len(ids)} distinct Message-IDs (including {len(users)} verification emails); "
              f"{len(delivered) - len(ids)} sent twice (cut between the send and its record)")
        # A request cut off after its commit is committed without being acknowledged:
        # more committed than acknowledged is fine, fewer is a loss.
        if sent != total or total < acked[0]:
            failures.append(f"{acked[0]} resets acknowledged, {total} emails committed, "
                            f"{sent} sent")
            print("unsent emails (id, status, attempts, last_error):")
            print(psql(f"wp_{run}", "SELECT id, status, attempts, left(last_error, 80) "
                                    "FROM emails WHERE status <> 'sent'"))
            print("sessions of the rehearsal database (pid, app, state, xact age, wait, query):")
            print(psql("postgres", "SELECT pid, application_name, state, "
                                   "round(extract(epoch FROM now() - xact_start)), wait_event, "
                                   "left(query, 60) FROM pg_stat_activity "
                                   f"WHERE datname = 'wp_{run}' AND pid <> pg_backend_pid()"))
        if len(ids) != sent + len(users):
            failures.append(f"{len(ids)} distinct emails delivered for {sent + len(users)} sent")
        if acked[0] < 50:
            failures.append(f"only {acked[0]} requests acknowledged: the load did not run")
        # Every acknowledged view in ClickHouse, counted as distinct events: a batch that
        # timed out during a stall may still have been written, and its retry folds
        # into it (ReplacingMergeTree).
        ch_port = int(CLICKHOUSE.rsplit(":", 1)[1])
        in_ch = -1
        deadline = time.time() + 120
        while time.time() < deadline:
            in_ch = clickhouse_count(ch_port, "SELECT uniqExact(event_id) FROM "
                                     f"wp_{run}.events WHERE event_type = 'video.view_start'")
            if in_ch >= views[0]:
                break
            time.sleep(1)
        print(f"views: {views[0]} acknowledged, {in_ch} in ClickHouse")
        if in_ch < views[0]:
            failures.append(f"{views[0]} views acknowledged, {in_ch} in ClickHouse")
        if views[0] < 50:
            failures.append(f"only {views[0]} views acknowledged: the load did not run")
    finally:
        exits = stop_all({name: p for name, (p, _) in procs.items()})
        for _, log in procs.values():
            log.close()
        lines = {}
        for name in procs:
            with open(os.path.join(work, f"{name}.log")) as f:
                rows = f.readlines()
            warn = sum(1 for r in rows if '"level":"WARN"' in r or '"level":"ERROR"' in r)
            lines[name] = (len(rows), warn)
        print(f"exit codes on SIGTERM: {exits}")
        print(f"log lines (all, warn+error): {lines}")
        for name, code in exits.items():
            if code != 0:
                failures.append(f"{name} exited with {code} on SIGTERM")
        # A refused request may log a line or two; beyond that, an outage must not
        # make a process write on its own.
        refused = sum(n for status, n in counts.items() if status not in (200, "view 200"))
        for name, (_, warn) in lines.items():
            if warn > 100 * len(scenarios) + 2 * refused:
                failures.append(f"{name} wrote {warn} warnings: an outage must not flood the log")
        smtp.terminate()
        if not args.keep:
            psql("postgres", f"DROP DATABASE IF EXISTS wp_{run} WITH (FORCE)")
            http("POST", f"{CLICKHOUSE}/?query=DROP%20DATABASE%20IF%20EXISTS%20wp_{run}")
            keys = subprocess.run(["redis-cli", "-h", REDIS.split(":")[0], "-p",
                                   REDIS.split(":")[1], "--scan", "--pattern", f"{run}*"],
                                  capture_output=True, text=True).stdout.split()
            for i in range(0, len(keys), 500):
                subprocess.run(["redis-cli", "-h", REDIS.split(":")[0], "-p",
                                REDIS.split(":")[1], "DEL", *keys[i:i + 500]],
                               capture_output=True)
    verdict(failures, work, "ok: every role came back by itself; every acknowledged request "
            "was delivered (a cut between a send and its record may send it twice, with the "
            "same Message-ID)", args.keep)


if __name__ == "__main__":
    main()

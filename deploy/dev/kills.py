#!/usr/bin/env python3
"""Kill rehearsal (issue 12): every role as its own process (the API, two realtime
nodes, a worker pool, the scheduler) with their own Redis and ClickHouse, a real SMTP
server (aiosmtpd) and PostgreSQL; under load (comments and replies, views, party sockets
with the host seeking), each role is killed with SIGKILL in turn and started again, as a
supervisor would, then ClickHouse is restarted, then stopped for 8 s (SIGSTOP: it hangs
mid-batch), then Redis is restarted empty (it keeps nothing on disk here: the outbox in
PostgreSQL pushes again what Redis lost).
Checks, at the end:
  - every acknowledged comment is stored; every reply to someone else notified its
    parent's author exactly once (in-app) and the notification emails all went out,
    each once (distinct Message-IDs);
  - every acknowledged view reached ClickHouse; every outbox row was cleared (its job
    finished);
  - every party socket is connected again and at the host's last position, and how long
    each took to reconnect and to get the party's state (aim: within 30 s);
  - how long each role took to be ready again.

    deploy/dev/kills.sh              # the rehearsal; figures in docs/operations.md
    deploy/dev/kills.sh --no-redis   # without the restart of Redis

Needs PostgreSQL running, redis-server, clickhouse-server and ffmpeg installed
(deploy/dev/services.sh --test). Standard library only.
"""

import argparse
import base64
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faults import (  # noqa: E402
    free_port, http, message_ids, psql, role_env, start_smtp, stop_all, verdict)

PG = os.environ.get("FAULTS_PG", "127.0.0.1:5432")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Ws:
    """A minimal WebSocket client (RFC 6455): text frames out (masked), frames in."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("closed during the handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise OSError(head.split(b"\r\n")[0].decode())
        self.sock.settimeout(None)
        self.lock = threading.Lock()

    def _frame(self, op, data):
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | op, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        with self.lock:
            self.sock.sendall(head + mask + body)

    def send(self, kind, data):
        self._frame(1, json.dumps({"type": kind, "timestamp": int(time.time() * 1000),
                                   "data": data}).encode())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """The next text frame as JSON; None when the server closed the socket."""
        while True:
            b0, b1 = self._read(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            data = self._read(n)
            if op == 1:
                return json.loads(data)
            if op == 8:
                return None
            if op == 9:
                self._frame(10, data)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Member:
    """A party member's socket: connects to one node, and on any loss to the other one,
    until stopped; notes how long each reconnection took and the last position seen."""

    def __init__(self, name, path, nodes, first):
        self.name, self.path, self.nodes, self.node = name, path, nodes, first
        self.ws = None
        self.connected = threading.Event()
        self.position = None
        self.lost_at = None
        self.reconnects = []  # (lost at, seconds to the party's state)
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()
        threading.Thread(target=self._ping, daemon=True).start()

    def _run(self):
        while not self.stop:
            try:
                ws = Ws(self.nodes[self.node](), self.path)
                first = ws.recv()
                if not first or first["type"] != "party_state":
                    raise OSError(f"first frame: {first}")
                self.position = first["data"]["playback"]["position"]
                self.ws = ws
                if self.lost_at is not None:
                    self.reconnects.append((self.lost_at, time.time() - self.lost_at))
                    self.lost_at = None
                self.connected.set()
                while True:
                    f = ws.recv()
                    if f is None:
                        break
                    if f["type"] in ("video_state", "playback_heartbeat"):
                        self.position = f["data"]["position"]
            except (OSError, EOFError, ValueError):
                pass
            self.connected.clear()
            self.ws = None
            if self.stop:
                return
            if self.lost_at is None:
                self.lost_at = time.time()
            self.node = 1 - self.node
            time.sleep(0.2)

    def _ping(self):
        while not self.stop:
            time.sleep(10)
            ws = self.ws
            if ws:
                try:
                    ws.send("ping", {})
                except OSError:
                    pass


def register(api, name):
    status, body = http("POST", f"{api}/api/v1/auth/register/", {
        "username": name, "email": f"{name}@example.com",
        "password": "correct horse battery staple"}, timeout=60)
    if status != 201:
        sys.exit(f"registration failed: {status} {body}")
    return json.loads(body)["data"]["access_token"]


def call(method, url, token, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def upload_video(api, token, work):
    path = os.path.join(work, "clip.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10",
                    "-pix_fmt", "yuv420p", path], check=True)
    boundary = "wpkills" + os.urandom(8).hex()
    with open(path, "rb") as f:
        video = f.read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nRehearsal\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"visibility\"\r\n\r\npublic\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode() + video + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{api}/api/videos/", data=body, method="POST")
    req.add_header("authorization", f"Bearer {token}")
    req.add_header("content-type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(req, timeout=60) as res:
        vid = json.loads(res.read())["data"]["id"]
    deadline = time.time() + 90
    while time.time() < deadline:
        status, v = call("GET", f"{api}/api/videos/{vid}/", token)
        if status == 200 and v["data"]["status"] == "ready":
            return vid
        time.sleep(0.5)
    sys.exit(f"the video never became ready: {v}")


class Service:
    """A server this rehearsal owns (Redis, ClickHouse), restarted in place."""

    def __init__(self, name, argv, port, check, log):
        self.name, self.argv, self.port, self.check, self.log = name, argv, port, check, log
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.check():
                return
            time.sleep(0.1)
        sys.exit(f"{self.name} did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def clickhouse_service(work, log):
    d = os.path.join(work, "clickhouse")
    for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
        os.makedirs(os.path.join(d, sub))
    http_port, tcp_port = free_port(), free_port()
    with open(os.path.join(d, "users.xml"), "w") as f:
        f.write("""<?xml version="1.0"?><yandex><profiles><default>
<allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
</default></profiles><users><default><password></password>
<networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota>
</default></users><quotas><default></default></quotas></yandex>""")
    with open(os.path.join(d, "config.xml"), "w") as f:
        f.write(f"""<?xml version="1.0"?><yandex>
<logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog></logger>
<listen_host>127.0.0.1</listen_host><http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>
<path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/user_files/</user_files_path>
<format_schema_path>{d}/format_schemas/</format_schema_path><users_config>{d}/users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database>
<mark_cache_size>268435456</mark_cache_size><timezone>UTC</timezone></yandex>""")

    def up():
        return http("GET", f"http://127.0.0.1:{http_port}/ping", timeout=1)[0] == 200

    return Service("clickhouse", ["clickhouse-server", f"--config-file={d}/config.xml"],
                   http_port, up, log)


def redis_service(log):
    port = free_port()

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return Service("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"], port, up, log)


def clickhouse_count(port, sql):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=sql.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return int(res.read().decode().strip() or 0)
    except (OSError, ValueError):
        return -1


class RestLoad:
    """REST load on one API address: `commenters` post comments and replies (replies to
    someone else notify the parent's author in-app and by email), `viewers` record views
    (analytics); what was acknowledged is in `acked`, answers by status in `answers`."""

    def __init__(self, api, video, tokens, commenters, viewers):
        self.api, self.video, self.tokens = api, video, tokens
        self.acked = {"comments": [], "views": 0}
        self.answers = {}
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._commenter, args=(n,), daemon=True)
                        for n in commenters]
        self.threads += [threading.Thread(target=self._viewer, args=(n,), daemon=True)
                         for n in viewers]
        for t in self.threads:
            t.start()

    def _answer(self, status):
        self.answers[status] = self.answers.get(status, 0) + 1

    def _commenter(self, name):
        while not self.halt.is_set():
            with self.lock:
                tops = [c for c in self.acked["comments"] if c[2] is None and c[1] != name]
            parent = random.choice(tops)[0] if tops and random.random() < 0.6 else None
            body = {"content": f"{name} at {time.time():.3f}"}
            if parent:
                body["parent"] = parent
            status, res = call("POST", f"{self.api}/api/videos/{self.video}/comments/",
                               self.tokens[name], body)
            with self.lock:
                self._answer(status)
                if status == 201:
                    self.acked["comments"].append((res["data"]["id"], name, parent))
            time.sleep(0.05)

    def _viewer(self, name):
        while not self.halt.is_set():
            status, _ = call("POST", f"{self.api}/api/videos/{self.video}/view/",
                             self.tokens[name], {"position": 0})
            with self.lock:
                self._answer(status)
                if status == 200:
                    self.acked["views"] += 1
            time.sleep(0.1)

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(15)


def check_delivery(db, load, mail_dir, clickhouse_port, verification_emails, failures):
    """After a RestLoad: every acknowledged comment stored, every reply to someone else
    notified once in-app and once by email (distinct Message-IDs at the SMTP server),
    every acknowledged view in ClickHouse, the outbox empty. Prints the figures, appends
    what failed to `failures`; returns seconds until the notifications and emails were
    all done (the queues' drain time after the load)."""
    acked = load.acked
    print(f"load: {len(acked['comments'])} comments and {acked['views']} views acknowledged; "
          f"answers by status: {dict(sorted(load.answers.items()))}")
    # Thousands of ids: through a file, not the command line.
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        ids = ",".join(f"'{c[0]}'" for c in acked["comments"])
        f.write(f"SELECT count(*) FROM video_comments WHERE id IN ({ids});\n")
    host, port = PG.rsplit(":", 1)
    stored = int(subprocess.run(
        ["psql", "-h", host, "-p", port, "-U", "postgres", "-d", db, "-At", "-f", f.name],
        capture_output=True, text=True, check=True).stdout.strip())
    os.unlink(f.name)
    if stored != len(acked["comments"]):
        failures.append(f"{len(acked['comments'])} comments acknowledged, {stored} stored")
    replies_sql = ("SELECT count(*) FROM video_comments c JOIN video_comments p "
                   "ON p.id = c.parent_id WHERE p.user_id <> c.user_id")
    t0 = time.time()
    deadline = t0 + 90
    while time.time() < deadline:
        replies = int(psql(db, replies_sql))
        notified = int(psql(db, "SELECT count(*) FROM notifications WHERE kind = 'comment.reply'"))
        pending = int(psql(db, "SELECT count(*) FROM emails WHERE status <> 'sent'"))
        if notified >= replies and pending == 0:
            break
        time.sleep(1)
    drained = time.time() - t0
    emails = int(psql(db, "SELECT count(*) FROM emails WHERE kind LIKE 'notification:%'"))
    delivered = message_ids(mail_dir)
    print(f"replies to others: {replies}; reply notifications: {notified}; notification "
          f"emails: {emails} recorded, {pending} not sent; SMTP: {len(delivered)} messages, "
          f"{len(set(delivered))} distinct Message-IDs")
    if notified != replies:
        failures.append(f"{replies} replies to others, {notified} reply notifications")
    if pending:
        failures.append(f"{pending} emails never sent")
    # A worker killed after the SMTP server took a message and before the send was
    # recorded sends it again on re-delivery, with the same Message-ID (receivers
    # fold such copies); no email may go out twice under two identities.
    if len(set(delivered)) != emails + verification_emails:
        failures.append(f"{len(set(delivered))} distinct emails delivered for "
                        f"{emails} notification and {verification_emails} verification emails")
    deadline = time.time() + 90
    views = -1
    while time.time() < deadline:
        # Distinct events: a batch that timed out may still have been written when
        # ClickHouse went on, and its retry folds into it (ReplacingMergeTree).
        views = clickhouse_count(clickhouse_port, "SELECT uniqExact(event_id) FROM "
                                 f"{db}.events WHERE event_type = 'video.view_start'")
        if views >= acked["views"]:
            break
        time.sleep(1)
    print(f"views: {acked['views']} acknowledged, {views} in ClickHouse")
    if views < acked["views"]:
        failures.append(f"{acked['views']} views acknowledged, {views} in ClickHouse")
    # Every job pushed from the outbox finished and cleared its row (a row left
    # would be a job Redis lost and nobody pushed again).
    deadline = time.time() + 60
    left = -1
    while time.time() < deadline:
        left = int(psql(db, "SELECT count(*) FROM outbox"))
        if left == 0:
            break
        time.sleep(1)
    print(f"outbox rows left: {left}")
    if left:
        failures.append(f"{left} outbox rows left: jobs not finished")
    return drained


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the watch-party binary")
    ap.add_argument("--keep", action="store_true", help="keep logs and data")
    ap.add_argument("--no-redis", action="store_true",
                    help="leave out the restart of Redis (empty)")
    args = ap.parse_args()

    run = f"kills{os.getpid()}"
    work = tempfile.mkdtemp(prefix="wp-kills-")
    services_log = open(os.path.join(work, "services.log"), "w")
    redis = redis_service(services_log)
    clickhouse = clickhouse_service(work, services_log)
    redis.start()
    clickhouse.start()
    smtp, smtp_port, mail_dir = start_smtp(work)
    pg_host, pg_port = PG.rsplit(":", 1)
    env = role_env(run, work, "kills-rehearsal-secret")
    env.update({
        "DATABASE_URL": f"postgres://postgres@{pg_host}:{pg_port}/wp_{run}",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}",
        "CLICKHOUSE_URL": f"http://127.0.0.1:{clickhouse.port}",
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        # A hung ClickHouse fails its batches after 3 s (then they are retried).
        "CLICKHOUSE_TIMEOUT_SECS": "3",
        # The load posts comments far faster than a person may.
        "COMMENTS_PER_MINUTE": "100000",
    })
    subprocess.run([args.bin, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)

    api_port = free_port()
    roles = {"api": (["api"], {"BIND_ADDR": f"127.0.0.1:{api_port}"},
                     f"http://127.0.0.1:{api_port}")}
    node_ports = {}
    for name, argv in (("realtime-1", ["realtime"]), ("realtime-2", ["realtime"]),
                       ("worker", ["worker", "--queues",
                                   "email=4,notify=4,push=2,media=1,analytics=50,system=2"]),
                       ("scheduler", ["scheduler"])):
        ops = free_port()
        extra = {"OPS_BIND_ADDR": f"127.0.0.1:{ops}", "HOSTNAME": name}
        if name.startswith("realtime"):
            node_ports[name] = free_port()
            extra["BIND_ADDR"] = f"127.0.0.1:{node_ports[name]}"
        roles[name] = (argv, extra, f"http://127.0.0.1:{ops}")
    procs = {}
    logs = {}

    def start(name):
        argv, extra, _ = roles[name]
        logs.setdefault(name, open(os.path.join(work, f"{name}.log"), "a"))
        procs[name] = subprocess.Popen([args.bin, *argv], env=dict(env, **extra),
                                       stdout=logs[name], stderr=subprocess.STDOUT)

    def ready_in(name, t0, limit=60):
        while time.time() < t0 + limit:
            if http("GET", f"{roles[name][2]}/ready", timeout=2)[0] == 200:
                return round(time.time() - t0, 1)
            time.sleep(0.1)
        return None

    failures = []
    members = []
    try:
        for name in roles:
            start(name)
        for name in roles:
            if ready_in(name, time.time()) is None:
                sys.exit(f"{name} never became ready; see {work}/{name}.log")
        api = roles["api"][2]
        names = ["host"] + [f"fan{i}" for i in range(5)]
        tokens = {n: register(api, f"{run}_{n}") for n in names}
        psql(f"wp_{run}", "UPDATE users SET email_verified_at = now()")
        video = upload_video(api, tokens["host"], work)
        status, party = call("POST", f"{api}/api/parties/", tokens["host"], {
            "title": "Rehearsal", "video_id": video, "control_mode": "host"})
        if status != 201:
            sys.exit(f"party: {status} {party}")
        pid = party["data"]["id"]
        for n in names[1:]:
            status, body = call("POST", f"{api}/api/parties/{pid}/join/", tokens[n], {})
            if status != 200:
                sys.exit(f"join: {status} {body}")
        nodes = [lambda: node_ports["realtime-1"], lambda: node_ports["realtime-2"]]
        members = [Member(n, f"/ws/party/{pid}/?token={tokens[n]}", nodes, i % 2)
                   for i, n in enumerate(names)]
        for m in members:
            if not m.connected.wait(15):
                sys.exit(f"{m.name} never connected")
        print(f"ready: {len(roles)} roles, {len(members)} party sockets on 2 nodes, video {video}")

        load = RestLoad(api, video, tokens, commenters=names[1:4], viewers=names[4:])
        stop = threading.Event()

        def controller():
            k = 0
            while not stop.is_set():
                time.sleep(0.5)
                ws = members[0].ws
                if ws:
                    k += 1
                    try:
                        ws.send("video_control", {"action": "seek", "position": float(k)})
                    except OSError:
                        pass

        control = threading.Thread(target=controller, daemon=True)
        control.start()

        print(f"{'fault':<34}{'ready again (s)':<18}{'sockets back (s): count, max':<30}")
        faults = ["api", "realtime-1", "worker", "scheduler", "realtime-2", "clickhouse",
                  "clickhouse-hang"]
        if not args.no_redis:
            faults.append("redis")
        for what in faults:
            time.sleep(4)
            t0 = time.time()
            if what in procs:
                procs[what].kill()
                procs[what].wait()
                time.sleep(1)  # a supervisor's restart delay
                start(what)
                back = ready_in(what, t0)
            elif what == "clickhouse-hang":
                # Stopped mid-batch (SIGSTOP): connections stay open and nothing answers,
                # past CLICKHOUSE_TIMEOUT_SECS; then it goes on (SIGCONT).
                clickhouse.proc.send_signal(signal.SIGSTOP)
                time.sleep(8)
                clickhouse.proc.send_signal(signal.SIGCONT)
                back = max((ready_in(n, t0) or 999) for n in roles)
            else:
                service = clickhouse if what == "clickhouse" else redis
                service.kill()
                time.sleep(2 if what == "redis" else 3)
                service.start()
                # Every role must be ready again by itself.
                back = max((ready_in(n, t0) or 999) for n in roles)
            time.sleep(3)
            socks = [d for m in members for (at, d) in m.reconnects if at >= t0]
            if what in procs:
                label = f"SIGKILL {what}"
            elif what == "clickhouse-hang":
                label = "clickhouse stopped 8 s (SIGSTOP)"
            else:
                label = f"restart {what} ({'empty' if what == 'redis' else 'data kept'})"
            print(f"{label:<34}{str(back):<18}{len(socks)}, {max(socks, default=0):.1f}")
            if back is None or back > 60:
                failures.append(f"{what}: not ready again within 60 s")
            if socks and max(socks) > 30:
                failures.append(f"{what}: a socket took {max(socks):.1f} s to come back")
        time.sleep(3)
        stop.set()
        control.join(15)
        load.stop()

        # The host's last word: every member must end at it.
        final = 4242.5
        deadline = time.time() + 30
        while time.time() < deadline and members[0].position != final:
            ws = members[0].ws
            if ws:
                try:
                    ws.send("video_control", {"action": "seek", "position": final})
                except OSError:
                    pass
            time.sleep(1)
        deadline = time.time() + 30
        while time.time() < deadline and any(m.position != final for m in members):
            time.sleep(0.2)
        behind = [m.name for m in members if not m.connected.is_set() or m.position != final]
        if behind:
            failures.append(f"sockets not connected or not at the host's position: {behind}")
        check_delivery(f"wp_{run}", load, mail_dir, clickhouse.port, len(names), failures)
        recon = sorted(d for m in members for (_, d) in m.reconnects)
        if recon:
            print(f"socket reconnections: {len(recon)}, median {recon[len(recon) // 2]:.1f} s, "
                  f"max {recon[-1]:.1f} s")
    finally:
        for m in members:
            m.stop = True
            if m.ws:
                m.ws.close()
        exits = stop_all(procs)
        print(f"exit codes on SIGTERM: {exits}")
        for name, code in exits.items():
            if code != 0:
                failures.append(f"{name} exited with {code} on SIGTERM")
        smtp.terminate()
        redis.kill()
        clickhouse.kill()
        if not args.keep:
            psql("postgres", f"DROP DATABASE IF EXISTS wp_{run} WITH (FORCE)")
    verdict(failures, work, "ok: every role came back; nothing acknowledged was lost; no "
            "notification twice; every socket back and in step", args.keep)


if __name__ == "__main__":
    main()

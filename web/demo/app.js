// The reference web client: sign in, open or join a party, watch its video in sync,
// chat and react. Plain ES modules, no build step; the socket protocol is
// docs/realtime.md and docs/asyncapi.yaml, the sync algorithm docs/sync.md (sync.js is
// the compiled port of the Rust crate). Served by the API at /demo/.
import {
  ClockSync,
  SyncSchedule,
  DriftController,
  CHECK_INTERVAL_MS,
  expectedPosition,
} from "./sync.js";

const $ = (id) => document.getElementById(id);
// Appends to a debugging log that keeps at most `max` entries (the oldest tenth goes).
const keep = (log, entry, max) => {
  if (log.length >= max) log.splice(0, max / 10);
  log.push(entry);
};
const local = () => performance.timeOrigin + performance.now();

// ---- REST ----

let session = JSON.parse(sessionStorage.getItem("wp-demo-session") || "null");

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session) headers.Authorization = `Bearer ${session.access_token}`;
  let res = await fetch(`/api${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && session?.refresh_token && path !== "/auth/refresh/") {
    if (await refresh()) return api(method, path, body);
  }
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const e = json?.error || json?.errors || json;
    throw new Error(e?.message || `${res.status} ${JSON.stringify(e)}`);
  }
  return json?.data;
}

async function refresh() {
  try {
    const res = await fetch("/api/auth/refresh/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh_token }),
    });
    if (!res.ok) throw new Error(String(res.status));
    const data = (await res.json()).data;
    setSession({ ...session, ...data });
    return true;
  } catch {
    setSession(null);
    show("signin");
    return false;
  }
}

function setSession(s) {
  session = s;
  if (s) sessionStorage.setItem("wp-demo-session", JSON.stringify(s));
  else sessionStorage.removeItem("wp-demo-session");
  $("who").textContent = s ? `signed in as ${s.user.username}` : "";
}

function show(section) {
  for (const id of ["signin", "lobby", "room"]) $(id).hidden = id !== section;
}

// ---- sign in and the lobby ----

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const login = f.get("login").trim();
  const body = login.includes("@") ? { email: login } : { username: login };
  body.password = f.get("password");
  try {
    const data = await api("POST", "/auth/login/", body);
    if (data.requires_2fa) throw new Error("This account uses two-factor sign-in: use the app.");
    setSession(data);
    await lobby();
  } catch (e) {
    $("signin-error").textContent = e.message;
  }
});

async function lobby() {
  show("lobby");
  $("lobby-error").textContent = "";
  try {
    const parties = await api("GET", "/parties/?scope=mine");
    const list = Array.isArray(parties) ? parties : parties?.results || [];
    $("parties").replaceChildren(
      ...list.map((p) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.textContent = `Open “${p.title}”`;
        b.onclick = () => enter(p.id);
        li.append(b);
        return li;
      }),
    );
  } catch (e) {
    $("lobby-error").textContent = e.message;
  }
}

$("create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = { title: f.get("title") };
  if (f.get("video_id")) body.video_id = f.get("video_id").trim();
  if (f.get("external_url")) body.external_url = f.get("external_url").trim();
  try {
    const p = await api("POST", "/parties/", body);
    await enter(p.id);
  } catch (e) {
    $("lobby-error").textContent = e.message;
  }
});

$("join-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const v = new FormData(ev.target).get("party").trim();
  try {
    const isId = /^[0-9a-f-]{36}$/i.test(v);
    const p = isId
      ? await api("POST", `/parties/${v}/join/`, {})
      : await api("POST", "/parties/join-by-code/", { code: v });
    await enter(isId ? v : p.party?.id || p.id);
  } catch (e) {
    $("lobby-error").textContent = e.message;
  }
});

// ---- the room ----

const video = $("video");
let room = null;

class Room {
  constructor(partyId) {
    this.id = partyId;
    this.ws = null;
    this.closed = false;
    this.clock = new ClockSync();
    this.schedule = new SyncSchedule(local());
    this.drift = new DriftController();
    this.state = null; // the playback state applied
    this.pending = null; // a state whose updated_at is still ahead
    this.videoKey = null;
    this.lastMessageId = null;
    this.syncSeeking = false;
    this.starting = false; // play() called, the player not moving yet
    this.pendingTimer = null;
    this.controlAt = -Infinity;
    this.buffering = false;
    this.members = new Map();
    this.stats = { seeks: 0, rates: 0, error: null };
    // The last checks, for whoever debugs sync (and the browser run): [local time,
    // currentTime, expected position, playbackRate before, action, rate set, clock
    // offset estimate].
    this.trace = [];
    // The player's media events: [local time, event, currentTime, readyState, buffered
    // end around currentTime].
    this.events = [];
    this.timer = setInterval(() => this.tick(), CHECK_INTERVAL_MS);
    this.retry = 0;
  }

  async connect() {
    if (this.closed) return;
    const { ticket } = await api("POST", "/auth/ws-ticket/");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let url = `${scheme}://${location.host}/ws/party/${this.id}/?ticket=${encodeURIComponent(ticket)}`;
    if (this.lastMessageId) url += `&last_message_id=${this.lastMessageId}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (ev) => this.onFrame(JSON.parse(ev.data), local());
    ws.onclose = (ev) => {
      if (this.closed) return;
      // Kicked, banned, left, the party ended: not coming back.
      if ([4003, 4004].includes(ev.code)) {
        $("room-error").textContent = `Closed: ${ev.reason}`;
        return;
      }
      const delay = Math.min(10_000, 500 * 2 ** this.retry++) * (0.5 + Math.random());
      setTimeout(() => this.connect().catch((e) => this.fail(e)), delay);
    };
    ws.onopen = () => {
      this.retry = 0;
      this.schedule.burst(local());
    };
  }

  fail(e) {
    $("room-error").textContent = e.message;
  }

  send(type, data = {}) {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type, timestamp: Date.now(), data }));
    }
  }

  close() {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.pendingTimer);
    this.ws?.close(1000);
  }

  onFrame(f, arrived) {
    const d = f.data || {};
    if (f.timestamp && !this.clock.isConsistent(f.timestamp, arrived)) {
      this.clock.clear();
      this.schedule.burst(arrived);
    }
    switch (f.type) {
      case "party_state":
        $("room-title").textContent = d.party.title;
        this.you = d.you;
        this.members = new Map(d.participants.map((p) => [p.user.id, p]));
        this.renderMembers();
        for (const m of d.chat.messages) this.chat(m);
        this.playback(d.playback, true);
        break;
      case "sync_response":
        this.clock.addSample(d.client_time, d.server_receive, d.server_send, arrived);
        break;
      case "video_state":
        this.playback(d, true);
        break;
      case "playback_heartbeat":
        this.playback(d, false);
        break;
      case "chat_message":
        this.chat(d);
        break;
      case "reaction":
        $("reactions-shown").textContent = `${d.emoji} ${d.user.username} (${d.count})`;
        break;
      case "user_joined":
        this.members.set(d.user.id, { user: d.user, role: d.role, online: true });
        this.renderMembers();
        break;
      case "user_left":
        this.members.delete(d.user.id);
        this.renderMembers();
        break;
      case "presence":
        for (const j of d.joined) this.members.set(j.user.id, { ...j, online: true });
        for (const l of d.left) this.members.delete(l.user.id);
        this.renderMembers();
        break;
      case "error":
        $("room-error").textContent = `${d.code}: ${d.message}`;
        break;
      default:
        break;
    }
  }

  // docs/sync.md, "Frames from the server": drop older states, hold future ones.
  playback(s, isChange) {
    if (this.state && s.seq < this.state.seq) return;
    if (this.pending && s.seq < this.pending.seq) return;
    if (!isChange && this.state && s.seq === this.state.seq) return;
    this.loadVideo(s.video).catch((e) => this.fail(e));
    const now = this.clock.serverNow(local());
    this.note(isChange ? "state" : "heartbeat", s, now);
    if (now !== null && s.updated_at > now) {
      if (!this.state) this.apply({ ...s, status: "paused" });
      this.pending = s;
      // Applied at its instant, not at the next 100 ms tick (up to 100 ms late).
      clearTimeout(this.pendingTimer);
      this.pendingTimer = setTimeout(() => this.applyPending(true), s.updated_at - now);
    } else {
      this.pending = null;
      this.apply(s);
    }
  }

  // The held state's instant came: its timer fired (within a few ms; the clock estimate
  // may have moved by as much since, which the checks absorb), or a tick saw it pass.
  applyPending(timer) {
    const s = this.pending;
    if (!s) return;
    const server = this.clock.serverNow(local());
    if (!timer && (server === null || server < s.updated_at)) return;
    clearTimeout(this.pendingTimer);
    this.pending = null;
    this.apply(s);
  }

  // Kept with the media events: [local time, what, seq, status, updated_at, estimated
  // server time] (bounded).
  note(what, s, now) {
    keep(this.events, [local(), what, s.seq, s.status, s.updated_at, now], 5_000);
  }

  apply(s) {
    this.note("apply", s, this.clock.serverNow(local()));
    this.state = s;
    this.drift.reset();
    this.controlAt = local();
    if (s.status === "playing") {
      // Until the player really moves (its `playing` event), readings only measure how
      // long it takes to start: no checks.
      if (video.paused) this.starting = true;
      video.playbackRate = this.drift.baseRate(s.rate);
      video.play().catch(() => {
        $("room-error").textContent = "Click the video to allow playback.";
      });
      this.check();
    } else {
      this.starting = false;
      video.pause();
      if (Math.abs(video.currentTime - s.position) > 0.001) video.currentTime = s.position;
    }
  }

  async loadVideo(v) {
    const key = v.id || v.url || "";
    if (key === this.videoKey) return;
    this.videoKey = key;
    if (v.id) {
      // The signed link names PUBLIC_URL; the page loads it from its own origin (the
      // same API), so a page behind another host name or port plays it too.
      const link = new URL((await api("POST", `/videos/${v.id}/download-token/`)).url);
      video.src = link.pathname + link.search;
    } else if (v.url) {
      video.src = v.url;
    } else {
      video.removeAttribute("src");
    }
  }

  tick() {
    const now = local();
    if (this.schedule.poll(now)) this.send("sync_request", { client_time: now });
    const server = this.clock.serverNow(now);
    if (this.pending && server !== null && server >= this.pending.updated_at) this.applyPending(false);
    this.check();
    this.renderSync(server);
  }

  // docs/sync.md step 3: one check while the party and the player are playing.
  check() {
    const s = this.state;
    const server = this.clock.serverNow(local());
    if (!s || s.status !== "playing" || server === null) return;
    if (video.paused || video.seeking || video.readyState < 3 || this.starting) return;
    const expected = expectedPosition(s, server);
    const action = this.drift.update(
      local(),
      { position: video.currentTime, rate: video.playbackRate },
      expected,
      s.rate,
    );
    this.stats.error = video.currentTime - expected;
    keep(this.trace, [local(), video.currentTime, expected, video.playbackRate, action.kind, action.rate ?? null, this.clock.offset()], 20_000);
    if (action.kind === "set_rate") {
      video.playbackRate = action.rate;
      this.stats.rates += 1;
    } else if (action.kind === "seek") {
      this.syncSeeking = true;
      video.currentTime = action.position;
      video.playbackRate = action.rate;
      this.stats.seeks += 1;
    }
  }

  chat(m) {
    if (document.getElementById(`m-${m.id}`)) return;
    this.lastMessageId = m.id;
    const li = document.createElement("li");
    li.id = `m-${m.id}`;
    const who = document.createElement("b");
    who.textContent = m.user.username;
    li.append(who, m.is_deleted ? "(deleted)" : m.content);
    $("chat").append(li);
    $("chat").scrollTop = $("chat").scrollHeight;
  }

  renderMembers() {
    $("members").replaceChildren(
      ...[...this.members.values()].map((p) => {
        const li = document.createElement("li");
        li.textContent = `${p.user.username}${p.role && p.role !== "member" ? ` (${p.role})` : ""}`;
        return li;
      }),
    );
  }

  renderSync(server) {
    const s = this.state;
    const rows = [
      ["clock offset", this.clock.offset() === null ? "…" : `${this.clock.offset().toFixed(1)} ms`],
      ["state", s ? `${s.status} @ ${s.position.toFixed(2)} s ×${s.rate} (seq ${s.seq})` : "…"],
      ["pending", this.pending ? `seq ${this.pending.seq} in ${(this.pending.updated_at - server).toFixed(0)} ms` : "—"],
      ["error", this.stats.error === null ? "—" : `${(this.stats.error * 1000).toFixed(1)} ms`],
      ["player rate", video.playbackRate.toFixed(4)],
      ["corrections", `${this.stats.seeks} seeks, ${this.stats.rates} rate changes`],
    ];
    $("sync").replaceChildren(
      ...rows.flatMap(([k, v]) => {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v;
        return [dt, dd];
      }),
    );
  }
}

// Every media event that says the player stopped or started, kept (bounded) with the
// checks' trace for whoever debugs sync.
for (const name of ["waiting", "playing", "seeking", "seeked", "stalled", "canplay", "pause", "play", "loadedmetadata", "emptied"]) {
  video.addEventListener(name, () => {
    if (!room) return;
    let bufferedEnd = null;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= video.currentTime + 0.5) bufferedEnd = video.buffered.end(i);
    }
    keep(room.events, [local(), name, video.currentTime, video.readyState, bufferedEnd], 5_000);
  });
}

// The player's own events: buffering (with its reason) and ready.
video.addEventListener("waiting", () => {
  if (!room || room.buffering) return;
  room.buffering = true;
  const reason = room.syncSeeking ? "sync_seek" : local() - room.controlAt < 2_000 ? "control" : "stall";
  room.send("buffering", { reason });
});
// Ready again: say so as soon as the player can play, also while paused. A member who
// buffers makes a `wait` room wait (status `waiting`, every player paused), so its own
// player never fires `playing` until the room resumes, which it does only on `ready`:
// waiting for `playing` here held the room until the member reconnected (the browser
// run's member 300 ms away, ~16 s each time).
function readyAgain() {
  if (room?.buffering && video.readyState >= 3) {
    room.buffering = false;
    room.drift.reset();
    room.send("ready");
  }
}
video.addEventListener("playing", () => {
  if (!room) return;
  room.syncSeeking = false;
  if (room.starting) {
    room.starting = false;
    room.check();
  }
  readyAgain();
});
video.addEventListener("canplay", readyAgain);
// A seek landed: check at once (the first check after a seek learns the seek lead and
// may try once more; events, unlike timers, are not slowed in hidden tabs).
video.addEventListener("seeked", () => {
  if (!room) return;
  room.syncSeeking = false;
  room.check();
});
video.addEventListener("error", () => {
  // A signed link lasts 5 minutes: ask for a new one and carry on where we were.
  if (!room || !room.state?.video?.id) return;
  const at = video.currentTime;
  room.videoKey = null;
  room
    .loadVideo(room.state.video)
    .then(() => {
      video.currentTime = at;
      if (room.state.status === "playing") video.play().catch(() => {});
    })
    .catch((e) => room.fail(e));
});
video.addEventListener("click", () => {
  if (room?.state?.status === "playing") video.play().catch(() => {});
});
// Hidden tabs run timers about once a second: the controller measures that by itself;
// back in view, the clock gets a burst and the controller starts afresh.
document.addEventListener("visibilitychange", () => {
  if (room && document.visibilityState === "visible") {
    room.schedule.burst(local());
    room.drift.reset();
  }
});

for (const b of document.querySelectorAll("[data-action]")) {
  b.addEventListener("click", () => {
    const action = b.dataset.action;
    const data = { action };
    if (action === "seek") data.position = Number($("seek-to").value);
    if (action === "play" || action === "pause") data.position = video.currentTime;
    room?.send("video_control", data);
  });
}
$("rate").addEventListener("change", () => {
  room?.send("video_control", { action: "rate", rate: Number($("rate").value) });
});
for (const b of document.querySelectorAll("[data-emoji]")) {
  b.addEventListener("click", () => room?.send("reaction", { emoji: b.dataset.emoji }));
}
$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = ev.target.elements.content;
  const content = input.value.trim();
  if (!content || !room) return;
  room.send("chat_message", { content, client_id: crypto.randomUUID() });
  input.value = "";
});
$("leave").addEventListener("click", async () => {
  if (!room) return;
  const id = room.id;
  room.close();
  room = null;
  video.pause();
  await api("POST", `/parties/${id}/leave/`).catch(() => {});
  await lobby();
});

async function enter(partyId) {
  room?.close();
  $("chat").replaceChildren();
  $("room-error").textContent = "";
  show("room");
  history.replaceState(null, "", `#party=${partyId}`);
  room = new Room(partyId);
  window.wpRoom = room; // for the browser test and the curious
  await room.connect().catch((e) => room.fail(e));
}

// ---- start ----

setSession(session);
const linked = new URLSearchParams(location.hash.slice(1)).get("party");
if (!session) show("signin");
else if (linked) enter(linked);
else lobby();

// The party members of the local-cluster scenario (deploy/cluster/cluster.py), as a client
// that is not ours (Node.js `ws`): every socket of `party_load --setup-only FILE` goes
// through the reverse proxy, reconnects by itself when its node goes away (backoff 0.2 s
// doubling to 3 s, jittered, resuming chat with `last_message_id` as a web client does),
// and notes what it saw. In each party the first socket (the host) sends a chat message
// every `--chat-ms` (a `client_id` each; resent with the same `client_id` after a
// reconnect while unacknowledged) and seeks every `--seek-ms`.
//
//   node members.mjs --setup FILE [--handshakes 50] [--chat-ms 1000] [--seek-ms 2000]
//
// Lines on stdout: `connected N` once every socket has its party's state; then, on the
// line `finish` on stdin: the host of every party seeks to a last position, the sockets
// get up to 60 s to show it and every acknowledged message, and one JSON report follows:
//   lost: acknowledged chat messages (sent after the member first connected) that a
//         member never got, live or in its resumed snapshot (0 expected);
//   duplicated: one message delivered twice as a frame on one connection (0 expected);
//   snapshot_overlap: a message in a (re)connection's snapshot and then as a frame too
//         (expected now and then: clients keep messages by id);
//   behind: sockets not connected or not at the host's last position at the end;
//   reconnects: [lost at, back at] (Unix ms) per reconnection, `back` being the party
//               state's arrival; closes by code.
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, v, i, all) => (i % 2 ? acc : [...acc, [v.replace(/^--/, ''), all[i + 1]]]), []),
);
const handshakes = Number(args.handshakes ?? 50);
const chatMs = Number(args['chat-ms'] ?? 1000);
const seekMs = Number(args['seek-ms'] ?? 2000);
const FINAL = 4242.5;
const parties = JSON.parse(readFileSync(args.setup, 'utf8'));

let stopping = false;
const closes = new Map();
const acked = parties.map(() => new Map()); // per party: message id -> sent at (ms)
const members = [];

class Member {
  constructor(party, url, host) {
    Object.assign(this, { party, url, host });
    this.ws = null;
    this.seen = new Set();
    this.lastMessageId = null;
    this.firstConnect = null;
    this.lostAt = null;
    this.attempt = 0;
    this.reconnects = [];
    this.seq = -1;
    this.position = null;
    this.duplicated = 0;
    this.overlap = 0;
    this.hasMore = 0;
    // The host's messages in flight: client_id -> {content, sentAt}.
    this.pending = new Map();
    this.sent = 0;
  }

  connect(onState) {
    const url = this.lastMessageId ? `${this.url}&last_message_id=${this.lastMessageId}` : this.url;
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10000 });
    // This connection's messages: from its snapshot, and from frames.
    const conn = { snapshot: new Set(), frames: new Set() };
    let gone = false;
    const lost = () => {
      if (gone) return;
      gone = true;
      if (this.ws === ws) this.ws = null;
      if (stopping) return;
      if (this.lostAt === null) this.lostAt = Date.now();
      const delay = Math.min(3000, 200 * 2 ** this.attempt) * (0.5 + Math.random());
      this.attempt += 1;
      setTimeout(() => this.connect(), delay);
    };
    ws.on('error', lost);
    ws.on('close', (code) => {
      if (!stopping) closes.set(code, (closes.get(code) ?? 0) + 1);
      lost();
    });
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      switch (f.type) {
        case 'party_state': {
          this.ws = ws;
          this.attempt = 0;
          const now = Date.now();
          if (this.firstConnect === null) this.firstConnect = now;
          if (this.lostAt !== null) {
            this.reconnects.push([this.lostAt, now]);
            this.lostAt = null;
          }
          const chat = f.data.chat;
          if (chat.has_more) this.hasMore += 1;
          for (const m of chat.messages) {
            conn.snapshot.add(m.id);
            this.message(m);
          }
          this.playback(f.data.playback);
          if (this.host) for (const [clientId, p] of this.pending) this.sendChat(clientId, p);
          if (onState) onState();
          break;
        }
        case 'chat_message':
          // A message stored while the socket subscribed may come in its snapshot and
          // again as a frame (the node subscribes before it reads, so as not to miss
          // one): clients keep messages by id. The same frame twice is a fault.
          if (conn.frames.has(f.data.id)) this.duplicated += 1;
          else if (conn.snapshot.has(f.data.id)) this.overlap += 1;
          conn.frames.add(f.data.id);
          this.message(f.data);
          break;
        case 'video_state':
        case 'playback_heartbeat':
          this.playback(f.data);
          break;
        default:
      }
    });
  }

  message(m) {
    this.seen.add(m.id);
    this.lastMessageId = m.id;
    if (this.host && m.client_id && this.pending.has(m.client_id)) {
      acked[this.party].set(m.id, this.pending.get(m.client_id).sentAt);
      this.pending.delete(m.client_id);
    }
  }

  playback(p) {
    if (p.seq >= this.seq) {
      this.seq = p.seq;
      this.position = p.position;
    }
  }

  send(type, data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type, timestamp: Date.now(), data }));
      return true;
    }
    return false;
  }

  sendChat(clientId, p) {
    this.send('chat_message', { content: p.content, client_id: clientId });
  }

  chat() {
    this.sent += 1;
    const clientId = `p${this.party}-${this.sent}`;
    const p = { content: `message ${this.sent} of party ${this.party}`, sentAt: Date.now() };
    this.pending.set(clientId, p);
    this.sendChat(clientId, p);
  }
}

parties.forEach((p, i) => p.urls.forEach((url, j) => members.push(new Member(i, url, j === 0))));

// Join `handshakes` at a time, as a crowd arriving does.
let next = 0;
let ready = 0;
await new Promise((resolve) => {
  const one = () => {
    if (next >= members.length) return;
    const m = members[next++];
    m.connect(() => {
      ready += 1;
      if (ready === members.length) resolve();
      one();
    });
  };
  for (let i = 0; i < Math.min(handshakes, members.length); i++) one();
});
console.log(`connected ${members.length}`);

const hosts = members.filter((m) => m.host);
let k = 0;
const chatTimer = setInterval(() => hosts.forEach((h) => h.chat()), chatMs);
const seekTimer = setInterval(() => {
  k += 1;
  hosts.forEach((h) => h.send('video_control', { action: 'seek', position: k }));
}, seekMs);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'finish') break;
}
clearInterval(chatTimer);
clearInterval(seekTimer);

// The last word: every host seeks to FINAL until its own state shows it; then every
// socket gets up to 60 s to be connected, at FINAL, with every acknowledged message.
const missing = (m) => {
  let n = 0;
  for (const [id, sentAt] of acked[m.party]) if (sentAt >= m.firstConnect && !m.seen.has(id)) n += 1;
  return n;
};
const settled = (m) => m.ws !== null && m.position === FINAL && missing(m) === 0;
const deadline = Date.now() + 60000;
while (Date.now() < deadline) {
  for (const h of hosts) {
    if (h.position !== FINAL) h.send('video_control', { action: 'seek', position: FINAL });
  }
  if (members.every(settled) && hosts.every((h) => h.pending.size === 0)) break;
  await sleep(500);
}
stopping = true;

const lostByMember = members.map(missing);
const report = {
  sockets: members.length,
  parties: parties.length,
  acknowledged: acked.reduce((n, a) => n + a.size, 0),
  unacknowledged: hosts.reduce((n, h) => n + h.pending.size, 0),
  sent: hosts.reduce((n, h) => n + h.sent, 0),
  lost: lostByMember.reduce((a, b) => a + b, 0),
  members_missing_messages: lostByMember.filter((n) => n > 0).length,
  duplicated: members.reduce((n, m) => n + m.duplicated, 0),
  snapshot_overlap: members.reduce((n, m) => n + m.overlap, 0),
  has_more: members.reduce((n, m) => n + m.hasMore, 0),
  behind: members.filter((m) => m.ws === null || m.position !== FINAL).length,
  reconnects: members.flatMap((m) => m.reconnects),
  closes: Object.fromEntries(closes),
};
console.log(JSON.stringify(report));
for (const m of members) if (m.ws) m.ws.terminate();
process.exit(0);

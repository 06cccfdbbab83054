// Fan-out latency measured by a client that is not ours (Node.js `ws`): N sockets join one
// party, `--handshakes` at a time; then the first (the host) seeks `--rate` times a second
// for `--seconds`, stamping each control with its send time, and every socket parses each
// frame it gets (as a web client would) and records send -> receipt for the answers.
//   node fanout.mjs --setup FILE                 # a watch-party node: URLs from
//                                                # `party_load --setup-only FILE`
//   node fanout.mjs --relay ws://HOST:PORT/room --members 1000   # the bare relay
//     [--same-size true]                         # frames as big as the server's answers
// Prints p50/p99/max over all deliveries and how many sockets were closed or lost.
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, v, i, all) => (i % 2 ? acc : [...acc, [v.replace(/^--/, ''), all[i + 1]]]), []),
);
const handshakes = Number(args.handshakes ?? 50);
const seconds = Number(args.seconds ?? 10);
const rate = Number(args.rate ?? 5);
const relay = args.relay !== undefined;
// `--same-size true`: the relay's frames carry what the server's answers do.
const sameSize = args['same-size'] === 'true';
let urls;
if (relay) {
  urls = Array.from({ length: Number(args.members ?? 1000) }, () => args.relay);
} else {
  urls = JSON.parse(readFileSync(args.setup, 'utf8'))[0].urls;
}
// The answer to a control: the server's `video_state`; the relay passes the control on.
const marker = relay ? 'video_control' : 'video_state';

let measuring = false;
const latencies = [];
const closes = new Map();
let stopping = false;

function open(url) {
  return new Promise((resolve) => {
    const connect = () => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      let ready = relay;
      ws.on('open', () => {
        if (relay) resolve(ws);
      });
      ws.on('message', (data) => {
        const f = JSON.parse(data.toString());
        if (!ready && f.type === 'party_state') {
          ready = true;
          resolve(ws);
          return;
        }
        if (measuring && f.type === marker) {
          latencies.push(performance.now() - f.data.position * 1000);
        }
      });
      ws.on('close', (code, reason) => {
        if (stopping) return;
        const k = `${code} ${reason}`;
        closes.set(k, (closes.get(k) ?? 0) + 1);
      });
      ws.on('error', (e) => {
        if (!ready) setTimeout(connect, 200);
        else console.error(`socket error: ${e.message}`);
      });
    };
    connect();
  });
}

const t0 = performance.now();
const sockets = new Array(urls.length);
let next = 0;
async function worker() {
  while (next < urls.length) {
    const i = next++;
    sockets[i] = await open(urls[i]);
  }
}
// The host first, alone, then the others `handshakes` at a time.
sockets[0] = await open(urls[0]);
next = 1;
await Promise.all(Array.from({ length: handshakes }, worker));
console.log(`connected ${urls.length} sockets in ${((performance.now() - t0) / 1000).toFixed(1)} s (${handshakes} handshakes at a time)`);
await new Promise((r) => setTimeout(r, 2000));

measuring = true;
const host = sockets[0];
const end = performance.now() + seconds * 1000;
await new Promise((resolve) => {
  const timer = setInterval(() => {
    if (performance.now() >= end) {
      clearInterval(timer);
      resolve();
      return;
    }
    const position = performance.now() / 1000;
    const data = { action: 'seek', position };
    if (sameSize) {
      // What the server answers a seek with (a 340-byte `video_state`), so the relay
      // carries as many bytes and the client parses as much as from the server.
      Object.assign(data, {
        expected_position: position, rate: 1.0, seq: 1, server_time: Date.now(), status: 'paused',
        updated_at: Date.now(), user: { id: '9660718f-251d-4ec7-add6-a7d7e8397dd3', username: 'lde693f9_1' },
        video: { id: null, url: 'https://example.com/load.mp4' },
      });
    }
    host.send(JSON.stringify({ type: 'video_control', timestamp: Date.now(), data }));
  }, 1000 / rate);
});
await new Promise((r) => setTimeout(r, 500));
measuring = false;
stopping = true;
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.round((latencies.length - 1) * p)]?.toFixed(2);
console.log(`fan-out latency (Node.js ws client) over ${latencies.length} deliveries: p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms`);
const lost = [...closes.values()].reduce((a, b) => a + b, 0);
console.log(`sockets closed or lost: ${lost} ${JSON.stringify(Object.fromEntries(closes))}`);
for (const s of sockets) s.terminate();
process.exit(0);

// A bare WebSocket relay: what a socket sends goes as it is to every other socket of the
// same path. No authentication, no state, no persistence, no rate limits: the floor a
// fan-out server can be compared with (deploy/bench/node-fanout.sh).
// usage: node relay.mjs PORT
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 8199);
const rooms = new Map();
const wss = new WebSocketServer({ port, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const room = req.url;
  if (!rooms.has(room)) rooms.set(room, new Set());
  const members = rooms.get(room);
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    for (const m of members) {
      if (m !== ws && m.readyState === 1) m.send(data, { binary: isBinary });
    }
  });
  ws.on('close', () => members.delete(ws));
});
wss.on('listening', () => console.log(`relay listening on ${port}`));

// How Chromium's <video> behaves where the sync controller meets it (docs/sync.md, "In
// browsers"): how late a playbackRate change shows in currentTime and in the frames
// shown, and how noisy currentTime reads at rate 1 and off it. One headless page, the
// test-card MP4 from the browser run (with its audio track, as the run plays it),
// served from a local HTTP server with range requests; no platform involved.
//
//   node deploy/browser/player-probe.mjs --media DIR [--steps 12]
//
// Per step: 1.5 s at rate 1, then rate 1.1 (or 0.9) for 1.5 s, back to 1. currentTime
// is read every 10 ms and every frame shown is recorded (requestVideoFrameCallback);
// the latency is where a two-segment line fits each series best around the change.
import { createServer } from "node:http";
import { statSync, createReadStream } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const MEDIA = arg("--media", "");
const STEPS = Number(arg("--steps", "12"));
// The rate the player rests at between pulses (1, or just off it).
const BASE = Number(arg("--base", "1"));
const clip = join(MEDIA, "clip.mp4");
const size = statSync(clip).size;
const page = `<!doctype html><video id=v src="/clip.mp4" muted playsinline></video>`;
const server = createServer((req, res) => {
  if (req.url !== "/clip.mp4") {
    res.writeHead(200, { "Content-Type": "text/html" }).end(page);
    return;
  }
  const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range || "");
  const start = m ? Number(m[1]) : 0;
  const end = m && m[2] ? Number(m[2]) : size - 1;
  res.writeHead(m ? 206 : 200, {
    "Content-Type": "video/mp4",
    "Accept-Ranges": "bytes",
    "Content-Length": end - start + 1,
    ...(m ? { "Content-Range": `bytes ${start}-${end}/${size}` } : {}),
  });
  createReadStream(clip, { start, end }).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
});
const p = await browser.newPage();
await p.goto(`http://127.0.0.1:${server.address().port}/`);
const data = await p.evaluate(async ([steps, base]) => {
  const v = document.getElementById("v");
  v.muted = false; // the audio track drives the media clock, as in the run
  const reads = [];
  const frames = [];
  const changes = [];
  const cb = (_now, md) => {
    frames.push([performance.now() + (md.expectedDisplayTime - _now), md.mediaTime]);
    v.requestVideoFrameCallback(cb);
  };
  v.requestVideoFrameCallback(cb);
  v.playbackRate = base;
  await v.play();
  const timer = setInterval(() => reads.push([performance.now(), v.currentTime, v.playbackRate]), 10);
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  await wait(1500);
  for (let i = 0; i < steps; i++) {
    const to = base * (i % 2 ? 0.95 : 1.05);
    changes.push([performance.now(), base, to]);
    v.playbackRate = to;
    await wait(1000);
    changes.push([performance.now(), to, base]);
    v.playbackRate = base;
    await wait(2000);
  }
  clearInterval(timer);
  return { reads, frames, changes };
}, [STEPS, BASE]);
await browser.close();
server.close();

// Fit y = a + r0·(t − tc) before tc + L and a + r0·L + r1·(t − tc − L) after, over ±600 ms,
// for L in 0..500 ms; the L with the least squared error is the latency.
function latency(series, [tc, r0, r1]) {
  const pts = series.filter(([t]) => t >= tc - 600 && t <= tc + 600);
  if (pts.length < 10) return null;
  let best = null;
  for (let L = 0; L <= 500; L += 5) {
    // Residuals against the model with the intercept fitted (mean of residuals).
    const model = pts.map(([t, y]) => {
      const dt = (t - tc) / 1000;
      const l = L / 1000;
      const pred = dt <= l ? r0 * dt : r0 * l + r1 * (dt - l);
      return y - pred;
    });
    const mean = model.reduce((s, x) => s + x, 0) / model.length;
    const sse = model.reduce((s, x) => s + (x - mean) ** 2, 0);
    if (!best || sse < best.sse) best = { L, sse, rms: Math.sqrt(sse / model.length) };
  }
  return best;
}
const median = (xs) => {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : null;
};
const readSeries = data.reads.map(([t, pos]) => [t, pos]);
const frameSeries = data.frames;
const ct = data.changes.map((c) => latency(readSeries, c));
const fr = data.changes.map((c) => latency(frameSeries, c));
// Reading noise: each 10 ms step against the rate set, in segments 300 ms or more from a change.
const noise = { rate1: [], off: [] };
for (let i = 1; i < data.reads.length; i++) {
  const [t0, p0, r] = data.reads[i - 1];
  const [t1, p1] = data.reads[i];
  if (data.changes.some(([tc]) => Math.abs(t0 - tc) < 300)) continue;
  noise[r === 1 ? "rate1" : "off"].push(Math.abs(p1 - p0 - (r * (t1 - t0)) / 1000) * 1000);
}
const pct = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? +s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(2) : null;
};
// What each pulse really moved the picture by, against what its rates should have
// (the frames from 500 ms before it to 1 s after it, against the base rate).
const at = (series, t) => {
  let i = series.findIndex(([ts]) => ts > t);
  if (i <= 0) return null;
  const [ta, pa] = series[i - 1];
  const [tb, pb] = series[i];
  return pa + ((t - ta) / (tb - ta)) * (pb - pa);
};
const pulses = [];
for (let i = 0; i + 1 < data.changes.length; i += 2) {
  const [ts, r0, r1] = data.changes[i];
  const [te] = data.changes[i + 1];
  const a = at(frameSeries, ts - 500);
  const b = at(frameSeries, te + 1000);
  if (a === null || b === null) continue;
  const moved = b - a - (r0 * (te + 1000 - ts + 500)) / 1000;
  const planned = ((r1 - r0) * (te - ts)) / 1000;
  pulses.push({ direction: r1 > r0 ? "faster" : "slower", planned_ms: +(planned * 1000).toFixed(1), moved_ms: +(moved * 1000).toFixed(1) });
}
const summary = {
  base_rate: BASE,
  pulses,
  changes: data.changes.length,
  rate_change_latency_ms: {
    current_time: { median: median(ct.map((b) => b?.L ?? null)), all: ct.map((b) => b?.L ?? null) },
    frames_shown: { median: median(fr.map((b) => b?.L ?? null)), all: fr.map((b) => b?.L ?? null) },
  },
  current_time_step_error_ms: {
    at_rate_1: { p50: pct(noise.rate1, 0.5), p95: pct(noise.rate1, 0.95), n: noise.rate1.length },
    off_rate_1: { p50: pct(noise.off, 0.5), p95: pct(noise.off, 0.95), n: noise.off.length },
  },
};
console.log(JSON.stringify(summary, null, 1));

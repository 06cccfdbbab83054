// Client playback sync, for the browser: the port of the Rust crate `watch-party-sync`
// (sync/src), kept line for line so that one algorithm runs in both. docs/sync.md explains
// it. Compiled by `tsc` to web/demo/sync.js (committed: serving the demo needs no build
// step); `deploy/dev/web.sh` checks the two agree, and the sync crate's test
// `js_port_agrees` replays the Rust implementation's outputs against the compiled file.
//
// Units: clock times in milliseconds (local: `performance.timeOrigin + performance.now()`,
// monotonic), positions and errors in seconds of video, rates as multipliers.

// ---- clock (sync/src/clock.rs) ----

export const CLOCK_SAMPLES = 8;
export const MAX_CLOCK_DRIFT = 100e-6;
export const MAX_SAMPLE_DELAY_MS = 5_000;
export const CONSISTENCY_TOLERANCE_MS = 10;
export const SYNC_BURST = 5;
export const SYNC_BURST_SPACING_MS = 150;
export const SYNC_INTERVAL_MS = 3_000;

/** One exchange: t0 client send, t1 server receive, t2 server send, t3 client receive. */
export interface ClockSample {
  t0: number;
  t1: number;
  t2: number;
  t3: number;
}

/** `server - local`, ms. */
export function sampleOffset(s: ClockSample): number {
  return (s.t1 - s.t0 + (s.t2 - s.t3)) / 2;
}

/** Time on the network, ms. */
export function sampleDelay(s: ClockSample): number {
  return s.t3 - s.t0 - (s.t2 - s.t1);
}

export type ClockEstimator = "interval" | "min_delay";

/** The server-clock estimate from the last CLOCK_SAMPLES exchanges. */
export class ClockSync {
  private samples: ClockSample[] = [];
  private bestSample: ClockSample | null = null;
  private estimate: number | null = null;

  constructor(private readonly estimator: ClockEstimator = "interval") {}

  /** Adds an exchange; false (nothing kept) for one that cannot be right. */
  addSample(t0: number, t1: number, t2: number, t3: number): boolean {
    const sample = { t0, t1, t2, t3 };
    const delay = sampleDelay(sample);
    const finite = [t0, t1, t2, t3].every(Number.isFinite);
    if (!finite || t3 < t0 || t2 < t1 || !(delay >= -1 && delay <= MAX_SAMPLE_DELAY_MS)) {
      return false;
    }
    if (this.samples.length === CLOCK_SAMPLES) {
      this.samples.shift();
    }
    this.samples.push(sample);
    this.bestSample = this.pickBest();
    let offset: number | null = null;
    if (this.estimator === "interval") {
      const b = this.bounds();
      offset = b === null ? null : (b[0] + b[1]) / 2;
    }
    if (offset === null && this.bestSample !== null) {
      offset = sampleOffset(this.bestSample);
    }
    this.estimate = offset;
    return true;
  }

  private newest(): number {
    return this.samples.reduce((m, s) => Math.max(m, s.t3), -Number.MAX_VALUE);
  }

  /** The range of offsets every sample allows (widened for drift); null if none. */
  bounds(): [number, number] | null {
    const newest = this.newest();
    let lo = -Infinity;
    let hi = Infinity;
    for (const s of this.samples) {
      const slack = MAX_CLOCK_DRIFT * (newest - s.t3);
      lo = Math.max(lo, s.t2 - s.t3 - slack);
      hi = Math.min(hi, s.t1 - s.t0 + slack);
    }
    return lo <= hi ? [lo, hi] : null;
  }

  private pickBest(): ClockSample | null {
    const newest = this.newest();
    const score = (s: ClockSample) => sampleDelay(s) + 2 * MAX_CLOCK_DRIFT * (newest - s.t3);
    let best: ClockSample | null = null;
    for (const s of this.samples) {
      if (best === null || score(s) < score(best)) {
        best = s;
      }
    }
    return best;
  }

  best(): ClockSample | null {
    return this.bestSample;
  }

  /** `server clock - local clock`, ms, once there is a sample. */
  offset(): number | null {
    return this.estimate;
  }

  serverNow(localMs: number): number | null {
    const o = this.offset();
    return o === null ? null : localMs + o;
  }

  get length(): number {
    return this.samples.length;
  }

  clear(): void {
    this.samples = [];
    this.bestSample = null;
    this.estimate = null;
  }

  /** A frame sent at server time `serverSentMs` cannot arrive before it was sent. */
  isConsistent(serverSentMs: number, localReceivedMs: number): boolean {
    const now = this.serverNow(localReceivedMs);
    return now === null || now >= serverSentMs - CONSISTENCY_TOLERANCE_MS;
  }
}

/** When to send `sync_request`s: a burst, then one every SYNC_INTERVAL_MS. */
export class SyncSchedule {
  private nextAtMs: number;
  private burstLeft = SYNC_BURST;

  constructor(localMs: number) {
    this.nextAtMs = localMs;
  }

  burst(localMs: number): void {
    this.nextAtMs = localMs;
    this.burstLeft = SYNC_BURST;
  }

  poll(localMs: number): boolean {
    if (localMs < this.nextAtMs) {
      return false;
    }
    const step = this.burstLeft > 1 ? SYNC_BURST_SPACING_MS : SYNC_INTERVAL_MS;
    this.burstLeft = Math.max(0, this.burstLeft - 1);
    this.nextAtMs = localMs + step;
    return true;
  }

  nextAt(): number {
    return this.nextAtMs;
  }
}

// ---- position (sync/src/position.rs) ----

export type PlaybackStatus = "playing" | "paused" | "waiting";

export interface PlaybackState {
  status: PlaybackStatus;
  position: number;
  rate: number;
  updated_at: number;
  seq?: number;
}

/** The position `elapsedMs` after a playing state took effect (none before it). */
export function positionAfter(position: number, rate: number, elapsedMs: number): number {
  return position + (Math.max(elapsedMs, 0) / 1000) * rate;
}

/** Where the party is at server time `serverMs`. */
export function expectedPosition(state: PlaybackState, serverMs: number): number {
  return state.status === "playing"
    ? positionAfter(state.position, state.rate, serverMs - state.updated_at)
    : state.position;
}

// ---- drift (sync/src/drift.rs) ----

export const DEAD_BAND_S = 0.005;
export const READINGS = 4;
export const CLEAR_ERROR_S = 0.025;
export const RATE_SETTLE_MS = 500;
export const SEEK_THRESHOLD_S = 0.25;
export const MAX_NUDGE = 0.1;
export const MIN_PULSE_S = 1.0;
export const PULSE_LEARNING = 0.5;
export const MAX_PULSE_COST_S = 0.05;
export const INITIAL_SEEK_LEAD_S = 0.15;
export const SEEK_LEAD_SMOOTHING = 0.5;
export const MAX_SEEK_LEAD_S = 2.0;
export const FAR_SEEK_S = 10.0;
export const SEEK_COOLDOWN_MS = 1_000;
export const SPEED_WINDOW_S = 4.0;
export const SPEED_SMOOTHING = 0.3;
export const SPEED_STEP = 0.001;
export const MAX_SPEED_ERROR = 0.02;
const SPEED_OUTLIER = 0.05;
export const CHECK_INTERVAL_MS = 100;

export interface DriftConfig {
  dead_band: number;
  seek_threshold: number;
  max_nudge: number;
  min_pulse: number;
  readings: number;
  rate_settle_ms: number;
  learn_pulse: boolean;
  learn_speed: boolean;
}

export const DEFAULT_DRIFT_CONFIG: DriftConfig = {
  dead_band: DEAD_BAND_S,
  seek_threshold: SEEK_THRESHOLD_S,
  max_nudge: MAX_NUDGE,
  min_pulse: MIN_PULSE_S,
  readings: READINGS,
  rate_settle_ms: RATE_SETTLE_MS,
  learn_pulse: true,
  learn_speed: true,
};

export interface PlayerReading {
  position: number;
  rate: number;
}

export type DriftAction =
  | { kind: "keep" }
  | { kind: "set_rate"; rate: number }
  | { kind: "seek"; position: number; rate: number };

interface SpeedMeter {
  lastMs: number;
  lastPosition: number;
  rate: number;
  expected: number;
  actual: number;
  skip: boolean;
}

interface Pulse {
  startMs: number;
  endMs: number;
  nudge: number;
  error: number;
}

/** 0 for a pulse that slows down, 1 for one that speeds up. */
function direction(p: Pulse): 0 | 1 {
  return p.error < 0 ? 1 : 0;
}

/** Rust's `f64::MIN_POSITIVE` (the smallest normal number). */
const F64_MIN_POSITIVE = 2.2250738585072014e-308;

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), hi);
}

/** Rust's `copysign`: the magnitude of `v` with the sign of `sign`, including a zero's. */
function copysign(v: number, sign: number): number {
  return sign < 0 || Object.is(sign, -0) ? -Math.abs(v) : Math.abs(v);
}

/** Keeps a playing player on the expected position (docs/sync.md, step 3). */
export class DriftController {
  private seekPending = false;
  private lastSeekMs = -Infinity;
  private seekFar = false;
  private seekRetry = false;
  private lead: [number, number] = [INITIAL_SEEK_LEAD_S, INITIAL_SEEK_LEAD_S];
  private speed = 1.0;
  private speedWindows = 0;
  private appliedSpeed = 1.0;
  private meter: SpeedMeter | null = null;
  private errors: number[] = [];
  private quietUntilMs = -Infinity;
  private pulse: Pulse | null = null;
  private ended: Pulse | null = null;
  private cost: [number, number] = [0, 0];
  private measured: [boolean, boolean] = [false, false];
  private lastUpdateMs = -Infinity;
  private intervalMs = CHECK_INTERVAL_MS;

  constructor(readonly config: DriftConfig = DEFAULT_DRIFT_CONFIG) {}

  reset(): void {
    this.seekPending = false;
    this.lastSeekMs = -Infinity;
    this.meter = null;
    this.errors = [];
    this.quietUntilMs = -Infinity;
    this.pulse = null;
    this.ended = null;
    this.lastUpdateMs = -Infinity;
  }

  baseRate(partyRate: number): number {
    return partyRate / this.appliedSpeed;
  }

  seekLead(far: boolean): number {
    return this.lead[far ? 1 : 0];
  }

  playerSpeed(): number {
    return this.speed;
  }

  pulseCost(): [number, number] {
    return [this.costFor(0), this.costFor(1)];
  }

  private costFor(d: 0 | 1): number {
    if (this.measured[d]) return this.cost[d];
    const other = d === 0 ? 1 : 0;
    if (this.measured[other]) return -this.cost[other];
    return 0;
  }

  checkInterval(): number {
    return this.intervalMs;
  }

  update(localMs: number, player: PlayerReading, expected: number, partyRate: number): DriftAction {
    const cfg = this.config;
    const error = player.position - expected;
    const readings = Math.max(cfg.readings, 1);

    const since = localMs - this.lastUpdateMs;
    if (since > 0 && since <= 5_000) {
      this.intervalMs = since;
    }
    this.lastUpdateMs = localMs;

    const landed = this.seekPending && !this.seekRetry;
    if (this.seekPending) {
      this.seekPending = false;
      if (Math.abs(error) < MAX_SEEK_LEAD_S * partyRate && partyRate > 0) {
        const k = this.seekFar ? 1 : 0;
        this.lead[k] = clamp(this.lead[k] - (SEEK_LEAD_SMOOTHING * error) / partyRate, 0, MAX_SEEK_LEAD_S);
      }
    }
    if (cfg.learn_speed) {
      this.measureSpeed(localMs, player);
    }

    const lowest = partyRate * (1 - cfg.max_nudge);
    const highest = partyRate * (1 + cfg.max_nudge);
    const base = clamp(this.baseRate(partyRate), lowest, highest);

    const seekThreshold = cfg.seek_threshold * Math.max(partyRate, F64_MIN_POSITIVE);
    if (Math.abs(error) >= seekThreshold && (landed || localMs - this.lastSeekMs >= SEEK_COOLDOWN_MS)) {
      this.seekPending = true;
      this.seekRetry = landed;
      this.seekFar = Math.abs(error) >= FAR_SEEK_S;
      this.lastSeekMs = localMs;
      this.meter = null;
      this.errors = [];
      this.pulse = null;
      this.ended = null;
      this.quietUntilMs = -Infinity;
      return { kind: "seek", position: expected + this.lead[this.seekFar ? 1 : 0] * partyRate, rate: base };
    }

    let rate: number;
    const pulse = this.pulse;
    if (pulse !== null) {
      if (localMs + this.intervalMs / 2 < pulse.endMs) {
        rate = clamp(base * (1 - copysign(pulse.nudge, pulse.error)), lowest, highest);
      } else {
        this.pulse = null;
        this.ended = { ...pulse, endMs: localMs };
        this.quietUntilMs = localMs + cfg.rate_settle_ms;
        this.appliedSpeed = this.settledSpeed();
        rate = clamp(this.baseRate(partyRate), lowest, highest);
      }
    } else if (localMs < this.quietUntilMs) {
      rate = base;
    } else {
      if (Math.abs(error) >= CLEAR_ERROR_S) {
        this.errors = [];
      } else if (this.errors.length >= readings) {
        this.errors.shift();
      }
      this.errors.push(error);
      const enough = this.errors.length >= readings || Math.abs(error) >= CLEAR_ERROR_S;
      if (enough) {
        let sum = 0;
        for (const e of this.errors) sum += e;
        const mean = sum / this.errors.length;
        const ended = this.ended;
        if (ended !== null && cfg.learn_pulse) {
          this.ended = null;
          this.learnPulse(ended, mean, partyRate);
        } else {
          this.ended = null;
        }
        const planned = Math.abs(mean) + this.costFor(mean < 0 ? 1 : 0);
        if (Math.abs(mean) > cfg.dead_band && (planned > 0 || Math.abs(mean) + planned > cfg.dead_band)) {
          rate = this.startPulse(localMs, mean, planned, partyRate, lowest, highest);
        } else {
          const settled = this.settledSpeed();
          if (settled === 1 || Math.abs(settled - this.appliedSpeed) >= SPEED_STEP) {
            this.appliedSpeed = settled;
          }
          rate = clamp(this.baseRate(partyRate), lowest, highest);
        }
      } else {
        rate = base;
      }
    }

    if (this.meter !== null) {
      this.meter.rate = rate;
    }
    if (Math.abs(rate - player.rate) > 1e-9 * Math.max(partyRate, 1)) {
      this.quietUntilMs = Math.max(this.quietUntilMs, localMs + cfg.rate_settle_ms);
      if (this.meter !== null) {
        this.meter.skip = true;
      }
      return { kind: "set_rate", rate };
    }
    return { kind: "keep" };
  }

  private startPulse(
    localMs: number,
    mean: number,
    planned: number,
    partyRate: number,
    lowest: number,
    highest: number,
  ): number {
    const cfg = this.config;
    const m = Math.max(planned, 0.001);
    const first = Math.min(m / (Math.max(cfg.min_pulse, 1e-3) * partyRate), cfg.max_nudge);
    const seconds = m / (first * partyRate);
    const interval = this.intervalMs / 1000;
    const intervals = Math.max(Math.ceil(seconds / interval - 1e-9), 1);
    const nudge = Math.min(m / (intervals * interval * partyRate), cfg.max_nudge);
    this.pulse = {
      startMs: localMs,
      endMs: localMs + intervals * this.intervalMs,
      nudge,
      error: mean,
    };
    this.errors = [];
    return clamp(this.baseRate(partyRate) * (1 - copysign(nudge, mean)), lowest, highest);
  }

  private learnPulse(pulse: Pulse, mean: number, partyRate: number): void {
    const removed = (pulse.error - mean) * Math.sign(pulse.error);
    const moved = (pulse.nudge * partyRate * (pulse.endMs - pulse.startMs)) / 1000;
    const cost = clamp(moved - removed, -MAX_PULSE_COST_S, MAX_PULSE_COST_S);
    const d = direction(pulse);
    const before = this.costFor(d);
    this.cost[d] = clamp(before + PULSE_LEARNING * (cost - before), -MAX_PULSE_COST_S, MAX_PULSE_COST_S);
    this.measured[d] = true;
  }

  private measureSpeed(localMs: number, player: PlayerReading): void {
    const meter = this.meter;
    const steady = this.pulse === null && localMs >= this.quietUntilMs && Math.abs(player.rate - 1) < 1e-12;
    if (meter !== null && (meter.skip || !steady)) {
      meter.lastMs = localMs;
      meter.lastPosition = player.position;
      meter.rate = player.rate;
      meter.skip = false;
      return;
    }
    if (meter === null) {
      this.meter = {
        lastMs: localMs,
        lastPosition: player.position,
        rate: player.rate,
        expected: 0,
        actual: 0,
        skip: false,
      };
      return;
    }
    const dtS = (localMs - meter.lastMs) / 1000;
    const expected = meter.rate * dtS;
    const actual = player.position - meter.lastPosition;
    const plausible =
      dtS > 0 && dtS <= 2 && expected > 0 && Math.abs(actual / expected - 1) < SPEED_OUTLIER;
    if (plausible) {
      meter.expected += expected;
      meter.actual += actual;
    } else {
      meter.expected = 0;
      meter.actual = 0;
    }
    meter.lastMs = localMs;
    meter.lastPosition = player.position;
    meter.rate = player.rate;

    if (meter.expected >= SPEED_WINDOW_S) {
      const observed = meter.actual / meter.expected;
      meter.expected = 0;
      meter.actual = 0;
      this.speedWindows += 1;
      const weight = Math.max(SPEED_SMOOTHING, 1 / this.speedWindows);
      this.speed += weight * (observed - this.speed);
      this.speed = clamp(this.speed, 1 - MAX_SPEED_ERROR, 1 + MAX_SPEED_ERROR);
    }
  }

  private settledSpeed(): number {
    return Math.abs(this.speed - 1) < SPEED_STEP ? 1 : this.speed;
  }
}

//! Client playback sync: what a party member's player does to stay on the server's
//! playback state. The server never sees this code run; it lives here so the algorithm
//! is written once, tested, and simulated (`benches/sync.rs`, run with
//! `cargo bench -p watch-party-sync --bench sync`). A JavaScript client ports it line
//! for line. The server's playback state machine (`wp_core::party::live`) computes
//! positions with the same [`position_after`]. `docs/sync.md` explains it and gives the measured results.
//!
//! Three pieces, all plain data and arithmetic (no I/O, no clock reads):
//! - [`ClockSync`] estimates `server clock - local clock` from NTP-style
//!   `sync_request` / `sync_response` exchanges, keeping the last [`CLOCK_SAMPLES`]:
//!   the middle of the range they all allow ([`ClockEstimator::Interval`]), or the
//!   offset of the one with the smallest round-trip delay
//!   ([`ClockEstimator::MinDelay`]). [`SyncSchedule`] says when to send a request.
//! - [`expected_position`] gives where the party is at a server time.
//! - [`DriftController`] compares the player with that expected position and answers
//!   keep, nudge the playback rate, or seek.
//!
//! Units: clock times are milliseconds (`f64`; Unix ms as `i64` converts exactly),
//! positions and errors are seconds of video, rates are multipliers (1.0 = normal).
//! The local clock should be monotonic (`performance.timeOrigin + performance.now()`
//! in a browser, not `Date.now()`, which can jump).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------
// Clock offset
// ---------------------------------------------------------------------------------

/// Samples kept by [`ClockSync`]. The best of the last 8 is what Jellyfin SyncPlay
/// keeps too; with one sample every [`SYNC_INTERVAL_MS`] that is a 24 s window, long
/// enough that one of them almost always crossed the network without queueing, short
/// enough that a changed route is picked up within half a minute.
pub const CLOCK_SAMPLES: usize = 8;

/// How fast a local clock may run against the server's, as a fraction (100 ppm; real
/// quartz clocks are within ±50 ppm). An older sample's offset may be off by this much
/// per millisecond of age, so [`ClockSync`] charges each sample `2 × MAX_CLOCK_DRIFT ×
/// age` of extra delay (an offset error of `e` costs as much as `2e` of delay, since
/// the offset error of a sample is at most half its delay). Over the 24 s window that is
/// at most 4.8 ms: a fresh sample wins over an old one only when it is nearly as good.
pub const MAX_CLOCK_DRIFT: f64 = 100e-6;

/// A sample whose round trip took longer than this is dropped: its offset could be
/// off by up to half of it, and it would only be used if nothing better existed.
pub const MAX_SAMPLE_DELAY_MS: f64 = 5_000.0;

/// How far a server frame's send time may lie after our estimate of the server clock
/// at its arrival before the estimate is declared wrong (see
/// [`ClockSync::is_consistent`]). A correct estimate never puts a frame's arrival
/// before its sending; the tolerance absorbs millisecond rounding.
pub const CONSISTENCY_TOLERANCE_MS: f64 = 10.0;

/// Requests sent in a burst: at join, on reconnect, when the tab wakes up and when
/// [`ClockSync::is_consistent`] fails. Five are enough for one to be near the minimum
/// delay, so the first estimate is good within a second of joining.
pub const SYNC_BURST: u32 = 5;
/// Spacing of the requests in a burst: far enough apart that they do not queue behind
/// each other.
pub const SYNC_BURST_SPACING_MS: f64 = 150.0;
/// Spacing of the requests after the burst. Every 3 s costs two tiny frames per member
/// per 3 s and fills the 8-sample window in 24 s.
pub const SYNC_INTERVAL_MS: f64 = 3_000.0;

/// One exchange: `t0` client send, `t1` server receive, `t2` server send (server
/// clock), `t3` client receive (local clock), all in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSample {
    pub t0: f64,
    pub t1: f64,
    pub t2: f64,
    pub t3: f64,
}

impl ClockSample {
    /// `server - local`, in ms: `((t1 - t0) + (t2 - t3)) / 2`. Exact when the two
    /// one-way delays are equal; otherwise off by half their difference.
    pub fn offset(&self) -> f64 {
        ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2.0
    }

    /// Time on the network, in ms: `(t3 - t0) - (t2 - t1)`. The offset error is at
    /// most half of it.
    pub fn delay(&self) -> f64 {
        (self.t3 - self.t0) - (self.t2 - self.t1)
    }
}

/// How [`ClockSync`] turns its samples into one offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockEstimator {
    /// The middle of the range every sample allows (the default). A sample proves
    /// `offset <= t1 - t0` (the request cannot have arrived before it was sent) and
    /// `offset >= t2 - t3` (nor the reply). The tightest upper bound and the tightest
    /// lower bound often come from different samples (a quiet upload in one, a quiet
    /// download in another), so their intersection is narrower than any one sample's
    /// range, whose middle is that sample's offset. A timestamp taken late on arrival
    /// or early on departure (a busy event loop, a send queue) only widens a range,
    /// never moves it wrongly. Bounds are widened by [`MAX_CLOCK_DRIFT`] × age. When they contradict each other (a clock
    /// stepped) the estimate falls back to `MinDelay`. In the simulation it cuts the
    /// p95 spread by 4 ms at 20-300 ms delays and by 18 ms under heavy jitter
    /// (`docs/sync.md`).
    #[default]
    Interval,
    /// The offset of the lowest-delay sample (older samples charged for possible clock
    /// drift, see [`MAX_CLOCK_DRIFT`]), as NTP's clock filter and Jellyfin SyncPlay do.
    /// Queueing only ever adds delay, and it is what makes the two directions unequal,
    /// so the quickest round trip is the one whose offset is most nearly right.
    MinDelay,
}

/// The server-clock estimate from the last [`CLOCK_SAMPLES`] exchanges, by a
/// [`ClockEstimator`] ([`Interval`](ClockEstimator::Interval) unless told otherwise).
///
/// A fixed difference between the up and down routes cannot be seen from either end
/// and stays in the estimate (half the difference); see `docs/sync.md`.
#[derive(Debug, Clone, Default)]
pub struct ClockSync {
    estimator: ClockEstimator,
    samples: VecDeque<ClockSample>,
    best: Option<ClockSample>,
    offset: Option<f64>,
}

impl ClockSync {
    /// An estimator of the default kind ([`ClockEstimator::Interval`]).
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_estimator(estimator: ClockEstimator) -> Self {
        Self {
            estimator,
            ..Self::default()
        }
    }

    /// Adds the exchange `(t0, t1, t2, t3)` (see [`ClockSample`]). Returns `false`, and
    /// keeps nothing, for a sample that cannot be right: a reply received before it was
    /// asked for, a server that answered before it received, a negative delay (the
    /// local clock stepped; more than 1 ms below zero, to allow for rounding), or a
    /// round trip over [`MAX_SAMPLE_DELAY_MS`].
    pub fn add_sample(&mut self, t0: f64, t1: f64, t2: f64, t3: f64) -> bool {
        let sample = ClockSample { t0, t1, t2, t3 };
        let delay = sample.delay();
        let finite = [t0, t1, t2, t3].iter().all(|t| t.is_finite());
        if !finite || t3 < t0 || t2 < t1 || !(-1.0..=MAX_SAMPLE_DELAY_MS).contains(&delay) {
            return false;
        }
        if self.samples.len() == CLOCK_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        self.best = self.pick_best();
        self.offset = match self.estimator {
            ClockEstimator::MinDelay => None,
            ClockEstimator::Interval => self.bounds().map(|(lo, hi)| (lo + hi) / 2.0),
        }
        .or(self.best.map(|s| s.offset()));
        true
    }

    /// Local time (ms) the newest sample's reply arrived.
    fn newest(&self) -> f64 {
        self.samples.iter().map(|s| s.t3).fold(f64::MIN, f64::max)
    }

    /// The range of offsets (ms) that every sample allows, widened for clock drift
    /// (see [`ClockEstimator::Interval`]); `None` with no samples or when they
    /// contradict each other.
    pub fn bounds(&self) -> Option<(f64, f64)> {
        let newest = self.newest();
        let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
        for s in &self.samples {
            let slack = MAX_CLOCK_DRIFT * (newest - s.t3);
            lo = lo.max(s.t2 - s.t3 - slack);
            hi = hi.min(s.t1 - s.t0 + slack);
        }
        (lo <= hi).then_some((lo, hi))
    }

    fn pick_best(&self) -> Option<ClockSample> {
        let newest = self.newest();
        let score = |s: &ClockSample| s.delay() + 2.0 * MAX_CLOCK_DRIFT * (newest - s.t3);
        self.samples
            .iter()
            .copied()
            .min_by(|a, b| score(a).total_cmp(&score(b)))
    }

    /// The lowest-delay sample (the estimate with [`ClockEstimator::MinDelay`], and
    /// the fallback of the other).
    pub fn best(&self) -> Option<ClockSample> {
        self.best
    }

    /// `server clock - local clock` in ms, once there is a sample.
    pub fn offset(&self) -> Option<f64> {
        self.offset
    }

    /// The server clock (ms) at local time `local_ms`.
    pub fn server_now(&self, local_ms: f64) -> Option<f64> {
        self.offset().map(|o| local_ms + o)
    }

    /// The samples held, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &ClockSample> {
        self.samples.iter()
    }

    /// Samples held (at most [`CLOCK_SAMPLES`]).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Forgets every sample (after the local clock jumped, or on
    /// [`is_consistent`](Self::is_consistent) failing).
    pub fn clear(&mut self) {
        self.samples.clear();
        self.best = None;
        self.offset = None;
    }

    /// Checks the estimate against any server frame: one sent at server time
    /// `server_sent_ms` (the frame's `timestamp`) cannot arrive, at local time
    /// `local_received_ms`, before it was sent. If the estimate says it did (by more
    /// than [`CONSISTENCY_TOLERANCE_MS`]) the estimate is too low: call
    /// [`clear`](Self::clear) and start a [`SyncSchedule::burst`]. With no estimate
    /// yet, there is nothing to contradict and the answer is `true`.
    pub fn is_consistent(&self, server_sent_ms: f64, local_received_ms: f64) -> bool {
        self.server_now(local_received_ms)
            .is_none_or(|now| now >= server_sent_ms - CONSISTENCY_TOLERANCE_MS)
    }
}

/// When to send `sync_request`s: a burst of [`SYNC_BURST`] spaced
/// [`SYNC_BURST_SPACING_MS`] apart, then one every [`SYNC_INTERVAL_MS`].
#[derive(Debug, Clone)]
pub struct SyncSchedule {
    next_at: f64,
    burst_left: u32,
}

impl SyncSchedule {
    /// A schedule whose burst starts at `local_ms` (call it on joining).
    pub fn new(local_ms: f64) -> Self {
        Self {
            next_at: local_ms,
            burst_left: SYNC_BURST,
        }
    }

    /// Starts a new burst now (reconnect, tab woke up, clock found inconsistent).
    pub fn burst(&mut self, local_ms: f64) {
        self.next_at = local_ms;
        self.burst_left = SYNC_BURST;
    }

    /// `true` when a `sync_request` should be sent at `local_ms` (the schedule then
    /// moves on). Call it from any timer; it never asks for more than one at a time.
    pub fn poll(&mut self, local_ms: f64) -> bool {
        if local_ms < self.next_at {
            return false;
        }
        let step = if self.burst_left > 1 {
            SYNC_BURST_SPACING_MS
        } else {
            SYNC_INTERVAL_MS
        };
        self.burst_left = self.burst_left.saturating_sub(1);
        self.next_at = local_ms + step;
        true
    }

    /// Local time (ms) of the next request.
    pub fn next_at(&self) -> f64 {
        self.next_at
    }
}

// ---------------------------------------------------------------------------------
// Playback state
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybackStatus {
    Playing,
    Paused,
    /// Would be playing, but the party waits for a member who is buffering.
    Waiting,
}

/// The part of the server's playback state that sync needs. It deserializes from the
/// `data` of `video_state` and `playback_heartbeat` frames (other fields are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlaybackState {
    pub status: PlaybackStatus,
    /// Seconds into the video at `updated_at`.
    pub position: f64,
    pub rate: f64,
    /// Server time (Unix ms) the state takes effect.
    pub updated_at: i64,
}

/// Where the party is at server time `server_ms`: `position + (server_ms -
/// updated_at) / 1000 × rate` while playing, `position` otherwise. Before
/// `updated_at` the state has not begun, and the answer is `position` (a client holds
/// a state whose `updated_at` is still ahead and keeps following the previous one
/// until then).
pub fn expected_position(state: &PlaybackState, server_ms: f64) -> f64 {
    match state.status {
        PlaybackStatus::Playing => position_after(
            state.position,
            state.rate,
            server_ms - state.updated_at as f64,
        ),
        PlaybackStatus::Paused | PlaybackStatus::Waiting => state.position,
    }
}

/// The playback formula, shared by the server and the client: the position
/// `elapsed_ms` after a playing state at `position` and `rate` took effect (a negative
/// elapsed time counts as none).
pub fn position_after(position: f64, rate: f64, elapsed_ms: f64) -> f64 {
    position + (elapsed_ms.max(0.0) / 1000.0) * rate
}

// ---------------------------------------------------------------------------------
// Drift control
// ---------------------------------------------------------------------------------

/// Nudging starts when the player is more than 5 ms off. A member's error is mostly
/// that of its clock estimate (2-10 ms, which no controller can see), so a dead band
/// much below it buys little: in the simulation (20-300 ms delays) 3 ms takes 2 ms off
/// the p95 spread for 55% more rate changes, 8 ms adds 4 ms, 15 ms adds 15. Jellyfin
/// waits for 60 ms, which lets two members sit 120 ms apart indefinitely.
pub const DEAD_BAND_S: f64 = 0.005;

/// A nudge ends when the error is back under 2 ms, so the player lands near zero
/// rather than on the edge of the dead band (hysteresis: it then takes seconds of
/// residual drift to leave the band again).
pub const SETTLE_S: f64 = 0.002;

/// Errors of 250 ms or more (at 1×; the threshold is multiplied by the party rate) are
/// seeked away. A nudge of [`MAX_NUDGE`] removes `0.1 × rate` seconds of error per
/// second, so 250 ms × rate takes 2.5 s, about the longest a correction should take
/// after a change (members are measured 3 s after one); a seek stalls the picture for
/// its buffering time and lands within the unpredictable part of it (tens of ms),
/// which nudging then removes. In the simulation 400 ms (Jellyfin's value) leaves
/// members who hear of a `play` late still catching up 3 s later (spread max 140 ms
/// against 30); 150-200 ms seeks more for no better spread.
pub const SEEK_THRESHOLD_S: f64 = 0.250;

/// Proportional gain, per second: the nudge is `GAIN × error` (as a fraction of the
/// rate), so an error decays roughly as `e^(-GAIN·t)` once under `MAX_NUDGE / GAIN`
/// = 33 ms: a time constant of 1/3 s, three checks. In the simulation 1-8/s gave the
/// same spread at 20-300 ms; 5/s changes the rate less often (13 against 18 times per
/// minute) but spread 1.3 ms more under heavy jitter.
pub const GAIN: f64 = 3.0;

/// The largest nudge: the player runs at 0.9-1.1× the party rate while correcting.
/// Speech is still natural at ±10% with pitch preserved (browsers' default).
pub const MAX_NUDGE: f64 = 0.10;

/// Nudges take few values: the proportional nudge is rounded up to [`MAX_NUDGE`]
/// halved (10%, 5%, 2.5%, 1.25%) down to this smallest one, 0.625%. A correction then
/// takes a handful of rate changes (one per halving of the error), not one per check,
/// and still slows down as it lands.
pub const MIN_NUDGE: f64 = MAX_NUDGE / 16.0;

/// A player does not resume at once after a seek: it buffers. The controller seeks
/// ahead by the time it expects that to take, starting from 150 ms...
pub const INITIAL_SEEK_LEAD_S: f64 = 0.150;
/// ... and learns it: after each seek, half of the error found on landing is added to
/// the lead.
pub const SEEK_LEAD_SMOOTHING: f64 = 0.5;
/// The lead never grows past 2 s (a seek that slow is a buffering problem, not a
/// latency to anticipate).
pub const MAX_SEEK_LEAD_S: f64 = 2.0;
/// After a seek, no other seek for 1 s: a seek that missed is corrected by nudging
/// unless it is still off by the seek threshold a second later.
pub const SEEK_COOLDOWN_MS: f64 = 1_000.0;

/// Players do not play at exactly their rate against the local clock (audio clocks,
/// frame timing). The controller measures the actual speed over windows of 4 s of
/// video (with ±1 ms readings of `currentTime`, to about 0.02%)...
pub const SPEED_WINDOW_S: f64 = 4.0;
/// ... blends each measurement in with this weight...
pub const SPEED_SMOOTHING: f64 = 0.3;
/// ... and divides the rate it sets by the speed, once the speed is off by 0.1% or
/// more (a smaller difference is 1 ms of drift per second, which the dead band absorbs
/// while the rate stays exactly the party rate).
pub const SPEED_STEP: f64 = 0.001;
/// Measured speeds are kept within ±2%; a window where the position moved more than
/// 5% off the rate (a stall, a seek by the user) is thrown away.
pub const MAX_SPEED_ERROR: f64 = 0.02;
const SPEED_OUTLIER: f64 = 0.05;

/// The controller's settings. [`Default`] gives the constants above; the simulation
/// uses other values to compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftConfig {
    /// Seconds of error above which nudging starts ([`DEAD_BAND_S`]).
    pub dead_band: f64,
    /// Seconds of error below which a nudge ends ([`SETTLE_S`]).
    pub settle: f64,
    /// Seconds of error from which the controller seeks, at 1× (scaled by the party
    /// rate; [`SEEK_THRESHOLD_S`]).
    pub seek_threshold: f64,
    /// Nudge per second of error ([`GAIN`]).
    pub gain: f64,
    /// Largest nudge, as a fraction of the party rate ([`MAX_NUDGE`]).
    pub max_nudge: f64,
    /// Smallest nudge; nudges are `max_nudge` halved down to it ([`MIN_NUDGE`]; 0 =
    /// any value, one rate change per check).
    pub min_nudge: f64,
    /// Learn and compensate the player's own speed ([`SPEED_WINDOW_S`]).
    pub learn_speed: bool,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            dead_band: DEAD_BAND_S,
            settle: SETTLE_S,
            seek_threshold: SEEK_THRESHOLD_S,
            gain: GAIN,
            max_nudge: MAX_NUDGE,
            min_nudge: MIN_NUDGE,
            learn_speed: true,
        }
    }
}

/// What the player reports at a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayerReading {
    /// `currentTime`, seconds.
    pub position: f64,
    /// `playbackRate` as currently set.
    pub rate: f64,
}

/// What to do to the player.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DriftAction {
    /// Nothing.
    Keep,
    /// Set `playbackRate` to this.
    SetRate(f64),
    /// Set `currentTime` to `position` and `playbackRate` to `rate`.
    Seek { position: f64, rate: f64 },
}

#[derive(Debug, Clone, Copy)]
struct SpeedMeter {
    last_ms: f64,
    last_position: f64,
    /// Rate the player has run at since `last_ms`.
    rate: f64,
    expected: f64,
    actual: f64,
}

/// Keeps a playing player on the expected position. Call
/// [`update`](Self::update) every [`CHECK_INTERVAL_MS`] while the party and the
/// player are playing, the player is not seeking or buffering and the clock has an
/// estimate; call [`reset`](Self::reset) on every `video_state` (a change; not on
/// heartbeats) and whenever playback stopped (pause, buffering, the user seeking).
/// Rates are assumed positive (the server keeps them within 0.25-4).
#[derive(Debug, Clone)]
pub struct DriftController {
    config: DriftConfig,
    nudging: bool,
    /// A seek was ordered and the next update is the first after it landed.
    seek_pending: bool,
    last_seek_ms: f64,
    seek_lead: f64,
    speed: f64,
    speed_windows: u32,
    applied_speed: f64,
    meter: Option<SpeedMeter>,
}

/// How often to call [`DriftController::update`]: every 100 ms. Each check costs a
/// few arithmetic operations; checking less often lets drift and corrections overshoot
/// by more (at 10% nudge, 100 ms is 10 ms of video).
pub const CHECK_INTERVAL_MS: f64 = 100.0;

impl Default for DriftController {
    fn default() -> Self {
        Self::new(DriftConfig::default())
    }
}

impl DriftController {
    pub fn new(config: DriftConfig) -> Self {
        Self {
            config,
            nudging: false,
            seek_pending: false,
            last_seek_ms: f64::NEG_INFINITY,
            seek_lead: INITIAL_SEEK_LEAD_S,
            speed: 1.0,
            speed_windows: 0,
            applied_speed: 1.0,
            meter: None,
        }
    }

    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    /// Forgets the current correction (not what it learned about the player: its speed
    /// and how long its seeks take). Call on every `video_state` and after playback
    /// stopped.
    pub fn reset(&mut self) {
        self.nudging = false;
        self.seek_pending = false;
        self.last_seek_ms = f64::NEG_INFINITY;
        self.meter = None;
    }

    /// The rate to give the player when nothing needs correcting: the party rate,
    /// divided by the player's measured speed when that is off by [`SPEED_STEP`] or
    /// more.
    pub fn base_rate(&self, party_rate: f64) -> f64 {
        party_rate / self.applied_speed
    }

    /// How far ahead of the expected position a seek aims, in seconds of wall time
    /// (multiplied by the party rate for video seconds).
    pub fn seek_lead(&self) -> f64 {
        self.seek_lead
    }

    /// The player's measured speed against the local clock (1.0 = exact).
    pub fn player_speed(&self) -> f64 {
        self.speed
    }

    /// One check at local time `local_ms` (the same monotonic clock as always):
    /// `player` is what the player reports, `expected` the party's position at the
    /// estimated server time now ([`expected_position`] of
    /// [`ClockSync::server_now`]), `party_rate` the state's rate.
    ///
    /// With `error = player.position - expected` (positive: ahead):
    /// - `|error| >= seek_threshold × party_rate` (and no seek in the last
    ///   [`SEEK_COOLDOWN_MS`]): seek to `expected + seek_lead × party_rate`;
    /// - `|error| > dead_band`, or a nudge is under way and `|error| >= settle`: run at
    ///   `base_rate × (1 - gain × error)`, the nudge capped at ±`max_nudge` and
    ///   rounded up to `max_nudge` halved (see [`MIN_NUDGE`]);
    /// - otherwise: run at [`base_rate`](Self::base_rate).
    ///
    /// Only a rate that differs from `player.rate` is returned as `SetRate`; the rate
    /// never leaves `party_rate × (1 ± max_nudge)`.
    pub fn update(
        &mut self,
        local_ms: f64,
        player: PlayerReading,
        expected: f64,
        party_rate: f64,
    ) -> DriftAction {
        let cfg = self.config;
        let error = player.position - expected;

        if self.seek_pending {
            self.seek_pending = false;
            // The first check after a seek landed: what is left is how much the lead
            // missed the buffering time by.
            if error.abs() < cfg.seek_threshold * party_rate && party_rate > 0.0 {
                let lead = self.seek_lead - SEEK_LEAD_SMOOTHING * error / party_rate;
                self.seek_lead = lead.clamp(0.0, MAX_SEEK_LEAD_S);
            }
        }
        if cfg.learn_speed {
            self.measure_speed(local_ms, player);
        }

        let lowest = party_rate * (1.0 - cfg.max_nudge);
        let highest = party_rate * (1.0 + cfg.max_nudge);
        let base = self.base_rate(party_rate).clamp(lowest, highest);

        let seek_threshold = cfg.seek_threshold * party_rate.max(f64::MIN_POSITIVE);
        if error.abs() >= seek_threshold && local_ms - self.last_seek_ms >= SEEK_COOLDOWN_MS {
            self.nudging = false;
            self.seek_pending = true;
            self.last_seek_ms = local_ms;
            self.meter = None;
            return DriftAction::Seek {
                position: expected + self.seek_lead * party_rate,
                rate: base,
            };
        }

        let was_nudging = self.nudging;
        if error.abs() > cfg.dead_band {
            self.nudging = true;
        } else if error.abs() < cfg.settle {
            self.nudging = false;
        }
        let rate = if self.nudging {
            let wanted = (cfg.gain * error.abs()).min(cfg.max_nudge);
            let mut nudge = wanted;
            if cfg.min_nudge > 0.0 {
                nudge = cfg.max_nudge;
                while nudge / 2.0 >= wanted && nudge / 2.0 >= cfg.min_nudge {
                    nudge /= 2.0;
                }
            }
            (base * (1.0 - nudge.copysign(error))).clamp(lowest, highest)
        } else {
            // Take up a new speed estimate when a nudge ends (the rate changes anyway)
            // or when it is off by a step.
            let settled = self.settled_speed();
            if was_nudging || settled == 1.0 || (settled - self.applied_speed).abs() >= SPEED_STEP {
                self.applied_speed = settled;
            }
            self.base_rate(party_rate).clamp(lowest, highest)
        };

        let action = if (rate - player.rate).abs() > 1e-9 * party_rate.max(1.0) {
            DriftAction::SetRate(rate)
        } else {
            DriftAction::Keep
        };
        if let Some(meter) = &mut self.meter {
            meter.rate = rate;
        }
        action
    }

    /// Compares how far the player moved with how far its rate should have taken it,
    /// per [`SPEED_WINDOW_S`] of video, and updates the speed estimate.
    fn measure_speed(&mut self, local_ms: f64, player: PlayerReading) {
        let Some(meter) = &mut self.meter else {
            self.meter = Some(SpeedMeter {
                last_ms: local_ms,
                last_position: player.position,
                rate: player.rate,
                expected: 0.0,
                actual: 0.0,
            });
            return;
        };
        let dt_s = (local_ms - meter.last_ms) / 1000.0;
        let expected = meter.rate * dt_s;
        let actual = player.position - meter.last_position;
        let plausible = dt_s > 0.0
            && dt_s <= 2.0
            && expected > 0.0
            && (actual / expected - 1.0).abs() < SPEED_OUTLIER;
        if plausible {
            meter.expected += expected;
            meter.actual += actual;
        } else {
            meter.expected = 0.0;
            meter.actual = 0.0;
        }
        meter.last_ms = local_ms;
        meter.last_position = player.position;
        meter.rate = player.rate;

        if meter.expected >= SPEED_WINDOW_S {
            let observed = meter.actual / meter.expected;
            meter.expected = 0.0;
            meter.actual = 0.0;
            // The first windows are averaged, then blended in.
            self.speed_windows = self.speed_windows.saturating_add(1);
            let weight = SPEED_SMOOTHING.max(1.0 / f64::from(self.speed_windows));
            self.speed += weight * (observed - self.speed);
            self.speed = self
                .speed
                .clamp(1.0 - MAX_SPEED_ERROR, 1.0 + MAX_SPEED_ERROR);
        }
    }

    /// The speed estimate, snapped to 1 when within [`SPEED_STEP`] of it.
    fn settled_speed(&self) -> f64 {
        if (self.speed - 1.0).abs() < SPEED_STEP {
            1.0
        } else {
            self.speed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFSET: f64 = 5_000.0;

    /// An exchange against a server `OFFSET` ms ahead, sent at local `t0`, with the
    /// given one-way delays and 1 ms of server processing.
    fn exchange(t0: f64, up: f64, down: f64) -> (f64, f64, f64, f64) {
        let t1 = t0 + up + OFFSET;
        let t2 = t1 + 1.0;
        let t3 = t2 - OFFSET + down;
        (t0, t1, t2, t3)
    }

    fn add(clock: &mut ClockSync, (t0, t1, t2, t3): (f64, f64, f64, f64)) -> bool {
        clock.add_sample(t0, t1, t2, t3)
    }

    #[test]
    fn sample_offset_and_delay() {
        let s = ClockSample {
            t0: 1_000.0,
            t1: 6_030.0,
            t2: 6_031.0,
            t3: 1_081.0,
        };
        // up 30, down 50: delay 80, offset off by (30 - 50) / 2.
        assert_eq!(s.delay(), 80.0);
        assert_eq!(s.offset(), OFFSET - 10.0);
    }

    #[test]
    fn picks_the_lowest_delay_sample_among_asymmetric_jittery_ones() {
        let mut clock = ClockSync::with_estimator(ClockEstimator::MinDelay);
        assert_eq!(clock.offset(), None);
        // Queued uploads or downloads: each alone would be off by tens of ms.
        let delays = [
            (180.0, 40.0),
            (45.0, 160.0),
            (300.0, 42.0),
            (41.0, 39.0), // the quiet one: off by 1 ms
            (90.0, 250.0),
            (60.0, 38.0),
            (40.0, 120.0),
            (150.0, 110.0),
        ];
        for (i, (up, down)) in delays.into_iter().enumerate() {
            assert!(add(&mut clock, exchange(i as f64 * 1_000.0, up, down)));
        }
        let best = clock.best().unwrap();
        assert_eq!(best.delay(), 80.0);
        assert_eq!(clock.offset(), Some(OFFSET + 1.0));
        assert_eq!(clock.server_now(100.0), Some(100.0 + OFFSET + 1.0));
        // Every other sample is 10 ms or more out.
        let others = delays.iter().filter(|(u, d)| u + d != 80.0);
        assert!(
            others
                .map(|(u, d)| (u - d) / 2.0)
                .all(|e: f64| e.abs() >= 10.0)
        );
        // The default estimator does at least as well: up 40 (seventh), down 38 (sixth).
        let mut interval = ClockSync::new();
        for (i, (up, down)) in delays.into_iter().enumerate() {
            add(&mut interval, exchange(i as f64 * 1_000.0, up, down));
        }
        assert_eq!(interval.best(), clock.best());
        let estimate = interval.offset().unwrap();
        assert!((estimate - OFFSET).abs() <= 1.0, "{estimate}");
    }

    #[test]
    fn the_interval_estimate_combines_the_quietest_directions() {
        // No sample is quiet both ways: each is 30-60 ms out alone.
        let delays = [(20.0, 120.0), (140.0, 20.0), (100.0, 100.0)];
        let mut min_delay = ClockSync::with_estimator(ClockEstimator::MinDelay);
        let mut interval = ClockSync::new();
        for (i, (up, down)) in delays.into_iter().enumerate() {
            add(&mut min_delay, exchange(i as f64, up, down));
            add(&mut interval, exchange(i as f64, up, down));
        }
        // Lowest delay: (20, 120), off by -50.
        assert_eq!(min_delay.offset(), Some(OFFSET - 50.0));
        // offset <= OFFSET + 20 (first), >= OFFSET - 20 (second): the middle is exact.
        let (lo, hi) = interval.bounds().unwrap();
        assert!((lo - (OFFSET - 20.0)).abs() < 0.01 && (hi - (OFFSET + 20.0)).abs() < 0.01);
        assert!((interval.offset().unwrap() - OFFSET).abs() < 0.01);
        assert_eq!(interval.best(), min_delay.best());

        // The server clock stepped 1 s: the bounds contradict each other, and the
        // estimate falls back to the lowest-delay sample.
        let (t0, t1, t2, t3) = exchange(10.0, 30.0, 30.0);
        interval.add_sample(t0, t1 + 1_000.0, t2 + 1_000.0, t3);
        assert_eq!(interval.bounds(), None);
        assert_eq!(interval.offset(), Some(OFFSET + 1_000.0));
    }

    #[test]
    fn keeps_only_the_last_eight() {
        let mut clock = ClockSync::with_estimator(ClockEstimator::MinDelay);
        add(&mut clock, exchange(0.0, 10.0, 10.0));
        for i in 1..=CLOCK_SAMPLES {
            add(&mut clock, exchange(i as f64 * 1_000.0, 50.0, 30.0));
        }
        assert_eq!(clock.len(), CLOCK_SAMPLES);
        // The 20 ms sample has been pushed out; the rest are 80 ms, off by +10.
        assert_eq!(clock.best().unwrap().delay(), 80.0);
        assert_eq!(clock.offset(), Some(OFFSET + 10.0));
    }

    #[test]
    fn an_old_sample_yields_to_a_nearly_as_good_fresh_one() {
        let mut clock = ClockSync::new();
        add(&mut clock, exchange(0.0, 20.0, 20.0));
        // 60 s later, 1 ms slower: the old one may have drifted by up to 6 ms.
        add(&mut clock, exchange(60_000.0, 21.0, 20.0));
        assert_eq!(clock.best().unwrap().t0, 60_000.0);
        // But not to a much worse one.
        add(&mut clock, exchange(61_000.0, 200.0, 20.0));
        assert_eq!(clock.best().unwrap().t0, 60_000.0);
    }

    #[test]
    fn rejects_impossible_samples() {
        let mut clock = ClockSync::new();
        // Reply "before" the request: the local clock stepped back.
        assert!(!clock.add_sample(1_000.0, 6_000.0, 6_001.0, 900.0));
        // Server answered before receiving.
        assert!(!clock.add_sample(1_000.0, 6_010.0, 6_000.0, 1_050.0));
        // Negative delay: the server held it 100 ms, the round trip took 50.
        assert!(!clock.add_sample(1_000.0, 6_000.0, 6_100.0, 1_050.0));
        // Too slow to be of use.
        assert!(!add(&mut clock, exchange(0.0, 3_000.0, 3_000.0)));
        assert!(clock.is_empty());
        assert!(add(&mut clock, exchange(0.0, 30.0, 30.0)));
        assert_eq!(clock.len(), 1);
        clock.clear();
        assert!(clock.is_empty() && clock.offset().is_none());
    }

    #[test]
    fn server_frames_that_contradict_the_estimate_are_caught() {
        let mut clock = ClockSync::new();
        assert!(clock.is_consistent(9e12, 0.0));
        // Estimate 100 ms too low (a fixed 200 ms difference between the routes).
        add(&mut clock, exchange(0.0, 20.0, 220.0));
        assert_eq!(clock.offset(), Some(OFFSET - 100.0));
        // A frame sent at server 10_000 arriving 30 ms later is fine with the truth...
        let local_arrival = 10_000.0 - OFFSET + 30.0;
        assert!(clock.is_consistent(10_000.0, local_arrival + 80.0));
        // ... but the estimate puts its arrival 70 ms before its sending.
        assert!(!clock.is_consistent(10_000.0, local_arrival));
    }

    #[test]
    fn schedule_bursts_then_settles() {
        let mut schedule = SyncSchedule::new(0.0);
        let mut sent = Vec::new();
        let mut t = 0.0;
        while t <= 10_000.0 {
            if schedule.poll(t) {
                sent.push(t);
            }
            t += 10.0;
        }
        assert_eq!(&sent[..5], &[0.0, 150.0, 300.0, 450.0, 600.0]);
        assert_eq!(&sent[5..], &[3_600.0, 6_600.0, 9_600.0]);
        schedule.burst(10_000.0);
        assert!(schedule.poll(10_000.0));
        assert!(!schedule.poll(10_100.0));
        assert!(schedule.poll(10_150.0));
    }

    #[test]
    fn expected_position_follows_the_state() {
        let playing = PlaybackState {
            status: PlaybackStatus::Playing,
            position: 100.0,
            rate: 1.5,
            updated_at: 1_000_000,
        };
        assert_eq!(expected_position(&playing, 1_000_000.0), 100.0);
        assert_eq!(expected_position(&playing, 1_002_000.0), 103.0);
        // Not begun yet.
        assert_eq!(expected_position(&playing, 999_000.0), 100.0);
        for status in [PlaybackStatus::Paused, PlaybackStatus::Waiting] {
            let held = PlaybackState { status, ..playing };
            assert_eq!(expected_position(&held, 1_060_000.0), 100.0);
        }
    }

    #[test]
    fn state_reads_from_frame_data() {
        let data = serde_json::json!({
            "status": "waiting", "position": 12.5, "rate": 1.0, "updated_at": 1_764_230_400_123_i64,
            "seq": 7, "video": {"id": null}, "server_time": 1_764_230_400_200_i64,
        });
        let state: PlaybackState = serde_json::from_value(data).unwrap();
        assert_eq!(state.status, PlaybackStatus::Waiting);
        assert_eq!(state.updated_at, 1_764_230_400_123);
    }

    const PARTY: f64 = 1.0;

    fn at(position: f64, rate: f64) -> PlayerReading {
        PlayerReading { position, rate }
    }

    #[test]
    fn seeks_on_big_drift_ahead_of_the_expected_position() {
        let mut c = DriftController::default();
        for error in [SEEK_THRESHOLD_S + 0.001, 2.0, -0.5, -30.0] {
            c.reset();
            let action = c.update(0.0, at(50.0 + error, PARTY), 50.0, PARTY);
            assert_eq!(
                action,
                DriftAction::Seek {
                    position: 50.0 + INITIAL_SEEK_LEAD_S,
                    rate: PARTY
                },
                "{error}"
            );
        }
        // Twice the rate: the lead is twice the video.
        c.reset();
        let DriftAction::Seek { position, rate } = c.update(0.0, at(0.0, 2.0), 50.0, 2.0) else {
            panic!("no seek");
        };
        assert_eq!((position, rate), (50.0 + 2.0 * INITIAL_SEEK_LEAD_S, 2.0));
    }

    #[test]
    fn nudges_on_medium_drift_within_bounds() {
        let mut c = DriftController::default();
        // Ahead: slow down; behind: speed up; proportional, capped at ±10%.
        let mut last = 1.0;
        for error in [0.01, 0.02, 0.03, 0.1, 0.24] {
            c.reset();
            let DriftAction::SetRate(rate) = c.update(0.0, at(10.0 + error, PARTY), 10.0, PARTY)
            else {
                panic!("no nudge at {error}");
            };
            assert!(rate < PARTY && rate <= last && rate >= PARTY * (1.0 - MAX_NUDGE));
            last = rate;
            c.reset();
            let DriftAction::SetRate(rate) = c.update(0.0, at(10.0 - error, PARTY), 10.0, PARTY)
            else {
                panic!("no nudge at -{error}");
            };
            assert!(rate > PARTY && rate <= PARTY * (1.0 + MAX_NUDGE));
        }
        assert_eq!(last, PARTY * (1.0 - MAX_NUDGE));
        // 10 ms ahead at gain 3 is 3% slower, rounded up to 5%, of the party rate.
        c.reset();
        let action = c.update(0.0, at(10.01, 2.0), 10.0, 2.0);
        let DriftAction::SetRate(rate) = action else {
            panic!("{action:?}");
        };
        assert!((rate - 2.0 * 0.95).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn keeps_within_the_dead_band() {
        let mut c = DriftController::default();
        for (i, error) in [0.0, 0.003, -0.004, 0.0049, -0.0049]
            .into_iter()
            .enumerate()
        {
            let t = i as f64 * CHECK_INTERVAL_MS;
            assert_eq!(
                c.update(t, at(10.0 + error, PARTY), 10.0, PARTY),
                DriftAction::Keep,
                "{error}"
            );
        }
        // Someone else changed the rate: it goes back to the party rate.
        assert_eq!(
            c.update(500.0, at(10.0, 1.25), 10.0, PARTY),
            DriftAction::SetRate(PARTY)
        );
        // Just outside: a nudge.
        assert!(matches!(
            c.update(600.0, at(10.0052, PARTY), 10.0, PARTY),
            DriftAction::SetRate(r) if r < PARTY
        ));
    }

    /// A player that plays at `speed` × its rate; checks every 100 ms for `secs`.
    /// Returns the errors seen and the rates set.
    fn run(
        c: &mut DriftController,
        speed: f64,
        start_error: f64,
        secs: f64,
    ) -> (Vec<f64>, Vec<f64>, f64) {
        let dt = CHECK_INTERVAL_MS / 1000.0;
        let (mut expected, mut position, mut rate) = (100.0, 100.0 + start_error, PARTY);
        let (mut errors, mut rates) = (Vec::new(), Vec::new());
        let steps = (secs / dt).round() as usize;
        for i in 0..steps {
            match c.update(
                i as f64 * CHECK_INTERVAL_MS,
                at(position, rate),
                expected,
                PARTY,
            ) {
                DriftAction::Keep => {}
                DriftAction::SetRate(r) => {
                    rate = r;
                    rates.push(r);
                }
                DriftAction::Seek { .. } => panic!("unexpected seek"),
            }
            errors.push(position - expected);
            position += rate * speed * dt;
            expected += PARTY * dt;
        }
        (errors, rates, rate)
    }

    #[test]
    fn rate_returns_to_the_party_rate_once_converged() {
        for start in [0.08, -0.08, 0.2, -0.2] {
            let mut c = DriftController::default();
            let (errors, rates, final_rate) = run(&mut c, 1.0, start, 10.0);
            assert!(rates.len() >= 2, "{start}: {rates:?}");
            // It corrected in the right direction, and came back to exactly 1.0.
            assert!((rates[0] - PARTY).signum() == -start.signum());
            assert_eq!(final_rate, PARTY, "{start}");
            assert_eq!(*rates.last().unwrap(), PARTY);
            // Converged (within 3 s from 200 ms off) and stayed there.
            assert!(
                errors[30..].iter().all(|e| e.abs() <= SETTLE_S),
                "{start}: {:?}",
                &errors[25..35]
            );
        }
    }

    #[test]
    fn learns_a_players_own_speed() {
        // A player 0.4% fast: without learning it leaves the dead band every second or
        // two; with learning the rate settles at 1/1.004 and the rate changes stop.
        let mut c = DriftController::default();
        let (errors, rates, final_rate) = run(&mut c, 1.004, 0.0, 120.0);
        assert!(
            (c.player_speed() - 1.004).abs() < 0.0005,
            "{}",
            c.player_speed()
        );
        assert!(
            (final_rate - 1.0 / c.player_speed()).abs() < 0.002,
            "{final_rate}"
        );
        assert!(errors.iter().all(|e| e.abs() <= DEAD_BAND_S + 0.002));
        let late_changes = rates.len()
            - run(&mut DriftController::default(), 1.004, 0.0, 60.0)
                .1
                .len();
        assert!(
            late_changes <= 4,
            "{late_changes} rate changes in the last minute"
        );

        let mut plain = DriftController::new(DriftConfig {
            learn_speed: false,
            ..DriftConfig::default()
        });
        let (_, plain_rates, _) = run(&mut plain, 1.004, 0.0, 120.0);
        assert!(plain_rates.len() > 3 * rates.len(), "{}", plain_rates.len());
    }

    #[test]
    fn learns_the_seek_lead() {
        // A player that takes 300 ms to resume after a seek.
        let mut c = DriftController::default();
        let mut seeks = Vec::new();
        for round in 0..6 {
            c.reset();
            let t = round as f64 * 10_000.0;
            let DriftAction::Seek { position, .. } = c.update(t, at(0.0, PARTY), 100.0, PARTY)
            else {
                panic!("no seek");
            };
            // Lands at `position` 300 ms later; checked at once.
            let landed = c.update(t + 300.0, at(position, PARTY), 100.3, PARTY);
            seeks.push(position - 100.3);
            let _ = landed;
        }
        // First seek lands 150 ms behind; the miss halves each time.
        assert!((seeks[0] + 0.15).abs() < 1e-9);
        assert!(seeks[5].abs() < 0.01, "{seeks:?}");
        assert!((c.seek_lead() - 0.3).abs() < 0.01);
    }

    #[test]
    fn a_missed_seek_is_nudged_not_repeated_at_once() {
        let mut c = DriftController::default();
        assert!(matches!(
            c.update(0.0, at(0.0, PARTY), 100.0, PARTY),
            DriftAction::Seek { .. }
        ));
        // Landed 1 s behind (a very slow seek): inside the cooldown, nudge at most.
        assert_eq!(
            c.update(300.0, at(99.3, PARTY), 100.3, PARTY),
            DriftAction::SetRate(PARTY * (1.0 + MAX_NUDGE))
        );
        assert!(matches!(
            c.update(1_000.0, at(100.1, 1.1), 101.0, PARTY),
            DriftAction::Seek { .. }
        ));
    }
}

//! Clock offset: NTP-style samples, the estimate, and when to ask.

use std::collections::VecDeque;

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

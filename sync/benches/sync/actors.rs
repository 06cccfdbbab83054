//! A member: its player and the client algorithm driving it.

use wp_sync::*;

use crate::model::*;

// ---------------------------------------------------------------------------------
// The player
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct Player {
    pub(crate) paused: bool,
    /// `play()` was called; the picture does not move yet.
    pub(crate) starting: bool,
    /// Position at `at` (simulated ms).
    pub(crate) pos: f64,
    pub(crate) at: f64,
    /// The rate it plays at (the last one that landed).
    pub(crate) rate: f64,
    /// `playbackRate`: the last one set, and the one before it.
    pub(crate) set: f64,
    pub(crate) previous: f64,
    /// Own speed: plays at `rate × speed`.
    pub(crate) speed: f64,
    /// A seek under way: lands at this time on this position.
    pub(crate) seek: Option<(f64, f64)>,
    /// Sequence numbers of seeks, rate changes and starts: only the latest lands.
    pub(crate) seq: u64,
    pub(crate) rate_seq: u64,
}

impl Player {
    fn new(speed: f64) -> Self {
        Self {
            paused: true,
            starting: false,
            pos: 0.0,
            at: 0.0,
            rate: 1.0,
            set: 1.0,
            previous: 1.0,
            speed,
            seek: None,
            seq: 0,
            rate_seq: 0,
        }
    }

    /// Where it is (`currentTime`, without reading noise).
    pub(crate) fn position(&self, t: f64) -> f64 {
        match self.seek {
            Some((_, target)) => target,
            None if self.paused || self.starting => self.pos,
            None => self.pos + (t - self.at) / 1000.0 * self.rate * self.speed,
        }
    }
    /// Whether its picture moves (what the browser run can measure).
    pub(crate) fn moving(&self) -> bool {
        !self.paused && !self.starting && self.seek.is_none()
    }
    pub(crate) fn rebase(&mut self, t: f64) {
        self.pos = self.position(t);
        self.at = t;
    }
    /// Sets `playbackRate`; returns when it lands and its number.
    pub(crate) fn set_rate(&mut self, t: f64, rate: f64, rng: &mut Rng) -> (f64, u64) {
        let back = (rate - self.previous).abs() < 1e-12;
        let latency = match (rate > self.set, back) {
            (true, false) => rng.within(LATENCY_FASTER_MS),
            (true, true) => rng.within(LATENCY_BACK_FROM_SLOWER_MS),
            (false, false) => rng.within(LATENCY_SLOWER_MS),
            (false, true) => rng.within(LATENCY_BACK_FROM_FASTER_MS),
        };
        self.rebase(t);
        if self.moving() {
            self.pos -= SETBACK_S + rng.sym(0.000_5);
        }
        self.previous = self.set;
        self.set = rate;
        self.rate_seq += 1;
        (t + latency, self.rate_seq)
    }
    pub(crate) fn rate_lands(&mut self, t: f64, seq: u64) {
        if seq == self.rate_seq {
            self.rebase(t);
            self.rate = self.set;
        }
    }
    pub(crate) fn pause(&mut self, t: f64) {
        self.rebase(t);
        self.paused = true;
        self.starting = false;
    }
    /// `play()`; returns when the picture starts moving, if it was paused.
    pub(crate) fn play(&mut self, t: f64, rng: &mut Rng) -> Option<(f64, u64)> {
        if !self.paused {
            return None;
        }
        self.rebase(t);
        self.paused = false;
        self.starting = true;
        self.seq += 1;
        Some((t + rng.within(PLAY_LATENCY_MS), self.seq))
    }
    pub(crate) fn started(&mut self, t: f64, seq: u64) {
        if seq == self.seq && self.starting {
            self.rebase(t);
            self.starting = false;
        }
    }
    /// Starts a seek; returns when it lands and its number.
    pub(crate) fn start_seek(&mut self, t: f64, target: f64, rng: &mut Rng) -> (f64, u64) {
        self.rebase(t);
        let from = self.pos;
        let buffered = target >= from - BUFFERED_BEHIND_S && target <= from + BUFFERED_AHEAD_S;
        let latency = rng.within(if buffered {
            SEEK_BUFFERED_MS
        } else {
            SEEK_UNBUFFERED_MS
        });
        self.seek = Some((t + latency, target));
        self.seq += 1;
        (t + latency, self.seq)
    }
    pub(crate) fn land(&mut self, t: f64, seq: u64) {
        if seq == self.seq
            && let Some((_, target)) = self.seek.take()
        {
            self.pos = target;
            self.at = t;
            // A seek started while starting: it plays once landed.
            self.starting = false;
        }
    }
    /// `currentTime` as read: noisy off exactly 1×.
    pub(crate) fn read(&self, t: f64, rng: &mut Rng) -> f64 {
        let noise = if (self.set - 1.0).abs() < 1e-12 {
            READ_NOISE_AT_1
        } else {
            READ_NOISE_OFF_1
        };
        self.position(t) + rng.sym(noise)
    }
}

// ---------------------------------------------------------------------------------
// Jellyfin's client state
// ---------------------------------------------------------------------------------

#[derive(Debug, Default)]
pub(crate) struct Jellyfin {
    /// Pings sent (4 a second apart, then one a minute).
    pub(crate) pings: u32,
    /// The last command and its number.
    pub(crate) command: Option<crate::events::JfCommand>,
    pub(crate) number: u64,
    /// Sync correction runs (not before 1.5 s after an unpause, nor while a speed is held).
    pub(crate) enabled: bool,
    pub(crate) last_sync: f64,
    /// A late unpause: where to seek once the picture moves.
    pub(crate) seek_on_start: Option<f64>,
    /// A seek command: report ready when it lands.
    pub(crate) awaiting_ready: bool,
}

// ---------------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) rng: Rng,
    pub(crate) skew: f64,
    pub(crate) ppm: f64,
    pub(crate) up: f64,
    pub(crate) down: f64,
    pub(crate) last_up: f64,
    pub(crate) last_down: f64,
    pub(crate) join_at: f64,
    pub(crate) joined: bool,
    pub(crate) hidden: bool,
    pub(crate) player: Player,
    pub(crate) clock: ClockSync,
    pub(crate) schedule: SyncSchedule,
    pub(crate) ctrl: DriftController,
    /// Ours: the state applied and its `seq`, a state held until its instant.
    pub(crate) state: Option<(PlaybackState, u64)>,
    pub(crate) held: Option<(PlaybackState, u64)>,
    pub(crate) jf: Jellyfin,
    pub(crate) seeks: u32,
    pub(crate) rate_changes: u32,
    pub(crate) resyncs: u32,
}

impl Member {
    pub(crate) fn new(
        scn: &Scenario,
        setup: &mut Rng,
        seed: u64,
        index: usize,
        config: DriftConfig,
        estimator: ClockEstimator,
    ) -> Self {
        let base = setup.range(scn.delay.0, scn.delay.1);
        let a = setup.sym(scn.asymmetry);
        Self {
            rng: Rng::new(seed),
            skew: setup.sym(scn.skew),
            ppm: setup.sym(scn.ppm) * 1e-6,
            up: (base + a).max(1.0),
            down: (base - a).max(1.0),
            last_up: 0.0,
            last_down: 0.0,
            join_at: setup.range(0.0, JOIN_SPREAD_MS),
            joined: false,
            hidden: index % HIDDEN_ONE_IN == HIDDEN_ONE_IN - 1,
            player: Player::new(1.0 + setup.sym(SPEED_BIAS)),
            clock: ClockSync::with_estimator(estimator),
            schedule: SyncSchedule::new(0.0),
            ctrl: DriftController::new(config),
            state: None,
            held: None,
            jf: Jellyfin::default(),
            seeks: 0,
            rate_changes: 0,
            resyncs: 0,
        }
    }

    /// The member's clock (ms) at simulated time `t`.
    pub(crate) fn local(&self, t: f64) -> f64 {
        EPOCH + self.skew + t * (1.0 + self.ppm)
    }
    pub(crate) fn sim_time(&self, local: f64) -> f64 {
        (local - EPOCH - self.skew) / (1.0 + self.ppm)
    }
    /// Its round trip as the server measures it (base delays and mean jitter).
    pub(crate) fn round_trip(&self, scn: &Scenario) -> f64 {
        self.up + self.down + scn.jitter_up + scn.jitter_down
    }
    pub(crate) fn one_way(&mut self, base: f64, jitter: f64, scn: &Scenario) -> f64 {
        let mut d = base + self.rng.exp(jitter);
        if self.rng.chance(scn.spike_p) {
            d += self.rng.range(scn.spike.0, scn.spike.1);
        }
        d
    }
    /// Arrival at the server of a message sent at `t` (in order, like TCP).
    pub(crate) fn arrive_up(&mut self, t: f64, scn: &Scenario) -> f64 {
        let d = self.one_way(self.up, scn.jitter_up, scn);
        self.last_up = (t + d).max(self.last_up);
        self.last_up
    }
    pub(crate) fn arrive_down(&mut self, t: f64, scn: &Scenario) -> f64 {
        let d = self.one_way(self.down, scn.jitter_down, scn);
        self.last_down = (t + d).max(self.last_down);
        self.last_down
    }
    /// The interval of its timers.
    pub(crate) fn timer_ms(&self, visible: f64) -> f64 {
        if self.hidden {
            HIDDEN_INTERVAL_MS
        } else {
            visible
        }
    }
}

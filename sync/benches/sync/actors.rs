//! A member: its player and the client algorithm driving it.

use wp_sync::*;

use crate::model::*;

// ---------------------------------------------------------------------------------
// The player
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct Player {
    pub(crate) paused: bool,
    /// Position at `at` (simulated ms).
    pub(crate) pos: f64,
    pub(crate) at: f64,
    pub(crate) rate: f64,
    /// Own speed: plays at `rate × speed`.
    pub(crate) speed: f64,
    /// A seek under way: lands at this time on this position (shown frozen until then).
    pub(crate) seek: Option<(f64, f64)>,
    pub(crate) seek_seq: u64,
    pub(crate) typical_seek_ms: f64,
}

impl Player {
    pub(crate) fn position(&self, t: f64) -> f64 {
        match self.seek {
            Some((_, target)) => target,
            None if self.paused => self.pos,
            None => self.pos + (t - self.at) / 1000.0 * self.rate * self.speed,
        }
    }
    pub(crate) fn rebase(&mut self, t: f64) {
        self.pos = self.position(t);
        self.at = t;
    }
    pub(crate) fn set_rate(&mut self, t: f64, rate: f64) {
        self.rebase(t);
        self.rate = rate;
    }
    pub(crate) fn set_paused(&mut self, t: f64, paused: bool) {
        self.rebase(t);
        self.paused = paused;
    }
    /// Starts a seek; returns when it lands and its sequence number.
    pub(crate) fn start_seek(&mut self, t: f64, target: f64, rng: &mut Rng) -> (f64, u64) {
        self.rebase(t);
        let latency =
            self.typical_seek_ms * rng.range(1.0 - SEEK_LATENCY_SPREAD, 1.0 + SEEK_LATENCY_SPREAD);
        self.seek = Some((t + latency, target));
        self.seek_seq += 1;
        (t + latency, self.seek_seq)
    }
    pub(crate) fn land(&mut self, t: f64, seq: u64) {
        if seq == self.seek_seq
            && let Some((_, target)) = self.seek.take()
        {
            self.pos = target;
            self.at = t;
        }
    }
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
    pub(crate) player: Player,
    pub(crate) clock: ClockSync,
    pub(crate) schedule: SyncSchedule,
    pub(crate) ctrl: DriftController,
    pub(crate) state: Option<PlaybackState>,
    pub(crate) seeks: u32,
    pub(crate) rate_changes: u32,
    pub(crate) resyncs: u32,
}

impl Member {
    pub(crate) fn new(
        scn: &Scenario,
        setup: &mut Rng,
        seed: u64,
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
            player: Player {
                paused: true,
                pos: 0.0,
                at: 0.0,
                rate: 1.0,
                speed: 1.0 + setup.sym(SPEED_BIAS),
                seek: None,
                seek_seq: 0,
                typical_seek_ms: setup.range(SEEK_LATENCY_MS.0, SEEK_LATENCY_MS.1),
            },
            clock: ClockSync::with_estimator(estimator),
            schedule: SyncSchedule::new(0.0),
            ctrl: DriftController::new(config),
            state: None,
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
    pub(crate) fn set_rate(&mut self, t: f64, rate: f64) {
        if rate != self.player.rate {
            self.player.set_rate(t, rate);
            self.rate_changes += 1;
        }
    }
}

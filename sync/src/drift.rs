//! Drift control: keep, nudge the playback rate, or seek.

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

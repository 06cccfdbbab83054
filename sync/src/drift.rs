//! Drift control: keep, nudge the playback rate for a while, or seek.
//!
//! Built against how Chromium's `<video>` behaves with sound (measured by
//! `deploy/browser/player-probe.mjs`, docs/sync.md "In browsers"): a `playbackRate`
//! change shows in `currentTime` and in the frames up to ~400 ms later (longer when
//! speeding up than when slowing down), every pulse of another rate sets the player
//! back ~16.5 ms, and while the rate is not exactly 1 `currentTime` reads up to ±7 ms
//! off (at 1: ±0.2 ms). A controller that reacts to every reading chases that noise and
//! its own corrections: the first browser runs changed the rate 135-170 times a
//! member-minute. So this one decides on the mean of a few readings, corrects with a
//! timed pulse rather than a proportional rate, ignores readings while a rate change is
//! still landing, and learns what a pulse really moves the player by.

/// A correction starts when the mean error of the last readings is more than 5 ms. A
/// member's error is mostly that of its clock estimate (2-10 ms, which no controller
/// can see), so a dead band much below it buys little. Jellyfin waits for 60 ms, which
/// lets two members sit 120 ms apart indefinitely.
pub const DEAD_BAND_S: f64 = 0.005;

/// Decisions use the mean error of the last 4 readings (400 ms at the check interval):
/// `currentTime` off rate 1 reads within ±7 ms, its mean of 4 within about ±3.5 ms.
pub const READINGS: usize = 4;

/// ... except that an error of 25 ms or more is acted on at once: reading noise cannot
/// explain it.
pub const CLEAR_ERROR_S: f64 = 0.025;

/// After the controller changes the rate, readings are ignored for 500 ms: the player
/// is still applying the change (Chromium: up to ~400 ms).
pub const RATE_SETTLE_MS: f64 = 500.0;

/// Errors of 250 ms or more (at 1×; the threshold is multiplied by the party rate) are
/// seeked away. A nudge of [`MAX_NUDGE`] removes `0.1 × rate` seconds of error per
/// second, so 250 ms × rate takes 2.5 s; a seek stalls the picture for its buffering
/// time and lands within the unpredictable part of it (tens of ms), which a nudge then
/// removes. Jellyfin seeks from 400 ms (when it cannot change the rate) and CyTube from
/// 2 s.
pub const SEEK_THRESHOLD_S: f64 = 0.250;

/// The largest nudge: the player runs at 0.9-1.1× the party rate while correcting.
/// Speech is still natural at ±10% with pitch preserved (browsers' default).
pub const MAX_NUDGE: f64 = 0.10;

/// A correction is a pulse: the rate is set to `base × (1 ∓ nudge)` for long enough to
/// remove the error, then back to the base rate. The nudge is `|error| / (MIN_PULSE_S ×
/// rate)` up to [`MAX_NUDGE`], so a pulse lasts at least 1 s (10 ms of error: 1% for 1 s;
/// 100 ms: 10% for 1 s; 200 ms: 10% for 2 s): long against the latency of a rate change,
/// which would otherwise be most of a short pulse. A pulse ends at the check nearest its
/// end; with checks a second apart (a hidden tab), a 1 s pulse is one check, so the
/// nudge never removes more than the error in one interval.
pub const MIN_PULSE_S: f64 = 1.0;

/// A pulse does not move the player by exactly what its rates say. Chromium, playing
/// media with sound, falls back ~16.5 ms at every pulse whichever its direction (a
/// 1 s, 5% pulse moves a player +33.5 or -66.5 ms, not ±50; the sound's time-stretching
/// starting up), and applies the start and the end with different delays (faster
/// ~400 ms late, back ~170 ms late; slower at once, back ~140 ms late). The controller
/// measures, per direction, how much less than planned each pulse removed (in seconds
/// of video; negative: more) from the error found after it, and plans the next pulses
/// for that much more (a direction not measured yet takes the mirror image of the
/// other: a set-back costs one direction what it gives the other, so the first pulse
/// each way is already about right): half of each measurement is blended in...
pub const PULSE_LEARNING: f64 = 0.5;
/// ... and it stays within ±50 ms.
pub const MAX_PULSE_COST_S: f64 = 0.050;

/// A player does not resume at once after a seek: it buffers. The controller seeks
/// ahead by the time it expects that to take, starting from 150 ms...
pub const INITIAL_SEEK_LEAD_S: f64 = 0.150;
/// ... and learns it: after each seek, half of the error found on landing is added to
/// the lead (also when the seek landed past the seek threshold: a lead that only
/// learnt from seeks landing within it could never grow past it).
pub const SEEK_LEAD_SMOOTHING: f64 = 0.5;
/// The lead never grows past 2 s (a seek that slow is a buffering problem, not a
/// latency to anticipate).
pub const MAX_SEEK_LEAD_S: f64 = 2.0;
/// Seeks of 10 s of video or more learn their own lead: they usually land outside what
/// the player holds and take far longer (Chromium over a 3 MB/s link: 0.4-1.5 s against
/// tens of ms), and one lead for both would send every short seek a second too far.
pub const FAR_SEEK_S: f64 = 10.0;
/// After a seek, no other seek for 1 s, except at the first check after it landed: a
/// seek that landed off by the threshold or more is tried again at once (with the lead
/// it just learnt); within the second after that, misses are nudged.
pub const SEEK_COOLDOWN_MS: f64 = 1_000.0;

/// Players do not play at exactly their rate against the local clock (audio clocks,
/// frame timing). The controller measures the actual speed over windows of 4 s of
/// video played at exactly 1× (pulses and the time a rate change takes to land are left
/// out): the one rate at which browsers read `currentTime` precisely (Chromium: within
/// ±0.2 ms, so a window measures the speed to about 0.01%; off 1×, within ±7 ms, 0.3%,
/// which would move the rate back and forth by itself; a party at another rate keeps
/// what was learnt at 1×)...
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
    /// Seconds of mean error above which a correction starts ([`DEAD_BAND_S`]).
    pub dead_band: f64,
    /// Seconds of error from which the controller seeks, at 1× (scaled by the party
    /// rate; [`SEEK_THRESHOLD_S`]).
    pub seek_threshold: f64,
    /// Largest nudge, as a fraction of the party rate ([`MAX_NUDGE`]).
    pub max_nudge: f64,
    /// Shortest pulse, seconds ([`MIN_PULSE_S`]).
    pub min_pulse: f64,
    /// Readings averaged per decision ([`READINGS`]; 1 = every reading decides).
    pub readings: usize,
    /// Milliseconds during which readings are ignored after a rate change
    /// ([`RATE_SETTLE_MS`]).
    pub rate_settle_ms: f64,
    /// Learn what a pulse really moves the player by ([`PULSE_LEARNING`]).
    pub learn_pulse: bool,
    /// Learn and compensate the player's own speed ([`SPEED_WINDOW_S`]).
    pub learn_speed: bool,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            dead_band: DEAD_BAND_S,
            seek_threshold: SEEK_THRESHOLD_S,
            max_nudge: MAX_NUDGE,
            min_pulse: MIN_PULSE_S,
            readings: READINGS,
            rate_settle_ms: RATE_SETTLE_MS,
            learn_pulse: true,
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
    /// The rate changed at the last reading: the interval to the next one is left out
    /// (however long it is, the change landed somewhere in it).
    skip: bool,
}

/// A correction under way (or just ended, waiting to be measured).
#[derive(Debug, Clone, Copy)]
struct Pulse {
    start_ms: f64,
    end_ms: f64,
    /// Fraction of the party rate, positive.
    nudge: f64,
    /// The mean error it was started for (seconds; positive: ahead, so it slows down).
    error: f64,
}

impl Pulse {
    /// 0 for a pulse that slows down, 1 for one that speeds up.
    fn direction(&self) -> usize {
        usize::from(self.error < 0.0)
    }
}

/// Keeps a playing player on the expected position. Call
/// [`update`](Self::update) every [`CHECK_INTERVAL_MS`] while the party and the
/// player are playing, the player is not seeking or buffering and the clock has an
/// estimate (in a hidden tab browsers call it about once a second: the controller
/// measures the interval and adapts); call [`reset`](Self::reset) on every
/// `video_state` (a change; not on heartbeats) and whenever playback stopped (pause,
/// buffering, the user seeking). Rates are assumed positive (the server keeps them
/// within 0.25-4).
#[derive(Debug, Clone)]
pub struct DriftController {
    config: DriftConfig,
    /// A seek was ordered and the next update is the first after it landed.
    seek_pending: bool,
    /// The pending seek was a far one ([`FAR_SEEK_S`]); a retry of one that missed.
    seek_far: bool,
    seek_retry: bool,
    last_seek_ms: f64,
    /// Leads for near and far seeks.
    seek_lead: [f64; 2],
    speed: f64,
    speed_windows: u32,
    applied_speed: f64,
    meter: Option<SpeedMeter>,
    /// The last errors read (seconds), oldest first, at most `config.readings`.
    errors: Vec<f64>,
    /// Readings before this local time are ignored (a rate change is landing).
    quiet_until_ms: f64,
    pulse: Option<Pulse>,
    /// The last pulse, until the error after it is known.
    ended: Option<Pulse>,
    /// Seconds of video a pulse removes less than planned, per direction (slow down,
    /// speed up).
    pulse_cost: [f64; 2],
    /// Whether a pulse in that direction was measured yet.
    pulse_measured: [bool; 2],
    last_update_ms: f64,
    /// The last interval between updates, ms.
    interval_ms: f64,
}

/// How often to call [`DriftController::update`]: every 100 ms. Each check costs a
/// few arithmetic operations; a pulse ends at the check nearest its end, so checking
/// less often makes pulses less exact (at 10%, 100 ms is 10 ms of video).
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
            seek_pending: false,
            seek_far: false,
            seek_retry: false,
            last_seek_ms: f64::NEG_INFINITY,
            seek_lead: [INITIAL_SEEK_LEAD_S; 2],
            speed: 1.0,
            speed_windows: 0,
            applied_speed: 1.0,
            meter: None,
            errors: Vec::with_capacity(config.readings.max(1)),
            quiet_until_ms: f64::NEG_INFINITY,
            pulse: None,
            ended: None,
            pulse_cost: [0.0, 0.0],
            pulse_measured: [false, false],
            last_update_ms: f64::NEG_INFINITY,
            interval_ms: CHECK_INTERVAL_MS,
        }
    }

    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    /// Forgets the current correction (not what it learned about the player: its speed,
    /// how long its seeks take, how much of a pulse it applies). Call on every
    /// `video_state` and after playback stopped.
    pub fn reset(&mut self) {
        self.seek_pending = false;
        self.last_seek_ms = f64::NEG_INFINITY;
        self.meter = None;
        self.errors.clear();
        self.quiet_until_ms = f64::NEG_INFINITY;
        self.pulse = None;
        self.ended = None;
        self.last_update_ms = f64::NEG_INFINITY;
    }

    /// The rate to give the player when nothing needs correcting: the party rate,
    /// divided by the player's measured speed when that is off by [`SPEED_STEP`] or
    /// more.
    pub fn base_rate(&self, party_rate: f64) -> f64 {
        party_rate / self.applied_speed
    }

    /// How far ahead of the expected position a seek aims, in seconds of wall time
    /// (multiplied by the party rate for video seconds), for a near or a far seek.
    pub fn seek_lead(&self, far: bool) -> f64 {
        self.seek_lead[usize::from(far)]
    }

    /// The player's measured speed against the local clock (1.0 = exact).
    pub fn player_speed(&self) -> f64 {
        self.speed
    }

    /// Seconds of video a pulse removes less than planned, as learnt: slowing down,
    /// speeding up (negative: more than planned). Until a direction has been measured,
    /// the mirror image of the other (a set-back, or a latency, costs one direction
    /// what it gives the other).
    pub fn pulse_cost(&self) -> [f64; 2] {
        [self.cost_for(0), self.cost_for(1)]
    }

    fn cost_for(&self, direction: usize) -> f64 {
        if self.pulse_measured[direction] {
            self.pulse_cost[direction]
        } else if self.pulse_measured[1 - direction] {
            -self.pulse_cost[1 - direction]
        } else {
            0.0
        }
    }

    /// Milliseconds between the last two updates (100, or about 1,000 in a hidden tab).
    pub fn check_interval(&self) -> f64 {
        self.interval_ms
    }

    /// One check at local time `local_ms` (the same monotonic clock as always):
    /// `player` is what the player reports, `expected` the party's position at the
    /// estimated server time now ([`expected_position`] of
    /// [`ClockSync::server_now`]), `party_rate` the state's rate.
    ///
    /// With `error = player.position - expected` (positive: ahead):
    /// - `|error| >= seek_threshold × party_rate` (and no seek in the last
    ///   [`SEEK_COOLDOWN_MS`], or this is the first check after one landed): seek to `expected + seek_lead × party_rate` (the near or
    ///   the far lead, [`FAR_SEEK_S`]);
    /// - a pulse under way: keep its rate until the check nearest its end, then back to
    ///   the base rate;
    /// - within `rate_settle_ms` of a rate change: the base rate, the reading ignored;
    /// - otherwise the reading joins the last `readings`; once there are that many
    ///   (or at once when `|error| >= CLEAR_ERROR_S`), if their mean `e` is beyond
    ///   `dead_band`: a pulse at `base_rate × (1 - nudge × sign(e))` to move the
    ///   player by `m = |e| + cost` (what pulses in that direction removed less than
    ///   planned), `nudge = min(m / (min_pulse × party_rate), max_nudge)`, lasting
    ///   `m / (nudge × party_rate)` made a whole number of check intervals (the nudge
    ///   lowered to fit); when the cost alone would overshoot (`m ≤ 0`), the smallest
    ///   pulse, and only if it lands nearer by more than `dead_band`;
    /// - else: run at [`base_rate`](Self::base_rate).
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

        let since = local_ms - self.last_update_ms;
        if since > 0.0 && since <= 5_000.0 {
            // The last interval, not an average: a tab hidden or shown changes it at
            // once (browsers run hidden tabs' timers once a second).
            self.interval_ms = since;
        }
        self.last_update_ms = local_ms;

        // The first check after a seek that was not itself a retry.
        let landed = self.seek_pending && !self.seek_retry;
        if self.seek_pending {
            self.seek_pending = false;
            // The first check after a seek landed: what is left is how much the lead
            // missed the buffering time by (unless it is more than a lead can be: then
            // something else moved the player).
            if error.abs() < MAX_SEEK_LEAD_S * party_rate && party_rate > 0.0 {
                let lead = &mut self.seek_lead[usize::from(self.seek_far)];
                *lead =
                    (*lead - SEEK_LEAD_SMOOTHING * error / party_rate).clamp(0.0, MAX_SEEK_LEAD_S);
            }
        }
        if cfg.learn_speed {
            self.measure_speed(local_ms, player);
        }

        let lowest = party_rate * (1.0 - cfg.max_nudge);
        let highest = party_rate * (1.0 + cfg.max_nudge);
        let base = self.base_rate(party_rate).clamp(lowest, highest);

        let seek_threshold = cfg.seek_threshold * party_rate.max(f64::MIN_POSITIVE);
        if error.abs() >= seek_threshold
            && (landed || local_ms - self.last_seek_ms >= SEEK_COOLDOWN_MS)
        {
            self.seek_pending = true;
            self.seek_retry = landed;
            self.seek_far = error.abs() >= FAR_SEEK_S;
            self.last_seek_ms = local_ms;
            self.meter = None;
            self.errors.clear();
            self.pulse = None;
            self.ended = None;
            self.quiet_until_ms = f64::NEG_INFINITY;
            return DriftAction::Seek {
                position: expected + self.seek_lead[usize::from(self.seek_far)] * party_rate,
                rate: base,
            };
        }

        let rate = if let Some(pulse) = self.pulse {
            if local_ms + self.interval_ms / 2.0 < pulse.end_ms {
                (base * (1.0 - pulse.nudge.copysign(pulse.error))).clamp(lowest, highest)
            } else {
                // The check nearest the pulse's end: back to the base rate, taking up
                // a new speed estimate on the way.
                self.pulse = None;
                self.ended = Some(Pulse {
                    end_ms: local_ms,
                    ..pulse
                });
                self.quiet_until_ms = local_ms + cfg.rate_settle_ms;
                self.applied_speed = self.settled_speed();
                self.base_rate(party_rate).clamp(lowest, highest)
            }
        } else if local_ms < self.quiet_until_ms {
            base
        } else {
            if error.abs() >= CLEAR_ERROR_S {
                // A clear error stands on its own (the readings before it may predate a
                // jump).
                self.errors.clear();
            } else if self.errors.len() >= cfg.readings.max(1) {
                self.errors.remove(0);
            }
            self.errors.push(error);
            let enough = self.errors.len() >= cfg.readings.max(1) || error.abs() >= CLEAR_ERROR_S;
            if enough {
                let mean = self.errors.iter().sum::<f64>() / self.errors.len() as f64;
                if let Some(ended) = self.ended.take()
                    && cfg.learn_pulse
                {
                    self.learn_pulse(ended, mean, party_rate);
                }
                let planned = mean.abs() + self.cost_for(usize::from(mean < 0.0));
                if mean.abs() > cfg.dead_band
                    && (planned > 0.0 || mean.abs() + planned > cfg.dead_band)
                {
                    self.start_pulse(local_ms, mean, planned, party_rate, lowest, highest)
                } else {
                    // Take up a new speed estimate when it is off by a step.
                    let settled = self.settled_speed();
                    if settled == 1.0 || (settled - self.applied_speed).abs() >= SPEED_STEP {
                        self.applied_speed = settled;
                    }
                    self.base_rate(party_rate).clamp(lowest, highest)
                }
            } else {
                base
            }
        };

        if let Some(meter) = &mut self.meter {
            meter.rate = rate;
        }
        if (rate - player.rate).abs() > 1e-9 * party_rate.max(1.0) {
            // Another rate: readings lag it (and the speed meter leaves that time out).
            self.quiet_until_ms = self.quiet_until_ms.max(local_ms + cfg.rate_settle_ms);
            if let Some(meter) = &mut self.meter {
                meter.skip = true;
            }
            DriftAction::SetRate(rate)
        } else {
            DriftAction::Keep
        }
    }

    /// Starts a pulse for mean error `mean` (seconds) meant to move the player by
    /// `planned`; returns its rate.
    fn start_pulse(
        &mut self,
        local_ms: f64,
        mean: f64,
        planned: f64,
        party_rate: f64,
        lowest: f64,
        highest: f64,
    ) -> f64 {
        let cfg = self.config;
        // The cost alone overshoots: the smallest pulse (a millisecond).
        let planned = planned.max(0.001);
        let nudge = (planned / (cfg.min_pulse.max(1e-3) * party_rate)).min(cfg.max_nudge);
        let seconds = planned / (nudge * party_rate);
        // A whole number of check intervals, the nudge lowered to fit: a pulse ends on
        // a check, and with checks a second apart it never runs past the error.
        let interval = self.interval_ms / 1000.0;
        let intervals = (seconds / interval - 1e-9).ceil().max(1.0);
        let nudge = (planned / (intervals * interval * party_rate)).min(cfg.max_nudge);
        self.pulse = Some(Pulse {
            start_ms: local_ms,
            end_ms: local_ms + intervals * self.interval_ms,
            nudge,
            error: mean,
        });
        self.errors.clear();
        (self.base_rate(party_rate) * (1.0 - nudge.copysign(mean))).clamp(lowest, highest)
    }

    /// The error after `pulse` is `mean`: it removed `pulse.error - mean` of the error,
    /// where its rates, for as long as it really lasted, should have moved the player
    /// by `nudge × party_rate × duration`.
    fn learn_pulse(&mut self, pulse: Pulse, mean: f64, party_rate: f64) {
        let removed = (pulse.error - mean) * pulse.error.signum();
        let moved = pulse.nudge * party_rate * (pulse.end_ms - pulse.start_ms) / 1000.0;
        let cost = (moved - removed).clamp(-MAX_PULSE_COST_S, MAX_PULSE_COST_S);
        let direction = pulse.direction();
        let before = self.cost_for(direction);
        self.pulse_cost[direction] =
            (before + PULSE_LEARNING * (cost - before)).clamp(-MAX_PULSE_COST_S, MAX_PULSE_COST_S);
        self.pulse_measured[direction] = true;
    }

    /// Compares how far the player moved with how far its rate should have taken it,
    /// per [`SPEED_WINDOW_S`] of video, and updates the speed estimate. Only at the base
    /// rate: pulses and the time their rate changes take to land are left out.
    fn measure_speed(&mut self, local_ms: f64, player: PlayerReading) {
        let steady = self.pulse.is_none()
            && local_ms >= self.quiet_until_ms
            && (player.rate - 1.0).abs() < 1e-12;
        if let Some(meter) = &mut self.meter
            && (meter.skip || !steady)
        {
            meter.last_ms = local_ms;
            meter.last_position = player.position;
            meter.rate = player.rate;
            meter.skip = false;
            return;
        }
        let Some(meter) = &mut self.meter else {
            self.meter = Some(SpeedMeter {
                last_ms: local_ms,
                last_position: player.position,
                rate: player.rate,
                expected: 0.0,
                actual: 0.0,
                skip: false,
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

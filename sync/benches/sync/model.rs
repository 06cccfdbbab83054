//! The simulated world: constants, the timelines of control events, the random
//! source, the scenarios and the algorithms compared.

use wp_sync::*;

/// The server clock reads `EPOCH + t` (Unix ms) at simulated time `t` (ms).
pub(crate) const EPOCH: f64 = 1_764_230_400_000.0;
/// From this long after a change, the party counts as in its steady state.
pub(crate) const SETTLE_MS: f64 = 3_000.0;
/// Measurement period.
pub(crate) const SAMPLE_MS: f64 = 100.0;
/// Heartbeat period of the server.
pub(crate) const HEARTBEAT_MS: f64 = 5_000.0;
/// The server takes 0-2 ms between receiving a sync request and answering.
pub(crate) const SERVER_PROCESSING_MS: f64 = 2.0;
/// Members join in the first 2 s.
pub(crate) const JOIN_SPREAD_MS: f64 = 2_000.0;
pub(crate) const END_MS: f64 = 260_000.0;

// ---------------------------------------------------------------------------------
// Players: Chromium playing media with sound, as deploy/browser/player-probe.mjs
// measured it (docs/sync.md, "In browsers").
// ---------------------------------------------------------------------------------

/// Own speed against the local clock (the sound card's clock against the system's):
/// within ±200 ppm per member...
pub(crate) const SPEED_BIAS: f64 = 0.000_2;
/// ... wandering by 20 ppm per minute (standard deviation), never past ±300 ppm.
pub(crate) const SPEED_WANDER_PER_MIN: f64 = 0.000_02;
pub(crate) const SPEED_LIMIT: f64 = 0.000_3;
/// `currentTime` reads within ±0.2 ms at exactly 1×, within ±7 ms at any other rate.
pub(crate) const READ_NOISE_AT_1: f64 = 0.000_2;
pub(crate) const READ_NOISE_OFF_1: f64 = 0.007;
/// A rate change lands late (ms): a faster rate 300-450 ms late, going back from it
/// 120-220; a slower one 0-30, going back from it 100-180.
pub(crate) const LATENCY_FASTER_MS: (f64, f64) = (300.0, 450.0);
pub(crate) const LATENCY_BACK_FROM_FASTER_MS: (f64, f64) = (120.0, 220.0);
pub(crate) const LATENCY_SLOWER_MS: (f64, f64) = (0.0, 30.0);
pub(crate) const LATENCY_BACK_FROM_SLOWER_MS: (f64, f64) = (100.0, 180.0);
/// Each rate change sets a playing player back this much (±0.5 ms): a pulse, two
/// changes, ~16.5 ms.
pub(crate) const SETBACK_S: f64 = 0.008_25;
/// `play()` from paused: the picture starts moving 60-160 ms later.
pub(crate) const PLAY_LATENCY_MS: (f64, f64) = (60.0, 160.0);
/// A seek within what the player holds (from 5 s behind to 20 s ahead of where it
/// is) lands in 30-150 ms; anywhere else in 400-1,500 ms.
pub(crate) const SEEK_BUFFERED_MS: (f64, f64) = (30.0, 150.0);
pub(crate) const SEEK_UNBUFFERED_MS: (f64, f64) = (400.0, 1_500.0);
pub(crate) const BUFFERED_BEHIND_S: f64 = 5.0;
pub(crate) const BUFFERED_AHEAD_S: f64 = 20.0;
/// One member in ten has its tab hidden: its timers (checks, `timeupdate`) run once a
/// second.
pub(crate) const HIDDEN_ONE_IN: usize = 10;
pub(crate) const HIDDEN_INTERVAL_MS: f64 = 1_000.0;
/// Browsers fire `timeupdate` about every 250 ms (Jellyfin's check runs on it).
pub(crate) const TIMEUPDATE_MS: f64 = 250.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Control {
    Play,
    Pause,
    Seek(f64),
    Rate(f64),
}

/// What the server does, at which second (260 s).
pub(crate) const TIMELINE: &[(f64, Control)] = &[
    (5.0, Control::Play),
    (35.0, Control::Seek(600.0)),
    (65.0, Control::Pause),
    (72.0, Control::Play),
    (100.0, Control::Rate(1.5)),
    (130.0, Control::Rate(1.0)),
    (150.0, Control::Seek(300.0)),
    (180.0, Control::Rate(0.75)),
    (200.0, Control::Rate(1.0)),
    (215.0, Control::Pause),
    (220.0, Control::Play),
    (240.0, Control::Seek(42.0)),
];

/// The same without rate changes: neither Jellyfin nor CyTube has a party rate.
pub(crate) const COMMON_TIMELINE: &[(f64, Control)] = &[
    (5.0, Control::Play),
    (35.0, Control::Seek(600.0)),
    (65.0, Control::Pause),
    (72.0, Control::Play),
    (100.0, Control::Seek(630.0)),
    (150.0, Control::Seek(300.0)),
    (180.0, Control::Seek(310.0)),
    (215.0, Control::Pause),
    (220.0, Control::Play),
    (240.0, Control::Seek(42.0)),
];

// ---------------------------------------------------------------------------------
// Randomness: SplitMix64, so the numbers never change with a dependency's version.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    pub(crate) fn within(&mut self, (lo, hi): (f64, f64)) -> f64 {
        self.range(lo, hi)
    }
    pub(crate) fn sym(&mut self, max: f64) -> f64 {
        self.range(-max, max)
    }
    pub(crate) fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub(crate) fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

// ---------------------------------------------------------------------------------
// Scenarios and algorithms
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// Base one-way delay of a member's link, drawn per member, ms.
    pub(crate) delay: (f64, f64),
    /// Fixed difference between up and down: up = base + a, down = base - a, a drawn
    /// in ±this per member, ms.
    pub(crate) asymmetry: f64,
    /// Mean of the exponential queueing jitter added to every message, ms.
    pub(crate) jitter_up: f64,
    pub(crate) jitter_down: f64,
    /// Probability of a spike on a message, and its size, ms.
    pub(crate) spike_p: f64,
    pub(crate) spike: (f64, f64),
    /// Clock offset of members, ± ms, and frequency error, ± ppm.
    pub(crate) skew: f64,
    pub(crate) ppm: f64,
}

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "low delay (20-60 ms)",
        delay: (20.0, 60.0),
        asymmetry: 2.0,
        jitter_up: 3.0,
        jitter_down: 2.0,
        spike_p: 0.005,
        spike: (50.0, 200.0),
        skew: 5_000.0,
        ppm: 50.0,
    },
    Scenario {
        name: "mixed (20-300 ms)",
        delay: (20.0, 300.0),
        asymmetry: 5.0,
        jitter_up: 15.0,
        jitter_down: 8.0,
        spike_p: 0.01,
        spike: (100.0, 500.0),
        skew: 5_000.0,
        ppm: 50.0,
    },
    Scenario {
        name: "high delay + jitter (150-300 ms)",
        delay: (150.0, 300.0),
        asymmetry: 5.0,
        jitter_up: 40.0,
        jitter_down: 20.0,
        spike_p: 0.03,
        spike: (100.0, 800.0),
        skew: 5_000.0,
        ppm: 50.0,
    },
    Scenario {
        name: "big skew (±1 h, ±200 ppm)",
        delay: (20.0, 300.0),
        asymmetry: 5.0,
        jitter_up: 15.0,
        jitter_down: 8.0,
        spike_p: 0.01,
        spike: (100.0, 500.0),
        skew: 3_600_000.0,
        ppm: 200.0,
    },
    Scenario {
        name: "asymmetric routes (±30 ms)",
        delay: (20.0, 300.0),
        asymmetry: 30.0,
        jitter_up: 15.0,
        jitter_down: 8.0,
        spike_p: 0.01,
        spike: (100.0, 500.0),
        skew: 5_000.0,
        ppm: 50.0,
    },
];

#[derive(Debug, Clone, Copy)]
pub(crate) enum Algo {
    /// `wp_sync`: clock sync with this estimator, changes scheduled by the server
    /// (`updated_at` = now + the slowest round trip + 20 ms), the drift controller with
    /// this configuration.
    Ours(DriftConfig, ClockEstimator),
    /// Jellyfin SyncPlay (jellyfin-web `src/plugins/syncPlay`, jellyfin
    /// `Emby.Server.Implementations/SyncPlay`), with its sync correction on or (its
    /// default since 2023) off.
    Jellyfin { correction: bool },
    /// CyTube (calzoneman/sync): the server's time every 5 s and on every change, a
    /// seek when more than 2 s off.
    CyTube,
}

//! The simulated world: constants, the timeline of control events, the random
//! source, the scenarios and the algorithms compared.

use wp_sync::*;

/// The server clock reads `EPOCH + t` (Unix ms) at simulated time `t` (ms).
pub(crate) const EPOCH: f64 = 1_764_230_400_000.0;
/// After a control event, members get this long before they are measured.
pub(crate) const SETTLE_MS: f64 = 3_000.0;
/// Measurement period.
pub(crate) const SAMPLE_MS: f64 = 100.0;
/// Heartbeat period of the server.
pub(crate) const HEARTBEAT_MS: f64 = 5_000.0;
/// The naive baseline seeks when it is this far off (CyTube-like).
pub(crate) const NAIVE_THRESHOLD_S: f64 = 1.0;
/// Players' own speed error: each plays at `rate × (1 + bias)`, bias in ±0.5%...
pub(crate) const SPEED_BIAS: f64 = 0.005;
/// ... wandering by a random walk of 0.05% per minute (standard deviation)...
pub(crate) const SPEED_WANDER_PER_MIN: f64 = 0.0005;
/// ... and never past ±0.6%.
pub(crate) const SPEED_LIMIT: f64 = 0.006;
/// Each member's typical seek takes 50-250 ms; each seek 75-125% of that.
pub(crate) const SEEK_LATENCY_MS: (f64, f64) = (50.0, 250.0);
pub(crate) const SEEK_LATENCY_SPREAD: f64 = 0.25;
/// `currentTime` is read with ±1 ms of noise.
pub(crate) const READ_NOISE_S: f64 = 0.001;
/// The server takes 0-2 ms between receiving a sync request and answering.
pub(crate) const SERVER_PROCESSING_MS: f64 = 2.0;
/// Members join in the first 2 s.
pub(crate) const JOIN_SPREAD_MS: f64 = 2_000.0;
pub(crate) const END_MS: f64 = 260_000.0;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    Play,
    Pause,
    Seek(f64),
    Rate(f64),
}

/// What the server does, at which second.
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
    /// `sync.rs`: clock sync with this estimator + the drift controller with this
    /// configuration.
    Ours(DriftConfig, ClockEstimator),
    /// No clock sync; take the server's position as of the frame's arrival, seek when
    /// more than 1 s off, checked on every state frame (heartbeats included).
    Naive,
}

//! Playback-sync simulation: one server and 50 members, each following the client
//! algorithm of `watch_party_realtime::sync` (or a baseline), through skewed clocks, slow
//! and jittery links and imperfect players. Deterministic (seeded), discrete-event,
//! a few seconds of CPU for everything.
//!
//! Run: `SQLX_OFFLINE=true cargo bench -p watch-party-realtime --bench sync`
//! Knobs (environment): BENCH_SEEDS (default 8: runs pooled per scenario),
//! BENCH_MEMBERS (default 50), BENCH_SWEEP=1 (also sweep the controller's constants).
//! The model, the results and what they do not show: docs/sync.md.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
    time::Instant,
};

use wp_sync::{
    CHECK_INTERVAL_MS, ClockEstimator, ClockSync, DriftAction, DriftConfig, DriftController,
    PlaybackState, PlaybackStatus, PlayerReading, SyncSchedule, expected_position,
};

/// The server clock reads `EPOCH + t` (Unix ms) at simulated time `t` (ms).
const EPOCH: f64 = 1_764_230_400_000.0;
/// After a control event, members get this long before they are measured.
const SETTLE_MS: f64 = 3_000.0;
/// Measurement period.
const SAMPLE_MS: f64 = 100.0;
/// Heartbeat period of the server.
const HEARTBEAT_MS: f64 = 5_000.0;
/// The naive baseline seeks when it is this far off (CyTube-like).
const NAIVE_THRESHOLD_S: f64 = 1.0;
/// Players' own speed error: each plays at `rate × (1 + bias)`, bias in ±0.5%...
const SPEED_BIAS: f64 = 0.005;
/// ... wandering by a random walk of 0.05% per minute (standard deviation)...
const SPEED_WANDER_PER_MIN: f64 = 0.0005;
/// ... and never past ±0.6%.
const SPEED_LIMIT: f64 = 0.006;
/// Each member's typical seek takes 50-250 ms; each seek 75-125% of that.
const SEEK_LATENCY_MS: (f64, f64) = (50.0, 250.0);
const SEEK_LATENCY_SPREAD: f64 = 0.25;
/// `currentTime` is read with ±1 ms of noise.
const READ_NOISE_S: f64 = 0.001;
/// The server takes 0-2 ms between receiving a sync request and answering.
const SERVER_PROCESSING_MS: f64 = 2.0;
/// Members join in the first 2 s.
const JOIN_SPREAD_MS: f64 = 2_000.0;
const END_MS: f64 = 260_000.0;

#[derive(Debug, Clone, Copy)]
enum Control {
    Play,
    Pause,
    Seek(f64),
    Rate(f64),
}

/// What the server does, at which second.
const TIMELINE: &[(f64, Control)] = &[
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
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn sym(&mut self, max: f64) -> f64 {
        self.range(-max, max)
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

// ---------------------------------------------------------------------------------
// Scenarios and algorithms
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// Base one-way delay of a member's link, drawn per member, ms.
    delay: (f64, f64),
    /// Fixed difference between up and down: up = base + a, down = base - a, a drawn
    /// in ±this per member, ms.
    asymmetry: f64,
    /// Mean of the exponential queueing jitter added to every message, ms.
    jitter_up: f64,
    jitter_down: f64,
    /// Probability of a spike on a message, and its size, ms.
    spike_p: f64,
    spike: (f64, f64),
    /// Clock offset of members, ± ms, and frequency error, ± ppm.
    skew: f64,
    ppm: f64,
}

const SCENARIOS: &[Scenario] = &[
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
enum Algo {
    /// `sync.rs`: clock sync with this estimator + the drift controller with this
    /// configuration.
    Ours(DriftConfig, ClockEstimator),
    /// No clock sync; take the server's position as of the frame's arrival, seek when
    /// more than 1 s off, checked on every state frame (heartbeats included).
    Naive,
}

// ---------------------------------------------------------------------------------
// The player
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Player {
    paused: bool,
    /// Position at `at` (simulated ms).
    pos: f64,
    at: f64,
    rate: f64,
    /// Own speed: plays at `rate × speed`.
    speed: f64,
    /// A seek under way: lands at this time on this position (shown frozen until then).
    seek: Option<(f64, f64)>,
    seek_seq: u64,
    typical_seek_ms: f64,
}

impl Player {
    fn position(&self, t: f64) -> f64 {
        match self.seek {
            Some((_, target)) => target,
            None if self.paused => self.pos,
            None => self.pos + (t - self.at) / 1000.0 * self.rate * self.speed,
        }
    }
    fn rebase(&mut self, t: f64) {
        self.pos = self.position(t);
        self.at = t;
    }
    fn set_rate(&mut self, t: f64, rate: f64) {
        self.rebase(t);
        self.rate = rate;
    }
    fn set_paused(&mut self, t: f64, paused: bool) {
        self.rebase(t);
        self.paused = paused;
    }
    /// Starts a seek; returns when it lands and its sequence number.
    fn start_seek(&mut self, t: f64, target: f64, rng: &mut Rng) -> (f64, u64) {
        self.rebase(t);
        let latency =
            self.typical_seek_ms * rng.range(1.0 - SEEK_LATENCY_SPREAD, 1.0 + SEEK_LATENCY_SPREAD);
        self.seek = Some((t + latency, target));
        self.seek_seq += 1;
        (t + latency, self.seek_seq)
    }
    fn land(&mut self, t: f64, seq: u64) {
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
struct Member {
    rng: Rng,
    skew: f64,
    ppm: f64,
    up: f64,
    down: f64,
    last_up: f64,
    last_down: f64,
    join_at: f64,
    joined: bool,
    player: Player,
    clock: ClockSync,
    schedule: SyncSchedule,
    ctrl: DriftController,
    state: Option<PlaybackState>,
    seeks: u32,
    rate_changes: u32,
    resyncs: u32,
}

impl Member {
    fn new(
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
    fn local(&self, t: f64) -> f64 {
        EPOCH + self.skew + t * (1.0 + self.ppm)
    }
    fn sim_time(&self, local: f64) -> f64 {
        (local - EPOCH - self.skew) / (1.0 + self.ppm)
    }
    fn one_way(&mut self, base: f64, jitter: f64, scn: &Scenario) -> f64 {
        let mut d = base + self.rng.exp(jitter);
        if self.rng.chance(scn.spike_p) {
            d += self.rng.range(scn.spike.0, scn.spike.1);
        }
        d
    }
    /// Arrival at the server of a message sent at `t` (in order, like TCP).
    fn arrive_up(&mut self, t: f64, scn: &Scenario) -> f64 {
        let d = self.one_way(self.up, scn.jitter_up, scn);
        self.last_up = (t + d).max(self.last_up);
        self.last_up
    }
    fn arrive_down(&mut self, t: f64, scn: &Scenario) -> f64 {
        let d = self.one_way(self.down, scn.jitter_down, scn);
        self.last_down = (t + d).max(self.last_down);
        self.last_down
    }
    fn set_rate(&mut self, t: f64, rate: f64) {
        if rate != self.player.rate {
            self.player.set_rate(t, rate);
            self.rate_changes += 1;
        }
    }
}

// ---------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Msg {
    SyncResponse {
        t0: f64,
        t1: f64,
        t2: f64,
    },
    State {
        state: PlaybackState,
        server_time: f64,
        change: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Control(usize),
    Heartbeat,
    Sample,
    Join(usize),
    Tick(usize),
    SyncDue(usize),
    AtServer(usize, f64),
    AtMember(usize, Msg),
    SeekLands(usize, u64),
}

struct Queued {
    t: f64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        self.t.total_cmp(&other.t).then(self.seq.cmp(&other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Queued>>,
    seq: u64,
}
impl Queue {
    fn push(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse(Queued {
            t,
            seq: self.seq,
            ev,
        }));
    }
    fn pop(&mut self) -> Option<(f64, Ev)> {
        self.heap.pop().map(|Reverse(q)| (q.t, q.ev))
    }
}

// ---------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Outcome {
    /// max - min of the members' true positions, per sample, ms.
    spreads: Vec<f64>,
    /// |member - server|, per member and sample, ms.
    errors: Vec<f64>,
    /// |estimated server clock - server clock|, per member and sample, ms (ours).
    clock_errors: Vec<f64>,
    seeks: u64,
    rate_changes: u64,
    resyncs: u64,
    member_minutes: f64,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.spreads.extend(other.spreads);
        self.errors.extend(other.errors);
        self.clock_errors.extend(other.clock_errors);
        self.seeks += other.seeks;
        self.rate_changes += other.rate_changes;
        self.resyncs += other.resyncs;
        self.member_minutes += other.member_minutes;
    }
}

fn server_ms(t: f64) -> f64 {
    (EPOCH + t).floor()
}

fn run(scn: &Scenario, algo: Algo, members: usize, seed: u64) -> Outcome {
    let (config, estimator) = match algo {
        Algo::Ours(c, e) => (c, e),
        Algo::Naive => (DriftConfig::default(), ClockEstimator::default()),
    };
    let mut setup = Rng::new(seed.wrapping_mul(1_000_003));
    let mut ms: Vec<Member> = (0..members)
        .map(|i| {
            Member::new(
                scn,
                &mut setup,
                seed.wrapping_mul(7_919).wrapping_add(i as u64),
                config,
                estimator,
            )
        })
        .collect();
    let mut state = PlaybackState {
        status: PlaybackStatus::Paused,
        position: 0.0,
        rate: 1.0,
        updated_at: server_ms(0.0) as i64,
    };
    let mut q = Queue::default();
    for (i, m) in ms.iter().enumerate() {
        q.push(m.join_at, Ev::Join(i));
    }
    for (i, (at, _)) in TIMELINE.iter().enumerate() {
        q.push(at * 1000.0, Ev::Control(i));
    }
    q.push(HEARTBEAT_MS, Ev::Heartbeat);
    q.push(0.0, Ev::Sample);

    let mut out = Outcome::default();
    let mut last_control = f64::NEG_INFINITY;
    let mut positions = Vec::with_capacity(members);

    while let Some((t, ev)) = q.pop() {
        if t > END_MS {
            break;
        }
        match ev {
            Ev::Control(i) => {
                let now = server_ms(t);
                let mut next = PlaybackState {
                    position: expected_position(&state, now),
                    updated_at: now as i64,
                    ..state
                };
                match TIMELINE[i].1 {
                    Control::Play => next.status = PlaybackStatus::Playing,
                    Control::Pause => next.status = PlaybackStatus::Paused,
                    Control::Seek(p) => next.position = p,
                    Control::Rate(r) => next.rate = r,
                }
                state = next;
                last_control = t;
                for (j, m) in ms.iter_mut().enumerate().filter(|(_, m)| m.joined) {
                    let msg = Msg::State {
                        state,
                        server_time: now,
                        change: true,
                    };
                    q.push(m.arrive_down(t, scn), Ev::AtMember(j, msg));
                }
            }
            Ev::Heartbeat => {
                for (j, m) in ms.iter_mut().enumerate().filter(|(_, m)| m.joined) {
                    let msg = Msg::State {
                        state,
                        server_time: server_ms(t),
                        change: false,
                    };
                    q.push(m.arrive_down(t, scn), Ev::AtMember(j, msg));
                }
                q.push(t + HEARTBEAT_MS, Ev::Heartbeat);
            }
            Ev::Sample => {
                let settled = t >= last_control + SETTLE_MS && t >= JOIN_SPREAD_MS + SETTLE_MS;
                if settled && state.status == PlaybackStatus::Playing {
                    let truth = expected_position(&state, EPOCH + t);
                    positions.clear();
                    positions.extend(ms.iter().map(|m| m.player.position(t)));
                    let lo = positions.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = positions.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    out.spreads.push((hi - lo) * 1000.0);
                    out.errors
                        .extend(positions.iter().map(|p| (p - truth).abs() * 1000.0));
                    out.clock_errors.extend(ms.iter().filter_map(|m| {
                        let estimate = m.clock.server_now(m.local(t))?;
                        Some((estimate - (EPOCH + t)).abs())
                    }));
                }
                q.push(t + SAMPLE_MS, Ev::Sample);
            }
            Ev::Join(i) => {
                let m = &mut ms[i];
                m.joined = true;
                m.schedule = SyncSchedule::new(m.local(t));
                let msg = Msg::State {
                    state,
                    server_time: server_ms(t),
                    change: true,
                };
                // The join frame is answered by the server after the upgrade: one trip.
                let at_server = m.arrive_up(t, scn);
                q.push(m.arrive_down(at_server, scn), Ev::AtMember(i, msg));
                if matches!(algo, Algo::Ours(..)) {
                    q.push(t, Ev::SyncDue(i));
                }
                q.push(t + m.rng.range(0.0, CHECK_INTERVAL_MS), Ev::Tick(i));
            }
            Ev::SyncDue(i) => {
                let m = &mut ms[i];
                let local = m.local(t);
                if m.schedule.poll(local) {
                    let at = m.arrive_up(t, scn);
                    q.push(at, Ev::AtServer(i, local));
                }
                let next = m.sim_time(m.schedule.next_at()).max(t + 1.0);
                q.push(next, Ev::SyncDue(i));
            }
            Ev::AtServer(i, t0) => {
                let m = &mut ms[i];
                let t1 = server_ms(t);
                let sent = t + m.rng.range(0.0, SERVER_PROCESSING_MS);
                let t2 = server_ms(sent);
                let at = m.arrive_down(sent, scn);
                q.push(at, Ev::AtMember(i, Msg::SyncResponse { t0, t1, t2 }));
            }
            Ev::AtMember(i, msg) => {
                let m = &mut ms[i];
                let local = m.local(t);
                match (msg, algo) {
                    (Msg::SyncResponse { t0, t1, t2 }, _) => {
                        m.clock.add_sample(t0, t1, t2, local);
                    }
                    (
                        Msg::State {
                            state,
                            server_time,
                            change,
                        },
                        Algo::Ours(..),
                    ) => {
                        if !m.clock.is_consistent(server_time, local) {
                            m.clock.clear();
                            m.schedule.burst(local);
                            m.resyncs += 1;
                            q.push(t, Ev::SyncDue(i));
                        }
                        if change {
                            m.ctrl.reset();
                        }
                        m.state = Some(state);
                        if let Some(seek) = apply_state(m, t, &state) {
                            q.push(seek.0, Ev::SeekLands(i, seek.1));
                        }
                        if let Some(seek) = control(m, t) {
                            q.push(seek.0, Ev::SeekLands(i, seek.1));
                        }
                    }
                    (
                        Msg::State {
                            state, server_time, ..
                        },
                        Algo::Naive,
                    ) => {
                        if let Some(seek) = naive(m, t, &state, server_time) {
                            q.push(seek.0, Ev::SeekLands(i, seek.1));
                        }
                    }
                }
            }
            Ev::Tick(i) => {
                let m = &mut ms[i];
                // The player's own speed wanders.
                m.player.rebase(t);
                let step = SPEED_WANDER_PER_MIN * (CHECK_INTERVAL_MS / 60_000.0).sqrt();
                m.player.speed = (m.player.speed + step * m.rng.normal())
                    .clamp(1.0 - SPEED_LIMIT, 1.0 + SPEED_LIMIT);
                if matches!(algo, Algo::Ours(..))
                    && let Some(seek) = control(m, t)
                {
                    q.push(seek.0, Ev::SeekLands(i, seek.1));
                }
                q.push(t + CHECK_INTERVAL_MS, Ev::Tick(i));
            }
            Ev::SeekLands(i, seq) => ms[i].player.land(t, seq),
        }
    }
    for m in &ms {
        out.seeks += u64::from(m.seeks);
        out.rate_changes += u64::from(m.rate_changes);
        out.resyncs += u64::from(m.resyncs);
        out.member_minutes += (END_MS - m.join_at) / 60_000.0;
    }
    out
}

/// A new state from the server (ours): stop or start the player; a paused party is
/// shown at exactly its position.
fn apply_state(m: &mut Member, t: f64, state: &PlaybackState) -> Option<(f64, u64)> {
    match state.status {
        PlaybackStatus::Paused | PlaybackStatus::Waiting => {
            m.player.set_paused(t, true);
            if (m.player.position(t) - state.position).abs() > 0.000_5 {
                m.seeks += 1;
                return Some(m.player.start_seek(t, state.position, &mut m.rng));
            }
            None
        }
        PlaybackStatus::Playing => {
            if m.player.paused {
                m.player.set_paused(t, false);
            }
            None
        }
    }
}

/// One check of the drift controller (ours), when there is something to check.
fn control(m: &mut Member, t: f64) -> Option<(f64, u64)> {
    let state = m.state?;
    if state.status != PlaybackStatus::Playing || m.player.paused || m.player.seek.is_some() {
        return None;
    }
    let local = m.local(t);
    let server_now = m.clock.server_now(local)?;
    let reading = PlayerReading {
        position: m.player.position(t) + m.rng.sym(READ_NOISE_S),
        rate: m.player.rate,
    };
    let expected = expected_position(&state, server_now);
    match m.ctrl.update(local, reading, expected, state.rate) {
        DriftAction::Keep => None,
        DriftAction::SetRate(r) => {
            m.set_rate(t, r);
            None
        }
        DriftAction::Seek { position, rate } => {
            m.set_rate(t, rate);
            m.seeks += 1;
            Some(m.player.start_seek(t, position, &mut m.rng))
        }
    }
}

/// The naive baseline: the frame's position as of its sending is taken to be the
/// position now; seek when more than 1 s off.
fn naive(m: &mut Member, t: f64, state: &PlaybackState, server_time: f64) -> Option<(f64, u64)> {
    let target = expected_position(state, server_time);
    let playing = state.status == PlaybackStatus::Playing;
    m.player.set_paused(t, !playing);
    m.set_rate(t, state.rate);
    if (m.player.position(t) - target).abs() > NAIVE_THRESHOLD_S {
        m.seeks += 1;
        return Some(m.player.start_seek(t, target, &mut m.rng));
    }
    None
}

// ---------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Summary {
    spread: [f64; 4],
    error: [f64; 2],
    clock_error: [f64; 2],
    seeks_per_min: f64,
    rates_per_min: f64,
    resyncs: u64,
}

fn summarize(mut o: Outcome) -> Summary {
    o.spreads.sort_by(f64::total_cmp);
    o.errors.sort_by(f64::total_cmp);
    o.clock_errors.sort_by(f64::total_cmp);
    Summary {
        spread: [
            percentile(&o.spreads, 50.0),
            percentile(&o.spreads, 95.0),
            percentile(&o.spreads, 99.0),
            percentile(&o.spreads, 100.0),
        ],
        error: [percentile(&o.errors, 50.0), percentile(&o.errors, 95.0)],
        clock_error: [
            percentile(&o.clock_errors, 50.0),
            percentile(&o.clock_errors, 95.0),
        ],
        seeks_per_min: o.seeks as f64 / o.member_minutes,
        rates_per_min: o.rate_changes as f64 / o.member_minutes,
        resyncs: o.resyncs,
    }
}

fn simulate(scn: &Scenario, algo: Algo, members: usize, seeds: u64) -> Summary {
    let mut all = Outcome::default();
    for seed in 1..=seeds {
        all.merge(run(scn, algo, members, seed));
    }
    summarize(all)
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let started = Instant::now();
    let seeds = env_num("BENCH_SEEDS", 8).max(1);
    let members = env_num("BENCH_MEMBERS", 50).max(2) as usize;
    let ours = DriftConfig::default();
    let interval = ClockEstimator::Interval;
    let min_delay = ClockEstimator::MinDelay;
    let algos: [(&str, Algo); 6] = [
        ("sync.rs defaults", Algo::Ours(ours, interval)),
        (
            "  with the min-delay clock estimate",
            Algo::Ours(ours, min_delay),
        ),
        (
            "  without speed learning",
            Algo::Ours(
                DriftConfig {
                    learn_speed: false,
                    ..ours
                },
                interval,
            ),
        ),
        (
            "  with a 400 ms seek threshold",
            Algo::Ours(
                DriftConfig {
                    seek_threshold: 0.400,
                    ..ours
                },
                interval,
            ),
        ),
        (
            "Jellyfin-like: min-delay clock, 60 ms dead band, 400 ms seek, no speed learning",
            Algo::Ours(
                DriftConfig {
                    dead_band: 0.060,
                    seek_threshold: 0.400,
                    learn_speed: false,
                    ..ours
                },
                min_delay,
            ),
        ),
        ("naive (no clock sync, seek when > 1 s off)", Algo::Naive),
    ];

    println!(
        "Playback sync simulation: {members} members, {seeds} seed(s) pooled per scenario, \
         {} s of party, measured every {SAMPLE_MS} ms while playing, {} s after each change.",
        END_MS / 1000.0,
        SETTLE_MS / 1000.0
    );
    println!(
        "spread = max - min of members' true positions at one instant; error = |member - server|.\n"
    );
    println!(
        "| scenario | algorithm | spread p50 | p95 | p99 | max | error p50 | p95 | clock error p50 | p95 | seeks /member/min | rate changes /member/min |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for scn in SCENARIOS {
        for (label, algo) in algos {
            let s = simulate(scn, algo, members, seeds);
            println!(
                "| {} | {label} | {:.1} | **{:.1}** | {:.1} | {:.0} | {:.1} | {:.1} | {} | {:.2} | {:.1} |",
                scn.name,
                s.spread[0],
                s.spread[1],
                s.spread[2],
                s.spread[3],
                s.error[0],
                s.error[1],
                if s.clock_error[0].is_nan() {
                    "- | -".to_owned()
                } else {
                    format!("{:.1} | {:.1}", s.clock_error[0], s.clock_error[1])
                },
                s.seeks_per_min,
                s.rates_per_min,
            );
            if s.resyncs > 0 {
                notes.push(format!(
                    "{} / {}: {} clock resync(s) after a frame contradicted the estimate \
                     ({} member runs)",
                    scn.name,
                    label.trim(),
                    s.resyncs,
                    seeds as usize * members
                ));
            }
        }
    }
    for note in &notes {
        println!("\n{note}");
    }

    if env_num("BENCH_SWEEP", 0) == 1 {
        sweep(members, seeds);
    }
    println!(
        "\n(all in ms; {:.1} s of CPU)",
        started.elapsed().as_secs_f64()
    );
}

/// The controller's constants varied one grid at a time around the defaults, on the
/// mixed and high-delay scenarios: p95 / max spread (ms), seeks and rate changes per
/// member-minute.
fn sweep(members: usize, seeds: u64) {
    let base = DriftConfig::default();
    let cell = |config: DriftConfig, scn: &Scenario| {
        let s = simulate(
            scn,
            Algo::Ours(config, ClockEstimator::Interval),
            members,
            seeds,
        );
        format!(
            " {:.1} / {:.0}, {:.2}, {:.1} |",
            s.spread[1], s.spread[3], s.seeks_per_min, s.rates_per_min
        )
    };
    for scn in &SCENARIOS[1..3] {
        println!(
            "\nSweep, {}: p95 / max spread ms, seeks and rate changes per member-min",
            scn.name
        );
        println!("| dead band, settle \\ seek from | 150 ms | 200 ms | 250 ms | 400 ms |");
        println!("|---|---|---|---|---|");
        let bands = [
            (0.003, 0.001),
            (0.004, 0.001),
            (0.005, 0.002),
            (0.008, 0.002),
            (0.015, 0.002),
            (0.030, 0.002),
            (0.060, 0.002),
        ];
        for (dead_band, settle) in bands {
            let mut row = format!("| {:.0}, {:.0} ms |", dead_band * 1000.0, settle * 1000.0);
            for seek_threshold in [0.150, 0.200, 0.250, 0.400] {
                row.push_str(&cell(
                    DriftConfig {
                        dead_band,
                        settle,
                        seek_threshold,
                        ..base
                    },
                    scn,
                ));
            }
            println!("{row}");
        }
        println!("| gain \\ smallest nudge | any | 0.625% | 1.25% | 2.5% |");
        println!("|---|---|---|---|---|");
        for gain in [1.0, 2.0, 3.0, 5.0, 8.0] {
            let mut row = format!("| {gain} /s |");
            for min_nudge in [0.0, 0.00625, 0.0125, 0.025] {
                row.push_str(&cell(
                    DriftConfig {
                        gain,
                        min_nudge,
                        ..base
                    },
                    scn,
                ));
            }
            println!("{row}");
        }
    }
}

//! Playback-sync simulation: one server and 50 members, each following the client
//! algorithm of `wp_sync` (or a baseline), through skewed clocks, slow
//! and jittery links and imperfect players. Deterministic (seeded), discrete-event,
//! a few seconds of CPU for everything.
//!
//! Run: `cargo bench -p watch-party-sync --bench sync`
//! Knobs (environment): BENCH_SEEDS (default 8: runs pooled per scenario),
//! BENCH_MEMBERS (default 50), BENCH_SWEEP=1 (also sweep the controller's constants).
//! The model, the results and what they do not show: docs/sync.md.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

mod actors;
mod events;
mod model;

use std::time::Instant;

use wp_sync::{
    CHECK_INTERVAL_MS, ClockEstimator, DriftAction, DriftConfig, PlaybackState, PlaybackStatus,
    PlayerReading, SyncSchedule, expected_position,
};

use crate::{actors::*, events::*, model::*};

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
        println!("| dead band \\ seek from | 150 ms | 200 ms | 250 ms | 400 ms |");
        println!("|---|---|---|---|---|");
        for dead_band in [0.003, 0.005, 0.008, 0.015, 0.030, 0.060] {
            let mut row = format!("| {:.0} ms |", dead_band * 1000.0);
            for seek_threshold in [0.150, 0.200, 0.250, 0.400] {
                row.push_str(&cell(
                    DriftConfig {
                        dead_band,
                        seek_threshold,
                        ..base
                    },
                    scn,
                ));
            }
            println!("{row}");
        }
        println!("| readings per decision \\ shortest pulse | 0.5 s | 1 s | 2 s |");
        println!("|---|---|---|---|");
        for readings in [1, 2, 4, 8] {
            let mut row = format!("| {readings} |");
            for min_pulse in [0.5, 1.0, 2.0] {
                row.push_str(&cell(
                    DriftConfig {
                        readings,
                        min_pulse,
                        ..base
                    },
                    scn,
                ));
            }
            println!("{row}");
        }
    }
}

//! Playback-sync simulation: one server and 50 members, each following the client
//! algorithm of `wp_sync` (or Jellyfin's, or CyTube's), through skewed clocks, slow
//! and jittery links, and players that behave as Chromium's did when measured
//! (rate changes landing late and setting the player back, noisy `currentTime` off
//! 1×, slow starts and seeks, hidden tabs). Deterministic (seeded), discrete-event.
//!
//! Run: `cargo bench -p watch-party-sync --bench sync`
//! Knobs (environment): BENCH_SEEDS (default 8: runs pooled per scenario),
//! BENCH_MEMBERS (default 50), BENCH_SWEEP=1 (also sweep the controller's constants).
//! The model, the results and what they do not show: docs/sync.md.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

mod actors;
mod events;
mod model;
mod report;
mod sim;

use std::time::Instant;

use wp_sync::{ClockEstimator, DriftConfig};

use crate::model::*;
use crate::report::{HEADER, env_num, ms, row, simulate};

fn main() {
    let started = Instant::now();
    let seeds = env_num("BENCH_SEEDS", 8).max(1);
    let members = env_num("BENCH_MEMBERS", 50).max(2) as usize;
    let ours = DriftConfig::default();
    let interval = ClockEstimator::Interval;
    let variants: [(&str, Algo); 4] = [
        ("wp_sync", Algo::Ours(ours, interval)),
        (
            "  with the min-delay clock estimate",
            Algo::Ours(ours, ClockEstimator::MinDelay),
        ),
        (
            "  deciding on every reading",
            Algo::Ours(
                DriftConfig {
                    readings: 1,
                    ..ours
                },
                interval,
            ),
        ),
        (
            "  without learning what a pulse moves",
            Algo::Ours(
                DriftConfig {
                    learn_pulse: false,
                    ..ours
                },
                interval,
            ),
        ),
    ];
    let peers: [(&str, Algo); 4] = [
        ("wp_sync", Algo::Ours(ours, interval)),
        (
            "Jellyfin, sync correction on",
            Algo::Jellyfin { correction: true },
        ),
        (
            "Jellyfin as shipped (correction off)",
            Algo::Jellyfin { correction: false },
        ),
        ("CyTube", Algo::CyTube),
    ];

    println!(
        "Playback sync simulation: {members} members (one in {HIDDEN_ONE_IN} in a hidden tab), \
         {seeds} seed(s) pooled per row, {} s of party, measured every {SAMPLE_MS} ms while \
         it plays, over the members whose picture moves; steady state from {} s after a change. \
         All in ms.\n",
        END_MS / 1000.0,
        SETTLE_MS / 1000.0
    );
    println!("Full timeline (play, seeks, pauses, rate changes):\n");
    println!("{HEADER}");
    let mut notes = Vec::new();
    for scn in SCENARIOS {
        for (label, algo) in variants {
            let s = simulate(scn, algo, TIMELINE, members, seeds);
            println!("{}", row(scn.name, label, &s));
            if s.resyncs > 0 {
                notes.push(format!(
                    "{} / {}: {} clock resync(s) after a frame contradicted the estimate",
                    scn.name,
                    label.trim(),
                    s.resyncs
                ));
            }
        }
    }
    println!("\nAgainst Jellyfin and CyTube (the same without rate changes, which neither has):\n");
    println!("{HEADER}");
    for scn in SCENARIOS {
        for (label, algo) in peers {
            let s = simulate(scn, algo, COMMON_TIMELINE, members, seeds);
            println!("{}", row(scn.name, label, &s));
        }
    }
    for note in &notes {
        println!("\n{note}");
    }
    if env_num("BENCH_SWEEP", 0) == 1 {
        sweep(members, seeds);
    }
    println!("\n({:.1} s of CPU)", started.elapsed().as_secs_f64());
}

/// The controller's constants varied around the defaults on the mixed and high-delay
/// scenarios: steady p95 / whole-run p95 spread (ms), rate changes per member-minute.
fn sweep(members: usize, seeds: u64) {
    let base = DriftConfig::default();
    let cell = |config: DriftConfig, scn: &Scenario| {
        let s = simulate(
            scn,
            Algo::Ours(config, ClockEstimator::Interval),
            TIMELINE,
            members,
            seeds,
        );
        format!(
            " {} / {}, {:.1} |",
            ms(s.steady[1]),
            ms(s.whole[1]),
            s.rates_per_min
        )
    };
    for scn in &SCENARIOS[1..3] {
        println!(
            "\nSweep, {}: steady p95 / whole-run p95 spread ms, rate changes per member-min",
            scn.name
        );
        println!("| dead band \\ readings per decision | 1 | 2 | 4 | 8 |");
        println!("|---|---|---|---|---|");
        for dead_band in [0.003, 0.005, 0.008, 0.015] {
            let mut line = format!("| {:.0} ms |", dead_band * 1000.0);
            for readings in [1, 2, 4, 8] {
                line.push_str(&cell(
                    DriftConfig {
                        dead_band,
                        readings,
                        ..base
                    },
                    scn,
                ));
            }
            println!("{line}");
        }
        println!("| shortest pulse \\ seek from | 150 ms | 250 ms | 400 ms |");
        println!("|---|---|---|---|");
        for min_pulse in [0.5, 1.0, 2.0] {
            let mut line = format!("| {min_pulse} s |");
            for seek_threshold in [0.150, 0.250, 0.400] {
                line.push_str(&cell(
                    DriftConfig {
                        min_pulse,
                        seek_threshold,
                        ..base
                    },
                    scn,
                ));
            }
            println!("{line}");
        }
    }
}

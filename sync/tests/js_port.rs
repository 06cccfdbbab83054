//! The browser's copy of this crate (web/sync/sync.ts, compiled to web/demo/sync.js)
//! must compute what this crate computes. This test drives the Rust implementation
//! through seeded random scenarios — clock samples good and bad under both estimators,
//! the request schedule, positions, and the drift controller steering a simulated player
//! that runs fast, lags on seeks and reads its position with noise — records every input
//! and output, and has Node.js replay the inputs against the compiled JavaScript
//! (web/sync/replay.mjs), which fails on any output that differs.

use std::{io::Write, process::Command};

use serde_json::{Value, json};
use wp_sync::{
    ClockEstimator, ClockSync, DriftAction, DriftConfig, DriftController, PlaybackState,
    PlaybackStatus, PlayerReading, SyncSchedule, expected_position,
};

/// A small deterministic generator (xorshift), so the scenarios are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.range(0.0, 1.0) < p
    }
}

fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, num)
}

/// A number, or its name when it is not finite (JSON has no infinities: serde_json
/// would write `null`, which could not be told from "none").
fn num(v: f64) -> Value {
    if v.is_finite() {
        Value::from(v)
    } else {
        Value::from(v.to_string())
    }
}

fn clock_scenarios(rng: &mut Rng) -> Vec<Value> {
    let mut out = Vec::new();
    for (estimator, name) in [
        (ClockEstimator::Interval, "interval"),
        (ClockEstimator::MinDelay, "min_delay"),
    ] {
        for _ in 0..20 {
            let mut clock = ClockSync::with_estimator(estimator);
            let skew = rng.range(-5_000_000.0, 5_000_000.0);
            let mut local = rng.range(0.0, 1e9);
            let mut ops = Vec::new();
            for _ in 0..30 {
                local += rng.range(10.0, 4_000.0);
                let up = rng.range(1.0, 300.0);
                let down = rng.range(1.0, 300.0);
                let server_work = rng.range(0.0, 3.0);
                let mut t = [
                    local,
                    local + up + skew,
                    local + up + skew + server_work,
                    local + up + server_work + down,
                ];
                // Now and then a sample that cannot be right, or a clock step.
                if rng.chance(0.08) {
                    t[3] = t[0] - rng.range(1.0, 50.0);
                }
                if rng.chance(0.05) {
                    t[2] = t[1] - 1.0;
                }
                if rng.chance(0.03) {
                    t[3] = t[0] + 6_000.0;
                }
                let ok = clock.add_sample(t[0], t[1], t[2], t[3]);
                ops.push(json!({
                    "op": "add", "t": t, "ok": ok,
                    "offset": opt(clock.offset()),
                    "bounds": clock.bounds().map(|(lo, hi)| json!([num(lo), num(hi)])),
                    "best": clock.best().map(|s| json!([s.t0, s.t1, s.t2, s.t3])),
                    "len": clock.len(),
                }));
                let sent = local + skew + rng.range(-200.0, 400.0);
                let received = local + rng.range(0.0, 300.0);
                ops.push(json!({
                    "op": "consistent", "sent": sent, "received": received,
                    "ok": clock.is_consistent(sent, received),
                }));
                if rng.chance(0.03) {
                    clock.clear();
                    ops.push(json!({"op": "clear"}));
                }
            }
            out.push(json!({"estimator": name, "ops": ops}));
        }
    }
    out
}

fn schedule_scenarios(rng: &mut Rng) -> Vec<Value> {
    (0..10)
        .map(|_| {
            let start = rng.range(0.0, 1e6);
            let mut s = SyncSchedule::new(start);
            let mut now = start;
            let mut ops = Vec::new();
            for _ in 0..60 {
                now += rng.range(0.0, 400.0);
                if rng.chance(0.05) {
                    s.burst(now);
                    ops.push(json!({"op": "burst", "now": now, "next_at": s.next_at()}));
                } else {
                    let fire = s.poll(now);
                    ops.push(
                        json!({"op": "poll", "now": now, "fire": fire, "next_at": s.next_at()}),
                    );
                }
            }
            json!({"start": start, "ops": ops})
        })
        .collect()
}

fn position_cases(rng: &mut Rng) -> Vec<Value> {
    (0..200)
        .map(|_| {
            let status = match rng.next() % 3 {
                0 => PlaybackStatus::Playing,
                1 => PlaybackStatus::Paused,
                _ => PlaybackStatus::Waiting,
            };
            let state = PlaybackState {
                status,
                position: rng.range(0.0, 86_400.0),
                rate: rng.range(0.25, 4.0),
                updated_at: rng.range(1.7e12, 1.8e12) as i64,
            };
            // Before and after the instant (a scheduled state holds).
            let at = state.updated_at as f64 + rng.range(-2_000.0, 60_000.0);
            json!({
                "state": state, "at": at,
                "expected": expected_position(&state, at),
            })
        })
        .collect()
}

fn action_json(a: DriftAction) -> Value {
    match a {
        DriftAction::Keep => json!({"kind": "keep"}),
        DriftAction::SetRate(rate) => json!({"kind": "set_rate", "rate": rate}),
        DriftAction::Seek { position, rate } => {
            json!({"kind": "seek", "position": position, "rate": rate})
        }
    }
}

fn drift_scenarios(rng: &mut Rng) -> Vec<Value> {
    let configs = [
        DriftConfig::default(),
        DriftConfig {
            readings: 1,
            rate_settle_ms: 0.0,
            learn_pulse: false,
            learn_speed: false,
            ..DriftConfig::default()
        },
        DriftConfig {
            dead_band: 0.06,
            seek_threshold: 0.4,
            min_pulse: 0.5,
            ..DriftConfig::default()
        },
    ];
    let mut out = Vec::new();
    for config in configs {
        for _ in 0..6 {
            let mut c = DriftController::new(config);
            let party_rate = [1.0, 1.0, 1.5, 0.5][(rng.next() % 4) as usize];
            // The player runs a little fast or slow, lands late on seeks, applies a rate
            // a step or three late, reads its position with up to 7 ms of noise off
            // rate 1, and jumps now and then; a third of the time its tab is hidden
            // (checks a second apart).
            let speed = rng.range(0.985, 1.015);
            let seek_lag = rng.range(0.05, 0.6);
            let lag_steps = (rng.next() % 3) as usize + 1;
            let mut position = rng.range(0.0, 3.0);
            let mut rate = party_rate;
            let mut applied = vec![party_rate; lag_steps];
            let start = rng.range(1e5, 1e7);
            let mut local = start;
            let mut steps = Vec::new();
            for i in 0..600 {
                let hidden = (i / 100) % 3 == 2;
                let dt = if hidden { 1_000.0 } else { 100.0 } + rng.range(-3.0, 3.0);
                local += dt;
                applied.push(rate);
                position += applied.remove(0) * speed * dt / 1000.0;
                if i % 61 == 30 {
                    position += rng.range(-0.06, 0.06);
                }
                if i % 150 == 75 {
                    // Someone else seeked far: a far seek back.
                    position += rng.range(15.0, 40.0);
                }
                let expected = (local - start) / 1000.0 * party_rate;
                if i % 97 == 0 {
                    c.reset();
                    steps.push(json!({"op": "reset"}));
                }
                let noise = if rate == 1.0 { 0.0002 } else { 0.007 };
                let reading = PlayerReading {
                    position: position + rng.range(-noise, noise),
                    rate,
                };
                let action = c.update(local, reading, expected, party_rate);
                match action {
                    DriftAction::Keep => {}
                    DriftAction::SetRate(r) => rate = r,
                    DriftAction::Seek {
                        position: p,
                        rate: r,
                    } => {
                        position = p - seek_lag * party_rate;
                        rate = r;
                    }
                }
                steps.push(json!({
                    "op": "update", "local": local,
                    "player": {"position": reading.position, "rate": reading.rate},
                    "expected": expected, "party_rate": party_rate,
                    "action": action_json(action),
                    "base_rate": c.base_rate(party_rate),
                    "seek_lead": [c.seek_lead(false), c.seek_lead(true)],
                    "speed": c.player_speed(),
                    "pulse_cost": c.pulse_cost(),
                    "check_interval": c.check_interval(),
                }));
            }
            out.push(json!({
                "config": {
                    "dead_band": config.dead_band,
                    "seek_threshold": config.seek_threshold,
                    "max_nudge": config.max_nudge, "min_pulse": config.min_pulse,
                    "readings": config.readings, "rate_settle_ms": config.rate_settle_ms,
                    "learn_pulse": config.learn_pulse, "learn_speed": config.learn_speed,
                },
                "steps": steps,
            }));
        }
    }
    out
}

#[test]
fn js_port_agrees() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let vectors = json!({
        "clock": clock_scenarios(&mut rng),
        "schedule": schedule_scenarios(&mut rng),
        "positions": position_cases(&mut rng),
        "drift": drift_scenarios(&mut rng),
    });
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let path = std::env::temp_dir().join(format!("wp-sync-vectors-{}.json", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(vectors.to_string().as_bytes()))
        .expect("vectors written");
    let out = Command::new("node")
        .arg(format!("{root}/web/sync/replay.mjs"))
        .arg(&path)
        .output()
        .expect("node (Node.js 18+) runs web/sync/replay.mjs");
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the JavaScript port disagrees:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every kind of output was compared, and the drift runs did correct something.
    for what in [
        "clock ops",
        "schedule ops",
        "positions",
        "drift steps",
        "seeks",
        "rate changes",
    ] {
        assert!(stdout.contains(what), "{stdout}");
    }
}

use super::*;

const OFFSET: f64 = 5_000.0;

/// An exchange against a server `OFFSET` ms ahead, sent at local `t0`, with the
/// given one-way delays and 1 ms of server processing.
fn exchange(t0: f64, up: f64, down: f64) -> (f64, f64, f64, f64) {
    let t1 = t0 + up + OFFSET;
    let t2 = t1 + 1.0;
    let t3 = t2 - OFFSET + down;
    (t0, t1, t2, t3)
}

fn add(clock: &mut ClockSync, (t0, t1, t2, t3): (f64, f64, f64, f64)) -> bool {
    clock.add_sample(t0, t1, t2, t3)
}

#[test]
fn sample_offset_and_delay() {
    let s = ClockSample {
        t0: 1_000.0,
        t1: 6_030.0,
        t2: 6_031.0,
        t3: 1_081.0,
    };
    // up 30, down 50: delay 80, offset off by (30 - 50) / 2.
    assert_eq!(s.delay(), 80.0);
    assert_eq!(s.offset(), OFFSET - 10.0);
}

#[test]
fn picks_the_lowest_delay_sample_among_asymmetric_jittery_ones() {
    let mut clock = ClockSync::with_estimator(ClockEstimator::MinDelay);
    assert_eq!(clock.offset(), None);
    // Queued uploads or downloads: each alone would be off by tens of ms.
    let delays = [
        (180.0, 40.0),
        (45.0, 160.0),
        (300.0, 42.0),
        (41.0, 39.0), // the quiet one: off by 1 ms
        (90.0, 250.0),
        (60.0, 38.0),
        (40.0, 120.0),
        (150.0, 110.0),
    ];
    for (i, (up, down)) in delays.into_iter().enumerate() {
        assert!(add(&mut clock, exchange(i as f64 * 1_000.0, up, down)));
    }
    let best = clock.best().unwrap();
    assert_eq!(best.delay(), 80.0);
    assert_eq!(clock.offset(), Some(OFFSET + 1.0));
    assert_eq!(clock.server_now(100.0), Some(100.0 + OFFSET + 1.0));
    // Every other sample is 10 ms or more out.
    let others = delays.iter().filter(|(u, d)| u + d != 80.0);
    assert!(
        others
            .map(|(u, d)| (u - d) / 2.0)
            .all(|e: f64| e.abs() >= 10.0)
    );
    // The default estimator does at least as well: up 40 (seventh), down 38 (sixth).
    let mut interval = ClockSync::new();
    for (i, (up, down)) in delays.into_iter().enumerate() {
        add(&mut interval, exchange(i as f64 * 1_000.0, up, down));
    }
    assert_eq!(interval.best(), clock.best());
    let estimate = interval.offset().unwrap();
    assert!((estimate - OFFSET).abs() <= 1.0, "{estimate}");
}

#[test]
fn the_interval_estimate_combines_the_quietest_directions() {
    // No sample is quiet both ways: each is 30-60 ms out alone.
    let delays = [(20.0, 120.0), (140.0, 20.0), (100.0, 100.0)];
    let mut min_delay = ClockSync::with_estimator(ClockEstimator::MinDelay);
    let mut interval = ClockSync::new();
    for (i, (up, down)) in delays.into_iter().enumerate() {
        add(&mut min_delay, exchange(i as f64, up, down));
        add(&mut interval, exchange(i as f64, up, down));
    }
    // Lowest delay: (20, 120), off by -50.
    assert_eq!(min_delay.offset(), Some(OFFSET - 50.0));
    // offset <= OFFSET + 20 (first), >= OFFSET - 20 (second): the middle is exact.
    let (lo, hi) = interval.bounds().unwrap();
    assert!((lo - (OFFSET - 20.0)).abs() < 0.01 && (hi - (OFFSET + 20.0)).abs() < 0.01);
    assert!((interval.offset().unwrap() - OFFSET).abs() < 0.01);
    assert_eq!(interval.best(), min_delay.best());

    // The server clock stepped 1 s: the bounds contradict each other, and the
    // estimate falls back to the lowest-delay sample.
    let (t0, t1, t2, t3) = exchange(10.0, 30.0, 30.0);
    interval.add_sample(t0, t1 + 1_000.0, t2 + 1_000.0, t3);
    assert_eq!(interval.bounds(), None);
    assert_eq!(interval.offset(), Some(OFFSET + 1_000.0));
}

#[test]
fn keeps_only_the_last_eight() {
    let mut clock = ClockSync::with_estimator(ClockEstimator::MinDelay);
    add(&mut clock, exchange(0.0, 10.0, 10.0));
    for i in 1..=CLOCK_SAMPLES {
        add(&mut clock, exchange(i as f64 * 1_000.0, 50.0, 30.0));
    }
    assert_eq!(clock.len(), CLOCK_SAMPLES);
    // The 20 ms sample has been pushed out; the rest are 80 ms, off by +10.
    assert_eq!(clock.best().unwrap().delay(), 80.0);
    assert_eq!(clock.offset(), Some(OFFSET + 10.0));
}

#[test]
fn an_old_sample_yields_to_a_nearly_as_good_fresh_one() {
    let mut clock = ClockSync::new();
    add(&mut clock, exchange(0.0, 20.0, 20.0));
    // 60 s later, 1 ms slower: the old one may have drifted by up to 6 ms.
    add(&mut clock, exchange(60_000.0, 21.0, 20.0));
    assert_eq!(clock.best().unwrap().t0, 60_000.0);
    // But not to a much worse one.
    add(&mut clock, exchange(61_000.0, 200.0, 20.0));
    assert_eq!(clock.best().unwrap().t0, 60_000.0);
}

#[test]
fn rejects_impossible_samples() {
    let mut clock = ClockSync::new();
    // Reply "before" the request: the local clock stepped back.
    assert!(!clock.add_sample(1_000.0, 6_000.0, 6_001.0, 900.0));
    // Server answered before receiving.
    assert!(!clock.add_sample(1_000.0, 6_010.0, 6_000.0, 1_050.0));
    // Negative delay: the server held it 100 ms, the round trip took 50.
    assert!(!clock.add_sample(1_000.0, 6_000.0, 6_100.0, 1_050.0));
    // Too slow to be of use.
    assert!(!add(&mut clock, exchange(0.0, 3_000.0, 3_000.0)));
    assert!(clock.is_empty());
    assert!(add(&mut clock, exchange(0.0, 30.0, 30.0)));
    assert_eq!(clock.len(), 1);
    clock.clear();
    assert!(clock.is_empty() && clock.offset().is_none());
}

#[test]
fn server_frames_that_contradict_the_estimate_are_caught() {
    let mut clock = ClockSync::new();
    assert!(clock.is_consistent(9e12, 0.0));
    // Estimate 100 ms too low (a fixed 200 ms difference between the routes).
    add(&mut clock, exchange(0.0, 20.0, 220.0));
    assert_eq!(clock.offset(), Some(OFFSET - 100.0));
    // A frame sent at server 10_000 arriving 30 ms later is fine with the truth...
    let local_arrival = 10_000.0 - OFFSET + 30.0;
    assert!(clock.is_consistent(10_000.0, local_arrival + 80.0));
    // ... but the estimate puts its arrival 70 ms before its sending.
    assert!(!clock.is_consistent(10_000.0, local_arrival));
}

#[test]
fn schedule_bursts_then_settles() {
    let mut schedule = SyncSchedule::new(0.0);
    let mut sent = Vec::new();
    let mut t = 0.0;
    while t <= 10_000.0 {
        if schedule.poll(t) {
            sent.push(t);
        }
        t += 10.0;
    }
    assert_eq!(&sent[..5], &[0.0, 150.0, 300.0, 450.0, 600.0]);
    assert_eq!(&sent[5..], &[3_600.0, 6_600.0, 9_600.0]);
    schedule.burst(10_000.0);
    assert!(schedule.poll(10_000.0));
    assert!(!schedule.poll(10_100.0));
    assert!(schedule.poll(10_150.0));
}

#[test]
fn expected_position_follows_the_state() {
    let playing = PlaybackState {
        status: PlaybackStatus::Playing,
        position: 100.0,
        rate: 1.5,
        updated_at: 1_000_000,
    };
    assert_eq!(expected_position(&playing, 1_000_000.0), 100.0);
    assert_eq!(expected_position(&playing, 1_002_000.0), 103.0);
    // Not begun yet.
    assert_eq!(expected_position(&playing, 999_000.0), 100.0);
    for status in [PlaybackStatus::Paused, PlaybackStatus::Waiting] {
        let held = PlaybackState { status, ..playing };
        assert_eq!(expected_position(&held, 1_060_000.0), 100.0);
    }
}

#[test]
fn state_reads_from_frame_data() {
    let data = serde_json::json!({
        "status": "waiting", "position": 12.5, "rate": 1.0, "updated_at": 1_764_230_400_123_i64,
        "seq": 7, "video": {"id": null}, "server_time": 1_764_230_400_200_i64,
    });
    let state: PlaybackState = serde_json::from_value(data).unwrap();
    assert_eq!(state.status, PlaybackStatus::Waiting);
    assert_eq!(state.updated_at, 1_764_230_400_123);
}

const PARTY: f64 = 1.0;

fn at(position: f64, rate: f64) -> PlayerReading {
    PlayerReading { position, rate }
}

#[test]
fn seeks_on_big_drift_ahead_of_the_expected_position() {
    let mut c = DriftController::default();
    for error in [SEEK_THRESHOLD_S + 0.001, 2.0, -0.5, -30.0] {
        c.reset();
        let action = c.update(0.0, at(50.0 + error, PARTY), 50.0, PARTY);
        assert_eq!(
            action,
            DriftAction::Seek {
                position: 50.0 + INITIAL_SEEK_LEAD_S,
                rate: PARTY
            },
            "{error}"
        );
    }
    // Twice the rate: the lead is twice the video.
    c.reset();
    let DriftAction::Seek { position, rate } = c.update(0.0, at(0.0, 2.0), 50.0, 2.0) else {
        panic!("no seek");
    };
    assert_eq!((position, rate), (50.0 + 2.0 * INITIAL_SEEK_LEAD_S, 2.0));
}

#[test]
fn nudges_on_medium_drift_within_bounds() {
    let mut c = DriftController::default();
    // Ahead: slow down; behind: speed up; proportional, capped at ±10%.
    let mut last = 1.0;
    for error in [0.01, 0.02, 0.03, 0.1, 0.24] {
        c.reset();
        let DriftAction::SetRate(rate) = c.update(0.0, at(10.0 + error, PARTY), 10.0, PARTY) else {
            panic!("no nudge at {error}");
        };
        assert!(rate < PARTY && rate <= last && rate >= PARTY * (1.0 - MAX_NUDGE));
        last = rate;
        c.reset();
        let DriftAction::SetRate(rate) = c.update(0.0, at(10.0 - error, PARTY), 10.0, PARTY) else {
            panic!("no nudge at -{error}");
        };
        assert!(rate > PARTY && rate <= PARTY * (1.0 + MAX_NUDGE));
    }
    assert_eq!(last, PARTY * (1.0 - MAX_NUDGE));
    // 10 ms ahead at gain 3 is 3% slower, rounded up to 5%, of the party rate.
    c.reset();
    let action = c.update(0.0, at(10.01, 2.0), 10.0, 2.0);
    let DriftAction::SetRate(rate) = action else {
        panic!("{action:?}");
    };
    assert!((rate - 2.0 * 0.95).abs() < 1e-9, "{rate}");
}

#[test]
fn keeps_within_the_dead_band() {
    let mut c = DriftController::default();
    for (i, error) in [0.0, 0.003, -0.004, 0.0049, -0.0049]
        .into_iter()
        .enumerate()
    {
        let t = i as f64 * CHECK_INTERVAL_MS;
        assert_eq!(
            c.update(t, at(10.0 + error, PARTY), 10.0, PARTY),
            DriftAction::Keep,
            "{error}"
        );
    }
    // Someone else changed the rate: it goes back to the party rate.
    assert_eq!(
        c.update(500.0, at(10.0, 1.25), 10.0, PARTY),
        DriftAction::SetRate(PARTY)
    );
    // Just outside: a nudge.
    assert!(matches!(
        c.update(600.0, at(10.0052, PARTY), 10.0, PARTY),
        DriftAction::SetRate(r) if r < PARTY
    ));
}

/// A player that plays at `speed` × its rate; checks every 100 ms for `secs`.
/// Returns the errors seen and the rates set.
fn run(
    c: &mut DriftController,
    speed: f64,
    start_error: f64,
    secs: f64,
) -> (Vec<f64>, Vec<f64>, f64) {
    let dt = CHECK_INTERVAL_MS / 1000.0;
    let (mut expected, mut position, mut rate) = (100.0, 100.0 + start_error, PARTY);
    let (mut errors, mut rates) = (Vec::new(), Vec::new());
    let steps = (secs / dt).round() as usize;
    for i in 0..steps {
        match c.update(
            i as f64 * CHECK_INTERVAL_MS,
            at(position, rate),
            expected,
            PARTY,
        ) {
            DriftAction::Keep => {}
            DriftAction::SetRate(r) => {
                rate = r;
                rates.push(r);
            }
            DriftAction::Seek { .. } => panic!("unexpected seek"),
        }
        errors.push(position - expected);
        position += rate * speed * dt;
        expected += PARTY * dt;
    }
    (errors, rates, rate)
}

#[test]
fn rate_returns_to_the_party_rate_once_converged() {
    for start in [0.08, -0.08, 0.2, -0.2] {
        let mut c = DriftController::default();
        let (errors, rates, final_rate) = run(&mut c, 1.0, start, 10.0);
        assert!(rates.len() >= 2, "{start}: {rates:?}");
        // It corrected in the right direction, and came back to exactly 1.0.
        assert!((rates[0] - PARTY).signum() == -start.signum());
        assert_eq!(final_rate, PARTY, "{start}");
        assert_eq!(*rates.last().unwrap(), PARTY);
        // Converged (within 3 s from 200 ms off) and stayed there.
        assert!(
            errors[30..].iter().all(|e| e.abs() <= SETTLE_S),
            "{start}: {:?}",
            &errors[25..35]
        );
    }
}

#[test]
fn learns_a_players_own_speed() {
    // A player 0.4% fast: without learning it leaves the dead band every second or
    // two; with learning the rate settles at 1/1.004 and the rate changes stop.
    let mut c = DriftController::default();
    let (errors, rates, final_rate) = run(&mut c, 1.004, 0.0, 120.0);
    assert!(
        (c.player_speed() - 1.004).abs() < 0.0005,
        "{}",
        c.player_speed()
    );
    assert!(
        (final_rate - 1.0 / c.player_speed()).abs() < 0.002,
        "{final_rate}"
    );
    assert!(errors.iter().all(|e| e.abs() <= DEAD_BAND_S + 0.002));
    let late_changes = rates.len()
        - run(&mut DriftController::default(), 1.004, 0.0, 60.0)
            .1
            .len();
    assert!(
        late_changes <= 4,
        "{late_changes} rate changes in the last minute"
    );

    let mut plain = DriftController::new(DriftConfig {
        learn_speed: false,
        ..DriftConfig::default()
    });
    let (_, plain_rates, _) = run(&mut plain, 1.004, 0.0, 120.0);
    assert!(plain_rates.len() > 3 * rates.len(), "{}", plain_rates.len());
}

#[test]
fn learns_the_seek_lead() {
    // A player that takes 300 ms to resume after a seek.
    let mut c = DriftController::default();
    let mut seeks = Vec::new();
    for round in 0..6 {
        c.reset();
        let t = round as f64 * 10_000.0;
        let DriftAction::Seek { position, .. } = c.update(t, at(0.0, PARTY), 100.0, PARTY) else {
            panic!("no seek");
        };
        // Lands at `position` 300 ms later; checked at once.
        let landed = c.update(t + 300.0, at(position, PARTY), 100.3, PARTY);
        seeks.push(position - 100.3);
        let _ = landed;
    }
    // First seek lands 150 ms behind; the miss halves each time.
    assert!((seeks[0] + 0.15).abs() < 1e-9);
    assert!(seeks[5].abs() < 0.01, "{seeks:?}");
    assert!((c.seek_lead() - 0.3).abs() < 0.01);
}

#[test]
fn a_missed_seek_is_nudged_not_repeated_at_once() {
    let mut c = DriftController::default();
    assert!(matches!(
        c.update(0.0, at(0.0, PARTY), 100.0, PARTY),
        DriftAction::Seek { .. }
    ));
    // Landed 1 s behind (a very slow seek): inside the cooldown, nudge at most.
    assert_eq!(
        c.update(300.0, at(99.3, PARTY), 100.3, PARTY),
        DriftAction::SetRate(PARTY * (1.0 + MAX_NUDGE))
    );
    assert!(matches!(
        c.update(1_000.0, at(100.1, 1.1), 101.0, PARTY),
        DriftAction::Seek { .. }
    ));
}

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
fn corrects_with_a_pulse_sized_to_the_error() {
    // 10 ms ahead: decided on the fourth reading, 1% slower for 1 s.
    let mut c = DriftController::default();
    for i in 0..READINGS - 1 {
        let t = i as f64 * CHECK_INTERVAL_MS;
        assert_eq!(
            c.update(t, at(10.01, PARTY), 10.0, PARTY),
            DriftAction::Keep
        );
    }
    let DriftAction::SetRate(rate) = c.update(300.0, at(10.01, PARTY), 10.0, PARTY) else {
        panic!("no pulse");
    };
    assert!((rate - 0.99).abs() < 1e-9, "{rate}");
    // 100 ms behind is clear at once: 10% faster; 240 ms ahead, 10% slower (for 2.4 s).
    for (error, want) in [(-0.1, 1.1), (0.24, 0.9)] {
        c.reset();
        let DriftAction::SetRate(rate) = c.update(0.0, at(10.0 + error, PARTY), 10.0, PARTY) else {
            panic!("no pulse at {error}");
        };
        assert!((rate - want).abs() < 1e-9, "{error}: {rate}");
    }
    // At 2×, the same error is a pulse of half the nudge: 10 ms ahead at 2× is 0.5% for 1 s.
    c.reset();
    for i in 0..READINGS - 1 {
        c.update(i as f64 * 100.0, at(10.01, 2.0), 10.0, 2.0);
    }
    let DriftAction::SetRate(rate) = c.update(300.0, at(10.01, 2.0), 10.0, 2.0) else {
        panic!("no pulse at 2x");
    };
    assert!((rate - 2.0 * 0.995).abs() < 1e-9, "{rate}");
}

#[test]
fn keeps_within_the_dead_band_and_through_reading_noise() {
    let mut c = DriftController::default();
    // Readings 8 ms either side of the truth (Chromium off rate 1 reads within ±7 ms):
    // their mean is in the band, so nothing happens.
    for i in 0..40_u32 {
        let noise = if i.is_multiple_of(2) { 0.008 } else { -0.008 };
        let t = i as f64 * CHECK_INTERVAL_MS;
        assert_eq!(
            c.update(t, at(10.0 + noise + 0.002, PARTY), 10.0, PARTY),
            DriftAction::Keep,
            "{i}"
        );
    }
    // Someone else changed the rate: it goes back to the party rate.
    assert_eq!(
        c.update(4_000.0, at(10.0, 1.25), 10.0, PARTY),
        DriftAction::SetRate(PARTY)
    );
    // Deciding on every reading instead, the same noise sets the rate again and again.
    let mut eager = DriftController::new(DriftConfig {
        readings: 1,
        rate_settle_ms: 0.0,
        ..DriftConfig::default()
    });
    let mut rate = PARTY;
    let mut changes = 0;
    for i in 0..40_u32 {
        let noise = if i.is_multiple_of(2) { 0.008 } else { -0.008 };
        if let DriftAction::SetRate(r) =
            eager.update(i as f64 * 100.0, at(10.0 + noise, rate), 10.0, PARTY)
        {
            rate = r;
            changes += 1;
        }
    }
    assert!(changes >= 5, "{changes}");
}

/// A player for the controller to steer: it plays at `speed` × the rate it applies,
/// applies a rate `latency(from, to)` ms after it was set, and reads `currentTime`
/// with `noise` seconds of error (alternating sign) while its rate is not exactly 1.
struct Player {
    position: f64,
    /// The party's position, and the time (ms), as the player plays on.
    expected: f64,
    now: f64,
    applied: f64,
    set: f64,
    pending: Vec<(f64, f64)>,
    speed: f64,
    noise: f64,
    latency: fn(f64, f64) -> f64,
    /// Seconds the player falls back at each rate change into a pulse.
    setback: f64,
}

impl Player {
    /// A player `error` seconds off the party (positive: ahead) at 100 s.
    fn new(error: f64, rate: f64) -> Self {
        Self {
            position: 100.0 + error,
            expected: 100.0,
            now: 0.0,
            applied: rate,
            set: rate,
            pending: Vec::new(),
            speed: 1.0,
            noise: 0.0,
            latency: |_, _| 0.0,
            setback: 0.0,
        }
    }
    fn read(&self, i: usize) -> PlayerReading {
        let noise = if self.set == 1.0 {
            0.0
        } else if i.is_multiple_of(2) {
            self.noise
        } else {
            -self.noise
        };
        at(self.position + noise, self.set)
    }
    fn set_rate(&mut self, t: f64, rate: f64) {
        self.pending
            .push((t + (self.latency)(self.set, rate), rate));
        if (self.set - PARTY).abs() < 1e-9 {
            self.position -= self.setback;
        }
        self.set = rate;
    }
    /// Plays from `t` for `ms`, applying rate changes when they are due.
    fn play(&mut self, mut t: f64, ms: f64) {
        let end = t + ms;
        loop {
            let due = self
                .pending
                .iter()
                .map(|p| p.0)
                .fold(f64::INFINITY, f64::min);
            let until = due.min(end);
            self.position += self.applied * self.speed * (until - t) / 1000.0;
            t = until;
            if due > end {
                break;
            }
            let i = self.pending.iter().position(|p| p.0 == due).unwrap();
            self.applied = self.pending.remove(i).1;
        }
    }
}

/// Checks every `every_ms` for `secs` with the party at `party_rate`: the errors seen
/// (true position, not readings) and the rates set.
fn steer(
    c: &mut DriftController,
    p: &mut Player,
    party_rate: f64,
    every_ms: f64,
    secs: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (mut errors, mut rates) = (Vec::new(), Vec::new());
    let steps = (secs * 1000.0 / every_ms).round() as usize;
    for i in 0..steps {
        let t = p.now;
        match c.update(t, p.read(i), p.expected, party_rate) {
            DriftAction::Keep => {}
            DriftAction::SetRate(r) => {
                p.set_rate(t, r);
                rates.push(r);
            }
            DriftAction::Seek { .. } => panic!("unexpected seek"),
        }
        errors.push(p.position - p.expected);
        p.play(t, every_ms);
        p.now += every_ms;
        p.expected += party_rate * every_ms / 1000.0;
    }
    (errors, rates)
}

#[test]
fn rate_returns_to_the_party_rate_once_converged() {
    for start in [0.08, -0.08, 0.2, -0.2, 0.012] {
        let mut c = DriftController::default();
        let mut p = Player::new(start, PARTY);
        let (errors, rates) = steer(&mut c, &mut p, PARTY, CHECK_INTERVAL_MS, 10.0);
        // Corrected in the right direction, in a pulse or two, back to exactly 1.0.
        assert!((rates[0] - PARTY).signum() == -start.signum(), "{start}");
        assert!(rates.len() <= 4, "{start}: {rates:?}");
        assert_eq!(p.set, PARTY, "{start}");
        // Converged within 3.5 s and stayed there.
        assert!(
            errors[35..].iter().all(|e| e.abs() <= 0.005),
            "{start}: {:?}",
            &errors[30..40]
        );
    }
}

#[test]
fn ignores_reading_noise_at_another_rate() {
    // At 1.5× every reading is off by ±7 ms; the player itself is exact and on time.
    let mut c = DriftController::default();
    let mut p = Player::new(0.0, 1.5);
    p.noise = 0.007;
    let (errors, rates) = steer(&mut c, &mut p, 1.5, CHECK_INTERVAL_MS, 60.0);
    assert!(rates.is_empty(), "{rates:?}");
    assert!(errors.iter().all(|e| e.abs() < 1e-9));
}

/// Chromium's latencies, from rate 1 (player-probe.mjs): faster after ~400 ms, back
/// after ~170; slower at once, back after ~140.
fn chromium_latency(from: f64, to: f64) -> f64 {
    match (to > from, (from - 1.0).abs() < 1e-9) {
        (true, true) => 400.0,
        (true, false) => 140.0,
        (false, true) => 0.0,
        (false, false) => 170.0,
    }
}

#[test]
fn learns_what_a_pulse_really_moves_the_player_by() {
    // Like Chromium with sound: every pulse also sets the player back 16.5 ms, and
    // rates land late. Members drift apart again and again (a clock estimate moving,
    // say): 40 ms behind, 40 ms ahead, in turns, every 8 s.
    let run = |learn_pulse: bool| {
        let mut c = DriftController::new(DriftConfig {
            learn_pulse,
            ..DriftConfig::default()
        });
        let mut p = Player::new(0.0, PARTY);
        p.latency = chromium_latency;
        p.setback = 0.0165;
        let mut after = Vec::new();
        let mut pulses = 0;
        for round in 0..12 {
            let jump = if round % 2 == 0 { -0.04 } else { 0.04 };
            p.position += jump;
            let (errors, rates) = steer(&mut c, &mut p, PARTY, CHECK_INTERVAL_MS, 8.0);
            after.push(errors[40].abs());
            pulses += rates.iter().filter(|&&r| r != PARTY).count();
        }
        (c, after, pulses)
    };
    let (c, after, pulses) = run(true);
    let [slow, fast] = c.pulse_cost();
    // Speeding up removes 16.5 ms less than planned, and some more to the latencies
    // (at a 4% nudge, 4% of the 260 ms by which the start lands later than the end);
    // slowing down removes 16.5 ms more, and 4% of 170 ms.
    assert!((0.016..0.035).contains(&fast), "{fast}");
    assert!((-0.030..-0.012).contains(&slow), "{slow}");
    // Once learnt, corrections land inside the dead band 4 s after each jump...
    assert!(
        after[2..].iter().all(|e| *e <= DEAD_BAND_S + 0.001),
        "{after:?}"
    );
    // ... in fewer pulses than without learning, and nearer.
    let (_, after_plain, pulses_plain) = run(false);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    assert!(pulses < pulses_plain, "{pulses} against {pulses_plain}");
    assert!(
        mean(&after[2..]) < mean(&after_plain[2..]),
        "{after:?} against {after_plain:?}"
    );
}

#[test]
fn a_hidden_tab_does_not_oscillate() {
    // Checks a second apart: each pulse is one interval long and removes at most the
    // error it saw, so the error shrinks without changing sign.
    for start in [0.03, -0.03, 0.15] {
        let mut c = DriftController::default();
        let mut p = Player::new(start, PARTY);
        p.latency = chromium_latency;
        let (errors, rates) = steer(&mut c, &mut p, PARTY, 1_000.0, 60.0);
        let crossings = errors
            .windows(2)
            .filter(|w| w[0].abs() > 0.005 && w[1].abs() > 0.005 && w[0].signum() != w[1].signum())
            .count();
        assert_eq!(crossings, 0, "{start}: {errors:?}");
        assert!(
            errors[20..].iter().all(|e| e.abs() <= 0.006),
            "{start}: {errors:?}"
        );
        assert!(rates.len() <= 8, "{start}: {rates:?}");
        assert!((c.check_interval() - 1_000.0).abs() < 1.0);
    }
}

#[test]
fn learns_a_players_own_speed() {
    // A player 0.4% fast: without learning it leaves the dead band every few seconds;
    // with learning the rate settles at 1/1.004 and the rate changes stop.
    let mut c = DriftController::default();
    let mut p = Player::new(0.0, PARTY);
    p.speed = 1.004;
    let (errors, rates) = steer(&mut c, &mut p, PARTY, CHECK_INTERVAL_MS, 120.0);
    assert!(
        (c.player_speed() - 1.004).abs() < 0.0005,
        "{}",
        c.player_speed()
    );
    assert!((p.set - 1.0 / c.player_speed()).abs() < 0.002, "{}", p.set);
    assert!(errors.iter().all(|e| e.abs() <= DEAD_BAND_S + 0.003));
    let late = rates.len()
        - steer(
            &mut DriftController::default(),
            &mut Player {
                speed: 1.004,
                ..Player::new(0.0, PARTY)
            },
            PARTY,
            CHECK_INTERVAL_MS,
            60.0,
        )
        .1
        .len();
    assert!(late <= 4, "{late} rate changes in the last minute");

    let mut plain = DriftController::new(DriftConfig {
        learn_speed: false,
        ..DriftConfig::default()
    });
    let mut p = Player::new(0.0, PARTY);
    p.speed = 1.004;
    let (_, plain_rates) = steer(&mut plain, &mut p, PARTY, CHECK_INTERVAL_MS, 120.0);
    assert!(plain_rates.len() > 3 * rates.len(), "{}", plain_rates.len());
}

#[test]
fn learns_the_seek_lead_of_near_and_far_seeks() {
    // A player that takes 1 s to resume after a seek 100 s away (outside what it
    // holds) and 50 ms after one 2 s away, in turns.
    let mut c = DriftController::default();
    let (mut far, mut near) = (Vec::new(), Vec::new());
    for round in 0..12 {
        c.reset();
        let t = f64::from(round) * 10_000.0;
        let (from, takes) = if round % 2 == 0 {
            (0.0, 1.0)
        } else {
            (98.0, 0.05)
        };
        let DriftAction::Seek { position, .. } = c.update(t, at(from, PARTY), 100.0, PARTY) else {
            panic!("no seek");
        };
        // Lands at `position` when it resumes; checked at once.
        let _ = c.update(
            t + takes * 1000.0,
            at(position, PARTY),
            100.0 + takes,
            PARTY,
        );
        if round % 2 == 0 { &mut far } else { &mut near }.push(position - 100.0 - takes);
    }
    // The first of each lands off by its time less 150 ms; the miss halves each time,
    // and neither kind of seek disturbs the other's lead.
    assert!((far[0] + 0.85).abs() < 1e-9, "{far:?}");
    assert!((near[0] - 0.1).abs() < 1e-9, "{near:?}");
    assert!(
        far[5].abs() < 0.03 && near[5].abs() < 0.005,
        "{far:?} {near:?}"
    );
    assert!((c.seek_lead(true) - 1.0).abs() < 0.03);
    assert!((c.seek_lead(false) - 0.05).abs() < 0.005);
}

#[test]
fn a_missed_seek_is_tried_again_once_then_nudged() {
    let mut c = DriftController::default();
    assert!(matches!(
        c.update(0.0, at(0.0, PARTY), 100.0, PARTY),
        DriftAction::Seek { .. }
    ));
    // Landed 1 s behind (a very slow seek): tried again at once, a near seek with the
    // near lead (the far one learnt half the miss).
    let DriftAction::Seek { position, .. } = c.update(300.0, at(99.3, PARTY), 100.3, PARTY) else {
        panic!("no second seek");
    };
    assert!(
        (position - (100.3 + INITIAL_SEEK_LEAD_S)).abs() < 1e-9,
        "{position}"
    );
    assert!((c.seek_lead(true) - (INITIAL_SEEK_LEAD_S + 0.5)).abs() < 1e-9);
    // That one lands 300 ms ahead: not retried again, and inside the cooldown: nudged
    // (10% slower).
    assert!(matches!(
        c.update(700.0, at(101.0, PARTY), 100.7, PARTY),
        DriftAction::SetRate(r) if (r - PARTY * (1.0 - MAX_NUDGE)).abs() < 0.01
    ));
    // Still off by the threshold after the cooldown: seeked.
    assert!(matches!(
        c.update(1_400.0, at(101.8, 0.9), 101.4, PARTY),
        DriftAction::Seek { .. }
    ));
}

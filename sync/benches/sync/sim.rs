//! One run: the server and the members as discrete events, and what they measure.

use wp_sync::{
    CHECK_INTERVAL_MS, ClockEstimator, DriftAction, DriftConfig, PlaybackState, PlaybackStatus,
    PlayerReading, SyncSchedule, expected_position,
};

use crate::{actors::*, events::*, model::*};

#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// (time, max - min of the positions of the members whose picture moves), ms.
    pub(crate) samples: Vec<(f64, f64)>,
    /// When each change was made, and whether it was a pause.
    pub(crate) changes: Vec<(f64, bool)>,
    /// |estimated server clock - server clock|, per member and sample, ms (ours).
    pub(crate) clock_errors: Vec<f64>,
    pub(crate) seeks: u64,
    pub(crate) rate_changes: u64,
    pub(crate) resyncs: u64,
    pub(crate) member_minutes: f64,
}

fn server_ms(t: f64) -> f64 {
    (EPOCH + t).floor()
}

struct Sim<'a> {
    scn: &'a Scenario,
    algo: Algo,
    timeline: &'static [(f64, Control)],
    ms: Vec<Member>,
    q: Queue,
    out: Outcome,
    /// Ours: the server's playback state and its number.
    state: PlaybackState,
    seq: u64,
    /// Jellyfin and CyTube: the server's position at `since` (playing) or for good.
    position: f64,
    since: Option<f64>,
    /// Jellyfin: the group waits for members to be ready after a seek.
    waiting: bool,
    ready: Vec<bool>,
    /// Any algorithm: the picture should move from this time on.
    playing_since: Option<f64>,
}

impl Sim<'_> {
    fn server_position(&self, t: f64) -> f64 {
        match self.since {
            Some(s) if t > s => self.position + (t - s) / 1000.0,
            _ => self.position,
        }
    }

    /// The slowest joined member's round trip, as the server measures it.
    fn slowest(&self) -> f64 {
        self.ms
            .iter()
            .filter(|m| m.joined)
            .map(|m| m.round_trip(self.scn))
            .fold(0.0, f64::max)
    }

    fn send(&mut self, i: usize, t: f64, msg: Msg) {
        let at = self.ms[i].arrive_down(t, self.scn);
        self.q.push(at, Ev::AtMember(i, msg));
    }

    fn broadcast(&mut self, t: f64, msg: Msg) {
        for i in 0..self.ms.len() {
            if self.ms[i].joined {
                self.send(i, t, msg);
            }
        }
    }

    // ---- the server ----

    fn control(&mut self, t: f64, i: usize) {
        let control = self.timeline[i].1;
        self.out.changes.push((t, control == Control::Pause));
        let now = server_ms(t);
        match self.algo {
            Algo::Ours(..) => {
                let margin = (self.slowest() + 20.0).clamp(40.0, 1_000.0);
                let at = now + margin;
                let mut next = PlaybackState {
                    position: expected_position(&self.state, at),
                    updated_at: at as i64,
                    ..self.state
                };
                match control {
                    Control::Play => next.status = PlaybackStatus::Playing,
                    Control::Pause => next.status = PlaybackStatus::Paused,
                    Control::Seek(p) => next.position = p,
                    Control::Rate(r) => next.rate = r,
                }
                self.playing_since = match (next.status, self.playing_since) {
                    (PlaybackStatus::Playing, Some(s)) => Some(s),
                    (PlaybackStatus::Playing, None) => Some(t + margin),
                    _ => None,
                };
                self.state = next;
                self.seq += 1;
                let msg = Msg::State {
                    state: next,
                    seq: self.seq,
                    server_time: now,
                    change: true,
                };
                self.broadcast(t, msg);
            }
            Algo::Jellyfin { .. } => {
                let position = self.server_position(t);
                match control {
                    Control::Play => {
                        let delay = self.slowest().max(500.0);
                        self.since = Some(t + delay);
                        self.playing_since = self.since;
                        let cmd = JfCommand::Unpause {
                            when: now + delay,
                            position: self.position,
                        };
                        self.broadcast(t, Msg::Jellyfin(cmd));
                    }
                    Control::Pause => {
                        self.position = position;
                        self.since = None;
                        self.playing_since = None;
                        self.broadcast(t, Msg::Jellyfin(JfCommand::Pause { position }));
                    }
                    Control::Seek(p) => {
                        self.position = p;
                        self.since = None;
                        self.playing_since = None;
                        self.waiting = true;
                        self.ready.iter_mut().for_each(|r| *r = false);
                        self.broadcast(t, Msg::Jellyfin(JfCommand::Seek { position: p }));
                    }
                    Control::Rate(_) => unreachable!("Jellyfin has no party rate"),
                }
            }
            Algo::CyTube => {
                self.position = self.server_position(t);
                match control {
                    Control::Play => self.since = Some(t),
                    Control::Pause => self.since = None,
                    Control::Seek(p) => {
                        self.position = p;
                        self.since = self.since.map(|_| t);
                    }
                    Control::Rate(_) => unreachable!("CyTube has no party rate"),
                }
                self.playing_since = self.since;
                let msg = Msg::CyTube {
                    time: self.position,
                    paused: self.since.is_none(),
                };
                self.broadcast(t, msg);
            }
        }
    }

    fn heartbeat(&mut self, t: f64) {
        match self.algo {
            Algo::Ours(..) => {
                let msg = Msg::State {
                    state: self.state,
                    seq: self.seq,
                    server_time: server_ms(t),
                    change: false,
                };
                self.broadcast(t, msg);
            }
            Algo::CyTube => {
                let msg = Msg::CyTube {
                    time: self.server_position(t),
                    paused: self.since.is_none(),
                };
                self.broadcast(t, msg);
            }
            Algo::Jellyfin { .. } => {}
        }
    }

    fn jellyfin_ready(&mut self, t: f64, i: usize) {
        self.ready[i] = true;
        let all = self
            .ms
            .iter()
            .zip(&self.ready)
            .all(|(m, r)| !m.joined || *r);
        if self.waiting && all {
            self.waiting = false;
            let delay = self.slowest().max(500.0);
            self.since = Some(t + delay);
            self.playing_since = self.since;
            let cmd = JfCommand::Unpause {
                when: server_ms(t) + delay,
                position: self.position,
            };
            self.broadcast(t, Msg::Jellyfin(cmd));
        }
    }

    fn join(&mut self, t: f64, i: usize) {
        let m = &mut self.ms[i];
        m.joined = true;
        m.schedule = SyncSchedule::new(m.local(t));
        let phase = m.rng.range(0.0, CHECK_INTERVAL_MS);
        self.q.push(t + phase, Ev::Tick(i));
        if !matches!(self.algo, Algo::CyTube) {
            self.q.push(t, Ev::SyncDue(i));
        }
        // The join is answered after the upgrade: one trip up first.
        let at_server = self.ms[i].arrive_up(t, self.scn);
        let msg = match self.algo {
            Algo::Ours(..) => Msg::State {
                state: self.state,
                seq: self.seq,
                server_time: server_ms(at_server),
                change: true,
            },
            Algo::Jellyfin { .. } => Msg::Jellyfin(match self.since {
                Some(s) => JfCommand::Unpause {
                    when: server_ms(s),
                    position: self.position,
                },
                None => JfCommand::Pause {
                    position: self.position,
                },
            }),
            Algo::CyTube => Msg::CyTube {
                time: self.server_position(at_server),
                paused: self.since.is_none(),
            },
        };
        self.send(i, at_server, msg);
    }

    fn sync_due(&mut self, t: f64, i: usize) {
        let scn = self.scn;
        let m = &mut self.ms[i];
        let local = m.local(t);
        match self.algo {
            Algo::Ours(..) => {
                if m.schedule.poll(local) {
                    let at = m.arrive_up(t, scn);
                    self.q.push(at, Ev::AtServer(i, local));
                }
                let next = m.sim_time(m.schedule.next_at()).max(t + 1.0);
                self.q.push(next, Ev::SyncDue(i));
            }
            Algo::Jellyfin { .. } => {
                // Four pings a second apart, then one a minute (TimeSync.js).
                let at = m.arrive_up(t, scn);
                self.q.push(at, Ev::AtServer(i, local));
                m.jf.pings += 1;
                let every = if m.jf.pings < 4 { 1_000.0 } else { 60_000.0 };
                self.q.push(t + every, Ev::SyncDue(i));
            }
            Algo::CyTube => {}
        }
    }

    fn sync_request(&mut self, t: f64, i: usize, t0: f64) {
        let t1 = server_ms(t);
        let sent = t + self.ms[i].rng.range(0.0, SERVER_PROCESSING_MS);
        let t2 = server_ms(sent);
        self.send(i, sent, Msg::SyncResponse { t0, t1, t2 });
    }

    fn sample(&mut self, t: f64) {
        if self.playing_since.is_some_and(|s| t >= s) {
            let (mut lo, mut hi, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0);
            for m in self.ms.iter().filter(|m| m.joined && m.player.moving()) {
                let p = m.player.position(t);
                lo = lo.min(p);
                hi = hi.max(p);
                n += 1;
            }
            if n >= 2 {
                self.out.samples.push((t, (hi - lo) * 1000.0));
            }
            if matches!(self.algo, Algo::Ours(..)) {
                let errors = self.ms.iter().filter(|m| m.joined).filter_map(|m| {
                    let estimate = m.clock.server_now(m.local(t))?;
                    Some((estimate - (EPOCH + t)).abs())
                });
                self.out.clock_errors.extend(errors);
            }
        }
        self.q.push(t + SAMPLE_MS, Ev::Sample);
    }

    // ---- a member's player ----

    fn set_rate(&mut self, t: f64, i: usize, rate: f64) {
        let m = &mut self.ms[i];
        if (rate - m.player.set).abs() > 1e-12 {
            let (at, seq) = m.player.set_rate(t, rate, &mut m.rng);
            m.rate_changes += 1;
            self.q.push(at, Ev::RateLands(i, seq));
        }
    }
    fn seek(&mut self, t: f64, i: usize, target: f64) {
        let m = &mut self.ms[i];
        let (at, seq) = m.player.start_seek(t, target, &mut m.rng);
        m.seeks += 1;
        self.q.push(at, Ev::SeekLands(i, seq));
    }
    fn play(&mut self, t: f64, i: usize) {
        let m = &mut self.ms[i];
        if let Some((at, seq)) = m.player.play(t, &mut m.rng) {
            self.q.push(at, Ev::Started(i, seq));
        }
    }
    fn pause_at(&mut self, t: f64, i: usize, position: f64) {
        self.ms[i].player.pause(t);
        if (self.ms[i].player.position(t) - position).abs() > 0.000_5 {
            self.seek(t, i, position);
        }
    }

    // ---- ours ----

    fn ours_state(
        &mut self,
        t: f64,
        i: usize,
        state: PlaybackState,
        seq: u64,
        sent: f64,
        change: bool,
    ) {
        let m = &mut self.ms[i];
        let local = m.local(t);
        if !m.clock.is_consistent(sent, local) {
            m.clock.clear();
            m.schedule.burst(local);
            m.resyncs += 1;
            self.q.push(t, Ev::SyncDue(i));
        }
        let known = m.state.map_or(0, |s| s.1).max(m.held.map_or(0, |s| s.1));
        let first = m.state.is_none() && m.held.is_none();
        if !first && (seq < known || (seq == known && !change)) {
            return;
        }
        if let Some(offset) = m.clock.offset()
            && state.updated_at as f64 > local + offset
        {
            // Not begun: held until its instant, the previous state followed till then.
            let at = m.sim_time(state.updated_at as f64 - offset);
            m.held = Some((state, seq));
            self.q.push(at.max(t), Ev::ApplyHeld(i, seq));
            if m.state.is_none() {
                let paused = PlaybackState {
                    status: PlaybackStatus::Paused,
                    ..state
                };
                self.ours_apply(t, i, paused, 0);
            }
        } else {
            m.held = None;
            self.ours_apply(t, i, state, seq);
        }
    }

    fn ours_apply(&mut self, t: f64, i: usize, state: PlaybackState, seq: u64) {
        self.ms[i].state = Some((state, seq));
        self.ms[i].ctrl.reset();
        if state.status == PlaybackStatus::Playing {
            let base = self.ms[i].ctrl.base_rate(state.rate);
            self.set_rate(t, i, base);
            self.play(t, i);
            self.ours_check(t, i);
        } else {
            self.pause_at(t, i, state.position);
        }
    }

    /// One check of the drift controller, when there is something to check.
    fn ours_check(&mut self, t: f64, i: usize) {
        let m = &mut self.ms[i];
        let Some((state, _)) = m.state else { return };
        if state.status != PlaybackStatus::Playing || !m.player.moving() {
            return;
        }
        let local = m.local(t);
        let Some(server_now) = m.clock.server_now(local) else {
            return;
        };
        let reading = PlayerReading {
            position: m.player.read(t, &mut m.rng),
            rate: m.player.set,
        };
        let expected = expected_position(&state, server_now);
        match m.ctrl.update(local, reading, expected, state.rate) {
            DriftAction::Keep => {}
            DriftAction::SetRate(r) => self.set_rate(t, i, r),
            DriftAction::Seek { position, rate } => {
                self.set_rate(t, i, rate);
                self.seek(t, i, position);
            }
        }
    }

    // ---- Jellyfin (PlaybackCore.js) ----

    fn jellyfin_command(&mut self, t: f64, i: usize, cmd: JfCommand) {
        let m = &mut self.ms[i];
        m.jf.number += 1;
        m.jf.command = Some(cmd);
        m.jf.enabled = false;
        m.jf.seek_on_start = None;
        let number = m.jf.number;
        let local = m.local(t);
        let offset = m.clock.offset().unwrap_or(0.0);
        // clearScheduledCommand: back to 1×.
        self.set_rate(t, i, 1.0);
        match cmd {
            JfCommand::Unpause { when, position } => {
                let remote = local + offset;
                if when > remote {
                    if self.ms[i].player.position(t) - position > 0.4 {
                        self.seek(t, i, position);
                    }
                    let at = self.ms[i].sim_time(when - offset);
                    self.q.push(at, Ev::JfUnpause(i, number));
                } else {
                    // Late: play now, seek to where the group is once playing (the
                    // estimate is not recomputed).
                    self.ms[i].jf.seek_on_start = Some(position + (remote - when) / 1000.0);
                    self.play(t, i);
                    self.q.push(t + 1_500.0, Ev::JfEnable(i, number));
                }
            }
            JfCommand::Pause { position } => self.pause_at(t, i, position),
            JfCommand::Seek { position } => {
                self.ms[i].jf.awaiting_ready = true;
                self.pause_at(t, i, position);
                if self.ms[i].player.seek.is_none() {
                    self.jellyfin_report_ready(t, i);
                }
            }
        }
    }

    fn jellyfin_report_ready(&mut self, t: f64, i: usize) {
        let m = &mut self.ms[i];
        m.jf.awaiting_ready = false;
        let at = m.arrive_up(t, self.scn);
        self.q.push(at, Ev::JfReady(i));
    }

    /// On `timeupdate`: syncPlaybackTime.
    fn jellyfin_timeupdate(&mut self, t: f64, i: usize, correction: bool) {
        let m = &mut self.ms[i];
        let local = m.local(t);
        let Some(JfCommand::Unpause { when, position }) = m.jf.command else {
            return;
        };
        if !m.player.moving() || local - m.jf.last_sync < 1_500.0 {
            return;
        }
        m.jf.last_sync = local;
        if !(m.jf.enabled && correction) {
            return;
        }
        let remote = local + m.clock.offset().unwrap_or(0.0);
        let server_position = position + (remote - when) / 1000.0;
        let current = m.player.read(t, &mut m.rng);
        let diff = (server_position - current) * 1000.0;
        let number = m.jf.number;
        if diff.abs() >= 60.0 && diff.abs() < 3_000.0 {
            // SpeedToSync: make up the difference in 1 s, or at 0.2× when far ahead.
            let mut duration = 1_000.0;
            if diff <= -duration * 0.2 {
                duration = diff.abs() / 0.8;
            }
            m.jf.enabled = false;
            self.set_rate(t, i, 1.0 + diff / duration);
            self.q.push(t + duration, Ev::JfSpeedEnds(i, number));
        } else if diff.abs() >= 400.0 {
            m.jf.enabled = false;
            self.seek(t, i, server_position);
            self.q.push(t + 1_500.0, Ev::JfEnable(i, number));
        }
    }

    // ---- CyTube (update.coffee, handleMediaUpdate) ----

    fn cytube_update(&mut self, t: f64, i: usize, time: f64, paused: bool) {
        const ACCURACY: f64 = 2.0;
        if paused && !self.ms[i].player.paused {
            self.ms[i].player.pause(t);
            self.seek(t, i, time);
            return;
        }
        if !paused && self.ms[i].player.paused {
            self.play(t, i);
        }
        let diff = time - self.ms[i].player.position(t);
        if diff > ACCURACY {
            self.seek(t, i, time);
        } else if diff < -ACCURACY {
            // "Don't seek all the way back."
            self.seek(t, i, time + 1.0);
        }
    }

    // ---- the loop ----

    fn member_message(&mut self, t: f64, i: usize, msg: Msg) {
        match msg {
            Msg::SyncResponse { t0, t1, t2 } => {
                let m = &mut self.ms[i];
                let local = m.local(t);
                m.clock.add_sample(t0, t1, t2, local);
            }
            Msg::State {
                state,
                seq,
                server_time,
                change,
            } => self.ours_state(t, i, state, seq, server_time, change),
            Msg::Jellyfin(cmd) => self.jellyfin_command(t, i, cmd),
            Msg::CyTube { time, paused } => self.cytube_update(t, i, time, paused),
        }
    }

    fn tick(&mut self, t: f64, i: usize) {
        let m = &mut self.ms[i];
        let every = match self.algo {
            Algo::Ours(..) => m.timer_ms(CHECK_INTERVAL_MS),
            Algo::Jellyfin { .. } => m.timer_ms(TIMEUPDATE_MS),
            Algo::CyTube => 1_000.0,
        };
        // The player's own speed wanders.
        m.player.rebase(t);
        let step = SPEED_WANDER_PER_MIN * (every / 60_000.0).sqrt();
        m.player.speed =
            (m.player.speed + step * m.rng.normal()).clamp(1.0 - SPEED_LIMIT, 1.0 + SPEED_LIMIT);
        match self.algo {
            Algo::Ours(..) => self.ours_check(t, i),
            Algo::Jellyfin { correction } => self.jellyfin_timeupdate(t, i, correction),
            Algo::CyTube => {}
        }
        self.q.push(t + every, Ev::Tick(i));
    }

    fn step(&mut self, t: f64, ev: Ev) {
        match ev {
            Ev::Control(i) => self.control(t, i),
            Ev::Heartbeat => {
                self.heartbeat(t);
                self.q.push(t + HEARTBEAT_MS, Ev::Heartbeat);
            }
            Ev::Sample => self.sample(t),
            Ev::Join(i) => self.join(t, i),
            Ev::Tick(i) => self.tick(t, i),
            Ev::SyncDue(i) => self.sync_due(t, i),
            Ev::AtServer(i, t0) => self.sync_request(t, i, t0),
            Ev::AtMember(i, msg) => self.member_message(t, i, msg),
            Ev::SeekLands(i, seq) => {
                self.ms[i].player.land(t, seq);
                if self.ms[i].jf.awaiting_ready && self.ms[i].player.seek.is_none() {
                    self.jellyfin_report_ready(t, i);
                }
                // Ours checks on `seeked` (events are not throttled in hidden tabs).
                if matches!(self.algo, Algo::Ours(..)) {
                    self.ours_check(t, i);
                }
            }
            Ev::RateLands(i, seq) => self.ms[i].player.rate_lands(t, seq),
            Ev::Started(i, seq) => {
                self.ms[i].player.started(t, seq);
                if let Some(target) = self.ms[i].jf.seek_on_start.take() {
                    self.seek(t, i, target);
                }
                if matches!(self.algo, Algo::Ours(..)) {
                    self.ours_check(t, i);
                }
            }
            Ev::ApplyHeld(i, seq) => {
                if let Some((state, held)) = self.ms[i].held
                    && held == seq
                {
                    self.ms[i].held = None;
                    self.ours_apply(t, i, state, seq);
                }
            }
            Ev::JfUnpause(i, number) => {
                if self.ms[i].jf.number == number {
                    self.play(t, i);
                    self.q.push(t + 1_500.0, Ev::JfEnable(i, number));
                }
            }
            Ev::JfSpeedEnds(i, number) => {
                if self.ms[i].jf.number == number {
                    self.set_rate(t, i, 1.0);
                    self.ms[i].jf.enabled = true;
                }
            }
            Ev::JfEnable(i, number) => {
                if self.ms[i].jf.number == number {
                    self.ms[i].jf.enabled = true;
                }
            }
            Ev::JfReady(i) => self.jellyfin_ready(t, i),
        }
    }
}

pub(crate) fn run(
    scn: &Scenario,
    algo: Algo,
    timeline: &'static [(f64, Control)],
    members: usize,
    seed: u64,
) -> Outcome {
    let (config, estimator) = match algo {
        Algo::Ours(c, e) => (c, e),
        // Jellyfin keeps the lowest-delay of its last 8 pings.
        Algo::Jellyfin { .. } => (DriftConfig::default(), ClockEstimator::MinDelay),
        Algo::CyTube => (DriftConfig::default(), ClockEstimator::default()),
    };
    let mut setup = Rng::new(seed.wrapping_mul(1_000_003));
    let ms: Vec<Member> = (0..members)
        .map(|i| {
            Member::new(
                scn,
                &mut setup,
                seed.wrapping_mul(7_919).wrapping_add(i as u64),
                i,
                config,
                estimator,
            )
        })
        .collect();
    let mut sim = Sim {
        scn,
        algo,
        timeline,
        ready: vec![false; members],
        ms,
        q: Queue::default(),
        out: Outcome::default(),
        state: PlaybackState {
            status: PlaybackStatus::Paused,
            position: 0.0,
            rate: 1.0,
            updated_at: server_ms(0.0) as i64,
        },
        seq: 1,
        position: 0.0,
        since: None,
        waiting: false,
        playing_since: None,
    };
    for i in 0..members {
        let at = sim.ms[i].join_at;
        sim.q.push(at, Ev::Join(i));
    }
    for (i, (at, _)) in timeline.iter().enumerate() {
        sim.q.push(at * 1000.0, Ev::Control(i));
    }
    sim.q.push(HEARTBEAT_MS, Ev::Heartbeat);
    sim.q.push(0.0, Ev::Sample);
    while let Some((t, ev)) = sim.q.pop() {
        if t > END_MS {
            break;
        }
        sim.step(t, ev);
    }
    let mut out = sim.out;
    for m in &sim.ms {
        out.seeks += u64::from(m.seeks);
        out.rate_changes += u64::from(m.rate_changes);
        out.resyncs += u64::from(m.resyncs);
        out.member_minutes += (END_MS - m.join_at) / 60_000.0;
    }
    out
}

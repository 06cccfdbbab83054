//! The party clock: the time every node of a deployment stamps playback with.
//!
//! A playback state says when it takes effect (`updated_at`) and frames carry the
//! server time (`server_time`, `sync_response`); clients put members on the same frame
//! by that time. Were each node to use its own clock, two members on two nodes whose
//! clocks are 30 ms apart would play 30 ms apart, one for one, and nothing would say so.
//! So the nodes share one reference, Redis's clock (`TIME`): each measures its offset
//! to it every few seconds, NTP-style, with the clients' own estimator
//! (`wp_sync::ClockSync`, min-delay: the reading is taken to be the middle of the round
//! trip, and of the last [`wp_sync::CLOCK_SAMPLES`] the one with the shortest round trip
//! wins), and stamps with its own clock plus that offset. Nodes on one Redis then agree within
//! half a round trip to Redis (well under a millisecond on a LAN), whatever NTP does.
//!
//! The offset is in `/metrics` (`realtime_clock_offset_seconds`) and `/ready`: a node
//! whose clock is off by more than [`READY_LIMIT_MS`] says so (its local timers, the
//! token expiries, no longer match the rest of the deployment); until its first
//! measurement a node stamps with its own clock.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicI64, Ordering},
};

use wp_sync::{ClockEstimator, ClockSync};

/// `/ready` fails when this node's clock is further than this from Redis's.
pub const READY_LIMIT_MS: i64 = 1_000;

/// This process's offset to the reference (one per process: every node in it reads the
/// same local clock).
pub struct PartyClock {
    /// Reference minus local, in microseconds.
    offset_us: AtomicI64,
    /// Round trip of the chosen measurement, microseconds (-1: none yet).
    rtt_us: AtomicI64,
    measured: AtomicBool,
    /// The estimator, made on the first measurement.
    sync: Mutex<Option<ClockSync>>,
}

pub static CLOCK: PartyClock = PartyClock {
    offset_us: AtomicI64::new(0),
    rtt_us: AtomicI64::new(-1),
    measured: AtomicBool::new(false),
    sync: Mutex::new(None),
};

fn local_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl PartyClock {
    /// The party time, Unix ms.
    pub fn now_ms(&self) -> i64 {
        (local_us() + self.offset_us.load(Ordering::Relaxed)).div_euclid(1000)
    }

    /// Reference minus local, ms, once measured.
    pub fn offset_ms(&self) -> Option<f64> {
        self.measured
            .load(Ordering::Relaxed)
            .then(|| self.offset_us.load(Ordering::Relaxed) as f64 / 1000.0)
    }

    /// The round trip of the measurement in use, ms.
    pub fn rtt_ms(&self) -> Option<f64> {
        let rtt = self.rtt_us.load(Ordering::Relaxed);
        (rtt >= 0).then(|| rtt as f64 / 1000.0)
    }

    /// Takes one measurement: a local reading before (`sent_us`) and after
    /// (`received_us`) the reference answered `reference_us`.
    pub fn record(&self, sent_us: i64, reference_us: i64, received_us: i64) {
        let ms = |us: i64| us as f64 / 1000.0;
        let mut sync = self
            .sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sync = sync.get_or_insert_with(|| ClockSync::with_estimator(ClockEstimator::MinDelay));
        // Redis answers at one instant: it received and sent at the same time.
        let reference = ms(reference_us);
        if !sync.add_sample(ms(sent_us), reference, reference, ms(received_us)) {
            return;
        }
        if let (Some(offset), Some(best)) = (sync.offset(), sync.best()) {
            self.offset_us
                .store((offset * 1000.0).round() as i64, Ordering::Relaxed);
            self.rtt_us
                .store((best.delay() * 1000.0).round() as i64, Ordering::Relaxed);
            self.measured.store(true, Ordering::Relaxed);
        }
    }

    /// Measures the offset to Redis's clock once.
    pub async fn measure(
        &self,
        redis: &mut redis::aio::ConnectionManager,
    ) -> redis::RedisResult<()> {
        let sent = local_us();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(redis).await?;
        let received = local_us();
        self.record(sent, secs * 1_000_000 + micros, received);
        Ok(())
    }

    /// `/ready`'s verdict on the clock.
    pub fn check(&self) -> Result<(), String> {
        match self.offset_ms() {
            Some(ms) if ms.abs() > READY_LIMIT_MS as f64 => Err(format!(
                "this node's clock is {ms:.0} ms off Redis's (party times are corrected; \
                 token expiries and logs are not): fix NTP"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> PartyClock {
        PartyClock {
            offset_us: AtomicI64::new(0),
            rtt_us: AtomicI64::new(-1),
            measured: AtomicBool::new(false),
            sync: Mutex::new(None),
        }
    }

    #[test]
    fn the_offset_is_the_middle_of_the_shortest_round_trip() {
        let c = fresh();
        assert_eq!(c.offset_ms(), None);
        // Local clock 2 s behind the reference; a slow answer (asymmetric: most of the
        // 40 ms on the way back) then a fast one.
        c.record(1_000_000, 3_005_000, 1_040_000);
        assert_eq!(c.offset_ms(), Some(1_985.0));
        c.record(2_000_000, 4_000_500, 2_001_000);
        assert_eq!(c.offset_ms(), Some(2_000.0));
        assert_eq!(c.rtt_ms(), Some(1.0));
        // A later slow one does not displace it.
        c.record(3_000_000, 5_030_000, 3_050_000);
        assert_eq!(c.offset_ms(), Some(2_000.0));
        // The party time is the local clock plus the offset.
        let local = local_us() / 1000;
        assert!(
            (c.now_ms() - local - 2_000).abs() <= 2,
            "{}",
            c.now_ms() - local
        );
        assert!(c.check().is_err(), "2 s off fails /ready");
        // Old measurements age out.
        for i in 0..wp_sync::CLOCK_SAMPLES as i64 {
            c.record(10_000_000 + i, 10_000_010 + i, 10_000_020 + i);
        }
        assert_eq!(c.offset_ms(), Some(0.0));
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_reading_from_before_it_was_asked_is_ignored() {
        let c = fresh();
        c.record(2_000, 1_000, 1_000);
        assert_eq!(c.offset_ms(), None);
    }
}

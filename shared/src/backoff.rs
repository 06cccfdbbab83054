//! Reconnecting to a dependency that dropped: capped exponential backoff with full
//! jitter, so a fleet of processes that lost the same server does not come back in
//! lock-step, and one outage is logged once rather than once per attempt.

use std::time::{Duration, Instant};

/// Delays for successive attempts: `base · 2^n`, capped, each drawn uniformly from
/// `[cap/2, cap]` of that step (half jitter: never zero, never a hot loop).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let spread = u64::try_from((step - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::random_range(0..=spread))
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over (after a connection that held).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Tracks one dependency's outage for logging: the drop is logged once at WARN, the
/// attempts while it lasts at most once per `every`, and the recovery once with the
/// outage's length.
#[derive(Debug)]
pub struct Outage {
    what: &'static str,
    every: Duration,
    since: Option<Instant>,
    last_log: Option<Instant>,
    attempts: u64,
}

impl Outage {
    pub fn new(what: &'static str, every: Duration) -> Self {
        Self {
            what,
            every,
            since: None,
            last_log: None,
            attempts: 0,
        }
    }

    /// Whether the dependency is down now.
    pub fn is_down(&self) -> bool {
        self.since.is_some()
    }

    /// A failed attempt (or the drop itself).
    pub fn failed(&mut self, error: &dyn std::fmt::Display, retry_in: Duration) {
        let now = Instant::now();
        self.attempts += 1;
        match self.since {
            None => {
                self.since = Some(now);
                self.last_log = Some(now);
                tracing::warn!(
                    dependency = self.what,
                    error = %error,
                    retry_in_ms = retry_in.as_millis() as u64,
                    "connection lost; reconnecting with backoff"
                );
            }
            Some(since) => {
                if self
                    .last_log
                    .is_none_or(|t| now.duration_since(t) >= self.every)
                {
                    self.last_log = Some(now);
                    tracing::warn!(
                        dependency = self.what,
                        error = %error,
                        attempts = self.attempts,
                        down_for_s = now.duration_since(since).as_secs(),
                        retry_in_ms = retry_in.as_millis() as u64,
                        "still reconnecting"
                    );
                }
            }
        }
    }

    /// The dependency answered again.
    pub fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                dependency = self.what,
                attempts = self.attempts,
                down_for_ms = since.elapsed().as_millis() as u64,
                "connection restored"
            );
        }
        self.attempts = 0;
        self.last_log = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_in_their_band_and_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut steps = Vec::new();
        for _ in 0..8 {
            steps.push(b.next_delay());
        }
        let bands = [100u64, 200, 400, 800, 1600, 2000, 2000, 2000];
        for (d, step) in steps.iter().zip(bands) {
            let ms = d.as_millis() as u64;
            assert!(
                ms >= step / 2 && ms <= step,
                "{ms} ms outside [{}, {step}]",
                step / 2
            );
        }
        assert_eq!(b.attempts(), 8);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 10, "only {} distinct delays", seen.len());
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}

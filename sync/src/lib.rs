//! Client playback sync: what a party member's player does to stay on the server's
//! playback state. The server never sees this code run; it lives here so the algorithm
//! is written once, tested, and simulated (`benches/sync.rs`, run with
//! `cargo bench -p watch-party-sync --bench sync`). A JavaScript client ports it line
//! for line. The server's playback state machine (`wp_core::party::live`) computes
//! positions with the same [`position_after`]. `docs/sync.md` explains it and gives the measured results.
//!
//! Three pieces, all plain data and arithmetic (no I/O, no clock reads):
//! - [`ClockSync`] estimates `server clock - local clock` from NTP-style
//!   `sync_request` / `sync_response` exchanges, keeping the last [`CLOCK_SAMPLES`]:
//!   the middle of the range they all allow ([`ClockEstimator::Interval`]), or the
//!   offset of the one with the smallest round-trip delay
//!   ([`ClockEstimator::MinDelay`]). [`SyncSchedule`] says when to send a request.
//! - [`expected_position`] gives where the party is at a server time.
//! - [`DriftController`] compares the player with that expected position and answers
//!   keep, nudge the playback rate, or seek.
//!
//! Units: clock times are milliseconds (`f64`; Unix ms as `i64` converts exactly),
//! positions and errors are seconds of video, rates are multipliers (1.0 = normal).
//! The local clock should be monotonic (`performance.timeOrigin + performance.now()`
//! in a browser, not `Date.now()`, which can jump).

mod clock;
mod drift;
mod position;

pub use clock::*;
pub use drift::*;
pub use position::*;

#[cfg(test)]
mod tests;

//! The playback state as the server sends it, and where the party is at a time.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybackStatus {
    Playing,
    Paused,
    /// Would be playing, but the party waits for a member who is buffering.
    Waiting,
}

/// The part of the server's playback state that sync needs. It deserializes from the
/// `data` of `video_state` and `playback_heartbeat` frames (other fields are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlaybackState {
    pub status: PlaybackStatus,
    /// Seconds into the video at `updated_at`.
    pub position: f64,
    pub rate: f64,
    /// Server time (Unix ms) the state takes effect.
    pub updated_at: i64,
}

/// Where the party is at server time `server_ms`: `position + (server_ms -
/// updated_at) / 1000 × rate` while playing, `position` otherwise. Before
/// `updated_at` the state has not begun, and the answer is `position` (a client holds
/// a state whose `updated_at` is still ahead and keeps following the previous one
/// until then).
pub fn expected_position(state: &PlaybackState, server_ms: f64) -> f64 {
    match state.status {
        PlaybackStatus::Playing => position_after(
            state.position,
            state.rate,
            server_ms - state.updated_at as f64,
        ),
        PlaybackStatus::Paused | PlaybackStatus::Waiting => state.position,
    }
}

/// The playback formula, shared by the server and the client: the position
/// `elapsed_ms` after a playing state at `position` and `rate` took effect (a negative
/// elapsed time counts as none).
pub fn position_after(position: f64, rate: f64, elapsed_ms: f64) -> f64 {
    position + (elapsed_ms.max(0.0) / 1000.0) * rate
}

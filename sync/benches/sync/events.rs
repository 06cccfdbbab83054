//! The discrete-event queue and what travels in it.

use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
};

use wp_sync::*;

// ---------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
pub(crate) enum Msg {
    SyncResponse {
        t0: f64,
        t1: f64,
        t2: f64,
    },
    /// Ours: a playback state (`seq` orders them).
    State {
        state: PlaybackState,
        seq: u64,
        server_time: f64,
        change: bool,
    },
    /// Jellyfin's group commands.
    Jellyfin(JfCommand),
    /// CyTube's media update.
    CyTube {
        time: f64,
        paused: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum JfCommand {
    /// Play from `position` at server time `when` (ms).
    Unpause {
        when: f64,
        position: f64,
    },
    Pause {
        position: f64,
    },
    /// Pause, seek, and report ready.
    Seek {
        position: f64,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Ev {
    Control(usize),
    Heartbeat,
    Sample,
    Join(usize),
    /// A member's timer: our check, or Jellyfin's `timeupdate`.
    Tick(usize),
    SyncDue(usize),
    AtServer(usize, f64),
    AtMember(usize, Msg),
    SeekLands(usize, u64),
    RateLands(usize, u64),
    Started(usize, u64),
    /// Ours: a held state's instant (its `seq`).
    ApplyHeld(usize, u64),
    /// Jellyfin: a scheduled unpause, the end of a speed correction, re-enabling
    /// sync correction (each with the command number it belongs to).
    JfUnpause(usize, u64),
    JfSpeedEnds(usize, u64),
    JfEnable(usize, u64),
    /// Jellyfin: a member reports ready to the server.
    JfReady(usize),
}

pub(crate) struct Queued {
    pub(crate) t: f64,
    pub(crate) seq: u64,
    pub(crate) ev: Ev,
}
impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        self.t.total_cmp(&other.t).then(self.seq.cmp(&other.seq))
    }
}

#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) heap: BinaryHeap<Reverse<Queued>>,
    pub(crate) seq: u64,
}
impl Queue {
    pub(crate) fn push(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse(Queued {
            t,
            seq: self.seq,
            ev,
        }));
    }
    pub(crate) fn pop(&mut self) -> Option<(f64, Ev)> {
        self.heap.pop().map(|Reverse(q)| (q.t, q.ev))
    }
}

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
    State {
        state: PlaybackState,
        server_time: f64,
        change: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Ev {
    Control(usize),
    Heartbeat,
    Sample,
    Join(usize),
    Tick(usize),
    SyncDue(usize),
    AtServer(usize, f64),
    AtMember(usize, Msg),
    SeekLands(usize, u64),
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

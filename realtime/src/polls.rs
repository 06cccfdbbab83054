//! `poll_updated` frames, throttled per room: a vote in a 1,000-member party must not
//! cost every member a frame (1,000 votes would be a million frames). Each vote carries
//! the poll's counts at its version; a room keeps the highest version it has seen per
//! poll (votes published by different processes may arrive out of order), sends the
//! first update after a quiet interval at once and otherwise one update per poll at
//! the end of each `poll_every` interval, with the latest counts. A member therefore
//! gets at most one `poll_updated` per open poll per interval, and the last vote's
//! counts within one interval of it. Once a poll is closed or deleted, updates for it
//! that were still waiting or late are dropped: `poll_closed` has the final counts.

use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;
use uuid::Uuid;
use wp_core::party::{events::PartyEvent, polls::PollCounts};
use wp_shared::frame::Frame;

use crate::presence::{Gate, Pass};

/// What the room does with an update just offered.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Send it now.
    Now(Frame),
    /// Held; flush at this instant.
    FlushAt(Instant),
    /// Held behind a flush already scheduled.
    Queued,
    /// Older than what was already seen (or the poll is over): dropped.
    Stale,
}

/// One room's poll updates.
#[derive(Default)]
pub struct Throttle {
    gate: Gate,
    /// The highest version seen per poll (`i64::MAX` once it is over).
    seen: HashMap<Uuid, i64>,
    /// The latest held update per poll.
    pending: Vec<PollCounts>,
}

impl Throttle {
    pub fn offer(&mut self, now: Instant, every: Duration, counts: &PollCounts) -> Offer {
        let seen = self.seen.entry(counts.poll_id).or_insert(i64::MIN);
        if counts.version <= *seen {
            return Offer::Stale;
        }
        *seen = counts.version;
        let pass = self.gate.pass(now, every);
        if pass == Pass::Now {
            return Offer::Now(PartyEvent::PollUpdated(counts.clone()).frame());
        }
        match self
            .pending
            .iter_mut()
            .find(|p| p.poll_id == counts.poll_id)
        {
            Some(p) => *p = counts.clone(),
            None => self.pending.push(counts.clone()),
        }
        match pass {
            Pass::FlushAt(at) => Offer::FlushAt(at),
            _ => Offer::Queued,
        }
    }

    /// The poll closed or was deleted: nothing more is sent for it.
    pub fn finish(&mut self, poll: Uuid) {
        self.seen.insert(poll, i64::MAX);
        self.pending.retain(|p| p.poll_id != poll);
    }

    /// Ends the interval: the held updates, one per poll.
    pub fn take(&mut self, now: Instant) -> Vec<Frame> {
        self.gate.flushed(now, !self.pending.is_empty());
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|c| PartyEvent::PollUpdated(c).frame())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(poll: Uuid, version: i64) -> PollCounts {
        PollCounts {
            poll_id: poll,
            version,
            options: None,
            voters_count: i32::try_from(version).unwrap(),
        }
    }

    #[test]
    fn a_vote_storm_costs_one_frame_per_poll_per_interval_with_the_latest_counts() {
        let every = Duration::from_millis(500);
        let t0 = Instant::now();
        let mut t = Throttle::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(
            matches!(t.offer(t0, every, &counts(a, 1)), Offer::Now(f) if f.kind == "poll_updated")
        );
        assert_eq!(
            t.offer(t0, every, &counts(a, 2)),
            Offer::FlushAt(t0 + every)
        );
        // Out of order: version 5 before 3 and 4; the older ones are dropped.
        assert_eq!(t.offer(t0, every, &counts(a, 5)), Offer::Queued);
        assert_eq!(t.offer(t0, every, &counts(a, 3)), Offer::Stale);
        assert_eq!(t.offer(t0, every, &counts(b, 1)), Offer::Queued);
        let frames = t.take(t0 + every);
        assert_eq!(frames.len(), 2, "one per poll");
        assert_eq!(frames[0].data["version"], 5);
        assert_eq!(frames[0].data["voters_count"], 5);
        assert!(t.take(t0 + every).is_empty());
        // A closed poll hears nothing more, even a late update.
        assert_eq!(
            t.offer(t0 + every, every, &counts(b, 2)),
            Offer::FlushAt(t0 + every * 2)
        );
        t.finish(b);
        assert!(t.take(t0 + every * 2).is_empty());
        assert_eq!(t.offer(t0 + every * 9, every, &counts(b, 3)), Offer::Stale);
    }
}

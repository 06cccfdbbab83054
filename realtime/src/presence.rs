//! Presence changes (`user_joined` / `user_left`) coalesced per room, so that a join
//! storm costs O(N) frames instead of O(N²).
//!
//! The first change after a quiet interval goes out at once, as it is. Changes that come
//! within `every` of the last frame wait, one entry per user (the latest wins), and go
//! out together when the interval ends: as the single frame when there is one, else as
//! one `presence` frame with the lists (capped at [`LIST_CAP`] each) and exact counts.
//! At most one presence frame per room per interval reaches each socket, however many
//! people arrive; 1,000 members joining one party in ten seconds cost each member about
//! 40 frames instead of 1,000.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;
use wp_shared::frame::Frame;

/// Entries listed in one `presence` frame at the most (per list); the counts are exact.
pub const LIST_CAP: usize = 50;

/// The user a `user_joined` / `user_left` frame is about; `None` for any other frame.
pub fn user_of(frame: &Frame) -> Option<Uuid> {
    if !matches!(frame.kind.as_str(), "user_joined" | "user_left") {
        return None;
    }
    frame.data["user"]["id"].as_str()?.parse().ok()
}

struct Entry {
    user: Uuid,
    frame: Frame,
    /// The socket that caused the change (it does not get its own `user_joined`).
    except: Option<u64>,
}

/// What the room does with a change just offered.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Send it now (the room was quiet): the frame, and the socket to skip.
    Now(Frame, Option<u64>),
    /// Queued, and the first in its interval: flush at this instant.
    FlushAt(Instant),
    /// Queued behind a flush already scheduled.
    Queued,
}

/// When something coalesced goes out: at once after a quiet interval, else at the end
/// of the interval, in one flush for everything that came within it. Shared by the
/// presence batch and the poll counts ([`crate::polls`]).
#[derive(Default)]
pub struct Gate {
    last_sent: Option<Instant>,
    scheduled: bool,
}

/// What [`Gate::pass`] says.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Send now (the gate was quiet).
    Now,
    /// Hold it; the first held in its interval: flush at this instant.
    FlushAt(Instant),
    /// Hold it behind a flush already scheduled.
    Queued,
}

impl Gate {
    pub fn pass(&mut self, now: Instant, every: Duration) -> Pass {
        let quiet = self.last_sent.is_none_or(|t| now >= t + every);
        if !self.scheduled && quiet {
            self.last_sent = Some(now);
            return Pass::Now;
        }
        if self.scheduled {
            return Pass::Queued;
        }
        self.scheduled = true;
        Pass::FlushAt(self.last_sent.map_or(now, |t| t + every))
    }

    /// The scheduled flush ran at `now`; `sent`: it had something to send.
    pub fn flushed(&mut self, now: Instant, sent: bool) {
        self.scheduled = false;
        if sent {
            self.last_sent = Some(now);
        }
    }
}

/// One room's presence changes waiting for the end of the interval.
#[derive(Default)]
pub struct Batch {
    gate: Gate,
    pending: Vec<Entry>,
}

impl Batch {
    pub fn offer(
        &mut self,
        now: Instant,
        every: Duration,
        user: Uuid,
        frame: Frame,
        except: Option<u64>,
    ) -> Offer {
        let pass = self.gate.pass(now, every);
        if pass == Pass::Now {
            return Offer::Now(frame, except);
        }
        let entry = Entry {
            user,
            frame,
            except,
        };
        match self.pending.iter_mut().find(|e| e.user == user) {
            Some(e) => *e = entry,
            None => self.pending.push(entry),
        }
        match pass {
            Pass::FlushAt(at) => Offer::FlushAt(at),
            _ => Offer::Queued,
        }
    }

    /// Ends the interval: what to send for the changes that waited (`None` if nothing).
    pub fn take(&mut self, now: Instant) -> Option<(Frame, Option<u64>)> {
        self.gate.flushed(now, !self.pending.is_empty());
        if self.pending.is_empty() {
            return None;
        }
        let mut pending = std::mem::take(&mut self.pending);
        if pending.len() == 1 {
            let e = pending.remove(0);
            return Some((e.frame, e.except));
        }
        Some((merge(&pending), None))
    }
}

/// The `presence` frame for several changes.
fn merge(entries: &[Entry]) -> Frame {
    let (joined, left): (Vec<&Entry>, Vec<&Entry>) =
        entries.iter().partition(|e| e.frame.kind == "user_joined");
    let list = |es: &[&Entry]| -> Vec<Value> {
        es.iter()
            .take(LIST_CAP)
            .map(|e| e.frame.data.clone())
            .collect()
    };
    Frame::server(
        "presence",
        json!({
            "joined": list(&joined),
            "left": list(&left),
            "joined_count": joined.len(),
            "left_count": left.len(),
            "truncated": joined.len() > LIST_CAP || left.len() > LIST_CAP,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(user: Uuid) -> Frame {
        Frame::server(
            "user_joined",
            json!({ "user": { "id": user, "username": "u" }, "role": "member" }),
        )
    }

    fn left(user: Uuid) -> Frame {
        Frame::server(
            "user_left",
            json!({ "user": { "id": user, "username": "u" } }),
        )
    }

    #[test]
    fn presence_frames_are_recognised_by_their_user() {
        let u = Uuid::now_v7();
        assert_eq!(user_of(&joined(u)), Some(u));
        assert_eq!(user_of(&left(u)), Some(u));
        assert_eq!(
            user_of(&Frame::server("typing", json!({ "user": { "id": u } }))),
            None
        );
        assert_eq!(user_of(&Frame::server("user_left", json!({}))), None);
    }

    #[test]
    fn a_quiet_room_hears_at_once_and_a_storm_once_per_interval() {
        let every = Duration::from_millis(250);
        let t0 = Instant::now();
        let mut b = Batch::default();
        let first = Uuid::now_v7();
        assert!(matches!(
            b.offer(t0, every, first, joined(first), Some(1)),
            Offer::Now(f, Some(1)) if f.kind == "user_joined"
        ));
        // 300 more arrive within the interval: one flush, at its end.
        let users: Vec<Uuid> = (0..300).map(|_| Uuid::now_v7()).collect();
        assert_eq!(
            b.offer(t0, every, users[0], joined(users[0]), Some(2)),
            Offer::FlushAt(t0 + every)
        );
        for (i, u) in users.iter().enumerate().skip(1) {
            assert_eq!(
                b.offer(t0, every, *u, joined(*u), Some(i as u64 + 2)),
                Offer::Queued
            );
        }
        // The first user leaves, then one of the new ones leaves and comes back: the
        // latest change per user is what counts.
        assert_eq!(b.offer(t0, every, first, left(first), None), Offer::Queued);
        b.offer(t0, every, users[5], left(users[5]), None);
        b.offer(t0, every, users[5], joined(users[5]), Some(7));
        let (f, except) = b.take(t0 + every).expect("a frame");
        assert_eq!(except, None, "a merged frame goes to every socket");
        assert_eq!(f.kind, "presence");
        assert_eq!(f.data["joined_count"], 300);
        assert_eq!(f.data["left_count"], 1);
        assert_eq!(f.data["joined"].as_array().unwrap().len(), LIST_CAP);
        assert_eq!(f.data["left"][0]["user"]["id"], first.to_string());
        assert_eq!(f.data["truncated"], true);
        assert!(b.take(t0 + every).is_none(), "nothing twice");

        // Within the next interval, a change waits; a lone change goes out as itself.
        let late = Uuid::now_v7();
        assert_eq!(
            b.offer(t0 + every, every, late, left(late), None),
            Offer::FlushAt(t0 + every * 2)
        );
        let (f, _) = b.take(t0 + every * 2).unwrap();
        assert_eq!(f.kind, "user_left");
        // After a quiet interval, at once again.
        let again = Uuid::now_v7();
        assert!(matches!(
            b.offer(t0 + every * 4, every, again, joined(again), Some(9)),
            Offer::Now(_, Some(9))
        ));
    }
}

//! Delta sync for the mobile apps (`POST /api/mobile/sync/`, seed item 9).
//!
//! Triggers note in `sync_changes`, in each writer's transaction, that an object of a
//! kind (`notification`, `friend`, `party`, `event`, `group`) changed for a user
//! (migration 29). A sync runs in one `REPEATABLE READ` snapshot: it reads the notes of
//! the transactions the client may not have seen — those with an id at or past the
//! `xmin` of the client's previous snapshot, which the cursor carries — and answers each
//! noted object from its current row: still the user's, an upsert; gone or no longer
//! theirs, a tombstone. Every transaction below a snapshot's `xmin` was visible to it,
//! so nothing is missed. Of the transactions at or past `xmin`, the cursor also carries
//! which the previous snapshot saw (all below its `xmax` but the in-progress ones), so a
//! note already sent is not sent again; when more than [`XIP_MAX`] were in progress the
//! cursor keeps only `xmin` and a note may come twice (applying it twice changes
//! nothing).
//!
//! A full resync (the whole current state, `full: true`) answers a first sync, a cursor
//! that does not read, one older than [`RETENTION_DAYS`], or more than [`DELTA_MAX`]
//! changed objects.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// How long notes are kept (the scheduler prunes older ones); an older cursor resyncs.
pub const RETENTION_DAYS: i64 = 30;
/// More changed objects than this since the cursor: a full resync instead.
pub const DELTA_MAX: i64 = 2000;

/// At most this many in-progress transaction ids ride in a cursor.
pub const XIP_MAX: usize = 32;

/// What a cursor holds: the previous snapshot (`xmin`, and when known `xmax` and the
/// transactions in progress) and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "x")]
    pub xmin: u64,
    /// The snapshot's `xmax`; `None`: every transaction from `xmin` on is unseen.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub xmax: Option<u64>,
    /// The transactions in progress in the snapshot (between `xmin` and `xmax`).
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub xip: Vec<u64>,
    #[serde(rename = "t")]
    pub at: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// The cursor in `s`, if it reads.
    pub fn decode(s: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()?;
        let c: Self = serde_json::from_slice(&bytes).ok()?;
        // A snapshot that cannot have been ours does not read.
        let sane = match c.xmax {
            None => c.xip.is_empty(),
            Some(xmax) => {
                xmax >= c.xmin
                    && c.xip.len() <= XIP_MAX
                    && c.xip.iter().all(|x| (c.xmin..xmax).contains(x))
            }
        };
        sane.then_some(c)
    }

    /// Whether its notes may already be pruned at `now`.
    pub fn too_old(&self, now: DateTime<Utc>) -> bool {
        self.at < (now - chrono::TimeDelta::days(RETENTION_DAYS)).timestamp()
    }
}

/// Starts the sync's snapshot on `conn` (a transaction not yet used): `REPEATABLE READ,
/// READ ONLY`, and returns the cursor of this snapshot.
pub async fn begin(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<Cursor> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *conn)
        .await?;
    let (xmin, xmax, xip): (i64, i64, Vec<i64>) = sqlx::query_as(
        "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,
                ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) x LIMIT $1)
           FROM pg_current_snapshot() s",
    )
    .bind(XIP_MAX as i64 + 1)
    .fetch_one(&mut *conn)
    .await?;
    let id = |x: i64| u64::try_from(x).unwrap_or(0);
    let exact = xip.len() <= XIP_MAX;
    Ok(Cursor {
        xmin: id(xmin),
        xmax: exact.then(|| id(xmax)),
        xip: if exact {
            xip.into_iter().map(id).collect()
        } else {
            Vec::new()
        },
        at: now.timestamp(),
    })
}

/// The objects noted as changed for `user` since `since`, by kind; `None` when more than
/// [`DELTA_MAX`] (resync in full).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    pub notifications: Vec<Uuid>,
    pub friends: Vec<Uuid>,
    pub parties: Vec<Uuid>,
    pub events: Vec<Uuid>,
    pub groups: Vec<Uuid>,
}

pub async fn changed(
    conn: &mut PgConnection,
    user: Uuid,
    since: &Cursor,
) -> sqlx::Result<Option<Changed>> {
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT DISTINCT kind, object_id FROM sync_changes
          WHERE user_id = $1 AND txid >= $2::text::xid8
            AND ($4::text IS NULL OR txid >= $4::text::xid8
                 OR txid = ANY($5::text[]::xid8[]))
          LIMIT $3",
    )
    .bind(user)
    .bind(since.xmin.to_string())
    .bind(DELTA_MAX + 1)
    .bind(since.xmax.map(|x| x.to_string()))
    .bind(since.xip.iter().map(u64::to_string).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() as i64 > DELTA_MAX {
        return Ok(None);
    }
    let mut c = Changed::default();
    for (kind, id) in rows {
        match kind.as_str() {
            "notification" => c.notifications.push(id),
            "friend" => c.friends.push(id),
            "party" => c.parties.push(id),
            "event" => c.events.push(id),
            "group" => c.groups.push(id),
            _ => {}
        }
    }
    Ok(Some(c))
}

/// `me`'s friends: among `ids`, or all (`None`), by username.
pub async fn friends(
    conn: &mut PgConnection,
    me: Uuid,
    ids: Option<&[Uuid]>,
) -> sqlx::Result<Vec<crate::social::UserSummary>> {
    let rows: Vec<(Uuid, String, String, Option<String>)> = sqlx::query_as(
        "SELECT u.id, u.username, u.display_name, u.avatar_path FROM users u
          WHERE u.id IN (SELECT user_b FROM friendships WHERE user_a = $1
                         UNION SELECT user_a FROM friendships WHERE user_b = $1)
            AND ($2::uuid[] IS NULL OR u.id = ANY($2)) AND u.status <> 'deleted'
          ORDER BY lower(u.username) LIMIT 5000",
    )
    .bind(me)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, u, d, a)| crate::social::UserSummary::new(id, u, d, a.as_deref()))
        .collect())
}

/// The ids of `asked` not among `present`: the tombstones.
pub fn gone<T>(asked: &[Uuid], present: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    let have: std::collections::HashSet<Uuid> = present.iter().map(id).collect();
    asked
        .iter()
        .filter(|a| !have.contains(a))
        .copied()
        .collect()
}

/// Prunes notes older than [`RETENTION_DAYS`] at `now`; how many.
pub async fn prune(db: &sqlx::PgPool, now: DateTime<Utc>) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM sync_changes WHERE at < $1")
        .bind(now - chrono::TimeDelta::days(RETENTION_DAYS))
        .execute(db)
        .await?
        .rows_affected())
}

/// Records that `device` of `user` synced at `now`; false when it is not theirs.
pub async fn touch_device(
    db: &sqlx::PgPool,
    user: Uuid,
    device: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("UPDATE devices SET last_sync_at = $3 WHERE device_id = $1 AND user_id = $2")
            .bind(device)
            .bind(user)
            .bind(now)
            .execute(db)
            .await?
            .rows_affected()
            > 0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_age() {
        let now = Utc::now();
        let c = Cursor {
            xmin: 123_456_789,
            xmax: Some(123_456_795),
            xip: vec![123_456_789, 123_456_790],
            at: now.timestamp(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c.clone()));
        let only_xmin = Cursor {
            xmax: None,
            xip: vec![],
            ..c.clone()
        };
        assert_eq!(Cursor::decode(&only_xmin.encode()), Some(only_xmin));
        assert_eq!(Cursor::decode("not a cursor"), None);
        for bad in [
            Cursor {
                xmax: Some(1),
                ..c.clone()
            },
            Cursor {
                xip: vec![123_456_795],
                ..c.clone()
            },
            Cursor {
                xmax: None,
                ..c.clone()
            },
        ] {
            assert_eq!(Cursor::decode(&bad.encode()), None, "{bad:?}");
        }
        assert!(!c.too_old(now));
        let old = Cursor {
            at: (now - chrono::TimeDelta::days(RETENTION_DAYS + 1)).timestamp(),
            ..c
        };
        assert!(old.too_old(now));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(gone(&[a, b], &[a], |x| *x), vec![b]);
    }
}

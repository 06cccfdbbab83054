//! Answers to an event

use super::*;

/// Lets the first in line on the waitlist take the free places; each is told. The
/// caller holds the event's lock.
pub(super) async fn promote(
    conn: &mut PgConnection,
    id: Uuid,
    title: &str,
) -> sqlx::Result<Vec<i64>> {
    let promoted: Vec<Uuid> = sqlx::query_scalar(
        "WITH free AS (
             SELECT CASE WHEN e.max_attendees IS NULL THEN NULL
                         ELSE GREATEST(e.max_attendees - (SELECT count(*) FROM event_attendees a
                                                          WHERE a.event_id = e.id AND a.status = 'going'), 0)
                    END AS n
               FROM events e WHERE e.id = $1),
         next AS (
             SELECT a.user_id FROM event_attendees a
              WHERE a.event_id = $1 AND a.status = 'waitlisted'
              ORDER BY a.responded_at, a.user_id
              LIMIT (SELECT n FROM free))
         UPDATE event_attendees a SET status = 'going'
           FROM next WHERE a.event_id = $1 AND a.user_id = next.user_id
         RETURNING a.user_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    // A live event's party takes them in too.
    sqlx::query(
        "INSERT INTO party_members (party_id, user_id)
         SELECT e.party_id, u FROM events e, unnest($2::uuid[]) u
          WHERE e.id = $1 AND e.party_id IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&promoted)
    .execute(&mut *conn)
    .await?;
    let mut rows = Vec::with_capacity(promoted.len());
    for user in promoted {
        rows.push(
            crate::events::emit(
                conn,
                "event.promoted",
                None,
                Some(user),
                serde_json::json!({ "event_id": id, "title": title }),
            )
            .await?,
        );
    }
    Ok(rows)
}

/// What an answer did.
#[derive(Debug)]
pub struct Answered {
    /// The caller's status now (`going` may have become `waitlisted` or `pending`).
    pub status: Attendance,
    pub event: Event,
    pub outbox: Vec<i64>,
}

/// Answers an event: `going` (a place, else the waitlist; `pending` first when the event
/// needs approval and `me` was not invited), `maybe` or `declined`. A place given up
/// goes to the first in line.
pub async fn respond(db: &PgPool, me: &Actor, id: Uuid, want: Attendance) -> EventResult<Answered> {
    if !matches!(
        want,
        Attendance::Going | Attendance::Maybe | Attendance::Declined
    ) {
        return Err(invalid("status", "going, maybe or declined."));
    }
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    if matches!(e.status, EventStatus::Ended | EventStatus::Cancelled) {
        return Err(EventError::Conflict {
            code: "event_over",
            message: "This event has ended or was cancelled.",
        });
    }
    let current = e.my_status;
    let organizer = e.organizer.id == me.id;
    let invited: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM event_invitations WHERE event_id = $1 AND user_id = $2)",
    )
    .bind(id)
    .bind(me.id)
    .fetch_one(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    let status = match want {
        Attendance::Going => match current {
            Some(s @ (Attendance::Going | Attendance::Pending | Attendance::Waitlisted)) => s,
            _ if e.require_approval && !organizer && !invited => {
                outbox.push(
                    crate::events::emit(
                        &mut tx,
                        "event.join_request",
                        Some(me.id),
                        Some(e.organizer.id),
                        serde_json::json!({ "event_id": id, "title": e.title }),
                    )
                    .await?,
                );
                Attendance::Pending
            }
            _ if e
                .max_attendees
                .is_some_and(|m| e.attendee_count >= i64::from(m)) =>
            {
                Attendance::Waitlisted
            }
            _ => Attendance::Going,
        },
        other => other,
    };
    if Some(status) != current {
        sqlx::query(
            "INSERT INTO event_attendees (event_id, user_id, status) VALUES ($1, $2, $3)
             ON CONFLICT (event_id, user_id) DO UPDATE SET status = $3, responded_at = now()",
        )
        .bind(id)
        .bind(me.id)
        .bind(status)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE event_invitations SET status = $3
          WHERE event_id = $1 AND user_id = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(me.id)
    .bind(if want == Attendance::Declined {
        "declined"
    } else {
        "accepted"
    })
    .execute(&mut *tx)
    .await?;
    if current == Some(Attendance::Going) && status != Attendance::Going {
        outbox.extend(promote(&mut tx, id, &e.title).await?);
    }
    if status == Attendance::Going
        && let Some(party) = e.party_id
    {
        // A live event's party takes whoever is going.
        sqlx::query(
            "INSERT INTO party_members (party_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(party)
        .bind(me.id)
        .execute(&mut *tx)
        .await?;
    }
    let event = visible(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(Answered {
        status,
        event,
        outbox,
    })
}

/// Takes back `me`'s answer (a place goes to the first in line).
pub async fn leave(db: &PgPool, me: &Actor, id: Uuid) -> EventResult<Vec<i64>> {
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    let was: Option<Attendance> = sqlx::query_scalar(
        "DELETE FROM event_attendees WHERE event_id = $1 AND user_id = $2 RETURNING status",
    )
    .bind(id)
    .bind(me.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(was) = was else {
        return Err(EventError::Conflict {
            code: "not_attending",
            message: "You have not answered this event.",
        });
    };
    let outbox = if was == Attendance::Going {
        promote(&mut tx, id, &e.title).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(outbox)
}

/// The organizer approves (a place, else the waitlist) or rejects (declined) a pending
/// answer; an approved user is told.
pub async fn decide(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    user: Uuid,
    approve: bool,
) -> EventResult<Vec<i64>> {
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    organizer_only(&e, me)?;
    let pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM event_attendees
                         WHERE event_id = $1 AND user_id = $2 AND status = 'pending')",
    )
    .bind(id)
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    if !pending {
        return Err(EventError::NotFound);
    }
    let full = e
        .max_attendees
        .is_some_and(|m| e.attendee_count >= i64::from(m));
    let status = match (approve, full) {
        (false, _) => Attendance::Declined,
        (true, true) => Attendance::Waitlisted,
        (true, false) => Attendance::Going,
    };
    sqlx::query(
        "UPDATE event_attendees SET status = $3, responded_at = now() WHERE event_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    if approve {
        outbox.push(
            crate::events::emit(
                &mut tx,
                "event.approved",
                Some(me.id),
                Some(user),
                serde_json::json!({ "event_id": id, "title": e.title, "status": status }),
            )
            .await?,
        );
    }
    tx.commit().await?;
    Ok(outbox)
}

/// Invites users (the organizer): they may then see the event and answer it without
/// approval; each is told once. Unknown users and users who blocked either side are
/// refused by name.
pub async fn invite(db: &PgPool, me: &Actor, id: Uuid, users: &[Uuid]) -> EventResult<Vec<i64>> {
    if users.is_empty() || users.len() > INVITE_BATCH {
        return Err(invalid("user_ids", "1 to 50 users."));
    }
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    organizer_only(&e, me)?;
    if matches!(e.status, EventStatus::Ended | EventStatus::Cancelled) {
        return Err(EventError::Conflict {
            code: "event_over",
            message: "This event has ended or was cancelled.",
        });
    }
    let ok: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE id = ANY($1) AND status = 'active' AND NOT blocked_between(id, $2)",
    )
    .bind(users)
    .bind(me.id)
    .fetch_all(&mut *tx)
    .await?;
    if let Some(bad) = users.iter().find(|u| !ok.contains(u)) {
        return Err(invalid("user_ids", format!("No such user: {bad}.")));
    }
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO event_invitations (event_id, user_id, invited_by)
         SELECT $1, u, $2 FROM unnest($3::uuid[]) u WHERE u <> $2
         ON CONFLICT DO NOTHING RETURNING user_id",
    )
    .bind(id)
    .bind(me.id)
    .bind(users)
    .fetch_all(&mut *tx)
    .await?;
    let mut outbox = Vec::with_capacity(fresh.len());
    for user in fresh {
        outbox.push(
            crate::events::emit(
                &mut tx,
                "event.invite",
                Some(me.id),
                Some(user),
                serde_json::json!({ "event_id": id, "title": e.title, "start_time": e.start_time }),
            )
            .await?,
        );
    }
    tx.commit().await?;
    Ok(outbox)
}

/// An attendee as listed.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attendee {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub status: Attendance,
    pub responded_at: DateTime<Utc>,
}

/// A page of an event's answers (going first, then maybe; the waitlist in its order;
/// `pending` and `declined` only for the organizer and staff), and the total.
pub async fn attendees(
    conn: &mut PgConnection,
    me: &Actor,
    id: Uuid,
    only: Option<Attendance>,
    limit: i64,
    offset: i64,
) -> EventResult<(Vec<Attendee>, i64)> {
    let e = visible(conn, me, id).await?;
    let organizer = e.organizer.id == me.id || me.is_staff();
    if !organizer && matches!(only, Some(Attendance::Pending | Attendance::Declined)) {
        return Err(EventError::PermissionDenied(
            "Only the organizer sees pending and declined answers.",
        ));
    }
    let cond = "a.event_id = $1 AND ($2::text IS NULL OR a.status = $2)
                AND ($3 OR a.status IN ('going', 'maybe', 'waitlisted'))";
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM event_attendees a WHERE {cond}"
    ))
    .bind(id)
    .bind(only)
    .bind(organizer)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<Attendee> = sqlx::query_as(&format!(
        "SELECT u.id, u.username, u.display_name, u.avatar_path, a.status, a.responded_at
           FROM event_attendees a JOIN users u ON u.id = a.user_id
          WHERE {cond}
          ORDER BY CASE a.status WHEN 'going' THEN 0 WHEN 'maybe' THEN 1 WHEN 'waitlisted' THEN 2
                                 WHEN 'pending' THEN 3 ELSE 4 END, a.responded_at, u.id
          LIMIT $4 OFFSET $5"
    ))
    .bind(id)
    .bind(only)
    .bind(organizer)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, count))
}

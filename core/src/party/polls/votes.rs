//! Voting on an open poll.

use super::*;

/// What a vote did.
#[derive(Debug)]
pub struct Voted {
    pub party: Uuid,
    /// The voter's options now.
    pub my_votes: Vec<Uuid>,
    /// The counts after the vote, for the party's sockets; None when nothing changed.
    pub update: Option<PartyEvent>,
    /// The outbox row of the analytics event (relay it after the commit).
    pub outbox_row: Option<i64>,
}

/// Sets `me`'s vote in `poll` to `choice` (empty: takes the vote back). `in_party`:
/// the poll must be of this party (the socket's), else it is not found. The same
/// choice again changes nothing.
pub async fn vote(
    db: &PgPool,
    me: &Actor,
    poll: Uuid,
    in_party: Option<Uuid>,
    choice: &[Uuid],
) -> PollResult<Voted> {
    // What does not change once the poll exists (its party, kind and options) and who
    // may vote are read before the poll's lock: the lock is held only for the vote.
    let head: Option<(Uuid, bool, bool, Vec<Uuid>)> = sqlx::query_as(
        "SELECT p.party_id, p.multiple_choice, p.hide_results,
                ARRAY(SELECT o.id FROM party_poll_options o WHERE o.poll_id = p.id ORDER BY o.position)
           FROM party_polls p WHERE p.id = $1",
    )
    .bind(poll)
    .fetch_optional(db)
    .await?;
    let Some((party, multiple, hidden, options)) = head else {
        return Err(PollError::NotFound);
    };
    if in_party.is_some_and(|p| p != party) {
        return Err(PollError::NotFound);
    }
    {
        let mut conn = db.acquire().await?;
        crate::party::visible(&mut conn, me, party)
            .await
            .map_err(not_found_as_poll)?
            .member_role()?;
    }
    let mut chosen: Vec<Uuid> = Vec::with_capacity(choice.len());
    for c in choice {
        if !options.contains(c) {
            return Err(invalid(
                "option_ids",
                format!("{c} is not an option of this poll."),
            ));
        }
        if !chosen.contains(c) {
            chosen.push(*c);
        }
    }
    if !multiple && chosen.len() > 1 {
        return Err(invalid("option_ids", "This poll takes one option."));
    }
    // In the poll's order.
    chosen.sort_by_key(|c| options.iter().position(|o| o == c));

    let mut tx = db.begin().await?;
    let open: Option<bool> = sqlx::query_scalar(&format!(
        "SELECT {IS_OPEN} FROM party_polls p WHERE p.id = $1 FOR NO KEY UPDATE"
    ))
    .bind(poll)
    .fetch_optional(&mut *tx)
    .await?;
    match open {
        None => return Err(PollError::NotFound),
        Some(false) => return Err(PollError::Closed),
        Some(true) => {}
    }
    // Read after the lock is held (a statement of its own, so its snapshot sees every
    // vote committed before): the voter's options and the counters, in the poll's order.
    let (before, mut counts): (Vec<Uuid>, Vec<i32>) = sqlx::query_as(
        "SELECT ARRAY(SELECT option_id FROM party_poll_votes WHERE poll_id = $1 AND user_id = $2),
                ARRAY(SELECT votes_count FROM party_poll_options WHERE poll_id = $1 ORDER BY position)",
    )
    .bind(poll)
    .bind(me.id)
    .fetch_one(&mut *tx)
    .await?;
    let removed: Vec<Uuid> = before
        .iter()
        .filter(|o| !chosen.contains(o))
        .copied()
        .collect();
    let added: Vec<Uuid> = chosen
        .iter()
        .filter(|o| !before.contains(o))
        .copied()
        .collect();
    if removed.is_empty() && added.is_empty() {
        tx.rollback().await?;
        return Ok(Voted {
            party,
            my_votes: chosen,
            update: None,
            outbox_row: None,
        });
    }
    // The counters as this vote leaves them.
    for (i, o) in options.iter().enumerate() {
        counts[i] += i32::from(added.contains(o)) - i32::from(removed.contains(o));
    }
    let voters_delta = i32::from(!chosen.is_empty()) - i32::from(!before.is_empty());
    // One statement: the vote rows, the option counters and the poll's version.
    let (version, voters): (i64, i32) = sqlx::query_as(
        "WITH gone AS (
              DELETE FROM party_poll_votes
               WHERE poll_id = $1 AND user_id = $2 AND option_id = ANY($3)),
          fresh AS (
              INSERT INTO party_poll_votes (poll_id, user_id, option_id)
              SELECT $1, $2, unnest($4::uuid[])),
          counted AS (
              UPDATE party_poll_options
                 SET votes_count = votes_count
                     + CASE WHEN id = ANY($4) THEN 1 ELSE 0 END
                     - CASE WHEN id = ANY($3) THEN 1 ELSE 0 END
               WHERE poll_id = $1 AND (id = ANY($3) OR id = ANY($4)))
         UPDATE party_polls SET version = version + 1, voters_count = voters_count + $5
          WHERE id = $1 RETURNING version, voters_count",
    )
    .bind(poll)
    .bind(me.id)
    .bind(&removed)
    .bind(&added)
    .bind(voters_delta)
    .fetch_one(&mut *tx)
    .await?;
    let mut event = AnalyticsEvent::new(
        "poll.vote",
        Some(me.id),
        None,
        serde_json::json!({
            "poll_id": poll, "option_ids": chosen, "previous": before,
            "retracted": chosen.is_empty(),
        }),
    );
    event.party_id = Some(party);
    let key = AnalyticsEvent::outbox_key(event.event_id);
    let outbox_row = wp_shared::outbox::record_keyed(&mut tx, &event, &key).await?;
    tx.commit().await?;
    Ok(Voted {
        party,
        my_votes: chosen,
        update: Some(PartyEvent::PollUpdated(PollCounts {
            poll_id: poll,
            version,
            options: (!hidden).then(|| {
                options
                    .iter()
                    .zip(counts)
                    .map(|(id, votes_count)| OptionCount {
                        id: *id,
                        votes_count,
                    })
                    .collect()
            }),
            voters_count: voters,
        })),
        outbox_row: Some(outbox_row),
    })
}

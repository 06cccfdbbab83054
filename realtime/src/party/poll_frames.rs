//! Voting on the socket (`poll_vote`): the same rule and transaction as
//! `POST /api/interactive/polls/{id}/respond/` (`wp_core::party::polls::vote`).

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wp_core::party::polls::{self, PollError};
use wp_shared::frame::Frame;

use super::*;
use crate::conn::*;

impl Conn {
    pub(super) async fn poll_vote(&self, value: &Value) -> Result<Vec<Frame>, Frame> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct In {
            poll_id: Uuid,
            option_ids: Option<Vec<Uuid>>,
            option_id: Option<Uuid>,
        }
        let d: In = data(value)?;
        let choice = match (d.option_ids, d.option_id) {
            (Some(ids), None) if !ids.is_empty() && ids.len() <= polls::OPTIONS_MAX => ids,
            (None, Some(id)) => vec![id],
            _ => {
                return Err(err(
                    "invalid_data",
                    "data.option_ids: 1 to 10 option ids (or one `option_id`).",
                ));
            }
        };
        let voted = polls::vote(
            &self.rt.ctx.db,
            &self.me,
            d.poll_id,
            Some(self.party),
            &choice,
        )
        .await
        .map_err(|e| match e {
            PollError::NotFound => err("invalid_data", "data.poll_id: no such poll in this party."),
            PollError::Closed => err("poll_closed", "This poll is closed."),
            PollError::Invalid { field, message } => {
                err("invalid_data", format!("data.{field}: {message}"))
            }
            PollError::Party(_) => err("not_a_member", "You are no longer in this party."),
            other => internal(&other),
        })?;
        if let Some(row) = voted.outbox_row {
            wp_shared::outbox::relay(&self.rt.ctx.db, &self.rt.ctx.enqueuer, &[row]).await;
        }
        let changed = voted.update.is_some();
        if let Some(update) = voted.update {
            self.rt.emit(self.party, update, None).await;
        }
        Ok(vec![Frame::server(
            "poll_voted",
            json!({ "poll_id": d.poll_id, "option_ids": voted.my_votes, "changed": changed }),
        )])
    }
}

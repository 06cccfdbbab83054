//! One-time socket tickets: a signed-in client trades its access token for a ticket
//! (`POST /api/auth/ws-ticket/`) and opens a socket with `?ticket=`, so no token sits in
//! a URL that proxies log. A ticket is 256 random bits, works once, within
//! [`TICKET_TTL_SECS`]; Redis holds it (by its hash) with the user and session it
//! stands for.

use redis::aio::ConnectionManager;
use uuid::Uuid;

/// How long a ticket waits to be used.
pub const TICKET_TTL_SECS: u64 = 30;

fn key(prefix: &str, ticket: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    format!(
        "{prefix}:wst:{}",
        URL_SAFE_NO_PAD.encode(super::tokens::token_hash(ticket))
    )
}

/// A new ticket for `user`'s `session`.
pub async fn issue(
    redis: &mut ConnectionManager,
    prefix: &str,
    user: Uuid,
    session: Uuid,
) -> redis::RedisResult<String> {
    let ticket = super::tokens::random_token();
    redis::cmd("SET")
        .arg(key(prefix, &ticket))
        .arg(format!("{user}:{session}"))
        .arg("EX")
        .arg(TICKET_TTL_SECS)
        .query_async::<()>(redis)
        .await?;
    Ok(ticket)
}

/// Spends a ticket: the user and session it stands for, or None (unknown, used or
/// expired). Atomic: of two sockets opened with one ticket, one gets it.
pub async fn redeem(
    redis: &mut ConnectionManager,
    prefix: &str,
    ticket: &str,
) -> redis::RedisResult<Option<(Uuid, Uuid)>> {
    let value: Option<String> = redis::cmd("GETDEL")
        .arg(key(prefix, ticket.trim()))
        .query_async(redis)
        .await?;
    Ok(value.and_then(|v| {
        let (u, s) = v.split_once(':')?;
        Some((u.parse().ok()?, s.parse().ok()?))
    }))
}

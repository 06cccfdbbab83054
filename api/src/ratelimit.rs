//! Rate limits held in Redis, so they hold across API replicas. Fixed windows: the
//! first hit of a window starts it; past `limit` hits the caller gets 429 with
//! `Retry-After` = the rest of the window. Login and 2FA clear their counter on
//! success, so for them the limit counts failures in a row.

use std::time::Duration;

use crate::{error::AppError, state::AppState};

/// A limit: at most `limit` hits per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub name: &'static str,
    pub limit: u32,
    pub window: Duration,
}

/// Failed sign-ins per address (successes do not count: behind one NAT a whole office
/// signs in).
pub const LOGIN_PER_IP: Limit = Limit {
    name: "login-ip",
    limit: 30,
    window: Duration::from_secs(300),
};
pub const LOGIN_PER_ACCOUNT: Limit = Limit {
    name: "login-acct",
    limit: 20,
    window: Duration::from_secs(300),
};
/// Password checks by a signed-in user (password or email change, deletion): as many
/// as a sign-in gets; a right password clears the count.
pub const PASSWORD_CHECK_PER_USER: Limit = Limit {
    name: "pw-check-user",
    limit: 20,
    window: Duration::from_secs(300),
};
/// Attempts to join a party with an invite code, per user (a code that works clears
/// it) and per address.
pub const INVITE_CODE_PER_USER: Limit = Limit {
    name: "invite-code-user",
    limit: 10,
    window: Duration::from_secs(600),
};
pub const INVITE_CODE_PER_IP: Limit = Limit {
    name: "invite-code-ip",
    limit: 200,
    window: Duration::from_secs(600),
};
/// Writes one user may make (429 with `Retry-After` past them): enough for any person,
/// too few for a spammer.
pub const FRIEND_REQUEST_PER_USER: Limit = Limit {
    name: "friend-request-user",
    limit: 30,
    window: Duration::from_secs(3600),
};
/// Comments per user and minute, `COMMENTS_PER_MINUTE` of them.
pub fn comments_per_user(config: &wp_shared::Config) -> Limit {
    Limit {
        name: "comment-user",
        limit: config.comments_per_minute,
        window: Duration::from_secs(60),
    }
}
pub const REGISTER_PER_IP: Limit = Limit {
    name: "register-ip",
    limit: 10,
    window: Duration::from_secs(3600),
};
pub const RESET_PER_IP: Limit = Limit {
    name: "reset-ip",
    limit: 10,
    window: Duration::from_secs(3600),
};
pub const RESET_PER_ACCOUNT: Limit = Limit {
    name: "reset-acct",
    limit: 3,
    window: Duration::from_secs(3600),
};
pub const TWO_FACTOR_PER_USER: Limit = Limit {
    name: "2fa-user",
    limit: 5,
    window: Duration::from_secs(300),
};
pub const EMAIL_SEND_PER_USER: Limit = Limit {
    name: "email-user",
    limit: 5,
    window: Duration::from_secs(3600),
};

fn key(state: &AppState, limit: &Limit, subject: &str) -> String {
    format!(
        "{}:rl:{}:{}",
        state.config.redis_prefix,
        limit.name,
        subject.to_lowercase()
    )
}

/// Counts a hit for `subject` (an IP, an account) and fails with 429 past the limit.
pub async fn hit(state: &AppState, limit: &Limit, subject: &str) -> Result<(), AppError> {
    let mut conn = state.redis.clone();
    let (n, ttl_ms) =
        wp_shared::redis_conn::window_hit(&mut conn, &key(state, limit, subject), limit.window)
            .await?;
    over(state, limit, n, ttl_ms)
}

/// 429 with the rest of the window once `n` hits pass what `limit` allows.
fn over(state: &AppState, limit: &Limit, n: u32, ttl_ms: i64) -> Result<(), AppError> {
    if n > limit
        .limit
        .saturating_mul(state.config.rate_limit_multiplier)
    {
        let secs = u64::try_from(ttl_ms.max(1000))
            .unwrap_or(1000)
            .div_ceil(1000);
        return Err(AppError::RateLimited {
            retry_after: Duration::from_secs(secs),
        });
    }
    Ok(())
}

/// Fails with 429 when `subject` is already past the limit, without counting this
/// request (for limits that count failures only: the caller [`hit`]s when it fails).
pub async fn peek(state: &AppState, limit: &Limit, subject: &str) -> Result<(), AppError> {
    let mut conn = state.redis.clone();
    let (n, ttl_ms): (Option<u32>, i64) = redis::pipe()
        .get(key(state, limit, subject))
        .pttl(key(state, limit, subject))
        .query_async(&mut conn)
        .await?;
    // Would one more hit pass it?
    over(state, limit, n.unwrap_or(0).saturating_add(1), ttl_ms)
}

/// Forgets the hits of `subject` (a successful login clears its failures).
pub async fn clear(state: &AppState, limit: &Limit, subject: &str) -> Result<(), AppError> {
    let mut conn = state.redis.clone();
    redis::cmd("DEL")
        .arg(key(state, limit, subject))
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}

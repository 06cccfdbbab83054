//! Redis connections.

use std::time::Duration;

use apalis_redis::ConnectionManager;
use redis::aio::ConnectionManagerConfig;

use crate::config::Config;

/// Whether `e` means the connection was lost (cut, refused, an I/O failure) rather
/// than a command failing: what comes back once the connection is made again.
pub fn is_connection_lost(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// A multiplexed, auto-reconnecting connection.
pub async fn connect(config: &Config) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client, cfg).await
}

/// Takes a lock `key` for `ttl` if nobody holds it (`SET NX EX`). Returns whether it was
/// taken. Used to let exactly one scheduler replica fire a tick.
pub async fn try_lock(
    conn: &mut ConnectionManager,
    key: &str,
    holder: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let res: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(holder)
        .arg("NX")
        .arg("EX")
        .arg(ttl.as_secs().max(1))
        .query_async(conn)
        .await?;
    Ok(res.is_some())
}

static WINDOW_HIT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"local n = redis.call('INCR', KEYS[1])
          if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
          local ttl = redis.call('PTTL', KEYS[1])
          if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
          return {n, ttl}",
    )
});

/// Counts one hit in the fixed window kept at `key` (opened by the first hit, `window`
/// long); returns the hits so far in it and the milliseconds until it ends. The rate
/// limits of the API and of the sockets count with it.
pub async fn window_hit(
    conn: &mut ConnectionManager,
    key: &str,
    window: std::time::Duration,
) -> redis::RedisResult<(u32, i64)> {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    WINDOW_HIT.key(key).arg(window_ms).invoke_async(conn).await
}

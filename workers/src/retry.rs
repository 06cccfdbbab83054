//! The one give-up rule of every queue: a failed job is retried (with the backend's
//! backoff) until its `JOB_MAX_ATTEMPTS`-th attempt fails, and then parked in its
//! queue's dead set, to be listed and replayed by admins once the cause is fixed.
//! (apalis-redis on its own retries 25 times whatever the configuration says.)
//!
//! An attempt that failed because PostgreSQL, Redis, the SMTP server or ClickHouse
//! could not be reached says
//! nothing about the job: it does not count toward `JOB_MAX_ATTEMPTS`, and the worker
//! waits before handing it back ([`outage_pause`]), so an outage of up to about 20
//! minutes delays jobs instead of killing them. (The backend's own backoff is only
//! `attempt` seconds: eight attempts span half a minute.)

use apalis::prelude::{AbortError, Attempt, BoxDynError};
use wp_shared::Config;

/// Whether the attempt running now is the last one.
pub fn last_attempt(config: &Config, attempt: &Attempt) -> bool {
    attempt.current() >= config.job_max_attempts
}

/// A handler's outcome with the rule applied: a failure on the last attempt parks the
/// job (an error that already parks it stays as it is).
pub fn park_when_spent(
    config: &Config,
    attempt: &Attempt,
    queue: &str,
    result: Result<(), BoxDynError>,
) -> Result<(), BoxDynError> {
    match result {
        Err(e) if last_attempt(config, attempt) && !e.is::<AbortError>() && !is_outage(&e) => {
            tracing::warn!(queue, attempt = attempt.current(), error = %e, "job given up; parked in the dead set");
            Err(AbortError::new(e).into())
        }
        other => other,
    }
}

/// A dependency other than PostgreSQL and Redis could not be reached (ClickHouse, say).
#[derive(Debug, thiserror::Error)]
#[error("{0} unreachable: {1}")]
pub struct Unreachable(pub &'static str, pub String);

/// Whether `e` is a dependency outage (PostgreSQL, Redis, the SMTP server or another
/// dependency unreachable, a pool exhausted) rather than a fault of the job.
pub fn is_outage(e: &BoxDynError) -> bool {
    e.is::<Unreachable>()
        || e.downcast_ref::<crate::mailer::SendError>()
            .is_some_and(|s| matches!(s, crate::mailer::SendError::Unreachable(_)))
        || e.downcast_ref::<sqlx::Error>()
            .is_some_and(wp_shared::db::is_unavailable)
        || e.downcast_ref::<redis::RedisError>()
            .is_some_and(|r| wp_shared::redis_conn::is_connection_lost(r) || r.is_timeout())
}

/// How long a worker holds a job that failed on an outage before handing it back:
/// doubling from 1 s with the attempts, at most a minute. The slot it holds could do
/// nothing useful meanwhile: every job needs the dependency that is down.
pub fn outage_pause(attempt: &Attempt) -> std::time::Duration {
    let n = u32::try_from(attempt.current().min(6)).unwrap_or(6);
    std::time::Duration::from_secs((1u64 << n).min(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> BoxDynError {
        Box::new(e)
    }

    #[test]
    fn outages_are_told_from_faults() {
        assert!(is_outage(&boxed(sqlx::Error::PoolTimedOut)));
        assert!(is_outage(&boxed(sqlx::Error::Io(std::io::Error::other(
            "reset"
        )))));
        assert!(!is_outage(&boxed(sqlx::Error::RowNotFound)));
        assert!(!is_outage(&boxed(std::io::Error::other("smtp said no"))));
        assert!(is_outage(&boxed(crate::mailer::SendError::Unreachable(
            "connection refused".into()
        ))));
        assert!(!is_outage(&boxed(crate::mailer::SendError::Transient(
            "451 try later".into()
        ))));
        assert!(is_outage(&boxed(Unreachable(
            "clickhouse",
            "refused".into()
        ))));
        let dropped =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_outage(&boxed(dropped)));
    }

    #[test]
    fn an_outage_does_not_spend_the_last_attempt() {
        let config =
            Config::from_lookup(|k| (k == "JOB_MAX_ATTEMPTS").then(|| "2".into())).unwrap();
        let last = Attempt::new_with_value(2);
        let parked = park_when_spent(
            &config,
            &last,
            "email",
            Err(boxed(std::io::Error::other("550"))),
        );
        assert!(parked.unwrap_err().is::<AbortError>());
        let kept = park_when_spent(
            &config,
            &last,
            "email",
            Err(boxed(sqlx::Error::PoolTimedOut)),
        );
        assert!(!kept.unwrap_err().is::<AbortError>());
    }

    #[test]
    fn the_pause_doubles_and_caps() {
        let secs: Vec<u64> = (0..9)
            .map(|n| outage_pause(&Attempt::new_with_value(n)).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}

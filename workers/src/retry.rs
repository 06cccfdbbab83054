//! The one give-up rule of every queue: a failed job is retried (with the backend's
//! backoff) until its `JOB_MAX_ATTEMPTS`-th attempt fails, and then parked in its
//! queue's dead set, to be listed and replayed by admins once the cause is fixed.
//! (apalis-redis on its own retries 25 times whatever the configuration says.)

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
        Err(e) if last_attempt(config, attempt) && !e.is::<AbortError>() => {
            tracing::warn!(queue, attempt = attempt.current(), error = %e, "job given up; parked in the dead set");
            Err(AbortError::new(e).into())
        }
        other => other,
    }
}

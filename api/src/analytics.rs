//! Handing analytics events to the `analytics` queue, and reading ClickHouse. Analytics
//! must never break the request it describes: a failure to enqueue is logged and
//! counted, not returned.

use wp_shared::jobs::AnalyticsEvent;

use crate::{error::AppError, state::AppState};

pub async fn record(state: &AppState, event: AnalyticsEvent) {
    if let Err(e) = state.enqueuer.push(event).await {
        tracing::warn!(error = %e, "analytics event dropped");
    }
}

/// The answer of a ClickHouse read within `CLICKHOUSE_TIMEOUT_SECS`; a 503 naming
/// ClickHouse when it fails or does not answer in time.
pub async fn clickhouse_answer<T>(
    state: &AppState,
    query: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, AppError> {
    tokio::time::timeout(state.config.clickhouse_timeout, query)
        .await
        .map_err(|_| clickhouse_late(state))?
        .map_err(|e| AppError::Unavailable {
            what: "clickhouse",
            cause: e.to_string(),
        })
}

/// The 503 for a ClickHouse read not answered within `CLICKHOUSE_TIMEOUT_SECS`.
pub fn clickhouse_late(state: &AppState) -> AppError {
    AppError::Unavailable {
        what: "clickhouse",
        cause: format!(
            "no answer within {} s",
            state.config.clickhouse_timeout.as_secs()
        ),
    }
}

//! Handing analytics events to the `analytics` queue. Analytics must never break the
//! request it describes: a failure to enqueue is logged and counted, not returned.

use wp_shared::jobs::AnalyticsEvent;

use crate::state::AppState;

pub async fn record(state: &AppState, event: AnalyticsEvent) {
    if let Err(e) = state.enqueuer.push(event).await {
        tracing::warn!(error = %e, "analytics event dropped");
    }
}

//! Analytics (seed item 11): the playback events clients send, and the reads of the
//! ClickHouse rollups (`clickhouse/0002_video_rollups.sql`) behind the analytics API.
//! The SQL lives in `clickhouse/queries/`, one file per query, so CI runs the very text
//! the API sends on both ClickHouse engines (docs/analytics.md).

pub mod behavior;
pub mod ingest;
pub mod live;
pub mod predict;
pub mod retention;
pub mod seed;
pub mod video;

use chrono::{DateTime, Utc};

/// A query of `clickhouse/queries/` as sent: its comment lines dropped (a `?` in a
/// comment would take a bound value), `{bucket}` replaced by `bucket`.
pub fn query_text(file: &str, bucket: &str) -> String {
    file.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{bucket}", bucket)
}

/// Seconds since the epoch, for `toDateTime(?)` (ClickHouse `DateTime` is 32-bit).
pub fn ch_time(t: DateTime<Utc>) -> u32 {
    u32::try_from(t.timestamp().max(0)).unwrap_or(u32::MAX)
}

/// `YYYY-MM-DD`, for `toDate(?)`.
pub fn ch_day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_text_drops_comments_and_fills_the_bucket() {
        let q = query_text(
            "-- a comment? with a bind\nSELECT {bucket} AS at\nFROM t -- kept\n",
            "toStartOfDay(hour)",
        );
        assert_eq!(q, "SELECT toStartOfDay(hour) AS at\nFROM t -- kept");
        assert!(!q.contains('?'));
    }
}

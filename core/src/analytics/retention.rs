//! Retention in ClickHouse without a TTL clause (18.16 has none): the scheduler's
//! `prune-analytics` drops whole partitions past their time — raw `events` months
//! older than `ANALYTICS_RAW_RETENTION_MONTHS`, `minute_activity` days before
//! yesterday. The rollups are kept whole (they are small and are the history).

use chrono::{Datelike, Months, NaiveDate, TimeDelta};
use serde::Deserialize;

/// Days of `minute_activity` kept: today and yesterday.
pub const MINUTE_DAYS: i64 = 2;

#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct Part {
    pub table: String,
    pub partition_id: String,
}

/// The `ALTER TABLE … DROP PARTITION …` statements for `parts` at `today`.
pub fn to_drop(parts: &[Part], today: NaiveDate, raw_months: u32) -> Vec<String> {
    let first_kept_month = today
        .with_day(1)
        .and_then(|d| d.checked_sub_months(Months::new(raw_months.saturating_sub(1))))
        .map(|d| d.year() as u32 * 100 + d.month());
    let first_kept_day = today - TimeDelta::days(MINUTE_DAYS - 1);
    let mut out: Vec<String> = parts
        .iter()
        .filter_map(|p| match p.table.as_str() {
            "events" if raw_months > 0 => {
                let month: u32 = p.partition_id.parse().ok()?;
                (month < first_kept_month?)
                    .then(|| format!("ALTER TABLE events DROP PARTITION {month}"))
            }
            "minute_activity" => {
                let day = NaiveDate::parse_from_str(&p.partition_id, "%Y%m%d").ok()?;
                (day < first_kept_day)
                    .then(|| format!("ALTER TABLE minute_activity DROP PARTITION '{day}'"))
            }
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Drops what is past its time at `today`; the statements run.
pub async fn prune(
    ch: &clickhouse::Client,
    today: NaiveDate,
    raw_months: u32,
) -> Result<Vec<String>, String> {
    let parts = ch
        .query(
            "SELECT DISTINCT table, partition_id FROM system.parts
              WHERE database = currentDatabase() AND active
                AND table IN ('events', 'minute_activity')",
        )
        .fetch_all::<Part>()
        .await
        .map_err(|e| e.to_string())?;
    let statements = to_drop(&parts, today, raw_months);
    for s in &statements {
        ch.query(s).execute().await.map_err(|e| e.to_string())?;
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_months_and_days_go_the_rest_stays() {
        let part = |table: &str, id: &str| Part {
            table: table.to_owned(),
            partition_id: id.to_owned(),
        };
        let parts = [
            part("events", "202410"),
            part("events", "202411"),
            part("events", "202412"),
            part("events", "202612"),
            part("minute_activity", "20261130"),
            part("minute_activity", "20261202"),
            part("minute_activity", "20261203"),
            part("video_hourly", "202401"),
        ];
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        assert_eq!(
            to_drop(&parts, today, 25),
            [
                "ALTER TABLE events DROP PARTITION 202410",
                "ALTER TABLE events DROP PARTITION 202411",
                "ALTER TABLE minute_activity DROP PARTITION '2026-11-30'",
            ]
        );
        assert_eq!(
            to_drop(&parts, today, 0).len(),
            1,
            "0 months: raw events kept"
        );
        assert_eq!(to_drop(&parts, today, 1).len(), 4, "only this month kept");
    }
}

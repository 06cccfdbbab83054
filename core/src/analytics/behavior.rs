//! User behaviour for staff (`GET /api/analytics/user-behavior/`): daily, weekly and
//! monthly active users and stickiness, new vs returning users per day, weekly
//! cohorts by weeks since registration, the features used (ClickHouse rollups of
//! migration 3); the funnel register → verify → first party → second party, the time
//! to a first party and the party sizes (PostgreSQL, where memberships live).

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{query_text, video::AnalyticsError};

/// The longest range, days.
pub const RANGE_MAX_DAYS: i64 = 400;
/// The default range: this many days up to today.
pub const RANGE_DEFAULT_DAYS: i64 = 30;

/// Whole days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Days {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Days {
    /// The days of `from`/`to` with `today` (default: the last 30 days).
    pub fn new(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<Self, AnalyticsError> {
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to - TimeDelta::days(RANGE_DEFAULT_DAYS - 1));
        let invalid = |field, message| Err(AnalyticsError::Invalid { field, message });
        if from > to {
            return invalid("from", "On or before `to`.");
        }
        if (to - from).num_days() >= RANGE_MAX_DAYS {
            return invalid("from", "At most 400 days up to `to`.");
        }
        Ok(Self { from, to })
    }

    fn ch(&self) -> (String, String) {
        (self.from.to_string(), self.to.to_string())
    }
}

/// Active users at the range's last day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, clickhouse::Row, Deserialize)]
pub struct ActiveUsers {
    /// Users who caused any event that day.
    pub dau: u64,
    /// In the 7 days up to it.
    pub wau: u64,
    /// In the 30 days up to it.
    pub mau: u64,
}

/// One day of activity.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Day {
    pub date: String,
    pub active_users: u64,
    /// Active and registered that day.
    pub new_users: u64,
    /// Active and registered before.
    pub returning_users: u64,
}

/// A weekly cohort: the users registered in one week (from Monday), and how many of
/// them were active in each week since.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Cohort {
    /// The week's Monday.
    pub cohort: String,
    pub users: u64,
    /// Active users in week 0 (the registration week), 1, 2, …
    pub active: Vec<u64>,
    /// The same as shares of `users`.
    pub retention: Vec<f64>,
}

/// The funnel of the users registered in the range; each step counts those who also
/// took every step before it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Funnel {
    pub registered: i64,
    pub verified_email: i64,
    pub first_party: i64,
    pub second_party: i64,
}

/// From registration to the first party joined, among those who joined one.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TimeToFirstParty {
    pub users: i64,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
}

/// Parties created in the range by their members now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PartySize {
    /// `1`, `2`, `3-5`, `6-10`, `11-20`, `21+`.
    pub members: String,
    pub parties: i64,
}

/// A kind of event over the range: a feature used.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, clickhouse::Row, Deserialize)]
pub struct Feature {
    pub event_type: String,
    pub events: u64,
    pub users: u64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Behavior {
    pub days: Days,
    pub active: ActiveUsers,
    /// `dau / mau` (0 without monthly users).
    pub stickiness: f64,
    pub daily: Vec<Day>,
    pub cohorts: Vec<Cohort>,
    pub funnel: Funnel,
    pub time_to_first_party: TimeToFirstParty,
    pub party_sizes: Vec<PartySize>,
    pub features: Vec<Feature>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct DayRow {
    date: String,
    active_users: u64,
    new_users: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct CohortSizeRow {
    cohort: String,
    cohort_users: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct CohortRow {
    cohort: String,
    week: u32,
    active_users: u64,
}

/// Reads the behaviour over `days`.
pub async fn read(
    db: &sqlx::PgPool,
    ch: &clickhouse::Client,
    days: Days,
) -> Result<Behavior, AnalyticsError> {
    let (d0, d1) = days.ch();
    let q = |file: &str| ch.query(&query_text(file, ""));
    let mut active = q(include_str!(
        "../../../clickhouse/queries/behavior_active.sql"
    ));
    for _ in 0..4 {
        active = active.bind(&d1);
    }
    let active = active.fetch_all::<ActiveUsers>();
    let daily = q(include_str!(
        "../../../clickhouse/queries/behavior_daily.sql"
    ))
    .bind(&d0)
    .bind(&d1)
    .fetch_all::<DayRow>();
    let sizes = q(include_str!(
        "../../../clickhouse/queries/behavior_cohort_sizes.sql"
    ))
    .bind(&d0)
    .bind(&d1)
    .fetch_all::<CohortSizeRow>();
    let cohorts = q(include_str!(
        "../../../clickhouse/queries/behavior_cohorts.sql"
    ))
    .bind(&d0)
    .bind(&d1)
    .bind(&d0)
    .bind(&d1)
    .fetch_all::<CohortRow>();
    let features = q(include_str!(
        "../../../clickhouse/queries/behavior_features.sql"
    ))
    .bind(&d0)
    .bind(&d1)
    .fetch_all::<Feature>();
    let ch_reads = async { tokio::try_join!(active, daily, sizes, cohorts, features) };
    let pg_reads = async { tokio::try_join!(funnel(db, days), party_sizes(db, days)) };
    let (ch_answers, pg_answers) = tokio::join!(ch_reads, pg_reads);
    let (active, daily, sizes, cohorts, features) = ch_answers?;
    let ((funnel, time_to_first_party), party_sizes) = pg_answers?;
    let active = active.into_iter().next().unwrap_or(ActiveUsers {
        dau: 0,
        wau: 0,
        mau: 0,
    });
    Ok(Behavior {
        days,
        stickiness: if active.mau == 0 {
            0.0
        } else {
            active.dau as f64 / active.mau as f64
        },
        active,
        daily: daily
            .into_iter()
            .map(|d| Day {
                date: d.date,
                active_users: d.active_users,
                new_users: d.new_users,
                returning_users: d.active_users.saturating_sub(d.new_users),
            })
            .collect(),
        cohorts: assemble_cohorts(&sizes, &cohorts),
        funnel,
        time_to_first_party,
        party_sizes,
        features,
    })
}

fn assemble_cohorts(sizes: &[CohortSizeRow], rows: &[CohortRow]) -> Vec<Cohort> {
    let mut by: BTreeMap<&str, Cohort> = sizes
        .iter()
        .map(|s| {
            (
                s.cohort.as_str(),
                Cohort {
                    cohort: s.cohort.clone(),
                    users: s.cohort_users,
                    active: Vec::new(),
                    retention: Vec::new(),
                },
            )
        })
        .collect();
    for r in rows {
        if let Some(c) = by.get_mut(r.cohort.as_str()) {
            let week = r.week as usize;
            if c.active.len() <= week {
                c.active.resize(week + 1, 0);
            }
            c.active[week] = r.active_users;
        }
    }
    by.into_values()
        .map(|mut c| {
            c.retention = c
                .active
                .iter()
                .map(|&a| {
                    if c.users == 0 {
                        0.0
                    } else {
                        (a as f64 / c.users as f64).min(1.0)
                    }
                })
                .collect();
            c
        })
        .collect()
}

/// `[from 00:00, to + 1 day 00:00)` in UTC.
fn bounds(days: Days) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    (start(days.from), start(days.to) + TimeDelta::days(1))
}

async fn funnel(
    db: &sqlx::PgPool,
    days: Days,
) -> Result<(Funnel, TimeToFirstParty), AnalyticsError> {
    let (t0, t1) = bounds(days);
    let row: (i64, i64, i64, i64, i64, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE verified),
                count(*) FILTER (WHERE verified AND parties >= 1),
                count(*) FILTER (WHERE verified AND parties >= 2),
                count(first_party),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) FILTER (WHERE first_party IS NOT NULL),
                percentile_cont(0.9) WITHIN GROUP (ORDER BY hours) FILTER (WHERE first_party IS NOT NULL)
           FROM (SELECT u.email_verified_at IS NOT NULL AS verified,
                        m.parties, m.first_party,
                        extract(epoch FROM m.first_party - u.created_at) / 3600.0 AS hours
                   FROM users u
                   LEFT JOIN LATERAL (SELECT count(*) AS parties, min(joined_at) AS first_party
                                        FROM party_members WHERE user_id = u.id) m ON TRUE
                  WHERE u.created_at >= $1 AND u.created_at < $2 AND u.status <> 'deleted') s",
    )
    .bind(t0)
    .bind(t1)
    .fetch_one(db)
    .await?;
    Ok((
        Funnel {
            registered: row.0,
            verified_email: row.1,
            first_party: row.2,
            second_party: row.3,
        },
        TimeToFirstParty {
            users: row.4,
            median_hours: row.5,
            p90_hours: row.6,
        },
    ))
}

async fn party_sizes(db: &sqlx::PgPool, days: Days) -> Result<Vec<PartySize>, AnalyticsError> {
    let (t0, t1) = bounds(days);
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CASE WHEN n <= 1 THEN '1' WHEN n = 2 THEN '2' WHEN n <= 5 THEN '3-5'
                     WHEN n <= 10 THEN '6-10' WHEN n <= 20 THEN '11-20' ELSE '21+' END AS size,
                count(*)
           FROM (SELECT (SELECT count(*) FROM party_members m WHERE m.party_id = p.id) AS n
                   FROM parties p WHERE p.created_at >= $1 AND p.created_at < $2) s
          GROUP BY 1",
    )
    .bind(t0)
    .bind(t1)
    .fetch_all(db)
    .await?;
    Ok(["1", "2", "3-5", "6-10", "11-20", "21+"]
        .into_iter()
        .map(|size| PartySize {
            members: size.to_owned(),
            parties: rows.iter().find(|(s, _)| s == size).map_or(0, |(_, n)| *n),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_default_and_refuse() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let d = Days::new(None, None, today).unwrap();
        assert_eq!((d.from, d.to), (today - TimeDelta::days(29), today));
        assert!(Days::new(Some(today), Some(today - TimeDelta::days(1)), today).is_err());
        assert!(Days::new(Some(today - TimeDelta::days(400)), None, today).is_err());
        assert!(Days::new(Some(today - TimeDelta::days(399)), None, today).is_ok());
    }

    #[test]
    fn cohorts_fill_missing_weeks_with_zero() {
        let sizes = [CohortSizeRow {
            cohort: "2026-11-16".into(),
            cohort_users: 4,
        }];
        let rows = [
            CohortRow {
                cohort: "2026-11-16".into(),
                week: 0,
                active_users: 4,
            },
            CohortRow {
                cohort: "2026-11-16".into(),
                week: 2,
                active_users: 1,
            },
        ];
        let c = assemble_cohorts(&sizes, &rows);
        assert_eq!(c[0].active, [4, 0, 1]);
        assert_eq!(c[0].retention, [1.0, 0.0, 0.25]);
    }
}

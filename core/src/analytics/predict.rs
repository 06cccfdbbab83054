//! Forecasts for staff (`GET /api/analytics/predictive/`), each with its method and its
//! error measured by a backtest on the same history (the last stretch held out, the
//! model fitted on what came before):
//! - views per video for the next 7 days: a weekday-adjusted moving average;
//! - distinct viewers per hour for the next 24 hours (capacity): the same hour's mean
//!   over the last 7 days, with the 7-day maximum to plan for;
//! - churn risk per user: a logistic score of three activity features with fixed,
//!   stated weights; backtested by its AUC at telling who went quiet for 14 days.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ch_day, ch_time, query_text, video::AnalyticsError};

/// Videos forecast (the most viewed of the last 28 days).
pub const VIDEOS: usize = 10;
/// Users listed as most at risk.
pub const AT_RISK: usize = 50;
/// Days of view history read: 28 to fit, 7 more to hold out in the backtest.
const VIEW_DAYS: i64 = 35;
/// Days of activity read for churn: 28 of features + 14 of outcome, twice over.
const ACTIVITY_DAYS: i64 = 70;
/// A user who was not active for this many days has churned.
pub const CHURN_DAYS: u16 = 14;

/// A forecast day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DayValue {
    pub date: NaiveDate,
    pub value: f64,
}

/// One video's next 7 days.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VideoForecast {
    pub video_id: Uuid,
    pub title: Option<String>,
    /// Views in the last 28 days.
    pub views_28d: u64,
    pub forecast: Vec<DayValue>,
}

/// How good a forecast was on the held-out stretch.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Backtest {
    /// What was held out.
    pub holdout: String,
    /// Mean absolute error, in the forecast's unit.
    pub mae: f64,
    /// Sum of absolute errors over the sum of actual values (null when nothing happened).
    pub wape: Option<f64>,
    /// Points compared.
    pub points: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ViewsForecast {
    pub method: &'static str,
    pub backtest: Backtest,
    /// All videos together.
    pub total: Vec<DayValue>,
    pub videos: Vec<VideoForecast>,
}

/// An hour ahead.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HourValue {
    pub at: DateTime<Utc>,
    /// Expected distinct viewers (the same hour's mean over the last 7 days).
    pub expected: f64,
    /// The same hour's highest of the last 7 days: plan capacity for it.
    pub plan_for: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CapacityForecast {
    pub method: &'static str,
    pub backtest: Backtest,
    pub hours: Vec<HourValue>,
}

/// The features of the churn score, as of the reference day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct ChurnFeatures {
    /// Days since the user was last active (0: that day).
    pub days_since_active: u16,
    /// Active days in the last 28.
    pub active_days_28: u16,
    /// Active days in the last 14 minus those in the 14 before.
    pub trend: i32,
}

impl ChurnFeatures {
    /// The features from active days (`days_ago` as of the reference day), if the
    /// user was active in the 28 days up to it.
    fn of(days_ago: impl Iterator<Item = u16>) -> Option<Self> {
        let (mut last, mut recent, mut before) = (None::<u16>, 0u16, 0u16);
        for d in days_ago {
            if d < 28 {
                last = Some(last.map_or(d, |l| l.min(d)));
                if d < 14 {
                    recent += 1;
                } else {
                    before += 1;
                }
            }
        }
        Some(Self {
            days_since_active: last?,
            active_days_28: recent + before,
            trend: i32::from(recent) - i32::from(before),
        })
    }

    /// The risk: `1 / (1 + e^-z)`, `z = -2 + 0.35·days_since_active − 0.15·active_days_28
    /// − 0.1·trend` (weights fixed, stated in `CHURN_METHOD`).
    pub fn risk(&self) -> f64 {
        let z = -2.0 + 0.35 * f64::from(self.days_since_active)
            - 0.15 * f64::from(self.active_days_28)
            - 0.1 * f64::from(self.trend);
        1.0 / (1.0 + (-z).exp())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AtRisk {
    pub user_id: Uuid,
    pub username: Option<String>,
    pub risk: f64,
    pub features: ChurnFeatures,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChurnBacktest {
    /// Scored as of 14 days ago, checked against the 14 days since.
    pub holdout: String,
    /// Users scored then (active in the 28 days before).
    pub users: usize,
    /// Of them, the share not active since.
    pub churn_rate: Option<f64>,
    /// The chance a user who churned was scored above one who did not (0.5: no better
    /// than a coin; null without both kinds).
    pub auc: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChurnRisk {
    pub method: &'static str,
    pub backtest: ChurnBacktest,
    /// Users active in the last 28 days, by risk: below 0.3, 0.3 to 0.6, 0.6 and above.
    pub low: usize,
    pub medium: usize,
    pub high: usize,
    /// The most at risk (50 at most).
    pub users: Vec<AtRisk>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Predictions {
    pub generated_at: DateTime<Utc>,
    pub views: ViewsForecast,
    pub capacity: CapacityForecast,
    pub churn: ChurnRisk,
}

const VIEWS_METHOD: &str = "Weekday-adjusted moving average: the mean of the last 7 days' views times the \
weekday's factor (that weekday's mean over the last 28 days over the 28-day mean). Backtest: fitted on the \
28 days before the last 7, scored on those 7 for every video with views.";
const CAPACITY_METHOD: &str = "Seasonal mean: each hour's expected distinct viewers is that hour of day's \
mean over the last 7 days; plan_for is its 7-day maximum. Backtest: the last 24 complete hours forecast from \
the 7 days before them.";
const CHURN_METHOD: &str = "Logistic score of three features of each user's active days (days with any \
event): risk = 1/(1+e^-z), z = -2 + 0.35*days_since_active - 0.15*active_days_28 - 0.1*trend (trend: active \
days in the last 14 minus the 14 before). Fixed weights, not fitted. Churned: no activity for 14 days. \
Backtest: scored as of 14 days ago, AUC against who was then inactive for the 14 days since.";

#[derive(Debug, clickhouse::Row, Deserialize)]
struct DailyViewsRow {
    date: String,
    video: String,
    views: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct HourRow {
    at: u32,
    viewer_count: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct UserDaysRow {
    user: String,
    days_ago: Vec<u16>,
}

/// Forecasts at `now`.
pub async fn read(
    db: &sqlx::PgPool,
    ch: &clickhouse::Client,
    now: DateTime<Utc>,
) -> Result<Predictions, AnalyticsError> {
    let today = now.date_naive();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let hour_start = Utc
        .with_ymd_and_hms(today.year(), today.month(), today.day(), now.hour(), 0, 0)
        .single()
        .unwrap_or(now);
    let views = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/predict_daily_views.sql"),
            "",
        ))
        .bind(ch_time(midnight(today - TimeDelta::days(VIEW_DAYS))))
        .bind(ch_time(midnight(today)))
        .fetch_all::<DailyViewsRow>();
    let hours = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/predict_hourly_viewers.sql"),
            "",
        ))
        .bind(ch_time(hour_start - TimeDelta::hours(8 * 24)))
        .bind(ch_time(hour_start))
        .fetch_all::<HourRow>();
    let last_day = ch_day(now - TimeDelta::days(1));
    let users = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/predict_user_days.sql"),
            "",
        ))
        .bind(&last_day)
        .bind(ch_day(now - TimeDelta::days(ACTIVITY_DAYS)))
        .bind(&last_day)
        .fetch_all::<UserDaysRow>();
    let (views, hours, users) = tokio::try_join!(views, hours, users)?;

    let mut series: HashMap<Uuid, BTreeMap<NaiveDate, f64>> = HashMap::new();
    for r in &views {
        if let (Ok(id), Ok(d)) = (r.video.parse(), r.date.parse::<NaiveDate>()) {
            *series.entry(id).or_default().entry(d).or_default() += r.views as f64;
        }
    }
    let views = forecast_views(db, &series, today).await?;
    let capacity = forecast_capacity(&hours, hour_start);
    let churn = churn(db, &users).await?;
    Ok(Predictions {
        generated_at: now,
        views,
        capacity,
        churn,
    })
}

/// The daily values of `s` for the `n` days before `end` (0 where none).
fn window(s: &BTreeMap<NaiveDate, f64>, end: NaiveDate, n: i64) -> Vec<(NaiveDate, f64)> {
    (1..=n)
        .rev()
        .map(|k| {
            let d = end - TimeDelta::days(k);
            (d, s.get(&d).copied().unwrap_or(0.0))
        })
        .collect()
}

/// The weekday-adjusted moving average fitted on the 28 days before `end`: a forecast
/// for `end + k` days.
fn weekday_model(s: &BTreeMap<NaiveDate, f64>, end: NaiveDate) -> impl Fn(NaiveDate) -> f64 {
    let w = window(s, end, 28);
    let mean28 = w.iter().map(|(_, v)| v).sum::<f64>() / 28.0;
    let level = w[21..].iter().map(|(_, v)| v).sum::<f64>() / 7.0;
    let mut factor = [1.0; 7];
    if mean28 > 0.0 {
        for (k, f) in factor.iter_mut().enumerate() {
            let same: Vec<f64> = w
                .iter()
                .filter(|(d, _)| d.weekday().num_days_from_monday() as usize == k)
                .map(|(_, v)| *v)
                .collect();
            *f = same.iter().sum::<f64>() / same.len().max(1) as f64 / mean28;
        }
    }
    move |d: NaiveDate| level * factor[d.weekday().num_days_from_monday() as usize]
}

fn score(pairs: impl Iterator<Item = (f64, f64)>, holdout: &str) -> Backtest {
    let (mut abs, mut actual, mut n) = (0.0, 0.0, 0usize);
    for (forecast, truth) in pairs {
        abs += (forecast - truth).abs();
        actual += truth;
        n += 1;
    }
    Backtest {
        holdout: holdout.to_owned(),
        mae: if n == 0 { 0.0 } else { abs / n as f64 },
        wape: (actual > 0.0).then(|| abs / actual),
        points: n,
    }
}

async fn forecast_views(
    db: &sqlx::PgPool,
    series: &HashMap<Uuid, BTreeMap<NaiveDate, f64>>,
    today: NaiveDate,
) -> Result<ViewsForecast, AnalyticsError> {
    let holdout_end = today;
    let fit_end = today - TimeDelta::days(7);
    let mut pairs = Vec::new();
    for s in series.values() {
        let model = weekday_model(s, fit_end);
        for (d, truth) in window(s, holdout_end, 7) {
            pairs.push((model(d), truth));
        }
    }
    let backtest = score(pairs.into_iter(), "the last 7 complete days");
    let ahead: Vec<NaiveDate> = (0..7).map(|k| today + TimeDelta::days(k)).collect();
    let mut total = vec![0.0; 7];
    let mut ranked: Vec<(Uuid, u64, Vec<f64>)> = series
        .iter()
        .map(|(id, s)| {
            let model = weekday_model(s, today);
            let f: Vec<f64> = ahead.iter().map(|d| model(*d)).collect();
            for (t, v) in total.iter_mut().zip(&f) {
                *t += v;
            }
            let views_28d = window(s, today, 28).iter().map(|(_, v)| *v).sum::<f64>() as u64;
            (*id, views_28d, f)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(VIDEOS);
    let ids: Vec<Uuid> = ranked.iter().map(|r| r.0).collect();
    let titles: HashMap<Uuid, String> =
        sqlx::query_as::<_, (Uuid, String)>("SELECT id, title FROM videos WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(db)
            .await?
            .into_iter()
            .collect();
    let days = |f: &[f64]| {
        ahead
            .iter()
            .zip(f)
            .map(|(d, v)| DayValue {
                date: *d,
                value: *v,
            })
            .collect()
    };
    Ok(ViewsForecast {
        method: VIEWS_METHOD,
        backtest,
        total: days(&total),
        videos: ranked
            .into_iter()
            .map(|(id, views_28d, f)| VideoForecast {
                video_id: id,
                title: titles.get(&id).cloned(),
                views_28d,
                forecast: days(&f),
            })
            .collect(),
    })
}

fn forecast_capacity(rows: &[HourRow], hour_start: DateTime<Utc>) -> CapacityForecast {
    let by: HashMap<i64, f64> = rows
        .iter()
        .map(|r| (i64::from(r.at), r.viewer_count as f64))
        .collect();
    let at = |t: DateTime<Utc>| by.get(&t.timestamp()).copied().unwrap_or(0.0);
    // The same hour on each of the 7 days before `t`.
    let history =
        |t: DateTime<Utc>| -> Vec<f64> { (1..=7).map(|k| at(t - TimeDelta::days(k))).collect() };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let backtest = score(
        (1..=24).map(|k| {
            let t = hour_start - TimeDelta::hours(k);
            (mean(&history(t)), at(t))
        }),
        "the last 24 complete hours",
    );
    let hours = (0..24)
        .map(|k| {
            let t = hour_start + TimeDelta::hours(k);
            // The same hour on each of the 7 days before (all complete: k < 24).
            let h = history(t);
            HourValue {
                at: t,
                expected: mean(&h),
                plan_for: h.iter().copied().fold(0.0, f64::max) as u64,
            }
        })
        .collect();
    CapacityForecast {
        method: CAPACITY_METHOD,
        backtest,
        hours,
    }
}

/// The chance a churned user is scored above a retained one (ties count half).
fn auc(scored: &[(f64, bool)]) -> Option<f64> {
    let mut v: Vec<&(f64, bool)> = scored.iter().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = v.iter().filter(|(_, c)| *c).count();
    let negatives = v.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Rank sum of the positives, with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1].0 == v[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * v[i..=j].iter().filter(|(_, c)| *c).count() as f64;
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

async fn churn(db: &sqlx::PgPool, rows: &[UserDaysRow]) -> Result<ChurnRisk, AnalyticsError> {
    let mut now_scored: Vec<(Uuid, f64, ChurnFeatures)> = Vec::new();
    let mut then_scored: Vec<(f64, bool)> = Vec::new();
    for r in rows {
        let Ok(id) = r.user.parse::<Uuid>() else {
            continue;
        };
        if let Some(f) = ChurnFeatures::of(r.days_ago.iter().copied()) {
            now_scored.push((id, f.risk(), f));
        }
        // As of 14 days ago: the days before then, shifted.
        let earlier = r
            .days_ago
            .iter()
            .filter(|d| **d >= CHURN_DAYS)
            .map(|d| d - CHURN_DAYS);
        if let Some(f) = ChurnFeatures::of(earlier) {
            let churned = !r.days_ago.iter().any(|d| *d < CHURN_DAYS);
            then_scored.push((f.risk(), churned));
        }
    }
    let churned = then_scored.iter().filter(|(_, c)| *c).count();
    let backtest = ChurnBacktest {
        holdout: "scored 14 days ago, checked against the 14 days since".to_owned(),
        users: then_scored.len(),
        churn_rate: (!then_scored.is_empty()).then(|| churned as f64 / then_scored.len() as f64),
        auc: auc(&then_scored),
    };
    let band = |lo: f64, hi: f64| {
        now_scored
            .iter()
            .filter(|(_, r, _)| *r >= lo && *r < hi)
            .count()
    };
    let (low, medium, high) = (band(0.0, 0.3), band(0.3, 0.6), band(0.6, f64::INFINITY));
    now_scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    now_scored.truncate(AT_RISK);
    let ids: Vec<Uuid> = now_scored.iter().map(|r| r.0).collect();
    let names: HashMap<Uuid, String> =
        sqlx::query_as::<_, (Uuid, String)>("SELECT id, username FROM users WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(db)
            .await?
            .into_iter()
            .collect();
    Ok(ChurnRisk {
        method: CHURN_METHOD,
        backtest,
        low,
        medium,
        high,
        users: now_scored
            .into_iter()
            .map(|(id, risk, features)| AtRisk {
                user_id: id,
                username: names.get(&id).cloned(),
                risk,
                features,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weekday_model_keeps_a_weekly_shape() {
        let end = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(); // a Monday
        // 10 views every day, 30 on Saturdays, for 4 weeks.
        let s: BTreeMap<NaiveDate, f64> = (1..=28)
            .map(|k| {
                let d = end - TimeDelta::days(k);
                (
                    d,
                    if d.weekday() == chrono::Weekday::Sat {
                        30.0
                    } else {
                        10.0
                    },
                )
            })
            .collect();
        let model = weekday_model(&s, end);
        let mean = (6.0 * 10.0 + 30.0) / 7.0;
        let sat = end + TimeDelta::days(5);
        assert!((model(sat) - mean * (30.0 / mean)).abs() < 1e-9);
        assert!((model(end) - 10.0).abs() < 1e-9);
        assert_eq!(weekday_model(&BTreeMap::new(), end)(end), 0.0);
    }

    #[test]
    fn churn_features_and_auc() {
        let f = ChurnFeatures::of([0u16, 1, 2, 20].into_iter()).unwrap();
        assert_eq!((f.days_since_active, f.active_days_28, f.trend), (0, 4, 2));
        assert!(ChurnFeatures::of([30u16, 40].into_iter()).is_none());
        let quiet = ChurnFeatures::of([25u16].into_iter()).unwrap();
        assert!(quiet.risk() > f.risk());
        assert_eq!(auc(&[(0.9, true), (0.1, false)]), Some(1.0));
        assert_eq!(auc(&[(0.1, true), (0.9, false)]), Some(0.0));
        assert_eq!(auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        assert_eq!(auc(&[(0.5, true)]), None);
        let b = score([(2.0, 1.0), (0.0, 1.0)].into_iter(), "x");
        assert_eq!((b.mae, b.wape, b.points), (1.0, Some(1.0), 2));
    }
}

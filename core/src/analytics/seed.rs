//! Realistic analytics history for development and the benchmarks
//! (`watch-party seed-analytics`): users with their own habits (how often they come,
//! their platform and country, when they registered), evenings busier than mornings
//! and weekends busier than weekdays, popular videos watched far more than the rest
//! (a Zipf-like pick), views that stop early more often than late, progress every
//! 10 s, seeks back and forth, party viewing with reactions, likes and comments —
//! written straight into `events`, so the materialized views fill every rollup.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;
use wp_shared::clickhouse::Event;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Days of history, ending with `last_day`.
    pub days: u32,
    pub last_day: NaiveDate,
    pub users: u32,
    /// The videos watched (id, duration in seconds), most popular first.
    pub videos: Vec<(Uuid, f64)>,
    pub seed: u64,
}

/// One synthetic user's habits.
#[derive(Debug, Clone)]
struct Habit {
    id: Uuid,
    /// Chance of being active on a weekday.
    propensity: f64,
    platform: &'static str,
    country: &'static str,
    /// The day (index) they registered; before the window: none.
    registered: Option<u32>,
}

const PLATFORMS: [&str; 4] = ["web", "web", "ios", "android"];
const COUNTRIES: [&str; 6] = ["US", "US", "GB", "DE", "BR", "IN"];

/// The generator: users drawn once, then one day of events at a time.
pub struct Seeder {
    plan: Plan,
    habits: Vec<Habit>,
}

impl Seeder {
    pub fn new(plan: Plan) -> Self {
        let mut rng = StdRng::seed_from_u64(plan.seed);
        let habits = (0..plan.users)
            .map(|_| Habit {
                id: Uuid::from_u128(rng.random()),
                // Most users come now and then, a few nearly every day.
                propensity: 0.03 + 0.6 * rng.random::<f64>().powi(3),
                platform: PLATFORMS[rng.random_range(0..PLATFORMS.len())],
                country: COUNTRIES[rng.random_range(0..COUNTRIES.len())],
                registered: (rng.random::<f64>() < 0.3).then(|| rng.random_range(0..plan.days)),
            })
            .collect();
        Self { plan, habits }
    }

    pub fn date(&self, day: u32) -> NaiveDate {
        self.plan.last_day - TimeDelta::days(i64::from(self.plan.days - 1 - day))
    }

    /// The events of day `day` (0: the first), in no particular order.
    pub fn day(&self, day: u32) -> Vec<Event> {
        let mut rng = StdRng::seed_from_u64(self.plan.seed ^ (u64::from(day) << 32 | 0x5eed));
        let date = self.date(day);
        let weekend = date.weekday().number_from_monday() >= 6;
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let mut out = Vec::new();
        for h in &self.habits {
            if h.registered.is_some_and(|r| r > day) {
                continue;
            }
            if h.registered == Some(day) {
                let t = midnight + TimeDelta::seconds(rng.random_range(0..86_000));
                out.push(event(
                    &mut rng,
                    t,
                    "user.registered",
                    h.id,
                    Uuid::nil(),
                    Uuid::nil(),
                    String::from("{}"),
                ));
            }
            let p = h.propensity * if weekend { 1.3 } else { 1.0 };
            if rng.random::<f64>() >= p {
                continue;
            }
            let views = 1 + usize::from(rng.random::<f64>() < 0.4);
            for _ in 0..views {
                self.view(&mut rng, h, midnight, &mut out);
            }
            if rng.random::<f64>() < 0.3 {
                let t = midnight + TimeDelta::seconds(rng.random_range(0..86_000));
                out.push(event(
                    &mut rng,
                    t,
                    "search.query",
                    h.id,
                    Uuid::nil(),
                    Uuid::nil(),
                    String::from("{}"),
                ));
            }
        }
        out
    }

    fn view(&self, rng: &mut StdRng, h: &Habit, midnight: DateTime<Utc>, out: &mut Vec<Event>) {
        if self.plan.videos.is_empty() {
            return;
        }
        // Popular first: squaring a uniform draw favours the low indices.
        let pick = (rng.random::<f64>().powi(2) * self.plan.videos.len() as f64) as usize;
        let (video, duration) = self.plan.videos[pick.min(self.plan.videos.len() - 1)];
        let party = if rng.random::<f64>() < 0.3 {
            // A handful of parties a day per video.
            Uuid::from_u128(u128::from(rng.random_range(0..5u32)) << 64 | video.as_u128() >> 64)
        } else {
            Uuid::nil()
        };
        let source = if !party.is_nil() {
            "party"
        } else {
            ["direct", "direct", "search", "search", "share", "event"][rng.random_range(0..6)]
        };
        let hour = if rng.random::<f64>() < 0.6 {
            rng.random_range(17..23)
        } else {
            rng.random_range(0..24)
        };
        let t0 = midnight + TimeDelta::seconds(hour * 3600 + rng.random_range(0..3600));
        out.push(event(
            rng,
            t0,
            "video.view_start",
            h.id,
            party,
            video,
            format!(
                r#"{{"position":0,"source":"{source}","platform":"{}","country":"{}"}}"#,
                h.platform, h.country
            ),
        ));
        // Most views stop early: an exponential share of the video, mean 45%.
        let share = (-rng.random::<f64>().max(1e-9).ln() * 0.45).min(1.0);
        let length = (duration * share).max(1.0);
        let mut s = 0.0;
        while s < length {
            let end = (s + 10.0).min(length);
            let t = t0 + TimeDelta::seconds(end as i64);
            out.push(event(
                rng,
                t,
                "playback.progress",
                h.id,
                party,
                video,
                format!(
                    r#"{{"position":{end},"from":{s},"duration":{duration},"watched":{}}}"#,
                    end - s
                ),
            ));
            if !party.is_nil() && rng.random::<f64>() < 0.02 {
                out.push(event(
                    rng,
                    t,
                    "party.reaction",
                    h.id,
                    party,
                    video,
                    format!(r#"{{"position":{end}}}"#),
                ));
            }
            s = end;
        }
        let at = t0 + TimeDelta::seconds(length as i64);
        if length > 60.0 && rng.random::<f64>() < 0.15 {
            let back = length * rng.random_range(0.2..0.9);
            out.push(event(
                rng,
                at,
                "playback.seek",
                h.id,
                party,
                video,
                format!(r#"{{"position":{},"from":{back}}}"#, (back - 30.0).max(0.0)),
            ));
        }
        for (chance, kind) in [
            (0.05, "video.like"),
            (0.01, "video.dislike"),
            (0.02, "video.comment"),
        ] {
            if rng.random::<f64>() < chance {
                out.push(event(
                    rng,
                    at,
                    kind,
                    h.id,
                    Uuid::nil(),
                    video,
                    String::from("{}"),
                ));
            }
        }
    }
}

/// Writes the history of `days` days up to today for `users` users watching the newest
/// `videos` ready videos of the library (made-up ids when it has none); how many events.
pub async fn write(
    db: &sqlx::PgPool,
    ch: &clickhouse::Client,
    days: u32,
    users: u32,
    videos: i64,
    seed: u64,
) -> anyhow::Result<usize> {
    let mut library: Vec<(Uuid, f64)> = sqlx::query_as(
        "SELECT id, coalesce(duration_seconds, 600) FROM videos WHERE status = 'ready'
          ORDER BY created_at DESC LIMIT $1",
    )
    .bind(videos)
    .fetch_all(db)
    .await?;
    if library.is_empty() {
        tracing::warn!("no ready videos in the library: made-up video ids");
        library = (1..=videos.max(1) as u128)
            .map(|i| (Uuid::from_u128(i), 600.0))
            .collect();
    }
    let seeder = Seeder::new(Plan {
        days,
        last_day: Utc::now().date_naive(),
        users,
        videos: library,
        seed,
    });
    let mut total = 0;
    for day in 0..days {
        let events = seeder.day(day);
        for chunk in events.chunks(200_000) {
            wp_shared::clickhouse::insert_events(ch, chunk).await?;
        }
        total += events.len();
        tracing::info!(date = %seeder.date(day), events = events.len(), "seeded");
    }
    Ok(total)
}

fn event(
    rng: &mut StdRng,
    t: DateTime<Utc>,
    kind: &str,
    user: Uuid,
    party: Uuid,
    video: Uuid,
    properties: String,
) -> Event {
    Event {
        occurred_at: t,
        event_type: kind.to_owned(),
        event_id: Uuid::from_u128(rng.random()),
        user_id: user,
        party_id: party,
        video_id: video,
        properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_history_with_a_believable_shape() {
        let plan = Plan {
            days: 14,
            last_day: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            users: 2000,
            videos: (0..20).map(|i| (Uuid::from_u128(i + 1), 600.0)).collect(),
            seed: 7,
        };
        let a = Seeder::new(plan.clone());
        let b = Seeder::new(plan);
        assert_eq!(a.day(3), b.day(3), "deterministic");
        let all: Vec<Event> = (0..14).flat_map(|d| a.day(d)).collect();
        let count = |kind: &str| all.iter().filter(|e| e.event_type == kind).count();
        let views = count("video.view_start");
        assert!(views > 1000, "{views} views");
        assert!(
            count("playback.progress") > 10 * views,
            "about 27 reports a view"
        );
        assert!(
            count("user.registered") > 400,
            "about 30% register in the window"
        );
        // Popular videos first: the first video is watched far more than the last.
        let of = |v: u128| {
            all.iter()
                .filter(|e| e.event_type == "video.view_start" && e.video_id == Uuid::from_u128(v))
                .count()
        };
        assert!(of(1) > 3 * of(20), "{} vs {}", of(1), of(20));
        // Evenings are busier than mornings.
        let at = |h: std::ops::Range<u32>| {
            all.iter()
                .filter(|e| {
                    e.event_type == "video.view_start"
                        && h.contains(&chrono::Timelike::hour(&e.occurred_at))
                })
                .count()
        };
        assert!(at(18..22) > 2 * at(6..10));
        // Nobody is active before the day they register.
        let registered: std::collections::HashMap<Uuid, NaiveDate> = all
            .iter()
            .filter(|e| e.event_type == "user.registered")
            .map(|e| (e.user_id, e.occurred_at.date_naive()))
            .collect();
        for e in &all {
            if let Some(day) = registered.get(&e.user_id) {
                assert!(e.occurred_at.date_naive() >= *day, "{e:?}");
            }
        }
    }
}

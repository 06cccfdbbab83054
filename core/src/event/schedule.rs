//! What the scheduler does with events

use super::*;

/// The reminder leads a user may choose from (minutes before the start); each user
/// picks up to [`MAX_REMINDER_LEADS`], 24 h and 15 min by default (the SQL function
/// `default_event_reminder_minutes`).
pub const REMINDER_LEADS: &[i32] = &[5, 10, 15, 30, 60, 120, 1440, 2880, 10080];
pub const MAX_REMINDER_LEADS: usize = 3;

/// Checks a user's choice of reminder leads (distinct, from the menu, few).
pub fn check_reminder_leads(leads: &[i32]) -> Result<(), &'static str> {
    if leads.len() > MAX_REMINDER_LEADS {
        return Err("At most 3 leads.");
    }
    if leads.iter().any(|l| !REMINDER_LEADS.contains(l)) {
        return Err("Each lead is one of 5, 10, 15, 30, 60, 120, 1440, 2880, 10080 (minutes).");
    }
    if (1..leads.len()).any(|i| leads[..i].contains(&leads[i])) {
        return Err("The leads must differ.");
    }
    Ok(())
}

/// A lead as an amount and a unit for the messages (`(2, "day")`, `(90, "minute")`).
pub(super) fn lead_in_words(minutes: i32) -> (i32, &'static str) {
    if minutes % 1440 == 0 {
        (minutes / 1440, "day")
    } else if minutes % 60 == 0 {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    }
}

/// What [`advance`] moved.
#[derive(Debug, Default)]
pub struct Advanced {
    /// Events that went live (ids).
    pub live: Vec<Uuid>,
    /// Events that ended (ids).
    pub ended: Vec<Uuid>,
    /// Parties opened for events that went live with a video.
    pub opened_parties: Vec<Uuid>,
    /// Parties of events that ended, ended with them (their sockets must close).
    pub ended_parties: Vec<Uuid>,
    /// Reminders sent: (event, lead in minutes).
    pub reminders: Vec<(Uuid, i32)>,
    pub outbox: Vec<i64>,
}

/// Moves events whose time has come at `now`, each move once whichever scheduler or
/// worker runs this (the moves are conditional updates in one transaction):
/// - reminders: at each lead of [`REMINDER_LEADS`] before the start, to everyone who
///   answered (but declined) and chose that lead (24 h and 15 min unless they chose),
///   once per event and lead (`event_reminders`); a lead that had already passed when
///   the event was created is skipped;
/// - `scheduled → live` at `start_time`: an event with a video gets a party with the
///   organizer as host and the people going as members, and everyone who answered hears
///   that it starts (`event.starting`, linking the party);
/// - `live → ended` at `end_time`, and its party ends with it.
///
/// An event whose whole time passed while no scheduler ran goes live and ends in the
/// same call, without a party or a `starting` notice.
pub async fn advance(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Advanced> {
    let mut tx = db.begin().await?;
    let mut out = Advanced::default();
    // Every lead of the menu that came due is recorded once per event (so it is weighed
    // once, not on every sweep); it is announced when someone answering wants it.
    let reminders: Vec<(Uuid, i32, String, DateTime<Utc>)> = sqlx::query_as(
        "WITH due AS (
             SELECT e.id, l.minutes FROM events e
              CROSS JOIN unnest($2::int[]) AS l (minutes)
              WHERE e.status = 'scheduled' AND e.start_time > $1
                AND e.start_time <= $1 + make_interval(mins => $3)
                AND e.start_time - make_interval(mins => l.minutes) <= $1
                AND e.created_at <= e.start_time - make_interval(mins => l.minutes)
                AND NOT EXISTS (SELECT 1 FROM event_reminders r
                                 WHERE r.event_id = e.id AND r.lead_minutes = l.minutes)),
         sent AS (
             INSERT INTO event_reminders (event_id, lead_minutes) SELECT id, minutes FROM due
             ON CONFLICT DO NOTHING RETURNING event_id, lead_minutes)
         SELECT s.event_id, s.lead_minutes, e.title, e.start_time FROM sent s
           JOIN events e ON e.id = s.event_id
          WHERE EXISTS (SELECT 1 FROM event_attendees a
                          LEFT JOIN notification_settings n ON n.user_id = a.user_id
                         WHERE a.event_id = s.event_id AND a.status IN ('going', 'maybe', 'waitlisted', 'pending')
                           AND s.lead_minutes = ANY(COALESCE(n.event_reminder_minutes, default_event_reminder_minutes())))",
    )
    .bind(now)
    .bind(REMINDER_LEADS)
    .bind(REMINDER_LEADS.iter().max().copied().unwrap_or(0))
    .fetch_all(&mut *tx)
    .await?;
    for (id, minutes, title, start) in reminders {
        let (amount, unit) = lead_in_words(minutes);
        out.outbox.push(
            crate::events::emit(
                &mut tx,
                "event.reminder",
                None,
                None,
                serde_json::json!({ "event_id": id, "title": title, "lead_minutes": minutes,
                                    "lead_amount": amount, "lead_unit": unit, "start_time": start }),
            )
            .await?,
        );
        out.reminders.push((id, minutes));
    }
    let live: Vec<WentLive> = sqlx::query_as(
        "UPDATE events SET status = 'live', updated_at = now()
          WHERE status = 'scheduled' AND start_time <= $1
         RETURNING id, title, organizer_id, video_id, video_url, is_public, end_time, group_id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for e in &live {
        out.live.push(e.id);
        if e.end_time <= now {
            continue;
        }
        let party = if e.video_id.is_some() || e.video_url.is_some() {
            Some(open_party(&mut tx, e, now).await?)
        } else {
            None
        };
        out.opened_parties.extend(party);
        out.outbox.push(
            crate::events::emit(
                &mut tx,
                "event.starting",
                None,
                None,
                serde_json::json!({ "event_id": e.id, "title": e.title, "party_id": party }),
            )
            .await?,
        );
    }
    let ended: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "UPDATE events SET status = 'ended', updated_at = now()
          WHERE status = 'live' AND end_time <= $1 RETURNING id, party_id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let parties: Vec<Uuid> = ended.iter().filter_map(|e| e.1).collect();
    out.ended = ended.into_iter().map(|e| e.0).collect();
    if !parties.is_empty() {
        out.ended_parties = sqlx::query_scalar(
            "UPDATE parties SET status = 'ended', updated_at = now()
              WHERE id = ANY($1) AND status = 'active' RETURNING id",
        )
        .bind(&parties)
        .fetch_all(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// An event that just went live, as [`advance`] reads it.
#[derive(sqlx::FromRow)]
pub(super) struct WentLive {
    id: Uuid,
    title: String,
    organizer_id: Uuid,
    video_id: Option<Uuid>,
    video_url: Option<String>,
    is_public: bool,
    end_time: DateTime<Utc>,
    group_id: Option<Uuid>,
}

/// Opens the party of an event going live: the organizer hosts, the people going are
/// members, room for more who answer later. Returns its id.
pub(super) async fn open_party(
    conn: &mut PgConnection,
    e: &WentLive,
    now: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let playback = crate::party::live::Playback::new(
        crate::party::live::PartyVideo {
            id: e.video_id,
            url: e.video_url.clone(),
        },
        now.timestamp_millis(),
    );
    sqlx::query(
        "INSERT INTO parties (id, host_id, title, video_id, external_url, visibility, invite_code,
                              max_members, playback, group_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7,
                 LEAST(5000, GREATEST(50, 50 + (SELECT count(*) FROM event_attendees
                                                 WHERE event_id = $8 AND status = 'going')))::int,
                 $9, $10)",
    )
    .bind(id)
    .bind(e.organizer_id)
    .bind(&e.title)
    .bind(e.video_id)
    .bind(&e.video_url)
    .bind(if e.is_public { "public" } else { "private" })
    .bind(crate::party::new_invite_code())
    .bind(e.id)
    .bind(serde_json::to_value(&playback).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
    .bind(e.group_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO party_members (party_id, user_id, role)
         SELECT $1, $2, 'host'
         UNION ALL
         SELECT $1, user_id, 'member' FROM event_attendees
          WHERE event_id = $3 AND status = 'going' AND user_id <> $2",
    )
    .bind(id)
    .bind(e.organizer_id)
    .bind(e.id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE events SET party_id = $2 WHERE id = $1")
        .bind(e.id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// The event as an iCalendar file (RFC 5545) with one `VEVENT`: times in UTC, text
/// escaped, lines folded at 75 octets; `SEQUENCE` grows with every edit so calendars
/// that imported it take the new time; a cancelled event says `STATUS:CANCELLED`.
pub fn ics(e: &Event, frontend_url: &str, sequence: i64) -> String {
    fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                ';' => out.push_str("\\;"),
                ',' => out.push_str("\\,"),
                '\n' => out.push_str("\\n"),
                '\r' => {}
                c => out.push(c),
            }
        }
        out
    }
    fn fold(line: &str, out: &mut String) {
        // At most 75 octets a line, never splitting a character; continuation lines
        // start with a space (which counts).
        let mut width = 0;
        for c in line.chars() {
            let n = c.len_utf8();
            if width + n > 75 {
                out.push_str("\r\n ");
                width = 1;
            }
            out.push(c);
            width += n;
        }
        out.push_str("\r\n");
    }
    let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let url = format!("{}/events/{}", frontend_url.trim_end_matches('/'), e.id);
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Watch Party//Events//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@watch-party", e.id),
        format!("DTSTAMP:{}", stamp(e.updated_at)),
        format!("DTSTART:{}", stamp(e.start_time)),
        format!("DTEND:{}", stamp(e.end_time)),
        format!("SEQUENCE:{sequence}"),
        format!("SUMMARY:{}", escape(&e.title)),
        format!(
            "DESCRIPTION:{}",
            escape(format!("{}\n\n{url}", e.description).trim_start())
        ),
        format!("LOCATION:{}", escape(&e.location)),
        format!(
            "ORGANIZER;CN={}:{url}",
            escape(&e.organizer.display_name).replace(':', "")
        ),
        format!("URL:{url}"),
        format!(
            "STATUS:{}",
            if e.status == EventStatus::Cancelled {
                "CANCELLED"
            } else {
                "CONFIRMED"
            }
        ),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    let mut out = String::new();
    for l in &lines {
        fold(l, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_leads_come_from_the_menu_distinct_and_few() {
        assert!(check_reminder_leads(&[]).is_ok());
        assert!(check_reminder_leads(&[1440, 15]).is_ok());
        assert!(check_reminder_leads(&[10080, 60, 5]).is_ok());
        assert!(check_reminder_leads(&[10080, 60, 5, 15]).is_err());
        assert!(check_reminder_leads(&[45]).is_err());
        assert!(check_reminder_leads(&[0]).is_err());
        assert!(check_reminder_leads(&[15, 15]).is_err());
        assert_eq!(lead_in_words(2880), (2, "day"));
        assert_eq!(lead_in_words(120), (2, "hour"));
        assert_eq!(lead_in_words(60), (1, "hour"));
        assert_eq!(lead_in_words(15), (15, "minute"));
    }

    fn event() -> Event {
        let t = "2027-01-02T20:00:00Z".parse::<DateTime<Utc>>().unwrap();
        Event {
            id: Uuid::nil(),
            title: "Movie night; the sequel, part 2".into(),
            description: "Bring snacks\nand friends ".repeat(10),
            organizer: UserSummary::new(Uuid::nil(), "ann".into(), "Ann: the host".into(), None),
            start_time: t,
            end_time: t + chrono::TimeDelta::hours(2),
            timezone: "Europe/Madrid".into(),
            location: "Online".into(),
            video: EventVideo {
                id: None,
                url: None,
                title: None,
            },
            max_attendees: None,
            require_approval: false,
            is_public: true,
            status: EventStatus::Scheduled,
            party_id: None,
            group_id: None,
            attendee_count: 0,
            maybe_count: 0,
            waitlist_count: 0,
            my_status: None,
            invited: false,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn the_calendar_file_escapes_folds_and_uses_utc() {
        let text = ics(&event(), "https://app.example/", 3);
        assert!(text.starts_with("BEGIN:VCALENDAR\r\n"));
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        assert!(text.contains("\r\nDTSTART:20270102T200000Z\r\n"));
        assert!(text.contains("\r\nDTEND:20270102T220000Z\r\n"));
        assert!(text.contains("SUMMARY:Movie night\\; the sequel\\, part 2\r\n"));
        assert!(text.contains("SEQUENCE:3\r\n"));
        for line in text.split("\r\n") {
            assert!(line.len() <= 75, "{line:?}");
        }
        // Unfolded, the description is whole, newlines escaped.
        let unfolded = text.replace("\r\n ", "");
        assert!(unfolded.contains("DESCRIPTION:Bring snacks\\nand friends Bring snacks"));
        let mut cancelled = event();
        cancelled.status = EventStatus::Cancelled;
        assert!(ics(&cancelled, "https://a", 4).contains("STATUS:CANCELLED\r\n"));
    }

    #[test]
    fn inputs_are_checked_against_the_clock_and_each_other() {
        let now = "2027-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let ok = EventInput {
            title: Some(" Watch ".into()),
            start_time: Some(now + chrono::TimeDelta::hours(1)),
            end_time: Some(now + chrono::TimeDelta::hours(3)),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        };
        let c = ok.clone().check(None, now).unwrap();
        assert_eq!((c.title.as_str(), c.is_public), ("Watch", true));
        let field = |i: EventInput| match i.check(None, now) {
            Err(EventError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(EventInput {
                title: None,
                ..ok.clone()
            }),
            "title"
        );
        assert_eq!(
            field(EventInput {
                start_time: Some(now - chrono::TimeDelta::hours(1)),
                ..ok.clone()
            }),
            "start_time"
        );
        assert_eq!(
            field(EventInput {
                end_time: ok.start_time,
                ..ok.clone()
            }),
            "end_time"
        );
        assert_eq!(
            field(EventInput {
                end_time: Some(now + chrono::TimeDelta::days(9)),
                ..ok.clone()
            }),
            "end_time"
        );
        assert_eq!(
            field(EventInput {
                timezone: Some("Mars/Olympus".into()),
                ..ok.clone()
            }),
            "timezone"
        );
        assert_eq!(
            field(EventInput {
                video_url: Some("ftp://x".into()),
                ..ok.clone()
            }),
            "video_url"
        );
        assert_eq!(
            field(EventInput {
                max_attendees: Some(0),
                ..ok.clone()
            }),
            "max_attendees"
        );
    }
}

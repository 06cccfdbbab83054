//! The catalogue of notification types: what each says (in-app title and body, email
//! subject and text, rendered with minijinja from the event), where it links, and which
//! channels are on by default. One catalogue for the API (preferences) and the fan-out
//! worker.

use std::sync::LazyLock;

use minijinja::Environment;
use serde::Serialize;

mod templates;
pub use templates::*;

/// A notification type.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Kind {
    pub name: &'static str,
    pub description: &'static str,
    pub in_app: bool,
    pub email: bool,
    pub push: bool,
    /// Security alerts and the like: cannot be turned off.
    pub required: bool,
    /// Its email is sent by the flow that raises it (never by the pipeline, whatever
    /// the preference says).
    pub emailed_by_flow: bool,
}

pub const KINDS: &[Kind] = &[
    Kind {
        name: "security.alert",
        description: "Security alerts about your account (also emailed, always)",
        in_app: true,
        email: false,
        push: true,
        required: true,
        // The account flows email these themselves, at once and always.
        emailed_by_flow: true,
    },
    Kind {
        name: "friend_request.received",
        description: "Someone sent you a friend request",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "friend_request.accepted",
        description: "Someone accepted your friend request",
        in_app: true,
        email: false,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "follow.new",
        description: "Someone followed you",
        in_app: true,
        email: false,
        push: false,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "comment.reply",
        description: "A reply to your comment",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "comment.mention",
        description: "Someone mentioned you in a comment",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "party.invite",
        description: "Someone invited you to a watch party",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "party.announcement",
        description: "The host of a party you joined has news for its members",
        in_app: true,
        email: false,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "group.invite",
        description: "Someone invited you to a group",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "group.join_request",
        description: "Someone asked to join a group you run",
        in_app: true,
        email: false,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "group.request_approved",
        description: "Your request to join a group was approved",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "event.invite",
        description: "Someone invited you to an event",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "event.join_request",
        description: "Someone asked to attend an event you organize",
        in_app: true,
        email: false,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "event.approved",
        description: "The organizer approved your place at an event",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "event.promoted",
        description: "A place freed up for you at an event",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "event.updated",
        description: "An event you answered moved",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "event.cancelled",
        description: "An event you answered was cancelled",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "event.starting",
        description: "An event you answered starts now",
        in_app: true,
        email: false,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "event.reminder",
        description: "An event you answered starts soon (24 hours and 15 minutes before)",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "poll.results",
        description: "The results of a poll in a party you joined",
        in_app: true,
        email: false,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "search.alert",
        description: "New videos match a search you saved (at most daily)",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "support.reply",
        description: "Support answered one of your tickets",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "support.user_reply",
        description: "Staff: a user replied on a ticket assigned to you",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "support.assigned",
        description: "Staff: a ticket was assigned to you",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "support.sla_breach",
        description: "Staff: a ticket passed its response time unanswered",
        in_app: true,
        email: true,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "moderation.warning",
        description: "A warning from the moderators about your content or conduct",
        in_app: true,
        email: true,
        push: true,
        required: true,
        emailed_by_flow: false,
    },
    Kind {
        name: "moderation.report_resolved",
        description: "A report you filed was handled",
        in_app: true,
        email: false,
        push: false,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "admin.export_ready",
        description: "Staff: a CSV export you asked for is ready",
        in_app: true,
        email: true,
        push: false,
        required: false,
        emailed_by_flow: false,
    },
    Kind {
        name: "admin.broadcast",
        description: "Announcements from the Watch Party team",
        in_app: true,
        email: false,
        push: true,
        required: false,
        emailed_by_flow: false,
    },
];

pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// Whether `now` falls in quiet hours `start..end` (minutes after local midnight in the
/// IANA timezone `tz`; a range may wrap midnight). An unknown timezone counts as UTC.
pub fn in_quiet_hours(now: chrono::DateTime<chrono::Utc>, tz: &str, start: i16, end: i16) -> bool {
    use chrono::Timelike;
    let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&tz);
    let minute = i16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
    if start <= end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    }
}

/// `"HH:MM"` → minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<i16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i16, i16) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

/// Minutes after midnight → `"HH:MM"`.
pub fn format_hhmm(m: i16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// A new in-app notification as a client sees it: the `data` of a `notification` frame
/// on the user's sockets, the same fields as an item of `GET /api/notifications/`.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationFrame<'a> {
    pub id: uuid::Uuid,
    pub kind: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub link: Option<&'a str>,
    pub actor_id: Option<uuid::Uuid>,
    pub data: &'a serde_json::Value,
    pub is_read: bool,
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The start of every user's Redis channel (`{prefix}:user:{user_id}`): realtime nodes
/// subscribe to the channels of the users with a socket on them.
pub fn user_channel_prefix(prefix: &str) -> String {
    format!("{prefix}:user:")
}

/// What a user's channel carries (from the notify worker to the realtime nodes, which
/// render it with [`UserEvent::frame`] for the user's sockets).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UserEvent {
    /// A new in-app notification (`notification` frame; `data` is the notification as
    /// the REST list shows it).
    Notification { notification: serde_json::Value },
    /// Some of the user's sessions may have ended (logout, a revoked session, a new
    /// password, a suspension, a deletion): every node checks the session of each of the
    /// user's sockets again (`account::authenticate`) and closes those that fail.
    SessionsChanged,
    /// A staff CSV export moved on (`export_progress` frame; `data` is `{id, kind,
    /// status, rows_done, rows_total}`), about once a second while it runs.
    ExportProgress { export: serde_json::Value },
}

impl UserEvent {
    /// The client's frame for this event, if it is one the client sees.
    pub fn frame(&self) -> Option<wp_shared::frame::Frame> {
        match self {
            Self::Notification { notification } => Some(wp_shared::frame::Frame::server(
                "notification",
                notification.clone(),
            )),
            Self::ExportProgress { export } => Some(wp_shared::frame::Frame::server(
                "export_progress",
                export.clone(),
            )),
            Self::SessionsChanged => None,
        }
    }
}

/// Publishes `event` on `user`'s channel (best effort: what it says is in the
/// database too).
pub async fn publish_user_event(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    user: uuid::Uuid,
    event: &UserEvent,
) -> redis::RedisResult<()> {
    use redis::AsyncCommands;
    let payload = serde_json::to_string(event).unwrap_or_default();
    redis
        .publish::<_, _, ()>(format!("{}{user}", user_channel_prefix(prefix)), payload)
        .await
}

/// Tells every node that `user`'s sessions changed (after the change is committed), so
/// sockets opened with a session that no longer authenticates close within a second.
pub async fn sessions_changed(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    user: uuid::Uuid,
) -> redis::RedisResult<()> {
    use redis::AsyncCommands;
    let payload = serde_json::to_string(&UserEvent::SessionsChanged).unwrap_or_default();
    redis
        .publish::<_, _, ()>(format!("{}{user}", user_channel_prefix(prefix)), payload)
        .await
}

/// Publishes a [`UserEvent::Notification`] per user on the users' channels, pipelined.
/// Best effort: the notification is in the database either way; a client that was not
/// connected reads it from the REST list.
pub async fn publish_frames(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    frames: &[(uuid::Uuid, NotificationFrame<'_>)],
) -> redis::RedisResult<()> {
    if frames.is_empty() {
        return Ok(());
    }
    let start = user_channel_prefix(prefix);
    let mut pipe = redis::pipe();
    for (user, n) in frames {
        let event = UserEvent::Notification {
            notification: serde_json::to_value(n).unwrap_or_default(),
        };
        pipe.publish(
            format!("{start}{user}"),
            serde_json::to_string(&event).unwrap_or_default(),
        )
        .ignore();
    }
    pipe.query_async::<()>(redis).await
}

/// How many of `user`'s notifications are unread (the unread badge, and the
/// notification socket's first frame).
pub async fn unread(db: &sqlx::PgPool, user: uuid::Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM notifications WHERE user_id = $1 AND read_at IS NULL"#,
        user
    )
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_in_the_users_timezone_and_across_midnight() {
        use chrono::TimeZone;
        // 21:30 UTC is 22:30 in Berlin (winter): inside 22:00-07:00 there, not in UTC.
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 21, 30, 0)
            .unwrap();
        let (start, end) = (parse_hhmm("22:00").unwrap(), parse_hhmm("07:00").unwrap());
        assert!(in_quiet_hours(t, "Europe/Berlin", start, end));
        assert!(!in_quiet_hours(t, "UTC", start, end));
        assert!(!in_quiet_hours(
            t,
            "Europe/Berlin",
            parse_hhmm("09:00").unwrap(),
            parse_hhmm("17:00").unwrap()
        ));
        assert!(in_quiet_hours(
            t,
            "UTC",
            parse_hhmm("21:00").unwrap(),
            parse_hhmm("22:00").unwrap()
        ));
        assert_eq!(parse_hhmm("24:00"), None);
        assert_eq!(parse_hhmm("7:00"), None);
        assert_eq!(format_hhmm(start), "22:00");
    }

    #[test]
    fn every_type_renders_and_the_html_is_escaped() {
        for k in KINDS {
            let r = render(
                k.name,
                "en",
                "<b>eve</b>",
                "bob",
                &serde_json::json!({"video_id": "v1", "comment_id": "c1",
                                    "title": "<b>eve</b> night", "body": "<b>eve</b> says hi", "link": "/news",
                                    "what": "<b>eve</b> changed your password", "message": "hi",
                                    "party_id": "p1", "code": "ABC", "group_id": "g1", "name": "Film club", "event_id": "e1",
                                    "question": "<b>eve</b>?", "top": ["yes"], "votes": 1, "voters": 2,
                                    "lead_minutes": 1440, "lead_amount": 1, "lead_unit": "day",
                                    "query": "<b>eve</b> films", "titles": ["<b>eve</b>"], "count": 2,
                                    "saved_search_id": "s1", "ticket_id": "t1", "number": 7,
                                    "subject": "<b>eve</b> cannot play", "priority": "high",
                                    "due_at": "2026-12-02T10:00:00Z", "target_type": "comment",
                                    "reason": "self_harm", "note": "<b>eve</b> rule 3", "outcome": "action_taken",
                                    "kind": "users", "rows": 12, "expires_at": "2026-12-10T00:00:00Z", "export_id": "x1"}),
                "https://app.example/",
            )
            .unwrap();
            assert!(!r.title.is_empty() && !r.body.is_empty(), "{}", k.name);
            assert!(r.email_text.contains("https://app.example/"), "{}", k.name);
            assert!(
                !r.email_html.contains("<b>eve</b>"),
                "{}: {}",
                k.name,
                r.email_html
            );
            // Every type but these fixed texts carries someone's words: escaped.
            if k.name != "moderation.report_resolved" {
                assert!(r.email_html.contains("&lt;b&gt;eve"), "{}", k.name);
            }
        }
        let r = render(
            "comment.reply",
            "en-GB",
            "eve",
            "bob",
            &serde_json::json!({"video_id": "v1", "comment_id": "c1"}),
            "https://a",
        )
        .unwrap();
        assert_eq!(r.link, "/videos/v1?comment=c1");
    }

    #[test]
    fn the_recipients_language_is_used_where_a_translation_exists() {
        let payload = serde_json::json!({"video_id": "v1", "comment_id": "c1"});
        let es = render(
            "comment.reply",
            "es-MX",
            "eve",
            "bob",
            &payload,
            "https://a",
        )
        .unwrap();
        assert_eq!(es.title, "Nueva respuesta");
        assert_eq!(es.body, "eve ha respondido a tu comentario.");
        assert!(es.email_text.starts_with("Hola, bob:"), "{}", es.email_text);
        // The link is not translated: the Spanish list falls back to English for it.
        assert_eq!(es.link, "/videos/v1?comment=c1");
        // No German translation: English.
        let de = render("comment.reply", "de", "eve", "bob", &payload, "https://a").unwrap();
        assert_eq!(de.title, "New reply");
        // Every Spanish template names a type (or email/digest part) that exists in English.
        for (name, _) in SPANISH {
            let english = name.strip_prefix("es:").unwrap();
            assert!(TEMPLATES.get_template(english).is_ok(), "{name}");
        }
    }

    #[test]
    fn a_reminder_names_its_lead_in_the_recipients_language() {
        let body = |lang: &str, amount: i32, unit: &str| {
            let p = serde_json::json!({"event_id": "e1", "title": "Night",
                                       "lead_amount": amount, "lead_unit": unit});
            render("event.reminder", lang, "", "bob", &p, "https://a")
                .unwrap()
                .body
        };
        assert_eq!(body("en", 1, "day"), "\"Night\" starts in 1 day.");
        assert_eq!(body("en", 2, "hour"), "\"Night\" starts in 2 hours.");
        assert_eq!(body("en", 15, "minute"), "\"Night\" starts in 15 minutes.");
        assert_eq!(body("es", 1, "hour"), "\"Night\" empieza en 1 hora.");
        assert_eq!(body("es", 7, "day"), "\"Night\" empieza en 7 días.");
    }

    #[test]
    fn a_digest_lists_every_item_with_absolute_links_and_escapes_html() {
        let items = vec![
            DigestItem {
                title: "New reply".into(),
                body: "<i>eve</i> replied".into(),
                link: "/videos/1".into(),
            },
            DigestItem {
                title: "New follower".into(),
                body: "sam followed you".into(),
                link: "/users/sam".into(),
            },
        ];
        let (subject, text, html) = render_digest("en", "bob", &items, "https://app/").unwrap();
        assert_eq!(subject, "Your Watch Party digest: 2 new notifications");
        assert!(
            text.contains("- New reply: <i>eve</i> replied\n  https://app/videos/1"),
            "{text}"
        );
        assert!(text.contains("https://app/users/sam"));
        assert!(html.contains("&lt;i&gt;eve"), "{html}");
        let (subject, ..) = render_digest("es", "bob", &items[..1], "https://app").unwrap();
        assert_eq!(subject, "Tu resumen de Watch Party: 1 notificación nueva");
    }
}

//! The catalogue of notification types: what each says (in-app title and body, email
//! subject and text, rendered with minijinja from the event), where it links, and which
//! channels are on by default. One catalogue for the API (preferences) and the fan-out
//! worker.

use std::sync::LazyLock;

use minijinja::Environment;
use serde::Serialize;

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
}

pub const KINDS: &[Kind] = &[
    Kind {
        name: "friend_request.received",
        description: "Someone sent you a friend request",
        in_app: true,
        email: true,
        push: true,
        required: false,
    },
    Kind {
        name: "friend_request.accepted",
        description: "Someone accepted your friend request",
        in_app: true,
        email: false,
        push: true,
        required: false,
    },
    Kind {
        name: "follow.new",
        description: "Someone followed you",
        in_app: true,
        email: false,
        push: false,
        required: false,
    },
    Kind {
        name: "comment.reply",
        description: "A reply to your comment",
        in_app: true,
        email: true,
        push: true,
        required: false,
    },
    Kind {
        name: "comment.mention",
        description: "Someone mentioned you in a comment",
        in_app: true,
        email: true,
        push: true,
        required: false,
    },
    Kind {
        name: "admin.broadcast",
        description: "Announcements from the Watch Party team",
        in_app: true,
        email: false,
        push: true,
        required: false,
    },
];

pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// Templates per type: `{type}.title`, `{type}.body`, `{type}.link`, `{type}.subject`.
/// Context: `actor` (username), `recipient` (username), `payload` (the event's).
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    let t = [
        ("friend_request.received.title", "New friend request"),
        (
            "friend_request.received.body",
            "{{ actor }} wants to be your friend.",
        ),
        ("friend_request.received.link", "/friends/requests"),
        (
            "friend_request.received.subject",
            "{{ actor }} sent you a friend request",
        ),
        ("friend_request.accepted.title", "Friend request accepted"),
        (
            "friend_request.accepted.body",
            "{{ actor }} accepted your friend request.",
        ),
        ("friend_request.accepted.link", "/users/{{ actor }}"),
        (
            "friend_request.accepted.subject",
            "{{ actor }} is now your friend",
        ),
        ("follow.new.title", "New follower"),
        ("follow.new.body", "{{ actor }} started following you."),
        ("follow.new.link", "/users/{{ actor }}"),
        ("follow.new.subject", "{{ actor }} follows you"),
        ("comment.reply.title", "New reply"),
        ("comment.reply.body", "{{ actor }} replied to your comment."),
        (
            "comment.reply.link",
            "/videos/{{ payload.video_id }}?comment={{ payload.comment_id }}",
        ),
        (
            "comment.reply.subject",
            "{{ actor }} replied to your comment",
        ),
        ("comment.mention.title", "You were mentioned"),
        (
            "comment.mention.body",
            "{{ actor }} mentioned you in a comment.",
        ),
        (
            "comment.mention.link",
            "/videos/{{ payload.video_id }}?comment={{ payload.comment_id }}",
        ),
        ("comment.mention.subject", "{{ actor }} mentioned you"),
        ("admin.broadcast.title", "{{ payload.title }}"),
        ("admin.broadcast.body", "{{ payload.body }}"),
        ("admin.broadcast.link", "{{ payload.link or '/' }}"),
        ("admin.broadcast.subject", "{{ payload.title }}"),
        (
            "email.txt",
            "Hi {{ recipient }},\n\n{{ body }}\n\nOpen: {{ url }}\n\nYou can choose which emails you get in your notification settings: {{ settings_url }}\n",
        ),
        (
            "email.html",
            "<p>Hi {{ recipient }},</p><p>{{ body }}</p><p><a href=\"{{ url }}\">Open Watch Party</a></p><p style=\"color:#666;font-size:12px\">Choose which emails you get in your <a href=\"{{ settings_url }}\">notification settings</a>.</p>",
        ),
    ];
    for (name, src) in t {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env
});

/// A notification as rendered for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub title: String,
    pub body: String,
    pub link: String,
    pub subject: String,
    pub email_text: String,
    pub email_html: String,
}

/// Renders type `kind` for a recipient. `frontend_url` makes the email's links absolute.
pub fn render(
    kind: &str,
    actor: &str,
    recipient: &str,
    payload: &serde_json::Value,
    frontend_url: &str,
) -> Result<Rendered, minijinja::Error> {
    let ctx = minijinja::context! { actor => actor, recipient => recipient, payload => payload };
    let part = |p: &str| -> Result<String, minijinja::Error> {
        TEMPLATES.get_template(&format!("{kind}.{p}"))?.render(&ctx)
    };
    let (title, body, link, subject) = (
        part("title")?,
        part("body")?,
        part("link")?,
        part("subject")?,
    );
    let base = frontend_url.trim_end_matches('/');
    let url = format!("{base}{link}");
    let settings_url = format!("{base}/settings/notifications");
    let email_ctx = minijinja::context! { recipient => recipient, body => &body, url => &url, settings_url => &settings_url };
    let email_text = TEMPLATES.get_template("email.txt")?.render(&email_ctx)?;
    // Named `.html`, so minijinja escapes what goes into it.
    let email_html = TEMPLATES.get_template("email.html")?.render(&email_ctx)?;
    Ok(Rendered {
        title,
        body,
        link,
        subject,
        email_text,
        email_html,
    })
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
                "<b>eve</b>",
                "bob",
                &serde_json::json!({"video_id": "v1", "comment_id": "c1",
                                    "title": "News", "body": "<b>eve</b> says hi", "link": "/news"}),
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
            assert!(r.email_html.contains("&lt;b&gt;eve"), "{}", k.name);
        }
        let r = render(
            "comment.reply",
            "eve",
            "bob",
            &serde_json::json!({"video_id": "v1", "comment_id": "c1"}),
            "https://a",
        )
        .unwrap();
        assert_eq!(r.link, "/videos/v1?comment=c1");
    }
}

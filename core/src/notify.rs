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

/// Templates per type: `{type}.title`, `{type}.body`, `{type}.link`, `{type}.subject`.
/// Context: `actor` (username), `recipient` (username), `payload` (the event's).
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    let t = [
        ("security.alert.title", "Security alert"),
        ("security.alert.body", "{{ payload.what }}"),
        ("security.alert.link", "/settings/security"),
        (
            "security.alert.subject",
            "Security alert for your Watch Party account",
        ),
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
        ("party.invite.title", "Watch party invite"),
        (
            "party.invite.body",
            "{{ actor }} invited you to watch \"{{ payload.title }}\" together.",
        ),
        ("party.invite.link", "/parties/join/{{ payload.code }}"),
        (
            "party.invite.subject",
            "{{ actor }} invited you to a watch party",
        ),
        ("party.announcement.title", "{{ payload.title }}"),
        (
            "party.announcement.body",
            "{{ actor }}: {{ payload.message }}",
        ),
        ("party.announcement.link", "/parties/{{ payload.party_id }}"),
        (
            "party.announcement.subject",
            "{{ actor }} in \"{{ payload.title }}\"",
        ),
        ("group.invite.title", "Group invitation"),
        (
            "group.invite.body",
            "{{ actor }} invited you to join \"{{ payload.name }}\".",
        ),
        ("group.invite.link", "/groups/{{ payload.group_id }}"),
        ("group.invite.subject", "{{ actor }} invited you to a group"),
        ("group.join_request.title", "New join request"),
        (
            "group.join_request.body",
            "{{ actor }} asked to join \"{{ payload.name }}\".",
        ),
        (
            "group.join_request.link",
            "/groups/{{ payload.group_id }}/requests",
        ),
        (
            "group.join_request.subject",
            "{{ actor }} asked to join \"{{ payload.name }}\"",
        ),
        ("group.request_approved.title", "Welcome to the group"),
        (
            "group.request_approved.body",
            "{{ actor }} approved your request to join \"{{ payload.name }}\".",
        ),
        (
            "group.request_approved.link",
            "/groups/{{ payload.group_id }}",
        ),
        (
            "group.request_approved.subject",
            "You are now a member of \"{{ payload.name }}\"",
        ),
        ("event.invite.title", "Event invitation"),
        (
            "event.invite.body",
            "{{ actor }} invited you to \"{{ payload.title }}\".",
        ),
        ("event.invite.link", "/events/{{ payload.event_id }}"),
        (
            "event.invite.subject",
            "{{ actor }} invited you to an event",
        ),
        ("event.join_request.title", "New request to attend"),
        (
            "event.join_request.body",
            "{{ actor }} asked to attend \"{{ payload.title }}\".",
        ),
        (
            "event.join_request.link",
            "/events/{{ payload.event_id }}/attendees",
        ),
        (
            "event.join_request.subject",
            "{{ actor }} asked to attend \"{{ payload.title }}\"",
        ),
        ("event.approved.title", "You are in"),
        (
            "event.approved.body",
            "{{ actor }} approved your place at \"{{ payload.title }}\".",
        ),
        ("event.approved.link", "/events/{{ payload.event_id }}"),
        (
            "event.approved.subject",
            "Your place at \"{{ payload.title }}\"",
        ),
        ("event.promoted.title", "A place for you"),
        (
            "event.promoted.body",
            "A place freed up: you are now going to \"{{ payload.title }}\".",
        ),
        ("event.promoted.link", "/events/{{ payload.event_id }}"),
        (
            "event.promoted.subject",
            "You are going to \"{{ payload.title }}\"",
        ),
        ("event.updated.title", "Event moved"),
        (
            "event.updated.body",
            "{{ actor }} moved \"{{ payload.title }}\".",
        ),
        ("event.updated.link", "/events/{{ payload.event_id }}"),
        (
            "event.updated.subject",
            "\"{{ payload.title }}\" has a new time",
        ),
        ("event.cancelled.title", "Event cancelled"),
        (
            "event.cancelled.body",
            "{{ actor }} cancelled \"{{ payload.title }}\".",
        ),
        ("event.cancelled.link", "/events/{{ payload.event_id }}"),
        (
            "event.cancelled.subject",
            "\"{{ payload.title }}\" was cancelled",
        ),
        ("event.starting.title", "Starting now"),
        ("event.starting.body", "\"{{ payload.title }}\" starts now."),
        (
            "event.starting.link",
            "{% if payload.party_id %}/parties/{{ payload.party_id }}{% else %}/events/{{ payload.event_id }}{% endif %}",
        ),
        ("event.reminder.title", "Starting soon"),
        (
            "event.reminder.body",
            "\"{{ payload.title }}\" starts in {{ payload.lead_amount }} {{ payload.lead_unit }}{{ '' if payload.lead_amount == 1 else 's' }}.",
        ),
        ("event.reminder.link", "/events/{{ payload.event_id }}"),
        (
            "event.reminder.subject",
            "Reminder: \"{{ payload.title }}\" starts in {{ payload.lead_amount }} {{ payload.lead_unit }}{{ '' if payload.lead_amount == 1 else 's' }}",
        ),
        (
            "event.starting.subject",
            "\"{{ payload.title }}\" starts now",
        ),
        ("poll.results.title", "Poll results"),
        (
            "poll.results.body",
            "{% if payload.voters == 0 %}\"{{ payload.question }}\" closed with no votes.{% elif payload.top|length == 1 %}\"{{ payload.question }}\": {{ payload.top[0] }} won ({{ payload.votes }} of {{ payload.voters }}).{% else %}\"{{ payload.question }}\": a tie between {{ payload.top|join(', ') }}.{% endif %}",
        ),
        ("poll.results.link", "/parties/{{ payload.party_id }}"),
        (
            "poll.results.subject",
            "Poll results: {{ payload.question }}",
        ),
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
        (
            "digest.subject",
            "Your Watch Party digest: {{ items|length }} new notification{{ 's' if items|length != 1 }}",
        ),
        (
            "digest.txt",
            "Hi {{ recipient }},\n\nHere is what happened since your last digest:\n{% for i in items %}\n- {{ i.title }}: {{ i.body }}\n  {{ i.url }}\n{% endfor %}\nYou can change how often you get this email in your notification settings: {{ settings_url }}\n",
        ),
        (
            "digest.html",
            "<p>Hi {{ recipient }},</p><p>Here is what happened since your last digest:</p><ul>{% for i in items %}<li><a href=\"{{ i.url }}\"><strong>{{ i.title }}</strong></a>: {{ i.body }}</li>{% endfor %}</ul><p style=\"color:#666;font-size:12px\">Change how often you get this email in your <a href=\"{{ settings_url }}\">notification settings</a>.</p>",
        ),
    ];
    for (name, src) in t
        .into_iter()
        .chain(TRANSLATIONS.iter().flat_map(|l| l.iter().copied()))
    {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env
});

/// Spanish: every template, named `es:{name}`. A locale without a translation (or a
/// template missing from one) falls back to English; adding a language is adding such
/// a list ([`LANGUAGES`]).
const SPANISH: &[(&str, &str)] = &[
    ("es:security.alert.title", "Alerta de seguridad"),
    (
        "es:security.alert.subject",
        "Alerta de seguridad de tu cuenta de Watch Party",
    ),
    (
        "es:friend_request.received.title",
        "Nueva solicitud de amistad",
    ),
    (
        "es:friend_request.received.body",
        "{{ actor }} quiere ser tu amigo.",
    ),
    (
        "es:friend_request.received.subject",
        "{{ actor }} te ha enviado una solicitud de amistad",
    ),
    (
        "es:friend_request.accepted.title",
        "Solicitud de amistad aceptada",
    ),
    (
        "es:friend_request.accepted.body",
        "{{ actor }} ha aceptado tu solicitud de amistad.",
    ),
    (
        "es:friend_request.accepted.subject",
        "{{ actor }} ya es tu amigo",
    ),
    ("es:follow.new.title", "Nuevo seguidor"),
    ("es:follow.new.body", "{{ actor }} ha empezado a seguirte."),
    ("es:follow.new.subject", "{{ actor }} te sigue"),
    ("es:comment.reply.title", "Nueva respuesta"),
    (
        "es:comment.reply.body",
        "{{ actor }} ha respondido a tu comentario.",
    ),
    (
        "es:comment.reply.subject",
        "{{ actor }} ha respondido a tu comentario",
    ),
    ("es:comment.mention.title", "Te han mencionado"),
    (
        "es:comment.mention.body",
        "{{ actor }} te ha mencionado en un comentario.",
    ),
    ("es:comment.mention.subject", "{{ actor }} te ha mencionado"),
    ("es:party.invite.title", "Invitación a una watch party"),
    (
        "es:party.invite.body",
        "{{ actor }} te ha invitado a ver \"{{ payload.title }}\" juntos.",
    ),
    (
        "es:party.invite.subject",
        "{{ actor }} te ha invitado a una watch party",
    ),
    ("es:event.invite.title", "Invitación a un evento"),
    (
        "es:event.invite.body",
        "{{ actor }} te ha invitado a \"{{ payload.title }}\".",
    ),
    (
        "es:event.invite.subject",
        "{{ actor }} te ha invitado a un evento",
    ),
    (
        "es:event.join_request.title",
        "Nueva solicitud de asistencia",
    ),
    (
        "es:event.join_request.body",
        "{{ actor }} ha pedido asistir a \"{{ payload.title }}\".",
    ),
    (
        "es:event.join_request.subject",
        "{{ actor }} ha pedido asistir a \"{{ payload.title }}\"",
    ),
    ("es:event.approved.title", "Tienes plaza"),
    (
        "es:event.approved.body",
        "{{ actor }} ha aprobado tu plaza en \"{{ payload.title }}\".",
    ),
    (
        "es:event.approved.subject",
        "Tu plaza en \"{{ payload.title }}\"",
    ),
    ("es:event.promoted.title", "Una plaza para ti"),
    (
        "es:event.promoted.body",
        "Se ha liberado una plaza: vas a \"{{ payload.title }}\".",
    ),
    ("es:event.promoted.subject", "Vas a \"{{ payload.title }}\""),
    ("es:event.updated.title", "Evento cambiado de hora"),
    (
        "es:event.updated.body",
        "{{ actor }} ha cambiado la hora de \"{{ payload.title }}\".",
    ),
    (
        "es:event.updated.subject",
        "\"{{ payload.title }}\" tiene nueva hora",
    ),
    ("es:event.cancelled.title", "Evento cancelado"),
    (
        "es:event.cancelled.body",
        "{{ actor }} ha cancelado \"{{ payload.title }}\".",
    ),
    (
        "es:event.cancelled.subject",
        "\"{{ payload.title }}\" se ha cancelado",
    ),
    ("es:event.starting.title", "Empieza ahora"),
    (
        "es:event.starting.body",
        "\"{{ payload.title }}\" empieza ahora.",
    ),
    (
        "es:event.starting.subject",
        "\"{{ payload.title }}\" empieza ahora",
    ),
    ("es:event.reminder.title", "Empieza pronto"),
    (
        "es:event.reminder.body",
        "\"{{ payload.title }}\" empieza en {{ payload.lead_amount }} {{ {'day': 'día', 'hour': 'hora', 'minute': 'minuto'}[payload.lead_unit] }}{{ '' if payload.lead_amount == 1 else 's' }}.",
    ),
    (
        "es:event.reminder.subject",
        "Recordatorio: \"{{ payload.title }}\" empieza en {{ payload.lead_amount }} {{ {'day': 'día', 'hour': 'hora', 'minute': 'minuto'}[payload.lead_unit] }}{{ '' if payload.lead_amount == 1 else 's' }}",
    ),
    ("es:poll.results.title", "Resultados de la encuesta"),
    (
        "es:poll.results.body",
        "{% if payload.voters == 0 %}\"{{ payload.question }}\" se ha cerrado sin votos.{% elif payload.top|length == 1 %}\"{{ payload.question }}\": ha ganado {{ payload.top[0] }} ({{ payload.votes }} de {{ payload.voters }}).{% else %}\"{{ payload.question }}\": empate entre {{ payload.top|join(', ') }}.{% endif %}",
    ),
    (
        "es:poll.results.subject",
        "Resultados de la encuesta: {{ payload.question }}",
    ),
    ("es:group.invite.title", "Invitación a un grupo"),
    (
        "es:group.invite.body",
        "{{ actor }} te ha invitado a unirte a \"{{ payload.name }}\".",
    ),
    (
        "es:group.invite.subject",
        "{{ actor }} te ha invitado a un grupo",
    ),
    ("es:group.join_request.title", "Nueva solicitud para unirse"),
    (
        "es:group.join_request.body",
        "{{ actor }} ha pedido unirse a \"{{ payload.name }}\".",
    ),
    (
        "es:group.join_request.subject",
        "{{ actor }} ha pedido unirse a \"{{ payload.name }}\"",
    ),
    ("es:group.request_approved.title", "Bienvenido al grupo"),
    (
        "es:group.request_approved.body",
        "{{ actor }} ha aprobado tu solicitud para unirte a \"{{ payload.name }}\".",
    ),
    (
        "es:group.request_approved.subject",
        "Ya eres miembro de \"{{ payload.name }}\"",
    ),
    (
        "es:party.announcement.subject",
        "{{ actor }} en \"{{ payload.title }}\"",
    ),
    (
        "es:email.txt",
        "Hola, {{ recipient }}:\n\n{{ body }}\n\nAbrir: {{ url }}\n\nPuedes elegir qué correos recibes en tus ajustes de notificaciones: {{ settings_url }}\n",
    ),
    (
        "es:email.html",
        "<p>Hola, {{ recipient }}:</p><p>{{ body }}</p><p><a href=\"{{ url }}\">Abrir Watch Party</a></p><p style=\"color:#666;font-size:12px\">Elige qué correos recibes en tus <a href=\"{{ settings_url }}\">ajustes de notificaciones</a>.</p>",
    ),
    (
        "es:digest.subject",
        "Tu resumen de Watch Party: {{ items|length }} notificaci{{ 'ones nuevas' if items|length != 1 else 'ón nueva' }}",
    ),
    (
        "es:digest.txt",
        "Hola, {{ recipient }}:\n\nEsto es lo que ha pasado desde tu último resumen:\n{% for i in items %}\n- {{ i.title }}: {{ i.body }}\n  {{ i.url }}\n{% endfor %}\nPuedes cambiar la frecuencia de este correo en tus ajustes de notificaciones: {{ settings_url }}\n",
    ),
    (
        "es:digest.html",
        "<p>Hola, {{ recipient }}:</p><p>Esto es lo que ha pasado desde tu último resumen:</p><ul>{% for i in items %}<li><a href=\"{{ i.url }}\"><strong>{{ i.title }}</strong></a>: {{ i.body }}</li>{% endfor %}</ul><p style=\"color:#666;font-size:12px\">Cambia la frecuencia de este correo en tus <a href=\"{{ settings_url }}\">ajustes de notificaciones</a>.</p>",
    ),
];

/// Languages with translations (besides English, the source), and their texts.
pub const LANGUAGES: &[&str] = &["en", "es"];
const TRANSLATIONS: &[&[(&str, &str)]] = &[SPANISH];

/// The language of a locale (`es-MX` → `es`) if there is a translation for it.
fn language(locale: &str) -> Option<&'static str> {
    let primary = locale.split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES
        .iter()
        .copied()
        .find(|l| *l != "en" && *l == primary)
}

/// Template `name` in the locale's language, else English.
fn template(
    lang: Option<&str>,
    name: &str,
) -> Result<minijinja::Template<'static, 'static>, minijinja::Error> {
    if let Some(l) = lang
        && let Ok(t) = TEMPLATES.get_template(&format!("{l}:{name}"))
    {
        return Ok(t);
    }
    TEMPLATES.get_template(name)
}

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

/// Renders type `kind` for a recipient whose locale is `locale` (BCP 47, e.g. `es-MX`).
/// `frontend_url` makes the email's links absolute.
pub fn render(
    kind: &str,
    locale: &str,
    actor: &str,
    recipient: &str,
    payload: &serde_json::Value,
    frontend_url: &str,
) -> Result<Rendered, minijinja::Error> {
    let lang = language(locale);
    let ctx = minijinja::context! { actor => actor, recipient => recipient, payload => payload };
    let part = |p: &str| -> Result<String, minijinja::Error> {
        template(lang, &format!("{kind}.{p}"))?.render(&ctx)
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
    let email_text = template(lang, "email.txt")?.render(&email_ctx)?;
    // Named `.html`, so minijinja escapes what goes into it.
    let email_html = template(lang, "email.html")?.render(&email_ctx)?;
    Ok(Rendered {
        title,
        body,
        link,
        subject,
        email_text,
        email_html,
    })
}

/// One notification folded into a digest.
#[derive(Debug, Clone, Serialize)]
pub struct DigestItem {
    pub title: String,
    pub body: String,
    /// Frontend path.
    pub link: String,
}

/// A digest email: `(subject, text, html)`.
pub fn render_digest(
    locale: &str,
    recipient: &str,
    items: &[DigestItem],
    frontend_url: &str,
) -> Result<(String, String, String), minijinja::Error> {
    let lang = language(locale);
    let base = frontend_url.trim_end_matches('/');
    let items: Vec<_> = items
        .iter()
        .map(|i| {
            minijinja::context! { title => &i.title, body => &i.body, url => format!("{base}{}", i.link) }
        })
        .collect();
    let ctx = minijinja::context! {
        recipient => recipient, items => items,
        settings_url => format!("{base}/settings/notifications"),
    };
    Ok((
        template(lang, "digest.subject")?.render(&ctx)?,
        template(lang, "digest.txt")?.render(&ctx)?,
        template(lang, "digest.html")?.render(&ctx)?,
    ))
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
}

impl UserEvent {
    /// The client's frame for this event, if it is one the client sees.
    pub fn frame(&self) -> Option<wp_shared::frame::Frame> {
        match self {
            Self::Notification { notification } => Some(wp_shared::frame::Frame::server(
                "notification",
                notification.clone(),
            )),
            Self::SessionsChanged => None,
        }
    }
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
                                    "lead_minutes": 1440, "lead_amount": 1, "lead_unit": "day"}),
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

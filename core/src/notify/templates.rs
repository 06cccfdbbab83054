//! The text of every notification type, per language (English, Spanish), for every channel; digests.

use super::*;

/// Templates per type: `{type}.title`, `{type}.body`, `{type}.link`, `{type}.subject`.
/// Context: `actor` (username), `recipient` (username), `payload` (the event's).
pub(super) static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
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
        (
            "search.alert.title",
            "New videos for \"{{ payload.name }}\"",
        ),
        (
            "search.alert.body",
            "{{ payload.count }} new video{{ '' if payload.count == 1 else 's' }} match \"{{ payload.query }}\": {{ payload.titles|join(', ') }}",
        ),
        (
            "search.alert.link",
            "/search?saved={{ payload.saved_search_id }}",
        ),
        (
            "search.alert.subject",
            "{{ payload.count }} new video{{ '' if payload.count == 1 else 's' }} for \"{{ payload.name }}\"",
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
        (
            "support.reply.title",
            "Support replied to #{{ payload.number }}",
        ),
        (
            "support.reply.body",
            "{{ actor }} replied to your ticket \"{{ payload.subject }}\":\n\n{{ payload.body }}",
        ),
        (
            "support.reply.link",
            "/support/tickets/{{ payload.ticket_id }}",
        ),
        (
            "support.reply.subject",
            "[#{{ payload.number }}] Re: {{ payload.subject }}",
        ),
        (
            "support.user_reply.title",
            "New reply on #{{ payload.number }}",
        ),
        (
            "support.user_reply.body",
            "{{ actor }} replied on \"{{ payload.subject }}\":\n\n{{ payload.body }}",
        ),
        (
            "support.user_reply.link",
            "/support/tickets/{{ payload.ticket_id }}",
        ),
        (
            "support.user_reply.subject",
            "[#{{ payload.number }}] {{ actor }} replied: {{ payload.subject }}",
        ),
        (
            "support.assigned.title",
            "Ticket #{{ payload.number }} assigned to you",
        ),
        (
            "support.assigned.body",
            "{{ actor }} assigned you \"{{ payload.subject }}\" ({{ payload.priority }} priority).",
        ),
        (
            "support.assigned.link",
            "/support/tickets/{{ payload.ticket_id }}",
        ),
        (
            "support.assigned.subject",
            "[#{{ payload.number }}] Assigned to you: {{ payload.subject }}",
        ),
        (
            "support.sla_breach.title",
            "Ticket #{{ payload.number }} is overdue",
        ),
        (
            "support.sla_breach.body",
            "\"{{ payload.subject }}\" ({{ payload.priority }} priority) was due for an answer at {{ payload.due_at }} and has none yet.",
        ),
        (
            "support.sla_breach.link",
            "/support/tickets/{{ payload.ticket_id }}",
        ),
        (
            "support.sla_breach.subject",
            "[#{{ payload.number }}] Overdue: {{ payload.subject }}",
        ),
        ("moderation.warning.title", "A warning from the moderators"),
        (
            "moderation.warning.body",
            "Your {{ payload.target_type }} was reported for {{ payload.reason | replace('_', ' ') }} and a moderator found it against the rules: {{ payload.note }}\n\nRepeated violations can get your account suspended.",
        ),
        ("moderation.warning.link", "/help/community-guidelines"),
        (
            "moderation.warning.subject",
            "A warning about your Watch Party {{ payload.target_type }}",
        ),
        (
            "moderation.report_resolved.title",
            "Your report was handled",
        ),
        (
            "moderation.report_resolved.body",
            "{% if payload.outcome == 'action_taken' %}Thanks for your report of a {{ payload.target_type }}: a moderator took action.{% else %}Thanks for your report of a {{ payload.target_type }}: a moderator found no violation of the rules.{% endif %}",
        ),
        ("moderation.report_resolved.link", "/reports"),
        (
            "moderation.report_resolved.subject",
            "Your report was handled",
        ),
        (
            "admin.export_ready.title",
            "Your {{ payload.kind }} export is ready",
        ),
        (
            "admin.export_ready.body",
            "The {{ payload.kind }} export {{ actor }} asked for holds {{ payload.rows }} rows. Download it from the admin panel before {{ payload.expires_at }}.",
        ),
        (
            "admin.export_ready.link",
            "/admin/exports/{{ payload.export_id }}",
        ),
        (
            "admin.export_ready.subject",
            "Your Watch Party {{ payload.kind }} export is ready",
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
pub(super) const SPANISH: &[(&str, &str)] = &[
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
    (
        "es:search.alert.title",
        "Vídeos nuevos para \"{{ payload.name }}\"",
    ),
    (
        "es:search.alert.body",
        "{{ payload.count }} vídeo{{ '' if payload.count == 1 else 's' }} nuevo{{ '' if payload.count == 1 else 's' }} para \"{{ payload.query }}\": {{ payload.titles|join(', ') }}",
    ),
    (
        "es:search.alert.subject",
        "{{ payload.count }} vídeo{{ '' if payload.count == 1 else 's' }} nuevo{{ '' if payload.count == 1 else 's' }} para \"{{ payload.name }}\"",
    ),
    (
        "es:support.reply.title",
        "Soporte ha respondido a #{{ payload.number }}",
    ),
    (
        "es:support.reply.body",
        "{{ actor }} ha respondido a tu consulta \"{{ payload.subject }}\":\n\n{{ payload.body }}",
    ),
    (
        "es:support.reply.subject",
        "[#{{ payload.number }}] Re: {{ payload.subject }}",
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
pub(super) const TRANSLATIONS: &[&[(&str, &str)]] = &[SPANISH];

/// The language of a locale (`es-MX` → `es`) if there is a translation for it.
pub(super) fn language(locale: &str) -> Option<&'static str> {
    let primary = locale.split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES
        .iter()
        .copied()
        .find(|l| *l != "en" && *l == primary)
}

/// Template `name` in the locale's language, else English.
pub(super) fn template(
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

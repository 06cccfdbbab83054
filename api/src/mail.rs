//! Account emails rendered from templates (`api/templates/email/`, minijinja; HTML is
//! auto-escaped) into a stored email plus its outbox row.

use std::sync::LazyLock;

use minijinja::{Environment, Value};
use sqlx::PgConnection;
use wp_shared::email::{NewEmail, queue};

use crate::error::AppError;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, src) in [
        ("base.html", include_str!("../templates/email/base.html")),
        (
            "verify_email.html",
            include_str!("../templates/email/verify_email.html"),
        ),
        (
            "verify_email.txt",
            include_str!("../templates/email/verify_email.txt"),
        ),
        (
            "reset_password.html",
            include_str!("../templates/email/reset_password.html"),
        ),
        (
            "reset_password.txt",
            include_str!("../templates/email/reset_password.txt"),
        ),
        (
            "change_email.html",
            include_str!("../templates/email/change_email.html"),
        ),
        (
            "change_email.txt",
            include_str!("../templates/email/change_email.txt"),
        ),
        (
            "email_changed.html",
            include_str!("../templates/email/email_changed.html"),
        ),
        (
            "email_changed.txt",
            include_str!("../templates/email/email_changed.txt"),
        ),
        (
            "security_alert.html",
            include_str!("../templates/email/security_alert.html"),
        ),
        (
            "security_alert.txt",
            include_str!("../templates/email/security_alert.txt"),
        ),
        (
            "account_locked.html",
            include_str!("../templates/email/account_locked.html"),
        ),
        (
            "account_locked.txt",
            include_str!("../templates/email/account_locked.txt"),
        ),
    ] {
        // The templates are part of the binary; a syntax error fails the unit test below.
        env.add_template(name, src).expect("valid email template");
    }
    env
});

/// Renders `{kind}.txt` and `{kind}.html` with `ctx`.
pub fn render(kind: &str, to: &str, subject: &str, ctx: Value) -> Result<NewEmail, AppError> {
    let r = |name: String| {
        TEMPLATES
            .get_template(&name)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| AppError::Internal(anyhow::anyhow!("template {name}: {e}")))
    };
    Ok(NewEmail {
        to: to.to_owned(),
        subject: subject.to_owned(),
        body_text: r(format!("{kind}.txt"))?,
        body_html: Some(r(format!("{kind}.html"))?),
        kind: kind.to_owned(),
    })
}

/// Renders and queues an email in the caller's transaction; returns the outbox id to
/// relay after commit.
pub async fn send(
    conn: &mut PgConnection,
    kind: &str,
    to: &str,
    subject: &str,
    ctx: Value,
) -> Result<i64, AppError> {
    let email = render(kind, to, subject, ctx)?;
    let (_, outbox_id) = queue(conn, &email).await?;
    Ok(outbox_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_and_html_is_escaped() {
        for kind in [
            "verify_email",
            "reset_password",
            "change_email",
            "email_changed",
            "security_alert",
            "account_locked",
        ] {
            let e = render(
                kind,
                "a@example.com",
                "Subject",
                minijinja::context! {
                    username => "<script>x</script>", email => "a@example.com",
                    link => "https://app/x?token=abc", hours => 24, minutes => 60,
                    what => "Your password was changed.", attempts => 10,
                    until => "2026-12-02T17:00:00Z",
                },
            )
            .unwrap();
            let html = e.body_html.unwrap();
            assert!(!html.contains("<script>x"), "{kind}: {html}");
            assert!(html.contains("&lt;script&gt;"), "{kind}");
            assert!(
                e.body_text.contains("<script>x</script>"),
                "plain text is not escaped"
            );
        }
    }
}

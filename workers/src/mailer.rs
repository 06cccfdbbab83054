//! Outgoing email with lettre: pooled SMTP when `SMTP_URL` is set, otherwise `.eml`
//! files in `EMAIL_FILE_DIR` (the local default).

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{MultiPart, header::ContentType},
    transport::smtp::Error as SmtpError,
};
use wp_shared::config::{Config, EmailTransport};

/// Whether a failed send may succeed later.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// 4xx replies and other refusals that may pass: try again later.
    #[error("transient: {0}")]
    Transient(String),
    /// The server could not be reached or dropped the connection (refused, reset,
    /// timed out): an outage, not a fault of this email (`retry::is_outage`).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// 5xx replies, an invalid address: retrying cannot help.
    #[error("permanent: {0}")]
    Permanent(String),
}

#[derive(Clone)]
pub enum Mailer {
    /// The transport, and how long one send may take (`SMTP_TIMEOUT_SECS`).
    Smtp(AsyncSmtpTransport<Tokio1Executor>, std::time::Duration),
    File(AsyncFileTransport<Tokio1Executor>),
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(match &config.email {
            EmailTransport::Smtp(url) => Mailer::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
                    // The connect; lettre's async transport bounds nothing else
                    // (lettre#1027), so `send` bounds the whole conversation.
                    .timeout(Some(config.smtp_timeout))
                    .build(),
                config.smtp_timeout,
            ),
            EmailTransport::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("EMAIL_FILE_DIR {}: cannot create: {e}", dir.display())
                })?;
                Mailer::File(AsyncFileTransport::new(dir))
            }
        })
    }

    pub async fn send(&self, msg: Message) -> Result<(), SendError> {
        match self {
            // A server that took the connection and went silent (no greeting, no
            // answer to DATA) fails the send as unreachable instead of holding the job.
            Mailer::Smtp(t, limit) => match tokio::time::timeout(*limit, t.send(msg)).await {
                Ok(r) => r.map(|_| ()).map_err(classify_smtp),
                Err(_) => Err(SendError::Unreachable(format!(
                    "the SMTP server did not answer: timed out after {} s",
                    limit.as_secs()
                ))),
            },
            Mailer::File(t) => t
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(e.to_string())),
        }
    }
}

fn classify_smtp(e: SmtpError) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else if e.is_transient() || e.is_response() || e.is_client() || e.is_tls() {
        SendError::Transient(e.to_string())
    } else {
        // Connection refused or reset, a timeout, the transport shut down.
        SendError::Unreachable(e.to_string())
    }
}

/// Builds the MIME message: plain text, plus HTML as an alternative when present.
pub fn build_message(
    from: &str,
    to: &str,
    subject: &str,
    message_id: &str,
    text: &str,
    html: Option<&str>,
) -> Result<Message, SendError> {
    let from = from
        .parse()
        .map_err(|e| SendError::Permanent(format!("EMAIL_FROM is not an address: {e}")))?;
    let to = to
        .parse()
        .map_err(|e| SendError::Permanent(format!("recipient `{to}` is not an address: {e}")))?;
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(message_id.to_owned()));
    let built = match html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        )),
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_owned()),
    };
    built.map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

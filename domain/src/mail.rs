//! The ticket notification e-mail and the mailer that sends it: SMTP in production, `.eml`
//! files for the embedded setup, memory for unit tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use entity::{delivery, ticket};
pub use lettre::message::Mailbox;
use lettre::message::MultiPart;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::{Address, AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use crate::infra::config::MailConfig;
use crate::infra::smtp::{SmtpPool, SmtpTarget, StartTls};
use crate::templates::{self, Kind, Line, Notification};
use crate::vocab::{Line as TranscriptLine, Locale, Sender, Source};

/// Why a send did not go through.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Retrying cannot help (SMTP 5xx, an address the server refuses, a message we cannot build).
    #[error("permanent: {0}")]
    Permanent(String),
    /// Worth another try later (SMTP 4xx, connection refused or dropped, timeout).
    #[error("transient: {0}")]
    Transient(String),
}

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// An SMTP server (`smtp://`, with or without STARTTLS), on our no-delay connections.
    Smtp(SmtpPool),
    /// An SMTP server with TLS from the first byte (`smtps://`), on lettre's pooled transport.
    Smtps(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a folder: the embedded default.
    File(AsyncFileTransport<Tokio1Executor>),
    /// Kept in memory, for tests of rendering and routing.
    Memory(Arc<Mutex<Vec<Message>>>),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mailer::Smtp(_) => "Mailer::Smtp",
            Mailer::Smtps(_) => "Mailer::Smtps",
            Mailer::File(_) => "Mailer::File",
            Mailer::Memory(_) => "Mailer::Memory",
        })
    }
}

impl Mailer {
    /// SMTP when `SMTP_URL` is set, `.eml` files otherwise.
    pub fn from_config(cfg: &MailConfig) -> Result<Mailer, String> {
        match &cfg.smtp_url {
            Some(url) => {
                let parsed = SmtpUrl::parse(url.expose())?;
                // A password never crosses the network in clear text.
                if (parsed.user_info.is_some() || cfg.smtp_credentials.is_some())
                    && !parsed.always_tls()
                {
                    return Err(format!("SMTP credentials are set but {NO_TLS}"));
                }
                let credentials = match &cfg.smtp_credentials {
                    Some((user, password)) => {
                        Some(Credentials::new(user.clone(), password.expose().clone()))
                    }
                    None => parsed.credentials()?,
                };
                match parsed.scheme {
                    "smtp" => {
                        let tls = match &cfg.smtp_ca_file {
                            Some(path) => parsed.tls_trusting(path)?,
                            None => parsed.tls_with_public_roots()?,
                        };
                        let tls = match tls {
                            Tls::None => StartTls::Never,
                            Tls::Opportunistic(p) => StartTls::Opportunistic(p),
                            Tls::Required(p) => StartTls::Required(p),
                            Tls::Wrapper(_) => return Err(NO_TLS.into()),
                        };
                        let target = SmtpTarget {
                            host: parsed.host.to_owned(),
                            port: parsed.port.unwrap_or(25),
                            tls,
                            credentials,
                            connect_timeout: cfg.timeout,
                        };
                        Ok(Mailer::Smtp(SmtpPool::new(target, cfg.max_connections)))
                    }
                    "smtps" => {
                        let mut builder =
                            AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                                // The URL may hold a password: say what is wrong without
                                // echoing it.
                                .map_err(|e| format!("SMTP_URL is not a usable SMTP URL ({e})"))?
                                .timeout(Some(cfg.timeout));
                        if let Some(path) = &cfg.smtp_ca_file {
                            builder = builder.tls(parsed.tls_trusting(path)?);
                        }
                        if let Some(credentials) = credentials {
                            builder = builder.credentials(credentials);
                        }
                        Ok(Mailer::Smtps(builder.build()))
                    }
                    _ => Err("SMTP_URL must start with smtp:// or smtps://".into()),
                }
            }
            None => {
                std::fs::create_dir_all(&cfg.outbox_dir)
                    .map_err(|e| format!("cannot create {}: {e}", cfg.outbox_dir.display()))?;
                Ok(Mailer::File(AsyncFileTransport::new(&cfg.outbox_dir)))
            }
        }
    }

    /// Sends one message within `timeout`; returns the server's reply (or the file id).
    pub async fn send(&self, message: Message, timeout: Duration) -> Result<String, SendError> {
        // lettre's own timeout covers only connecting; a server that stalls mid-dialogue is
        // bounded here.
        let sent = tokio::time::timeout(timeout, async {
            match self {
                Mailer::Smtp(pool) => {
                    smtp_outcome(pool.send(message.envelope(), &message.formatted()).await)
                }
                Mailer::Smtps(t) => smtp_outcome(
                    t.send(message)
                        .await
                        .map_err(crate::infra::smtp::Error::from),
                ),
                Mailer::File(t) => t
                    .send(message)
                    .await
                    .map(|id| format!("written {id}.eml"))
                    .map_err(|e| SendError::Transient(e.to_string())),
                Mailer::Memory(store) => {
                    store
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(message);
                    Ok("stored".to_owned())
                }
            }
        })
        .await;
        sent.unwrap_or_else(|_| {
            Err(SendError::Transient(format!(
                "no answer within {timeout:?}"
            )))
        })
    }
}

/// `SMTP_URL` taken apart: scheme, host and port, the user part, and the query that asks for
/// TLS.
struct SmtpUrl<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
    /// `user:password`, still percent-encoded.
    user_info: Option<&'a str>,
    query: &'a str,
}

impl<'a> SmtpUrl<'a> {
    fn parse(url: &'a str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("SMTP_URL is not a usable SMTP URL")?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = before_query.split('/').next().unwrap_or_default();
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (
                host,
                Some(
                    port.parse::<u16>()
                        .map_err(|_| "SMTP_URL has an invalid port".to_owned())?,
                ),
            ),
            _ => (host_port, None),
        };
        if host.is_empty() {
            return Err("SMTP_URL has no host".into());
        }
        Ok(SmtpUrl {
            scheme,
            host: host.trim_matches(['[', ']']),
            port,
            user_info: user,
            query,
        })
    }

    /// The URL's `user:password`, percent-decoded.
    fn credentials(&self) -> Result<Option<Credentials>, String> {
        let Some(info) = self.user_info else {
            return Ok(None);
        };
        let (user, password) = info.split_once(':').unwrap_or((info, ""));
        Ok(Some(Credentials::new(
            percent_decode(user)?,
            percent_decode(password)?,
        )))
    }

    /// The URL's TLS mode, trusting the public roots.
    fn tls_with_public_roots(&self) -> Result<Tls, String> {
        let parameters =
            || TlsParameters::new(self.host.to_owned()).map_err(|e| format!("SMTP TLS: {e}"));
        Ok(if self.scheme == "smtps" {
            Tls::Wrapper(parameters()?)
        } else if self.asks("required") {
            Tls::Required(parameters()?)
        } else if self.asks("opportunistic") {
            Tls::Opportunistic(parameters()?)
        } else {
            Tls::None
        })
    }

    fn asks(&self, mode: &str) -> bool {
        self.query.split('&').any(|p| p == format!("tls={mode}"))
    }

    /// TLS from the start (`smtps://`) or STARTTLS without falling back (`?tls=required`).
    fn always_tls(&self) -> bool {
        self.scheme == "smtps" || self.asks("required")
    }

    /// That TLS mode, trusting the certificate in `ca_file` besides the public roots.
    fn tls_trusting(&self, ca_file: &std::path::Path) -> Result<Tls, String> {
        let pem = std::fs::read(ca_file)
            .map_err(|e| format!("SMTP_CA_FILE: cannot read {}: {e}", ca_file.display()))?;
        let certificate = Certificate::from_pem(&pem).map_err(|e| {
            format!(
                "SMTP_CA_FILE: {} holds no PEM certificate ({e})",
                ca_file.display()
            )
        })?;
        let parameters = TlsParameters::builder(self.host.to_owned())
            .add_root_certificate(certificate)
            .build_rustls()
            .map_err(|e| format!("SMTP_CA_FILE: {e}"))?;
        if self.scheme == "smtps" {
            Ok(Tls::Wrapper(parameters))
        } else if self.asks("required") {
            Ok(Tls::Required(parameters))
        } else if self.asks("opportunistic") {
            Ok(Tls::Opportunistic(parameters))
        } else {
            Err(NO_TLS.into())
        }
    }
}

/// `%XX` escapes of a URL's user or password.
fn percent_decode(s: &str) -> Result<String, String> {
    let bad = || "SMTP_URL has a malformed %-escape in its user or password".to_owned();
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

const NO_TLS: &str = "SMTP_URL uses no TLS: use smtps://host:465 or smtp://host:587?tls=required";

/// The server's reply, or how to treat its refusal: 5xx is final, anything else worth a retry.
fn smtp_outcome(result: Result<Response, crate::infra::smtp::Error>) -> Result<String, SendError> {
    match result {
        Ok(r) => Ok(format!(
            "{} {}",
            r.code(),
            r.message().collect::<Vec<_>>().join(" ")
        )),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
        Err(e) => Err(SendError::Transient(e.to_string())),
    }
}

/// Builds the mail of `delivery`, in its language: the notification of `ticket` for its
/// recipient, or the visitor's confirmation.
pub fn render(
    ticket: &ticket::Model,
    delivery: &delivery::Model,
    from: &Mailbox,
) -> Result<Message, SendError> {
    let to = Recipient {
        address: &delivery.recipient,
        locale: delivery.locale.unwrap_or_default(),
        message_id: &delivery.message_id,
    };
    if delivery.sources.contains(&Source::Visitor) {
        let mail = templates::confirmation(to.locale, ticket.number, ticket.created_at)
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        return build(mail, &to, None, from);
    }
    let visitor = (
        ticket.visitor_name.as_deref(),
        ticket.visitor_email.as_deref(),
    );
    render_view(notification(ticket, delivery), &to, visitor, from)
}

/// Who a mail goes to, in which language, under which Message-ID (without the domain).
#[derive(Clone, Copy, Debug)]
pub struct Recipient<'a> {
    pub address: &'a str,
    pub locale: Locale,
    pub message_id: &'a str,
}

/// What the notification of `ticket` to `delivery`'s recipient shows.
pub fn notification<'a>(
    ticket: &'a ticket::Model,
    delivery: &'a delivery::Model,
) -> Notification<'a> {
    Notification {
        number: ticket.number,
        topic: &ticket.topic,
        flow: &ticket.flow_name,
        visitor: visitor(ticket),
        opened: ticket.created_at,
        message: &ticket.message,
        answers: ticket.answers.as_ref().map(|a| &a.0),
        transcript: lines(ticket.transcript.as_deref().unwrap_or_default()),
        omitted: ticket.transcript_omitted,
        reasons: &delivery.sources,
        test: None,
    }
}

/// What the visitor gave of their name, address and phone.
fn visitor(ticket: &ticket::Model) -> Vec<&str> {
    [
        ticket.visitor_name.as_deref(),
        ticket.visitor_email.as_deref(),
        ticket.visitor_phone.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A transcript as a mail shows it.
pub fn lines(transcript: &[TranscriptLine]) -> Vec<Line> {
    transcript
        .iter()
        .map(|line| Line {
            bot: line.sender == Sender::Bot,
            text: line.text.clone(),
        })
        .collect()
}

/// Builds a mail from a view: a ticket's notification, or the sample a routing rule's test
/// e-mail sends, built exactly alike. `visitor` (name, address) is the reply address.
pub fn render_view(
    view: Notification<'_>,
    to: &Recipient<'_>,
    (visitor_name, visitor_email): (Option<&str>, Option<&str>),
    from: &Mailbox,
) -> Result<Message, SendError> {
    let mail = templates::render(Kind::TicketOpened, to.locale, view)
        .map_err(|e| SendError::Permanent(e.to_string()))?;
    let reply_to = visitor_email
        .and_then(|e| e.parse::<Address>().ok())
        // Never format-and-parse a mailbox: a CR/LF in the name must not reach a header.
        .map(|address| Mailbox::new(visitor_name.map(single_line), address));
    build(mail, to, reply_to, from)
}

/// A rendered mail as a message from `from` to `to`, marked auto-generated.
fn build(
    mail: templates::Rendered,
    to: &Recipient<'_>,
    reply_to: Option<Mailbox>,
    from: &Mailbox,
) -> Result<Message, SendError> {
    let address: Address = to
        .address
        .parse()
        .map_err(|e| SendError::Permanent(format!("recipient {:?}: {e}", to.address)))?;
    let domain = from.email.domain();
    let mut builder = Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, address))
        .subject(mail.subject)
        .message_id(Some(format!("<{}@{}>", to.message_id, domain)))
        .header(AutoGenerated);
    if let Some(reply_to) = reply_to {
        builder = builder.reply_to(reply_to);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

/// `Auto-Submitted: auto-generated` (RFC 3834): the mail was written by a program, not a
/// person, so agents' auto-responders ("out of office") do not answer it, and no mail loop
/// starts between them and the ticket address.
#[derive(Clone, Copy, Debug)]
struct AutoGenerated;

impl Header for AutoGenerated {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        if s.trim().eq_ignore_ascii_case("auto-generated") {
            Ok(AutoGenerated)
        } else {
            Err(format!("not auto-generated: {s}").into())
        }
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

fn single_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn smtp_config(url: &str, credentials: bool, ca: bool) -> MailConfig {
        MailConfig {
            smtp_url: Some(crate::infra::config::Secret::new(url.to_owned())),
            smtp_credentials: credentials.then(|| {
                (
                    "u".to_owned(),
                    crate::infra::config::Secret::new("p".to_owned()),
                )
            }),
            smtp_ca_file: ca.then(|| {
                std::path::PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../tests/fixtures/tls/ca.pem"
                ))
            }),
            from: "t@example.com".parse().unwrap(),
            outbox_dir: std::env::temp_dir(),
            timeout: Duration::from_secs(1),
            max_connections: 4,
        }
    }

    #[test]
    fn url_credentials_are_percent_decoded() {
        let url =
            SmtpUrl::parse("smtp://us%40er:p%3Ass%20w@relay.example:587?tls=required").unwrap();
        assert_eq!((url.host, url.port), ("relay.example", Some(587)));
        let credentials = url.credentials().unwrap().unwrap();
        let expected = Credentials::new("us@er".into(), "p:ss w".into());
        assert_eq!(credentials, expected);
        assert!(
            SmtpUrl::parse("smtp://u:%zz@h")
                .unwrap()
                .credentials()
                .is_err()
        );
        assert!(SmtpUrl::parse("smtp://h:notaport").is_err());
    }

    // Building an SMTP transport starts its connection pool, which needs a runtime.
    #[tokio::test]
    async fn passwords_only_travel_over_tls() {
        for url in [
            "smtp://relay.example:25",
            "smtp://relay.example:587?tls=opportunistic",
        ] {
            let refused = Mailer::from_config(&smtp_config(url, true, false)).unwrap_err();
            assert!(refused.contains("uses no TLS"), "{url}: {refused}");
            assert!(
                !refused.contains("relay.example"),
                "no URL echoed: {refused}"
            );
        }
        let in_url = smtp_config("smtp://u:secret@relay.example:25", false, false);
        let refused = Mailer::from_config(&in_url).unwrap_err();
        assert!(!refused.contains("secret"), "{refused}");
        for url in [
            "smtps://relay.example",
            "smtp://relay.example:587?tls=required",
        ] {
            assert!(
                Mailer::from_config(&smtp_config(url, true, true)).is_ok(),
                "{url}"
            );
        }
        let no_tls = smtp_config("smtp://relay.example", false, true);
        assert!(
            Mailer::from_config(&no_tls).is_err(),
            "a CA without TLS is a mistake"
        );
    }

    fn ticket() -> ticket::Model {
        ticket::Model {
            id: Uuid::nil(),
            account_id: Uuid::nil(),
            number: 42,
            flow_id: None,
            step_id: None,
            flow_name: "Destek <bot>".into(),
            topic: "TICKET_TOPIC_FOO_BAR".into(),
            topic_key: "ticket_topic_foo_bar".into(),
            status: crate::vocab::TicketStatus::Open,
            message: "<script>alert(1)</script>\r\nBcc: victim@example.com".into(),
            visitor_name: Some("Ayşe\r\nBcc: evil@example.com".into()),
            visitor_email: Some("ayse@example.com".into()),
            visitor_phone: None,
            forward_emails: Default::default(),
            conversation_id: None,
            transcript: Some(
                vec![TranscriptLine {
                    sender: Sender::Visitor,
                    text: "<img src=x>".into(),
                    at: Utc::now(),
                }]
                .into(),
            ),
            transcript_omitted: 0,
            answers: Some(crate::vocab::Answers(
                [("order_no".to_owned(), "<b>17</b>".to_owned())].into(),
            )),
            created_at: Utc::now(),
            routed_at: None,
            erased_at: None,
            assignee_id: None,
            closing_note: None,
            closed_at: None,
            confirm_visitor: false,
        }
    }

    fn delivery() -> delivery::Model {
        delivery::Model {
            id: Uuid::nil(),
            ticket_id: Uuid::nil(),
            account_id: Uuid::nil(),
            recipient: "ops@example.com".into(),
            recipient_key: "ops@example.com".into(),
            sources: vec![crate::vocab::Source::Forward].into(),
            status: crate::vocab::DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            message_id: "ticket-1.delivery-2".into(),
            smtp_response: None,
            next_attempt_at: None,
            locked_until: None,
            sent_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            locale: None,
        }
    }

    #[test]
    fn visitor_text_cannot_inject_headers_or_html() {
        let from: Mailbox = "Tickets <tickets@example.org>".parse().unwrap();
        let raw =
            String::from_utf8(render(&ticket(), &delivery(), &from).unwrap().formatted()).unwrap();
        let headers = raw.split("\r\n\r\n").next().unwrap();
        assert!(!headers.to_lowercase().contains("bcc"), "{headers}");
        assert!(headers.contains("Subject: [Ticket #42] TICKET_TOPIC_FOO_BAR"));
        assert!(headers.contains("Message-ID: <ticket-1.delivery-2@example.org>"));
        assert!(headers.contains("Reply-To:"));
        assert!(
            headers.contains("\r\nAuto-Submitted: auto-generated\r\n"),
            "{headers}"
        );
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        // Undo quoted-printable soft line breaks before looking into the HTML part.
        let decoded = raw.replace("=\r\n", "").replace("=3D", "=");
        let html = decoded.split("Content-Type: text/html").nth(1).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("Destek &lt;bot&gt;"), "{html}");
        assert!(
            !html.contains("<img") && html.contains("&lt;img src=x&gt;"),
            "{html}"
        );
        assert!(
            !html.contains("<b>17") && html.contains("&lt;b&gt;17"),
            "{html}"
        );
    }
}

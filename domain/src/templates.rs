//! The notification e-mail's words: one template per kind of mail, format (subject, text,
//! HTML) and language, rendered with minijinja. HTML templates escape every value; the text
//! templates are plain.
//!
//! The templates live in `domain/templates/` and are compiled into the binary, so a running
//! service never depends on files next to it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use crate::vocab::{Locale, Source};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Value, context};
use serde::Serialize;

/// A template failed to render: a bug in a template, caught by the snapshot tests.
#[derive(Debug, thiserror::Error)]
#[error("mail template {name}: {source}")]
pub struct TemplateError {
    name: String,
    #[source]
    source: minijinja::Error,
}

/// A kind of mail the service sends.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A new ticket, to one of its recipients.
    TicketOpened,
    /// The visitor's confirmation of their ticket, with its number.
    TicketReceived,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::TicketOpened => "ticket_opened",
            Kind::TicketReceived => "ticket_received",
        }
    }
}

/// A rendered mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// A template environment with the service's settings, for every template it renders (the
/// mails here, the operators' page in `api`): block tags leave no blank lines, an unknown
/// value is an error, and HTML is escaped with the service's one escaping.
pub fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Block tags on lines of their own leave no blank lines in the text part.
    #[allow(clippy::expect_used, reason = "a fixed, valid syntax configuration")]
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    // A value the template does not know is a bug in the template, not an empty string.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // HTML templates escape with the service's one HTML escaping (`vocab::escape`,
    // checked by the property tests).
    env.set_formatter(|out, state, value| {
        if matches!(state.auto_escape(), AutoEscape::Html) && !value.is_safe() {
            out.write_str(&crate::vocab::escape(&value.to_string()))
                .map_err(minijinja::Error::from)
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = new_environment();
        for (name, source) in templates![
            "ticket_opened.en.subject",
            "ticket_opened.en.txt",
            "ticket_opened.en.html",
            "ticket_opened.tr.subject",
            "ticket_opened.tr.txt",
            "ticket_opened.tr.html",
            "ticket_received.en.subject",
            "ticket_received.en.txt",
            "ticket_received.en.html",
            "ticket_received.tr.subject",
            "ticket_received.tr.txt",
            "ticket_received.tr.html",
        ] {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
        }
        env
    })
}

/// How dates are written in a language.
fn date_format(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "%Y-%m-%d %H:%M UTC",
        Locale::Tr => "%d.%m.%Y %H:%M UTC",
    }
}

/// The most characters of one answer a mail shows; a longer one is cut (the ticket keeps it
/// whole). With at most one answer per visitor turn, a mail's answers stay bounded.
pub const MAIL_ANSWER_CHARS: usize = 1_000;

/// `text` cut to `max` characters, with an ellipsis when cut.
fn shortened(text: &str, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (format!("{}…", &text[..end]), true),
        None => (text.to_owned(), false),
    }
}

#[derive(Serialize)]
struct Answer {
    field: String,
    value: String,
}

/// One line of the transcript a mail shows.
#[derive(Serialize)]
pub struct Line {
    /// Said by the bot (else by the visitor).
    pub bot: bool,
    pub text: String,
}

/// What a notification e-mail shows, built by the notification code (`mail`): the templates
/// read nothing else, so they depend on no feature module and no stored row.
pub struct Notification<'a> {
    pub number: i64,
    pub topic: &'a str,
    /// The chatbot's name.
    pub flow: &'a str,
    /// What the visitor gave of their name, e-mail address and phone, in that order.
    pub visitor: Vec<&'a str>,
    pub opened: DateTime<Utc>,
    pub message: &'a str,
    /// The answers the conversation collected, by field.
    pub answers: Option<&'a BTreeMap<String, String>>,
    /// The transcript, oldest first (already bounded when the ticket was opened).
    pub transcript: Vec<Line>,
    /// Earlier lines of the conversation the transcript leaves out.
    pub omitted: i32,
    /// Why this recipient gets it.
    pub reasons: &'a [Source],
    /// Set for the sample a rule's test e-mail sends: the rule's tag.
    pub test: Option<&'a str>,
}

/// Renders `kind` in `locale` for what `view` holds.
pub fn render(
    kind: Kind,
    locale: Locale,
    view: Notification<'_>,
) -> Result<Rendered, TemplateError> {
    let mut answers_cut = false;
    let answers: Vec<Answer> = view
        .answers
        .into_iter()
        .flatten()
        .map(|(field, value)| {
            let (value, cut) = shortened(value, MAIL_ANSWER_CHARS);
            answers_cut |= cut;
            Answer {
                field: field.clone(),
                value,
            }
        })
        .collect();
    let test = view.test;
    let values = context! {
        test => test.is_some(),
        rule_tag => test.unwrap_or_default(),
        number => view.number,
        topic => view.topic,
        flow => view.flow,
        visitor => Value::from(Serde(&view.visitor)),
        opened => view.opened.format(date_format(locale)).to_string(),
        message => view.message,
        answers => Value::from(Serde(&answers)),
        transcript => Value::from(Serde(&view.transcript)),
        omitted => view.omitted.max(0),
        answers_cut => answers_cut,
        reasons => Value::from(Serde(view.reasons)),
    };
    render_values(kind, locale, &values)
}

/// The visitor's confirmation of ticket `number`, opened at `opened`: a fixed text with the
/// number only, so whoever types a stranger's address into a chat widget cannot make the
/// service mail them words of their choosing.
pub fn confirmation(
    locale: Locale,
    number: i64,
    opened: DateTime<Utc>,
) -> Result<Rendered, TemplateError> {
    let values = context! {
        number => number,
        opened => opened.format(date_format(locale)).to_string(),
    };
    render_values(Kind::TicketReceived, locale, &values)
}

fn render_values(kind: Kind, locale: Locale, values: &Value) -> Result<Rendered, TemplateError> {
    let env = environment();
    let one = |format: &str| -> Result<String, TemplateError> {
        let name = format!("{}.{}.{format}", kind.name(), locale.as_str());
        env.get_template(&name)
            .and_then(|t| t.render(values))
            .map_err(|source| TemplateError { name, source })
    };
    Ok(Rendered {
        // One line, whatever a topic holds: header folding is lettre's, line breaks are not.
        subject: one("subject")?
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .trim()
            .to_owned(),
        text: one("txt")?,
        html: one("html")?,
    })
}

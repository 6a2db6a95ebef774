//! The notification e-mail's words: one template per kind of mail, format (subject, text,
//! HTML) and language, rendered with minijinja. HTML templates escape every value; the text
//! templates are plain.
//!
//! The templates live in `domain/templates/` and are compiled into the binary, so a running
//! service never depends on files next to it.

use std::sync::OnceLock;

use entity::{delivery, ticket};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Value, context};
use serde::Serialize;

use crate::routing::{self, Source};

/// A template failed to render: a bug in a template, caught by the snapshot tests.
#[derive(Debug, thiserror::Error)]
#[error("mail template {name}: {source}")]
pub struct TemplateError {
    name: String,
    #[source]
    source: minijinja::Error,
}

/// A language notification e-mails are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Locale {
    #[default]
    En,
    Tr,
}

impl Locale {
    /// Every supported language.
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Tr];

    /// The stored code (`en`, `tr`).
    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Tr => "tr",
        }
    }

    /// Reads a stored code; anything unknown (a row from a newer version) reads as English.
    pub fn from_code(code: Option<&str>) -> Locale {
        match code {
            Some(c) if c.eq_ignore_ascii_case("tr") => Locale::Tr,
            _ => Locale::En,
        }
    }

    /// How dates are written in this language.
    fn date_format(self) -> &'static str {
        match self {
            Locale::En => "%Y-%m-%d %H:%M UTC",
            Locale::Tr => "%d.%m.%Y %H:%M UTC",
        }
    }
}

/// A kind of mail the service sends.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A new ticket, to one of its recipients.
    TicketOpened,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::TicketOpened => "ticket_opened",
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

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
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
        // HTML templates escape with the service's one HTML escaping (`mail::escape`, also
        // used by the operators' page and checked by the property tests).
        env.set_formatter(|out, state, value| {
            if matches!(state.auto_escape(), AutoEscape::Html) && !value.is_safe() {
                out.write_str(&crate::mail::escape(&value.to_string()))
                    .map_err(minijinja::Error::from)
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        for (name, source) in templates![
            "ticket_opened.en.subject",
            "ticket_opened.en.txt",
            "ticket_opened.en.html",
            "ticket_opened.tr.subject",
            "ticket_opened.tr.txt",
            "ticket_opened.tr.html",
        ] {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
        }
        env
    })
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

#[derive(Serialize)]
struct Line {
    bot: bool,
    text: String,
}

#[derive(Serialize)]
struct Reason {
    kind: &'static str,
    tag: Option<String>,
}

/// Renders `kind` for `ticket` as `delivery`'s recipient gets it. `test` marks the sample a
/// rule's test e-mail sends, naming the rule's tag.
pub fn render(
    kind: Kind,
    locale: Locale,
    ticket: &ticket::Model,
    delivery: &delivery::Model,
    test: Option<&str>,
) -> Result<Rendered, TemplateError> {
    let visitor: Vec<&str> = [
        ticket.visitor_name.as_deref(),
        ticket.visitor_email.as_deref(),
        ticket.visitor_phone.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut answers_cut = false;
    let answers: Vec<Answer> = ticket
        .answers
        .as_ref()
        .and_then(|a| a.as_object())
        .map(|a| {
            a.iter()
                .map(|(field, value)| {
                    let (value, cut) =
                        shortened(value.as_str().unwrap_or_default(), MAIL_ANSWER_CHARS);
                    answers_cut |= cut;
                    Answer {
                        field: field.clone(),
                        value,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    // Already bounded when the ticket was opened (`conversations::TICKET_TRANSCRIPT_LINES`).
    let transcript: Vec<Line> = crate::conversations::ticket_transcript(ticket)
        .into_iter()
        .map(|line| Line {
            bot: line.sender == crate::conversations::BOT,
            text: line.text,
        })
        .collect();
    let reasons: Vec<Reason> = routing::sources(delivery)
        .into_iter()
        .map(|s| match s {
            Source::Rule { tag, .. } => Reason {
                kind: "rule",
                tag: Some(tag),
            },
            Source::Wildcard { .. } => Reason {
                kind: "wildcard",
                tag: None,
            },
            Source::Forward => Reason {
                kind: "forward",
                tag: None,
            },
        })
        .collect();
    let values = context! {
        test => test.is_some(),
        rule_tag => test.unwrap_or_default(),
        number => ticket.number,
        topic => ticket.topic.as_str(),
        flow => ticket.flow_name.as_str(),
        visitor => Value::from(Serde(&visitor)),
        opened => ticket.created_at.format(locale.date_format()).to_string(),
        message => ticket.message.as_str(),
        answers => Value::from(Serde(&answers)),
        transcript => Value::from(Serde(&transcript)),
        omitted => ticket.transcript_omitted.max(0),
        answers_cut => answers_cut,
        reasons => Value::from(Serde(&reasons)),
    };
    let env = environment();
    let one = |format: &str| -> Result<String, TemplateError> {
        let name = format!("{}.{}.{format}", kind.name(), locale.code());
        env.get_template(&name)
            .and_then(|t| t.render(&values))
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

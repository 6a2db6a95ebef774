//! The bottom layer of the domain: words every feature shares, depending on nothing else in
//! the crate (features import from here, never the other way round).

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
    pub fn date_format(self) -> &'static str {
        match self {
            Locale::En => "%Y-%m-%d %H:%M UTC",
            Locale::Tr => "%d.%m.%Y %H:%M UTC",
        }
    }
}

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// The stored states and kinds, and the typed JSON values: defined beside the models, since a
// column's type must belong to the model's crate (`entity::values`).
pub use entity::values::{
    Addresses, Answers, Awaiting, ChoiceOption, ChoiceOptions, ConversationStatus, DeliveryStatus,
    EventNames, KeyKind, Line, PublishedStep, PublishedSteps, Sender, Source, Sources, StepKind,
    TicketStatus, Transcript, WebhookStatus,
};

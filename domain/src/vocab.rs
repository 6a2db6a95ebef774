//! The bottom layer of the domain: words every feature shares, depending on nothing else in
//! the crate (features import from here, never the other way round).

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
    Addresses, Answers, Awaiting, ChangeKind, ChoiceOption, ChoiceOptions, ConversationStatus,
    DeliveryStatus, EventNames, KeyKind, Line, Locale, PublishedStep, PublishedSteps, Sender,
    Source, Sources, StepKind, TicketStatus, Transcript, WebhookStatus,
};

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

/// A stored value that is none of its type's values: a corrupt row, or one written by a newer
/// version. Surfaces as an error (and a log line), never as a default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the database holds {value:?}, which is no {what}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// A state or kind stored as text: one enum, its spellings, and a parse that refuses what it
/// does not know.
macro_rules! stored {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// As stored.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads a stored value.
            pub fn parse(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_owned() }),
                }
            }
        }
    };
}

stored!(
    /// The state of an e-mail delivery.
    DeliveryStatus, "delivery status" {
        /// Created, first attempt not made yet.
        Pending = "PENDING",
        /// A worker holds it and is talking to the SMTP server.
        Sending = "SENDING",
        /// The last attempt failed transiently; another is scheduled.
        Retrying = "RETRYING",
        /// Accepted by the SMTP server. Final.
        Sent = "SENT",
        /// Refused for good, or out of attempts. Final.
        Failed = "FAILED",
    }
);

stored!(
    /// The state of a webhook delivery.
    WebhookStatus, "webhook delivery status" {
        Pending = "PENDING",
        Sending = "SENDING",
        Retrying = "RETRYING",
        /// The receiver answered 2xx. Final.
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
    }
);

stored!(
    /// The kind of a chatbot step.
    StepKind, "step kind" {
        Message = "message",
        Question = "question",
        Choice = "choice",
        Ticket = "ticket",
        End = "end",
    }
);

stored!(
    /// The state of a conversation as stored (an idle one may have expired by time since).
    ConversationStatus, "conversation status" {
        Active = "ACTIVE",
        Completed = "COMPLETED",
        Expired = "EXPIRED",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_parse_back_and_unknown_ones_are_refused() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Ok(*s));
        }
        for s in WebhookStatus::ALL {
            assert_eq!(WebhookStatus::parse(s.as_str()), Ok(*s));
        }
        for s in StepKind::ALL {
            assert_eq!(StepKind::parse(s.as_str()), Ok(*s));
        }
        for s in ConversationStatus::ALL {
            assert_eq!(ConversationStatus::parse(s.as_str()), Ok(*s));
        }
        assert_eq!(
            DeliveryStatus::parse("DONE").unwrap_err().to_string(),
            "the database holds \"DONE\", which is no delivery status"
        );
        assert!(StepKind::parse("MESSAGE").is_err(), "stored spellings only");
    }
}

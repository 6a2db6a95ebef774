//! What the columns hold, as types: stored states and kinds as active enums (the column keeps
//! the same text it always did, so no data changes), and JSON columns as typed values.
//!
//! They live here, not in the domain's vocabulary, because a column's type must belong to the
//! crate of its model; `domain::vocab` re-exports them. A stored value that is none of these
//! (a corrupt row, one a newer version wrote) fails the read with a decode error, which the
//! domain reports as `Error::Corrupt`: never a silent default.

use std::collections::BTreeMap;

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A state or kind stored as text: one enum, its spellings (in the column and in JSON), and
/// every value listed.
macro_rules! stored {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize,
            Deserialize,
        )]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        pub enum $name {
            $($(#[$vdoc])* #[sea_orm(string_value = $text)] #[serde(rename = $text)] $variant),+
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
        }
    };
}

stored!(
    /// The state of an e-mail delivery.
    DeliveryStatus {
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
        /// Cancelled by an operator or the account's admin before it was sent. Final.
        Cancelled = "CANCELLED",
    }
);

stored!(
    /// The state of a webhook delivery.
    WebhookStatus {
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
    StepKind {
        Message = "message",
        Question = "question",
        Choice = "choice",
        Ticket = "ticket",
        End = "end",
    }
);

stored!(
    /// The state of a conversation as stored (an idle one may have expired by time since).
    ConversationStatus {
        Active = "ACTIVE",
        Completed = "COMPLETED",
        Expired = "EXPIRED",
    }
);

stored!(
    /// What a conversation waits for from the visitor.
    Awaiting {
        /// A typed answer to a question step.
        Text = "TEXT",
        /// A button of a choice step.
        Choice = "CHOICE",
        /// Nothing: the flow has ended.
        Nothing = "NOTHING",
    }
);

stored!(
    /// Who said a line of a conversation.
    Sender {
        Bot = "BOT",
        Visitor = "VISITOR",
    }
);

stored!(
    /// What an API key may do.
    KeyKind {
        /// Everything inside its account.
        Admin = "admin",
        /// Only what a public chat widget needs.
        Widget = "widget",
    }
);

stored!(
    /// A language notification e-mails are written in and the bot speaks on its own.
    Locale {
        En = "en",
        Tr = "tr",
    }
);

impl Default for Locale {
    /// English, for an account that has not chosen.
    fn default() -> Self {
        Locale::En
    }
}

stored!(
    /// The state of a ticket.
    TicketStatus {
        /// Still to be handled.
        Open = "OPEN",
        /// Handled; reopening puts it back to `Open`.
        Closed = "CLOSED",
    }
);

stored!(
    /// What a person changed on a ticket (a line of its timeline).
    ChangeKind {
        Assigned = "ASSIGNED",
        Unassigned = "UNASSIGNED",
        Closed = "CLOSED",
        Reopened = "REOPENED",
    }
);

stored!(
    /// An action on the machinery (a line of the operators' record).
    OperatorActionKind {
        PauseSending = "PAUSE_SENDING",
        ResumeSending = "RESUME_SENDING",
        RetryDelivery = "RETRY_DELIVERY",
        RetryFailedDeliveries = "RETRY_FAILED_DELIVERIES",
        RetryWebhookDelivery = "RETRY_WEBHOOK_DELIVERY",
        CancelDelivery = "CANCEL_DELIVERY",
    }
);

/// A JSON column holding a list: a typed value, read and written whole.
macro_rules! json_list {
    ($(#[$doc:meta])* $name:ident($item:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
        #[serde(transparent)]
        pub struct $name(pub Vec<$item>);

        impl std::ops::Deref for $name {
            type Target = [$item];
            fn deref(&self) -> &[$item] {
                &self.0
            }
        }

        impl From<Vec<$item>> for $name {
            fn from(items: Vec<$item>) -> Self {
                $name(items)
            }
        }
    };
}

json_list!(
    /// E-mail addresses: a rule's recipients, a ticket step's forward list.
    Addresses(String)
);

json_list!(
    /// What put a recipient on a delivery.
    Sources(Source)
);

json_list!(
    /// The buttons of a choice step.
    ChoiceOptions(ChoiceOption)
);

json_list!(
    /// The steps of a published flow version.
    PublishedSteps(PublishedStep)
);

json_list!(
    /// A ticket's copy of its conversation's transcript, oldest first.
    Transcript(Line)
);

json_list!(
    /// The events a webhook is subscribed to.
    EventNames(String)
);

/// Why a recipient gets a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A rule whose tag equals the ticket's topic.
    Rule { rule_id: Uuid, tag: String },
    /// A `*` rule.
    Wildcard { rule_id: Uuid },
    /// The ticket step's forward list.
    Forward,
    /// The visitor's own confirmation with the ticket number (not a notification).
    Visitor,
}

/// A button of a choice step, as stored and published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub id: Uuid,
    pub label: String,
    pub next: Option<Uuid>,
}

/// A step as published: everything a conversation needs, frozen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedStep {
    pub id: Uuid,
    pub position: i32,
    pub kind: StepKind,
    pub text: Option<String>,
    pub field: Option<String>,
    pub topic: Option<String>,
    pub confirmation_message: Option<String>,
    #[serde(default)]
    pub forward_emails: Vec<String>,
    pub next: Option<Uuid>,
    #[serde(default)]
    pub options: Vec<ChoiceOption>,
    /// Ticket steps: mail the visitor a confirmation (versions published before the setting
    /// existed send none).
    #[serde(default)]
    pub confirm_visitor: bool,
}

/// A transcript line as stored on a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub sender: Sender,
    pub text: String,
    pub at: DateTimeUtc,
}

/// The answers a conversation collected, by field (`name`, `email`, `order_no`, ...), in the
/// order of their field names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct Answers(pub BTreeMap<String, String>);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a panic is how a test fails")]

    use super::*;
    use sea_orm::ActiveEnum;
    use serde_json::json;

    #[test]
    fn states_keep_their_stored_spellings() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.to_value(), s.as_str());
            assert_eq!(DeliveryStatus::try_from_value(&s.to_value()).unwrap(), *s);
        }
        assert_eq!(StepKind::Question.to_value(), "question");
        assert_eq!(json!(Sender::Bot), json!("BOT"));
        assert!(
            DeliveryStatus::try_from_value(&"DONE".to_owned()).is_err(),
            "an unknown stored value is an error"
        );
    }

    #[test]
    fn json_columns_keep_the_shape_rows_already_hold() {
        let sources: Sources = vec![
            Source::Rule {
                rule_id: Uuid::nil(),
                tag: "orders".into(),
            },
            Source::Forward,
        ]
        .into();
        assert_eq!(
            serde_json::to_value(&sources).unwrap(),
            json!([
                {"kind": "rule", "rule_id": Uuid::nil(), "tag": "orders"},
                {"kind": "forward"}
            ])
        );
        let stored = json!([{"sender": "VISITOR", "text": "hi", "at": "2026-11-25T09:30:00Z"}]);
        let transcript: Transcript = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(transcript[0].sender, Sender::Visitor);
        assert_eq!(serde_json::to_value(&transcript).unwrap(), stored);
        let step = json!({
            "id": Uuid::nil(), "position": 0, "kind": "ticket", "text": null, "field": null,
            "topic": "orders", "confirmation_message": "Talep alındı", "next": null
        });
        let published: PublishedStep = serde_json::from_value(step).unwrap();
        assert_eq!(published.kind, StepKind::Ticket);
        assert!(serde_json::from_value::<Addresses>(json!("a@example.com")).is_err());
    }
}

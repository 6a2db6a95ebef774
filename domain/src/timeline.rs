//! A ticket's history as people read it: opened by which flow, routed to whom, who was
//! notified through which rule, which delivery is being retried or has failed and why, and
//! who assigned, closed or reopened it.
//!
//! Built from the ticket, its delivery rows, which hold each delivery's current state and
//! last error, so it costs no write on the delivery path, and the changes people made
//! (`ticket_work`), one row each. A delivery shows its latest attempt;
//! earlier failed attempts of a delivery that later succeeded are summed up in its count.

use chrono::{DateTime, Utc};
use entity::{delivery, ticket, ticket_change};
use uuid::Uuid;

use crate::vocab::Source;
use crate::vocab::{ChangeKind, DeliveryStatus};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    /// The ticket was opened by a chatbot.
    Opened,
    /// The worker resolved the recipients.
    Routed,
    /// No routing rule and no forward address matched: nobody is notified.
    Unrouted,
    /// The SMTP server accepted the mail to a recipient.
    Notified,
    /// The last attempt failed transiently; another one is scheduled.
    DeliveryRetrying,
    /// The delivery failed for good.
    DeliveryFailed,
    /// Someone cancelled the delivery before it was sent.
    DeliveryCancelled,
    /// The visitor's data was erased from the ticket on request.
    Erased,
    /// The SMTP server accepted the visitor's confirmation.
    VisitorConfirmed,
    /// The step asks for a visitor confirmation, but the address had its hourly share.
    ConfirmationSkipped,
    /// Someone gave the ticket to an agent.
    Assigned,
    /// Someone took the ticket from its agent.
    Unassigned,
    /// Someone closed the ticket.
    Closed,
    /// Someone reopened the ticket.
    Reopened,
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    /// One English sentence, for people.
    pub message: String,
    /// The delivery the event is about, if any.
    pub delivery_id: Option<Uuid>,
    /// Who made the change, for the changes people make.
    pub actor: Option<String>,
}

/// The ticket's events, oldest first.
pub fn events(
    ticket: &ticket::Model,
    deliveries: &[delivery::Model],
    changes: &[ticket_change::Model],
) -> crate::Result<Vec<Event>> {
    let mut out = vec![Event {
        at: ticket.created_at,
        kind: EventKind::Opened,
        message: format!(
            "Opened by flow \"{}\" with topic {}",
            ticket.flow_name, ticket.topic
        ),
        delivery_id: None,
        actor: None,
    }];
    let is_confirmation = |d: &&delivery::Model| d.sources.contains(&Source::Visitor);
    let (confirmations, notifications): (Vec<&delivery::Model>, Vec<&delivery::Model>) =
        deliveries.iter().partition(is_confirmation);
    if let Some(first) = notifications.iter().map(|d| d.created_at).min() {
        let n = notifications.len();
        out.push(Event {
            at: first,
            kind: EventKind::Routed,
            message: format!(
                "Routed to {n} recipient{}: {}",
                if n == 1 { "" } else { "s" },
                notifications
                    .iter()
                    .map(|d| d.recipient.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            delivery_id: None,
            actor: None,
        });
    } else if let Some(routed_at) = ticket.routed_at {
        out.push(Event {
            at: routed_at,
            kind: EventKind::Unrouted,
            message: format!(
                "No routing rule matches topic {} and the step forwards to nobody: no one was notified",
                ticket.topic
            ),
            delivery_id: None,
            actor: None,
        });
    }
    if let (true, Some(_), Some(routed_at), true) = (
        ticket.confirm_visitor,
        &ticket.visitor_email,
        ticket.routed_at,
        confirmations.is_empty(),
    ) {
        out.push(Event {
            at: routed_at,
            kind: EventKind::ConfirmationSkipped,
            message: format!(
                "No confirmation was mailed to the visitor: their address had {} from this account within the hour",
                crate::limits::VISITOR_CONFIRMATIONS_PER_HOUR
            ),
            delivery_id: None,
            actor: None,
        });
    }
    for d in deliveries {
        let attempts = match d.attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        let error = d.last_error.as_deref().unwrap_or("no reply");
        let event = match d.status {
            DeliveryStatus::Sent if is_confirmation(&d) => Some((
                d.sent_at.unwrap_or(d.updated_at),
                EventKind::VisitorConfirmed,
                format!(
                    "Mailed the visitor their confirmation at {} ({attempts})",
                    d.recipient
                ),
            )),
            DeliveryStatus::Sent => Some((
                d.sent_at.unwrap_or(d.updated_at),
                EventKind::Notified,
                format!(
                    "Notified {} {} ({attempts})",
                    d.recipient,
                    because(&d.sources)
                ),
            )),
            DeliveryStatus::Retrying => Some((
                d.updated_at,
                EventKind::DeliveryRetrying,
                format!(
                    "Attempt {} to {} failed: {error}; next attempt at {}",
                    d.attempts,
                    d.recipient,
                    d.next_attempt_at
                        .map_or_else(|| "once due".to_owned(), |t| t.to_rfc3339())
                ),
            )),
            DeliveryStatus::Failed => Some((
                d.updated_at,
                EventKind::DeliveryFailed,
                format!(
                    "Delivery to {} failed after {attempts}: {}",
                    d.recipient,
                    // The worker words an exhausted retry as "gave up after N attempts: ...".
                    error
                        .split_once(" attempts: ")
                        .filter(|(head, _)| head.starts_with("gave up after "))
                        .map_or(error, |(_, reason)| reason)
                ),
            )),
            DeliveryStatus::Cancelled => Some((
                d.updated_at,
                EventKind::DeliveryCancelled,
                // The last error reads "cancelled by <who>: <why>".
                format!("Delivery to {} {error}", d.recipient),
            )),
            _ => None,
        };
        if let Some((at, kind, message)) = event {
            out.push(Event {
                at,
                kind,
                message,
                delivery_id: Some(d.id),
                actor: None,
            });
        }
    }
    if let Some(at) = ticket.erased_at {
        out.push(Event {
            at,
            kind: EventKind::Erased,
            message: "The visitor's name, contact details, message, transcript and answers were erased on request".to_owned(),
            delivery_id: None,
            actor: None,
        });
    }
    for c in changes {
        let (kind, message) = match c.kind {
            ChangeKind::Assigned => (
                EventKind::Assigned,
                format!(
                    "Assigned to {} by {}",
                    c.agent_name.as_deref().unwrap_or("an agent"),
                    c.actor
                ),
            ),
            ChangeKind::Unassigned => (EventKind::Unassigned, format!("Unassigned by {}", c.actor)),
            ChangeKind::Closed => (
                EventKind::Closed,
                match &c.note {
                    Some(note) => format!("Closed by {}: {note}", c.actor),
                    None => format!("Closed by {}", c.actor),
                },
            ),
            ChangeKind::Reopened => (EventKind::Reopened, format!("Reopened by {}", c.actor)),
        };
        out.push(Event {
            at: c.at,
            kind,
            message,
            delivery_id: None,
            actor: Some(c.actor.clone()),
        });
    }
    out.sort_by_key(|e| (e.at, e.kind));
    Ok(out)
}

/// Why a recipient got the ticket, as words.
fn because(sources: &[Source]) -> String {
    let reasons: Vec<String> = sources
        .iter()
        .map(|s| match s {
            Source::Rule { tag, .. } => format!("via rule {tag}"),
            Source::Wildcard { .. } => "via the * rule".to_owned(),
            Source::Forward => "as the ticket step's forward address".to_owned(),
            Source::Visitor => "as the visitor's confirmation".to_owned(),
        })
        .collect();
    if reasons.is_empty() {
        "via routing".to_owned()
    } else {
        reasons.join(" and ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn ticket() -> ticket::Model {
        ticket::Model {
            id: Uuid::from_u128(1),
            account_id: Uuid::nil(),
            number: 7,
            flow_id: None,
            step_id: None,
            flow_name: "Destek".into(),
            topic: "offline_message".into(),
            topic_key: "offline_message".into(),
            status: crate::vocab::TicketStatus::Open,
            message: "hi".into(),
            visitor_name: None,
            visitor_email: None,
            visitor_phone: None,
            forward_emails: Default::default(),
            conversation_id: None,
            transcript: None,
            transcript_omitted: 0,
            answers: None,
            created_at: at(0),
            routed_at: None,
            erased_at: None,
            assignee_id: None,
            closing_note: None,
            closed_at: None,
            confirm_visitor: false,
        }
    }

    fn delivery(
        n: u128,
        to: &str,
        state: DeliveryStatus,
        attempts: i32,
        error: Option<&str>,
    ) -> delivery::Model {
        delivery::Model {
            id: Uuid::from_u128(n),
            ticket_id: Uuid::from_u128(1),
            account_id: Uuid::nil(),
            recipient: to.into(),
            recipient_key: to.to_lowercase(),
            sources: vec![
                Source::Rule {
                    rule_id: Uuid::from_u128(9),
                    tag: "offline_message".into(),
                },
                Source::Wildcard {
                    rule_id: Uuid::from_u128(10),
                },
            ]
            .into(),
            status: state,
            attempts,
            last_error: error.map(str::to_owned),
            message_id: String::new(),
            smtp_response: None,
            next_attempt_at: (state == DeliveryStatus::Retrying).then(|| at(600)),
            locked_until: None,
            sent_at: (state == DeliveryStatus::Sent).then(|| at(2)),
            created_at: at(1),
            updated_at: at(3 + n as i64),
            locale: None,
        }
    }

    #[test]
    fn reads_as_the_story_of_the_ticket() {
        let deliveries = [
            delivery(2, "a@x.com", DeliveryStatus::Sent, 1, None),
            delivery(
                3,
                "b@y.com",
                DeliveryStatus::Failed,
                8,
                Some("gave up after 8 attempts: 451 4.3.0 try later"),
            ),
            delivery(
                4,
                "c@z.com",
                DeliveryStatus::Retrying,
                2,
                Some("451 greylisted"),
            ),
            delivery(
                5,
                "d@z.com",
                DeliveryStatus::Failed,
                1,
                Some("550 5.1.1 no such user"),
            ),
            delivery(6, "e@z.com", DeliveryStatus::Pending, 0, None),
        ];
        let got: Vec<(EventKind, String)> = events(&ticket(), &deliveries, &[])
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.message))
            .collect();
        let expected = [
            (
                EventKind::Opened,
                "Opened by flow \"Destek\" with topic offline_message",
            ),
            (
                EventKind::Routed,
                "Routed to 5 recipients: a@x.com, b@y.com, c@z.com, d@z.com, e@z.com",
            ),
            (
                EventKind::Notified,
                "Notified a@x.com via rule offline_message and via the * rule (1 attempt)",
            ),
            (
                EventKind::DeliveryFailed,
                "Delivery to b@y.com failed after 8 attempts: 451 4.3.0 try later",
            ),
            (
                EventKind::DeliveryRetrying,
                "Attempt 2 to c@z.com failed: 451 greylisted; next attempt at 2027-01-15T08:10:00+00:00",
            ),
            (
                EventKind::DeliveryFailed,
                "Delivery to d@z.com failed after 1 attempt: 550 5.1.1 no such user",
            ),
        ];
        let expected: Vec<(EventKind, String)> = expected
            .iter()
            .map(|(k, m)| (*k, (*m).to_owned()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_routed_ticket_without_recipients_says_nobody_was_notified() {
        let mut t = ticket();
        assert_eq!(events(&t, &[], &[]).unwrap().len(), 1, "not routed yet");
        t.routed_at = Some(at(1));
        let got = events(&t, &[], &[]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].kind, EventKind::Unrouted);
    }
}

//! A routing rule's test e-mail: a sample ticket with the rule's tag, rendered with the same
//! templates and sent through the same mailer as real notifications, so an admin sees what
//! agents will get and whether the SMTP server takes the addresses.

use std::time::Duration;

use entity::{account, delivery, ticket};
use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};
use uuid::Uuid;

use crate::mail::{self, Mailbox, Mailer, SendError};
use crate::routing::Source;
use crate::vocab::{DeliveryStatus, Locale};
use crate::{Error, Result, now, rules, validate};

/// Where test e-mails go out: the service's own mailer and sender.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub mailer: Mailer,
    pub from: Mailbox,
    pub timeout: Duration,
}

/// What the SMTP server said to one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleSent {
    pub recipient: String,
    pub accepted: bool,
    /// The server's reply, or why the mail did not go out.
    pub reply: String,
    pub locale: Locale,
}

/// Sends the rule's sample to each of its addresses, side by side, and reports each answer.
/// Nothing is stored and nothing is retried: the answer is for the admin looking at it.
pub async fn send_sample(
    db: &impl ConnectionTrait,
    outbound: &Outbound,
    account_id: Uuid,
    rule_id: Uuid,
) -> Result<Vec<SampleSent>> {
    let rule = rules::find_rule(db, account_id, rule_id)
        .await?
        .ok_or(Error::NotFound("routing rule"))?;
    let account_locale = account::Entity::find_by_id(account_id)
        .select_only()
        .column(account::Column::Locale)
        .into_tuple::<String>()
        .one(db)
        .await?;
    let locale = Locale::from_code(rule.locale.as_deref().or(account_locale.as_deref()));
    let ticket = sample_ticket(account_id, &rule.tag, locale);
    let source = if rule.tag_key == validate::WILDCARD {
        Source::Wildcard { rule_id: rule.id }
    } else {
        Source::Rule {
            rule_id: rule.id,
            tag: rule.tag.clone(),
        }
    };
    let sends = rules::emails(&rule)?.into_iter().map(|recipient| {
        let delivery = sample_delivery(&ticket, &recipient, &source, locale);
        let ticket = &ticket;
        let tag = rule.tag.as_str();
        async move {
            let result = match mail::render_test(ticket, &delivery, &outbound.from, tag) {
                Ok(message) => outbound.mailer.send(message, outbound.timeout).await,
                Err(e) => Err(e),
            };
            let (accepted, reply) = match result {
                Ok(reply) => (true, reply),
                Err(SendError::Permanent(e) | SendError::Transient(e)) => (false, e),
            };
            SampleSent {
                recipient,
                accepted,
                reply,
                locale,
            }
        }
    });
    Ok(futures_util::future::join_all(sends).await)
}

fn sample_ticket(account_id: Uuid, tag: &str, locale: Locale) -> ticket::Model {
    let (flow, message, question) = match locale {
        Locale::En => (
            "Sample chatbot",
            "Hello, my order has not arrived yet.",
            "How can we help?",
        ),
        Locale::Tr => (
            "Örnek sohbet botu",
            "Merhaba, siparişim henüz gelmedi.",
            "Size nasıl yardımcı olabiliriz?",
        ),
    };
    let topic = if tag == validate::WILDCARD {
        "sample_topic"
    } else {
        tag
    };
    let at = now();
    ticket::Model {
        id: Uuid::now_v7(),
        account_id,
        number: 0,
        flow_id: None,
        step_id: None,
        flow_name: flow.to_owned(),
        topic: topic.to_owned(),
        topic_key: validate::tag_key(topic),
        status: "OPEN".to_owned(),
        message: message.to_owned(),
        visitor_name: Some("Ayşe Yılmaz".to_owned()),
        visitor_email: Some("visitor@example.com".to_owned()),
        visitor_phone: None,
        forward_emails: serde_json::json!([]),
        conversation_id: None,
        transcript: Some(serde_json::json!([
            { "sender": crate::conversations::BOT, "text": question, "at": at },
            { "sender": crate::conversations::VISITOR, "text": message, "at": at },
        ])),
        transcript_omitted: 0,
        answers: Some(serde_json::json!({ "order_no": "A-17" })),
        created_at: at,
        routed_at: Some(at),
    }
}

fn sample_delivery(
    ticket: &ticket::Model,
    recipient: &str,
    source: &Source,
    locale: Locale,
) -> delivery::Model {
    let id = Uuid::now_v7();
    delivery::Model {
        id,
        ticket_id: ticket.id,
        account_id: ticket.account_id,
        recipient: recipient.to_owned(),
        recipient_key: recipient.to_lowercase(),
        sources: serde_json::json!([source]),
        status: DeliveryStatus::Pending.as_str().to_owned(),
        attempts: 0,
        last_error: None,
        message_id: format!("rule-test-{id}"),
        smtp_response: None,
        next_attempt_at: None,
        locked_until: None,
        sent_at: None,
        created_at: ticket.created_at,
        updated_at: ticket.created_at,
        locale: Some(locale.code().to_owned()),
    }
}

//! A routing rule's test e-mail: a sample ticket with the rule's tag, rendered with the same
//! templates and sent through the same mailer as real notifications, so an admin sees what
//! agents will get and whether the SMTP server takes the addresses.

use std::time::Duration;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::account;
use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};
use uuid::Uuid;

use crate::mail::{self, Mailbox, Mailer, Recipient, SendError};
use crate::templates::{Line, Notification};
use crate::vocab::{Locale, Source};
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
    let rule = rules::with_agents(db, vec![rule])
        .await?
        .pop()
        .ok_or(Error::NotFound("routing rule"))?;
    let addresses = rule.addresses();
    let rule = &rule.rule;
    let account_locale = account::Entity::find_by_id(account_id)
        .select_only()
        .column(account::Column::Locale)
        .into_tuple::<Locale>()
        .one(db)
        .await?;
    let locale = rule.locale.or(account_locale).unwrap_or_default();
    let sample = Sample::new(&rule.tag, locale);
    let reasons = [if rule.tag_key == validate::WILDCARD {
        Source::Wildcard { rule_id: rule.id }
    } else {
        Source::Rule {
            rule_id: rule.id,
            tag: rule.tag.clone(),
        }
    }];
    let sends = addresses.into_iter().map(|recipient| {
        let message_id = format!("rule-test-{}", Uuid::now_v7());
        let to = Recipient {
            address: recipient,
            locale,
            message_id: &message_id,
        };
        let message = mail::render_view(
            sample.view(&reasons, &rule.tag),
            &to,
            (Some(sample.visitor_name), Some(SAMPLE_VISITOR_EMAIL)),
            &outbound.from,
        );
        async move {
            let result = match message {
                Ok(message) => outbound.mailer.send(message, outbound.timeout).await,
                Err(e) => Err(e),
            };
            let (accepted, reply) = match result {
                Ok(reply) => (true, reply),
                Err(SendError::Permanent(e) | SendError::Transient(e)) => (false, e),
            };
            SampleSent {
                recipient: recipient.to_owned(),
                accepted,
                reply,
                locale,
            }
        }
    });
    Ok(futures_util::future::join_all(sends).await)
}

/// The reply address of the sample ticket: a reserved domain that reaches nobody.
const SAMPLE_VISITOR_EMAIL: &str = "visitor@example.com";

/// The made-up ticket a test e-mail shows, in the rule's language.
struct Sample {
    flow: &'static str,
    message: &'static str,
    question: &'static str,
    visitor_name: &'static str,
    topic: String,
    answers: BTreeMap<String, String>,
    at: DateTime<Utc>,
}

impl Sample {
    fn new(tag: &str, locale: Locale) -> Self {
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
        Sample {
            flow,
            message,
            question,
            visitor_name: "Ayşe Yılmaz",
            topic: topic.to_owned(),
            answers: [("order_no".to_owned(), "A-17".to_owned())].into(),
            at: now(),
        }
    }

    fn view<'a>(&'a self, reasons: &'a [Source], tag: &'a str) -> Notification<'a> {
        Notification {
            number: 0,
            topic: &self.topic,
            flow: self.flow,
            visitor: vec![self.visitor_name, SAMPLE_VISITOR_EMAIL],
            opened: self.at,
            message: self.message,
            answers: Some(&self.answers),
            transcript: vec![
                Line {
                    bot: true,
                    text: self.question.to_owned(),
                },
                Line {
                    bot: false,
                    text: self.message.to_owned(),
                },
            ],
            omitted: 0,
            reasons,
            test: Some(tag),
        }
    }
}

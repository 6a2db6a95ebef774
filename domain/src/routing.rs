//! Recipient resolution: who gets a new ticket. The addresses of every rule whose tag equals
//! the ticket's topic, of every `*` rule, and the ticket step's forward addresses,
//! de-duplicated ignoring case. Each delivery remembers what put its recipient there.

use chrono::{DateTime, Utc};
use entity::{account, delivery, routing_rule, ticket};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::vocab::{DeliveryStatus, Locale};
use crate::{Result, now, rules, validate};

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
}

/// One resolved recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub sources: Vec<Source>,
}

/// Resolves recipients from the account's rules (any order; only matching ones count) and the
/// step's forward list. Order: matching rules, then `*` rules, then forward addresses, each
/// rule in creation order; the first spelling of an address wins.
pub fn resolve(topic: &str, rules: &[routing_rule::Model], forward: &[String]) -> Vec<Recipient> {
    let topic_key = validate::tag_key(topic);
    let mut out: Vec<Recipient> = Vec::new();
    let mut add = |address: &str, source: Source| {
        let key = address.to_lowercase();
        match out.iter_mut().find(|r| r.address.to_lowercase() == key) {
            Some(existing) => {
                if !existing.sources.contains(&source) {
                    existing.sources.push(source);
                }
            }
            None => out.push(Recipient {
                address: address.to_owned(),
                sources: vec![source],
            }),
        }
    };
    let mut sorted: Vec<&routing_rule::Model> = rules.iter().collect();
    sorted.sort_by_key(|r| (r.created_at, r.id));
    // A corrupt rule cannot name its recipients: the others are still notified, and it is
    // logged here and answers an error wherever it is read.
    let emails = |rule: &routing_rule::Model| {
        rules::emails(rule).unwrap_or_else(|error| {
            tracing::error!(rule_id = %rule.id, %error, "routing rule skipped: unreadable addresses");
            Vec::new()
        })
    };
    for rule in sorted.iter().filter(|r| r.tag_key == topic_key) {
        for address in emails(rule) {
            add(
                &address,
                Source::Rule {
                    rule_id: rule.id,
                    tag: rule.tag.clone(),
                },
            );
        }
    }
    for rule in sorted.iter().filter(|r| r.tag_key == validate::WILDCARD) {
        for address in emails(rule) {
            add(&address, Source::Wildcard { rule_id: rule.id });
        }
    }
    for address in forward {
        add(address, Source::Forward);
    }
    out
}

/// The sources stored on a delivery.
pub fn sources(delivery: &delivery::Model) -> Vec<Source> {
    serde_json::from_value(delivery.sources.clone()).unwrap_or_default()
}

/// A routed ticket: the ticket, how many recipients it has, and the deliveries whose first
/// attempt may still be due.
#[derive(Clone, Debug)]
pub struct Planned {
    pub ticket: ticket::Model,
    pub recipients: usize,
    /// Rows this call created, already claimed for their first attempt (`SENDING`, attempt 1,
    /// leased until the caller's `claim_until`): the caller sends them without another write.
    pub claimed: Vec<delivery::Model>,
    /// Rows of an earlier run whose first attempt may still be due: `PENDING` ones, and
    /// `SENDING` ones of a worker that may have died mid-send. The caller claims each (or
    /// takes it over when its lease has run out) before sending.
    pub due: Vec<Uuid>,
}

/// Creates the deliveries of a ticket, one row per recipient, in one statement, each claimed
/// for its first attempt until `claim_until` (a row nobody else can see yet needs no separate
/// claim). Running it again for the same ticket adds nothing and returns the deliveries still
/// due, so a re-run routing job (a worker died, the database failed) picks up where the last
/// one stopped. `None` when the ticket is gone.
pub async fn plan_deliveries<C: ConnectionTrait>(
    db: &C,
    ticket_id: Uuid,
    claim_until: DateTime<Utc>,
) -> Result<Option<Planned>> {
    // The account comes along for its e-mail language.
    let Some((ticket, account)) = ticket::Entity::find_by_id(ticket_id)
        .find_also_related(account::Entity)
        .one(db)
        .await?
    else {
        // Deleted since it was queued: nothing to deliver.
        return Ok(None);
    };
    let account_locale = account.map(|a| a.locale);
    let rules = routing_rule::Entity::find()
        .filter(routing_rule::Column::AccountId.eq(ticket.account_id))
        .filter(
            routing_rule::Column::TagKey
                .is_in([ticket.topic_key.clone(), validate::WILDCARD.to_owned()]),
        )
        .order_by_asc(routing_rule::Column::CreatedAt)
        .all(db)
        .await?;
    let forward: Vec<String> =
        serde_json::from_value(ticket.forward_emails.clone()).unwrap_or_default();
    let recipients = resolve(&ticket.topic, &rules, &forward);
    let created_at = now();
    let rows: Vec<delivery::Model> = recipients
        .iter()
        .map(|r| {
            let id = Uuid::now_v7();
            delivery::Model {
                id,
                ticket_id: ticket.id,
                account_id: ticket.account_id,
                recipient: r.address.clone(),
                recipient_key: r.address.to_lowercase(),
                sources: serde_json::json!(r.sources),
                status: DeliveryStatus::Sending.as_str().to_owned(),
                attempts: 1,
                last_error: None,
                message_id: format!("ticket-{}.delivery-{}", ticket.id, id),
                smtp_response: None,
                next_attempt_at: None,
                locked_until: Some(claim_until),
                sent_at: None,
                created_at,
                updated_at: created_at,
                locale: Some(
                    locale_for(r, &rules)
                        .or(account_locale.as_deref())
                        .map_or(Locale::default(), |c| Locale::from_code(Some(c)))
                        .code()
                        .to_owned(),
                ),
            }
        })
        .collect();
    // A recipient already on the ticket (an earlier run) keeps its row: the insert skips it.
    let mut claimed = Vec::new();
    if !rows.is_empty() {
        let inserted =
            delivery::Entity::insert_many(rows.iter().cloned().map(delivery::ActiveModel::from))
                .on_conflict_do_nothing_on([
                    delivery::Column::TicketId,
                    delivery::Column::RecipientKey,
                ])
                .exec_with_returning_keys(db)
                .await?;
        if let sea_orm::TryInsertResult::Inserted(ids) = inserted {
            claimed = rows.into_iter().filter(|r| ids.contains(&r.id)).collect();
        }
    }
    if ticket.routed_at.is_none() {
        // For the ticket's timeline: it tells "matched nobody" from "not routed yet".
        ticket::Entity::update_many()
            .col_expr(ticket::Column::RoutedAt, Expr::value(now()))
            .filter(ticket::Column::Id.eq(ticket.id))
            .filter(ticket::Column::RoutedAt.is_null())
            .exec(db)
            .await?;
    }
    // Every recipient is new (the first run): nothing of an earlier run to look for.
    let due = if claimed.len() == recipients.len() {
        Vec::new()
    } else {
        delivery::Entity::find()
            .select_only()
            .column(delivery::Column::Id)
            .filter(delivery::Column::TicketId.eq(ticket.id))
            .filter(delivery::Column::Status.is_in([
                DeliveryStatus::Pending.as_str(),
                DeliveryStatus::Sending.as_str(),
            ]))
            .filter(delivery::Column::Attempts.lte(1))
            .filter(delivery::Column::Id.is_not_in(claimed.iter().map(|d| d.id)))
            .order_by_asc(delivery::Column::Id)
            .into_tuple()
            .all(db)
            .await?
    };
    Ok(Some(Planned {
        ticket,
        recipients: recipients.len(),
        claimed,
        due,
    }))
}

/// The language a recipient's mail is written in: that of the first rule that put the
/// recipient there and has one of its own; `None` leaves it to the account.
fn locale_for<'a>(recipient: &Recipient, rules: &'a [routing_rule::Model]) -> Option<&'a str> {
    recipient.sources.iter().find_map(|source| {
        let id = match source {
            Source::Rule { rule_id, .. } | Source::Wildcard { rule_id } => rule_id,
            Source::Forward => return None,
        };
        rules
            .iter()
            .find(|r| r.id == *id)
            .and_then(|r| r.locale.as_deref())
    })
}

/// The idempotency key of a delivery's `attempt`-th send job: at most one job per attempt.
pub fn attempt_key(delivery_id: Uuid, attempt: i32) -> String {
    format!("send:{delivery_id}:{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn rule(n: i64, tag: &str, emails: &[&str]) -> routing_rule::Model {
        routing_rule::Model {
            id: Uuid::from_u128(n as u128),
            account_id: Uuid::nil(),
            tag: tag.into(),
            tag_key: validate::tag_key(tag),
            emails: serde_json::json!(emails),
            created_at: Utc.timestamp_opt(1_700_000_000 + n, 0).unwrap(),
            locale: None,
        }
    }

    #[test]
    fn matching_wildcard_and_forward_addresses_merge_without_duplicates() {
        let rules = vec![
            rule(3, "*", &["boss@example.com", "ops@example.com"]),
            rule(
                1,
                "TICKET_TOPIC_FOO_BAR",
                &["Ops@Example.com", "foo@example.com"],
            ),
            rule(2, "offline_message", &["night@example.com"]),
            rule(4, "never_used", &["ghost@example.com"]),
        ];
        let got = resolve(
            "ticket_topic_foo_bar",
            &rules,
            &["fwd@example.com".into(), "FOO@example.com".into()],
        );
        let addresses: Vec<&str> = got.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            addresses,
            [
                "Ops@Example.com",
                "foo@example.com",
                "boss@example.com",
                "fwd@example.com"
            ]
        );
        assert_eq!(
            got[0].sources,
            vec![
                Source::Rule {
                    rule_id: Uuid::from_u128(1),
                    tag: "TICKET_TOPIC_FOO_BAR".into()
                },
                Source::Wildcard {
                    rule_id: Uuid::from_u128(3)
                },
            ]
        );
        assert_eq!(
            got[1].sources.len(),
            2,
            "foo@ is on the rule and the forward list"
        );
        assert_eq!(got[3].sources, vec![Source::Forward]);
    }

    #[test]
    fn no_rules_and_no_forward_means_no_recipients() {
        assert!(
            resolve(
                "offline_message",
                &[rule(1, "other", &["a@example.com"])],
                &[]
            )
            .is_empty()
        );
    }
}

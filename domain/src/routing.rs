//! Recipient resolution: who gets a new ticket. The addresses of every rule whose tag equals
//! the ticket's topic, of every `*` rule (their agents' addresses as they are now, then
//! their typed ones), and the ticket step's forward addresses,
//! de-duplicated ignoring case. Each recipient remembers what put it there ([`Source`]).
//! Writing the deliveries is `deliveries::create`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use entity::{flow_version, live_topic, routing_rule, step};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::rules::{Rule, with_agents};
use crate::vocab::Source;
use crate::{Error, Result, validate};

/// One resolved recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub sources: Vec<Source>,
}

/// Resolves recipients from the account's rules (any order; only matching ones count) and the
/// step's forward list. Order: matching rules, then `*` rules, then forward addresses, each
/// rule in creation order; the first spelling of an address wins.
pub fn resolve<'a>(
    topic: &str,
    rules: impl IntoIterator<Item = &'a Rule>,
    forward: &[String],
) -> Vec<Recipient> {
    let topic_key = validate::tag_key(topic);
    let mut out: Vec<Recipient> = Vec::new();
    // Each address's place in `out`, by its lower-cased form: an account's rules may name
    // 50,000 addresses, and finding each in the list would take quadratic time.
    let mut places: HashMap<String, usize> = HashMap::new();
    let mut add = |address: &str, source: Source| match places.entry(address.to_lowercase()) {
        Entry::Occupied(place) => {
            let existing = &mut out[*place.get()];
            if !existing.sources.contains(&source) {
                existing.sources.push(source);
            }
        }
        Entry::Vacant(place) => {
            place.insert(out.len());
            out.push(Recipient {
                address: address.to_owned(),
                sources: vec![source],
            });
        }
    };
    let mut sorted: Vec<&Rule> = rules.into_iter().collect();
    sorted.sort_by_key(|r| (r.rule.created_at, r.rule.id));
    for rule in sorted.iter().filter(|r| r.rule.tag_key == topic_key) {
        for address in rule.addresses() {
            add(
                address,
                Source::Rule {
                    rule_id: rule.rule.id,
                    tag: rule.rule.tag.clone(),
                },
            );
        }
    }
    for rule in sorted
        .iter()
        .filter(|r| r.rule.tag_key == validate::WILDCARD)
    {
        for address in rule.addresses() {
            add(
                address,
                Source::Wildcard {
                    rule_id: rule.rule.id,
                },
            );
        }
    }
    for address in forward {
        add(address, Source::Forward);
    }
    out
}

/// The rules that can match any of `topics` (pairs of an account and a lower-cased topic: for
/// each, the account's rules of that topic and `*`), oldest first, with their agents, in two
/// queries; [`resolve`] takes a ticket's own from them with [`of_account`]. A rule whose
/// stored addresses cannot be read is skipped with an error log, so the others are still
/// notified; it answers an error wherever else it is read.
pub async fn matching_rules(
    db: &impl ConnectionTrait,
    topics: &[(Uuid, &str)],
) -> Result<Vec<Rule>> {
    // Per account, its own topics and `*`: not another account's topics, whose rules no
    // ticket here can match.
    let mut wanted: BTreeMap<Uuid, BTreeSet<&str>> = BTreeMap::new();
    for (account, key) in topics {
        wanted
            .entry(*account)
            .or_insert_with(|| BTreeSet::from([validate::WILDCARD]))
            .insert(key);
    }
    let query = || {
        let any = wanted
            .iter()
            .fold(Condition::any(), |any, (account, tags)| {
                any.add(
                    Condition::all()
                        .add(routing_rule::Column::AccountId.eq(*account))
                        .add(routing_rule::Column::TagKey.is_in(tags.iter().copied())),
                )
            });
        routing_rule::Entity::find()
            .filter(any)
            .order_by_asc(routing_rule::Column::CreatedAt)
            .order_by_asc(routing_rule::Column::Id)
    };
    let rules = match query().all(db).await.map_err(Error::from) {
        Err(Error::Corrupt(_)) => {
            // Rare (a corrupt row): read them one by one to find it.
            let ids: Vec<Uuid> = query()
                .select_only()
                .column(routing_rule::Column::Id)
                .into_tuple()
                .all(db)
                .await?;
            let mut rules: Vec<routing_rule::Model> = Vec::with_capacity(ids.len());
            for id in ids {
                match routing_rule::Entity::find_by_id(id)
                    .one(db)
                    .await
                    .map_err(Error::from)
                {
                    Ok(rule) => rules.extend(rule),
                    Err(Error::Corrupt(error)) => {
                        tracing::error!(rule_id = %id, %error, "routing rule skipped: unreadable addresses");
                    }
                    Err(e) => return Err(e),
                }
            }
            rules
        }
        read => read?,
    };
    with_agents(db, rules).await
}

/// The rules of `rules` that belong to `account` ([`resolve`] sorts out the tags).
pub fn of_account(rules: &[Rule], account: Uuid) -> impl Iterator<Item = &Rule> {
    rules.iter().filter(move |r| r.rule.account_id == account)
}

/// The ticket steps with the topic `key` in the live (latest published) versions of the
/// account's flows, with their forward addresses: of at most [`PREVIEW_STEPS`] steps, and
/// each flow's live version read once.
async fn published_steps(
    db: &impl ConnectionTrait,
    account: Uuid,
    key: &str,
) -> Result<Vec<(Uuid, Vec<String>)>> {
    let live: Vec<(Uuid, Uuid)> = live_topic::Entity::find()
        .select_only()
        .column(live_topic::Column::FlowId)
        .column(live_topic::Column::StepId)
        .filter(live_topic::Column::AccountId.eq(account))
        .filter(live_topic::Column::TopicKey.eq(key))
        .limit(PREVIEW_STEPS)
        .into_tuple()
        .all(db)
        .await?;
    if live.is_empty() {
        return Ok(Vec::new());
    }
    let flows: BTreeSet<Uuid> = live.iter().map(|(flow, _)| *flow).collect();
    let wanted: BTreeSet<Uuid> = live.iter().map(|(_, step)| *step).collect();
    let versions = flow_version::Entity::find()
        .filter(flow_version::Column::AccountId.eq(account))
        .filter(flow_version::Column::FlowId.is_in(flows))
        // Each flow's newest version only (a flow may keep many).
        .filter(Expr::cust(
            "number = (SELECT MAX(v.number) FROM flow_versions v \
             WHERE v.flow_id = flow_versions.flow_id)",
        ))
        .all(db)
        .await?;
    Ok(versions
        .iter()
        .flat_map(|v| v.steps.iter())
        .filter(|s| wanted.contains(&s.id))
        .map(|s| (s.id, s.forward_emails.clone()))
        .collect())
}

/// Ticket steps the routing preview reads at most for one topic (the first ones created):
/// their forward addresses; an account may use a topic in up to two million steps.
pub const PREVIEW_STEPS: u64 = 1_000;

/// Who a new ticket would be mailed to now: [`preview`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    /// The topic asked about, trimmed; `None` for none.
    pub topic: Option<String>,
    /// Whether some ticket step of the account uses the topic now.
    pub tag_known: bool,
    /// Each address once, as [`resolve`] orders them, with what brings it in.
    pub recipients: Vec<PreviewRecipient>,
}

/// One address of a [`Preview`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewRecipient {
    pub address: String,
    pub sources: Vec<Source>,
    /// The ticket steps whose forward addresses hold it (of the first [`PREVIEW_STEPS`]).
    pub steps: Vec<Uuid>,
}

/// Who a new ticket of `account` with `topic` (none: no topic, so only `*` rules) would be
/// mailed to now: the rules the worker would read and the forward addresses of the ticket
/// steps that use the topic (as designed, and in the flows' live versions), resolved by
/// [`resolve`], the worker's own code. A ticket opened at one step gets the rules' addresses
/// and that step's forward addresses; the preview shows every step's, each with the steps it
/// comes from. At most about 2,000 steps and 1,000 live versions are read.
pub async fn preview(
    db: &impl ConnectionTrait,
    account: Uuid,
    topic: Option<&str>,
) -> Result<Preview> {
    let topic = topic.map(str::trim).unwrap_or_default();
    let key = validate::tag_key(topic);
    let rules = matching_rules(db, &[(account, key.as_str())]).await?;
    let steps: Vec<(Uuid, entity::values::Addresses)> = if topic.is_empty() {
        Vec::new()
    } else {
        step::Entity::find()
            .select_only()
            .column(step::Column::Id)
            .column(step::Column::ForwardEmails)
            .filter(step::Column::AccountId.eq(account))
            .filter(step::Column::TopicKey.eq(key.as_str()))
            .order_by_asc(step::Column::CreatedAt)
            .order_by_asc(step::Column::Id)
            .limit(PREVIEW_STEPS)
            .into_tuple()
            .all(db)
            .await?
    };
    // A chatbot conversation takes the forward addresses from the flow's live version.
    let mut steps: Vec<(Uuid, Vec<String>)> = steps
        .into_iter()
        .map(|(id, forward)| (id, forward.0))
        .collect();
    if !topic.is_empty() {
        steps.extend(published_steps(db, account, &key).await?);
    }
    let forward: Vec<String> = steps.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
    let tag_known = !topic.is_empty()
        && crate::rules::known_tag_keys(db, account)
            .await?
            .contains(&key);
    let mut forwarded_by: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (id, addresses) in &steps {
        for address in addresses.iter() {
            let by = forwarded_by.entry(address.to_lowercase()).or_default();
            if !by.contains(id) {
                by.push(*id);
            }
        }
    }
    let recipients = resolve(topic, &rules, &forward)
        .into_iter()
        .map(|r| PreviewRecipient {
            steps: forwarded_by
                .remove(&r.address.to_lowercase())
                .unwrap_or_default(),
            address: r.address,
            sources: r.sources,
        })
        .collect();
    Ok(Preview {
        topic: (!topic.is_empty()).then(|| topic.to_owned()),
        tag_known,
        recipients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn rule(n: i64, tag: &str, emails: &[&str]) -> Rule {
        let rule = routing_rule::Model {
            id: Uuid::from_u128(n as u128),
            account_id: Uuid::nil(),
            tag: tag.into(),
            tag_key: validate::tag_key(tag),
            emails: emails
                .iter()
                .map(|e| (*e).to_owned())
                .collect::<Vec<_>>()
                .into(),
            created_at: Utc.timestamp_opt(1_700_000_000 + n, 0).unwrap(),
            locale: None,
        };
        Rule {
            rule,
            agents: Vec::new(),
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

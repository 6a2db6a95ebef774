//! Topic tags (aggregated from the ticket steps of all flows) and the routing rules that
//! send new tickets to e-mail addresses by tag.

use std::collections::{BTreeMap, HashSet};

use entity::{conversation, flow_version, live_topic, routing_rule, step};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use uuid::Uuid;

use crate::vocab::{Locale, StepKind};
use crate::{Error, Result, limits, now, validate};

/// A topic tag and the ticket steps that use it.
#[derive(Clone, Debug)]
pub struct TopicTag {
    /// The spelling of the first step that used the tag.
    pub tag: String,
    /// Draft steps using the tag; empty when only a published version still does.
    pub steps: Vec<step::Model>,
}

/// Distinct topics of all ticket steps of all flows in the account, sorted ignoring case: the
/// drafts, each flow's live (latest published) version, and older versions that active
/// conversations still run on - so a rule keeps its tag while any chatbot can still open a
/// ticket with it. `*` is not a topic and never appears.
/// With `with_steps` false the steps are left empty and only two short columns are read:
/// what the routing form needs, fast for accounts with thousands of flows.
pub async fn topic_tags(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    with_steps: bool,
) -> Result<Vec<TopicTag>> {
    let mut by_key: BTreeMap<String, TopicTag> = BTreeMap::new();
    if with_steps {
        let drafts = step::Entity::find()
            .filter(step::Column::AccountId.eq(account_id))
            .filter(step::Column::Kind.eq(StepKind::Ticket))
            .order_by_asc(step::Column::CreatedAt)
            .order_by_asc(step::Column::Id)
            .all(db)
            .await?;
        for s in drafts {
            let (Some(key), Some(topic)) = (s.topic_key.clone(), s.topic.clone()) else {
                continue;
            };
            by_key
                .entry(key)
                .or_insert_with(|| TopicTag {
                    tag: topic,
                    steps: Vec::new(),
                })
                .steps
                .push(s);
        }
    } else {
        // The first spelling of each key, by index probes: one per distinct key to find the
        // next key, one to find its first step, instead of reading every ticket step.
        for row in db.query_all_raw(firsts(db, account_id, true)).await? {
            let key: String = row.try_get("", "topic_key")?;
            let topic: String = row.try_get("", "topic")?;
            by_key.insert(
                key,
                TopicTag {
                    tag: topic,
                    steps: Vec::new(),
                },
            );
        }
    }
    for topic in published_topics(db, account_id).await? {
        by_key
            .entry(validate::tag_key(&topic))
            .or_insert_with(|| TopicTag {
                tag: topic,
                steps: Vec::new(),
            });
    }
    Ok(by_key.into_values().collect())
}

/// The distinct topic keys of the account's draft steps, each with the spelling of its first
/// step when `spelling`: a loose index scan (a recursive walk from key to next key), so the
/// cost follows the number of distinct tags, not of steps. Both engines run it.
fn firsts(db: &impl ConnectionTrait, account_id: Uuid, spelling: bool) -> Statement {
    let backend = db.get_database_backend();
    let p = match backend {
        DatabaseBackend::Postgres => "$1",
        _ => "?1",
    };
    let topic = if spelling {
        format!(
            ", (SELECT s.topic FROM steps s WHERE s.account_id = {p} AND s.topic_key = k.topic_key \
               ORDER BY s.created_at, s.id LIMIT 1) AS topic"
        )
    } else {
        String::new()
    };
    Statement::from_sql_and_values(
        backend,
        format!(
            "WITH RECURSIVE k(topic_key) AS (\
               SELECT (SELECT MIN(topic_key) FROM steps WHERE account_id = {p}) \
               UNION ALL \
               SELECT (SELECT MIN(s.topic_key) FROM steps s \
                       WHERE s.account_id = {p} AND s.topic_key > k.topic_key) \
               FROM k WHERE k.topic_key IS NOT NULL\
             ) SELECT k.topic_key{topic} FROM k WHERE k.topic_key IS NOT NULL"
        ),
        [account_id.into()],
    )
}

/// Topics of each flow's live version and of the older versions active conversations run on.
async fn published_topics(db: &impl ConnectionTrait, account_id: Uuid) -> Result<Vec<String>> {
    let live = live_topic::Entity::find()
        .filter(live_topic::Column::AccountId.eq(account_id))
        .order_by_asc(live_topic::Column::Topic)
        .all(db)
        .await?;
    let in_use: Vec<Uuid> = conversation::Entity::find()
        .select_only()
        .column(conversation::Column::FlowVersionId)
        .distinct()
        .filter(conversation::Column::AccountId.eq(account_id))
        .filter(conversation::Column::Status.eq(crate::vocab::ConversationStatus::Active))
        .into_tuple()
        .all(db)
        .await?;
    let running = if in_use.is_empty() {
        Vec::new()
    } else {
        flow_version::Entity::find()
            .filter(flow_version::Column::Id.is_in(in_use))
            .all(db)
            .await?
    };
    let running_topics = running
        .into_iter()
        .flat_map(|v| v.steps.0)
        .filter(|s| s.kind == StepKind::Ticket)
        .filter_map(|s| s.topic);
    Ok(live
        .into_iter()
        .map(|t| t.topic)
        .chain(running_topics)
        .collect())
}

/// Lower-cased topics some ticket step of the account uses now.
pub async fn known_tag_keys(
    db: &impl ConnectionTrait,
    account_id: Uuid,
) -> Result<HashSet<String>> {
    // Distinct keys by index probes, one per key; only ticket steps have one.
    let mut keys = HashSet::new();
    for row in db.query_all_raw(firsts(db, account_id, false)).await? {
        keys.insert(row.try_get::<String>("", "topic_key")?);
    }
    keys.extend(
        published_topics(db, account_id)
            .await?
            .iter()
            .map(|t| validate::tag_key(t)),
    );
    Ok(keys)
}

/// Whether a rule with this tag can ever match: `*`, or a tag a ticket step uses.
pub fn tag_known(rule: &routing_rule::Model, known: &HashSet<String>) -> bool {
    rule.tag_key == validate::WILDCARD || known.contains(&rule.tag_key)
}

/// A rule as the routing form submits it.
#[derive(Clone, Debug)]
pub struct RuleInput {
    pub tag: String,
    pub emails: Vec<String>,
    /// The language of its e-mails; `None`: the account's.
    pub locale: Option<Locale>,
}

struct RuleColumns {
    tag: String,
    emails: Vec<String>,
    locale: Option<Locale>,
}

impl RuleInput {
    fn validate(&self) -> Result<RuleColumns> {
        Ok(RuleColumns {
            tag: validate::rule_tag("tag", &self.tag)?,
            emails: validate::emails("emails", &self.emails, true)?,
            locale: self.locale,
        })
    }
}

impl RuleColumns {
    fn apply(self, model: &mut routing_rule::ActiveModel) {
        model.tag_key = Set(validate::tag_key(&self.tag));
        model.tag = Set(self.tag);
        model.emails = Set(self.emails.into());
        model.locale = Set(self.locale);
    }
}

/// Creates a rule. A tag no flow uses is accepted (it is flagged through [`tag_known`]).
pub async fn create_rule(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    input: &RuleInput,
) -> Result<routing_rule::Model> {
    let columns = input.validate()?;
    limits::check::<routing_rule::Entity>(
        db,
        routing_rule::Column::AccountId.eq(account_id),
        "routing rules",
        limits::ROUTING_RULES,
    )
    .await?;
    let mut model = routing_rule::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account_id),
        created_at: Set(now()),
        ..Default::default()
    };
    columns.apply(&mut model);
    Ok(model.insert(db).await?)
}

/// Replaces a rule's tag, recipients and language.
pub async fn update_rule(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
    input: &RuleInput,
) -> Result<routing_rule::Model> {
    let columns = input.validate()?;
    let existing = find_rule(db, account_id, id)
        .await?
        .ok_or(Error::NotFound("routing rule"))?;
    let mut model: routing_rule::ActiveModel = existing.into();
    columns.apply(&mut model);
    Ok(model.update(db).await?)
}

/// Deletes a rule.
pub async fn delete_rule(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> Result<Uuid> {
    let result = routing_rule::Entity::delete_many()
        .filter(routing_rule::Column::Id.eq(id))
        .filter(routing_rule::Column::AccountId.eq(account_id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(Error::NotFound("routing rule"));
    }
    Ok(id)
}

/// One rule of the account, or `None`.
pub async fn find_rule(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<routing_rule::Model>> {
    Ok(routing_rule::Entity::find_by_id(id)
        .filter(routing_rule::Column::AccountId.eq(account_id))
        .one(db)
        .await?)
}

/// The account's rules, oldest first (the order the routing list shows).
pub async fn list_rules(
    db: &impl ConnectionTrait,
    account_id: Uuid,
) -> Result<Vec<routing_rule::Model>> {
    Ok(routing_rule::Entity::find()
        .filter(routing_rule::Column::AccountId.eq(account_id))
        .order_by_asc(routing_rule::Column::CreatedAt)
        .order_by_asc(routing_rule::Column::Id)
        .all(db)
        .await?)
}

//! Topic tags (aggregated from the ticket steps of all flows) and the routing rules that
//! send new tickets to agents and typed e-mail addresses by tag.

use std::collections::{BTreeMap, HashMap, HashSet};

use entity::{agent, conversation, flow_version, live_topic, routing_rule, rule_agent, step};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, Statement, TransactionSession,
    TransactionTrait,
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
    /// Agents of the account, in the order the form lists them.
    pub agent_ids: Vec<Uuid>,
    /// Typed addresses.
    pub emails: Vec<String>,
    /// The language of its e-mails; `None`: the account's.
    pub locale: Option<Locale>,
}

struct RuleColumns {
    tag: String,
    agent_ids: Vec<Uuid>,
    emails: Vec<String>,
    locale: Option<Locale>,
}

impl RuleInput {
    fn validate(&self) -> Result<RuleColumns> {
        let emails = validate::emails("emails", &self.emails, false)?;
        let mut seen = HashSet::new();
        let agent_ids: Vec<Uuid> = self
            .agent_ids
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect();
        if agent_ids.is_empty() && emails.is_empty() {
            return Err(Error::invalid(
                "emails",
                "name at least one agent (agentIds) or e-mail address",
            ));
        }
        if agent_ids.len() + emails.len() > validate::MAX_EMAILS {
            return Err(Error::invalid(
                "agentIds",
                format!(
                    "a rule names at most {} recipients, agents and addresses together",
                    validate::MAX_EMAILS
                ),
            ));
        }
        Ok(RuleColumns {
            tag: validate::rule_tag("tag", &self.tag)?,
            agent_ids,
            emails,
            locale: self.locale,
        })
    }
}

impl RuleColumns {
    fn apply(&self, model: &mut routing_rule::ActiveModel) {
        model.tag_key = Set(validate::tag_key(&self.tag));
        model.tag = Set(self.tag.clone());
        model.emails = Set(self.emails.clone().into());
        model.locale = Set(self.locale);
    }

    /// Replaces the rule's agents; every one must be an agent of the account (another
    /// account's is not found, as everywhere).
    async fn link_agents(
        &self,
        txn: &impl ConnectionTrait,
        account_id: Uuid,
        rule_id: Uuid,
    ) -> Result<()> {
        let unknown = || Error::NotFound("agent");
        rule_agent::Entity::delete_many()
            .filter(rule_agent::Column::RuleId.eq(rule_id))
            .exec(txn)
            .await?;
        if self.agent_ids.is_empty() {
            return Ok(());
        }
        let found = agent::Entity::find()
            .filter(agent::Column::AccountId.eq(account_id))
            .filter(agent::Column::Id.is_in(self.agent_ids.iter().copied()))
            .count(txn)
            .await?;
        if found != self.agent_ids.len() as u64 {
            return Err(unknown());
        }
        let links =
            self.agent_ids
                .iter()
                .zip(0..)
                .map(|(agent_id, position)| rule_agent::ActiveModel {
                    rule_id: Set(rule_id),
                    agent_id: Set(*agent_id),
                    position: Set(position),
                });
        match rule_agent::Entity::insert_many(links).exec(txn).await {
            // The agent was deleted since it was counted.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) => {
                Err(unknown())
            }
            inserted => inserted.map(|_| ()).map_err(Into::into),
        }
    }
}

/// Creates a rule. A tag no flow uses is accepted (it is flagged through [`tag_known`]).
pub async fn create_rule(
    db: &impl TransactionTrait,
    account_id: Uuid,
    input: &RuleInput,
) -> Result<routing_rule::Model> {
    let columns = input.validate()?;
    let txn = crate::infra::db::begin(db).await?;
    limits::check::<routing_rule::Entity>(
        &txn,
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
    let rule = model.insert(&txn).await?;
    columns.link_agents(&txn, account_id, rule.id).await?;
    txn.commit().await?;
    Ok(rule)
}

/// Replaces a rule's tag, recipients and language.
pub async fn update_rule(
    db: &impl TransactionTrait,
    account_id: Uuid,
    id: Uuid,
    input: &RuleInput,
) -> Result<routing_rule::Model> {
    let columns = input.validate()?;
    let txn = crate::infra::db::begin(db).await?;
    let existing = find_rule(&txn, account_id, id)
        .await?
        .ok_or(Error::NotFound("routing rule"))?;
    let mut model: routing_rule::ActiveModel = existing.into();
    columns.apply(&mut model);
    let rule = model.update(&txn).await?;
    columns.link_agents(&txn, account_id, rule.id).await?;
    txn.commit().await?;
    Ok(rule)
}

/// A routing rule with the agents it names, as they are now: what a ticket is routed by.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub rule: routing_rule::Model,
    /// In the rule's order.
    pub agents: Vec<agent::Model>,
}

impl Rule {
    /// The addresses the rule mails: its agents' (in its order), then the typed ones, each
    /// once ignoring case, as first spelled.
    pub fn addresses(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        self.agents
            .iter()
            .map(|a| a.email.as_str())
            .chain(self.rule.emails.iter().map(String::as_str))
            .filter(|a| seen.insert(a.to_lowercase()))
            .collect()
    }
}

/// Rule ids per query when reading their agents: well inside SQLite's limit on bound values.
const RULES_PER_READ: usize = 1_000;

/// The agents each rule names, in each rule's order; rules naming none are absent.
pub async fn agents_of_rules(
    db: &impl ConnectionTrait,
    rule_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<agent::Model>>> {
    let mut out: HashMap<Uuid, Vec<agent::Model>> = HashMap::new();
    for ids in rule_ids.chunks(RULES_PER_READ) {
        let rows = rule_agent::Entity::find()
            .filter(rule_agent::Column::RuleId.is_in(ids.iter().copied()))
            .order_by_asc(rule_agent::Column::RuleId)
            .order_by_asc(rule_agent::Column::Position)
            .find_also_related(agent::Entity)
            .all(db)
            .await?;
        for (link, agent) in rows {
            out.entry(link.rule_id).or_default().extend(agent);
        }
    }
    Ok(out)
}

/// The rules with their agents ([`agents_of_rules`]), in the same order.
pub async fn with_agents(
    db: &impl ConnectionTrait,
    rules: Vec<routing_rule::Model>,
) -> Result<Vec<Rule>> {
    let ids: Vec<Uuid> = rules.iter().map(|r| r.id).collect();
    let mut agents = agents_of_rules(db, &ids).await?;
    Ok(rules
        .into_iter()
        .map(|rule| Rule {
            agents: agents.remove(&rule.id).unwrap_or_default(),
            rule,
        })
        .collect())
}

/// One address the routing form offers: an agent's, or one typed in a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RecipientOption {
    pub email: String,
    /// The agent whose address it is; `None` for a typed one.
    pub agent: Option<agent::Model>,
}

/// The routing form's e-mail list: the account's agents by name, then the addresses typed in
/// its rules that are no agent's, each once ignoring case, oldest rule first. Two reads: at
/// most [`limits::AGENTS`] agents and [`limits::ROUTING_RULES`] rules' addresses.
pub async fn recipient_options(
    db: &impl ConnectionTrait,
    account_id: Uuid,
) -> Result<Vec<RecipientOption>> {
    let agents = crate::agents::list_agents(db, account_id).await?;
    let typed: Vec<entity::values::Addresses> = routing_rule::Entity::find()
        .select_only()
        .column(routing_rule::Column::Emails)
        .filter(routing_rule::Column::AccountId.eq(account_id))
        .order_by_asc(routing_rule::Column::CreatedAt)
        .order_by_asc(routing_rule::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut seen: HashSet<String> = agents.iter().map(|a| a.email_key.clone()).collect();
    let mut out: Vec<RecipientOption> = agents
        .into_iter()
        .map(|agent| RecipientOption {
            email: agent.email.clone(),
            agent: Some(agent),
        })
        .collect();
    for email in typed.into_iter().flat_map(|a| a.0) {
        if seen.insert(email.to_lowercase()) {
            out.push(RecipientOption { email, agent: None });
        }
    }
    Ok(out)
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

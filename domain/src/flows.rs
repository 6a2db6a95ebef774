//! Chatbot flows and their steps, as the design screen edits them.

use std::collections::HashMap;

use entity::{flow, flow_version, live_topic, step};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use crate::vocab::{ChoiceOption, ChoiceOptions, StepKind};
use crate::{Error, Result, limits, now, validate};

/// Most buttons on a choice step.
pub const MAX_OPTIONS: usize = 20;

/// A button of a choice step, as the design panel submits it.
#[derive(Clone, Debug)]
pub struct OptionInput {
    pub label: String,
    /// The step it leads to; may be set later.
    pub next: Option<Uuid>,
}

/// A step as the design panel submits it, before validation. `next` is where the
/// conversation goes afterwards; `None` means the step at the following position.
#[derive(Clone, Debug)]
pub enum StepInput {
    /// The bot says `text`.
    Message { text: String, next: Option<Uuid> },
    /// The bot asks `text` and stores the answer under `field`; `name`, `email` and `phone`
    /// answers are validated and asked again when invalid.
    Question {
        text: String,
        field: String,
        next: Option<Uuid>,
    },
    /// The bot says `text` and offers buttons.
    Choice {
        text: String,
        options: Vec<OptionInput>,
    },
    /// The bot opens a ticket tagged `topic`, says `confirmation_message`, and forwards the
    /// ticket to `forward_emails` besides the routing rules.
    Ticket {
        topic: String,
        confirmation_message: String,
        forward_emails: Vec<String>,
        next: Option<Uuid>,
        /// Mail the visitor a confirmation with the ticket number when they gave an address.
        confirm_visitor: bool,
    },
    /// The conversation ends, optionally with a last text.
    End { text: Option<String> },
}

/// The validated columns of a step.
struct StepColumns {
    kind: StepKind,
    text: Option<String>,
    topic: Option<String>,
    confirmation_message: Option<String>,
    forward_emails: Vec<String>,
    next: Option<Uuid>,
    field: Option<String>,
    options: Option<Vec<ChoiceOption>>,
    confirm_visitor: bool,
}

impl StepColumns {
    /// A step of `kind` with none of the optional columns set.
    fn blank(kind: StepKind) -> Self {
        StepColumns {
            kind,
            text: None,
            topic: None,
            confirmation_message: None,
            forward_emails: Vec::new(),
            next: None,
            field: None,
            options: None,
            confirm_visitor: false,
        }
    }
}

impl StepInput {
    fn validate(&self) -> Result<StepColumns> {
        Ok(match self {
            StepInput::Message { text, next } => StepColumns {
                text: Some(validate::text("step.message.text", text)?),
                next: *next,
                ..StepColumns::blank(StepKind::Message)
            },
            StepInput::Question { text, field, next } => StepColumns {
                text: Some(validate::text("step.question.text", text)?),
                field: Some(validate::field_key("step.question.field", field)?),
                next: *next,
                ..StepColumns::blank(StepKind::Question)
            },
            StepInput::Choice { text, options } => {
                if options.is_empty() || options.len() > MAX_OPTIONS {
                    return Err(Error::invalid(
                        "step.choice.options",
                        format!("needs 1 to {MAX_OPTIONS} options"),
                    ));
                }
                let options = options
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        Ok(ChoiceOption {
                            id: Uuid::now_v7(),
                            label: validate::name(
                                &format!("step.choice.options[{i}].label"),
                                &o.label,
                            )?,
                            next: o.next,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                StepColumns {
                    text: Some(validate::text("step.choice.text", text)?),
                    options: Some(options),
                    ..StepColumns::blank(StepKind::Choice)
                }
            }
            StepInput::Ticket {
                topic,
                confirmation_message,
                forward_emails,
                next,
                confirm_visitor,
            } => StepColumns {
                topic: Some(validate::topic("step.ticket.topic", topic)?),
                confirmation_message: Some(validate::text(
                    "step.ticket.confirmationMessage",
                    confirmation_message,
                )?),
                forward_emails: validate::emails(
                    "step.ticket.forwardEmails",
                    forward_emails,
                    false,
                )?,
                next: *next,
                confirm_visitor: *confirm_visitor,
                ..StepColumns::blank(StepKind::Ticket)
            },
            StepInput::End { text } => StepColumns {
                text: validate::optional(text.as_deref(), |t| validate::text("step.end.text", t))?,
                ..StepColumns::blank(StepKind::End)
            },
        })
    }
}

impl StepColumns {
    /// Every step this one can lead to.
    fn targets(&self) -> Vec<Uuid> {
        let mut targets: Vec<Uuid> = self.next.into_iter().collect();
        targets.extend(self.options.iter().flatten().filter_map(|o| o.next));
        targets.sort_unstable();
        targets.dedup();
        targets
    }

    /// A ticket step may not bring the account past [`limits::TOPIC_TAGS`] distinct topics.
    async fn check_topic(&self, db: &impl ConnectionTrait, account_id: Uuid) -> Result<()> {
        match &self.topic {
            Some(topic) => limits::check_topic(db, account_id, &validate::tag_key(topic)).await,
            None => Ok(()),
        }
    }

    /// A link may dangle later (its target deleted, which `validateFlow` reports), but it can
    /// only be made to a step of the same account: another account's step id is `NOT_FOUND`,
    /// exactly like an id that never existed.
    async fn check_targets(&self, db: &impl ConnectionTrait, account_id: Uuid) -> Result<()> {
        let targets = self.targets();
        if targets.is_empty() {
            return Ok(());
        }
        let found = step::Entity::find()
            .filter(step::Column::Id.is_in(targets.iter().copied()))
            .filter(step::Column::AccountId.eq(account_id))
            .count(db)
            .await?;
        if found != targets.len() as u64 {
            return Err(Error::NotFound("step"));
        }
        Ok(())
    }

    fn apply(self, model: &mut step::ActiveModel) {
        model.kind = Set(self.kind);
        model.text = Set(self.text);
        model.topic_key = Set(self.topic.as_deref().map(validate::tag_key));
        model.topic = Set(self.topic);
        model.confirmation_message = Set(self.confirmation_message);
        model.forward_emails = Set(self.forward_emails.into());
        model.next_step_id = Set(self.next);
        model.field = Set(self.field);
        model.options = Set(self.options.map(ChoiceOptions::from));
        model.confirm_visitor = Set(self.confirm_visitor);
    }
}

/// Creates an empty flow.
pub async fn create_flow(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    name: &str,
) -> Result<flow::Model> {
    let name = validate::name("name", name)?;
    limits::check::<flow::Entity>(
        db,
        flow::Column::AccountId
            .eq(account_id)
            .and(flow::Column::DeletedAt.is_null()),
        "flows",
        limits::FLOWS,
    )
    .await?;
    Ok(flow::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account_id),
        name: Set(name),
        created_at: Set(now()),
        deleted_at: Set(None),
    }
    .insert(db)
    .await?)
}

/// The account's flows, oldest first: at most `first`, after the flow `after` when given
/// (`NotFound` when the account has no such flow).
pub async fn list_flows(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    first: u64,
    after: Option<Uuid>,
) -> Result<Vec<flow::Model>> {
    let mut query = flow::Entity::find()
        .filter(flow::Column::AccountId.eq(account_id))
        .filter(flow::Column::DeletedAt.is_null());
    if let Some(after) = after {
        let from = find_flow(db, account_id, after)
            .await?
            .ok_or(Error::NotFound("flow"))?;
        query = query.filter(
            Condition::any()
                .add(flow::Column::CreatedAt.gt(from.created_at))
                .add(
                    Condition::all()
                        .add(flow::Column::CreatedAt.eq(from.created_at))
                        .add(flow::Column::Id.gt(from.id)),
                ),
        );
    }
    Ok(query
        .order_by_asc(flow::Column::CreatedAt)
        .order_by_asc(flow::Column::Id)
        .limit(first)
        .all(db)
        .await?)
}

/// One flow of the account, or `None` (also for another account's flow, and a deleted one).
pub async fn find_flow(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<flow::Model>> {
    Ok(flow::Entity::find_by_id(id)
        .filter(flow::Column::AccountId.eq(account_id))
        .filter(flow::Column::DeletedAt.is_null())
        .one(db)
        .await?)
}

/// Flows by id, for batch loading (deleted ones are absent); the caller has checked the
/// account.
pub async fn flows_by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, flow::Model>> {
    Ok(flow::Entity::find()
        .filter(flow::Column::Id.is_in(ids.iter().copied()))
        .filter(flow::Column::DeletedAt.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect())
}

/// Renames a flow. Tickets keep the flow name they were opened with.
pub async fn rename_flow(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
    name: &str,
) -> Result<flow::Model> {
    let name = validate::name("name", name)?;
    let existing = find_flow(db, account_id, id)
        .await?
        .ok_or(Error::NotFound("flow"))?;
    let mut model: flow::ActiveModel = existing.into();
    model.name = Set(name);
    Ok(model.update(db).await?)
}

/// Copies a flow, as a new draft named `name`, with a copy of every step; links between its
/// steps (`next`, a button's `next`) point at the copies, links to steps of other flows stay.
/// Published versions are not copied: the copy is published on its own.
pub async fn copy_flow<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    id: Uuid,
    name: &str,
) -> Result<flow::Model> {
    let txn = crate::infra::db::begin(db).await?;
    let original = find_flow(&txn, account_id, id)
        .await?
        .ok_or(Error::NotFound("flow"))?;
    // The original's steps as one state, not half of a concurrent move or delete.
    lock_flow(&txn, original.id).await?;
    // Validates the name and counts the account's flows.
    let copy = create_flow(&txn, account_id, name).await?;
    let steps = step::Entity::find()
        .filter(step::Column::FlowId.eq(original.id))
        .order_by_asc(step::Column::Position)
        .all(&txn)
        .await?;
    let ids: HashMap<Uuid, Uuid> = steps.iter().map(|s| (s.id, Uuid::now_v7())).collect();
    let relink = |target: Option<Uuid>| target.map(|t| ids.get(&t).copied().unwrap_or(t));
    let at = now();
    let copies: Vec<step::ActiveModel> = steps
        .into_iter()
        .map(|s| {
            let options = s.options.map(|options| {
                ChoiceOptions::from(
                    options
                        .iter()
                        .map(|o| ChoiceOption {
                            id: Uuid::now_v7(),
                            label: o.label.clone(),
                            next: relink(o.next),
                        })
                        .collect::<Vec<_>>(),
                )
            });
            step::ActiveModel::from(step::Model {
                id: ids[&s.id],
                flow_id: copy.id,
                next_step_id: relink(s.next_step_id),
                options,
                created_at: at,
                ..s
            })
        })
        .collect();
    // At most `STEPS_PER_FLOW` steps: one statement on either engine.
    if !copies.is_empty() {
        step::Entity::insert_many(copies)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(copy)
}

/// Deletes a flow: its draft steps and live topics at once, so it is listed nowhere and no
/// conversation starts on it; conversations running on its published versions finish on them
/// and open their tickets. Tickets keep their copies (flow name, topic, forward addresses).
pub async fn delete_flow<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    id: Uuid,
) -> Result<Uuid> {
    let txn = crate::infra::db::begin(db).await?;
    // After a publish, a step added or a conversation started that holds the lock.
    lock_flow(&txn, id).await?;
    let marked = flow::Entity::update_many()
        .col_expr(flow::Column::DeletedAt, Expr::value(now()))
        .filter(flow::Column::Id.eq(id))
        .filter(flow::Column::AccountId.eq(account_id))
        .filter(flow::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    if marked.rows_affected == 0 {
        return Err(Error::NotFound("flow"));
    }
    // The draft and its live topics go: no new conversation starts on the flow.
    step::Entity::delete_many()
        .filter(step::Column::FlowId.eq(id))
        .exec(&txn)
        .await?;
    live_topic::Entity::delete_many()
        .filter(live_topic::Column::FlowId.eq(id))
        .exec(&txn)
        .await?;
    // Versions no conversation runs on go now; the rest, and the row, once retention has
    // removed their conversations (`retention::apply`).
    flow_version::Entity::delete_many()
        .filter(flow_version::Column::FlowId.eq(id))
        .filter(Expr::cust(UNUSED_VERSION))
        .exec(&txn)
        .await?;
    let kept = flow_version::Entity::find()
        .filter(flow_version::Column::FlowId.eq(id))
        .count(&txn)
        .await?;
    if kept == 0 {
        flow::Entity::delete_by_id(id).exec(&txn).await?;
    }
    txn.commit().await?;
    Ok(id)
}

/// A version no conversation runs on, or ran on (SQL over `flow_versions`).
const UNUSED_VERSION: &str = "NOT EXISTS (SELECT 1 FROM conversations c \
                              WHERE c.flow_version_id = flow_versions.id)";

/// A deleted flow none of whose versions has a conversation left (SQL over `flows`): what
/// retention removes.
pub const DELETED_AND_UNUSED: &str = "flows.deleted_at IS NOT NULL AND NOT EXISTS ( \
    SELECT 1 FROM flow_versions v JOIN conversations c ON c.flow_version_id = v.id \
    WHERE v.flow_id = flows.id)";

/// The steps of each flow, in order, for batch loading.
pub async fn steps_of_flows(
    db: &impl ConnectionTrait,
    flow_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<step::Model>>> {
    let steps = step::Entity::find()
        .filter(step::Column::FlowId.is_in(flow_ids.iter().copied()))
        .order_by_asc(step::Column::FlowId)
        .order_by_asc(step::Column::Position)
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<step::Model>> = HashMap::new();
    for s in steps {
        out.entry(s.flow_id).or_default().push(s);
    }
    Ok(out)
}

/// One step of the account, or `None`.
pub async fn find_step(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<step::Model>> {
    Ok(step::Entity::find_by_id(id)
        .filter(step::Column::AccountId.eq(account_id))
        .one(db)
        .await?)
}

/// Appends a step to a flow.
pub async fn add_step<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    flow_id: Uuid,
    input: &StepInput,
) -> Result<step::Model> {
    let columns = input.validate()?;
    let txn = crate::infra::db::begin(db).await?;
    let flow = find_flow(&txn, account_id, flow_id)
        .await?
        .ok_or(Error::NotFound("flow"))?;
    lock_flow(&txn, flow.id).await?;
    columns.check_targets(&txn, account_id).await?;
    columns.check_topic(&txn, account_id).await?;
    let position = step::Entity::find()
        .filter(step::Column::FlowId.eq(flow.id))
        .count(&txn)
        .await?;
    if position >= limits::STEPS_PER_FLOW {
        return Err(Error::LimitReached {
            what: "steps in a flow",
            max: limits::STEPS_PER_FLOW,
        });
    }
    let mut model = step::ActiveModel {
        id: Set(Uuid::now_v7()),
        flow_id: Set(flow.id),
        account_id: Set(account_id),
        position: Set(
            i32::try_from(position).map_err(|_| Error::invalid("flowId", "too many steps"))?
        ),
        created_at: Set(now()),
        ..Default::default()
    };
    columns.apply(&mut model);
    let step = model.insert(&txn).await?;
    txn.commit().await?;
    Ok(step)
}

/// Replaces a step's content (its kind may change); its place in the flow stays.
pub async fn update_step(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
    input: &StepInput,
) -> Result<step::Model> {
    let columns = input.validate()?;
    let existing = find_step(db, account_id, id)
        .await?
        .ok_or(Error::NotFound("step"))?;
    columns.check_targets(db, account_id).await?;
    columns.check_topic(db, account_id).await?;
    let mut model: step::ActiveModel = existing.into();
    columns.apply(&mut model);
    Ok(model.update(db).await?)
}

/// Moves a step to `position` (0-based) in its flow; the steps in between shift by one.
/// Links by `next` keep pointing at the same steps; a step without one still goes on to
/// whichever step follows it now.
pub async fn move_step<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    id: Uuid,
    position: i32,
) -> Result<step::Model> {
    let txn = crate::infra::db::begin(db).await?;
    let step = locked_step(&txn, account_id, id).await?;
    let count = step::Entity::find()
        .filter(step::Column::FlowId.eq(step.flow_id))
        .count(&txn)
        .await?;
    if position < 0 || i64::from(position) >= count as i64 {
        return Err(Error::invalid(
            "position",
            format!(
                "must be 0 to {} (the flow has {count} steps)",
                count.saturating_sub(1)
            ),
        ));
    }
    let from = step.position;
    if position == from {
        return Ok(step);
    }
    let (range, shift) = if position < from {
        ((position, from - 1), 1)
    } else {
        ((from + 1, position), -1)
    };
    step::Entity::update_many()
        .col_expr(
            step::Column::Position,
            Expr::col(step::Column::Position).add(shift),
        )
        .filter(step::Column::FlowId.eq(step.flow_id))
        .filter(step::Column::Position.between(range.0, range.1))
        .exec(&txn)
        .await?;
    let mut model: step::ActiveModel = step.into();
    model.position = Set(position);
    let moved = model.update(&txn).await?;
    txn.commit().await?;
    Ok(moved)
}

/// Holds the flow's row until the transaction ends, so the writes that renumber its steps
/// (adding, moving, deleting), a copy, a publish, a conversation's start and the flow's
/// deletion take turns: on PostgreSQL by a row lock; SQLite's write transaction
/// (`db::begin`) already holds the whole database. A flow deleted meanwhile is not found.
pub(crate) async fn lock_flow(txn: &impl ConnectionTrait, flow_id: Uuid) -> Result<()> {
    flow::Entity::find_by_id(flow_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .filter(|f| f.deleted_at.is_none())
        .ok_or(Error::NotFound("flow"))?;
    Ok(())
}

/// The step, read under its flow's lock ([`lock_flow`]): read again after taking it, since a
/// move may have changed its position meanwhile.
async fn locked_step(
    txn: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
) -> Result<step::Model> {
    let step = find_step(txn, account_id, id)
        .await?
        .ok_or(Error::NotFound("step"))?;
    lock_flow(txn, step.flow_id).await?;
    find_step(txn, account_id, id)
        .await?
        .ok_or(Error::NotFound("step"))
}

/// Removes a step and closes the gap in the positions after it.
pub async fn delete_step<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    account_id: Uuid,
    id: Uuid,
) -> Result<Uuid> {
    let txn = crate::infra::db::begin(db).await?;
    let step = locked_step(&txn, account_id, id).await?;
    step::Entity::delete_by_id(step.id).exec(&txn).await?;
    step::Entity::update_many()
        .col_expr(
            step::Column::Position,
            Expr::col(step::Column::Position).sub(1),
        )
        .filter(step::Column::FlowId.eq(step.flow_id))
        .filter(step::Column::Position.gt(step.position))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(id)
}

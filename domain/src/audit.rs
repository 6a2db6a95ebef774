//! The record of what was done to the machinery (`operator_actions`): every pause and resume
//! of sending, every failed delivery put back, every delivery cancelled, with who, when, on
//! what and why. Written in the transaction of the action itself, so an action is never done
//! without its line, nor recorded without being done.

use chrono::{DateTime, Utc};
use entity::operator_action;
use entity::values::OperatorActionKind;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::scope::Scope;
use crate::{Result, now};

/// How the operator reads in the record: the operator token is one shared secret, so it names
/// no person; the channel it came through tells the two apart (`/ops` page, GraphQL).
pub const OPERATOR: &str = "operator";

/// One action about to be recorded.
#[derive(Clone, Debug)]
pub struct Action<'a> {
    /// Who, as people read it ([`OPERATOR`], `admin key tk_admin_AbCdEf`).
    pub actor: &'a str,
    /// The account acted on; `None` for everyone.
    pub account: Option<Uuid>,
    pub kind: OperatorActionKind,
    /// The one thing it was done to, if one.
    pub subject: Option<Uuid>,
    pub reason: Option<&'a str>,
}

impl<'a> Action<'a> {
    /// An action on one delivery or webhook delivery (`subject`) of `account`.
    pub fn on(
        actor: &'a str,
        kind: OperatorActionKind,
        account: Uuid,
        subject: Uuid,
        reason: Option<&'a str>,
    ) -> Self {
        Action {
            actor,
            account: Some(account),
            kind,
            subject: Some(subject),
            reason,
        }
    }
}

/// Writes the action's line (in the caller's transaction).
pub async fn record(db: &impl ConnectionTrait, action: Action<'_>) -> Result<()> {
    operator_action::Entity::insert(operator_action::ActiveModel {
        id: Set(Uuid::now_v7()),
        at: Set(now()),
        actor: Set(action.actor.to_owned()),
        account_id: Set(action.account),
        action: Set(action.kind),
        subject: Set(action.subject.map(|s| s.to_string())),
        reason: Set(action.reason.map(str::to_owned)),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// How many times `kind` was done to `account` since `since` (an indexed count).
pub async fn count_since(
    db: &impl ConnectionTrait,
    account: Uuid,
    kind: OperatorActionKind,
    since: DateTime<Utc>,
) -> Result<u64> {
    // Ids are UUIDv7 (milliseconds first): the lowest id of `since`'s millisecond bounds the
    // index range.
    let ms = u128::try_from(since.timestamp_millis()).unwrap_or(0);
    let from = Uuid::from_u128((ms << 80) | (0x7 << 76) | (0x2 << 62));
    Ok(operator_action::Entity::find()
        .filter(operator_action::Column::AccountId.eq(account))
        .filter(operator_action::Column::Id.gte(from))
        .filter(operator_action::Column::Action.eq(kind))
        .count(db)
        .await?)
}

/// A page of the record, newest first: every line for the operator, an account's own lines
/// for its admin (actions on everyone are not the account's).
pub async fn list(
    db: &impl ConnectionTrait,
    scope: Scope,
    first: u64,
    after: Option<Uuid>,
) -> Result<(Vec<operator_action::Model>, bool)> {
    crate::tickets::check_page_size(first)?;
    let mut query = operator_action::Entity::find();
    if let Scope::Account(account) = scope {
        query = query.filter(operator_action::Column::AccountId.eq(account));
    }
    if let Some(after) = after {
        query = query.filter(operator_action::Column::Id.lt(after));
    }
    let mut rows = query
        .order_by_desc(operator_action::Column::Id)
        .limit(first + 1)
        .all(db)
        .await?;
    let more = crate::tickets::cut_page(&mut rows, first);
    Ok((rows, more))
}

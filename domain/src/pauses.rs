//! Pausing sending, for everyone or one account: due e-mail deliveries, webhook deliveries
//! and routing wait, and nothing is failed or lost. The pause is a row (`sending_pauses`), so
//! it survives restarts and every process sees it.
//!
//! Workers read the pauses every [`REFRESH`] ([`Snapshot`]); a job of a paused account that a
//! worker takes is set aside ([`park`]): the same job row, due in a hundred years, with a
//! `parked_jobs` row. Resuming deletes the pause and makes the parked jobs no other pause
//! covers due again, in the same transaction ([`resume`]). A pause holds within [`REFRESH`]
//! of its commit; jobs already running finish.
//!
//! **Why no job is lost between a pause's end and a worker's park.** On PostgreSQL a worker
//! parks only while holding a share lock on the pauses that cover the job (`FOR SHARE`);
//! resuming deletes its pause, so it waits for the parks in progress and then sees their
//! parked rows, or the park waits for the resume and finds no pause (and runs the job). Pauses
//! and resumes take turns on the table (`SHARE ROW EXCLUSIVE`, which share locks do not
//! conflict with). On SQLite every one of these is a write transaction, so they take turns.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use entity::sending_pause;
use entity::values::OperatorActionKind;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, Statement, TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::infra::queue;
use crate::scope::Scope;
use crate::{Error, Result, limits, now};

/// How often workers read the pauses: a pause holds within this of its commit.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The `scope` of the pause of everyone.
const EVERYONE: &str = "*";

fn key(scope: Scope) -> String {
    match scope {
        Scope::All => EVERYONE.to_owned(),
        Scope::Account(id) => id.to_string(),
    }
}

/// On PostgreSQL, makes pauses and resumes take turns (see the module's doc).
async fn take_turns(txn: &impl ConnectionTrait) -> Result<()> {
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        txn.execute_unprepared("LOCK TABLE sending_pauses IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    Ok(())
}

/// Pauses sending for `scope` on behalf of `caller` (the operator, `Scope::All`, or an
/// account's admin); returns the pause and whether this call paused it (false: it was paused
/// already, and keeps its first reason). An admin may pause its account
/// [`limits::PAUSES_PER_HOUR`] times an hour; the operator is not held to it.
pub async fn pause<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    caller: Scope,
    scope: Scope,
    actor: &str,
    why: &str,
) -> Result<(sending_pause::Model, bool)> {
    let why = crate::validate::text("reason", why)?;
    let txn = crate::infra::db::begin(db).await?;
    take_turns(&txn).await?;
    let existing = sending_pause::Entity::find_by_id(key(scope))
        .one(&txn)
        .await?;
    let account = match scope {
        Scope::All => None,
        Scope::Account(id) => Some(crate::accounts::find(&txn, id).await?.id),
    };
    match existing {
        // The operator takes over an account's own pause, so its admin cannot lift it.
        Some(mine) if caller == Scope::All && !mine.by_operator => {
            let taken = sending_pause::Model {
                by_operator: true,
                paused_by: actor.to_owned(),
                reason: why.clone(),
                ..mine
            };
            sending_pause::Entity::update(sending_pause::ActiveModel {
                scope: Set(taken.scope.clone()),
                by_operator: Set(true),
                paused_by: Set(taken.paused_by.clone()),
                reason: Set(taken.reason.clone()),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            record_pause(&txn, actor, account, &why).await?;
            txn.commit().await?;
            return Ok((taken, true));
        }
        Some(existing) => {
            txn.commit().await?;
            return Ok((existing, false));
        }
        None => {}
    }
    if let (Some(account), Scope::Account(_)) = (account, caller) {
        let since = Utc::now() - chrono::Duration::hours(1);
        let paused =
            audit::count_since(&txn, account, OperatorActionKind::PauseSending, since).await?;
        if paused >= limits::PAUSES_PER_HOUR {
            return Err(Error::TooOften {
                what: "an account's sending can be paused",
                max: limits::PAUSES_PER_HOUR,
            });
        }
    }
    let row = sending_pause::Model {
        scope: key(scope),
        account_id: account,
        paused_at: now(),
        paused_by: actor.to_owned(),
        by_operator: caller == Scope::All,
        reason: why.clone(),
    };
    sending_pause::Entity::insert(sending_pause::ActiveModel {
        scope: Set(row.scope.clone()),
        account_id: Set(row.account_id),
        paused_at: Set(row.paused_at),
        paused_by: Set(row.paused_by.clone()),
        by_operator: Set(row.by_operator),
        reason: Set(row.reason.clone()),
    })
    .exec_without_returning(&txn)
    .await?;
    record_pause(&txn, actor, account, &why).await?;
    txn.commit().await?;
    Ok((row, true))
}

/// The record's line, the log line and the count of a pause.
async fn record_pause(
    txn: &impl ConnectionTrait,
    actor: &str,
    account: Option<Uuid>,
    why: &str,
) -> Result<()> {
    audit::record(
        txn,
        Action {
            actor,
            account,
            kind: OperatorActionKind::PauseSending,
            subject: None,
            reason: Some(why),
        },
    )
    .await?;
    tracing::warn!(?account, actor, reason = %why, "sending paused");
    metrics::counter!("ticketing_operator_actions_total", "action" => "pause").increment(1);
    Ok(())
}

/// What a resume did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resumed {
    /// The scope was paused, and no longer is.
    pub changed: bool,
    /// Parked jobs made due again (those another pause still covers stay parked).
    pub jobs: u64,
}

/// Resumes sending for `scope` on behalf of `caller`: the pause goes and the jobs parked
/// under it that no other pause covers are due again, in one transaction. A pause the
/// operator set is the operator's to lift (an abusive account's admin cannot undo it).
pub async fn resume<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    caller: Scope,
    scope: Scope,
    actor: &str,
) -> Result<Resumed> {
    let txn = crate::infra::db::begin(db).await?;
    take_turns(&txn).await?;
    if caller != Scope::All
        && sending_pause::Entity::find_by_id(key(scope))
            .one(&txn)
            .await?
            .is_some_and(|p| p.by_operator)
    {
        return Err(Error::invalid(
            "accountId",
            "sending was paused by the operator; only the operator can resume it",
        ));
    }
    let deleted = sending_pause::Entity::delete_by_id(key(scope))
        .exec(&txn)
        .await?
        .rows_affected;
    if deleted == 0 {
        txn.commit().await?;
        return Ok(Resumed::default());
    }
    let head = queue::head(&txn).await?;
    let jobs = queue::unpark(&txn, head).await?;
    let account = match scope {
        Scope::All => None,
        Scope::Account(id) => Some(id),
    };
    audit::record(
        &txn,
        Action {
            actor,
            account,
            kind: OperatorActionKind::ResumeSending,
            subject: None,
            reason: None,
        },
    )
    .await?;
    txn.commit().await?;
    tracing::warn!(scope = %key(scope), actor, jobs, "sending resumed");
    metrics::counter!("ticketing_operator_actions_total", "action" => "resume").increment(1);
    Ok(Resumed {
        changed: true,
        jobs,
    })
}

/// The pauses `scope` sees, the pause of everyone first: every one for the operator, the
/// pause of everyone and its own for an account.
pub async fn list(db: &impl ConnectionTrait, scope: Scope) -> Result<Vec<sending_pause::Model>> {
    let mut query = sending_pause::Entity::find();
    if let Scope::Account(id) = scope {
        query = query.filter(
            sea_orm::Condition::any()
                .add(sending_pause::Column::AccountId.is_null())
                .add(sending_pause::Column::AccountId.eq(id)),
        );
    }
    let mut pauses = query
        .order_by_asc(sending_pause::Column::PausedAt)
        .all(db)
        .await?;
    pauses.sort_by_key(|p| p.account_id.is_some());
    Ok(pauses)
}

/// The pauses as a worker holds them between two readings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    everyone: bool,
    accounts: HashSet<Uuid>,
}

impl Snapshot {
    /// Reads every pause (a row per paused account).
    pub async fn read(db: &impl ConnectionTrait) -> Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        for pause in sending_pause::Entity::find().all(db).await? {
            match pause.account_id {
                None => snapshot.everyone = true,
                Some(id) => {
                    snapshot.accounts.insert(id);
                }
            }
        }
        Ok(snapshot)
    }

    /// Whether a job of `account` (`None`: a job of an older version, which names none) waits.
    pub fn covers(&self, account: Option<Uuid>) -> bool {
        self.everyone || account.is_some_and(|a| self.accounts.contains(&a))
    }

    /// Whether sending is paused for everyone.
    pub fn everyone(&self) -> bool {
        self.everyone
    }

    /// How many accounts are paused one by one.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// The work the sweeps may heal now, as a condition on its `account` column: `None`
    /// while sending is paused for everyone, else that of the accounts not paused. A paused
    /// account's jobs wait set aside, under keys a sweep's later rounds would not look for;
    /// healing it would add a job per round that is set aside in turn.
    pub fn unpaused<C: ColumnTrait>(&self, account: C) -> Option<sea_orm::Condition> {
        if self.everyone {
            return None;
        }
        let mut condition = sea_orm::Condition::all();
        if !self.accounts.is_empty() {
            condition = condition.add(account.is_not_in(self.accounts.iter().copied()));
        }
        Some(condition)
    }
}

/// What [`park`] did with a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// Set aside until its sending is resumed.
    Parked,
    /// No pause covers it any more: run it.
    NotPaused,
    /// The worker no longer holds the job (it went to another worker): leave it.
    NotHeld,
}

/// Sets aside the job `task_id` of `account`, taken by `worker`, if a pause still covers it.
pub async fn park<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    task_id: &str,
    worker: &str,
    account: Option<Uuid>,
) -> Result<Parked> {
    let txn = crate::infra::db::begin(db).await?;
    let backend = txn.get_database_backend();
    let statement = match backend {
        DatabaseBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT scope FROM sending_pauses WHERE scope = $1 OR account_id = $2 FOR SHARE",
            [EVERYONE.into(), account.into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "SELECT scope FROM sending_pauses WHERE scope = ? OR account_id = ?",
            [EVERYONE.into(), account.into()],
        ),
    };
    if txn.query_all_raw(statement).await?.is_empty() {
        txn.commit().await?;
        return Ok(Parked::NotPaused);
    }
    let head = queue::head(&txn).await?;
    let held = queue::set_aside(&txn, task_id, worker, account, head).await?;
    txn.commit().await?;
    Ok(if held {
        Parked::Parked
    } else {
        Parked::NotHeld
    })
}

/// How many jobs are parked now (an operator's count).
pub async fn parked_jobs(db: &impl ConnectionTrait) -> Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM parked_jobs",
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}

//! What operators do, kept: `sending_pauses` (sending paused for everyone, `scope` `*`, or for
//! one account, `scope` its id), `parked_jobs` (the queue's jobs a worker set aside while
//! their sending was paused, with the queue's head round then, so a resume puts them back in
//! their place among the rounds), and `operator_actions` (every action an operator or an
//! admin took on the machinery: who, when, on what, why). Two indexes serve the operators'
//! list of webhook deliveries by state, newest first (everyone's, and one account's).

use sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SendingPauses {
    Table,
    Scope,
    AccountId,
    PausedAt,
    PausedBy,
    ByOperator,
    Reason,
}

#[derive(DeriveIden)]
enum OperatorActions {
    Table,
    Id,
    At,
    Actor,
    AccountId,
    Action,
    Subject,
    Reason,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on SQLite too: a start stopped halfway would leave tables the next
    /// attempt fails to create again.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SendingPauses::Table)
                .col(string(SendingPauses::Scope).primary_key())
                .col(uuid_null(SendingPauses::AccountId))
                .col(timestamp_with_time_zone(SendingPauses::PausedAt))
                .col(string(SendingPauses::PausedBy))
                .col(boolean(SendingPauses::ByOperator))
                .col(text(SendingPauses::Reason))
                .foreign_key(
                    ForeignKey::create()
                        .from(SendingPauses::Table, SendingPauses::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The job's id is apalis' (text); no foreign key into apalis' schema, whose tables
        // apalis' own migrations own. A parked job is finished by nobody but a resume.
        let (uuid_type, big) = match m.get_connection().get_database_backend() {
            DatabaseBackend::Postgres => ("uuid", "BIGINT"),
            _ => ("uuid_text", "INTEGER"),
        };
        let db = m.get_connection();
        db.execute_unprepared(&format!(
            "CREATE TABLE parked_jobs (job_id TEXT NOT NULL PRIMARY KEY, \
             account_id {uuid_type} NULL, head_round {big} NOT NULL, \
             parked_at TIMESTAMP WITH TIME ZONE NOT NULL)"
        ))
        .await?;
        db.execute_unprepared("CREATE INDEX idx_parked_jobs_account ON parked_jobs (account_id)")
            .await?;
        m.create_table(
            Table::create()
                .table(OperatorActions::Table)
                .col(pk_uuid(OperatorActions::Id))
                .col(timestamp_with_time_zone(OperatorActions::At))
                .col(string(OperatorActions::Actor))
                .col(uuid_null(OperatorActions::AccountId))
                .col(string(OperatorActions::Action))
                .col(string_null(OperatorActions::Subject))
                .col(text_null(OperatorActions::Reason))
                .foreign_key(
                    ForeignKey::create()
                        .from(OperatorActions::Table, OperatorActions::AccountId)
                        .to(Accounts::Table, Accounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for statement in [
            "CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_status_created \
             ON webhook_deliveries (status, created_at, id)",
            "CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_account_status_created \
             ON webhook_deliveries (account_id, status, created_at, id)",
        ] {
            db.execute_unprepared(statement).await?;
        }
        // An account's actions newest first (the admin's list, the pause limit's count).
        m.create_index(
            Index::create()
                .name("idx_operator_actions_account")
                .table(OperatorActions::Table)
                .col(OperatorActions::AccountId)
                .col(OperatorActions::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(OperatorActions::Table).to_owned())
            .await?;
        let db = m.get_connection();
        for statement in [
            "DROP INDEX IF EXISTS idx_webhook_deliveries_status_created",
            "DROP INDEX IF EXISTS idx_webhook_deliveries_account_status_created",
            "DROP TABLE parked_jobs",
        ] {
            db.execute_unprepared(statement).await?;
        }
        m.drop_table(Table::drop().table(SendingPauses::Table).to_owned())
            .await
    }
}

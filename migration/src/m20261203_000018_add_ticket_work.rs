//! Tickets people work: an assignee (an agent; unassigned when the agent is deleted), a
//! closing note and when it was closed (the status column holds `OPEN` or `CLOSED`), and
//! `ticket_changes`, one line per change with who made it, for the timeline.
//!
//! The two list indexes serve `tickets(status:)` and `tickets(assigneeId:)` newest first. They
//! are built inside the migration's transaction (on both engines); `IF NOT EXISTS` lets a
//! large PostgreSQL deployment build them beforehand with `CREATE INDEX CONCURRENTLY` (README,
//! "Scale out on PostgreSQL").

use sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tickets {
    Table,
    Id,
    ClosingNote,
    ClosedAt,
}

#[derive(DeriveIden)]
enum TicketChanges {
    Table,
    Id,
    TicketId,
    AccountId,
    At,
    Kind,
    Actor,
    AgentId,
    AgentName,
    Note,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on SQLite too (sea-orm-migration uses one only on PostgreSQL):
    /// a start stopped between two changes would leave columns that the next attempt fails
    /// to add again.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        // A column with a foreign key: SQLite adds one only in the column's definition.
        let uuid_type = match db.get_database_backend() {
            DatabaseBackend::Postgres => "uuid",
            _ => "uuid_text",
        };
        db.execute_unprepared(&format!(
            "ALTER TABLE tickets ADD COLUMN assignee_id {uuid_type} NULL \
             REFERENCES agents (id) ON DELETE SET NULL"
        ))
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tickets::Table)
                .add_column(text_null(Tickets::ClosingNote))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tickets::Table)
                .add_column(timestamp_with_time_zone_null(Tickets::ClosedAt))
                .to_owned(),
        )
        .await?;
        for statement in [
            "CREATE INDEX IF NOT EXISTS idx_tickets_status ON tickets (account_id, status, number)",
            "CREATE INDEX IF NOT EXISTS idx_tickets_assignee \
             ON tickets (account_id, assignee_id, number)",
        ] {
            db.execute_unprepared(statement).await?;
        }
        m.create_table(
            Table::create()
                .table(TicketChanges::Table)
                .col(pk_uuid(TicketChanges::Id))
                .col(uuid(TicketChanges::TicketId))
                .col(uuid(TicketChanges::AccountId))
                .col(timestamp_with_time_zone(TicketChanges::At))
                .col(string(TicketChanges::Kind))
                .col(string(TicketChanges::Actor))
                .col(uuid_null(TicketChanges::AgentId))
                .col(string_null(TicketChanges::AgentName))
                .col(text_null(TicketChanges::Note))
                .foreign_key(
                    ForeignKey::create()
                        .from(TicketChanges::Table, TicketChanges::TicketId)
                        .to(Tickets::Table, Tickets::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_ticket_changes_ticket")
                .table(TicketChanges::Table)
                .col(TicketChanges::TicketId)
                .col(TicketChanges::At)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(TicketChanges::Table).to_owned())
            .await?;
        let db = m.get_connection();
        for statement in [
            "DROP INDEX IF EXISTS idx_tickets_status",
            "DROP INDEX IF EXISTS idx_tickets_assignee",
            "ALTER TABLE tickets DROP COLUMN closed_at",
            "ALTER TABLE tickets DROP COLUMN closing_note",
            "ALTER TABLE tickets DROP COLUMN assignee_id",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}

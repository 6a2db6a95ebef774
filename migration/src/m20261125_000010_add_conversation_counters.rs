//! Counters on the conversation row, so a turn needs neither the transcript nor a count of
//! it: visitor turns (capped), re-asks of the question now waiting (capped), lines said (the
//! next line's `seq`), and the language the bot's own messages are in. Tickets record how
//! many earlier lines their bounded transcript leaves out.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    VisitorTurns,
    Reasks,
    LineCount,
    Locale,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    TranscriptOmitted,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            integer(Conversations::VisitorTurns).default(0).to_owned(),
            integer(Conversations::Reasks).default(0).to_owned(),
            integer(Conversations::LineCount).default(0).to_owned(),
            string(Conversations::Locale).default("en").to_owned(),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(column)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Tickets::Table)
                .add_column(integer(Tickets::TranscriptOmitted).default(0))
                .to_owned(),
        )
        .await?;
        // Conversations already running go on numbering their lines where they are. Plain SQL
        // that SQLite and PostgreSQL both run.
        m.get_connection()
            .execute_unprepared(
                "UPDATE conversations SET \
                   line_count = (SELECT COUNT(*) FROM conversation_messages m \
                                 WHERE m.conversation_id = conversations.id), \
                   visitor_turns = (SELECT COUNT(*) FROM conversation_messages m \
                                    WHERE m.conversation_id = conversations.id \
                                      AND m.sender = 'VISITOR')",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Tickets::Table)
                .drop_column(Tickets::TranscriptOmitted)
                .to_owned(),
        )
        .await?;
        for column in [
            Conversations::Locale,
            Conversations::LineCount,
            Conversations::Reasks,
            Conversations::VisitorTurns,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

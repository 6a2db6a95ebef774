use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Steps {
    Table,
    NextStepId,
    Field,
    Options,
}

#[derive(DeriveIden)]
enum Flows {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    ConversationId,
    Transcript,
    Answers,
}

#[derive(DeriveIden)]
enum FlowVersions {
    Table,
    Id,
    FlowId,
    AccountId,
    Number,
    Steps,
    PublishedAt,
}

#[derive(DeriveIden)]
enum LiveTopics {
    Table,
    FlowId,
    StepId,
    AccountId,
    Topic,
    TopicKey,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    AccountId,
    FlowId,
    FlowVersionId,
    Status,
    CurrentStepId,
    Awaiting,
    Answers,
    VisitorName,
    VisitorEmail,
    VisitorPhone,
    TicketId,
    Revision,
    CreatedAt,
    LastActivityAt,
}

#[derive(DeriveIden)]
enum ConversationMessages {
    Table,
    Id,
    ConversationId,
    Seq,
    Sender,
    Text,
    ClientMessageId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for column in [
            uuid_null(Steps::NextStepId),
            string_null(Steps::Field),
            json_null(Steps::Options),
        ] {
            let mut column = column;
            m.alter_table(
                Table::alter()
                    .table(Steps::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        for column in [
            uuid_null(Tickets::ConversationId),
            json_null(Tickets::Transcript),
            json_null(Tickets::Answers),
        ] {
            let mut column = column;
            m.alter_table(
                Table::alter()
                    .table(Tickets::Table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(FlowVersions::Table)
                .col(pk_uuid(FlowVersions::Id))
                .col(uuid(FlowVersions::FlowId))
                .col(uuid(FlowVersions::AccountId))
                .col(integer(FlowVersions::Number))
                .col(json(FlowVersions::Steps))
                .col(timestamp_with_time_zone(FlowVersions::PublishedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(FlowVersions::Table, FlowVersions::FlowId)
                        .to(Flows::Table, Flows::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("flow_versions_flow_number")
                .table(FlowVersions::Table)
                .col(FlowVersions::FlowId)
                .col(FlowVersions::Number)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(LiveTopics::Table)
                .col(uuid(LiveTopics::FlowId))
                .col(uuid(LiveTopics::StepId))
                .col(uuid(LiveTopics::AccountId))
                .col(string(LiveTopics::Topic))
                .col(string(LiveTopics::TopicKey))
                .primary_key(
                    Index::create()
                        .col(LiveTopics::FlowId)
                        .col(LiveTopics::StepId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(LiveTopics::Table, LiveTopics::FlowId)
                        .to(Flows::Table, Flows::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("live_topics_account_topic_key")
                .table(LiveTopics::Table)
                .col(LiveTopics::AccountId)
                .col(LiveTopics::TopicKey)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Conversations::Table)
                .col(pk_uuid(Conversations::Id))
                .col(uuid(Conversations::AccountId))
                .col(uuid(Conversations::FlowId))
                .col(uuid(Conversations::FlowVersionId))
                .col(string(Conversations::Status))
                .col(uuid_null(Conversations::CurrentStepId))
                .col(string(Conversations::Awaiting))
                .col(json(Conversations::Answers))
                .col(string_null(Conversations::VisitorName))
                .col(string_null(Conversations::VisitorEmail))
                .col(string_null(Conversations::VisitorPhone))
                .col(uuid_null(Conversations::TicketId))
                .col(integer(Conversations::Revision).default(0))
                .col(timestamp_with_time_zone(Conversations::CreatedAt))
                .col(timestamp_with_time_zone(Conversations::LastActivityAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Conversations::Table, Conversations::FlowVersionId)
                        .to(FlowVersions::Table, FlowVersions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ConversationMessages::Table)
                .col(pk_uuid(ConversationMessages::Id))
                .col(uuid(ConversationMessages::ConversationId))
                .col(integer(ConversationMessages::Seq))
                .col(string(ConversationMessages::Sender))
                .col(text(ConversationMessages::Text))
                .col(string_null(ConversationMessages::ClientMessageId))
                .col(timestamp_with_time_zone(ConversationMessages::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(
                            ConversationMessages::Table,
                            ConversationMessages::ConversationId,
                        )
                        .to(Conversations::Table, Conversations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("conversation_messages_seq")
                .table(ConversationMessages::Table)
                .col(ConversationMessages::ConversationId)
                .col(ConversationMessages::Seq)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("conversation_messages_client_id")
                .table(ConversationMessages::Table)
                .col(ConversationMessages::ConversationId)
                .col(ConversationMessages::ClientMessageId)
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ConversationMessages::Table.into_iden(),
            Conversations::Table.into_iden(),
            LiveTopics::Table.into_iden(),
            FlowVersions::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        for column in [
            Tickets::ConversationId.into_iden(),
            Tickets::Transcript.into_iden(),
            Tickets::Answers.into_iden(),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Tickets::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        for column in [
            Steps::NextStepId.into_iden(),
            Steps::Field.into_iden(),
            Steps::Options.into_iden(),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Steps::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

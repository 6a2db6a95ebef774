use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Name,
    TicketSeq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    AccountId,
    Kind,
    Prefix,
    KeyHash,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    AccountId,
    Name,
    Email,
    EmailKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Flows {
    Table,
    Id,
    AccountId,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Steps {
    Table,
    Id,
    FlowId,
    AccountId,
    Position,
    Kind,
    Text,
    Topic,
    TopicKey,
    ConfirmationMessage,
    ForwardEmails,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RoutingRules {
    Table,
    Id,
    AccountId,
    Tag,
    TagKey,
    Emails,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tickets {
    Table,
    Id,
    AccountId,
    Number,
    FlowId,
    StepId,
    FlowName,
    Topic,
    TopicKey,
    Status,
    Message,
    VisitorName,
    VisitorEmail,
    VisitorPhone,
    ForwardEmails,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    TicketId,
    AccountId,
    Recipient,
    RecipientKey,
    Sources,
    Status,
    Attempts,
    LastError,
    MessageId,
    SmtpResponse,
    NextAttemptAt,
    LockedUntil,
    SentAt,
    CreatedAt,
    UpdatedAt,
}

fn account_fk<T: IntoIden + 'static>(table: T, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Accounts::Table, Accounts::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Accounts::Table)
                .col(pk_uuid(Accounts::Id))
                .col(string(Accounts::Name))
                .col(big_integer(Accounts::TicketSeq).default(0))
                .col(timestamp_with_time_zone(Accounts::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(pk_uuid(ApiKeys::Id))
                .col(uuid(ApiKeys::AccountId))
                .col(string(ApiKeys::Kind))
                .col(string(ApiKeys::Prefix))
                .col(string_uniq(ApiKeys::KeyHash))
                .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                .foreign_key(&mut account_fk(ApiKeys::Table, ApiKeys::AccountId))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Agents::Table)
                .col(pk_uuid(Agents::Id))
                .col(uuid(Agents::AccountId))
                .col(string(Agents::Name))
                .col(string(Agents::Email))
                .col(string(Agents::EmailKey))
                .col(timestamp_with_time_zone(Agents::CreatedAt))
                .foreign_key(&mut account_fk(Agents::Table, Agents::AccountId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("agents_account_email_key")
                .table(Agents::Table)
                .col(Agents::AccountId)
                .col(Agents::EmailKey)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Flows::Table)
                .col(pk_uuid(Flows::Id))
                .col(uuid(Flows::AccountId))
                .col(string(Flows::Name))
                .col(timestamp_with_time_zone(Flows::CreatedAt))
                .foreign_key(&mut account_fk(Flows::Table, Flows::AccountId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("flows_account_created")
                .table(Flows::Table)
                .col(Flows::AccountId)
                .col(Flows::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Steps::Table)
                .col(pk_uuid(Steps::Id))
                .col(uuid(Steps::FlowId))
                .col(uuid(Steps::AccountId))
                .col(integer(Steps::Position))
                .col(string(Steps::Kind))
                .col(text_null(Steps::Text))
                .col(string_null(Steps::Topic))
                .col(string_null(Steps::TopicKey))
                .col(text_null(Steps::ConfirmationMessage))
                .col(json(Steps::ForwardEmails))
                .col(timestamp_with_time_zone(Steps::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Steps::Table, Steps::FlowId)
                        .to(Flows::Table, Flows::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("steps_flow_position")
                .table(Steps::Table)
                .col(Steps::FlowId)
                .col(Steps::Position)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("steps_account_topic_key")
                .table(Steps::Table)
                .col(Steps::AccountId)
                .col(Steps::TopicKey)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RoutingRules::Table)
                .col(pk_uuid(RoutingRules::Id))
                .col(uuid(RoutingRules::AccountId))
                .col(string(RoutingRules::Tag))
                .col(string(RoutingRules::TagKey))
                .col(json(RoutingRules::Emails))
                .col(timestamp_with_time_zone(RoutingRules::CreatedAt))
                .foreign_key(&mut account_fk(
                    RoutingRules::Table,
                    RoutingRules::AccountId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("routing_rules_account_tag_key")
                .table(RoutingRules::Table)
                .col(RoutingRules::AccountId)
                .col(RoutingRules::TagKey)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Tickets::Table)
                .col(pk_uuid(Tickets::Id))
                .col(uuid(Tickets::AccountId))
                .col(big_integer(Tickets::Number))
                .col(uuid_null(Tickets::FlowId))
                .col(uuid_null(Tickets::StepId))
                .col(string(Tickets::FlowName))
                .col(string(Tickets::Topic))
                .col(string(Tickets::TopicKey))
                .col(string(Tickets::Status))
                .col(text(Tickets::Message))
                .col(string_null(Tickets::VisitorName))
                .col(string_null(Tickets::VisitorEmail))
                .col(string_null(Tickets::VisitorPhone))
                .col(json(Tickets::ForwardEmails))
                .col(timestamp_with_time_zone(Tickets::CreatedAt))
                .foreign_key(&mut account_fk(Tickets::Table, Tickets::AccountId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("tickets_account_number")
                .table(Tickets::Table)
                .col(Tickets::AccountId)
                .col(Tickets::Number)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("tickets_account_topic_key_number")
                .table(Tickets::Table)
                .col(Tickets::AccountId)
                .col(Tickets::TopicKey)
                .col(Tickets::Number)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Deliveries::Table)
                .col(pk_uuid(Deliveries::Id))
                .col(uuid(Deliveries::TicketId))
                .col(uuid(Deliveries::AccountId))
                .col(string(Deliveries::Recipient))
                .col(string(Deliveries::RecipientKey))
                .col(json(Deliveries::Sources))
                .col(string(Deliveries::Status))
                .col(integer(Deliveries::Attempts).default(0))
                .col(text_null(Deliveries::LastError))
                .col(string(Deliveries::MessageId))
                .col(text_null(Deliveries::SmtpResponse))
                .col(timestamp_with_time_zone_null(Deliveries::NextAttemptAt))
                .col(timestamp_with_time_zone_null(Deliveries::LockedUntil))
                .col(timestamp_with_time_zone_null(Deliveries::SentAt))
                .col(timestamp_with_time_zone(Deliveries::CreatedAt))
                .col(timestamp_with_time_zone(Deliveries::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Deliveries::Table, Deliveries::TicketId)
                        .to(Tickets::Table, Tickets::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("deliveries_ticket_recipient_key")
                .table(Deliveries::Table)
                .col(Deliveries::TicketId)
                .col(Deliveries::RecipientKey)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("deliveries_status")
                .table(Deliveries::Table)
                .col(Deliveries::Status)
                .col(Deliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Deliveries::Table.into_iden(),
            Tickets::Table.into_iden(),
            RoutingRules::Table.into_iden(),
            Steps::Table.into_iden(),
            Flows::Table.into_iden(),
            Agents::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Accounts::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

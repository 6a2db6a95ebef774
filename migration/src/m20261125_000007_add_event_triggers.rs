//! A PostgreSQL trigger that announces new tickets with NOTIFY when they commit (see
//! `domain::infra::events`). SQLite has no cross-process notifications: nothing to do there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE FUNCTION ticketing_notify_ticket_opened() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ticketing_events', json_build_object(
        'kind', 'ticket_opened', 'account_id', NEW.account_id, 'ticket_id', NEW.id)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ticketing_ticket_opened AFTER INSERT ON tickets
    FOR EACH ROW EXECUTE FUNCTION ticketing_notify_ticket_opened();

"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS ticketing_ticket_opened ON tickets;
DROP FUNCTION IF EXISTS ticketing_notify_ticket_opened();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DatabaseBackend::Postgres {
            m.get_connection().execute_unprepared(UP).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DatabaseBackend::Postgres {
            m.get_connection().execute_unprepared(DOWN).await?;
        }
        Ok(())
    }
}

//! PostgreSQL triggers that announce new tickets and delivery results with NOTIFY (see
//! `domain::events`). SQLite has no cross-process notifications: nothing to do there.

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

CREATE FUNCTION ticketing_notify_delivery_updated() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('ticketing_events', json_build_object(
        'kind', 'delivery_updated', 'account_id', NEW.account_id,
        'ticket_id', NEW.ticket_id, 'delivery_id', NEW.id)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- A result or a retry, and an operator putting a delivery back; not the short SENDING state
-- (a NOTIFY serialises commits, so one per delivery is the budget).
CREATE TRIGGER ticketing_delivery_updated AFTER UPDATE OF status ON deliveries
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status <> 'SENDING')
    EXECUTE FUNCTION ticketing_notify_delivery_updated();
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS ticketing_delivery_updated ON deliveries;
DROP FUNCTION IF EXISTS ticketing_notify_delivery_updated();
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

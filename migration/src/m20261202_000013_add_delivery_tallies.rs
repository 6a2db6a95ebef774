//! Deliveries counted by account and state as they change, so the operators' counts
//! (`queueStats`, `/ops`, `/metrics`) read a few rows instead of the whole history.
//!
//! Triggers keep the counts, so every writer is covered (the worker's state changes, retention
//! and an account's deletion cascading to its deliveries) without each remembering to:
//! - SQLite has one writer at a time: row triggers add to `delivery_tallies` directly.
//! - PostgreSQL has many concurrent writers, and one row per account and state updated by all
//!   of them would serialise every delivery transaction of an account behind that row's lock.
//!   Statement triggers append each statement's net change, grouped, to
//!   `delivery_tally_changes` (inserts never wait for each other); workers fold those rows into
//!   `delivery_tallies` every second (`domain::ops::fold_tallies`). A count is the tally plus
//!   the changes not yet folded, read in one statement.
//!
//! Also indexes that find the oldest waiting delivery without sorting the backlog.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeliveryTallies {
    Table,
    AccountId,
    Status,
    N,
}

#[derive(DeriveIden)]
enum DeliveryTallyChanges {
    Table,
    Id,
    AccountId,
    Status,
    Delta,
}

#[derive(DeriveIden, Clone, Copy)]
enum Deliveries {
    Table,
    AccountId,
    Status,
    CreatedAt,
}

const OLDEST: &str = "idx_deliveries_status_created_at";
const OLDEST_PER_ACCOUNT: &str = "idx_deliveries_account_status_created_at";

const SQLITE_UP: &str = r#"
CREATE TRIGGER delivery_tallies_insert AFTER INSERT ON deliveries BEGIN
    INSERT INTO delivery_tallies (account_id, status, n) VALUES (NEW.account_id, NEW.status, 1)
        ON CONFLICT (account_id, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER delivery_tallies_update AFTER UPDATE OF status, account_id ON deliveries
WHEN OLD.status IS NOT NEW.status OR OLD.account_id IS NOT NEW.account_id BEGIN
    UPDATE delivery_tallies SET n = n - 1
        WHERE account_id = OLD.account_id AND status = OLD.status;
    INSERT INTO delivery_tallies (account_id, status, n) VALUES (NEW.account_id, NEW.status, 1)
        ON CONFLICT (account_id, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER delivery_tallies_delete AFTER DELETE ON deliveries BEGIN
    UPDATE delivery_tallies SET n = n - 1
        WHERE account_id = OLD.account_id AND status = OLD.status;
END;
"#;

const SQLITE_DOWN: &str = r#"
DROP TRIGGER IF EXISTS delivery_tallies_insert;
DROP TRIGGER IF EXISTS delivery_tallies_update;
DROP TRIGGER IF EXISTS delivery_tallies_delete;
"#;

const POSTGRES_UP: &str = r#"
CREATE FUNCTION ticketing_tally_inserted_deliveries() RETURNS trigger AS $$
BEGIN
    INSERT INTO delivery_tally_changes (account_id, status, delta)
        SELECT account_id, status, COUNT(*) FROM new_rows GROUP BY account_id, status;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION ticketing_tally_updated_deliveries() RETURNS trigger AS $$
BEGIN
    INSERT INTO delivery_tally_changes (account_id, status, delta)
        SELECT account_id, status, SUM(d) FROM (
            SELECT account_id, status, -1 AS d FROM old_rows
            UNION ALL
            SELECT account_id, status, 1 AS d FROM new_rows
        ) AS moved
        GROUP BY account_id, status HAVING SUM(d) <> 0;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION ticketing_tally_deleted_deliveries() RETURNS trigger AS $$
BEGIN
    INSERT INTO delivery_tally_changes (account_id, status, delta)
        SELECT account_id, status, -COUNT(*) FROM old_rows GROUP BY account_id, status;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER delivery_tallies_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ticketing_tally_inserted_deliveries();
CREATE TRIGGER delivery_tallies_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ticketing_tally_updated_deliveries();
CREATE TRIGGER delivery_tallies_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ticketing_tally_deleted_deliveries();
"#;

const POSTGRES_DOWN: &str = r#"
DROP TRIGGER IF EXISTS delivery_tallies_insert ON deliveries;
DROP TRIGGER IF EXISTS delivery_tallies_update ON deliveries;
DROP TRIGGER IF EXISTS delivery_tallies_delete ON deliveries;
DROP FUNCTION IF EXISTS ticketing_tally_inserted_deliveries();
DROP FUNCTION IF EXISTS ticketing_tally_updated_deliveries();
DROP FUNCTION IF EXISTS ticketing_tally_deleted_deliveries();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on SQLite too (sea-orm-migration uses one only on PostgreSQL): a
    /// delivery written between the triggers and the first count would be counted twice.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DeliveryTallies::Table)
                .col(ColumnDef::new(DeliveryTallies::AccountId).uuid().not_null())
                .col(ColumnDef::new(DeliveryTallies::Status).string().not_null())
                .col(ColumnDef::new(DeliveryTallies::N).big_integer().not_null())
                .primary_key(
                    Index::create()
                        .col(DeliveryTallies::AccountId)
                        .col(DeliveryTallies::Status),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeliveryTallyChanges::Table)
                .col(
                    ColumnDef::new(DeliveryTallyChanges::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(DeliveryTallyChanges::AccountId)
                        .uuid()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DeliveryTallyChanges::Status)
                        .string()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(DeliveryTallyChanges::Delta)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        // Counted once here, in the same transaction as the triggers on PostgreSQL (its
        // migrations are transactional), so no change falls between the count and the trigger.
        match m.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared("LOCK TABLE deliveries IN SHARE MODE")
                    .await?;
                db.execute_unprepared(POSTGRES_UP).await?;
            }
            _ => {
                db.execute_unprepared(SQLITE_UP).await?;
            }
        }
        db.execute_unprepared(
            "INSERT INTO delivery_tallies (account_id, status, n) \
             SELECT account_id, status, COUNT(*) FROM deliveries GROUP BY account_id, status",
        )
        .await?;
        for (name, per_account) in [(OLDEST, false), (OLDEST_PER_ACCOUNT, true)] {
            let mut index = Index::create();
            index.name(name).table(Deliveries::Table);
            if per_account {
                index.col(Deliveries::AccountId);
            }
            index.col(Deliveries::Status).col(Deliveries::CreatedAt);
            m.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let down = match m.get_database_backend() {
            DatabaseBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        m.get_connection().execute_unprepared(down).await?;
        for name in [OLDEST, OLDEST_PER_ACCOUNT] {
            m.drop_index(Index::drop().name(name).table(Deliveries::Table).to_owned())
                .await?;
        }
        m.drop_table(Table::drop().table(DeliveryTallyChanges::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(DeliveryTallies::Table).to_owned())
            .await
    }
}

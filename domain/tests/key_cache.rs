//! The API key cache over a real (SQLite) database: a key is served from memory until it is
//! forgotten or its entry expires, and a zero TTL reads the database every time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use domain::Error;
use domain::infra::config::{DatabaseConfig, Secret};
use domain::keys::{KeyCache, Principal};
use entity::api_key;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

/// A fresh SQLite file, removed with its journal files when the test ends.
struct TestDb {
    db: DatabaseConnection,
    path: std::path::PathBuf,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

async fn database() -> TestDb {
    let path = std::env::temp_dir().join(format!("key-cache-{}.db", uuid::Uuid::now_v7()));
    let db = domain::infra::db::connect(&DatabaseConfig {
        url: Secret::new(format!("sqlite://{}", path.display())),
        max_connections: 2,
    })
    .await
    .expect("connect");
    domain::infra::db::migrate(&db).await.expect("migrate");
    TestDb { db, path }
}

/// Revokes a key behind the cache's back, as another process does before its notification
/// arrives.
async fn revoke_elsewhere(db: &DatabaseConnection, key: &Principal) {
    api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(domain::now()))
        .filter(api_key::Column::Id.eq(key.key_id))
        .exec(db)
        .await
        .unwrap();
}

fn refused(result: domain::Result<Principal>) -> bool {
    matches!(result, Err(Error::Unauthenticated))
}

#[tokio::test]
async fn a_cached_key_is_served_until_it_is_forgotten_or_expires() {
    let test_db = database().await;
    let db = &test_db.db;
    let account = domain::keys::create_account(db, "Acme").await.unwrap();

    let cache = KeyCache::new(Duration::from_secs(600));
    let admin = cache.authenticate(db, &account.admin_key).await.unwrap();
    revoke_elsewhere(db, &admin).await;
    let again = cache.authenticate(db, &account.admin_key).await.unwrap();
    assert_eq!(again.key_id, admin.key_id, "served from memory");
    cache.forget(admin.key_id);
    assert!(refused(cache.authenticate(db, &account.admin_key).await));

    let short = KeyCache::new(Duration::from_millis(50));
    let widget = short.authenticate(db, &account.widget_key).await.unwrap();
    revoke_elsewhere(db, &widget).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(refused(short.authenticate(db, &account.widget_key).await));
}

#[tokio::test]
async fn a_zero_ttl_asks_the_database_every_time() {
    let test_db = database().await;
    let db = &test_db.db;
    let account = domain::keys::create_account(db, "Acme").await.unwrap();
    let cache = KeyCache::new(Duration::ZERO);
    let admin = cache.authenticate(db, &account.admin_key).await.unwrap();
    revoke_elsewhere(db, &admin).await;
    assert!(refused(cache.authenticate(db, &account.admin_key).await));
    assert!(refused(cache.authenticate(db, "tk_admin_unknown").await));
}

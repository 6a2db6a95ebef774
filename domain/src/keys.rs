//! Accounts and their API keys. A key is 256 random bits shown once; only its SHA-256 is
//! stored, so a leaked database does not leak working keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::{account, api_key, api_key_origin};
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionSession, TransactionTrait,
};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::infra::events::{self, Event};
use crate::vocab::Locale;
use crate::{Error, Result, limits, now, validate};

pub use crate::vocab::KeyKind;

/// Who is calling: resolved from a valid key.
#[derive(Clone, Copy, Debug)]
pub struct Principal {
    pub account_id: Uuid,
    pub key_id: Uuid,
    pub kind: KeyKind,
}

impl Principal {
    /// Refuses widget keys.
    pub fn require_admin(&self) -> Result<Uuid> {
        match self.kind {
            KeyKind::Admin => Ok(self.account_id),
            KeyKind::Widget => Err(Error::Forbidden),
        }
    }
}

/// A new account with its first keys, in clear text this one time.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAccount {
    pub account_id: Uuid,
    pub admin_key: String,
    pub widget_key: String,
}

/// The anti-forgery token of the `/ops` page's forms: derived from the operator token, so
/// every API process agrees on it and only a reader of the page (who had the operator
/// token) knows it; a page elsewhere that makes the operator's browser post a form, its Basic
/// credentials attached, cannot.
pub fn ops_form_token(ops_token: &str) -> String {
    hash(&format!("ticketing /ops form\0{ops_token}"))
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn generate(kind: KeyKind) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("tk_{}_{}", kind.as_str(), URL_SAFE_NO_PAD.encode(bytes))
}

async fn insert_key(db: &impl ConnectionTrait, account_id: Uuid, kind: KeyKind) -> Result<String> {
    let key = generate(kind);
    // The prefix names the kind and a few characters, enough to tell keys apart in a list.
    let prefix: String = key
        .chars()
        .take(format!("tk_{}_", kind.as_str()).len() + 6)
        .collect();
    api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account_id),
        kind: Set(kind),
        prefix: Set(prefix),
        key_hash: Set(hash(&key)),
        created_at: Set(now()),
        revoked_at: Set(None),
        last_used_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(key)
}

/// A new key of the account, usable from browsers on `origins`, with its secret in clear
/// text this one time.
pub async fn create_key(
    db: &impl TransactionTrait,
    account_id: Uuid,
    kind: KeyKind,
    origins: &[String],
) -> Result<(api_key::Model, String)> {
    let origins = validate::origins("allowedOrigins", origins)?;
    let txn = crate::infra::db::begin(db).await?;
    limits::check::<api_key::Entity>(
        &txn,
        api_key::Column::AccountId.eq(account_id),
        "API keys",
        limits::API_KEYS,
    )
    .await?;
    let secret = insert_key(&txn, account_id, kind).await?;
    let model = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash(&secret)))
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("api key"))?;
    insert_origins(&txn, model.id, &origins).await?;
    txn.commit().await?;
    Ok((model, secret))
}

async fn insert_origins(db: &impl ConnectionTrait, key_id: Uuid, origins: &[String]) -> Result<()> {
    if origins.is_empty() {
        return Ok(());
    }
    api_key_origin::Entity::insert_many(origins.iter().map(|origin| api_key_origin::ActiveModel {
        api_key_id: Set(key_id),
        origin: Set(origin.clone()),
    }))
    .exec(db)
    .await?;
    Ok(())
}

/// Replaces the origins a key of the account may be used from in a browser.
pub async fn set_origins(
    db: &impl TransactionTrait,
    account_id: Uuid,
    key_id: Uuid,
    origins: &[String],
) -> Result<api_key::Model> {
    let origins = validate::origins("origins", origins)?;
    let txn = crate::infra::db::begin(db).await?;
    let key = api_key::Entity::find_by_id(key_id)
        .filter(api_key::Column::AccountId.eq(account_id))
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("api key"))?;
    api_key_origin::Entity::delete_many()
        .filter(api_key_origin::Column::ApiKeyId.eq(key.id))
        .exec(&txn)
        .await?;
    insert_origins(&txn, key.id, &origins).await?;
    txn.commit().await?;
    Ok(key)
}

/// The origins of each key, sorted, for batch loading.
pub async fn origins_of(
    db: &impl ConnectionTrait,
    key_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<String>>> {
    let rows = api_key_origin::Entity::find()
        .filter(api_key_origin::Column::ApiKeyId.is_in(key_ids.iter().copied()))
        .order_by_asc(api_key_origin::Column::Origin)
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
    for row in rows {
        out.entry(row.api_key_id).or_default().push(row.origin);
    }
    Ok(out)
}

/// Whether the key may be used from a page on `origin` (as the browser sent it).
pub async fn key_allows_origin(
    db: &impl ConnectionTrait,
    key_id: Uuid,
    origin: &str,
) -> Result<bool> {
    Ok(
        api_key_origin::Entity::find_by_id((key_id, origin.to_ascii_lowercase()))
            .one(db)
            .await?
            .is_some(),
    )
}

/// Whether any working key may be used from `origin`: what a CORS preflight, which carries
/// no key, can be told.
pub async fn any_key_allows_origin(db: &impl ConnectionTrait, origin: &str) -> Result<bool> {
    Ok(api_key_origin::Entity::find()
        .inner_join(api_key::Entity)
        .filter(api_key_origin::Column::Origin.eq(origin.to_ascii_lowercase()))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .is_some())
}

/// The account's keys, newest first (revoked ones included, marked).
pub async fn list_keys(db: &impl ConnectionTrait, account_id: Uuid) -> Result<Vec<api_key::Model>> {
    Ok(api_key::Entity::find()
        .filter(api_key::Column::AccountId.eq(account_id))
        .order_by_desc(api_key::Column::CreatedAt)
        .order_by_desc(api_key::Column::Id)
        .all(db)
        .await?)
}

/// Revokes a key of the account; it fails from the next request on (on other API processes,
/// as soon as they hear of it; see [`KeyCache`]). Revoking twice is fine.
pub async fn revoke_key(
    db: &impl ConnectionTrait,
    cache: &KeyCache,
    account_id: Uuid,
    id: Uuid,
) -> Result<api_key::Model> {
    let key = api_key::Entity::find_by_id(id)
        .filter(api_key::Column::AccountId.eq(account_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound("api key"))?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let mut active: api_key::ActiveModel = key.into();
    active.revoked_at = Set(Some(now()));
    let revoked = active.update(db).await?;
    cache.forget(id);
    events::publish(
        db,
        &[Event::KeyRevoked {
            account_id,
            key_id: id,
        }],
    )
    .await;
    Ok(revoked)
}

/// Creates an account with one admin key and one widget key.
pub async fn create_account(db: &impl TransactionTrait, name: &str) -> Result<NewAccount> {
    let name = validate::name("name", name)?;
    let txn = crate::infra::db::begin(db).await?;
    let account = account::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        ticket_seq: Set(0),
        created_at: Set(now()),
        locale: Set(Locale::default()),
        ticket_retention_days: Set(None),
        queue_round: Set(0),
        queue_round_jobs: Set(0),
    }
    .insert(&txn)
    .await?;
    let admin_key = insert_key(&txn, account.id, KeyKind::Admin).await?;
    let widget_key = insert_key(&txn, account.id, KeyKind::Widget).await?;
    txn.commit().await?;
    Ok(NewAccount {
        account_id: account.id,
        admin_key,
        widget_key,
    })
}

/// How often a key's `last_used_at` is written at most.
fn last_used_resolution() -> chrono::Duration {
    chrono::Duration::minutes(1)
}

/// Most keys one process keeps; past it the cache starts over. Only working keys are kept, so
/// unknown keys sent by anyone cannot fill it.
const MAX_CACHED_KEYS: usize = 10_000;

/// Keys this process resolved lately, so that a busy key (a chat widget's, typically) costs no
/// database round trip per request (on `openTicket`, one of seven round trips; dropping it
/// raised throughput by about a fifth).
///
/// A key's account and kind never change; only revocation matters. The process that revokes a
/// key forgets it at once ([`revoke_key`]), and every other API process within milliseconds,
/// told through [`events`] (PostgreSQL `NOTIFY`, see [`forget_revoked`]). Entries expire after
/// the TTL, which bounds how long a lost notification can keep a revoked key working.
#[derive(Debug)]
pub struct KeyCache {
    ttl: std::time::Duration,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// By the key's hash: the key itself is not kept.
    entries: HashMap<String, Cached>,
    /// Counts forgetting, so a lookup that raced a revocation does not store what it read.
    forgotten: u64,
}

#[derive(Clone, Copy, Debug)]
struct Cached {
    principal: Principal,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    expires: Instant,
}

impl CacheState {
    /// The unexpired entry of a key's hash.
    fn hit(&self, digest: &str) -> Option<Cached> {
        self.entries
            .get(digest)
            .filter(|c| c.expires > Instant::now())
            .copied()
    }
}

impl KeyCache {
    /// A cache keeping keys for `ttl`; zero keeps none (every request reads the database).
    pub fn new(ttl: std::time::Duration) -> Self {
        KeyCache {
            ttl,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state stays consistent even if a holder panicked: every change is one call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves a bearer key to its account and kind.
    pub async fn authenticate(&self, db: &impl ConnectionTrait, key: &str) -> Result<Principal> {
        // Looking up by hash keeps the comparison away from the secret itself.
        let digest = hash(key.trim());
        let (cached, forgotten) = {
            let state = self.state();
            (state.hit(&digest), state.forgotten)
        };
        let mut entry = match cached {
            Some(hit) => hit,
            None => {
                let found = api_key::Entity::find()
                    .filter(api_key::Column::KeyHash.eq(&digest))
                    .filter(api_key::Column::RevokedAt.is_null())
                    .one(db)
                    .await?
                    .ok_or(Error::Unauthenticated)?;
                Cached {
                    principal: Principal {
                        account_id: found.account_id,
                        key_id: found.id,
                        kind: found.kind,
                    },
                    last_used_at: found.last_used_at,
                    expires: Instant::now() + self.ttl,
                }
            }
        };
        let current = now();
        let stale = entry
            .last_used_at
            .is_none_or(|t| current - t > last_used_resolution());
        if stale {
            api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(current))
                .filter(api_key::Column::Id.eq(entry.principal.key_id))
                .exec(db)
                .await?;
            entry.last_used_at = Some(current);
        }
        if (cached.is_none() || stale) && !self.ttl.is_zero() {
            let mut state = self.state();
            if state.forgotten == forgotten {
                if state.entries.len() >= MAX_CACHED_KEYS {
                    state.entries.clear();
                }
                state.entries.insert(digest, entry);
            }
        }
        Ok(entry.principal)
    }

    /// Whether `key` resolves from the cache, without the database.
    pub fn is_cached(&self, key: &str) -> bool {
        self.state().hit(&hash(key.trim())).is_some()
    }

    /// Forgets a key (it was revoked).
    pub fn forget(&self, key_id: Uuid) {
        let mut state = self.state();
        state.entries.retain(|_, c| c.principal.key_id != key_id);
        state.forgotten += 1;
    }

    /// Forgets every key (revocations may have been missed).
    pub fn clear(&self) {
        let mut state = self.state();
        state.entries.clear();
        state.forgotten += 1;
    }
}

/// Forgets the keys other processes revoke, as they announce it, until the process ends;
/// forgets every key when an announcement may have been missed.
pub async fn forget_revoked(cache: Arc<KeyCache>) {
    let mut events = events::subscribe();
    let mut gaps = events::gaps();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::KeyRevoked { key_id, .. }) => cache.forget(key_id),
                Ok(_) => {}
                // A revocation may have been among the skipped events.
                Err(broadcast::error::RecvError::Lagged(_)) => cache.clear(),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = gaps.changed() => {
                if changed.is_err() {
                    return;
                }
                tracing::warn!("key cache cleared: live events may have been missed, revocations among them");
                cache.clear();
            }
        }
    }
}

/// Whether any account exists (the embedded start creates a demo one when none does).
pub async fn has_accounts(db: &impl ConnectionTrait) -> Result<bool> {
    Ok(account::Entity::find().one(db).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_name_their_kind() {
        let a = generate(KeyKind::Admin);
        let b = generate(KeyKind::Admin);
        assert!(a.starts_with("tk_admin_"));
        assert!(generate(KeyKind::Widget).starts_with("tk_widget_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), "tk_admin_".len() + 43);
        assert_ne!(hash(&a), hash(&b));
    }
}

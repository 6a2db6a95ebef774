//! Accounts and their API keys. A key is 256 random bits shown once; only its SHA-256 is
//! stored, so a leaked database does not leak working keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::{account, api_key};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionSession, TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{Error, Result, now, validate};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Everything inside its account.
    Admin,
    /// Only what a public chat widget needs: opening tickets.
    Widget,
}

impl KeyKind {
    /// The stored and printed name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Admin => "admin",
            KeyKind::Widget => "widget",
        }
    }

    /// The kind named by its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(KeyKind::Admin),
            "widget" => Some(KeyKind::Widget),
            _ => None,
        }
    }
}

/// Who is calling: resolved from a valid key.
#[derive(Clone, Copy, Debug)]
pub struct Principal {
    pub account_id: Uuid,
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
        kind: Set(kind.as_str().to_owned()),
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

/// A new key of the account, with its secret in clear text this one time.
pub async fn create_key(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    kind: KeyKind,
) -> Result<(api_key::Model, String)> {
    let secret = insert_key(db, account_id, kind).await?;
    let model = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash(&secret)))
        .one(db)
        .await?
        .ok_or(Error::NotFound("api key"))?;
    Ok((model, secret))
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

/// Revokes a key of the account; it fails from the next request on. Revoking twice is fine.
pub async fn revoke_key(
    db: &impl ConnectionTrait,
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
    Ok(active.update(db).await?)
}

/// Creates an account with one admin key and one widget key.
pub async fn create_account(db: &impl TransactionTrait, name: &str) -> Result<NewAccount> {
    let name = validate::name("name", name)?;
    let txn = crate::db::begin(db).await?;
    let account = account::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        ticket_seq: Set(0),
        created_at: Set(now()),
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

/// Resolves a bearer key to its account and kind.
pub async fn authenticate(db: &impl ConnectionTrait, key: &str) -> Result<Principal> {
    // Looking up by hash keeps the comparison away from the secret itself.
    let found = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash(key.trim())))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let kind = KeyKind::parse(&found.kind).ok_or(Error::Unauthenticated)?;
    let current = now();
    if found
        .last_used_at
        .is_none_or(|t| current - t > chrono::Duration::minutes(1))
    {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(current))
            .filter(api_key::Column::Id.eq(found.id))
            .exec(db)
            .await?;
    }
    Ok(Principal {
        account_id: found.account_id,
        kind,
    })
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

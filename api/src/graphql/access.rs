//! The account and who works in it over GraphQL: agents, settings and API keys (admin key).

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{account, agent};

use super::ApiResult;
use super::types::{loaders, shared};

/// An agent of the account; the routing form offers their addresses.
pub struct Agent(pub agent::Model);

#[Object]
impl Agent {
    /// Stable id of the agent.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// E-mail address, unique in the account (ignoring case).
    async fn email(&self) -> &str {
        &self.0.email
    }
}

/// A language notification e-mails are written in.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::vocab::Locale")]
pub enum Locale {
    /// English.
    En,
    /// Turkish.
    Tr,
}

/// Settings of the caller's account.
pub struct AccountSettings(pub account::Model);

#[Object]
impl AccountSettings {
    /// The account's id.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The account's name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The language of notification e-mails, unless a rule sets its own.
    async fn default_locale(&self) -> Locale {
        self.0.locale.into()
    }
}

/// What a key may do.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::vocab::KeyKind")]
pub enum ApiKeyKind {
    /// Everything in the account. Keep it on servers.
    Admin,
    /// Only the visitor operations; meant for public web pages.
    Widget,
}

/// An API key of the account. The secret itself is shown once, by `createApiKey`, and never
/// stored.
pub struct ApiKey(pub entity::api_key::Model);

#[Object]
impl ApiKey {
    /// Stable id of the key (not the key).
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// What it may do.
    async fn kind(&self) -> ApiKeyKind {
        self.0.kind.into()
    }
    /// The key's first characters (`tk_widget_AbCdEf`), to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it was last used (to the minute); null if never.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    /// When it was revoked; null while it works.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// The web origins (`https://shop.example`) whose pages may use this key; a browser
    /// request from any other origin is refused (`ORIGIN_NOT_ALLOWED`). Calls without an
    /// `Origin` header (servers, scripts) are not affected.
    async fn allowed_origins(&self, ctx: &Context<'_>) -> ApiResult<Vec<String>> {
        let origins = loaders(ctx)?
            .origins
            .load_one(self.0.id)
            .await
            .map_err(shared)?;
        Ok(origins.unwrap_or_default())
    }
}

/// A new key and its secret, shown this one time.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key's details.
    pub key: ApiKey,
    /// The secret to send as `Authorization: Bearer <secret>`. Store it now: it cannot be shown
    /// again.
    pub secret: String,
}

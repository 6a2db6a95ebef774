//! The account and who works in it over GraphQL (admin key): its reads and writes
//! (`accountSettings`, `agents`, `apiKeys`, `createApiKey`, ...) and their types: settings,
//! agents and API keys.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{account, agent};

use std::sync::Arc;

use domain::keys::KeyCache;

use super::types::{loaders, shared};
use super::{ApiResult, admin, cost, db, not_found_id};

/// An agent of the account: routing rules name agents (`agentIds`), and mail them at the
/// address they have when a ticket is routed.
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
    /// Days the account keeps a finished ticket (routed, every delivery ended, open or
    /// closed), after which workers delete it with its deliveries and finished webhook
    /// deliveries; null (the default): for ever. Set with `setTicketRetention`.
    async fn ticket_retention_days(&self) -> Option<i32> {
        self.0.ticket_retention_days
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

/// A new agent.
#[derive(InputObject)]
pub struct CreateAgentInput {
    /// 1-200 characters, one line.
    pub name: String,
    /// A bare address, unique in the account (ignoring case).
    pub email: String,
}

/// Changes to an agent; an omitted or null field keeps its value.
#[derive(InputObject)]
pub struct UpdateAgentInput {
    /// 1-200 characters, one line.
    pub name: Option<String>,
    /// A bare address, unique in the account (ignoring case). Rules naming the agent mail it
    /// from the next ticket routed on.
    pub email: Option<String>,
}

/// The admin key's reads of this feature.
#[derive(Default)]
pub struct AccessQuery;

#[Object(name = "AccessQuery")]
impl AccessQuery {
    /// The caller's account and its settings.
    async fn account_settings(&self, ctx: &Context<'_>) -> ApiResult<AccountSettings> {
        let account = admin(ctx)?;
        Ok(AccountSettings(
            domain::accounts::find(db(ctx)?, account).await?,
        ))
    }

    /// The account's agents, by name.
    /// Cost: counted as 1,000.
    #[graphql(complexity = "cost::list(cost::AGENTS, child_complexity)")]
    async fn agents(&self, ctx: &Context<'_>) -> ApiResult<Vec<Agent>> {
        let account = admin(ctx)?;
        Ok(domain::agents::list_agents(db(ctx)?, account)
            .await?
            .into_iter()
            .map(Agent)
            .collect())
    }

    /// The account's API keys, newest first, revoked ones included.
    /// Cost: counted as 100.
    #[graphql(complexity = "cost::list(cost::API_KEYS, child_complexity)")]
    async fn api_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiKey>> {
        let account = admin(ctx)?;
        Ok(domain::keys::list_keys(db(ctx)?, account)
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }
}

/// The admin key's writes of this feature; each validates all input before writing.
#[derive(Default)]
pub struct AccessMutation;

#[Object(name = "AccessMutation")]
impl AccessMutation {
    /// Adds an agent.
    async fn create_agent(&self, ctx: &Context<'_>, input: CreateAgentInput) -> ApiResult<Agent> {
        let account = admin(ctx)?;
        Ok(Agent(
            domain::agents::create_agent(db(ctx)?, account, &input.name, &input.email).await?,
        ))
    }

    /// Renames an agent or changes their address. Every rule naming the agent mails the new
    /// address from the next ticket routed on; deliveries already planned keep theirs.
    async fn update_agent(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAgentInput,
    ) -> ApiResult<Agent> {
        let account = admin(ctx)?;
        let id = not_found_id("agent", &id)?;
        Ok(Agent(
            domain::agents::update_agent(
                db(ctx)?,
                account,
                id,
                input.name.as_deref(),
                input.email.as_deref(),
            )
            .await?,
        ))
    }

    /// Deletes an agent. The rules that named them no longer do; a rule left with no
    /// recipient shows `hasRecipients: false`. Deliveries already planned keep their address.
    /// Returns the id.
    async fn delete_agent(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let account = admin(ctx)?;
        let uuid = not_found_id("agent", &id)?;
        domain::agents::delete_agent(db(ctx)?, account, uuid).await?;
        Ok(id)
    }

    /// Sets the language of the account's notification e-mails (rules with a `locale` of their
    /// own keep it). Tickets routed from now on use it.
    async fn set_default_locale(
        &self,
        ctx: &Context<'_>,
        locale: Locale,
    ) -> ApiResult<AccountSettings> {
        let account = admin(ctx)?;
        Ok(AccountSettings(
            domain::accounts::set_locale(db(ctx)?, account, locale.into()).await?,
        ))
    }

    /// Sets how many days (1 to 3,650) the account keeps a finished ticket (routed, and every
    /// delivery ended, open or closed); null keeps tickets for ever (the default). Workers delete older ones within a
    /// minute or so, with their deliveries and finished webhook deliveries.
    async fn set_ticket_retention(
        &self,
        ctx: &Context<'_>,
        days: Option<i32>,
    ) -> ApiResult<AccountSettings> {
        let account = admin(ctx)?;
        Ok(AccountSettings(
            domain::accounts::set_ticket_retention(db(ctx)?, account, days).await?,
        ))
    }

    /// Creates an API key; its secret is in the answer and nowhere else, ever.
    /// `allowedOrigins` are the sites whose pages may use it (see `ApiKey.allowedOrigins`);
    /// a widget key needs its site's origin here to work in visitors' browsers.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        kind: ApiKeyKind,
        #[graphql(default)] allowed_origins: Vec<String>,
    ) -> ApiResult<CreatedApiKey> {
        let account = admin(ctx)?;
        let (key, secret) =
            domain::keys::create_key(db(ctx)?, account, kind.into(), &allowed_origins).await?;
        Ok(CreatedApiKey {
            key: ApiKey(key),
            secret,
        })
    }

    /// Revokes an API key: from the next request on it is refused (`UNAUTHENTICATED`).
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ApiKey> {
        let account = admin(ctx)?;
        let id = not_found_id("api key", &id)?;
        Ok(ApiKey(
            domain::keys::revoke_key(db(ctx)?, ctx.data::<Arc<KeyCache>>()?, account, id).await?,
        ))
    }

    /// Replaces the web origins whose pages may use the key (`https://shop.example`, at most
    /// 20; lower-cased, without path or default port). An empty list means no browser page.
    async fn set_api_key_origins(
        &self,
        ctx: &Context<'_>,
        id: ID,
        origins: Vec<String>,
    ) -> ApiResult<ApiKey> {
        let account = admin(ctx)?;
        let id = not_found_id("api key", &id)?;
        Ok(ApiKey(
            domain::keys::set_origins(db(ctx)?, account, id, &origins).await?,
        ))
    }
}

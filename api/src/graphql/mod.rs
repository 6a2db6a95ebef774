//! The GraphQL schema: types, queries, mutations, batch loaders and the one place where domain
//! errors become GraphQL errors.

mod access;
mod cost;
mod cursor;
mod error;
mod flows;
mod limits;
mod loaders;
pub mod operation;
mod ops;
mod routing;
mod subscription;
mod tickets;
mod types;
mod visitor;
mod webhooks;

use std::sync::Arc;

use async_graphql::{Context, Schema};
use domain::keys::{KeyCache, Principal};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

pub use error::{ApiError, ApiResult};
pub use loaders::Loaders;
/// All read operations.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct Query(
    visitor::VisitorQuery,
    access::AccessQuery,
    flows::FlowQuery,
    routing::RoutingQuery,
    tickets::TicketQuery,
    ops::OpsQuery,
    webhooks::WebhookQuery,
);

/// All write operations.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct Mutation(
    visitor::VisitorMutation,
    flows::FlowMutation,
    access::AccessMutation,
    routing::RoutingMutation,
    tickets::TicketMutation,
    ops::OpsMutation,
    webhooks::WebhookMutation,
);

/// The executable schema.
pub type ApiSchema = Schema<Query, Mutation, subscription::Subscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most expensive query accepted: see `cost` for how lists count.
pub const MAX_COMPLEXITY: usize = cost::BUDGET;
/// Most aliases in one request.
pub const MAX_ALIASES: usize = 30;

/// Settings resolvers need.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Conversations idle longer than this expire.
    pub conversation_idle: std::time::Duration,
}

/// Builds the schema over a database; `outbound` sends rules' test e-mails, `keys` is the
/// process's key cache (revoking a key forgets it).
pub fn schema(
    db: DatabaseConnection,
    conversation_idle: std::time::Duration,
    outbound: domain::rule_check::Outbound,
    keys: Arc<KeyCache>,
) -> ApiSchema {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .data(db)
    .data(Settings { conversation_idle })
    .data(outbound)
    .data(keys)
    .extension(limits::Limits {
        max_depth: MAX_DEPTH,
        max_complexity: MAX_COMPLEXITY,
        max_aliases: MAX_ALIASES,
    })
    .extension(operation::RecordRootFields)
    .finish()
}

/// The SDL that `schema.graphql` must equal.
pub fn sdl() -> String {
    Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .finish()
    .sdl()
}

/// Who sent the request, decided once from the `Authorization` header.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No key was sent.
    Anonymous,
    /// A valid key.
    Key(Principal),
    /// The operator (`OPS_TOKEN`): queue and deliveries of every account, nothing else.
    Operator,
    /// A key was sent but could not be accepted (unknown, revoked, or the database is down).
    Refused(Arc<domain::Error>),
}

impl Caller {
    fn principal(&self) -> Result<Principal, ApiError> {
        match self {
            Caller::Anonymous => Err(domain::Error::Unauthenticated.into()),
            Caller::Key(p) => Ok(*p),
            Caller::Operator => Err(domain::Error::Forbidden.into()),
            Caller::Refused(e) => Err(ApiError::Domain(e.clone())),
        }
    }
}

/// What an operations query may see: everything for the operator, its own account for an
/// admin key; widget keys get `FORBIDDEN`.
fn ops_scope(ctx: &Context<'_>) -> Result<domain::ops::Scope, ApiError> {
    match ctx.data::<Caller>()? {
        Caller::Operator => Ok(domain::ops::Scope::All),
        caller => Ok(domain::ops::Scope::Account(
            caller.principal()?.require_admin()?,
        )),
    }
}

/// The calling key's principal (any kind).
fn principal(ctx: &Context<'_>) -> Result<Principal, ApiError> {
    ctx.data::<Caller>()?.principal()
}

/// The account of an admin key; widget keys get `FORBIDDEN`.
fn admin(ctx: &Context<'_>) -> Result<Uuid, ApiError> {
    Ok(principal(ctx)?.require_admin()?)
}

fn db<'a>(ctx: &Context<'a>) -> Result<&'a DatabaseConnection, ApiError> {
    Ok(ctx.data::<DatabaseConnection>()?)
}

fn settings(ctx: &Context<'_>) -> Result<Settings, ApiError> {
    Ok(*ctx.data::<Settings>()?)
}

/// Parses an `ID`; one that is not ours cannot exist, so it is reported like a missing row.
fn parse_id(id: &async_graphql::ID) -> Option<Uuid> {
    Uuid::parse_str(id.as_str()).ok()
}

/// [`parse_id`] for an id that must name a row: `NOT_FOUND` (as `what`) when it cannot.
fn not_found_id(what: &'static str, id: &async_graphql::ID) -> ApiResult<Uuid> {
    parse_id(id).ok_or(domain::Error::NotFound(what).into())
}

//! What every request handler shares, apart from the routes (so the HTTP router and the pages
//! it serves, such as `/ops`, depend on this and not on each other).

use std::sync::Arc;

use domain::infra::config::Secret;
use domain::keys::KeyCache;
use sea_orm::DatabaseConnection;

use crate::graphql::ApiSchema;
use crate::rate_limit::Limits;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub schema: ApiSchema,
    pub db: DatabaseConnection,
    pub ops_token: Option<Secret<String>>,
    /// Rate limits per client address and per widget key.
    pub limits: Arc<Limits>,
    /// `MAX_BODY_BYTES`, also the largest WebSocket message.
    pub max_body_bytes: usize,
    /// Keys resolved lately.
    pub keys: Arc<KeyCache>,
    /// Where notification e-mails go, in a sentence (the demo page says it).
    pub mail_goes: Arc<str>,
}

/// Compares without stopping at the first difference, so timing does not reveal how much of
/// a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

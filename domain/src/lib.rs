//! The ticketing domain, shared by the `api` and the `worker`: validation of what users type,
//! API keys, flows and their ticket steps, topic tags, routing rules, opening tickets (with the
//! atomic enqueue of their notification job), recipient resolution and the mailer.
//!
//! Every function takes a SeaORM connection and returns [`Error`]; no GraphQL or HTTP here.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod conversations;
pub mod deliveries;
pub mod demo;
pub mod design;
pub mod erasure;
pub mod error;
pub mod flows;
pub mod infra;
pub mod keys;
pub mod lease;
pub mod limits;
pub mod mail;
pub mod ops;
pub mod pauses;
pub mod retention;
pub mod routing;
pub mod rule_check;
pub mod rules;
pub mod scope;
pub mod templates;
pub mod ticket_work;
pub mod tickets;
pub mod timeline;
pub mod validate;
pub mod vocab;
pub mod webhooks;

pub use error::{Error, Result};

/// The current time, truncated to microseconds so what we write equals what PostgreSQL and
/// SQLite give back.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

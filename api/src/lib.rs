//! The ticketing API: GraphQL over HTTP for frontend teams and integrations, plus health
//! endpoints for operators. In the embedded setup the same process also runs the worker.

pub mod app;
pub mod code;
pub mod config;
pub mod demo_page;
pub mod graphql;
pub mod graphql_http;
pub mod http;
pub mod live;
pub mod ops_page;
pub mod rate_limit;
pub mod state;

pub use app::{App, RunningApp};
pub use config::ApiConfig;

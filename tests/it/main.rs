//! Integration tests: the real API and worker over HTTP, SMTP over TCP, on SQLite and
//! PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test fails"
)]

mod access;
mod agents;
mod conversation;
mod cors;
mod crash;
mod delivery;
mod demo;
mod design_editing;
mod erasure;
mod fairness;
mod fanout;
mod faults;
mod isolation;
mod limits;
mod live;
mod mail_language;
mod monitoring;
mod operations;
mod operator_actions;
mod ops;
mod outage;
mod protocol;
mod queue;
mod restart;
mod retention;
mod routing_preview;
mod schema;
mod shared_writes;
mod smtp_tls;
mod stored;
mod sweep;
mod ticket_path;
mod ticket_work;
mod validation;
mod visitor_confirmation;
mod visitor_surface;
mod webdriver;
mod webhooks;

//! Integration tests: the real API and worker over HTTP, SMTP over TCP, on SQLite and
//! PostgreSQL.

mod access;
mod delivery;
mod ops;
mod schema;
mod ticket_path;
mod validation;

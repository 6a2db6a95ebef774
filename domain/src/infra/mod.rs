//! Infrastructure both processes share, below the features: settings, the database, the
//! queue's tables, live events, metrics, the SMTP connection pool and process plumbing.
//! Features reach it through these narrow functions; nothing here knows a feature.

pub mod config;
pub mod db;
pub mod events;
pub mod process;
pub mod queue;
pub mod smtp;
pub mod telemetry;

//! Schema history of the ticketing service. Files are named `mYYYYMMDD_HHMMSS_verb_noun.rs`;
//! a migration that has landed is never edited, a change is a new file.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_tables;
mod m20261125_000002_add_conversations;
mod m20261125_000003_add_api_key_last_used;
mod m20261125_000004_add_api_key_origins;
mod m20261125_000005_add_ticket_routed_at;
mod m20261125_000006_add_locales;
mod m20261125_000007_add_event_triggers;
mod m20261125_000008_add_webhooks;
mod m20261125_000009_index_step_topic_firsts;
mod m20261125_000010_add_conversation_counters;
mod m20261202_000011_index_history;
mod m20261202_000012_add_erased_at;
mod m20261202_000013_add_delivery_tallies;
mod m20261202_000014_index_visitor_emails;
mod m20261202_000015_add_queue_rounds;
mod m20261202_000016_index_tickets_waiting;
mod m20261203_000017_add_rule_agents;
mod m20261203_000018_add_ticket_work;
mod m20261203_000019_add_flow_deleted_at;
mod m20261203_000020_add_visitor_confirmations;
mod m20261203_000021_index_webhook_deliveries_unfinished;
mod m20261203_000022_add_operator_controls;
mod m20261203_000023_add_demo;

/// Runs every migration of the service, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_tables::Migration),
            Box::new(m20261125_000002_add_conversations::Migration),
            Box::new(m20261125_000003_add_api_key_last_used::Migration),
            Box::new(m20261125_000004_add_api_key_origins::Migration),
            Box::new(m20261125_000005_add_ticket_routed_at::Migration),
            Box::new(m20261125_000006_add_locales::Migration),
            Box::new(m20261125_000007_add_event_triggers::Migration),
            Box::new(m20261125_000008_add_webhooks::Migration),
            Box::new(m20261125_000009_index_step_topic_firsts::Migration),
            Box::new(m20261125_000010_add_conversation_counters::Migration),
            Box::new(m20261202_000011_index_history::Migration),
            Box::new(m20261202_000012_add_erased_at::Migration),
            Box::new(m20261202_000013_add_delivery_tallies::Migration),
            Box::new(m20261202_000014_index_visitor_emails::Migration),
            Box::new(m20261202_000015_add_queue_rounds::Migration),
            Box::new(m20261202_000016_index_tickets_waiting::Migration),
            Box::new(m20261203_000017_add_rule_agents::Migration),
            Box::new(m20261203_000018_add_ticket_work::Migration),
            Box::new(m20261203_000019_add_flow_deleted_at::Migration),
            Box::new(m20261203_000020_add_visitor_confirmations::Migration),
            Box::new(m20261203_000021_index_webhook_deliveries_unfinished::Migration),
            Box::new(m20261203_000022_add_operator_controls::Migration),
            Box::new(m20261203_000023_add_demo::Migration),
        ]
    }
}

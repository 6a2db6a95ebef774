//! SeaORM models of the ticketing service: one module per table, relations only.
//!
//! `values` holds what the columns hold as types: states as active enums, JSON columns as
//! typed values.
//!
//! Business rules (validation, routing, delivery state changes) live in the `domain` crate.

pub mod account;
pub mod agent;
pub mod api_key;
pub mod api_key_origin;
pub mod conversation;
pub mod conversation_message;
pub mod delivery;
pub mod demo;
pub mod flow;
pub mod flow_version;
pub mod live_topic;
pub mod operator_action;
pub mod routing_rule;
pub mod rule_agent;
pub mod sending_pause;
pub mod step;
pub mod ticket;
pub mod ticket_change;
pub mod values;
pub mod webhook;
pub mod webhook_attempt;
pub mod webhook_delivery;

pub mod prelude {
    //! The entities under short names.
    pub use super::account::Entity as Account;
    pub use super::agent::Entity as Agent;
    pub use super::api_key::Entity as ApiKey;
    pub use super::api_key_origin::Entity as ApiKeyOrigin;
    pub use super::conversation::Entity as Conversation;
    pub use super::conversation_message::Entity as ConversationMessage;
    pub use super::delivery::Entity as Delivery;
    pub use super::flow::Entity as Flow;
    pub use super::flow_version::Entity as FlowVersion;
    pub use super::live_topic::Entity as LiveTopic;
    pub use super::routing_rule::Entity as RoutingRule;
    pub use super::rule_agent::Entity as RuleAgent;
    pub use super::step::Entity as Step;
    pub use super::ticket::Entity as Ticket;
    pub use super::ticket_change::Entity as TicketChange;
    pub use super::webhook::Entity as Webhook;
    pub use super::webhook_attempt::Entity as WebhookAttempt;
    pub use super::webhook_delivery::Entity as WebhookDelivery;
}

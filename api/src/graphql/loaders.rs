//! Batch loaders, one set per request: lists of flows, tickets and rules load their related
//! rows with one query per list, never one per row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{agent, delivery, flow, flow_version, step, ticket, ticket_change};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

/// Loaders bound to one request.
pub struct Loaders {
    pub flows: DataLoader<FlowById>,
    pub steps: DataLoader<StepsByFlow>,
    pub deliveries: DataLoader<DeliveriesByTicket>,
    pub known_tags: DataLoader<KnownTagsByAccount>,
    pub versions: DataLoader<VersionsByFlow>,
    pub transcripts: DataLoader<TranscriptByConversation>,
    pub tickets: DataLoader<TicketById>,
    pub origins: DataLoader<OriginsByKey>,
    pub rule_agents: DataLoader<AgentsByRule>,
    pub agents: DataLoader<AgentById>,
    pub changes: DataLoader<ChangesByTicket>,
}

impl Loaders {
    /// Fresh loaders (and caches) for one request.
    pub fn new(db: DatabaseConnection) -> Self {
        Loaders {
            flows: DataLoader::new(FlowById(db.clone()), tokio::spawn),
            steps: DataLoader::new(StepsByFlow(db.clone()), tokio::spawn),
            deliveries: DataLoader::new(DeliveriesByTicket(db.clone()), tokio::spawn),
            known_tags: DataLoader::new(KnownTagsByAccount(db.clone()), tokio::spawn),
            versions: DataLoader::new(VersionsByFlow(db.clone()), tokio::spawn),
            transcripts: DataLoader::new(TranscriptByConversation(db.clone()), tokio::spawn),
            tickets: DataLoader::new(TicketById(db.clone()), tokio::spawn),
            origins: DataLoader::new(OriginsByKey(db.clone()), tokio::spawn),
            rule_agents: DataLoader::new(AgentsByRule(db.clone()), tokio::spawn),
            agents: DataLoader::new(AgentById(db.clone()), tokio::spawn),
            changes: DataLoader::new(ChangesByTicket(db), tokio::spawn),
        }
    }
}

type LoadError = Arc<domain::Error>;

/// Flows by id.
pub struct FlowById(DatabaseConnection);

impl Loader<Uuid> for FlowById {
    type Value = flow::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, flow::Model>, LoadError> {
        domain::flows::flows_by_ids(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// The browser origins of API keys.
pub struct OriginsByKey(DatabaseConnection);

impl Loader<Uuid> for OriginsByKey {
    type Value = Vec<String>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<String>>, LoadError> {
        domain::keys::origins_of(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// The ordered steps of flows.
pub struct StepsByFlow(DatabaseConnection);

impl Loader<Uuid> for StepsByFlow {
    type Value = Vec<step::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<step::Model>>, LoadError> {
        domain::flows::steps_of_flows(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// The deliveries of tickets.
pub struct DeliveriesByTicket(DatabaseConnection);

impl Loader<Uuid> for DeliveriesByTicket {
    type Value = Vec<delivery::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<delivery::Model>>, LoadError> {
        domain::tickets::deliveries_of_tickets(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// The topic tags ticket steps use now, per account (for `RoutingRule.tagKnown`).
pub struct KnownTagsByAccount(DatabaseConnection);

impl Loader<Uuid> for KnownTagsByAccount {
    type Value = Arc<HashSet<String>>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Arc<HashSet<String>>>, LoadError> {
        let mut out = HashMap::new();
        for account in keys {
            let known = domain::rules::known_tag_keys(&self.0, *account)
                .await
                .map_err(Arc::new)?;
            out.insert(*account, Arc::new(known));
        }
        Ok(out)
    }
}

/// Published versions of flows, newest first.
pub struct VersionsByFlow(DatabaseConnection);

impl Loader<Uuid> for VersionsByFlow {
    type Value = Vec<flow_version::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<flow_version::Model>>, LoadError> {
        domain::design::versions_of_flows(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// Transcripts of conversations.
pub struct TranscriptByConversation(DatabaseConnection);

impl Loader<Uuid> for TranscriptByConversation {
    type Value = Vec<domain::vocab::Line>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<domain::vocab::Line>>, LoadError> {
        domain::conversations::transcripts(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// Tickets by id; the caller got the ids from rows it may see.
pub struct TicketById(DatabaseConnection);

impl Loader<Uuid> for TicketById {
    type Value = ticket::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, ticket::Model>, LoadError> {
        domain::tickets::tickets_by_ids(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// The agents routing rules name, in each rule's order.
pub struct AgentsByRule(DatabaseConnection);

impl Loader<Uuid> for AgentsByRule {
    type Value = Vec<agent::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<agent::Model>>, LoadError> {
        domain::rules::agents_of_rules(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// Agents by id (a ticket's assignee); the caller got the ids from rows it may see.
pub struct AgentById(DatabaseConnection);

impl Loader<Uuid> for AgentById {
    type Value = agent::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, agent::Model>, LoadError> {
        domain::agents::agents_by_ids(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

/// The changes people made to tickets, oldest first.
pub struct ChangesByTicket(DatabaseConnection);

impl Loader<Uuid> for ChangesByTicket {
    type Value = Vec<ticket_change::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<ticket_change::Model>>, LoadError> {
        domain::ticket_work::changes_of_tickets(&self.0, keys)
            .await
            .map_err(Arc::new)
    }
}

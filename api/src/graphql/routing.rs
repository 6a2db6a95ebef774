//! Routing rules over GraphQL, and a rule's test e-mail (admin key).

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::routing_rule;

use super::ApiResult;
use super::access::Locale;
use super::types::{loaders, shared};

/// Sends every new ticket whose topic equals `tag` (or every new ticket, for `*`) to `emails`.
pub struct RoutingRule(pub routing_rule::Model);

#[Object]
impl RoutingRule {
    /// Stable id of the rule.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// A topic tag, or `*` for every new ticket.
    async fn tag(&self) -> &str {
        &self.0.tag
    }
    /// Who receives the tickets.
    async fn emails(&self) -> &[String] {
        &self.0.emails
    }
    /// True for `*` and for a tag some ticket step uses now. False means the rule cannot match
    /// any ticket (only chatbots open tickets, with the tags of their steps).
    async fn tag_known(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let known = loaders(ctx)?
            .known_tags
            .load_one(self.0.account_id)
            .await
            .map_err(shared)?
            .unwrap_or_default();
        Ok(domain::rules::tag_known(&self.0, &known))
    }
    /// When the rule was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The language of this rule's e-mails; null: the account's `defaultLocale`.
    async fn locale(&self) -> Option<Locale> {
        self.0.locale.map(Locale::from)
    }
}

/// What the SMTP server answered to one address of a rule's test e-mail.
#[derive(SimpleObject)]
pub struct TestEmail {
    /// The address.
    pub recipient: String,
    /// True when the SMTP server (or, without `SMTP_URL`, the outbox folder) took the mail.
    pub accepted: bool,
    /// The server's reply, or why the mail did not go out.
    pub reply: String,
    /// The language it was written in.
    pub locale: Locale,
}

impl From<domain::rule_check::SampleSent> for TestEmail {
    fn from(s: domain::rule_check::SampleSent) -> Self {
        TestEmail {
            recipient: s.recipient,
            accepted: s.accepted,
            reply: s.reply,
            locale: s.locale.into(),
        }
    }
}

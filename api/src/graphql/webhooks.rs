//! Webhooks over GraphQL: subscribe an integration's URL to the account's events, and see
//! every delivery and attempt (admin key).

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::webhooks;
use entity::{webhook, webhook_attempt, webhook_delivery};

use super::types::PageInfo;
use super::{ApiError, ApiResult, admin, cost, cursor, db, parse_id};

/// What a webhook can subscribe to (the `type` of the request body in parentheses).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookEvent {
    /// A ticket was opened and routed (`ticket.opened`).
    TicketOpened,
    /// A ticket was opened and no rule or forward address matched it (`ticket.unrouted`).
    TicketUnrouted,
    /// A notification e-mail failed for good (`delivery.failed`).
    DeliveryFailed,
    /// A person closed, reopened, assigned or unassigned a ticket (`ticket.updated`); the body
    /// carries the ticket as it is after the change and the change (`kind`, `actor`, `at`,
    /// `agentId`, `agentName`, `note`).
    TicketUpdated,
}

impl WebhookEvent {
    fn name(self) -> &'static str {
        match self {
            WebhookEvent::TicketOpened => webhooks::TICKET_OPENED,
            WebhookEvent::TicketUnrouted => webhooks::TICKET_UNROUTED,
            WebhookEvent::DeliveryFailed => webhooks::DELIVERY_FAILED,
            WebhookEvent::TicketUpdated => webhooks::TICKET_UPDATED,
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        [
            WebhookEvent::TicketOpened,
            WebhookEvent::TicketUnrouted,
            WebhookEvent::DeliveryFailed,
            WebhookEvent::TicketUpdated,
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }
}

/// An integration's endpoint.
pub struct Webhook(pub webhook::Model);

#[Object]
impl Webhook {
    /// Stable id of the webhook.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Where the requests go.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// The events it receives.
    async fn events(&self) -> ApiResult<Vec<WebhookEvent>> {
        // An event name the code does not know is an error, never dropped from the list.
        self.0
            .events
            .iter()
            .map(|e| {
                WebhookEvent::from_name(e).ok_or_else(|| {
                    ApiError::from(domain::Error::Corrupt(format!("webhook event {e:?}")))
                })
            })
            .collect()
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// What was sent to it, newest first. `first` is 1 to 200. Cost: counted as `first`.
    #[graphql(complexity = "cost::page(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<WebhookDeliveryConnection> {
        let after = cursor::after("webhook-delivery", after.as_deref())?;
        let first = u64::try_from(first.unwrap_or(50)).unwrap_or(0);
        let (rows, has_next_page) = webhooks::deliveries(db(ctx)?, self.0.id, first, after).await?;
        let edges: Vec<WebhookDeliveryEdge> = rows
            .into_iter()
            .map(|d| WebhookDeliveryEdge {
                cursor: cursor::encode("webhook-delivery", d.id),
                node: WebhookDelivery(d),
            })
            .collect();
        Ok(WebhookDeliveryConnection {
            page_info: PageInfo {
                has_next_page,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }
}

/// A page of a webhook's deliveries.
#[derive(SimpleObject)]
pub struct WebhookDeliveryConnection {
    /// The deliveries with their cursors.
    pub edges: Vec<WebhookDeliveryEdge>,
    /// Paging state.
    pub page_info: PageInfo,
}

/// One webhook delivery and its cursor.
#[derive(SimpleObject)]
pub struct WebhookDeliveryEdge {
    /// Pass as `after` for the older ones.
    pub cursor: String,
    /// The delivery.
    pub node: WebhookDelivery,
}

/// The state of a webhook delivery.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::vocab::WebhookStatus")]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// A worker is sending it now.
    Sending,
    /// The last attempt failed (no answer, 408, 429 or 5xx); another one is scheduled.
    Retrying,
    /// The receiver answered 2xx. Final.
    Succeeded,
    /// The receiver refused it (another 4xx), or every attempt failed. Final.
    Failed,
}

/// One event sent to one webhook.
pub struct WebhookDelivery(pub webhook_delivery::Model);

#[Object]
impl WebhookDelivery {
    /// Also the `webhook-id` header of every attempt: receivers de-duplicate on it.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// The event.
    async fn event(&self) -> Option<WebhookEvent> {
        WebhookEvent::from_name(&self.0.event)
    }
    /// Current state.
    async fn status(&self) -> ApiResult<WebhookDeliveryStatus> {
        Ok(self.0.status.into())
    }
    /// The JSON body sent, exactly as signed.
    async fn payload(&self) -> &str {
        &self.0.payload
    }
    /// When the next attempt is due, while `RETRYING`.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    /// When the receiver accepted it.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    /// When the event happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Every request made, first first.
    /// Cost: counted as 100 (the most attempts `WEBHOOK_MAX_ATTEMPTS` allows).
    #[graphql(complexity = "cost::list(cost::WEBHOOK_ATTEMPTS, child_complexity)")]
    async fn attempts(&self, ctx: &Context<'_>) -> ApiResult<Vec<WebhookAttempt>> {
        Ok(webhooks::attempts(db(ctx)?, self.0.id)
            .await?
            .into_iter()
            .map(WebhookAttempt::from)
            .collect())
    }
}

/// One request of a webhook delivery.
#[derive(SimpleObject)]
pub struct WebhookAttempt {
    /// 1 for the first request.
    pub attempt: i32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The HTTP status; null when no response came.
    pub status_code: Option<i32>,
    /// Why it failed (`HTTP 503`, a connection error, a timeout); null on success.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i32,
}

impl From<webhook_attempt::Model> for WebhookAttempt {
    fn from(a: webhook_attempt::Model) -> Self {
        WebhookAttempt {
            attempt: a.attempt,
            at: a.at,
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

/// A new webhook and its signing secret.
#[derive(SimpleObject)]
pub struct CreatedWebhook {
    /// The webhook.
    pub webhook: Webhook,
    /// The signing secret (`whsec_...`), shown only here: verify each request's
    /// `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

/// A webhook's content.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// An absolute `https://` (or `http://`) URL without credentials.
    pub url: String,
    /// At least one event.
    pub events: Vec<WebhookEvent>,
}

/// Webhook queries.
#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The account's webhooks, oldest first (at most 10).
    /// Cost: counted as 10.
    #[graphql(complexity = "cost::list(cost::WEBHOOKS, child_complexity)")]
    async fn webhooks(&self, ctx: &Context<'_>) -> ApiResult<Vec<Webhook>> {
        let account = admin(ctx)?;
        Ok(webhooks::list_webhooks(db(ctx)?, account)
            .await?
            .into_iter()
            .map(Webhook)
            .collect())
    }

    /// One webhook; null when no webhook of the account has this id.
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Webhook>> {
        let account = admin(ctx)?;
        let Some(id) = parse_id(&id) else {
            return Ok(None);
        };
        Ok(webhooks::find_webhook(db(ctx)?, account, id)
            .await?
            .map(Webhook))
    }
}

/// Webhook mutations.
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Subscribes a URL to events of the account (at most 10 webhooks). The answer holds the
    /// signing secret, shown only once.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> ApiResult<CreatedWebhook> {
        let account = admin(ctx)?;
        let events: Vec<String> = input.events.iter().map(|e| e.name().to_owned()).collect();
        let created = webhooks::create_webhook(db(ctx)?, account, &input.url, &events).await?;
        Ok(CreatedWebhook {
            secret: created.secret.clone(),
            webhook: Webhook(created),
        })
    }

    /// Deletes a webhook with its deliveries; attempts still queued are dropped. Returns the id.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let account = admin(ctx)?;
        let uuid = parse_id(&id).ok_or(domain::Error::NotFound("webhook"))?;
        webhooks::delete_webhook(db(ctx)?, account, uuid).await?;
        Ok(id)
    }
}

//! Webhooks for integrations: an account subscribes URLs to events; each event becomes one
//! webhook delivery per subscribed URL, sent by the worker through the job queue with
//! retries and backoff, every attempt recorded.
//!
//! Requests follow the Standard Webhooks spec (standardwebhooks.com): a JSON body
//! `{"type", "timestamp", "data"}` and the headers `webhook-id` (the delivery's id, the same
//! on every retry), `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed with the secret's bytes).

use std::net::IpAddr;

use base64::Engine;
use chrono::{DateTime, Utc};
use entity::{webhook, webhook_attempt, webhook_delivery};
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::infra::queue::{self, Job};
use crate::vocab::WebhookStatus;
use crate::{Error, Result, now};

pub mod attempts;
pub mod sweep;

/// A new ticket (after routing, with its recipients' count).
pub const TICKET_OPENED: &str = "ticket.opened";
/// A new ticket that no rule and no forward address matched: nobody was mailed.
pub const TICKET_UNROUTED: &str = "ticket.unrouted";
/// A notification e-mail failed for good.
pub const DELIVERY_FAILED: &str = "delivery.failed";
/// A person closed, reopened, assigned or unassigned a ticket (`domain::ticket_work`).
pub const TICKET_UPDATED: &str = "ticket.updated";
/// Every event a webhook can subscribe to.
pub const EVENTS: [&str; 4] = [
    TICKET_OPENED,
    TICKET_UNROUTED,
    DELIVERY_FAILED,
    TICKET_UPDATED,
];

/// Longest accepted URL.
const MAX_URL_CHARS: usize = 2000;

/// Checks a webhook URL: absolute `http`/`https` with a host, no credentials in it.
pub fn validate_url(raw: &str) -> Result<String> {
    let invalid = |message: &str| Error::invalid("url", message);
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_URL_CHARS {
        return Err(invalid("must be at most 2000 characters"));
    }
    let url = url::Url::parse(trimmed).map_err(|e| invalid(&format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must start with https:// (or http://)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "must not carry credentials; requests are signed instead",
        ));
    }
    Ok(url.to_string())
}

/// Checks the subscribed events: at least one, each known, no repeats.
pub fn validate_events(events: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if !EVENTS.contains(&event.as_str()) {
            return Err(Error::invalid(
                format!("events[{i}]"),
                format!("unknown event; one of {}", EVENTS.join(", ")),
            ));
        }
        if !out.contains(event) {
            out.push(event.clone());
        }
    }
    if out.is_empty() {
        return Err(Error::invalid("events", "subscribe to at least one event"));
    }
    Ok(out)
}

/// IPv4 ranges that are not global unicast (IANA's special-purpose registry): this
/// network, private, shared (CGNAT), loopback, link-local, IETF protocol assignments,
/// documentation, the 6to4 relay anycast, benchmarking (198.18.0.0/15), multicast, reserved
/// and broadcast.
const NOT_PUBLIC_V4: [(u32, u32); 16] = [
    (0x0000_0000, 8),  // 0.0.0.0/8
    (0x0a00_0000, 8),  // 10.0.0.0/8
    (0x6440_0000, 10), // 100.64.0.0/10
    (0x7f00_0000, 8),  // 127.0.0.0/8
    (0xa9fe_0000, 16), // 169.254.0.0/16
    (0xac10_0000, 12), // 172.16.0.0/12
    (0xc000_0000, 24), // 192.0.0.0/24
    (0xc000_0200, 24), // 192.0.2.0/24
    (0xc058_6300, 24), // 192.88.99.0/24
    (0xc0a8_0000, 16), // 192.168.0.0/16
    (0xc612_0000, 15), // 198.18.0.0/15
    (0xc633_6400, 24), // 198.51.100.0/24
    (0xcb00_7100, 24), // 203.0.113.0/24
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved, and the broadcast address
    (0xffff_ffff, 32), // 255.255.255.255
];

/// IPv6 ranges that are never sent to: unspecified and loopback, IPv4-compatible (::/96,
/// deprecated), the local-use NAT64 prefix, discard, Teredo and the other IETF assignments
/// under 2001::/23, documentation, site-local, unique local, link-local, multicast and
/// SRv6 SIDs. IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are judged
/// by the IPv4 address they carry, in `is_public`.
const NOT_PUBLIC_V6: [(u128, u32); 11] = [
    (0, 96),                      // ::/96 (:: and ::1, IPv4-compatible)
    (0x0064_ff9b_0001 << 80, 48), // 64:ff9b:1::/48 local-use NAT64
    (0x0100 << 112, 64),          // 100::/64 discard
    (0x2001 << 112, 23),          // 2001::/23 IETF (Teredo, ORCHID, ...)
    (0x2001_0db8 << 96, 32),      // 2001:db8::/32 documentation
    (0x3fff << 112, 20),          // 3fff::/20 documentation
    (0x5f00 << 112, 16),          // 5f00::/16 SRv6 SIDs
    (0xfc00 << 112, 7),           // fc00::/7 unique local
    (0xfe80 << 112, 10),          // fe80::/10 link-local
    (0xfec0 << 112, 10),          // fec0::/10 site-local (deprecated)
    (0xff00 << 112, 8),           // ff00::/8 multicast
];

fn in_range<T>(ip: T, (network, prefix): (T, u32), bits: u32) -> bool
where
    T: Copy + std::ops::Shr<u32, Output = T> + PartialEq,
{
    let shift = bits - prefix;
    shift == bits || ip >> shift == network >> shift
}

/// Whether a worker may send to this address when private networks are not allowed: global
/// unicast only, so an account cannot point the worker at the internal network, also not
/// through an IPv6 address that carries a private IPv4 one (mapped, NAT64 or 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let ip = u32::from(v4);
            !NOT_PUBLIC_V4.iter().any(|&r| in_range(ip, r, 32))
        }
        IpAddr::V6(v6) => {
            let ip = u128::from(v6);
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            // The IPv4 address a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) gateway would
            // forward to.
            if in_range(ip, (0x0064_ff9b << 96, 96), 128) {
                return is_public(IpAddr::V4(std::net::Ipv4Addr::from(ip as u32)));
            }
            if in_range(ip, (0x2002 << 112, 16), 128) {
                return is_public(IpAddr::V4(std::net::Ipv4Addr::from((ip >> 80) as u32)));
            }
            !NOT_PUBLIC_V6.iter().any(|&r| in_range(ip, r, 128))
        }
    }
}

/// A new signing secret: `whsec_` and 32 random bytes in base64.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The key bytes of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec())
}

/// Subscribes `url` to `events` for the account. Returns the webhook and its signing secret.
pub async fn create_webhook(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    url: &str,
    events: &[String],
) -> Result<webhook::Model> {
    let url = validate_url(url)?;
    let events = validate_events(events)?;
    crate::limits::check::<webhook::Entity>(
        db,
        webhook::Column::AccountId.eq(account_id),
        "webhooks",
        crate::limits::WEBHOOKS,
    )
    .await?;
    Ok(webhook::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account_id),
        url: Set(url),
        events: Set(events.into()),
        secret: Set(new_secret()),
        created_at: Set(now()),
    }
    .insert(db)
    .await?)
}

/// The account's webhooks, oldest first.
pub async fn list_webhooks(
    db: &impl ConnectionTrait,
    account_id: Uuid,
) -> Result<Vec<webhook::Model>> {
    Ok(webhook::Entity::find()
        .filter(webhook::Column::AccountId.eq(account_id))
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await?)
}

/// The webhooks of the accounts of the tickets `ticket_ids`, oldest first, in one query that
/// finds the tickets' accounts itself, so the worker can read them before it plans the
/// tickets.
pub async fn webhooks_of_tickets(
    db: &impl ConnectionTrait,
    ticket_ids: &[Uuid],
) -> Result<Vec<webhook::Model>> {
    let accounts = sea_orm::sea_query::Query::select()
        .column(entity::ticket::Column::AccountId)
        .from(entity::ticket::Entity)
        .and_where(entity::ticket::Column::Id.is_in(ticket_ids.iter().copied()))
        .to_owned();
    Ok(webhook::Entity::find()
        .filter(webhook::Column::AccountId.in_subquery(accounts))
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await?)
}

/// One webhook of the account.
pub async fn find_webhook(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<webhook::Model>> {
    Ok(webhook::Entity::find_by_id(id)
        .filter(webhook::Column::AccountId.eq(account_id))
        .one(db)
        .await?)
}

/// Deletes a webhook with its deliveries and their attempts; queued attempts find nothing.
pub async fn delete_webhook(db: &impl ConnectionTrait, account_id: Uuid, id: Uuid) -> Result<()> {
    let deleted = webhook::Entity::delete_many()
        .filter(webhook::Column::Id.eq(id))
        .filter(webhook::Column::AccountId.eq(account_id))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(Error::NotFound("webhook"));
    }
    Ok(())
}

#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: DateTime<Utc>,
    data: T,
}

/// Records `event` about ticket `ticket_id` for every webhook of the account subscribed to
/// it and queues the first attempt of each, in one transaction. `key` names the occurrence (a
/// ticket, a delivery) so a re-run job adds nothing. The payload is made by `data` from the
/// ticket as it is now, read only when some webhook is subscribed: a visitor's data erased
/// since the caller read the ticket does not come back in it. Nothing when the ticket is gone.
/// Returns how many webhook deliveries were created.
pub async fn emit<C: ConnectionTrait + TransactionTrait, T: Serialize>(
    db: &C,
    account_id: Uuid,
    event: &str,
    key: Uuid,
    ticket_id: Uuid,
    data: impl FnOnce(&entity::ticket::Model) -> T,
) -> Result<usize> {
    let hooks = list_webhooks(db, account_id).await?;
    emit_to(db, &hooks, account_id, event, key, ticket_id, data).await
}

/// [`emit`] with the account's webhooks read already (all of them; those not subscribed to
/// `event` are passed over), as the worker reads them for many tickets in one query
/// ([`webhooks_of_tickets`]). Nothing is read or written when none is subscribed.
pub async fn emit_to<C: ConnectionTrait + TransactionTrait, T: Serialize>(
    db: &C,
    hooks: &[webhook::Model],
    account_id: Uuid,
    event: &str,
    key: Uuid,
    ticket_id: Uuid,
    data: impl FnOnce(&entity::ticket::Model) -> T,
) -> Result<usize> {
    let hooks: Vec<&webhook::Model> = hooks
        .iter()
        .filter(|w| w.account_id == account_id && w.events.iter().any(|e| e == event))
        .collect();
    if hooks.is_empty() {
        return Ok(0);
    }
    let txn = crate::infra::db::begin(db).await?;
    // Read under a share lock until the payloads commit: an erasure of this ticket
    // (`erasure::erase` updates the row first) either waits for them and then redacts them,
    // or commits first and this reads the erased row. SQLite's write transaction (`begin`)
    // already excludes the erasure's.
    let Some(ticket) = entity::ticket::Entity::find_by_id(ticket_id)
        .lock_shared()
        .one(&txn)
        .await?
    else {
        return Ok(0);
    };
    let at = now();
    let body = serde_json::to_string(&Body {
        kind: event,
        timestamp: at,
        data: data(&ticket),
    })
    .map_err(|e| Error::invalid("data", e.to_string()))?;
    for hook in &hooks {
        // Stable per (webhook, event, occurrence): a re-run job writes the same row again.
        let id = delivery_id(hook.id, event, key);
        let inserted = webhook_delivery::Entity::insert(webhook_delivery::ActiveModel {
            id: Set(id),
            webhook_id: Set(hook.id),
            account_id: Set(account_id),
            event: Set(event.to_owned()),
            payload: Set(body.clone()),
            status: Set(WebhookStatus::Pending),
            attempts: Set(0),
            last_error: Set(None),
            next_attempt_at: Set(None),
            locked_until: Set(None),
            delivered_at: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict_do_nothing_on([webhook_delivery::Column::Id])
        .exec_without_returning(&txn)
        .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
            queue::enqueue(
                &txn,
                &Job::SendWebhook {
                    webhook_delivery_id: id,
                    attempt: 1,
                },
                &attempt_key(id, 1),
                at,
                account_id,
            )
            .await?;
        }
    }
    sea_orm::TransactionSession::commit(txn).await?;
    Ok(hooks.len())
}

/// The id of the webhook delivery of `event` about `key` (a ticket, a delivery) to `hook`:
/// stable, so a re-run job writes the same row, and erasure finds it without a search.
pub fn delivery_id(hook: Uuid, event: &str, key: Uuid) -> Uuid {
    Uuid::new_v5(&hook, format!("{event}:{key}").as_bytes())
}

/// A stored payload with the visitor's name, contact details and message nulled in its
/// ticket; `None` when there is nothing left to redact (or it is not a payload of ours).
pub fn redacted_payload(payload: &str) -> Option<String> {
    let mut body: serde_json::Value = serde_json::from_str(payload).ok()?;
    let ticket = body.get_mut("data")?.get_mut("ticket")?.as_object_mut()?;
    let mut changed = false;
    for field in ["visitorName", "visitorEmail", "visitorPhone", "message"] {
        if let Some(value) = ticket.get_mut(field)
            && !value.is_null()
        {
            *value = serde_json::Value::Null;
            changed = true;
        }
    }
    changed.then(|| body.to_string())
}

/// A ticket as webhook payloads show it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketData {
    pub id: Uuid,
    pub number: i64,
    pub topic: String,
    pub flow_name: String,
    pub message: String,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub visitor_phone: Option<String>,
    pub conversation_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// `OPEN` or `CLOSED`.
    pub status: crate::vocab::TicketStatus,
    pub assignee_id: Option<Uuid>,
    pub closing_note: Option<String>,
}

impl From<&entity::ticket::Model> for TicketData {
    fn from(t: &entity::ticket::Model) -> Self {
        TicketData {
            id: t.id,
            number: t.number,
            topic: t.topic.clone(),
            flow_name: t.flow_name.clone(),
            message: t.message.clone(),
            visitor_name: t.visitor_name.clone(),
            visitor_email: t.visitor_email.clone(),
            visitor_phone: t.visitor_phone.clone(),
            conversation_id: t.conversation_id,
            created_at: t.created_at,
            status: t.status,
            assignee_id: t.assignee_id,
            closing_note: t.closing_note.clone(),
        }
    }
}

/// `ticket.opened` and `ticket.unrouted`.
#[derive(Serialize)]
pub struct TicketEvent {
    pub ticket: TicketData,
    /// How many addresses are notified.
    pub recipients: usize,
}

/// A failed delivery as webhook payloads show it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryData {
    pub id: Uuid,
    pub recipient: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// `delivery.failed`.
#[derive(Serialize)]
pub struct DeliveryEvent {
    pub delivery: DeliveryData,
    pub ticket: TicketData,
}

/// The idempotency key of a webhook delivery's `attempt`-th job.
pub fn attempt_key(webhook_delivery_id: Uuid, attempt: i32) -> String {
    format!("webhook:{webhook_delivery_id}:{attempt}")
}

/// A page of a webhook's deliveries, newest first, after the delivery `after`.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    webhook_id: Uuid,
    first: u64,
    after: Option<Uuid>,
) -> Result<(Vec<webhook_delivery::Model>, bool)> {
    crate::tickets::check_page_size(first)?;
    let mut query = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::WebhookId.eq(webhook_id))
        .order_by_desc(webhook_delivery::Column::CreatedAt)
        .order_by_desc(webhook_delivery::Column::Id);
    if let Some(after) = after
        && let Some(cursor) = webhook_delivery::Entity::find_by_id(after)
            .filter(webhook_delivery::Column::WebhookId.eq(webhook_id))
            .one(db)
            .await?
    {
        query = query.filter(
            sea_orm::Condition::any()
                .add(webhook_delivery::Column::CreatedAt.lt(cursor.created_at))
                .add(
                    sea_orm::Condition::all()
                        .add(webhook_delivery::Column::CreatedAt.eq(cursor.created_at))
                        .add(webhook_delivery::Column::Id.lt(cursor.id)),
                ),
        );
    }
    let mut rows = query.limit(first + 1).all(db).await?;
    let more = crate::tickets::cut_page(&mut rows, first);
    Ok((rows, more))
}

/// The attempts of a webhook delivery, first first.
pub async fn attempts(
    db: &impl ConnectionTrait,
    webhook_delivery_id: Uuid,
) -> Result<Vec<webhook_attempt::Model>> {
    Ok(webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::WebhookDeliveryId.eq(webhook_delivery_id))
        .order_by_asc(webhook_attempt::Column::Attempt)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert_eq!(
            validate_url(" https://hooks.example.com/t?x=1 ").unwrap(),
            "https://hooks.example.com/t?x=1"
        );
        for bad in [
            "ftp://example.com",
            "hooks.example.com",
            "https://user:pw@example.com/",
            "",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_public_addresses_pass_the_private_network_guard() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "198.18.0.1",
            "198.19.255.254",
            "192.0.0.170",
            "192.88.99.1",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "::",
            "::7f00:1",
            "::10.0.0.1",
            "::8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "fec0::1",
            "ff02::1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "2606:4700::1111",
            "8.8.8.8",
            "198.20.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2a00:1450:4001::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn events_are_known_and_deduplicated() {
        assert_eq!(
            validate_events(&["ticket.opened".into(), "ticket.opened".into()]).unwrap(),
            ["ticket.opened"]
        );
        assert!(validate_events(&[]).is_err());
        assert!(validate_events(&["ticket.closed".into()]).is_err());
    }
}

//! One attempt at one webhook delivery: claim the row, sign and POST the stored body, record
//! the attempt and the outcome. What each step writes is `domain::webhooks::attempts`.
//!
//! 2xx is success. 408, 429, 5xx and no answer at all (refused, reset, timeout) are retried
//! with the same backoff as e-mails; any other status (a 4xx: the receiver refuses this
//! request, or 410: it is gone) fails the delivery at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use domain::lease::{self, Outcome};
use domain::webhooks::{self, attempts, attempts::Reply};
use entity::{webhook, webhook_delivery};
use hmac::{KeyInit, Mac};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::Context;

/// The HTTP client of webhook requests: rustls with the public roots, no redirects (a
/// receiver must answer at the URL it gave), no proxy from the environment (through
/// `HTTP(S)_PROXY` the guard below would check the proxy's address instead of the target's),
/// and, unless private networks are allowed, a resolver that only hands out public addresses.
pub fn client(timeout: Duration, allow_private: bool) -> Result<reqwest::Client, String> {
    // reqwest wants a process-wide rustls provider even with a preconfigured client; ring is
    // the service's one (an Err means one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("ticketing-webhooks/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder.build().map_err(|e| e.to_string())
}

/// Resolves names to public addresses only (see `webhooks::is_public`).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| webhooks::is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Signs `body` the Standard Webhooks way: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, hmac::digest::InvalidLength> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&webhooks::secret_key(secret))?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

async fn post(ctx: &Context, hook: &webhook::Model, delivery: &webhook_delivery::Model) -> Reply {
    let started = Instant::now();
    // An address the guard would refuse, written as an IP literal, never reaches DNS.
    let literal = reqwest::Url::parse(&hook.url)
        .ok()
        .and_then(|u| match u.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        });
    if let Some(ip) = literal
        && !ctx.delivery.webhook_allow_private_networks
        && !webhooks::is_public(ip)
    {
        return Reply {
            status_code: None,
            error: Some(format!("{ip} is not a public address")),
            took: started.elapsed(),
        };
    }
    let timestamp = Utc::now().timestamp();
    let signed = signature(
        &hook.secret,
        &delivery.id.to_string(),
        timestamp,
        &delivery.payload,
    );
    let Ok(signed) = signed else {
        return Reply {
            status_code: None,
            error: Some("the webhook's secret cannot key HMAC-SHA256".to_owned()),
            took: started.elapsed(),
        };
    };
    let sent = ctx
        .http
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", delivery.id.to_string())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signed)
        .body(delivery.payload.clone())
        .send()
        .await;
    match sent {
        Ok(response) => Reply {
            status_code: Some(response.status().as_u16()),
            error: None,
            took: started.elapsed(),
        },
        Err(e) => Reply {
            status_code: None,
            error: Some(describe(&e)),
            took: started.elapsed(),
        },
    }
}

/// A transport error with its causes, which is where reqwest keeps the useful part.
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Makes attempt number `attempt` at webhook delivery `id`.
pub async fn attempt(ctx: &Context, id: Uuid, attempt: i32) -> Result<Outcome, domain::Error> {
    let until = domain::now() + lease::length(ctx.delivery.webhook_timeout);
    let Some(delivery) = attempts::claim(&ctx.db, id, attempt, until).await? else {
        return Ok(Outcome::Skipped);
    };
    let Some(hook) = webhook::Entity::find_by_id(delivery.webhook_id)
        .one(&ctx.db)
        .await?
    else {
        return Ok(Outcome::Skipped);
    };
    let reply = post(ctx, &hook, &delivery).await;
    attempts::record(&ctx.db, &ctx.delivery, &delivery, attempt, reply).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_example() {
        // The example the Standard Webhooks reference libraries test against.
        assert_eq!(
            signature(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#,
            )
            .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}

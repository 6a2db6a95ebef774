//! `/ops`: a read-only page for on-call operators, rendered on the server (no build step, no
//! script): queue counts, the last hour, worker processes and the latest failures. It asks for
//! the operator token with HTTP Basic authentication (any user name, the token as password)
//! and does not exist when `OPS_TOKEN` is unset.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::ops::{self, DeliveryFilter, Scope};
use domain::routing::status;
use domain::vocab::escape;

use crate::state::{AppState, constant_time_eq};

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return false;
    };
    let given = if scheme.eq_ignore_ascii_case("basic") {
        let Some(decoded) = STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
        else {
            return false;
        };
        match decoded.split_once(':') {
            Some((_, password)) => password.to_owned(),
            None => return false,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        credentials.trim().to_owned()
    } else {
        return false;
    };
    constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// The page.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.ops_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !authorized(&headers, token.expose()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"ticketing ops\", charset=\"UTF-8\"",
            )],
            "the operator token is required",
        )
            .into_response();
    }
    match render(&state).await {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::warn!(%error, "ops page unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            )
                .into_response()
        }
    }
}

async fn render(state: &AppState) -> domain::Result<String> {
    let stats = ops::queue_stats(&state.db, Scope::All).await?;
    let gone_after = domain::queue::HEARTBEAT * domain::queue::MISSED_HEARTBEATS;
    let workers = ops::workers(&state.db, gone_after).await?;
    let failures = ops::list_deliveries(
        &state.db,
        Scope::All,
        &DeliveryFilter {
            status: Some(status::FAILED),
            ..Default::default()
        },
        20,
        None,
    )
    .await?;

    let d = &stats.deliveries;
    let counts = [
        ("Pending", d.pending),
        ("Sending", d.sending),
        ("Retrying", d.retrying),
        ("Sent", d.sent),
        ("Failed", d.failed),
    ]
    .iter()
    .map(|(label, n)| format!("<tr><th>{label}</th><td class=\"n\">{n}</td></tr>"))
    .collect::<String>();
    let jobs = stats.jobs.as_ref().map_or_else(String::new, |j| {
        format!(
            "<p>Queue jobs: {} pending, {} running, {} done, {} failed (will run again), {} killed.</p>",
            j.pending, j.running, j.done, j.failed, j.killed
        )
    });
    let oldest = stats.oldest_pending_age.map_or_else(
        || "No delivery is waiting.".to_owned(),
        |a| format!("The oldest waiting delivery is {} s old.", a.num_seconds()),
    );
    let (sent_hour, failed_hour) = stats
        .per_minute
        .iter()
        .fold((0, 0), |(s, f), m| (s + m.sent, f + m.failed));
    let worker_rows = if workers.is_empty() {
        "<tr><td colspan=\"6\">No worker has registered.</td></tr>".to_owned()
    } else {
        workers
            .iter()
            .map(|w| {
                format!(
                    "<tr class=\"{cls}\"><td>{id}</td><td>{host}</td><td>{pid}</td><td>{started}</td><td>{seen}</td><td class=\"n\">{jobs}</td><td>{state}</td></tr>",
                    cls = if w.alive { "alive" } else { "gone" },
                    id = escape(&w.id),
                    host = escape(&w.host),
                    pid = w.pid.map_or_else(String::new, |p| p.to_string()),
                    started = w.started_at.map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                    seen = w.last_seen.format("%Y-%m-%d %H:%M:%S UTC"),
                    jobs = w.jobs_in_flight,
                    state = if w.alive { "alive" } else { "gone" },
                )
            })
            .collect()
    };
    let failure_rows = if failures.deliveries.is_empty() {
        "<tr><td colspan=\"6\">No failed deliveries.</td></tr>".to_owned()
    } else {
        failures
            .deliveries
            .iter()
            .map(|(d, t)| {
                format!(
                    "<tr><td>{when}</td><td>{ticket}</td><td>{topic}</td><td>{to}</td><td class=\"n\">{attempts}</td><td>{error}</td></tr>",
                    when = d.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    ticket = t.as_ref().map_or_else(String::new, |t| format!("#{}", t.number)),
                    topic = t.as_ref().map_or_else(String::new, |t| escape(&t.topic)),
                    to = escape(&d.recipient),
                    attempts = d.attempts,
                    error = escape(d.last_error.as_deref().unwrap_or_default()),
                )
            })
            .collect()
    };
    Ok(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>Ticket delivery - operations</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
td.n {{ text-align: right; }}
tr.gone {{ color: #999; }}
</style></head>
<body>
<h1>Ticket delivery</h1>
<h2>Deliveries</h2>
<table id="deliveries">{counts}</table>
<p>{oldest} Last hour: {sent_hour} sent, {failed_hour} failed.</p>
{jobs}
<h2>Workers</h2>
<table id="workers"><tr><th>Worker</th><th>Host</th><th>PID</th><th>Started</th><th>Last heartbeat</th><th>Jobs in flight</th><th>State</th></tr>{worker_rows}</table>
<h2>Latest failures</h2>
<table id="failures"><tr><th>When</th><th>Ticket</th><th>Topic</th><th>Recipient</th><th>Attempts</th><th>Last error</th></tr>{failure_rows}</table>
</body></html>
"#
    ))
}

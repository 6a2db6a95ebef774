//! `/ops`: a read-only page for on-call operators, rendered on the server (no build step, no
//! script): queue counts, the last hour, worker processes and the latest failures. It asks for
//! the operator token with HTTP Basic authentication (any user name, the token as password)
//! and does not exist when `OPS_TOKEN` is unset.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::ops::{self, DeliveryFilter, Scope};

use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Serialize;

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
        Err(PageError::Template(error)) => {
            tracing::error!(%error, "ops page template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(PageError::Data(error)) => {
            tracing::warn!(%error, "ops page unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            )
                .into_response()
        }
    }
}

/// The page's template, auto-escaped as HTML (its name ends in `.html`).
fn environment() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = domain::templates::new_environment();
        env.add_template("ops.html", include_str!("../templates/ops.html"))
            .unwrap_or_else(|e| panic!("templates/ops.html does not parse: {e}"));
        env
    })
}

const TIME: &str = "%Y-%m-%d %H:%M:%S UTC";

#[derive(Serialize)]
struct WorkerRow {
    id: String,
    host: String,
    pid: String,
    started: String,
    seen: String,
    jobs: i64,
    state: &'static str,
}

#[derive(Serialize)]
struct BacklogRow {
    name: String,
    id: String,
    tickets: i64,
    deliveries: i64,
    oldest_seconds: Option<i64>,
}

#[derive(Serialize)]
struct FailureRow {
    when: String,
    ticket: String,
    topic: String,
    to: String,
    attempts: i32,
    error: String,
}

async fn render(state: &AppState) -> Result<String, PageError> {
    let stats = ops::queue_stats(&state.db, Scope::All, true).await?;
    let all_backlog = stats.backlog.unwrap_or_default();
    let gone_after = domain::infra::queue::HEARTBEAT * domain::infra::queue::MISSED_HEARTBEATS;
    let workers = ops::workers(&state.db, gone_after).await?;
    let failures = ops::list_deliveries(
        &state.db,
        Scope::All,
        &DeliveryFilter {
            status: Some(domain::vocab::DeliveryStatus::Failed.as_str()),
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
    ];
    let (sent_hour, failed_hour) = stats
        .per_minute
        .iter()
        .fold((0, 0), |(s, f), m| (s + m.sent, f + m.failed));
    let workers: Vec<WorkerRow> = workers
        .iter()
        .map(|w| WorkerRow {
            id: w.id.clone(),
            host: w.host.clone(),
            pid: w.pid.map_or_else(String::new, |p| p.to_string()),
            started: w
                .started_at
                .map_or_else(String::new, |t| t.format(TIME).to_string()),
            seen: w.last_seen.format(TIME).to_string(),
            jobs: w.jobs_in_flight,
            state: if w.alive { "alive" } else { "gone" },
        })
        .collect();
    let failures: Vec<FailureRow> = failures
        .deliveries
        .iter()
        .map(|(d, t)| FailureRow {
            when: d.updated_at.format(TIME).to_string(),
            ticket: t
                .as_ref()
                .map_or_else(String::new, |t| format!("#{}", t.number)),
            topic: t.as_ref().map_or_else(String::new, |t| t.topic.clone()),
            to: d.recipient.clone(),
            attempts: d.attempts,
            error: d.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let now = domain::now();
    let backlog: Vec<BacklogRow> = all_backlog
        .top
        .iter()
        .map(|a| BacklogRow {
            name: a.account_name.clone(),
            id: a.account_id.to_string(),
            tickets: a.tickets,
            deliveries: a.deliveries,
            oldest_seconds: a.oldest_ticket_at.map(|t| (now - t).num_seconds().max(0)),
        })
        .collect();
    let values = context! {
        counts => Value::from(Serde(&counts)),
        backlog => Value::from(Serde(&backlog)),
        backlog_accounts => all_backlog.accounts,
        oldest_seconds => stats.oldest_pending_age.map(|a| a.num_seconds()),
        sent_hour => sent_hour,
        failed_hour => failed_hour,
        jobs => stats.jobs.as_ref().map(|j| context! {
            pending => j.pending,
            running => j.running,
            done => j.done_last_hour,
            failed => j.failed,
            killed => j.killed,
        }),
        workers => Value::from(Serde(&workers)),
        failures => Value::from(Serde(&failures)),
    };
    Ok(environment()
        .get_template("ops.html")
        .and_then(|t| t.render(values))?)
}

/// Why the page could not be made.
#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error(transparent)]
    Data(#[from] domain::Error),
    /// A bug in the template.
    #[error("ops page template: {0}")]
    Template(#[from] minijinja::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_what_it_shows() {
        let hostile = "<img src=x onerror=alert(1)>&\"'";
        let backlog = [BacklogRow {
            name: hostile.into(),
            id: "1".into(),
            tickets: 1,
            deliveries: 0,
            oldest_seconds: None,
        }];
        let failures = [FailureRow {
            when: "now".into(),
            ticket: "#1".into(),
            topic: hostile.into(),
            to: hostile.into(),
            attempts: 1,
            error: hostile.into(),
        }];
        let html = environment()
            .get_template("ops.html")
            .unwrap()
            .render(context! {
                counts => Value::from(Serde(&[("Pending", 0)])),
                backlog => Value::from(Serde(&backlog)),
                backlog_accounts => 1,
                oldest_seconds => Option::<i64>::None,
                sent_hour => 0,
                failed_hour => 0,
                jobs => Option::<i64>::None,
                workers => Value::from(Serde(Vec::<WorkerRow>::new())),
                failures => Value::from(Serde(&failures)),
            })
            .unwrap();
        assert!(!html.contains("<img"), "{html}");
        assert_eq!(
            html.matches(&domain::vocab::escape(hostile)).count(),
            4,
            "{html}"
        );
        assert!(
            html.contains("No delivery is waiting.") && html.contains("No worker has registered.")
        );
    }
}

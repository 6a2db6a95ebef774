//! `/ops`: the page of on-call operators, rendered on the server (no build step, no script):
//! the sending pauses, queue counts, the last hour, worker processes, the latest failed e-mail
//! and webhook deliveries and the latest actions; and its forms (`POST /ops/actions`): pause
//! and resume sending, put a failed delivery or webhook delivery back, cancel a waiting
//! delivery. It asks for the operator token with HTTP Basic authentication (any user name,
//! the token as password) and does not exist when `OPS_TOKEN` is unset.
//!
//! **Forged forms.** A browser sends the operator's Basic credentials with any request to
//! this origin, also one a page elsewhere makes it send. So a form is taken only with the
//! page's anti-forgery token (`domain::keys::ops_form_token`, which only a reader of the page
//! knows), and never when the browser says the request came from another site
//! (`Sec-Fetch-Site`) or another origin (`Origin`).

use std::sync::OnceLock;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::ops::{self, DeliveryFilter, Scope};

use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// Why a request to the page or its forms is refused before anything else.
enum Refusal {
    /// `OPS_TOKEN` is unset: there is no page.
    NoPage,
    /// The request lacks the operator token.
    Unauthorized,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NoPage => StatusCode::NOT_FOUND.into_response(),
            Refusal::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"ticketing ops\", charset=\"UTF-8\"",
                )],
                "the operator token is required",
            )
                .into_response(),
        }
    }
}

/// The operator token, when the request carries it.
fn operator(state: &AppState, headers: &HeaderMap) -> Result<String, Refusal> {
    let Some(token) = &state.ops_token else {
        return Err(Refusal::NoPage);
    };
    if !authorized(headers, token.expose()) {
        return Err(Refusal::Unauthorized);
    }
    Ok(token.expose().to_owned())
}

/// What the page says after a form's action (`?done=`): fixed sentences, so a link cannot
/// make the page say anything else.
#[derive(Deserialize)]
pub struct Shown {
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "paused" => "Sending is paused.",
        "already_paused" => "Sending was paused already; the first reason stays.",
        "resumed" => "Sending is resumed; what waited is due again.",
        "not_paused" => "Sending was not paused.",
        "retried" => "The delivery is back on the queue.",
        "cancelled" => "The delivery is cancelled.",
        _ => return None,
    })
}

/// The page and its answers are never shown inside another site's frame: a page that framed
/// them could lead the operator to click its buttons (clickjacking), token and origin checks
/// notwithstanding.
fn unframed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    response
}

/// The page.
pub async fn page(
    State(state): State<AppState>,
    Query(shown): Query<Shown>,
    headers: HeaderMap,
) -> Response {
    unframed(show(&state, shown, &headers).await)
}

async fn show(state: &AppState, shown: Shown, headers: &HeaderMap) -> Response {
    let token = match operator(state, headers) {
        Ok(token) => token,
        Err(refused) => return refused.into_response(),
    };
    match render(state, &token, done_message(shown.done.as_deref())).await {
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
struct PauseRow {
    /// Empty for everyone.
    account: String,
    since: String,
    by: String,
    reason: String,
}

#[derive(Serialize)]
struct WebhookRow {
    id: String,
    when: String,
    account: String,
    event: String,
    attempts: i32,
    error: String,
}

#[derive(Serialize)]
struct ActionRow {
    when: String,
    actor: String,
    action: &'static str,
    account: String,
    subject: String,
    reason: String,
}

#[derive(Serialize)]
struct FailureRow {
    id: String,
    when: String,
    ticket: String,
    topic: String,
    to: String,
    attempts: i32,
    error: String,
}

async fn render(state: &AppState, token: &str, done: Option<&str>) -> Result<String, PageError> {
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

    let pauses: Vec<PauseRow> = domain::pauses::list(&state.db, Scope::All)
        .await?
        .into_iter()
        .map(|p| PauseRow {
            account: p.account_id.map_or_else(String::new, |a| a.to_string()),
            since: p.paused_at.format(TIME).to_string(),
            by: p.paused_by,
            reason: p.reason,
        })
        .collect();
    let (hooks, _) = ops::list_webhook_deliveries(
        &state.db,
        Scope::All,
        domain::vocab::WebhookStatus::Failed,
        20,
        None,
    )
    .await?;
    let hooks: Vec<WebhookRow> = hooks
        .into_iter()
        .map(|h| WebhookRow {
            id: h.id.to_string(),
            when: h.updated_at.format(TIME).to_string(),
            account: h.account_id.to_string(),
            event: h.event,
            attempts: h.attempts,
            error: h.last_error.unwrap_or_default(),
        })
        .collect();
    let (actions, _) = domain::audit::list(&state.db, Scope::All, 20, None).await?;
    let actions: Vec<ActionRow> = actions
        .into_iter()
        .map(|a| ActionRow {
            when: a.at.format(TIME).to_string(),
            actor: a.actor,
            action: a.action.as_str(),
            account: a
                .account_id
                .map_or_else(|| "everyone".to_owned(), |a| a.to_string()),
            subject: a.subject.unwrap_or_default(),
            reason: a.reason.unwrap_or_default(),
        })
        .collect();
    let d = &stats.deliveries;
    let counts = [
        ("Pending", d.pending),
        ("Sending", d.sending),
        ("Retrying", d.retrying),
        ("Sent", d.sent),
        ("Failed", d.failed),
        ("Cancelled", d.cancelled),
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
            id: d.id.to_string(),
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
        csrf => domain::keys::ops_form_token(token),
        done => done,
        pauses => Value::from(Serde(&pauses)),
        hooks => Value::from(Serde(&hooks)),
        actions => Value::from(Serde(&actions)),
        parked => stats.jobs.as_ref().map_or(0, |j| j.parked),
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

/// The actor the record names for the page's forms.
const ACTOR: &str = "operator (/ops page)";

/// What a form asks for.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Act {
    Pause,
    Resume,
    RetryDelivery,
    RetryWebhook,
    CancelDelivery,
}

/// A form of the page.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: String,
    action: Act,
    /// The account to pause or resume; empty for everyone.
    #[serde(default)]
    account: String,
    /// The delivery or webhook delivery acted on.
    #[serde(default)]
    id: String,
    #[serde(default)]
    reason: String,
}

/// Whether the browser says the request came from this page's own origin: `Sec-Fetch-Site`
/// when sent (every current browser), else `Origin` when sent against `Host`. A request with
/// neither (not from a browser) is left to the token.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// `POST /ops/actions`: one action of a form, then back to the page (303) with what was done,
/// or a short page saying why not.
pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    unframed(act_on(&state, &headers, form).await)
}

async fn act_on(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    // Who asks comes first: without the operator token nothing of the form is looked at.
    let token = match operator(state, headers) {
        Ok(token) => token,
        Err(refused) => return refused.into_response(),
    };
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return rejection.into_response(),
    };
    let expected = domain::keys::ops_form_token(&token);
    if !same_origin(headers) || !constant_time_eq(form.csrf.as_bytes(), expected.as_bytes()) {
        tracing::warn!("an /ops form came from another site or without the page's token; refused");
        return (
            StatusCode::FORBIDDEN,
            "refused: this form did not come from the operations page",
        )
            .into_response();
    }
    match perform(state, &form).await {
        Ok(done) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("/ops?done={done}"))],
        )
            .into_response(),
        Err(error) => {
            let status = match &error {
                domain::Error::Invalid { .. } => StatusCode::BAD_REQUEST,
                domain::Error::NotFound(_) => StatusCode::NOT_FOUND,
                domain::Error::TooOften { .. } => StatusCode::TOO_MANY_REQUESTS,
                domain::Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => {
                    tracing::error!(%error, "an /ops action failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            let message = match status {
                StatusCode::INTERNAL_SERVER_ERROR => "internal error".to_owned(),
                _ => error.to_string(),
            };
            let html = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not done</title></head>\
                 <body><p id=\"error\">Not done: {}</p><p><a href=\"/ops\">Back to the operations page</a></p></body></html>",
                domain::vocab::escape(&message)
            );
            (status, Html(html)).into_response()
        }
    }
}

/// Does what the form asks; the `done` word of the page's message.
async fn perform(state: &AppState, form: &ActionForm) -> Result<&'static str, domain::Error> {
    let db = &state.db;
    let id = |what: &'static str| {
        Uuid::parse_str(form.id.trim()).map_err(|_| domain::Error::NotFound(what))
    };
    let scope = || -> Result<Scope, domain::Error> {
        match form.account.trim() {
            "" => Ok(Scope::All),
            account => Uuid::parse_str(account)
                .map(Scope::Account)
                .map_err(|_| domain::Error::NotFound("account")),
        }
    };
    Ok(match form.action {
        Act::Pause => {
            match domain::pauses::pause(db, Scope::All, scope()?, ACTOR, &form.reason).await? {
                (_, true) => "paused",
                (_, false) => "already_paused",
            }
        }
        Act::Resume => match domain::pauses::resume(db, Scope::All, scope()?, ACTOR).await? {
            r if r.changed => "resumed",
            _ => "not_paused",
        },
        Act::RetryDelivery => {
            ops::retry_delivery(db, Scope::All, id("delivery")?, ACTOR).await?;
            "retried"
        }
        Act::RetryWebhook => {
            ops::retry_webhook_delivery(db, Scope::All, id("webhook delivery")?, ACTOR).await?;
            "retried"
        }
        Act::CancelDelivery => {
            ops::cancel_delivery(db, Scope::All, id("delivery")?, ACTOR, &form.reason).await?;
            "cancelled"
        }
    })
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
            id: "1".into(),
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
                csrf => "token",
                done => Option::<&str>::None,
                pauses => Value::from(Serde([PauseRow {
                    account: String::new(),
                    since: "now".into(),
                    by: "operator".into(),
                    reason: hostile.into(),
                }])),
                hooks => Value::from(Serde([WebhookRow {
                    id: "2".into(),
                    when: "now".into(),
                    account: "a".into(),
                    event: "ticket.opened".into(),
                    attempts: 1,
                    error: hostile.into(),
                }])),
                actions => Value::from(Serde([ActionRow {
                    when: "now".into(),
                    actor: "operator".into(),
                    action: "PAUSE_SENDING",
                    account: "everyone".into(),
                    subject: String::new(),
                    reason: hostile.into(),
                }])),
                parked => 0,
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
            7,
            "{html}"
        );
        assert!(html.contains("Sending is paused for everyone"), "{html}");
        assert!(
            html.contains("No delivery is waiting.") && html.contains("No worker has registered.")
        );
    }
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forms_from_other_sites_are_told_apart() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[
            ("origin", "http://ops.example:8080"),
            ("host", "ops.example:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "ops.example:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "ops.example")
        ])));
        // Not a browser: the token decides.
        assert!(same_origin(&headers(&[("host", "ops.example")])));
    }
}

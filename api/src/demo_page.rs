//! `/`: the demo page, when the embedded first start made a demo (`domain::demo`): the chat
//! widget on the demo flow, and, once the bot says "Talep alındı", where the e-mail went.
//! Without a demo (PostgreSQL, or a database that had accounts before) there is no page.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;

use crate::state::AppState;

fn environment() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = domain::templates::new_environment();
        env.add_template("demo.html", include_str!("../templates/demo.html"))
            .unwrap_or_else(|e| panic!("templates/demo.html does not parse: {e}"));
        env
    })
}

/// `GET /`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let demo = match domain::demo::find(&state.db).await {
        Ok(Some(demo)) => demo,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::warn!(%error, "demo page unavailable");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let html = environment().get_template("demo.html").and_then(|t| {
        t.render(context! {
            mail_to => demo.mail_to,
            mail_goes => state.mail_goes.as_ref(),
            widget_key => demo.widget_key,
            flow_id => demo.flow_id.to_string(),
            origin => format!("http://{host}"),
        })
    });
    match html {
        Ok(html) => (
            [(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            )],
            Html(html),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "demo page template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

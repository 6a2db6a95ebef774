//! GraphiQL for browsers that open `/graphql`, with the documented operations as tabs, served
//! entirely by the API: React, ReactDOM and GraphiQL come from `api/assets/graphiql/`, pinned
//! by its package-lock.json and checked against the npm packages in CI (`vendor --check`), and
//! the page names each with its Subresource Integrity hash. Nothing is loaded from another
//! host (the Content-Security-Policy says so too): the page works without internet, and an
//! admin key typed into it reaches no one else's code.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The documented operations (`clients/operations/`, which CI also type-checks against the
/// schema), one GraphiQL tab each, so a new user has working examples to run.
const EXAMPLES: [&str; 7] = [
    include_str!("../../../clients/operations/flows.graphql"),
    include_str!("../../../clients/operations/routing.graphql"),
    include_str!("../../../clients/operations/tickets.graphql"),
    include_str!("../../../clients/operations/conversation.graphql"),
    include_str!("../../../clients/operations/operations.graphql"),
    include_str!("../../../clients/operations/webhooks.graphql"),
    include_str!("../../../clients/operations/live.graphql"),
];

/// Where the page's files are served.
pub(super) const ASSETS: &str = "/graphiql";

/// A file of the page: its name under [`ASSETS`], its type, and its body (gzip for the
/// vendored ones).
struct Asset {
    name: &'static str,
    content_type: &'static str,
    gzip: bool,
    body: &'static [u8],
}

const FILES: [Asset; 5] = [
    Asset {
        name: "react.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        gzip: true,
        body: include_bytes!("../../assets/graphiql/react.production.min.js.gz"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        gzip: true,
        body: include_bytes!("../../assets/graphiql/react-dom.production.min.js.gz"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: "text/javascript; charset=utf-8",
        gzip: true,
        body: include_bytes!("../../assets/graphiql/graphiql.min.js.gz"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: "text/css; charset=utf-8",
        gzip: true,
        body: include_bytes!("../../assets/graphiql/graphiql.min.css.gz"),
    },
    Asset {
        name: "start.js",
        content_type: "text/javascript; charset=utf-8",
        gzip: false,
        body: include_bytes!("../../assets/graphiql/start.js"),
    },
];

/// `name sha384-...` per vendored file, written by `vendor`.
const INTEGRITY: &str = include_str!("../../assets/graphiql/integrity.txt");

/// The vendored file's Subresource Integrity hash (empty for our own `start.js`, which no
/// package pins).
fn integrity(name: &str) -> &'static str {
    INTEGRITY
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_default()
}

/// Scripts and styles from this origin only; requests to this API (and its WebSocket: CSP 3's
/// `'self'` covers `ws:`/`wss:` of the same host) only. GraphiQL sets inline styles, and its
/// editor loads fonts and images as data URLs.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                      base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A file's version for its URL (`?v=`): from its integrity hash, or for our own `start.js`
/// from its bytes (FNV-1a). A new release's file gets a new URL, so browsers may keep each
/// URL's file for good and never mix an old cached file with a new page.
fn version(file: &Asset) -> String {
    let hash = integrity(file.name);
    if let Some(sha) = hash.strip_prefix("sha384-") {
        return sha
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
    }
    let fnv = file.body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{fnv:016x}")
}

/// Where the page loads `name` from, versioned.
fn url(name: &str) -> String {
    let version = FILES
        .iter()
        .find(|f| f.name == name)
        .map(version)
        .unwrap_or_default();
    format!("{ASSETS}/{name}?v={version}")
}

/// The page.
pub(super) fn page() -> Response {
    let tabs: Vec<serde_json::Value> = EXAMPLES
        .iter()
        .map(|query| {
            serde_json::json!({
                "query": query,
                "headers": "{\n  \"Authorization\": \"Bearer tk_admin_...\"\n}",
            })
        })
        .collect();
    // JSON in a script element that is never run; `<` is escaped so no example can end it.
    let tabs = serde_json::Value::from(tabs)
        .to_string()
        .replace('<', "\\u003c");
    let script = |name: &str| {
        format!(
            "<script src=\"{}\" integrity=\"{}\" crossorigin=\"anonymous\"></script>",
            url(name),
            integrity(name)
        )
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Ticketing API</title>\n\
         <link rel=\"stylesheet\" href=\"{css_url}\" integrity=\"{css}\" crossorigin=\"anonymous\">\n\
         <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>\n\
         </head>\n<body>\n<div id=\"graphiql\">Loading GraphiQL...</div>\n\
         <script type=\"application/json\" id=\"tabs\">{tabs}</script>\n\
         {react}\n{react_dom}\n{graphiql}\n<script src=\"{start}\"></script>\n\
         </body>\n</html>\n",
        css = integrity("graphiql.min.css"),
        css_url = url("graphiql.min.css"),
        start = url("start.js"),
        react = script("react.production.min.js"),
        react_dom = script("react-dom.production.min.js"),
        graphiql = script("graphiql.min.js"),
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// One of the page's files. The vendored ones are sent as stored, gzip-encoded (every browser
/// GraphiQL runs in accepts it). The page asks for each under its version ([`url`]), so a
/// browser may keep it for good.
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    let Some(file) = FILES.iter().find(|f| f.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, file.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        file.body,
    )
        .into_response();
    if file.gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_file_has_its_integrity_hash() {
        for file in FILES.iter().filter(|f| f.gzip) {
            assert!(
                integrity(file.name).starts_with("sha384-"),
                "{} has no hash in integrity.txt",
                file.name
            );
        }
    }
}

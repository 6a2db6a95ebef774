//! The chat widget for site owners' pages: `/widget.js` and `/widget.css`, built from
//! `widget/src` (npm, esbuild; CI checks the built files match their sources) and embedded in
//! the binary. A page anywhere loads them with a plain `<script>` tag (no CORS needed for
//! that); the widget's GraphQL calls are then held to its key's allowed origins like any
//! other browser call. Unversioned URLs (site owners paste them once), so a short cache.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const SCRIPT: &[u8] = include_bytes!("../../assets/widget/widget.js");
const STYLE: &[u8] = include_bytes!("../../assets/widget/widget.css");

fn file(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Pages that isolate themselves (COEP) may still load it.
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                "cross-origin",
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /widget.js`.
pub async fn script() -> Response {
    file("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /widget.css`.
pub async fn style() -> Response {
    file("text/css; charset=utf-8", STYLE)
}

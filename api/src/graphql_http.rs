//! GraphQL over HTTP, as the draft spec (graphql.github.io/graphql-over-http) and the
//! `graphql-http` audit read it: which media type to answer with, which request parameters
//! are well-formed, and how a GraphQL response becomes an HTTP one.
//!
//! - `Accept: application/graphql-response+json` gets that type, with HTTP 400 when the request
//!   fails before execution (parse, validation, variables); `application/json`, `*/*` or no
//!   `Accept` get `application/json` and HTTP 200, which older clients expect.
//! - POST bodies must be `application/json` (UTF-8). Requiring it also keeps cross-site forms
//!   out: a browser must ask a preflight for it.
//! - GET runs queries from the URL (`query`, `variables`, `operationName`, `extensions`); a
//!   mutation over GET is refused with 405, since GET must be safe to repeat.

use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::code::Code;

/// The media type of GraphQL responses in the spec.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// What the client accepts back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/graphql-response+json`: status codes tell request errors apart.
    GraphqlResponse,
    /// `application/json`: always 200 for a well-formed request.
    Json,
}

impl Media {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        })
    }
}

/// A request the protocol refuses before GraphQL sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, Code::BadRequest, message)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "errors": [{
            "message": self.message,
            "extensions": { "code": self.code.as_str() },
        }] });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// Picks the response media type from `Accept`, by quality; on a tie the spec's own type
/// wins. No `Accept`, or one that allows anything, means `application/json`.
pub fn negotiate(headers: &HeaderMap) -> Result<Media, Refusal> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(Media::Json);
    };
    let accept = accept.to_str().unwrap_or_default();
    let mut best: Option<(f32, Media)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let kind = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let media = match kind.as_str() {
            GRAPHQL_RESPONSE_JSON => Media::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => Media::Json,
            _ => continue,
        };
        if quality <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((q, m)) => {
                quality > q || (quality == q && media == Media::GraphqlResponse && m != media)
            }
        };
        if better {
            best = Some((quality, media));
        }
    }
    best.map(|(_, media)| media).ok_or_else(|| {
        Refusal::new(
            StatusCode::NOT_ACCEPTABLE,
            Code::NotAcceptable,
            format!("responses are {GRAPHQL_RESPONSE_JSON} or application/json"),
        )
    })
}

/// A POST body must be JSON in UTF-8.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let unsupported = || {
        Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "send the request as `Content-Type: application/json`",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut parts = value.split(';');
    let kind = parts.next().unwrap_or_default().trim();
    if !kind.eq_ignore_ascii_case("application/json") {
        return Err(unsupported());
    }
    let utf8 = parts.all(|p| {
        p.trim()
            .strip_prefix("charset=")
            .is_none_or(|c| c.trim_matches('"').eq_ignore_ascii_case("utf-8"))
    });
    if utf8 { Ok(()) } else { Err(unsupported()) }
}

/// The parameters of a GraphQL request, checked for their types.
pub fn request_from_json(body: &[u8]) -> Result<async_graphql::Request, Refusal> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            Code::GraphqlParseFailed,
            "the body must be a JSON object with a `query` (and optional `variables`, `operationName`, `extensions`)",
        )
    })?;
    match value {
        Value::Object(params) => request_from_params(params),
        Value::Array(_) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            Code::BatchNotSupported,
            "send one operation per request",
        )),
        _ => Err(Refusal::bad_request(
            "the body must be a JSON object with a `query`",
        )),
    }
}

/// The parameters of a GET request: `variables` and `extensions` are JSON in the URL.
pub fn request_from_query_string(query: &str) -> Result<async_graphql::Request, Refusal> {
    let mut params = Map::new();
    for (key, value) in form_urlencoded(query) {
        let value = match key.as_str() {
            "variables" | "extensions" if !value.is_empty() => serde_json::from_str(&value)
                .map_err(|_| Refusal::bad_request(format!("`{key}` must be a JSON object")))?,
            _ => Value::String(value),
        };
        params.insert(key, value);
    }
    request_from_params(params)
}

fn request_from_params(mut params: Map<String, Value>) -> Result<async_graphql::Request, Refusal> {
    let query = match params.remove("query") {
        Some(Value::String(q)) => q,
        Some(_) => return Err(Refusal::bad_request("`query` must be a string")),
        None => return Err(Refusal::bad_request("`query` is missing")),
    };
    let operation_name = match params.remove("operationName") {
        Some(Value::String(name)) => Some(name),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Refusal::bad_request("`operationName` must be a string")),
    };
    let variables = match params.remove("variables") {
        Some(Value::Object(map)) => Some(Value::Object(map)),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Refusal::bad_request("`variables` must be an object")),
    };
    let extensions = match params.remove("extensions") {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(Refusal::bad_request("`extensions` must be an object")),
    };
    let mut request = async_graphql::Request::new(query);
    request.operation_name = operation_name;
    if let Some(variables) = variables {
        request = request.variables(async_graphql::Variables::from_json(variables));
    }
    for (key, value) in extensions {
        if let Ok(value) = async_graphql::Value::from_json(value) {
            request.extensions.insert(key, value);
        }
    }
    Ok(request)
}

/// Whether the operation the request would run is a mutation (or subscription); a query that
/// does not parse is left to GraphQL to report.
pub fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let ty = match &document.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match &request.operation_name {
            Some(name) => ops.get(name.as_str()).map(|op| op.node.ty),
            None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
            None => None,
        },
    };
    matches!(
        ty,
        Some(OperationType::Mutation | OperationType::Subscription)
    )
}

fn is_request_error(response: &async_graphql::Response) -> bool {
    !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .is_some_and(|c| {
                    matches!(c, async_graphql::Value::String(s)
                        if Code::parse(s).is_some_and(Code::is_request_error))
                })
        })
}

/// A GraphQL response without its `data` entry.
#[derive(serde::Serialize)]
struct WithoutData<'a> {
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

/// The HTTP response of a GraphQL response. A request that failed before execution has no
/// `data` entry, and is HTTP 400 for clients that accept the spec's media type.
pub fn respond(response: async_graphql::Response, media: Media) -> Response {
    let request_error = is_request_error(&response);
    // Serialised once, straight from the response; a request error leaves `data` out.
    let body = if request_error {
        serde_json::to_string(&WithoutData {
            errors: &response.errors,
            extensions: &response.extensions,
        })
    } else {
        serde_json::to_string(&response)
    }
    .unwrap_or_else(|_| "{}".to_owned());
    let status = if request_error && media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut http = (status, body).into_response();
    let headers = http.headers_mut();
    headers.insert(header::CONTENT_TYPE, media.content_type());
    for (name, value) in &response.http_headers {
        headers.append(name, value.clone());
    }
    http
}

/// Decodes `a=b&c=d` with `+` as space and percent escapes.
fn form_urlencoded(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Result<Media, Refusal> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        negotiate(&headers)
    }

    #[test]
    fn negotiates_like_apollo_urql_and_curl_expect() {
        assert_eq!(negotiate(&HeaderMap::new()), Ok(Media::Json));
        assert_eq!(accept("application/json"), Ok(Media::Json));
        assert_eq!(accept("*/*"), Ok(Media::Json));
        assert_eq!(accept(GRAPHQL_RESPONSE_JSON), Ok(Media::GraphqlResponse));
        // Apollo Client
        assert_eq!(
            accept("application/graphql-response+json,application/json;q=0.9"),
            Ok(Media::GraphqlResponse)
        );
        // urql
        assert_eq!(
            accept(
                "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
            ),
            Ok(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0.5, application/json"),
            Ok(Media::Json)
        );
        assert_eq!(
            accept("text/html").unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn parameters_must_have_their_types() {
        let ok = request_from_json(br#"{"query":"{ flows { id } }","variables":null,"operationName":null,"extensions":{}}"#);
        assert!(ok.is_ok());
        for body in [
            r#"{}"#,
            r#"{"query":1}"#,
            r#"{"query":"{a}","variables":"{}"}"#,
            r#"{"query":"{a}","operationName":[]}"#,
            r#"{"query":"{a}","extensions":true}"#,
            r#""x""#,
        ] {
            let refused = request_from_json(body.as_bytes()).unwrap_err();
            assert_eq!(
                (refused.status, refused.code),
                (StatusCode::BAD_REQUEST, Code::BadRequest),
                "{body}"
            );
        }
        assert_eq!(
            request_from_json(b"[]").unwrap_err().code,
            Code::BatchNotSupported
        );
        assert_eq!(
            request_from_json(b"{").unwrap_err().code,
            Code::GraphqlParseFailed
        );
    }

    #[test]
    fn get_parameters_come_from_the_url() {
        let request = request_from_query_string(
            "query=query+Q(%24n%3A+Int)+%7B+a+%7D&variables=%7B%22n%22%3A1%7D&operationName=Q",
        )
        .unwrap();
        assert_eq!(request.query, "query Q($n: Int) { a }");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert!(!is_mutation(&request));
        let mutation = request_from_query_string("query=mutation+%7B+a+%7D").unwrap();
        assert!(is_mutation(&mutation));
    }

    #[test]
    fn only_json_in_utf8_is_accepted() {
        let with = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            check_content_type(&headers)
        };
        assert!(with("application/json").is_ok());
        assert!(with("application/json; charset=utf-8").is_ok());
        assert!(with("application/json; charset=latin1").is_err());
        assert!(with("text/plain").is_err());
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }
}

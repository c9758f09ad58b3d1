//! GraphQL over HTTP (the GraphQL Foundation's specification): the media type a response is sent as, chosen from the
//! request's `Accept` header, and the status code and body of a response under each.
//!
//! - `application/graphql-response+json` when the client asks for it: a request error (a document that does not
//!   parse or validate, variables that do not coerce, a request refused before it runs) is a 400 without `data`;
//!   a response that ran is a 200.
//! - `application/json` when the client asks for it, takes anything (`*/*`) or sends no `Accept` (clients written
//!   before the specification): always 200, as those clients expect; a request error has no `data` either, as
//!   the GraphQL specification says of errors raised before execution.
//! - Neither acceptable: 406, with a JSON body that says what to send.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use headers_accept::Accept;
use mediatype::{names, MediaType, Name};
use std::str::FromStr;

/// `application/json`.
const JSON: MediaType<'static> = MediaType::new(names::APPLICATION, names::JSON);

/// `application/graphql-response+json`.
const GRAPHQL_RESPONSE: MediaType<'static> =
    MediaType::from_parts(names::APPLICATION, Name::new_unchecked("graphql-response"), Some(names::JSON), &[]);

/// `text/html`: GraphiQL, for a browser that opens `/graphql` without a query.
const HTML: MediaType<'static> = MediaType::new(names::TEXT, names::HTML);

/// What a GraphQL response is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/json`, for clients written before GraphQL over HTTP.
    Json,
    /// `application/graphql-response+json`.
    GraphqlResponse,
}

/// What a `GET /graphql` without a query is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// GraphiQL (a browser).
    Graphiql,
    /// A GraphQL error as `Media` (a client that forgot the query).
    Graphql(Media),
}

impl Media {
    /// The `Content-Type` of a response sent as it.
    pub fn content_type(self) -> HeaderValue {
        match self {
            Media::Json => HeaderValue::from_static("application/json"),
            Media::GraphqlResponse => HeaderValue::from_static("application/graphql-response+json"),
        }
    }

    /// The media type a GraphQL response to a request with `headers` is sent as, or the 406 to send: JSON when the
    /// request takes either alike (`*/*`, no `Accept`), the client's preference otherwise.
    pub fn negotiate(headers: &HeaderMap) -> Result<Media, NotAcceptable> {
        match negotiate(headers, &[JSON, GRAPHQL_RESPONSE])? {
            chosen if chosen == GRAPHQL_RESPONSE => Ok(Media::GraphqlResponse),
            _ => Ok(Media::Json),
        }
    }

    /// What a `GET /graphql` without a query answers a request with `headers`: GraphiQL to a client that prefers
    /// HTML or takes anything, an error to a GraphQL client.
    pub fn page(headers: &HeaderMap) -> Result<Page, NotAcceptable> {
        Ok(match negotiate(headers, &[HTML, JSON, GRAPHQL_RESPONSE])? {
            chosen if chosen == HTML => Page::Graphiql,
            chosen if chosen == GRAPHQL_RESPONSE => Page::Graphql(Media::GraphqlResponse),
            _ => Page::Graphql(Media::Json),
        })
    }

    /// An error body with `code` sent as this media type with `status` (for requests refused before they reach the
    /// schema).
    pub fn error(self, status: StatusCode, message: &str, code: &str) -> Response {
        self.reply(status, error_json(message, code))
    }

    /// `body` sent as this media type with `status`.
    pub fn reply(self, status: StatusCode, body: serde_json::Value) -> Response {
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, self.content_type());
        response
    }

    /// `response` as this media type: status 400 and no `data` for a request error under
    /// `application/graphql-response+json`, 200 otherwise (see the module's documentation).
    pub fn respond(self, response: async_graphql::Response) -> Response {
        if !is_request_error(&response) {
            // async-graphql-axum's encoding (with the response's cache control and headers), as this media type.
            let mut http = async_graphql_axum::GraphQLResponse::from(response).into_response();
            http.headers_mut().insert(header::CONTENT_TYPE, self.content_type());
            return http;
        }
        let status = if self == Media::GraphqlResponse { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        let body = RequestError { errors: &response.errors, extensions: &response.extensions };
        let mut http = (status, Json(body)).into_response();
        http.headers_mut().insert(header::CONTENT_TYPE, self.content_type());
        http.headers_mut().extend(response.http_headers);
        http
    }
}

/// A GraphQL error body with `code`, for a request refused before it reaches the schema.
pub fn error_json(message: &str, code: &str) -> serde_json::Value {
    serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

/// A request whose `Accept` header takes none of the media types offered, with why: sent as a 406 with a JSON body
/// that says what to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAcceptable(&'static str);

impl IntoResponse for NotAcceptable {
    fn into_response(self) -> Response {
        let message = format!(
            "{}; accept application/graphql-response+json or application/json (GraphQL over HTTP), or send no \
             Accept header",
            self.0
        );
        Media::Json.error(StatusCode::NOT_ACCEPTABLE, &message, "NOT_ACCEPTABLE")
    }
}

/// A request error's body: its errors (and extensions), no `data`.
#[derive(serde::Serialize)]
struct RequestError<'a> {
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

/// Whether `response` answers a request that did not run: no data, and errors none of which is a field's (a
/// document that does not parse or validate, variables that do not coerce, a refusal before execution). A request
/// stopped at its deadline, or failed by the service or its store, ran (or was running): not a request error.
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    let ran = |error: &async_graphql::ServerError| {
        let extension = |name: &str| match error.extensions.as_ref().and_then(|extensions| extensions.get(name)) {
            Some(async_graphql::Value::String(value)) => Some(value.clone()),
            _ => None,
        };
        matches!(extension("code").as_deref(), Some("INTERNAL" | "UNAVAILABLE"))
            || extension("limit").as_deref() == Some("request_timeout_ms")
    };
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty() && !ran(error))
}

/// The first of `available` (in the server's order of preference) the `Accept` header of `headers` takes best, or
/// the 406 to send. No `Accept` (or an empty one) takes anything.
fn negotiate(headers: &HeaderMap, available: &[MediaType<'static>]) -> Result<MediaType<'static>, NotAcceptable> {
    let Some(value) = headers.get(header::ACCEPT).filter(|value| !value.as_bytes().trim_ascii().is_empty()) else {
        return Ok(available[0].clone());
    };
    let accept = value
        .to_str()
        .ok()
        .and_then(|text| Accept::from_str(&without_parameters(text)).ok())
        .ok_or(NotAcceptable("the Accept header is not a list of media types"))?;
    accept.negotiate(available).cloned().ok_or(NotAcceptable("this server sends JSON only"))
}

/// An `Accept` list with each range's parameters dropped but its weight (`q`): `application/json; charset=utf-8`
/// takes the JSON this server sends (whose charset is always UTF-8).
fn without_parameters(accept: &str) -> String {
    let ranges = accept.split(',').map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let weight = parts
            .find(|parameter| parameter.split('=').next().is_some_and(|name| name.trim().eq_ignore_ascii_case("q")));
        match weight {
            Some(weight) => format!("{media};{weight}"),
            None => media.to_owned(),
        }
    });
    ranges.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(accept: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        }
        headers
    }

    #[test]
    fn the_client_s_preference_chooses_and_json_is_the_default_for_anything() {
        let media = |accept| Media::negotiate(&accepting(accept)).ok();
        assert_eq!(media(None), Some(Media::Json));
        assert_eq!(media(Some("")), Some(Media::Json));
        assert_eq!(media(Some("*/*")), Some(Media::Json));
        assert_eq!(media(Some("application/*")), Some(Media::Json));
        assert_eq!(media(Some("application/json")), Some(Media::Json));
        assert_eq!(media(Some("application/graphql-response+json")), Some(Media::GraphqlResponse));
        assert_eq!(media(Some("application/graphql-response+json, application/json")), Some(Media::GraphqlResponse));
        assert_eq!(media(Some("application/json, application/graphql-response+json")), Some(Media::Json));
        assert_eq!(
            media(Some("application/json;q=0.9, application/graphql-response+json")),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(media(Some("text/html, */*;q=0.8")), Some(Media::Json));
        assert_eq!(media(Some("application/json; charset=utf-8")), Some(Media::Json));
        assert_eq!(
            media(Some("application/graphql-response+json; charset=utf-8, application/json; charset=utf-8; q=0.9")),
            Some(Media::GraphqlResponse)
        );
        let refused = Media::negotiate(&accepting(Some("application/xml"))).unwrap_err().into_response();
        assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE);
        let refused = Media::negotiate(&accepting(Some("application/json;q=0"))).unwrap_err();
        assert_eq!(refused.into_response().status(), StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn a_browser_gets_graphiql_and_a_graphql_client_an_error() {
        let page = |accept| Media::page(&accepting(accept)).ok();
        assert_eq!(page(Some("text/html,application/xhtml+xml,*/*;q=0.8")), Some(Page::Graphiql));
        assert_eq!(page(None), Some(Page::Graphiql));
        assert_eq!(page(Some("application/json")), Some(Page::Graphql(Media::Json)));
        assert_eq!(page(Some("application/graphql-response+json")), Some(Page::Graphql(Media::GraphqlResponse)));
    }

    #[test]
    fn a_request_error_has_no_data_and_is_a_400_only_under_the_new_media_type() {
        let error = async_graphql::Response::from_errors(vec![async_graphql::ServerError::new("bad", None)]);
        assert!(is_request_error(&error));
        let ran = async_graphql::Response::new(async_graphql::Value::from_json(serde_json::json!({ "a": 1 })).unwrap());
        assert!(!is_request_error(&ran));
        let mut field = async_graphql::ServerError::new("field failed", None);
        field.path = vec![async_graphql::PathSegment::Field("a".into())];
        let bubbled = async_graphql::Response::from_errors(vec![field]);
        assert!(!is_request_error(&bubbled), "a null root from a field's error ran");
        assert_eq!(Media::GraphqlResponse.respond(error).status(), StatusCode::BAD_REQUEST);
        let error = async_graphql::Response::from_errors(vec![async_graphql::ServerError::new("bad", None)]);
        let legacy = Media::Json.respond(error);
        assert_eq!(legacy.status(), StatusCode::OK);
        assert_eq!(legacy.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(Media::GraphqlResponse.respond(ran).status(), StatusCode::OK);
        let mut timeout = async_graphql::ServerError::new("past its deadline", None);
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        extensions.set("code", "LIMIT_EXCEEDED");
        extensions.set("limit", "request_timeout_ms");
        timeout.extensions = Some(extensions);
        let stopped = async_graphql::Response::from_errors(vec![timeout]);
        assert!(!is_request_error(&stopped), "a request stopped at its deadline ran");
    }
}

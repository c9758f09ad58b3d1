//! Tier 2: the axum router driven with `oneshot`.

use crate::support::{demo_copy, demo_store};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use stakegraph::config::{ApiKeys, Config};
use stakegraph::http::{app_state, router};
use stakegraph::store::GraphStore;
use tower::ServiceExt;

const VIEWER_KEY: &str = "viewer-key-0123456789";
const EDITOR_KEY: &str = "editor-key-0123456789";

fn config() -> Config {
    Config {
        api_keys: ApiKeys::parse(&format!("viewer:{VIEWER_KEY},editor:{EDITOR_KEY}")).unwrap(),
        ..Config::default()
    }
}

fn app() -> axum::Router {
    router(app_state(demo_store(), &config()), &[])
}

async fn send(request: Request<Body>) -> (StatusCode, String) {
    send_to(app(), request).await
}

async fn send_to(app: axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.oneshot(request).await.expect("router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn post(body: Value, key: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/graphql").header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

/// Every response carries an `x-request-id`: the caller's when it sent one, else a new UUID for each request.
#[tokio::test]
async fn every_response_has_a_request_id() {
    let ids = |response: &axum::response::Response| response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let health = || Request::get("/healthz").body(Body::empty()).unwrap();
    let first = app().oneshot(health()).await.unwrap();
    let second = app().oneshot(health()).await.unwrap();
    let (first, second) = (ids(&first), ids(&second));
    assert_ne!(first, second, "a new id per request");
    assert!(first.len() == 36 && first.matches('-').count() == 4, "a UUID: {first}");
    let mut refused = post(json!({ "query": "{ __typename }" }), None);
    refused.headers_mut().insert("x-request-id", "caller-42".parse().unwrap());
    let answered = app().oneshot(refused).await.unwrap();
    assert_eq!(answered.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ids(&answered), "caller-42", "the caller's id, on a refusal too");
    // An id a caller could use to flood or break every log line, span and response is replaced.
    for unusable in ["x".repeat(65), "two words".to_owned(), "line\tbreak".to_owned(), "naïve".to_owned()] {
        let mut request = health();
        request.headers_mut().insert("x-request-id", axum::http::HeaderValue::from_bytes(unusable.as_bytes()).unwrap());
        let id = ids(&app().oneshot(request).await.unwrap());
        assert!(id.len() == 36 && id.matches('-').count() == 4, "{unusable:?} is replaced by a UUID: {id}");
    }
    let mut twice = health();
    twice.headers_mut().append("x-request-id", "first-1".parse().unwrap());
    twice.headers_mut().append("x-request-id", "second-2".parse().unwrap());
    let answered = app().oneshot(twice).await.unwrap();
    assert_eq!(answered.headers().get_all("x-request-id").iter().count(), 1, "one id per response");
    assert_eq!(ids(&answered).len(), 36, "two ids are none: a new one");
    let mut longest = health();
    let id = format!("{}:._-", "a".repeat(60));
    longest.headers_mut().insert("x-request-id", id.parse().unwrap());
    assert_eq!(ids(&app().oneshot(longest).await.unwrap()), id, "64 characters of the alphabet are kept");
}

#[tokio::test]
async fn graphiql_is_served_to_browsers() {
    for path in ["/", "/graphql"] {
        let (status, body) = send(Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("graphiql") || body.contains("GraphiQL"), "{path} serves GraphiQL");
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let (status, _) = send(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let state = app_state(demo_store(), &config());
    let readyz = || Request::get("/readyz").body(Body::empty()).unwrap();
    let (status, body) = send_to(router(state.clone(), &[]), readyz()).await;
    assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "projection not built yet"));
    state.schema.engine().load().await.unwrap();
    let (status, body) = send_to(router(state, &[]), readyz()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready"));
}

#[tokio::test]
async fn browsers_on_configured_origins_may_call_the_api() {
    let app = router(app_state(demo_store(), &config()), &["https://dash.example.com".to_owned()]);
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/graphql")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app.clone().oneshot(preflight("https://dash.example.com")).await.unwrap();
    let allow =
        allowed.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(allow.as_deref(), Some("https://dash.example.com"));
    assert!(allowed.headers().contains_key("x-request-id"), "a preflight has its request id too");
    let mut call = post(json!({ "query": "{ __typename }" }), None);
    call.headers_mut().insert(header::ORIGIN, "https://dash.example.com".parse().unwrap());
    let answered = app.clone().oneshot(call).await.unwrap();
    let exposed = answered.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap().to_owned();
    assert!(exposed.contains("x-request-id"), "a page's script may read the request id: {exposed}");
    let other = app.oneshot(preflight("https://evil.example.net")).await.unwrap();
    assert!(other.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "other origins get no CORS grant");
}

#[tokio::test]
async fn metrics_are_prometheus_histograms_for_admins_only() {
    const ADMIN_KEY: &str = "admin-key-0123456789";
    let mut config = config();
    config.api_keys = ApiKeys::parse(&format!("viewer:{VIEWER_KEY},editor:{EDITOR_KEY},admin:{ADMIN_KEY}")).unwrap();
    let app = router(app_state(demo_store(), &config), &[]);
    let query =
        "query Dashboard { stakeholders(first: 3) { edges { node { name relationships(first: 2) { totalCount } } } } }";
    let query = json!({ "query": query });
    let (status, _) = send_to(app.clone(), post(query, Some(VIEWER_KEY))).await;
    assert_eq!(status, StatusCode::OK);
    let scrape = |key: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/metrics");
            if let Some(key) = key {
                request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
            }
            send_to(app, request.body(Body::empty()).unwrap()).await
        }
    };
    assert_eq!(scrape(None).await.0, StatusCode::UNAUTHORIZED);
    let (status, refused) = scrape(Some(EDITOR_KEY)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused.contains("admin keys"), "{refused}");
    let (status, text) = scrape(Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    for histogram in [
        "stakegraph_graphql_request_duration_seconds_bucket{le=\"0.0005\",operation=\"Dashboard\",outcome=\"ok\"}",
        "stakegraph_graphql_request_duration_seconds_count{operation=\"Dashboard\",outcome=\"ok\"} 1",
        "stakegraph_store_call_duration_seconds_count{method=\"list_stakeholders\"} 1",
        "stakegraph_store_batch_keys_count{method=\"relationships_of\"} 1",
        "# TYPE stakegraph_analysis_run_seconds histogram",
        "# TYPE stakegraph_analysis_wait_seconds histogram",
        "stakegraph_websocket_subscriptions 0",
        "stakegraph_analyses_queued 0",
        "# TYPE stakegraph_projection_lag_changes gauge",
    ] {
        assert!(text.contains(histogram), "{histogram} in:\n{text}");
    }
    // Anyone, when configured so.
    config.metrics = "everyone".parse().unwrap();
    let open = router(app_state(demo_store(), &config), &[]);
    assert_eq!(send_to(open, Request::get("/metrics").body(Body::empty()).unwrap()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn post_queries_need_a_valid_key() {
    let query = json!({ "query": "{ stakeholders(first: 2) { totalCount edges { node { name } } } }" });
    let (_, body) = send(post(query.clone(), None)).await;
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let (_, body) = send(post(query.clone(), Some("wrong-key-0123456789"))).await;
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let (status, body) = send(post(query, Some(VIEWER_KEY))).await;
    assert_eq!(status, StatusCode::OK);
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["data"]["stakeholders"]["edges"].as_array().unwrap().len(), 2);
    assert!(response["data"]["stakeholders"]["totalCount"].as_u64().unwrap() >= 300);
}

#[tokio::test]
async fn get_runs_queries_but_never_mutations() {
    let uri = "/graphql?query=%7B%20graphCounts%20%7B%20stakeholders%20%7D%20%7D";
    let request =
        Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {VIEWER_KEY}")).body(Body::empty()).unwrap();
    let (status, body) = send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response: Value = serde_json::from_str(&body).unwrap();
    assert!(response["data"]["graphCounts"]["stakeholders"].as_u64().unwrap() >= 300);

    let mutation = "mutation { createCustomer(input: { key: \"G-1\", name: \"Over GET\" }) { id } }";
    let uri = format!("/graphql?query={}", urlencode(mutation));
    let request =
        Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {EDITOR_KEY}")).body(Body::empty()).unwrap();
    let (status, body) = send(request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(body.contains("POST"));
}

#[tokio::test]
async fn mutations_over_http_need_an_editor_key_and_write_nothing_otherwise() {
    let (store, _dir) = demo_copy();
    let app = router(app_state(store.clone(), &config()), &[]);
    let before = store.counts().await.unwrap();
    let mutation =
        json!({ "query": "mutation { createCustomer(input: { key: \"H-1\", name: \"Over HTTP\" }) { id } }" });
    for (key, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        (Some("not-a-key-0123456789"), StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        (Some(VIEWER_KEY), StatusCode::OK, "FORBIDDEN"),
    ] {
        let (found, body) = send_to(app.clone(), post(mutation.clone(), key)).await;
        let response: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((found, response["errors"][0]["extensions"]["code"].as_str()), (status, Some(code)), "{body}");
    }
    assert_eq!(store.counts().await.unwrap(), before, "refused mutations write nothing");
    let (_, body) = send_to(app.clone(), post(mutation, Some(EDITOR_KEY))).await;
    assert!(body.contains("createCustomer"), "{body}");
    assert_eq!(store.counts().await.unwrap().stakeholders, before.stakeholders + 1);

    let introspection = json!({ "query": "{ __schema { types { name } } }" });
    let (status, _) = send_to(app.clone(), post(introspection, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no key, no schema");

    let (status, body) = send_to(app, post(json!({ "query": "x".repeat(2 << 20) }), Some(EDITOR_KEY))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn get_refuses_the_mutation_a_document_names() {
    let (store, _dir) = demo_copy();
    let app = router(app_state(store.clone(), &config()), &[]);
    let before = store.counts().await.unwrap();
    let document = "query Read { graphCounts { stakeholders } } mutation Write { archiveStakeholder(id: \"U3Rha2Vob2xkZXI6MQ\") { id } }";
    let uri = format!("/graphql?query={}&operationName=Write", urlencode(document));
    let request =
        Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {EDITOR_KEY}")).body(Body::empty()).unwrap();
    let (status, _) = send_to(app.clone(), request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let uri = format!("/graphql?query={}&operationName=Read", urlencode(document));
    let request =
        Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {EDITOR_KEY}")).body(Body::empty()).unwrap();
    let (status, body) = send_to(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(store.counts().await.unwrap(), before);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

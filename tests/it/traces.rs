//! OpenTelemetry traces (issue 15, point 6): the real binary exports the spans of one request over OTLP/HTTP (JSON)
//! to a receiver on 127.0.0.1, continuing the trace the caller's `traceparent` names: the request, the operation,
//! its resolver classes, its store calls and its analysis. Without an endpoint nothing is sent.

use crate::support::{demo_copy, post_graphql, spawn_serve, wait_until_ready};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "traces-editor-key-0123456789abcdef";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A collector's OTLP/HTTP endpoint on `address`: every body POSTed to `/v1/traces`, as JSON.
async fn receiver(address: &str) -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                assert_eq!(headers["content-type"], "application/json", "OTLP/HTTP in JSON, as configured");
                kept.lock().unwrap().push(serde_json::from_str::<Value>(&body).expect("an OTLP JSON body"));
                "{}"
            }
        }),
    );
    let listener =
        tokio::net::TcpListener::bind(address).await.unwrap_or_else(|error| panic!("bind {address}: {error}"));
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

/// A `stakegraph serve` child, killed however the test ends.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        _ = self.0.kill();
        _ = self.0.wait();
    }
}

/// One exported span, with its attributes as strings.
#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i64,
    service: String,
    attributes: HashMap<String, String>,
}

fn spans(received: &Mutex<Vec<Value>>) -> Vec<Span> {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut spans = Vec::new();
    for body in received.lock().unwrap().iter() {
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = resource["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|attribute| attribute["key"] == "service.name")
                .map(|attribute| text(&attribute["value"]["stringValue"]))
                .unwrap_or_default();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let attributes = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|attribute| {
                            let value = attribute["value"].as_object().and_then(|value| value.values().next());
                            (text(&attribute["key"]), value.map(text).unwrap_or_default())
                        })
                        .collect();
                    spans.push(Span {
                        trace: text(&span["traceId"]).to_lowercase(),
                        id: text(&span["spanId"]).to_lowercase(),
                        parent: span["parentSpanId"].as_str().unwrap_or_default().to_lowercase(),
                        name: text(&span["name"]),
                        kind: span["kind"].as_i64().unwrap_or_default(),
                        service: service.clone(),
                        attributes,
                    });
                }
            }
        }
    }
    spans
}

/// A query that continues the caller's trace: resolvers nested three deep (one class resolved several times), a
/// store call (interaction pages are always read from the store) and an analysis.
const TRACED: &str = "query Traced($id: ID!) {
  stakeholder(id: $id) {
    name
    relationships(first: 3) { edges { node { interactions(first: 2) { totalCount } } } }
  }
  influenceReach(from: $id, maxHops: 2, first: 3) { reached { score } }
}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_requests_spans_reach_the_otlp_endpoint_under_the_callers_trace() {
    let (endpoint, received) = receiver("127.0.0.1:0").await;
    let (store, dir) = demo_copy();
    drop(store);
    let mut command = Command::new(env!("CARGO_BIN_EXE_stakegraph"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("copy.db"))
        .env("STAKEGRAPH_API_KEYS", format!("editor:{KEY}"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES");
    let (child, address) = spawn_serve(command);
    let served = Served(child);
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    wait_until_ready(&client, &base).await;
    let first =
        json!({ "query": "{ stakeholders(first: 1, filter: { kinds: [CUSTOMER] }) { edges { node { id } } } }" });
    let first = post_graphql(&client, &base, Some(KEY), &first).await;
    let id = first["data"]["stakeholders"]["edges"][0]["node"]["id"].clone();
    assert!(id.is_string(), "{first}");

    let response = client
        .post(format!("{base}/graphql"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({ "query": TRACED, "variables": { "id": id } }))
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert!(answer["errors"].is_null() && answer["data"]["influenceReach"]["reached"].is_array(), "{answer}");

    // Exported within the batch delay; a minute bounds a hang, it is not a speed requirement.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ours = loop {
        let ours: Vec<Span> = spans(&received).into_iter().filter(|span| span.trace == TRACE).collect();
        if ours.iter().any(|span| span.name == "POST /graphql") && ours.iter().any(|span| span.name == "analysis") {
            break ours;
        }
        assert!(Instant::now() < deadline, "no spans of the traced request in a minute: {ours:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(served);

    let named = |name: &str| -> &Span {
        ours.iter().find(|span| span.name == name).unwrap_or_else(|| panic!("no span {name:?} in {ours:#?}"))
    };
    let by_id: HashMap<&str, &Span> = ours.iter().map(|span| (span.id.as_str(), span)).collect();
    let ancestors = |span: &Span| -> Vec<String> {
        let mut names = Vec::new();
        let mut parent = span.parent.clone();
        while let Some(up) = by_id.get(parent.as_str()) {
            names.push(up.name.clone());
            parent = up.parent.clone();
        }
        assert_eq!(parent, CALLER_SPAN, "every span of the request descends from the caller's: {span:?}");
        names
    };

    let request = named("POST /graphql");
    assert_eq!(request.parent, CALLER_SPAN, "the request continues the caller's span");
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!(request.service, "stakegraph");
    assert_eq!(request.attributes["http.response.status_code"], "200");
    assert_eq!(request.attributes["graphql.operation.name"], "Traced");
    let operation = named("graphql");
    assert_eq!(
        operation.attributes["graphql.operation.name"], "Traced",
        "the name, bounded by nothing, is no span name"
    );
    assert_eq!(ancestors(operation), ["POST /graphql"]);
    assert_eq!(ancestors(named("Query.stakeholder")), ["graphql", "POST /graphql"]);
    assert!(!ours.iter().any(|span| span.name.starts_with('[')), "list items are in their field's class");
    // One span per resolver class, however many times it ran, with the count.
    let edges = ours.iter().filter(|span| span.name.ends_with(".interactions")).collect::<Vec<_>>();
    assert_eq!(edges.len(), 1, "one span for the class: {edges:#?}");
    let resolved = answer["data"]["stakeholder"]["relationships"]["edges"].as_array().map_or(0, Vec::len);
    assert!(resolved >= 2, "the class ran more than once: {answer}");
    assert_eq!(edges[0].attributes["graphql.resolutions"], resolved.to_string(), "{:?}", edges[0]);
    assert!(ancestors(edges[0]).contains(&"Query.stakeholder".to_owned()), "{edges:?}");
    let store = named("store interaction_pages");
    assert_eq!(store.attributes["db.operation.name"], "interaction_pages");
    assert!(ancestors(store).contains(&"POST /graphql".to_owned()));
    assert!(ancestors(named("analysis")).starts_with(&["Query.influenceReach".to_owned()]));
    for span in &ours {
        ancestors(span);
    }
    let text = serde_json::to_string(&*received.lock().unwrap()).unwrap();
    assert!(!text.contains(KEY), "never the key in a span");
}

/// With no OTLP endpoint configured, nothing is sent, not even to the default collector address (port 4318 on
/// this machine, where a receiver listens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_no_span_is_sent() {
    let (_, received) = receiver("127.0.0.1:4318").await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_stakegraph"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("quiet.db"))
        .env("STAKEGRAPH_API_KEYS", format!("editor:{KEY}"))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    let (child, address) = spawn_serve(command);
    let served = Served(child);
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    wait_until_ready(&client, &base).await;
    let response = client
        .post(format!("{base}/graphql"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Ten times the batch delay the exporter would have used.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(served);
    assert!(received.lock().unwrap().is_empty(), "nothing is exported");
}

/// An OTLP protocol this build does not speak is refused at start, saying which ones it does.
#[test]
fn an_unknown_protocol_is_refused_with_the_ones_spoken() {
    let output = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .arg("schema")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: OTEL_EXPORTER_OTLP_PROTOCOL is \"grpc\"; Stakegraph exports OTLP over HTTP: set it to \"http/protobuf\" \
         (the default) or \"http/json\""
    );
    assert!(output.stdout.is_empty(), "nothing printed but the error");
}

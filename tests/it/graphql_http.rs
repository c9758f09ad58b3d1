//! GraphQL over HTTP: the official `graphql-http` library's server audit (`auditServer`, run with Node by
//! `tests/js/http-audit.mjs`) against the real service, and what the audit does not check: 406 and 415 with their
//! messages, a browser's GraphiQL, and request errors under both media types.
//!
//! Needs `node` and `npm` on the PATH; installs `tests/js/node_modules` with `npm ci` when it is missing.

use crate::graphql_ws_client::{ensure_client_installed, js_dir};
use crate::support::{serve, EDITOR_KEY};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;

/// One audit's outcome, as `http-audit.mjs` prints it.
#[derive(Debug, serde::Deserialize)]
struct Audit {
    id: String,
    name: String,
    status: String,
    reason: Option<String>,
}

#[tokio::test]
async fn every_must_and_should_of_the_graphql_over_http_audit_passes() {
    if let Err(error) = tokio::task::spawn_blocking(ensure_client_installed).await {
        std::panic::resume_unwind(error.into_panic());
    }
    let (address, _dir) = serve(|_| {}).await;
    let url = format!("http://{address}/graphql");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(js_dir().join("http-audit.mjs")).args([&url, EDITOR_KEY]).output()
    })
    .await
    .unwrap()
    .expect("node runs the audit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the audit did not run ({}):\n{stderr}", output.status);
    let audits: Vec<Audit> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not an audit ({error}): {line}")))
        .collect();
    // graphql-http 1.23.1 runs 61 audits; fewer means the audit did not run as it should.
    assert!(audits.len() >= 61, "only {} audits ran:\n{stderr}", audits.len());
    let mut counts: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for audit in &audits {
        let level = audit.name.split_whitespace().next().unwrap_or_default();
        *counts.entry((level, audit.status == "ok")).or_default() += 1;
    }
    println!("graphql-http auditServer (level, passed) → count: {counts:?}");
    let failed: Vec<String> = audits
        .iter()
        .filter(|audit| audit.status != "ok" && !audit.name.starts_with("MAY"))
        .map(|audit| format!("{} {}: {}", audit.id, audit.name, audit.reason.as_deref().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "MUST and SHOULD audits failed:\n{}", failed.join("\n"));
}

/// POSTs `body` (as text, with `content_type`) accepting `accept`: status, `Content-Type`, body.
async fn post(address: &str, accept: Option<&str>, content_type: Option<&str>, body: &str) -> (u16, String, Value) {
    let mut request = reqwest::Client::new().post(format!("http://{address}/graphql")).bearer_auth(EDITOR_KEY);
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let response = request.body(body.to_owned()).send().await.expect("the server answers");
    let status = response.status().as_u16();
    let media = response.headers().get(CONTENT_TYPE).map(|value| value.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"));
    (status, media.unwrap_or_default(), body)
}

const NEW: &str = "application/graphql-response+json";
const LEGACY: &str = "application/json";

#[tokio::test]
async fn request_errors_have_no_data_and_are_400_only_under_the_new_media_type() {
    let (address, _dir) = serve(|_| {}).await;
    let requests = [
        ("a document that does not parse", json!({ "query": "{" })),
        ("a document that does not validate", json!({ "query": "{ noSuchField }" })),
        (
            "variables that do not coerce",
            json!({ "query": "query($first: Int!) { stakeholders(first: $first) { totalCount } }", "variables": { "first": "ten" } }),
        ),
    ];
    for (what, request) in requests {
        let (status, media, body) = post(&address, Some(NEW), Some(LEGACY), &request.to_string()).await;
        assert_eq!((status, media.as_str()), (400, NEW), "{what}: {body:#}");
        assert!(body.get("data").is_none() && body["errors"][0]["message"].is_string(), "{what}: {body:#}");
        let (status, media, legacy) = post(&address, Some(LEGACY), Some(LEGACY), &request.to_string()).await;
        assert_eq!((status, media.as_str()), (200, LEGACY), "{what}, for a client before the specification");
        assert_eq!(legacy, body, "{what}: the same body");
    }
    // A request that runs is a 200 under either, with its data.
    for accept in [Some(NEW), Some(LEGACY), Some("*/*"), None] {
        let (status, media, body) = post(&address, accept, Some(LEGACY), r#"{"query":"{ __typename }"}"#).await;
        let expected = if accept == Some(NEW) { NEW } else { LEGACY };
        assert_eq!((status, media.as_str(), &body["data"]["__typename"]), (200, expected, &json!("Query")));
    }
}

#[tokio::test]
async fn a_request_the_server_cannot_answer_as_asked_is_refused_with_what_to_send() {
    let (address, _dir) = serve(|_| {}).await;
    let query = r#"{"query":"{ __typename }"}"#;
    let (status, _, body) = post(&address, Some("application/xml"), Some(LEGACY), query).await;
    assert_eq!((status, &body["errors"][0]["extensions"]["code"]), (406, &json!("NOT_ACCEPTABLE")));
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("application/graphql-response+json"));
    for content_type in [Some("text/plain"), None] {
        let (status, _, body) = post(&address, Some(NEW), content_type, query).await;
        assert_eq!(status, 415, "{content_type:?}: {body:#}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("Content-Type: application/json"));
    }
    let (status, media, body) = post(&address, Some(NEW), Some(LEGACY), r#"{"qeury":"{ __typename }"}"#).await;
    assert_eq!((status, media.as_str()), (400, NEW), "{body:#}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("no `query`"), "{body:#}");

    // A GET without a query: GraphiQL for a browser, an error for a GraphQL client.
    let client = reqwest::Client::new();
    let get = |accept: &'static str| client.get(format!("http://{address}/graphql")).header(ACCEPT, accept).send();
    let page = get("text/html,application/xhtml+xml,*/*;q=0.8").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("graphiql"), "GraphiQL for a browser");
    let missing = get(NEW).await.unwrap();
    assert_eq!((missing.status().as_u16(), missing.headers()[CONTENT_TYPE].to_str().unwrap()), (400, NEW));
}

/// POSTs `body` (JSON) with the editor key, accepting JSON: status and body.
async fn post_json(address: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) = post(address, Some(LEGACY), Some(LEGACY), &body.to_string()).await;
    (status, body)
}

fn code(body: &Value) -> &Value {
    &body["errors"][0]["extensions"]["code"]
}

#[tokio::test]
async fn automatic_persisted_queries_follow_apollo_s_flow_over_post_and_get() {
    let (address, _dir) = serve(|_| {}).await;
    let query = "query Count { stakeholders(first: 1) { totalCount } }";
    let hash = stakegraph::api::persisted::sha256_hex(query);
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    // Hash only, before the server has the document: not found, as Apollo's link expects it.
    let (status, body) = post_json(&address, &json!({ "extensions": persisted })).await;
    assert_eq!(
        (status, &body["errors"][0]["message"], code(&body)),
        (200, &json!("PersistedQueryNotFound"), &json!("PERSISTED_QUERY_NOT_FOUND"))
    );
    assert!(body.get("data").is_none(), "{body:#}");
    // The hash with the text: checked, kept, run.
    let (status, body) = post_json(&address, &json!({ "query": query, "extensions": persisted })).await;
    assert_eq!((status, &body["data"]["stakeholders"]["totalCount"]), (200, &json!(0)), "{body:#}");
    // Then the hash alone runs it, over POST and over GET (what a CDN can cache).
    let (status, body) = post_json(&address, &json!({ "extensions": persisted })).await;
    assert_eq!((status, &body["data"]["stakeholders"]["totalCount"]), (200, &json!(0)), "{body:#}");
    let response = reqwest::Client::new()
        .get(format!("http://{address}/graphql"))
        .query(&[("extensions", persisted.to_string())])
        .bearer_auth(EDITOR_KEY)
        .header(ACCEPT, NEW)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["stakeholders"]["totalCount"], 0, "{body:#}");
    // A text that is not the hash's is refused, and nothing is kept under that hash.
    let other = json!({ "query": "{ __typename }", "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "0".repeat(64) } } });
    let (status, body) = post_json(&address, &other).await;
    assert_eq!((status, code(&body)), (200, &json!("BAD_USER_INPUT")), "{body:#}");
    let (_, body) = post_json(
        &address,
        &json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "0".repeat(64) } } }),
    )
    .await;
    assert_eq!(code(&body), &json!("PERSISTED_QUERY_NOT_FOUND"));
    // A mutation named by hash is still refused over GET.
    let mutation = "mutation { createCustomer(input: { key: \"C-1\", name: \"One\" }) { id } }";
    let hash = stakegraph::api::persisted::sha256_hex(mutation);
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (status, body) = post_json(&address, &json!({ "query": mutation, "extensions": persisted })).await;
    assert_eq!(status, 200, "{body:#}");
    let response = reqwest::Client::new()
        .get(format!("http://{address}/graphql"))
        .query(&[("extensions", persisted.to_string())])
        .bearer_auth(EDITOR_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405, "a persisted mutation is still a mutation");
}

#[tokio::test]
async fn with_trusted_documents_only_the_manifest_s_operations_run() {
    // The manifest as `stakegraph trusted-documents` prints it from `queries/`.
    let queries = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    let output = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .args(["trusted-documents", "--dir"])
        .arg(&queries)
        .output()
        .expect("stakegraph runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let manifest: BTreeMap<String, String> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest.len(), std::fs::read_dir(&queries).unwrap().count(), "every operation of queries/");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trusted.json");
    std::fs::write(&path, &output.stdout).unwrap();
    let trusted = stakegraph::api::persisted::Persisted::trusted_from(&path).unwrap();
    let (address, _store) = serve(|config| config.trusted_documents = Some(std::sync::Arc::new(trusted))).await;

    let text = std::fs::read_to_string(queries.join("search_stakeholders.graphql")).unwrap();
    let hash = stakegraph::api::persisted::sha256_hex(&text);
    assert_eq!(manifest[&hash], text);
    let variables = json!({ "text": "a", "first": 5 });
    for request in [
        json!({ "documentId": format!("sha256:{hash}"), "variables": variables }),
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } }, "variables": variables }),
        json!({ "query": text, "variables": variables }),
    ] {
        let (status, body) = post_json(&address, &request).await;
        assert_eq!(status, 200, "{body:#}");
        assert!(body.get("errors").is_none() && body["data"].is_object(), "{request}: {body:#}");
    }
    for request in [
        json!({ "query": "{ __typename }" }),
        json!({ "documentId": "0".repeat(64) }),
        json!({ "query": "{ __typename }", "extensions": { "persistedQuery": { "version": 1, "sha256Hash": stakegraph::api::persisted::sha256_hex("{ __typename }") } } }),
    ] {
        let (status, _, body) = post(&address, Some(NEW), Some(LEGACY), &request.to_string()).await;
        assert_eq!((status, code(&body)), (400, &json!("PERSISTED_QUERY_NOT_IN_LIST")), "{request}: {body:#}");
        assert!(body.get("data").is_none());
    }
    // A manifest whose hash is not its document's is refused at start, naming the hash.
    std::fs::write(&path, json!({ "0".repeat(64): "{ __typename }" }).to_string()).unwrap();
    let refused = stakegraph::api::persisted::Persisted::trusted_from(&path).unwrap_err().to_string();
    assert!(refused.contains(&"0".repeat(64)) && refused.contains("SHA-256"), "{refused}");
}

#[tokio::test]
async fn introspection_can_be_kept_from_viewers() {
    const VIEWER: &str = "viewer-key-for-the-introspection-test";
    let (address, _dir) = serve(|config| {
        config.api_keys =
            stakegraph::config::ApiKeys::parse(&format!("editor:{EDITOR_KEY},viewer:{VIEWER}")).expect("valid keys");
        config.introspection = "editors".parse().unwrap();
    })
    .await;
    let ask = |key: &'static str, query: &'static str| {
        let address = address.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("http://{address}/graphql"))
                .bearer_auth(key)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let introspecting = [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Customer\") { name } }",
        "query { ...Schema } fragment Schema on Query { ... on Query { __type(name: \"Query\") { name } } }",
        // A federation router reads the schema through `_service`: it is introspection too.
        "{ _service { sdl } }",
    ];
    for query in introspecting {
        let refused = ask(VIEWER, query).await;
        assert_eq!(code(&refused), &json!("FORBIDDEN"), "{query}: {refused:#}");
        assert!(refused["errors"][0]["message"].as_str().unwrap().contains("editor and admin keys"), "{refused:#}");
        let allowed = ask(EDITOR_KEY, query).await;
        assert!(allowed.get("errors").is_none(), "an editor introspects: {allowed:#}");
    }
    let typename = ask(VIEWER, "{ __typename stakeholders(first: 1) { totalCount } }").await;
    assert_eq!(typename["data"]["__typename"], "Query", "__typename is not introspection: {typename:#}");
    // Nor do the validator's suggestions spell the schema out to a viewer.
    let misspelt = ask(VIEWER, "{ stakehold }").await;
    let message = misspelt["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("stakehold") && !message.contains("Did you mean"), "{message}");
    let helped = ask(EDITOR_KEY, "{ stakehold }").await;
    assert!(helped["errors"][0]["message"].as_str().unwrap().contains("Did you mean"), "{helped:#}");
}

#[tokio::test]
async fn an_event_stream_frees_its_place_when_its_client_goes_and_refuses_within_the_stream() {
    let (address, _dir) = serve(|config| config.websocket.max_subscriptions_per_key = 1).await;
    let url = format!("http://{address}/graphql/stream");
    let client = reqwest::Client::new();
    let open =
        |body: Value| client.post(&url).bearer_auth(EDITOR_KEY).header(ACCEPT, "text/event-stream").json(&body).send();
    // A subscription that emits nothing holds the key's one place while its client reads.
    let quiet = json!({ "query": "subscription { changes(filter: { kinds: [PROGRAM_CREATED] }) { cursor } }" });
    let first = open(quiet.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(open(quiet.clone()).await.unwrap().status(), 429, "the key's one place is taken");
    drop(first);
    // Once the client has gone, the place is free again (the operation notices without an event to send).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let again = open(quiet.clone()).await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the place was not freed: {}", again.status());
        drop(again);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_persisted_document_refused_on_a_stream_is_an_event_and_accept_parameters_are_ignored() {
    let (address, _dir) = serve(|_| {}).await;
    let unknown = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "1".repeat(64) } } });
    let response = reqwest::Client::new()
        .post(format!("http://{address}/graphql/stream"))
        .bearer_auth(EDITOR_KEY)
        .header(ACCEPT, "text/event-stream")
        .json(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    assert!(text.contains("event: next") && text.contains("PERSISTED_QUERY_NOT_FOUND"), "{text}");
    assert!(text.find("event: complete") > text.find("event: next"), "then complete: {text}");
    let (status, media, body) =
        post(&address, Some("application/json; charset=utf-8"), Some(LEGACY), r#"{"query":"{ __typename }"}"#).await;
    assert_eq!((status, media.as_str(), &body["data"]["__typename"]), (200, LEGACY, &json!("Query")));
}

/// Starts `node sse-client.mjs <args>`; each line it prints, then its exit status with its stderr, arrive on the
/// returned channel.
fn start_sse_client(args: &[&str]) -> tokio::sync::mpsc::UnboundedReceiver<Result<Value, String>> {
    use std::io::{BufRead, Read};
    let mut child = Command::new("node")
        .arg(js_dir().join("sse-client.mjs"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node starts");
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let (stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let parsed = serde_json::from_str(&line).map_err(|error| format!("not JSON ({error}): {line}"));
            if sender.send(parsed).is_err() {
                break;
            }
        }
        let status = child.wait().expect("the client can be waited for");
        let mut errors = String::new();
        let _ = stderr.read_to_string(&mut errors);
        let _ = sender.send(Err(format!("exited ({status}): {errors}")));
    });
    receiver
}

async fn next_line(client: &mut tokio::sync::mpsc::UnboundedReceiver<Result<Value, String>>) -> Result<Value, String> {
    tokio::time::timeout(std::time::Duration::from_secs(60), client.recv())
        .await
        .expect("the graphql-sse client reports within 60 s")
        .expect("the client's reader reports how it ended")
}

#[tokio::test]
async fn the_official_graphql_sse_client_replays_after_its_cursor_then_receives_live_events() {
    if let Err(error) = tokio::task::spawn_blocking(ensure_client_installed).await {
        std::panic::resume_unwind(error.into_panic());
    }
    let (address, _dir) = serve(|_| {}).await;
    crate::support::create_customer(&address, "C-1").await;
    crate::support::create_customer(&address, "C-2").await;
    let before = crate::graphql_ws_client::logged_changes(&address).await;
    let first = before[0]["cursor"].as_str().unwrap().to_owned();
    let url = format!("http://{address}/graphql/stream");
    let subscription = "subscription($after: String) { changes(after: $after) { cursor kind stakeholders } }";
    let variables = json!({ "after": first }).to_string();
    let mut client = start_sse_client(&[&url, EDITOR_KEY, subscription, &variables, "2"]);
    // The replayed event arrives before the next change is made, so the second can only come live.
    let replayed = next_line(&mut client).await.unwrap();
    crate::support::create_customer(&address, "C-3").await;
    let live = next_line(&mut client).await.unwrap();
    let ended = next_line(&mut client).await.unwrap_err();
    assert!(ended.starts_with("exited (exit status: 0)"), "{ended}");
    let logged = crate::graphql_ws_client::logged_changes(&address).await;
    assert_eq!(replayed["data"]["changes"], logged[1], "the replay starts right after the cursor");
    assert_eq!(live["data"]["changes"], logged[2], "then the live event");

    // A query streams its one result, then completes.
    let mut client = start_sse_client(&[&url, EDITOR_KEY, "{ stakeholders(first: 1) { totalCount } }", "{}", "1"]);
    assert_eq!(next_line(&mut client).await.unwrap()["data"]["stakeholders"]["totalCount"], 3);
    assert!(next_line(&mut client).await.unwrap_err().starts_with("exited (exit status: 0)"));

    // The same key as everywhere, and only to a client that takes an event stream.
    let client = reqwest::Client::new();
    let stream = |key: Option<&'static str>, accept: &'static str| {
        let mut request =
            client.post(&url).header(ACCEPT, accept).json(&json!({ "query": "subscription { changes { cursor } }" }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    assert_eq!(stream(None, "text/event-stream").await.unwrap().status(), 401);
    assert_eq!(stream(Some(EDITOR_KEY), LEGACY).await.unwrap().status(), 406);
}

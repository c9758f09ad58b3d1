//! Webhooks end to end: the real binary delivers to a receiver on 127.0.0.1 that fails a third of the deliveries and
//! is down for a while, with the server killed (SIGKILL) and restarted in the middle. The receiver gets every event
//! of the log, in order, each verified by its Standard Webhooks signature, repeated only with its `webhook-id`.

use crate::support::{post_graphql, spawn_serve};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN_KEY: &str = "admin-key-of-the-webhook-test";
const EDITOR_KEY: &str = "editor-key-of-the-webhook-test";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Bytes,
    answered: u16,
}

/// A webhook receiver that answers 500 to every third request and can be taken down and brought back on its port.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    count: Arc<AtomicUsize>,
}

impl Receiver {
    /// Serves on `address` until the returned task is aborted; every answer closes its connection, so that an
    /// aborted receiver refuses the next delivery.
    fn serve(&self, address: SocketAddr) -> tokio::task::JoinHandle<()> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(address).unwrap();
        let listener = socket.listen(128).unwrap();
        let receiver = self.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let receiver = receiver.clone();
                async move { receiver.take(&headers, body) }
            }),
        );
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        })
    }

    fn take(&self, headers: &HeaderMap, body: Bytes) -> (StatusCode, [(&'static str, &'static str); 1]) {
        let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default();
        let failing = self.count.fetch_add(1, Ordering::SeqCst) % 3 == 2;
        let answered = if failing { 500 } else { 204 };
        self.got.lock().unwrap().push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body,
            answered,
        });
        (StatusCode::from_u16(answered).unwrap(), [("connection", "close")])
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// A free port on 127.0.0.1 (nothing listens on it once this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process, killed when dropped (a failed assertion leaves none behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `stakegraph serve` on the database in `dir` with `config`.
fn serve(dir: &std::path::Path) -> (Killed, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stakegraph"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("graph.db"))
        .arg("--config")
        .arg(dir.join("stakegraph.toml"));
    let (child, address) = spawn_serve(command);
    (Killed(child), format!("http://{address}"))
}

/// The signature of a delivery, computed here with ring's HMAC apart from the service's signing code.
fn expected_signature(secret: &str, received: &Received) -> String {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("a whsec_ secret")).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut content = format!("{}.{}.", received.id, received.timestamp).into_bytes();
    content.extend_from_slice(&received.body);
    format!("v1,{}", STANDARD.encode(ring::hmac::sign(&key, &content).as_ref()))
}

/// The log position in a `changes` cursor.
fn seq_of(cursor: &str) -> i64 {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).unwrap()).unwrap();
    text.strip_prefix("changes|").unwrap().parse().unwrap()
}

async fn create_customers(client: &reqwest::Client, base: &str, from: usize, to: usize) {
    for number in from..to {
        // Every seventh is private: its event reaches a webhook without `includePrivate` masked.
        let private = number % 7 == 3;
        let body = json!({
            "query": "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
            "variables": { "input": { "key": format!("WH-{number}"), "name": format!("Webhook customer {number}"), "private": private } },
        });
        let answer = post_graphql(client, base, Some(ADMIN_KEY), &body).await;
        assert!(answer.get("errors").is_none(), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_receiver_gets_every_event_in_order_signed_across_a_server_kill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dead_port = free_port();
    std::fs::write(
        dir.path().join("stakegraph.toml"),
        format!(
            "api_keys = [\"admin:{ADMIN_KEY}\", \"editor:{EDITOR_KEY}\"]\n\
             [webhooks]\nallowed_hosts = [\"127.0.0.1:{port}\", \"127.0.0.1:{dead_port}\"]\n\
             retry_initial_ms = 50\nretry_max_seconds = 1\ntimeout_seconds = 2\ndisable_after_seconds = 8\n"
        ),
    )
    .unwrap();
    let delivered = |received: &[Received]| {
        let mut seen = Vec::<String>::new();
        for delivery in received.iter().filter(|delivery| delivery.answered == 204) {
            let body: Value = serde_json::from_slice(&delivery.body).unwrap();
            let cursor = body["data"]["cursor"].as_str().unwrap().to_owned();
            if !seen.contains(&cursor) {
                seen.push(cursor);
            }
        }
        seen
    };
    let receiver = Receiver::default();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut listening = receiver.serve(address);
    let client = reqwest::Client::new();
    let (server, base) = serve(dir.path());

    // Only an admin registers, and only an allowed host.
    let register = "mutation($input: RegisterWebhookInput!) { registerWebhook(input: $input) { secret webhook { id cursor status } } }";
    let input = |url: String| json!({ "query": register, "variables": { "input": { "url": url } } });
    let refused = post_graphql(&client, &base, Some(EDITOR_KEY), &input(format!("http://{address}/hook"))).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");
    let refused = post_graphql(&client, &base, Some(ADMIN_KEY), &input("http://127.0.0.1:1/hook".into())).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("allowed_hosts"), "{refused}");

    let registered = post_graphql(&client, &base, Some(ADMIN_KEY), &input(format!("http://{address}/hook"))).await;
    let webhook = &registered["data"]["registerWebhook"];
    let secret = webhook["secret"].as_str().unwrap_or_else(|| panic!("{registered}")).to_owned();
    let start = webhook["webhook"]["cursor"].as_str().unwrap().to_owned();
    let dead =
        post_graphql(&client, &base, Some(ADMIN_KEY), &input(format!("http://127.0.0.1:{dead_port}/hook"))).await;
    let dead_id = dead["data"]["registerWebhook"]["webhook"]["id"].as_str().unwrap().to_owned();

    create_customers(&client, &base, 0, 10).await;
    // The receiver goes down for a while; writes go on.
    listening.abort();
    let _ = listening.await;
    create_customers(&client, &base, 10, 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    listening = receiver.serve(address);
    create_customers(&client, &base, 20, 25).await;
    // The server is killed in the middle of deliveries, and started again on the same database.
    drop(server);
    let before_kill = delivered(&receiver.received()).len();
    assert!(before_kill < 25, "the kill came after every delivery ({before_kill}): it tests nothing");
    let (server, base) = serve(dir.path());
    create_customers(&client, &base, 25, 35).await;

    let log = post_graphql(
        &client,
        &base,
        Some(ADMIN_KEY),
        &json!({ "query": "query($after: String) { changes(after: $after, first: 100) { edges { cursor } } }", "variables": { "after": start } }),
    )
    .await;
    let expected: Vec<String> = log["data"]["changes"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["cursor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 35, "{log}");

    // A bound on a hang, not a speed requirement.
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered(&receiver.received()).len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} delivered",
            delivered(&receiver.received()).len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = receiver.received();
    assert_eq!(delivered(&received), expected, "every event, in log order");

    let mut previous = 0;
    let mut ids = std::collections::HashMap::new();
    let mut masked = 0;
    for delivery in &received {
        assert_eq!(delivery.signature, expected_signature(&secret, delivery), "signed as Standard Webhooks says");
        let sent = delivery.timestamp.parse::<i64>().unwrap();
        assert!((chrono::Utc::now().timestamp() - sent).abs() < 300, "a fresh timestamp");
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        let seq = seq_of(body["data"]["cursor"].as_str().unwrap());
        assert!(seq >= previous, "in log order: {seq} after {previous}");
        previous = seq;
        // A repeated delivery is the same message.
        let repeated = ids.contains_key(&seq);
        let first = ids.entry(seq).or_insert_with(|| (delivery.id.clone(), delivery.body.clone()));
        assert_eq!(first.0, delivery.id, "one webhook-id per event");
        assert_eq!(first.1, delivery.body, "the same body on every attempt");
        if body["type"] == "change.masked" {
            masked += usize::from(!repeated);
            assert_eq!(body["data"]["masked"], true);
            assert!(body["data"]["changedFields"].is_null() && body["timestamp"].is_null(), "{body}");
        } else {
            assert_eq!(body["type"], "stakeholder.created", "{body}");
            let fields = body["data"]["changedFields"].as_array().unwrap();
            assert!(fields.iter().any(|field| field["field"] == "name"), "{body}");
        }
    }
    assert_eq!(masked, 5, "the private customers' events are masked");
    // And by the Standard Webhooks reference library (PyPI `standardwebhooks`; installed with pip when missing).
    let file = dir.path().join("deliveries.json");
    let as_json: Vec<Value> = received
        .iter()
        .map(|delivery| {
            let body = String::from_utf8(delivery.body.to_vec()).unwrap();
            json!({ "id": delivery.id, "timestamp": delivery.timestamp, "signature": delivery.signature, "body": body })
        })
        .collect();
    std::fs::write(&file, serde_json::to_vec(&as_json).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/verify_webhooks.py");
    let mut python = Command::new("python3");
    if let Some(path) = crate::support::python_path("standardwebhooks", "standardwebhooks==1.1.0") {
        python.env("PYTHONPATH", path);
    }
    let verified = python.arg(script).arg(&secret).arg(&file).output().expect("python3 runs");
    assert!(
        verified.status.success(),
        "the reference library refused a delivery: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&verified.stdout).trim(), format!("verified {}", received.len()));
    assert!(received.iter().any(|delivery| delivery.answered == 500), "a third of the deliveries failed");

    // What the admin sees: deliveries, their failures, and the dead receiver disabled with its reason.
    let status = |id: String| json!({ "query": "query($id: ID!) { webhooks { id status lastDeliveredAt } webhookDeliveries(webhook: $id, first: 50) { messageId attempt statusCode succeeded error } }", "variables": { "id": id } });
    let webhook_id = webhook["webhook"]["id"].as_str().unwrap().to_owned();
    let seen = post_graphql(&client, &base, Some(ADMIN_KEY), &status(webhook_id.clone())).await;
    let deliveries = seen["data"]["webhookDeliveries"].as_array().unwrap_or_else(|| panic!("{seen}"));
    assert!(deliveries.iter().any(|delivery| delivery["succeeded"] == true), "{seen}");
    assert!(deliveries.iter().any(|delivery| delivery["statusCode"] == 500 && delivery["error"].is_string()), "{seen}");
    let forbidden = post_graphql(&client, &base, Some(EDITOR_KEY), &status(webhook_id.clone())).await;
    assert_eq!(forbidden["errors"][0]["extensions"]["code"], "FORBIDDEN", "{forbidden}");
    // `/metrics` says how far behind the log each enabled webhook is: the flaky receiver has taken every change;
    // the dead one, while it is still enabled, has taken none since it was registered.
    let scrape = || async {
        let metrics = client.get(format!("{base}/metrics")).bearer_auth(ADMIN_KEY).send().await.unwrap();
        metrics.text().await.unwrap()
    };
    let lag = |metrics: &str, id: &str| {
        let prefix = format!("stakegraph_webhook_lag_changes{{webhook=\"{id}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(&prefix).map(|lag| lag.parse::<i64>().unwrap()))
    };
    let metrics = scrape().await;
    assert_eq!(lag(&metrics, &webhook_id), Some(0), "{metrics}");
    if let Some(dead) = lag(&metrics, &dead_id) {
        assert!(dead > 0, "{metrics}");
    }

    let dead_status = json!({ "query": "{ webhooks { id status disabledReason } }" });
    let disabled = loop {
        let seen = post_graphql(&client, &base, Some(ADMIN_KEY), &dead_status).await;
        let dead = seen["data"]["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|webhook| webhook["id"] == dead_id.as_str())
            .cloned();
        match dead {
            Some(dead) if dead["status"] == "DISABLED" => break dead,
            _ => {
                assert!(Instant::now() < deadline + Duration::from_secs(30), "never disabled: {seen}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(lag(&scrape().await, &dead_id), None, "a disabled webhook has no lag");
    let reason = disabled["disabledReason"].as_str().unwrap();
    assert!(reason.contains("cannot connect") && reason.contains("enable the webhook again"), "{reason}");
    let enabled = post_graphql(
        &client,
        &base,
        Some(ADMIN_KEY),
        &json!({ "query": "mutation($id: ID!) { enableWebhook(id: $id) { status disabledReason } }", "variables": { "id": dead_id } }),
    )
    .await;
    assert_ne!(enabled["data"]["enableWebhook"]["status"], "DISABLED", "{enabled}");
    assert!(enabled["data"]["enableWebhook"]["disabledReason"].is_null(), "{enabled}");

    drop(server);
    listening.abort();
}

//! The WebSocket transport (`graphql-transport-ws`, and the legacy `graphql-ws`) against the real service on
//! port 0, with real tokio-tungstenite clients: each close code with its reason, the caps per connection and per
//! key, a code on every error, and connections that never send `connection_init`.

use crate::support::{create_customer, fresh_store, EDITOR_KEY};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use stakegraph::config::{ApiKeys, Config};
use stakegraph::service::Application;
use stakegraph::ws::WsLimits;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A second key, of another role, for the per-key caps.
const VIEWER_KEY: &str = "viewer-key-for-the-websocket-tests";

/// The real service on a fresh store and a free loopback port, with the WebSocket `limits`; `demo` allows
/// anonymous reads (and seeds the demo graph first: the service is returned once it is ready).
async fn serve_ws(limits: WsLimits, demo: bool) -> (String, tempfile::TempDir) {
    let (store, dir) = fresh_store();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_keys: ApiKeys::parse(&format!("editor:{EDITOR_KEY},viewer:{VIEWER_KEY}")).unwrap(),
        demo,
        websocket: limits,
        ..Config::default()
    };
    let application = Application::build_with_store(store, &config).await.expect("service builds");
    let address = application.local_addr().to_string();
    tokio::spawn(application.run_until_stopped());
    crate::support::wait_until_ready(&reqwest::Client::new(), &format!("http://{address}")).await;
    (address, dir)
}

async fn connect_with(address: &str, protocol: &str) -> Socket {
    let mut request = format!("ws://{address}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.expect("websocket connects").0
}

async fn connect(address: &str) -> Socket {
    connect_with(address, "graphql-transport-ws").await
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.expect("the socket takes the message");
}

/// Sends `connection_init` with `key` and expects the acknowledgement.
async fn init(socket: &mut Socket, key: &str) {
    send(socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } })).await;
    let ack = next_message(socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
}

/// A connection acknowledged for `key`.
async fn connected(address: &str, key: &str) -> Socket {
    let mut socket = connect(address).await;
    init(&mut socket, key).await;
    socket
}

async fn subscribe(socket: &mut Socket, id: &str, query: &str) {
    send(socket, json!({ "id": id, "type": "subscribe", "payload": { "query": query } })).await;
}

const CHANGES: &str = "subscription { changes { cursor kind } }";

/// `changes` from the start of the log (`after` the cursor of position 0), for tests on a fresh store that expect
/// the event of a write made right after subscribing: without `after`, the subscription starts where the log stands
/// when the server gets to it, which may be after the write.
const CHANGES_FROM_START: &str = r#"subscription { changes(after: "Y2hhbmdlc3ww") { cursor kind } }"#;

async fn next_message(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a message within 20 s")
            .expect("the socket is open")
            .expect("a frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("expected a message, the server closed the socket: {frame:?}"),
            _ => continue,
        }
    }
}

/// Waits for the server to close the socket; returns the close code and reason.
async fn closed(socket: &mut Socket) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("closed within 30 s")
            .expect("a close frame before the end of the stream")
            .expect("a frame");
        match message {
            Message::Close(Some(frame)) => return (u16::from(frame.code), frame.reason.to_string()),
            Message::Close(None) => panic!("a close frame without a code"),
            Message::Text(text) => panic!("expected the connection to close, got {text}"),
            _ => continue,
        }
    }
}

/// A ping answered by a pong: the connection is open and has processed everything sent before the ping.
async fn round_trip(socket: &mut Socket) {
    send(socket, json!({ "type": "ping", "payload": { "n": 1 } })).await;
    let pong = next_message(socket).await;
    assert_eq!(pong, json!({ "type": "pong", "payload": { "n": 1 } }));
}

/// Asserts that every error of `errors` has a string `extensions.code`; returns the codes.
fn codes(errors: &Value) -> Vec<String> {
    let errors = errors.as_array().unwrap_or_else(|| panic!("a list of errors: {errors}"));
    assert!(!errors.is_empty());
    errors
        .iter()
        .map(|error| {
            let code = error["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no code: {error}"));
            assert!(!error["message"].as_str().unwrap_or_default().is_empty(), "no message: {error}");
            code.to_owned()
        })
        .collect()
}

fn limits() -> WsLimits {
    WsLimits::default()
}

#[tokio::test]
async fn subscribe_before_connection_init_closes_with_4401() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let mut socket = connect(&address).await;
    subscribe(&mut socket, "1", CHANGES).await;
    assert_eq!(closed(&mut socket).await, (4401, "Unauthorized".to_owned()));
}

#[tokio::test]
async fn a_refused_connection_init_closes_with_4403_and_says_why() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let mut socket = connect(&address).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "apiKey": "not-a-configured-key" } })).await;
    assert_eq!(
        closed(&mut socket).await,
        (
            4403,
            "Forbidden: the API key is not valid; check it against the keys configured in STAKEGRAPH_API_KEYS"
                .to_owned()
        )
    );

    let mut socket = connect(&address).await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    let (code, reason) = closed(&mut socket).await;
    assert_eq!(code, 4403);
    assert_eq!(
        reason,
        r#"Forbidden: no API key; send {"Authorization": "Bearer <key>"} in the connection_init payload"#
    );
}

#[tokio::test]
async fn no_connection_init_within_the_timeout_closes_with_4408() {
    let (address, _dir) = serve_ws(WsLimits { connection_init_timeout_ms: 300, ..limits() }, false).await;
    let mut socket = connect(&address).await;
    assert_eq!(closed(&mut socket).await, (4408, "Connection initialisation timeout".to_owned()));
}

#[tokio::test]
async fn a_duplicate_subscription_id_closes_with_4409() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let mut socket = connected(&address, EDITOR_KEY).await;
    subscribe(&mut socket, "same", CHANGES).await;
    subscribe(&mut socket, "same", CHANGES).await;
    assert_eq!(closed(&mut socket).await, (4409, "Subscriber for same already exists".to_owned()));
}

#[tokio::test]
async fn an_id_is_free_again_once_its_operation_completed() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let mut socket = connected(&address, EDITOR_KEY).await;
    // A query completes by itself; a subscription when the client sends `complete`.
    subscribe(&mut socket, "q", "{ __typename }").await;
    assert_eq!(
        next_message(&mut socket).await,
        json!({ "type": "next", "id": "q", "payload": { "data": { "__typename": "Query" } } })
    );
    assert_eq!(next_message(&mut socket).await, json!({ "type": "complete", "id": "q" }));
    subscribe(&mut socket, "q", CHANGES).await;
    send(&mut socket, json!({ "id": "q", "type": "complete" })).await;
    // Once the server has taken the `complete`, no result of the first "q" can follow (the write comes after).
    round_trip(&mut socket).await;
    subscribe(&mut socket, "q", CHANGES_FROM_START).await;
    create_customer(&address, "C-1").await;
    let next = next_message(&mut socket).await;
    assert_eq!((next["type"].as_str(), next["id"].as_str()), (Some("next"), Some("q")), "{next}");
    assert_eq!(next["payload"]["data"]["changes"]["kind"], "STAKEHOLDER_CREATED");
    // `complete` for an unknown id is ignored.
    send(&mut socket, json!({ "id": "never-started", "type": "complete" })).await;
    round_trip(&mut socket).await;
}

#[tokio::test]
async fn a_second_connection_init_closes_with_4429() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let mut socket = connected(&address, EDITOR_KEY).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "apiKey": EDITOR_KEY } })).await;
    assert_eq!(closed(&mut socket).await, (4429, "Too many initialisation requests".to_owned()));
}

#[tokio::test]
async fn invalid_messages_close_with_4400() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let cases = [
        ("this is not JSON", "Invalid message received: not a protocol message (expected ident at line 1 column 2)"),
        (
            r#"{"type": "hello"}"#,
            "Invalid message received: unknown type `hello`; graphql-transport-ws sends connection_init, subscribe, \
             complete, ping, pong",
        ),
        (
            r#"{"id": "1"}"#,
            "Invalid message received: not a protocol message (missing field `type` at line 1 column 11)",
        ),
        (
            r#"{"type": "subscribe", "payload": {"query": "{ __typename }"}}"#,
            "Invalid message received: `subscribe` needs an `id`",
        ),
        (
            r#"{"type": "subscribe", "id": "1"}"#,
            "Invalid message received: `subscribe` needs a `payload` with the `query`",
        ),
        (
            r#"{"type": "subscribe", "id": "1", "payload": "{ __typename }"}"#,
            // Cut to the 123 bytes a close reason may hold.
            "Invalid message received: the payload is not a GraphQL request (invalid type: string \"{ __typename }\", \
             expected struct Requ",
        ),
    ];
    for (message, reason) in cases {
        let mut socket = connected(&address, EDITOR_KEY).await;
        socket.send(Message::text(message)).await.unwrap();
        assert_eq!(closed(&mut socket).await, (4400, reason.to_owned()), "after {message}");
    }
    // Before `connection_init` too, and for the legacy protocol's names.
    let mut socket = connect(&address).await;
    send(&mut socket, json!({ "type": "start", "id": "1", "payload": { "query": "{ __typename }" } })).await;
    let (code, reason) = closed(&mut socket).await;
    assert_eq!(code, 4400);
    assert!(reason.starts_with("Invalid message received: unknown type `start`"), "{reason}");
}

#[tokio::test]
async fn a_message_past_the_size_limit_closes_with_1009() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let mut socket = connected(&address, EDITOR_KEY).await;
    let query = format!("{{ __typename }} # {}", "x".repeat(2 << 20));
    subscribe(&mut socket, "1", &query).await;
    let (code, reason) = closed(&mut socket).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("Message too long") && reason.ends_with("send smaller messages"), "{reason}");
}

#[tokio::test]
async fn a_connection_runs_at_most_its_cap_and_goes_on_past_it() {
    let (address, _dir) =
        serve_ws(WsLimits { max_subscriptions_per_connection: 2, max_subscriptions_per_key: 10, ..limits() }, false)
            .await;
    let mut socket = connected(&address, EDITOR_KEY).await;
    subscribe(&mut socket, "1", CHANGES_FROM_START).await;
    subscribe(&mut socket, "2", CHANGES_FROM_START).await;
    subscribe(&mut socket, "3", CHANGES_FROM_START).await;
    let refused = next_message(&mut socket).await;
    assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("error"), Some("3")), "{refused}");
    assert_eq!(codes(&refused["payload"]), ["LIMIT_EXCEEDED"]);
    let message = refused["payload"][0]["message"].as_str().unwrap();
    assert!(message.contains("`websocket.max_subscriptions_per_connection`"), "{message}");
    assert!(message.contains("runs 2 operations"), "{message}");

    // The socket stays open; completing one makes room.
    send(&mut socket, json!({ "id": "1", "type": "complete" })).await;
    subscribe(&mut socket, "3", CHANGES_FROM_START).await;
    round_trip(&mut socket).await;
    create_customer(&address, "C-1").await;
    let mut ids = vec![];
    for _ in 0..2 {
        let next = next_message(&mut socket).await;
        assert_eq!(next["type"], "next", "{next}");
        ids.push(next["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(ids, ["2", "3"]);
}

#[tokio::test]
async fn a_key_runs_at_most_its_cap_over_all_its_connections_and_a_closed_connection_frees_its_slots() {
    let (address, _dir) =
        serve_ws(WsLimits { max_subscriptions_per_connection: 2, max_subscriptions_per_key: 3, ..limits() }, false)
            .await;
    let mut first = connected(&address, EDITOR_KEY).await;
    subscribe(&mut first, "1", CHANGES_FROM_START).await;
    subscribe(&mut first, "2", CHANGES_FROM_START).await;
    round_trip(&mut first).await;
    let mut second = connected(&address, EDITOR_KEY).await;
    subscribe(&mut second, "1", CHANGES_FROM_START).await;
    subscribe(&mut second, "2", CHANGES_FROM_START).await;
    let refused = next_message(&mut second).await;
    assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("error"), Some("2")), "{refused}");
    assert_eq!(codes(&refused["payload"]), ["LIMIT_EXCEEDED"]);
    let message = refused["payload"][0]["message"].as_str().unwrap();
    assert!(message.contains("`websocket.max_subscriptions_per_key`"), "{message}");

    // Another key has its own allowance.
    let mut other = connected(&address, VIEWER_KEY).await;
    subscribe(&mut other, "1", CHANGES_FROM_START).await;
    subscribe(&mut other, "2", CHANGES_FROM_START).await;
    round_trip(&mut other).await;

    // Closing the first connection frees its two slots (before the server answers the close).
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = first.next().await {}
    subscribe(&mut second, "2", CHANGES_FROM_START).await;
    round_trip(&mut second).await;
    subscribe(&mut second, "3", CHANGES_FROM_START).await;
    let refused = next_message(&mut second).await;
    assert_eq!(refused["type"], "error", "the connection's own cap of 2 still holds: {refused}");
    let message = refused["payload"][0]["message"].as_str().unwrap();
    assert!(message.contains("`websocket.max_subscriptions_per_connection`"), "{message}");
    let mut third = connected(&address, EDITOR_KEY).await;
    subscribe(&mut third, "1", CHANGES_FROM_START).await;
    round_trip(&mut third).await;
    subscribe(&mut third, "2", CHANGES_FROM_START).await;
    let refused = next_message(&mut third).await;
    assert_eq!(refused["type"], "error", "the key is at 3 again: {refused}");

    create_customer(&address, "C-1").await;
    for socket in [&mut second, &mut third, &mut other] {
        let next = next_message(socket).await;
        assert_eq!(next["type"], "next", "{next}");
    }
}

#[tokio::test]
async fn anonymous_callers_under_demo_share_one_allowance() {
    let (address, _dir) = serve_ws(WsLimits { max_subscriptions_per_key: 1, ..limits() }, true).await;
    let mut first = connect(&address).await;
    send(&mut first, json!({ "type": "connection_init" })).await;
    assert_eq!(next_message(&mut first).await["type"], "connection_ack");
    subscribe(&mut first, "1", CHANGES).await;
    round_trip(&mut first).await;
    let mut second = connect(&address).await;
    send(&mut second, json!({ "type": "connection_init", "payload": {} })).await;
    assert_eq!(next_message(&mut second).await["type"], "connection_ack");
    subscribe(&mut second, "1", CHANGES).await;
    let refused = next_message(&mut second).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(codes(&refused["payload"]), ["LIMIT_EXCEEDED"]);
    // A key holder is not held back by them.
    let mut keyed = connected(&address, EDITOR_KEY).await;
    subscribe(&mut keyed, "1", CHANGES).await;
    round_trip(&mut keyed).await;
}

#[tokio::test]
async fn every_error_message_carries_a_code() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let mut socket = connected(&address, VIEWER_KEY).await;
    // 13 levels of fields, past the default `limits.max_depth` of 12.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {}{{ name }}{} }} }} }} }}",
        "{ ofType ".repeat(8),
        " }".repeat(8)
    );
    let operations = [
        // Refused before they run: an `error` message.
        ("syntax", "subscription { changes { cursor ", "error", "BAD_USER_INPUT"),
        ("unknown-field", "subscription { noSuchField }", "error", "BAD_USER_INPUT"),
        ("unknown-argument", "subscription { changes(since: 1) { cursor } }", "error", "BAD_USER_INPUT"),
        ("too-deep", deep.as_str(), "error", "LIMIT_EXCEEDED"),
        ("two-operations", "query A { __typename } query B { __typename }", "error", "BAD_USER_INPUT"),
        // Refused by their resolver: a `next` with the errors, then `complete`.
        ("bad-threshold", "subscription { strengthCrossed(threshold: 2) { cursor } }", "next", "BAD_USER_INPUT"),
        ("bad-cursor", "subscription { changes(after: \"nope\") { cursor } }", "next", "BAD_USER_INPUT"),
        (
            "viewer-writes",
            "mutation { createCustomer(input: {key: \"K\", name: \"N\", power: 0.5, interest: 0.5}) { id } }",
            "next",
            "FORBIDDEN",
        ),
    ];
    for (id, query, _, _) in operations {
        subscribe(&mut socket, id, query).await;
    }
    let mut outcomes = std::collections::HashMap::new();
    let mut completed = std::collections::HashSet::new();
    while outcomes.len() < operations.len() || completed.len() < 3 {
        let message = next_message(&mut socket).await;
        let id = message["id"].as_str().unwrap().to_owned();
        match message["type"].as_str().unwrap() {
            "error" => {
                let codes = codes(&message["payload"]);
                assert!(outcomes.insert(id, ("error", codes)).is_none(), "one error message: {message}");
            }
            "next" => {
                let codes = codes(&message["payload"]["errors"]);
                assert!(outcomes.insert(id, ("next", codes)).is_none(), "one result: {message}");
            }
            "complete" => {
                assert_eq!(outcomes.get(&id).map(|outcome| outcome.0), Some("next"), "no complete after an error");
                completed.insert(id);
            }
            other => panic!("unexpected {other}: {message}"),
        }
    }
    for (id, _, kind, code) in operations {
        let (got, codes) = &outcomes[id];
        assert_eq!((*got, codes[0].as_str()), (kind, code), "{id}: {codes:?}");
    }
    round_trip(&mut socket).await;
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_is_served_by_the_same_state_machine() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let mut socket = connect_with(&address, "graphql-ws").await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "apiKey": EDITOR_KEY } })).await;
    assert_eq!(next_message(&mut socket).await["type"], "connection_ack");
    send(&mut socket, json!({ "type": "start", "id": "1", "payload": { "query": CHANGES_FROM_START } })).await;
    create_customer(&address, "C-1").await;
    let data = next_message(&mut socket).await;
    assert_eq!((data["type"].as_str(), data["id"].as_str()), (Some("data"), Some("1")), "{data}");
    send(&mut socket, json!({ "type": "stop", "id": "1" })).await;
    assert_eq!(next_message(&mut socket).await, json!({ "type": "complete", "id": "1" }));
    send(&mut socket, json!({ "type": "start", "id": "2", "payload": { "query": "subscription { nope }" } })).await;
    let error = next_message(&mut socket).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(codes(&error["payload"]), ["BAD_USER_INPUT"]);
    send(&mut socket, json!({ "type": "connection_terminate" })).await;
    assert_eq!(closed(&mut socket).await.0, 1000);

    let mut refused = connect_with(&address, "graphql-ws").await;
    send(&mut refused, json!({ "type": "connection_init", "payload": { "apiKey": "wrong" } })).await;
    let error = next_message(&mut refused).await;
    assert_eq!(error["type"], "connection_error", "{error}");
    assert_eq!(error["payload"]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(closed(&mut refused).await.0, 4403);
}

#[tokio::test]
async fn an_upgrade_without_a_known_subprotocol_is_refused_with_a_coded_400() {
    let (address, _dir) = serve_ws(limits(), false).await;
    let request = format!("ws://{address}/graphql/ws").into_client_request().unwrap();
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(codes(&body["errors"]), ["BAD_USER_INPUT"]);
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

/// 1,100 connections that never send `connection_init` are all closed with 4408 once the timeout passes, and the
/// service answers meanwhile. (The process's open-file limit must allow 2 descriptors per connection: both ends are
/// in this process; it is raised to its hard limit here.)
#[tokio::test]
async fn connections_that_never_send_connection_init_are_all_closed_after_the_timeout() {
    const CONNECTIONS: usize = 1_100;
    raise_open_file_limit(2 * CONNECTIONS as u64 + 512);
    let (address, _dir) = serve_ws(WsLimits { connection_init_timeout_ms: 2_000, ..limits() }, false).await;
    let mut sockets = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        sockets.push(connect(&address).await);
    }
    let health = reqwest::get(format!("http://{address}/healthz")).await.expect("the service answers");
    assert_eq!(health.status(), 200);
    let closes = futures_util::future::join_all(sockets.iter_mut().map(closed)).await;
    assert!(closes.iter().all(|close| *close == (4408, "Connection initialisation timeout".to_owned())));
    let health = reqwest::get(format!("http://{address}/healthz")).await.expect("the service answers");
    assert_eq!(health.status(), 200);
}

/// Raises the soft open-file limit to at least `wanted` (up to the hard limit), for tests that open many sockets.
fn raise_open_file_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    assert!(limit.rlim_cur >= wanted, "the open-file limit ({}) is below the {wanted} this test needs", limit.rlim_cur);
}

#[tokio::test]
async fn a_query_over_the_socket_stops_at_the_request_deadline_and_a_subscription_outlives_it() {
    use stakegraph::store::GraphStore;
    let (store, _dir) = crate::support::demo_copy();
    let writer = store.clone();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_keys: ApiKeys::parse(&format!("editor:{EDITOR_KEY}")).unwrap(),
        limits: stakegraph::api::ApiLimits {
            request_timeout_ms: 1,
            betweenness_exact_below: 1_000_000,
            ..Default::default()
        },
        ..Config::default()
    };
    let application = Application::build_with_store(store, &config).await.expect("service builds");
    let address = application.local_addr().to_string();
    tokio::spawn(application.run_until_stopped());
    let mut socket = connected(&address, EDITOR_KEY).await;
    subscribe(&mut socket, "watch", CHANGES).await;
    round_trip(&mut socket).await;
    subscribe(&mut socket, "slow", "{ brokers(first: 50) { exact } }").await;
    let stopped = next_message(&mut socket).await;
    assert_eq!(stopped["id"], "slow", "{stopped}");
    let errors = &stopped["payload"].as_array().map_or(&stopped["payload"]["errors"], |_| &stopped["payload"]);
    assert_eq!(codes(errors), ["LIMIT_EXCEEDED"], "{stopped}");
    assert_eq!(errors[0]["extensions"]["limit"], "request_timeout_ms", "{stopped}");
    // The subscription started before has run far past 1 ms and still delivers (the write goes through the store's
    // write path directly: over HTTP it would be stopped at 1 ms too).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let write = vec![crate::conformance::customer("after-the-deadline")];
    writer.apply(write, chrono::Utc::now()).await.expect("the store takes the write");
    loop {
        let event = next_message(&mut socket).await;
        if event["id"] == "slow" {
            continue; // the stopped query's `complete`
        }
        assert_eq!(event["id"], "watch", "{event}");
        assert_eq!(event["type"], "next", "{event}");
        break;
    }
}

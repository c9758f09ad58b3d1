//! Subscriptions over a real WebSocket (`graphql-transport-ws`) against the real service on port 0.

use crate::support::{
    create_customer, create_customer_named, fresh_store, operation, post_graphql, run_ok, serve, EDITOR_KEY,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use stakegraph::config::ApiKeys;
use stakegraph::domain::Role;
use std::collections::HashMap;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn spawn() -> (String, tempfile::TempDir) {
    serve(|_| {}).await
}

/// Connects, authenticates in `connection_init` and starts `changes(after)`.
async fn subscribe(address: &str, key: &str, after: Option<&str>) -> Socket {
    let mut request = format!("ws://{address}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket connects");
    start_changes(socket, key, after, "cursor kind stakeholders").await
}

/// Authenticates `socket` and starts `changes(after) { <fields> }` on it.
async fn start_changes(mut socket: Socket, key: &str, after: Option<&str>, fields: &str) -> Socket {
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } });
    socket.send(Message::text(init.to_string())).await.unwrap();
    let ack = next_message(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let query = format!("subscription($after: String) {{ changes(after: $after) {{ {fields} }} }}");
    let start =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": { "after": after } } });
    socket.send(Message::text(start.to_string())).await.unwrap();
    socket
}

pub(crate) async fn next_message(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Opens a `graphql-transport-ws` connection whose `connection_init` (with `apiKey` `key`) was acknowledged.
pub(crate) async fn connect_as(address: &str, key: &str) -> Socket {
    let mut request = format!("ws://{address}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "apiKey": key } });
    socket.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(next_message(&mut socket).await["type"], "connection_ack");
    socket
}

/// Creates the private customer SECRET-1, "Secret Holdings", through the service at `address`, as the editor.
async fn create_secret_customer(address: &str) {
    let private = json!({
        "query": "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
        "variables": { "input": { "key": "SECRET-1", "name": "Secret Holdings", "private": true } }
    });
    let response =
        post_graphql(&reqwest::Client::new(), &format!("http://{address}"), Some(EDITOR_KEY), &private).await;
    assert!(response.get("errors").is_none(), "{response:#}");
}

/// The next `changes` event: (cursor, kind).
async fn next_event(socket: &mut Socket) -> (String, String) {
    let message = next_message(socket).await;
    assert_eq!(message["type"], "next", "{message}");
    let event = &message["payload"]["data"]["changes"];
    (event["cursor"].as_str().unwrap().to_owned(), event["kind"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_subscriber_resumes_from_its_last_cursor_without_loss_or_duplicates() {
    let (address, _dir) = spawn().await;
    let start = start_cursor(&address).await;
    let mut socket = subscribe(&address, EDITOR_KEY, Some(&start)).await;
    for key in ["C-1", "C-2", "C-3"] {
        create_customer(&address, key).await;
    }
    let mut cursors = Vec::new();
    for _ in 0..3 {
        let (cursor, kind) = next_event(&mut socket).await;
        assert_eq!(kind, "STAKEHOLDER_CREATED");
        cursors.push(cursor);
    }
    socket.close(None).await.unwrap();

    // While disconnected, more changes commit; the resumed subscription replays exactly those, then goes live.
    for key in ["C-4", "C-5"] {
        create_customer(&address, key).await;
    }
    let mut resumed = subscribe(&address, EDITOR_KEY, Some(&cursors[2])).await;
    create_customer(&address, "C-6").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_event(&mut resumed).await.0);
    }
    let replay = "query($after: String) { changes(after: $after, first: 10) { edges { cursor } } }";
    let logged = post_graphql(
        &reqwest::Client::new(),
        &format!("http://{address}"),
        Some(EDITOR_KEY),
        &json!({ "query": replay, "variables": { "after": cursors[2] } }),
    )
    .await;
    let expected: Vec<String> = logged["data"]["changes"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["cursor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 3);
    assert_eq!(seen, expected, "the two missed events, then the live one, in log order");
}

#[tokio::test]
async fn a_connection_without_a_valid_key_is_refused() {
    let (address, _dir) = spawn().await;
    let mut request = format!("ws://{address}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket connects");
    let init =
        json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-configured-key-at-all" } });
    socket.send(Message::text(init.to_string())).await.unwrap();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                }
                Some(Ok(Message::Text(text))) => panic!("expected the connection to close, got {text}"),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed within 10 s");
    // A refused `connection_init` closes with 4403 (graphql-transport-ws) and the reason.
    let (code, reason) = closed.expect("a close frame");
    assert_eq!(code, 4403);
    assert!(reason.contains("API key"), "the reason says what to fix: {reason}");
}

/// Two `stakegraph serve` processes on one database file: every change made through one reaches a subscriber of
/// the other, in order, through the change log (each process polls it every 250 ms).
#[tokio::test]
async fn a_change_through_one_process_reaches_a_subscriber_of_another_on_the_same_database() {
    use crate::durability::{serve as serve_process, KEY};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let (mut writer, writer_base) = serve_process(&db);
    let (mut reader, reader_base) = serve_process(&db);
    let client = reqwest::Client::new();
    let mutation = "mutation($key: String!) { createSupplier(input: { key: $key, name: $key }) { id } }";
    let first = json!({ "query": mutation, "variables": { "key": "S-START" } });
    post_graphql(&client, &writer_base, Some(KEY), &first).await;
    let log = json!({ "query": "{ changes(first: 1) { edges { cursor } } }" });
    let start =
        post_graphql(&client, &writer_base, Some(KEY), &log).await["data"]["changes"]["edges"][0]["cursor"].clone();
    let mut socket = subscribe(reader_base.trim_start_matches("http://"), KEY, start.as_str()).await;
    let mut took = Vec::new();
    for n in 0..10 {
        let started = std::time::Instant::now();
        let body = json!({ "query": mutation, "variables": { "key": format!("S-{n}") } });
        let response = post_graphql(&client, &writer_base, Some(KEY), &body).await;
        let id = response["data"]["createSupplier"]["id"].clone();
        let message = next_message(&mut socket).await;
        took.push(started.elapsed());
        let event = &message["payload"]["data"]["changes"];
        assert_eq!(event["kind"], "STAKEHOLDER_CREATED", "{message}");
        assert_eq!(event["stakeholders"], json!([id]), "the events arrive in order, one per change");
    }
    took.sort();
    eprintln!("delivered across processes: median {:?}, slowest {:?} (of 10)", took[5], took[9]);
    for child in [&mut writer, &mut reader] {
        child.kill().ok();
        child.wait().ok();
    }
}

/// A viewer's subscription keeps every event in order but withholds everything but the cursor of one touching a
/// private stakeholder; a filtered subscription never matches such an event (that would tell its kind).
#[tokio::test]
async fn a_viewer_subscriber_gets_private_stakeholders_masked() {
    let viewer_key = "viewer-key-for-the-subscription-test";
    let (address, _dir) = serve(|config| {
        config.api_keys = ApiKeys::parse(&format!("editor:{EDITOR_KEY},viewer:{viewer_key}")).unwrap();
    })
    .await;
    let start = start_cursor(&address).await;
    let mut socket = connect_as(&address, viewer_key).await;
    for (id, variables) in [
        ("all", json!({ "after": start })),
        ("created", json!({ "after": start, "filter": { "kinds": ["STAKEHOLDER_CREATED"] } })),
    ] {
        let subscribe = json!({ "id": id, "type": "subscribe", "payload": { "query": operation("changes_feed.graphql"), "variables": variables } });
        socket.send(Message::text(subscribe.to_string())).await.unwrap();
    }

    create_customer(&address, "PUBLIC-1").await;
    create_secret_customer(&address).await;
    create_customer(&address, "PUBLIC-2").await;

    // Three events for the unfiltered subscription, two for the filtered one, interleaved.
    let mut by_subscription: HashMap<String, Vec<Value>> = HashMap::new();
    for _ in 0..5 {
        let message = next_message(&mut socket).await;
        assert_eq!(message["type"], "next", "{message}");
        assert!(!message.to_string().contains("Secret Holdings"), "{message}");
        let event = message["payload"]["data"]["changes"].clone();
        by_subscription.entry(message["id"].as_str().unwrap().to_owned()).or_default().push(event);
    }
    let all = &by_subscription["all"];
    assert_eq!(all.iter().map(|event| event["masked"].clone()).collect::<Vec<_>>(), [false, true, false]);
    assert_eq!(all[0]["stakeholderNow"]["name"], "Customer PUBLIC-1");
    let hidden = &all[1];
    assert!(hidden["cursor"].is_string(), "the masked event keeps its place");
    for field in ["kind", "at", "changedFields", "stakeholderNow", "relationshipNow", "program"] {
        assert!(hidden[field].is_null(), "{field} of a masked event: {hidden}");
    }
    let created: Vec<&Value> =
        by_subscription["created"].iter().map(|event| &event["stakeholderNow"]["name"]).collect();
    assert_eq!(created, [&json!("Customer PUBLIC-1"), &json!("Customer PUBLIC-2")]);
}

/// Subscriptions over WebSockets share the payload of each event with the other subscribers of the same document
/// and variables (`api::fanout`), but only with those of the same role: a viewer and an editor sending the very
/// same subscription get a masked and a full event, two viewers the same masked one; and subscribers resuming from
/// different cursors each get their own events once, in log order.
#[tokio::test]
async fn subscribers_of_one_document_share_payloads_only_with_their_own_role() {
    let viewer_key = "viewer-key-for-the-subscription-test";
    let (address, _dir) = serve(|config| {
        config.api_keys = ApiKeys::parse(&format!("editor:{EDITOR_KEY},viewer:{viewer_key}")).unwrap();
    })
    .await;
    let start = start_cursor(&address).await;
    create_customer(&address, "BEFORE").await;
    let logged = logged_cursors(&address, Some(start.clone())).await;
    let connect = |key: &'static str, after: String| {
        let address = address.clone();
        async move {
            let mut socket = connect_as(&address, key).await;
            let payload = json!({ "query": operation("changes_feed.graphql"), "variables": { "after": after } });
            let subscribe = json!({ "id": "feed", "type": "subscribe", "payload": payload });
            socket.send(Message::text(subscribe.to_string())).await.unwrap();
            socket
        }
    };
    // Two viewers (one resuming before BEFORE, one after it) and an editor, on one document.
    let mut viewer = connect(viewer_key, start.clone()).await;
    let mut later_viewer = connect(viewer_key, logged[0].clone()).await;
    let mut editor = connect(EDITOR_KEY, start.clone()).await;
    assert_eq!(next_message(&mut viewer).await["payload"]["data"]["changes"]["cursor"], json!(logged[0]));
    assert_eq!(next_message(&mut editor).await["payload"]["data"]["changes"]["cursor"], json!(logged[0]));
    // Time for each feed to reach the head and attach to its class (without it they read the log alone, which
    // must give the same answers).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // Live: a public change, a private one, a public one.
    create_customer(&address, "PUBLIC-1").await;
    create_secret_customer(&address).await;
    create_customer(&address, "PUBLIC-2").await;
    let live = logged_cursors(&address, Some(logged[0].clone())).await;
    assert_eq!(live.len(), 3);

    let mut read = Vec::new();
    for socket in [&mut viewer, &mut later_viewer, &mut editor] {
        let mut received = Vec::new();
        for _ in 0..3 {
            let message = next_message(socket).await;
            assert_eq!((&message["type"], &message["id"]), (&json!("next"), &json!("feed")), "{message}");
            received.push(message["payload"]["data"]["changes"].clone());
        }
        read.push(received);
    }
    for received in &read {
        let cursors: Vec<&Value> = received.iter().map(|event| &event["cursor"]).collect();
        assert_eq!(cursors, live.iter().collect::<Vec<_>>(), "every event once, in log order");
    }
    let (viewer, later_viewer, editor) = (&read[0], &read[1], &read[2]);
    assert_eq!(viewer, later_viewer, "two viewers see the same events");
    let masked: Vec<&Value> = viewer.iter().map(|event| &event["masked"]).collect();
    assert_eq!(masked, [&json!(false), &json!(true), &json!(false)]);
    assert!(!json!(viewer).to_string().contains("Secret Holdings"), "{viewer:?}");
    for field in ["kind", "at", "changedFields", "stakeholderNow", "relationshipNow", "program"] {
        assert!(viewer[1][field].is_null(), "{field} of a masked event: {}", viewer[1]);
    }
    assert_eq!(editor[1]["masked"], false);
    assert_eq!(editor[1]["stakeholderNow"]["name"], "Secret Holdings", "the editor sees it in full");
    assert_eq!(editor[0], viewer[0], "a public event is the same for both");
}

/// `relationshipChanged(stakeholder)` streams only the changes to that stakeholder's relationships, and a
/// `changes` filter on relationship types only those of the types asked for.
#[tokio::test]
async fn relationship_changes_of_one_stakeholder_and_filters_by_type() {
    let (address, _dir) = spawn().await;
    for key in ["A", "B", "C"] {
        create_customer(&address, key).await;
    }
    let id = |n: i64| stakegraph::api::ids::GlobalId::Stakeholder(stakegraph::domain::StakeholderId(n)).encode().0;
    let mut request = format!("ws://{address}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {EDITOR_KEY}") } });
    socket.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(next_message(&mut socket).await["type"], "connection_ack");
    let after = logged_cursors(&address, None).await.pop();
    let of_a = "subscription($a: ID!, $after: String) { relationshipChanged(stakeholder: $a, after: $after) { kind stakeholders relationship } }";
    let refers = "subscription($after: String) { changes(after: $after, filter: { relationshipTypes: [REFERS] }) { kind stakeholders relationship } }";
    for (subscription, query, variables) in
        [("a", of_a, json!({ "a": id(1), "after": after })), ("refers", refers, json!({ "after": after }))]
    {
        let start =
            json!({ "id": subscription, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        socket.send(Message::text(start.to_string())).await.unwrap();
    }

    let upsert = |from: i64, to: i64, kind: &str| {
        json!({
            "query": format!("mutation($from: ID!, $to: ID!) {{ upsertRelationship(input: {{ from: $from, to: $to, type: {kind} }}) {{ relationship {{ id }} }} }}"),
            "variables": { "from": id(from), "to": id(to) }
        })
    };
    let client = reqwest::Client::new();
    for (from, to, kind) in [(2, 3, "KNOWS"), (1, 2, "KNOWS"), (2, 3, "REFERS"), (3, 1, "REFERS")] {
        let response =
            post_graphql(&client, &format!("http://{address}"), Some(EDITOR_KEY), &upsert(from, to, kind)).await;
        assert!(response.get("errors").is_none(), "{response:#}");
    }
    let mut received: Vec<(String, Vec<Value>)> = Vec::new();
    for _ in 0..4 {
        let message = next_message(&mut socket).await;
        assert_eq!(message["type"], "next", "{message}");
        let subscription = message["id"].as_str().unwrap().to_owned();
        let field = if subscription == "a" { "relationshipChanged" } else { "changes" };
        let event = &message["payload"]["data"][field];
        assert_eq!(event["kind"], "RELATIONSHIP_CREATED");
        received.push((subscription, event["stakeholders"].as_array().unwrap().clone()));
    }
    let of = |name: &str| -> Vec<Vec<Value>> {
        received.iter().filter(|(subscription, _)| subscription == name).map(|(_, ends)| ends.clone()).collect()
    };
    // A's subscription sees (1,2) and (3,1); the REFERS filter sees (2,3) and (3,1); neither sees the first KNOWS.
    assert_eq!(of("a"), vec![vec![json!(id(1)), json!(id(2))], vec![json!(id(3)), json!(id(1))]]);
    assert_eq!(of("refers"), vec![vec![json!(id(2)), json!(id(3))], vec![json!(id(3)), json!(id(1))]]);
}

/// Makes a first change and returns its cursor: subscribing after it, a test never races the subscription's start.
async fn start_cursor(address: &str) -> String {
    create_customer(address, "START").await;
    logged_cursors(address, None).await.pop().expect("the first change")
}

/// Every cursor in the change log after `after` (from the start without it), paged through the `changes` query.
async fn logged_cursors(address: &str, mut after: Option<String>) -> Vec<String> {
    let query =
        "query($after: String) { changes(after: $after, first: 100) { edges { cursor } pageInfo { hasNextPage } } }";
    let client = reqwest::Client::new();
    let mut cursors = Vec::new();
    loop {
        let body = json!({ "query": query, "variables": { "after": after } });
        let page = post_graphql(&client, &format!("http://{address}"), Some(EDITOR_KEY), &body).await;
        let changes = &page["data"]["changes"];
        cursors.extend(
            changes["edges"].as_array().unwrap().iter().map(|edge| edge["cursor"].as_str().unwrap().to_owned()),
        );
        after = cursors.last().cloned();
        if changes["pageInfo"]["hasNextPage"] != true {
            return cursors;
        }
    }
}

/// A hundred rounds of: subscribe with the last cursor received, let a few changes commit, read a random part of
/// what is due, drop or close the connection at that point, let a few more changes commit. Every event arrives
/// exactly once, in log order.
#[tokio::test]
async fn resuming_after_100_random_disconnects_loses_and_repeats_nothing() {
    use rand::{Rng, SeedableRng};
    let (address, _dir) = spawn().await;
    create_customer(&address, "START").await;
    let start = logged_cursors(&address, None).await.pop().expect("the first change");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(100);
    let (mut last, mut received, mut made) = (start.clone(), Vec::new(), 0usize);
    for round in 0..100 {
        let mut socket = subscribe(&address, EDITOR_KEY, Some(&last)).await;
        for _ in 0..rng.gen_range(0..4) {
            made += 1;
            create_customer(&address, &format!("LIVE-{round}-{made}")).await;
        }
        for _ in 0..rng.gen_range(0..=made - received.len()) {
            let (cursor, _) = next_event(&mut socket).await;
            received.push(cursor.clone());
            last = cursor;
        }
        if rng.gen_bool(0.5) {
            socket.close(None).await.ok();
        } else {
            drop(socket);
        }
        for _ in 0..rng.gen_range(0..3) {
            made += 1;
            create_customer(&address, &format!("AWAY-{round}-{made}")).await;
        }
    }
    let mut socket = subscribe(&address, EDITOR_KEY, Some(&last)).await;
    while received.len() < made {
        received.push(next_event(&mut socket).await.0);
    }
    create_customer(&address, "END").await;
    received.push(next_event(&mut socket).await.0);
    let logged = logged_cursors(&address, Some(start)).await;
    assert!(made > 150, "the rounds made {made} changes");
    assert_eq!(received.len(), logged.len(), "no event lost or repeated");
    assert_eq!(received, logged, "every event once, in log order");
}

/// Connects with a 4 KiB receive buffer, so that a client that stops reading soon blocks the server's writes.
async fn connect_with_a_small_buffer(address: &str) -> Socket {
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(address.parse().unwrap()).await.expect("tcp connects");
    let mut request = format!("ws://{address}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (socket, _) = tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .expect("websocket connects");
    socket
}

/// A subscriber that stops reading holds up no mutation (every one completes while the server cannot write to it);
/// within `max_subscriber_lag_seconds` it is caught up from the log when it reads again, and past it the
/// subscription ends with `LIMIT_EXCEEDED` and a `resumeAfter` cursor from which a new subscription receives every
/// remaining event exactly once.
#[tokio::test]
async fn a_subscriber_that_stops_reading_holds_up_no_writer_and_resumes_after_the_lag_limit() {
    let (address, _dir) = serve(|config| config.limits.max_subscriber_lag_seconds = 2).await;
    create_customer(&address, "START").await;
    let start = logged_cursors(&address, None).await.pop().expect("the first change");
    // Each event repeats its payload under 30 aliases (about 15 KB), so that the socket buffers fill quickly.
    let fields = format!("cursor kind {}", (0..30).map(|n| format!("p{n}: payload")).collect::<Vec<_>>().join(" "));
    let fields = fields.as_str();
    let mut stalled =
        start_changes(connect_with_a_small_buffer(&address).await, EDITOR_KEY, Some(&start), fields).await;
    let mut brief = start_changes(connect_with_a_small_buffer(&address).await, EDITOR_KEY, Some(&start), fields).await;

    // Within the limit: `brief` reads nothing while 30 changes commit (well under 2 s), then gets all of them.
    let name = "N".repeat(200);
    for n in 0..30 {
        create_customer_named(&address, &format!("A-{n}"), &name).await;
    }
    for _ in 0..30 {
        assert_eq!(next_message(&mut brief).await["type"], "next");
    }
    drop(brief);

    // Past the limit: 400 more changes commit while `stalled` still reads nothing, and every mutation returns; then
    // it stays away long enough for the next event it is due to be more than 2 s old.
    let mut took = Vec::new();
    for n in 0..400 {
        let started = std::time::Instant::now();
        create_customer_named(&address, &format!("B-{n}"), &name).await;
        took.push(started.elapsed());
    }
    took.sort();
    eprintln!("mutations beside a subscriber that stopped reading: median {:?}, slowest {:?}", took[200], took[399]);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;

    // When it reads again it gets what the server could write before its buffers filled, then the error.
    let mut received = Vec::new();
    let resume_after = loop {
        let message = next_message(&mut stalled).await;
        assert_eq!(message["type"], "next", "{message}");
        if let Some(error) = message["payload"]["errors"].get(0) {
            assert_eq!(error["extensions"]["code"], "LIMIT_EXCEEDED", "{error}");
            assert!(error["message"].as_str().unwrap().contains("max_subscriber_lag_seconds"), "{error}");
            break error["extensions"]["resumeAfter"].as_str().expect("a cursor to resume from").to_owned();
        }
        received.push(message["payload"]["data"]["changes"]["cursor"].as_str().unwrap().to_owned());
    };
    assert_eq!(next_message(&mut stalled).await["type"], "complete", "the subscription ends after the error");
    eprintln!("the stalled subscriber received {} events, then the lag error", received.len());
    assert_eq!(Some(&resume_after), received.last().or(Some(&start)), "resume after the last event received");

    let mut resumed = subscribe(&address, EDITOR_KEY, Some(&resume_after)).await;
    while received.len() < 430 {
        received.push(next_event(&mut resumed).await.0);
    }
    assert_eq!(received, logged_cursors(&address, Some(start)).await, "every event once, in log order");
}

/// `strengthCrossed` over an engine whose clock the test sets: a strength hovering inside the hysteresis band
/// fires nothing, each move past the band fires once, decay alone fires once when the clock moves, and resuming
/// reports only what the cursor does not settle.
#[tokio::test]
async fn strength_crossed_fires_once_per_crossing_with_hysteresis_including_decay_alone() {
    use chrono::{DateTime, Duration, Utc};
    use stakegraph::api::{build_schema_on, ApiLimits};
    use stakegraph::engine::Engine;
    use std::sync::{Arc, Mutex};

    let (store, _dir) = fresh_store();
    let started = Utc::now();
    let now = Arc::new(Mutex::new(started));
    let clock = now.clone();
    let engine =
        Arc::new(Engine::new(store, Arc::new(Default::default())).with_clock(Arc::new(move || *clock.lock().unwrap())));
    let schema = build_schema_on(engine.clone(), ApiLimits::default(), false);

    let create = "mutation($key: String!) { createCustomer(input: { key: $key, name: $key }) { id } }";
    let a = run_ok(&schema, create, json!({ "key": "A" })).await["createCustomer"]["id"].clone();
    let b = run_ok(&schema, create, json!({ "key": "B" })).await["createCustomer"]["id"].clone();
    let upsert = "mutation($from: ID!, $to: ID!, $trust: Float) { upsertRelationship(input: { from: $from, to: $to, type: KNOWS, trust: $trust }) { relationship { id } } }";
    let set_trust = |trust: f64| json!({ "from": a, "to": b, "trust": trust });
    let relationship =
        run_ok(&schema, upsert, set_trust(0.5)).await["upsertRelationship"]["relationship"]["id"].clone();
    let meetings: Vec<Value> = (1..=6)
        .map(|day| json!({ "relationship": relationship, "at": (started - Duration::days(day)).to_rfc3339(), "channel": "MEETING", "direction": if day % 2 == 0 { "INBOUND" } else { "OUTBOUND" }, "sentiment": 0.5 }))
        .collect();
    let record = "mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count } }";
    run_ok(&schema, record, json!({ "input": { "interactions": meetings } })).await;

    // The strength is linear in trust: s(x) = s(0.5) + w·(x − 0.5). Put the threshold where trust 0.6 puts it.
    let strength_at = |at: DateTime<Utc>| {
        let schema = &schema;
        let relationship = relationship.clone();
        async move {
            let query = "query($id: ID!, $at: DateTime) { node(id: $id) { ... on Relationship { strength(asOf: $at) { score components { name weight } } } } }";
            run_ok(schema, query, json!({ "id": relationship, "at": at.to_rfc3339() })).await["node"]["strength"]
                .clone()
        }
    };
    let strength = strength_at(started).await;
    let weight = strength["components"].as_array().unwrap().iter().find(|c| c["name"] == "TRUST").unwrap()["weight"]
        .as_f64()
        .unwrap();
    let hysteresis = 0.01;
    let threshold = strength["score"].as_f64().unwrap() + weight * 0.1;
    let trust_for = |strength_past_threshold: f64| 0.6 + strength_past_threshold / weight;
    assert!(trust_for(3.0 * hysteresis) <= 1.0, "trust weight {weight} too small for this test");

    let subscribe = |after: Option<String>| {
        let variables = json!({ "threshold": threshold, "hysteresis": hysteresis, "after": after });
        subscribe_in_process(&schema, &operation("weakening_relationships.graphql"), variables, Role::Admin)
    };
    let crossing = |message: &Value| {
        let crossings = message["crossings"].as_array().unwrap();
        assert_eq!(crossings.len(), 1, "{message}");
        assert_eq!(crossings[0]["relationship"], relationship);
        (crossings[0]["direction"].as_str().unwrap().to_owned(), crossings[0]["cause"].as_str().unwrap().to_owned())
    };

    let mut watching = subscribe(None);
    quiet(&mut watching).await;
    // Hovering inside the band around the threshold: nothing, however often it moves across the threshold itself.
    for past in [0.5, -0.5, 0.5, -0.5] {
        run_ok(&schema, upsert, set_trust(trust_for(past * hysteresis))).await;
        quiet(&mut watching).await;
    }
    // Out of the band above: one crossing. Back into the band, across the threshold: nothing.
    run_ok(&schema, upsert, set_trust(trust_for(2.0 * hysteresis))).await;
    let rose = next(&mut watching).await;
    assert_eq!(crossing(&rose), ("ROSE_ABOVE".to_owned(), "CHANGE".to_owned()));
    run_ok(&schema, upsert, set_trust(trust_for(-0.5 * hysteresis))).await;
    quiet(&mut watching).await;
    run_ok(&schema, upsert, set_trust(trust_for(0.5 * hysteresis))).await;
    quiet(&mut watching).await;

    // Time alone: the first whole number of days after which the interactions have decayed the strength out of
    // the band below (soon enough that full trust can still lift it above the band afterwards).
    let mut days = 1;
    let (later, decayed) = loop {
        let later = started + Duration::days(days);
        let decayed = strength_at(later).await["score"].as_f64().unwrap();
        if decayed < threshold - 1.2 * hysteresis {
            break (later, decayed);
        }
        assert!(days < 3_650, "ten years of decay leave {decayed}");
        days += 1;
    };
    assert!(
        decayed + weight * (1.0 - trust_for(0.5 * hysteresis)) > threshold + hysteresis,
        "full trust lifts it back"
    );
    *now.lock().unwrap() = later;
    engine.catch_up().await.expect("the decay sweep");
    let fell = next(&mut watching).await;
    assert_eq!(crossing(&fell), ("FELL_BELOW".to_owned(), "DECAY".to_owned()));
    assert_eq!(fell["asOf"].as_str().map(|at| DateTime::parse_from_rfc3339(at).unwrap()), Some(later.into()));
    // The next sweep, eleven minutes on, finds it a little weaker but still below: nothing new.
    *now.lock().unwrap() = later + Duration::minutes(11);
    engine.catch_up().await.expect("the next decay sweep");
    assert_eq!(engine.loaded().unwrap().as_of(), later + Duration::minutes(11), "the sweep ran");
    quiet(&mut watching).await;

    // Resuming after the decay message: the cursor settles the side, so nothing is repeated.
    let mut after_fall = subscribe(fell["cursor"].as_str().map(str::to_owned));
    quiet(&mut after_fall).await;
    // Resuming after the rise: the relationship changed since, so its side now is reported once, as RESUME.
    let mut after_rise = subscribe(rose["cursor"].as_str().map(str::to_owned));
    assert_eq!(crossing(&next(&mut after_rise).await), ("FELL_BELOW".to_owned(), "RESUME".to_owned()));

    // One more rise reaches all three subscriptions once each.
    run_ok(&schema, upsert, set_trust(1.0)).await;
    for stream in [&mut watching, &mut after_fall, &mut after_rise] {
        assert_eq!(crossing(&next(stream).await), ("ROSE_ABOVE".to_owned(), "CHANGE".to_owned()));
        quiet(stream).await;
    }
}

/// A viewer's `strengthCrossed` leaves out relationships with a private end; an admin's includes them.
#[tokio::test]
async fn strength_crossed_leaves_out_private_relationships_for_viewers() {
    let (store, _dir) = fresh_store();
    let schema = crate::support::schema(store);
    let query =
        "subscription { strengthCrossed(threshold: 0.01, hysteresis: 0) { crossings { from to direction cause } } }";
    let subscribe = |role: Role| subscribe_in_process(&schema, query, json!({}), role);
    let create = "mutation($key: String!, $private: Boolean) { createCustomer(input: { key: $key, name: $key, private: $private }) { id } }";
    let id = |response: Value| response["createCustomer"]["id"].clone();
    let secret = id(run_ok(&schema, create, json!({ "key": "SECRET", "private": true })).await);
    let (one, two) = (
        id(run_ok(&schema, create, json!({ "key": "ONE", "private": false })).await),
        id(run_ok(&schema, create, json!({ "key": "TWO", "private": false })).await),
    );
    let mut viewer = subscribe(Role::Viewer);
    let mut admin = subscribe(Role::Admin);
    // Start both subscriptions before the changes (a stream starts when first polled).
    for stream in [&mut viewer, &mut admin] {
        quiet(stream).await;
    }
    let upsert = "mutation($from: ID!, $to: ID!) { upsertRelationship(input: { from: $from, to: $to, type: KNOWS, trust: 0.9 }) { created } }";
    run_ok(&schema, upsert, json!({ "from": secret, "to": one })).await;
    run_ok(&schema, upsert, json!({ "from": one, "to": two })).await;
    // Neither stream was read between the two changes, so each evaluates both at once: one message each.
    let rose =
        |from: &Value, to: &Value| json!({ "from": from, "to": to, "direction": "ROSE_ABOVE", "cause": "CHANGE" });
    assert_eq!(next(&mut admin).await["crossings"], json!([rose(&secret, &one), rose(&one, &two)]));
    assert_eq!(
        next(&mut viewer).await["crossings"],
        json!([rose(&one, &two)]),
        "the viewer gets only the public relationship"
    );
}

/// A subscription run in-process on `schema` as `role`: its stream of responses.
type Responses = futures_util::stream::BoxStream<'static, async_graphql::Response>;

fn subscribe_in_process(
    schema: &stakegraph::api::StakegraphSchema,
    query: &str,
    variables: Value,
    role: Role,
) -> Responses {
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables))
        .data(stakegraph::api::Caller::Key(role));
    Box::pin(async_graphql::Executor::execute_stream(schema, request, None))
}

/// The next `strengthCrossed` message, within 10 s.
async fn next(stream: &mut Responses) -> Value {
    next_data(stream).await["strengthCrossed"].clone()
}

/// The next message's `data`, within 10 s.
async fn next_data(stream: &mut Responses) -> Value {
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .expect("a message within 10 s")
        .expect("the stream is open");
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    response.data.into_json().unwrap()
}

/// Fails if a message arrives within 300 ms.
async fn quiet(stream: &mut Responses) {
    if let Ok(message) = tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await {
        panic!("expected no crossing, got {:?}", message.map(|response| response.data));
    }
}

/// A subscriber behind the engine's recent tail (here five entries long) replays from the store, then reads the
/// tail and goes live: every event once, in log order.
#[tokio::test]
async fn a_replay_from_the_store_continues_from_the_recent_tail_without_a_seam() {
    use stakegraph::api::{build_schema_on, ApiLimits};
    use stakegraph::engine::Engine;
    use std::sync::Arc;

    let (store, _dir) = fresh_store();
    let engine = Arc::new(Engine::new(store, Arc::new(Default::default())).with_recent_capacity(5));
    let schema = build_schema_on(engine.clone(), ApiLimits::default(), false);
    engine.load().await.expect("the projection");
    let create = "mutation($key: String!) { createCustomer(input: { key: $key, name: $key }) { id } }";
    for n in 0..20 {
        run_ok(&schema, create, json!({ "key": format!("K-{n}") })).await;
    }
    let page = "query($after: String) { changes(after: $after, first: 100) { edges { cursor } } }";
    let cursors = |data: Value| -> Vec<Value> {
        data["changes"]["edges"].as_array().unwrap().iter().map(|edge| edge["cursor"].clone()).collect()
    };
    let third = cursors(run_ok(&schema, page, json!({})).await)[2].clone();

    let query = "subscription($after: String) { changes(after: $after) { cursor } }";
    let mut stream = subscribe_in_process(&schema, query, json!({ "after": third }), Role::Admin);
    let mut received = Vec::new();
    for _ in 0..17 {
        received.push(next_data(&mut stream).await["changes"]["cursor"].clone());
    }
    run_ok(&schema, create, json!({ "key": "LIVE" })).await;
    received.push(next_data(&mut stream).await["changes"]["cursor"].clone());
    assert_eq!(received, cursors(run_ok(&schema, page, json!({ "after": third })).await));
    quiet(&mut stream).await;
}

/// A viewer's feed masks by what the store says when it reads entries the engine has not applied yet (here made
/// through another service on the same store): a stakeholder made private there is masked at once.
#[tokio::test]
async fn a_viewer_feed_ahead_of_the_engine_masks_by_the_store() {
    let (store, _dir) = fresh_store();
    let reader = crate::support::schema(store.clone());
    let writer = crate::support::schema(store);
    let create = "mutation { createCustomer(input: { key: \"X\", name: \"Secret Holdings\", private: false }) { id } }";
    let id = run_ok(&writer, create, json!({})).await["createCustomer"]["id"].clone();
    reader.engine().load().await.expect("the reader's projection, with X public");
    let hide = "mutation($id: ID!) { updateCustomer(input: { id: $id, private: true }) { id } }";
    run_ok(&writer, hide, json!({ "id": id })).await;

    // Replay from the start: both entries come from the store, the second one beyond the reader's snapshot.
    let query = "subscription { changes(after: \"Y2hhbmdlc3ww\") { kind masked payload } }";
    let mut viewer = subscribe_in_process(&reader, query, json!({}), Role::Viewer);
    // Both the creation and the update: masked, so their kinds are withheld too.
    for _ in 0..2 {
        let event = next_data(&mut viewer).await["changes"].clone();
        assert_eq!((event["kind"].as_str(), &event["masked"], &event["payload"]), (None, &json!(true), &Value::Null));
    }
}

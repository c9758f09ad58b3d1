//! Limits and overload over a real server: requests priced before they run (nesting at any depth, fragment
//! bombs, aliased analyses), per-key rates answered with HTTP 429 and `Retry-After`, the request deadline, content
//! types and coded JSON for every 4xx, and connections that never finish their headers or bodies.

use crate::support::{demo_copy, fragment_chain, serve, EDITOR_KEY};
use serde_json::{json, Value};
use stakegraph::api::ApiLimits;
use stakegraph::config::Config;
use stakegraph::service::Application;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post(base: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{base}/graphql"))
        .bearer_auth(EDITOR_KEY)
        .json(body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.expect("a JSON body"))
}

fn limit_of(response: &Value) -> (&str, &str) {
    let extensions = &response["errors"][0]["extensions"];
    (extensions["code"].as_str().unwrap_or_default(), extensions["limit"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn requests_nested_at_any_depth_are_refused_before_parsing_and_the_server_stays_up() {
    let (base, _dir) = serve(|_| {}).await;
    for depth in [1usize, 10, 63, 64, 65, 200, 1_200, 1_600, 10_000, 400_000] {
        let list = format!("{{ nodes(ids: {}\"x\"{}) {{ id }} }}", "[".repeat(depth), "]".repeat(depth));
        let object =
            format!("{{ stakeholders(filter: {}) {{ totalCount }} }}", "{search: ".repeat(depth) + &"}".repeat(depth));
        let selections = format!(
            "{{ {} }}",
            "stakeholders { edges { node { id ".repeat(depth / 3 + 1) + &"} } }".repeat(depth / 3 + 1)
        );
        for query in [list, object, selections] {
            let (status, _, response) = post(&base, &json!({ "query": query })).await;
            assert!(status < 500, "depth {depth}: {status}");
            let code = response["errors"][0]["extensions"]["code"].as_str().unwrap_or("none").to_owned();
            if status == 413 {
                assert_eq!(limit_of(&response).0, "LIMIT_EXCEEDED", "depth {depth}: larger than the body limit");
            } else if depth > 64 {
                assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "max_nesting"), "depth {depth}: {response}");
            } else {
                assert!(response.get("errors").is_none() || code != "none", "depth {depth}: {response}");
            }
        }
        if depth > 10_000 {
            continue; // a longer URI is refused by the client itself
        }
        let get = reqwest::Client::new()
            .get(format!("http://{base}/graphql"))
            .bearer_auth(EDITOR_KEY)
            .query(&[("query", format!("{{ nodes(ids: {}\"x\"{}) {{ id }} }}", "[".repeat(depth), "]".repeat(depth)))])
            .send()
            .await
            .expect("the server answers");
        assert!(get.status().as_u16() < 500);
    }
    let health = reqwest::get(format!("http://{base}/healthz")).await.expect("still up");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn fragment_bombs_and_aliased_analyses_are_refused_with_the_limit_they_exceed() {
    let (base, _dir) = serve(|_| {}).await;
    let bomb = fragment_chain("{ ...F0 }", 30, 2);
    let (_, _, response) = post(&base, &json!({ "query": bomb })).await;
    assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "max_complexity"), "{response}");

    let brokers: String = (0..600).map(|n| format!("b{n}: brokers(minStrength: 0.{n}) {{ exact }} ")).collect();
    let (_, _, response) = post(&base, &json!({ "query": format!("{{ {brokers} }}") })).await;
    assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "max_analyses"), "{response}");

    let forecasts: String = (0..50).map(|n| format!("f{n}: strength {{ fallsBelow(threshold: 0.{n}) }} ")).collect();
    let query = format!(
        "{{ stakeholders(first: 100) {{ edges {{ node {{ relationships(first: 100) {{ edges {{ node {{ {forecasts} }} }} }} }} }} }} }}"
    );
    let (_, _, response) = post(&base, &json!({ "query": query })).await;
    assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "max_forecasts"), "{response}");
    assert!(response["errors"][0]["message"].as_str().unwrap().contains("limits.max_forecasts"));
    let wide: String = (0..100).map(|n| format!("s{n}: strength {{ score }} ")).collect();
    let query = format!(
        "{{ stakeholders(first: 100) {{ edges {{ node {{ relationships(first: 100) {{ edges {{ node {{ {wide} }} }} }} }} }} }} }}"
    );
    let (_, _, response) = post(&base, &json!({ "query": query })).await;
    assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "max_cost"), "{response}");
    assert!(response["errors"][0]["message"].as_str().unwrap().contains("limits.max_cost"));
}

#[tokio::test]
async fn unused_fragment_chains_and_borrowed_defaults_do_not_get_past_the_limits() {
    let (base, _dir) = serve(|_| {}).await;
    // Validators follow every fragment, used or not: a chain of 20,000 must be refused before they run.
    let chain = fragment_chain("{ __typename }", 20_000, 1);
    let (status, _, response) = post(&base, &json!({ "query": chain })).await;
    assert_eq!(status, 200);
    assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "max_nesting"), "{response}");
    // Each operation is priced with its own defaults, whichever operation comes first.
    let borrowed = "query A($n: Int = 1) { stakeholders(first: $n) { totalCount } }
        query B($n: Int = 100) { stakeholders(first: $n) { edges { node { relationships(first: $n) { edges { node {
        counterpart { relationships(first: $n) { edges { node { id } } } } } } } } } } }";
    for _ in 0..5 {
        let (_, _, response) = post(&base, &json!({ "query": borrowed, "operationName": "B" })).await;
        assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "max_nodes"), "{response}");
    }
    let get = reqwest::Client::new()
        .get(format!("http://{base}/graphql"))
        .bearer_auth(EDITOR_KEY)
        .query(&[("query", "{ __typename }"), ("variables", "[1]")])
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 400);
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    let health = reqwest::get(format!("http://{base}/healthz")).await.expect("still up");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn past_a_keys_rates_requests_and_analyses_get_429_with_retry_after() {
    let (base, _dir) = serve(|config| {
        config.limits.requests_per_second_per_key = 1;
        config.limits.max_analyses = 1;
        config.limits.analyses_per_minute_per_key = 1;
    })
    .await;
    let analysis = json!({ "query": "{ keyInfluencers(first: 1) { asOf } }" });
    // A burst of twice the request rate passes; the analysis burst is twice `max_analyses`.
    for _ in 0..2 {
        let (status, _, response) = post(&base, &analysis).await;
        assert_eq!(status, 200, "{response}");
        assert!(response.get("errors").is_none(), "{response}");
    }
    let (status, headers, response) = post(&base, &analysis).await;
    assert_eq!(status, 429, "{response}");
    assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "requests_per_second_per_key"));
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(response["errors"][0]["extensions"]["retryAfter"], json!(retry_after));
    tokio::time::sleep(Duration::from_millis(1_100 * retry_after)).await;
    let (status, _, response) = post(&base, &analysis).await;
    assert_eq!(status, 429, "the third analysis in a minute is over its rate: {response}");
    assert_eq!(limit_of(&response), ("LIMIT_EXCEEDED", "analyses_per_minute_per_key"));
}

#[tokio::test]
async fn a_request_past_its_deadline_is_stopped_with_a_code() {
    let (store, _dir) = demo_copy();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_keys: stakegraph::config::ApiKeys::parse(&format!("editor:{EDITOR_KEY}")).unwrap(),
        limits: ApiLimits { request_timeout_ms: 1, betweenness_exact_below: 1_000_000, ..ApiLimits::default() },
        ..Config::default()
    };
    let application = Application::build_with_store(store, &config).await.expect("service builds");
    let base = application.local_addr().to_string();
    tokio::spawn(application.run_until_stopped());
    let (status, _, response) = post(&base, &json!({ "query": "{ brokers(first: 50) { exact } }" })).await;
    assert!(status < 500);
    assert_eq!(response["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{response}");
}

#[tokio::test]
async fn every_4xx_has_a_coded_json_body() {
    let (base, _dir) = serve(|config| config.limits.max_body_bytes = 1_000).await;
    let client = reqwest::Client::new();
    let url = format!("http://{base}/graphql");
    let body = r#"{"query":"{ __typename }"}"#;
    let cases = [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/graphql", 415),
        ("application/json; charset=utf-8", 200),
        ("application/graphql-response+json", 200),
    ];
    for (content_type, expected) in cases {
        let response = client
            .post(&url)
            .bearer_auth(EDITOR_KEY)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{content_type}");
        let json: Value = response.json().await.expect("JSON");
        if expected != 200 {
            assert_eq!(json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{content_type}: {json}");
        }
    }
    let no_type = client.post(&url).bearer_auth(EDITOR_KEY).body(body).send().await.unwrap();
    assert_eq!(no_type.status(), 415);
    let large = format!(r#"{{"query":"{{ __typename }}", "x": "{}"}}"#, "a".repeat(2_000));
    let too_large = client.post(&url).bearer_auth(EDITOR_KEY).header("content-type", "application/json").body(large);
    let too_large = too_large.send().await.unwrap();
    assert_eq!(too_large.status(), 413);
    let invalid = client.post(&url).bearer_auth(EDITOR_KEY).header("content-type", "application/json");
    let invalid = invalid.body(vec![0xff, 0xfe, b'{']).send().await.unwrap();
    assert_eq!(invalid.status(), 400);
    for (method, path, expected) in
        [("GET", "/nothing-here", 404), ("DELETE", "/graphql", 405), ("PUT", "/healthz", 405)]
    {
        let response = client
            .request(method.parse().unwrap(), format!("http://{base}{path}"))
            .bearer_auth(EDITOR_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{method} {path}");
        let json: Value = response.json().await.expect("JSON");
        assert!(json["errors"][0]["extensions"]["code"].is_string(), "{method} {path}: {json}");
    }
}

/// Reads from `stream` until the server closes it; returns what it sent.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server closed the connection");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_or_bodies_are_closed() {
    let (base, _dir) = serve(|config| {
        config.limits.header_timeout_ms = 300;
        config.limits.body_timeout_ms = 300;
    })
    .await;
    let mut half_headers = tokio::net::TcpStream::connect(&base).await.unwrap();
    half_headers.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut idle = tokio::net::TcpStream::connect(&base).await.unwrap();
    let mut half_body = tokio::net::TcpStream::connect(&base).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {EDITOR_KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: 10000000\r\n\r\n{{\"query\":"
    );
    half_body.write_all(head.as_bytes()).await.unwrap();
    until_closed(&mut half_headers).await;
    until_closed(&mut idle).await;
    let answer = until_closed(&mut half_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"LIMIT_EXCEEDED\"") && answer.contains("limits.body_timeout_ms"), "{answer}");
    let health = reqwest::get(format!("http://{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answers_is_dropped_after_the_body_timeout() {
    let (base, _dir) = serve(|config| {
        config.limits.max_connections = 1;
        config.limits.body_timeout_ms = 500;
        config.limits.requests_per_second_per_key = 1_000_000;
    })
    .await;
    // Pipelined introspection requests, whose answers (about 100 KB each) fill every socket buffer between the
    // server and a client that never reads them; the client holds the service's only connection place.
    let stalled = tokio::net::TcpStream::connect(&base).await.unwrap();
    let (mut never_read, mut writer) = stalled.into_split();
    let body = json!({ "query": "{ __schema { types { name description fields { name description args { name \
                                 description type { name kind ofType { name kind } } } } } } }" })
    .to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {EDITOR_KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let pipelined = tokio::spawn(async move {
        for _ in 0..2_000 {
            if writer.write_all(request.as_bytes()).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await; // keep the writing half open
    });
    // Once the stalled client's answers have stopped flowing for 500 ms, its place is free for the next client.
    let health = tokio::time::timeout(Duration::from_secs(30), reqwest::get(format!("http://{base}/healthz")))
        .await
        .expect("a second client is served once the first has been dropped")
        .unwrap();
    assert_eq!(health.status(), 200);
    // Its socket ends (with what was sent before, or reset: the server closed it with requests unread).
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), never_read.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the stalled connection was closed");
    pipelined.abort();
}

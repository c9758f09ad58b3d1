//! Tier 3: the real service on port 0, reached over HTTP.

use crate::influence::{gid, regulator_and_key_customer};
use crate::support::{demo_copy, fresh_store, post_graphql, wait_until_ready, Held, Hold};
use serde_json::{json, Value};
use stakegraph::config::{ApiKeys, Config};
use stakegraph::service::Application;

const EDITOR_KEY: &str = "editor-key-for-the-server-test";

async fn spawn(config: Config, store: std::sync::Arc<dyn stakegraph::store::GraphStore>) -> String {
    let application = Application::build_with_store(store, &config).await.expect("service builds");
    let address = application.local_addr();
    tokio::spawn(application.run_until_stopped());
    format!("http://{address}")
}

fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        api_keys: ApiKeys::parse(&format!("editor:{EDITOR_KEY}")).unwrap(),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_client_writes_and_reads_over_http() {
    let (store, _dir) = fresh_store();
    let base = spawn(config(), store).await;
    let client = reqwest::Client::new();
    let create = json!({
        "query": "mutation($input: CreateMediaOutletInput!) { createMediaOutlet(input: $input) { id name primaryMarket reach } }",
        "variables": { "input": { "key": "M-1", "name": "The Daily Ledger", "outlet": "Ledger Group", "reach": 250000, "power": 0.9, "interest": 0.7 } },
        "operationName": null
    });
    let response: Value = post_graphql(&client, &base, Some(EDITOR_KEY), &create).await;
    assert_eq!(response["data"]["createMediaOutlet"]["primaryMarket"], "INFLUENCE", "{response:#}");
    assert_eq!(response["data"]["createMediaOutlet"]["reach"], 250000);

    let read = json!({ "query": "{ stakeholders(filter: { mendelow: [MANAGE_CLOSELY] }) { totalCount edges { node { name } } } }" });
    let response: Value = post_graphql(&client, &base, Some(EDITOR_KEY), &read).await;
    assert_eq!(response["data"]["stakeholders"]["edges"][0]["node"]["name"], "The Daily Ledger");

    let anonymous = post_graphql(&client, &base, None, &read).await;
    assert_eq!(anonymous["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    wait_until_ready(&client, &base).await;
}

#[tokio::test]
async fn demo_mode_seeds_an_empty_store_and_allows_anonymous_reads_on_loopback() {
    let (store, _dir) = fresh_store();
    let config = Config { demo: true, demo_size: 200, ..config() };
    let base = spawn(config, store).await;
    wait_until_ready(&reqwest::Client::new(), &base).await;
    let query = json!({ "query": "{ stakeholders(first: 5, filter: {kinds: [CUSTOMER]}) { totalCount edges { node { id name kind primaryMarket } } } }" });
    let response = post_graphql(&reqwest::Client::new(), &base, None, &query).await;
    let edges = response["data"]["stakeholders"]["edges"].as_array().expect("customers");
    assert_eq!(edges.len(), 5, "{response:#}");
    assert!(edges.iter().all(|edge| edge["node"]["kind"] == "CUSTOMER" && edge["node"]["primaryMarket"] == "CUSTOMER"));
    let graphiql = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
    assert!(graphiql.to_lowercase().contains("graphiql"));
}

/// The status and body of GET `base``path`.
async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let response = client.get(format!("{base}{path}")).send().await.expect("the server answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The service accepts connections before the projection is built: while the build is held (its scan done, the
/// snapshot not yet made), `/healthz` answers 200 and `/readyz` 503, and a mutation answers at once, without
/// waiting for the build. An analysis made after that mutation returned sees its write, although the build's scan
/// predates it; `/readyz` turns 200 once the build is released.
#[tokio::test]
async fn health_answers_while_the_projection_builds_and_a_write_made_meanwhile_reaches_analyses() {
    let (store, _dir) = demo_copy();
    let held = Held::new(store, Hold::Scan);
    let base = spawn(config(), held.clone()).await;
    held.entered().await;
    let client = reqwest::Client::new();
    assert_eq!(get(&client, &base, "/healthz").await, (200, "ok".to_owned()));
    assert_eq!(get(&client, &base, "/readyz").await, (503, "projection not built yet".to_owned()));

    let (regulator, customer) = regulator_and_key_customer();
    let since = (chrono::Utc::now() - chrono::Duration::days(3650)).to_rfc3339();
    let upsert = json!({
        "query": "mutation($input: UpsertRelationshipInput!) { upsertRelationship(input: $input) { created relationship { id } } }",
        "variables": { "input": { "from": gid(regulator), "to": gid(customer), "type": "INFLUENCES",
            "level": "PARTNERSHIP", "trust": 1.0, "commitment": 1.0, "since": since } }
    });
    let response = post_graphql(&client, &base, Some(EDITOR_KEY), &upsert).await;
    assert_eq!(response["data"]["upsertRelationship"]["created"], true, "{response:#}");
    let relationship = response["data"]["upsertRelationship"]["relationship"]["id"].clone();
    assert_eq!(get(&client, &base, "/readyz").await.0, 503, "the mutation answered with the build still held");

    // Sent before the build is released: it waits for the projection, then must see the write.
    let paths = json!({
        "query": "query($from: ID!, $to: ID!) { influencePaths(from: $from, to: $to, first: 1, maxHops: 4) { paths { hops steps { relationship { id } } } } }",
        "variables": { "from": gid(regulator), "to": gid(customer) }
    });
    let analysis = tokio::spawn({
        let (client, base, paths) = (client.clone(), base.clone(), paths.clone());
        async move { post_graphql(&client, &base, Some(EDITOR_KEY), &paths).await }
    });
    held.release();
    for response in [analysis.await.unwrap(), post_graphql(&client, &base, Some(EDITOR_KEY), &paths).await] {
        let path = &response["data"]["influencePaths"]["paths"][0];
        assert_eq!(
            path["hops"], 1,
            "the direct relationship written during the build is the strongest path: {response:#}"
        );
        assert_eq!(path["steps"][0]["relationship"]["id"], relationship);
    }
    wait_until_ready(&client, &base).await;
}

/// `serve --demo` on an empty store serves while it writes the demo graph: `/healthz` answers 200, `/readyz` 503,
/// and GraphQL (POST, GET, WebSocket) 503 with `Retry-After` and a coded error, until the graph is written; then
/// everything answers.
#[tokio::test]
async fn while_the_demo_graph_is_written_graphql_answers_503_with_retry_after() {
    let (store, _dir) = fresh_store();
    let held = Held::new(store, Hold::Apply);
    let base = spawn(Config { demo: true, demo_size: 200, ..config() }, held.clone()).await;
    held.entered().await;
    let client = reqwest::Client::new();
    assert_eq!(get(&client, &base, "/healthz").await, (200, "ok".to_owned()));
    assert_eq!(get(&client, &base, "/readyz").await, (503, "the demo graph is being written".to_owned()));
    let query = json!({ "query": "{ stakeholders(first: 5, filter: {kinds: [CUSTOMER]}) { totalCount } }" });
    for key in [None, Some(EDITOR_KEY)] {
        let mut request = client.post(format!("{base}/graphql")).json(&query);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "2");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({ "errors": [{ "message": "the demo graph is being written; retry in a few seconds",
                "extensions": { "code": "UNAVAILABLE", "retryAfter": 2 } }] })
        );
    }
    assert_eq!(get(&client, &base, "/graphql?query=%7B__typename%7D").await.0, 503);
    assert_eq!(get(&client, &base, "/graphql/ws").await.0, 503, "no subscription starts on a graph half written");

    held.release();
    wait_until_ready(&client, &base).await;
    let counts = json!({ "query": "{ graphCounts { stakeholders } }" });
    let response = post_graphql(&client, &base, None, &counts).await;
    assert_eq!(response["data"]["graphCounts"]["stakeholders"], 200, "the whole demo graph: {response:#}");
}

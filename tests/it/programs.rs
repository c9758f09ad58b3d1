//! Relationship-marketing programmes (issue 13, point 6): programmes and memberships round-trip through the
//! mutations, the change log and a `changes` subscription; refusals name their field; `Program.retention`
//! reproduces a table worked by hand, and on the demo graph matches a recount over the stored records for an
//! editor and for a viewer, who never counts a private customer (nor does its `memberCount`).

use crate::support::{demo_db, demo_store, error_code, fresh_store, run_as, run_ok};
use chrono::NaiveDate;
use serde_json::{json, Value};
use stakegraph::api::{build_schema, ApiLimits, Caller, StakegraphSchema};
use stakegraph::domain::{KindDetails, LifecycleEvent, Role, Stakeholder};
use stakegraph::store::GraphStore;
use std::collections::BTreeMap;
use std::sync::Arc;

const EDITOR: Caller = Caller::Key(Role::Editor);
const VIEWER: Caller = Caller::Key(Role::Viewer);

fn schema(store: Arc<dyn GraphStore>) -> StakegraphSchema {
    build_schema(store, ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() }, false)
}

const CREATE_PROGRAM: &str =
    r#"mutation($input: CreateProgramInput!) { createProgram(input: $input) { id key name kind markets } }"#;
const CREATE_CUSTOMER: &str = r#"mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"#;
const ENROL: &str = r#"mutation($input: ProgramMembershipInput!) {
  enrolInProgram(input: $input) { id programs { totalCount nodes { joined left program { key } } } }
}"#;
const LEAVE: &str = r#"mutation($input: ProgramMembershipInput!) {
  leaveProgram(input: $input) { id programs { totalCount nodes { joined left program { key } } } }
}"#;
const EXIT: &str = r#"mutation($input: RecordCustomerExitInput!) { recordCustomerExit(input: $input) { id } }"#;
const RETENTION: &str = r#"query($id: ID!, $from: NaiveDate!, $to: NaiveDate!, $asOf: NaiveDate) {
  program(id: $id) {
    key memberCount(asOf: $asOf)
    retention(from: $from, to: $to) {
      from to expectedChurnRate difference
      members { atStart churned churnRate }
      comparedMembers { atStart churned churnRate }
      nonMembers { atStart churned churnRate }
      segments { segment members { atStart churned } nonMembers { atStart churned } }
    }
  }
}"#;

async fn create_program(schema: &StakegraphSchema, key: &str, kind: &str) -> Value {
    let input =
        json!({ "input": { "key": key, "name": format!("Programme {key}"), "kind": kind, "markets": ["CUSTOMER"] } });
    run_ok(schema, CREATE_PROGRAM, input).await["createProgram"]["id"].clone()
}

async fn customer(schema: &StakegraphSchema, key: &str, segment: &str, private: bool) -> Value {
    let input = json!({ "input": { "key": key, "name": key, "power": 0.5, "interest": 0.5, "status": "ACTIVE",
        "segment": segment, "customerSince": "2024-01-01", "private": private } });
    run_ok(schema, CREATE_CUSTOMER, input).await["createCustomer"]["id"].clone()
}

async fn enrol(schema: &StakegraphSchema, program: &Value, customer: &Value, date: &str) -> Value {
    let input = json!({ "input": { "programId": program, "customerId": customer, "date": date } });
    run_ok(schema, ENROL, input).await["enrolInProgram"].clone()
}

async fn leave(schema: &StakegraphSchema, program: &Value, customer: &Value, date: &str) -> Value {
    let input = json!({ "input": { "programId": program, "customerId": customer, "date": date } });
    run_ok(schema, LEAVE, input).await["leaveProgram"].clone()
}

async fn exit(schema: &StakegraphSchema, customer: &Value, date: &str) {
    run_ok(schema, EXIT, json!({ "input": { "id": customer, "reason": "PRICE", "date": date } })).await;
}

async fn retention(
    schema: &StakegraphSchema,
    caller: Caller,
    program: &Value,
    from: &str,
    to: &str,
    as_of: &str,
) -> Value {
    let variables = json!({ "id": program, "from": from, "to": to, "asOf": as_of });
    let response = run_as(schema, caller, RETENTION, variables).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"]["program"].clone()
}

#[tokio::test]
async fn programmes_and_memberships_round_trip_through_mutations_the_change_log_and_a_subscription() {
    use futures_util::StreamExt;
    let (store, _dir) = fresh_store();
    let schema = schema(store);
    let subscribe = |query: &str| {
        let request = async_graphql::Request::new(query.to_owned()).data(EDITOR);
        Box::pin(async_graphql::Executor::execute_stream(&schema, request, None))
    };
    let mut by_kind = subscribe(
        "subscription { changes(filter: { kinds: [PROGRAM_CREATED, PROGRAM_JOINED, PROGRAM_LEFT] }) { kind stakeholders payload } }",
    );
    let mut by_market = subscribe("subscription { changes(filter: { markets: [CUSTOMER] }) { kind } }");
    // Let the subscriptions start at the current position before anything is written.
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), by_kind.next()).await.is_err());
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), by_market.next()).await.is_err());
    let club = create_program(&schema, "CLUB", "CLUB").await;
    let created = run_ok(
        &schema,
        r#"query($id: ID!) { node(id: $id) { ... on Program { key name kind markets } } }"#,
        json!({ "id": club }),
    )
    .await;
    assert_eq!(
        created["node"],
        json!({ "key": "CLUB", "name": "Programme CLUB", "kind": "CLUB", "markets": ["CUSTOMER"] })
    );
    let c = customer(&schema, "C", "SMB", false).await;
    let joined = enrol(&schema, &club, &c, "2025-01-10").await;
    assert_eq!(
        joined["programs"],
        json!({ "totalCount": 1, "nodes": [{ "joined": "2025-01-10", "left": null, "program": { "key": "CLUB" } }] })
    );
    let left = leave(&schema, &club, &c, "2025-03-01").await;
    assert_eq!(left["programs"]["nodes"][0]["left"], "2025-03-01");
    let again = enrol(&schema, &club, &c, "2025-03-01").await;
    assert_eq!(again["programs"]["totalCount"], 2, "left and joined again the same day");

    let mut events = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), by_kind.next()).await.unwrap().unwrap();
        events.push(event.data.into_json().unwrap()["changes"].clone());
    }
    let kinds: Vec<&str> = events.iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["PROGRAM_CREATED", "PROGRAM_JOINED", "PROGRAM_LEFT", "PROGRAM_JOINED"]);
    assert_eq!(events[0]["stakeholders"], json!([]));
    assert_eq!(events[0]["payload"]["program"]["key"], "CLUB");
    for (event, date) in events[1..].iter().zip(["2025-01-10", "2025-03-01", "2025-03-01"]) {
        assert_eq!(event["stakeholders"], json!([c]));
        assert_eq!((event["payload"]["program"].clone(), event["payload"]["date"].clone()), (json!(1), json!(date)));
    }
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), by_kind.next()).await.is_err(), "nothing else");
    // A filter on markets sees the customer's events (the creation, then its memberships), not the programme's.
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), by_market.next()).await.unwrap().unwrap();
        kinds.push(event.data.into_json().unwrap()["changes"]["kind"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds, ["STAKEHOLDER_CREATED", "PROGRAM_JOINED", "PROGRAM_LEFT", "PROGRAM_JOINED"]);

    // The change log as a query holds the same entries.
    let log = run_ok(&schema, "{ changes(first: 10) { nodes { kind } } }", json!({})).await;
    let kinds: Vec<&str> =
        log["changes"]["nodes"].as_array().unwrap().iter().map(|node| node["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["PROGRAM_CREATED", "STAKEHOLDER_CREATED", "PROGRAM_JOINED", "PROGRAM_LEFT", "PROGRAM_JOINED"]);
    // And the listing and the customer read them back.
    let read = run_ok(
        &schema,
        r#"query($id: ID!) { programs { totalCount nodes { id key memberCount(asOf: "2025-02-01") } }
             stakeholder(id: $id) { ... on Customer { programs { nodes { joined left } } } } }"#,
        json!({ "id": c }),
    )
    .await;
    assert_eq!(
        read["programs"],
        json!({ "totalCount": 1, "nodes": [{ "id": club, "key": "CLUB", "memberCount": 1 }] })
    );
    assert_eq!(
        read["stakeholder"]["programs"]["nodes"],
        json!([{ "joined": "2025-01-10", "left": "2025-03-01" }, { "joined": "2025-03-01", "left": null }])
    );
}

#[tokio::test]
async fn refusals_name_the_field_and_write_nothing() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let club = create_program(&schema, "CLUB", "CLUB").await;
    let c = customer(&schema, "C", "SMB", false).await;
    let supplier = run_ok(&schema, r#"mutation { createSupplier(input: { key: "S", name: "S" }) { id } }"#, json!({}))
        .await["createSupplier"]["id"]
        .clone();
    let prospect = run_ok(
        &schema,
        CREATE_CUSTOMER,
        json!({ "input": { "key": "P", "name": "P", "power": 0.5, "interest": 0.5, "status": "PROSPECT" } }),
    )
    .await["createCustomer"]["id"]
        .clone();
    let changes_before = store.counts().await.unwrap().changes;
    let membership = |program: &Value, customer: &Value, date: &str| json!({ "input": { "programId": program, "customerId": customer, "date": date } });
    let cases = [
        (ENROL, membership(&club, &supplier, "2025-01-01"), "input.customerId"),
        (ENROL, membership(&club, &prospect, "2025-01-01"), "input.customerId"),
        (ENROL, membership(&c, &c, "2025-01-01"), "input.programId"),
        (ENROL, membership(&club, &club, "2025-01-01"), "input.customerId"),
        (ENROL, membership(&club, &c, "2999-01-01"), "input.date"),
        (ENROL, membership(&club, &c, "2023-12-31"), "input.date"),
        (LEAVE, membership(&club, &c, "2025-01-01"), "input.programId"),
    ];
    for (mutation, variables, field) in cases {
        let refused = run_as(&schema, EDITOR, mutation, variables.clone()).await;
        assert_eq!(error_code(&refused), ("BAD_USER_INPUT".into(), field.into()), "{variables} {refused:#}");
    }
    // An unknown programme is a programme id that names nothing.
    let unknown = stakegraph::api::ids::GlobalId::Program(stakegraph::domain::ProgramId(99)).encode();
    let refused = run_as(&schema, EDITOR, ENROL, membership(&json!(unknown), &c, "2025-01-01")).await;
    assert_eq!(error_code(&refused), ("BAD_USER_INPUT".into(), "input.programId".into()));
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("no programme has id 99"), "{refused:#}");
    enrol(&schema, &club, &c, "2025-01-10").await;
    let twice = run_as(&schema, EDITOR, ENROL, membership(&club, &c, "2025-02-01")).await;
    assert_eq!(error_code(&twice), ("BAD_USER_INPUT".into(), "input.programId".into()));
    let early = run_as(&schema, EDITOR, LEAVE, membership(&club, &c, "2025-01-09")).await;
    assert_eq!(error_code(&early), ("BAD_USER_INPUT".into(), "input.date".into()));
    leave(&schema, &club, &c, "2025-02-01").await;
    let overlap = run_as(&schema, EDITOR, ENROL, membership(&club, &c, "2025-01-20")).await;
    assert_eq!(error_code(&overlap), ("BAD_USER_INPUT".into(), "input.date".into()));
    // Programmes: a key once, at least one market; only writers write.
    let input = |key: &str, markets: Value| json!({ "input": { "key": key, "name": "N", "kind": "FREQUENCY", "markets": markets } });
    let duplicate = run_as(&schema, EDITOR, CREATE_PROGRAM, input("CLUB", json!(["CUSTOMER"]))).await;
    assert_eq!(error_code(&duplicate), ("CONFLICT".into(), "input.key".into()));
    let no_market = run_as(&schema, EDITOR, CREATE_PROGRAM, input("NEW", json!([]))).await;
    assert_eq!(error_code(&no_market), ("BAD_USER_INPUT".into(), "input.markets".into()));
    let viewer = run_as(&schema, VIEWER, CREATE_PROGRAM, input("NEW", json!(["CUSTOMER"]))).await;
    assert_eq!(error_code(&viewer).0, "FORBIDDEN");
    let viewer = run_as(&schema, VIEWER, ENROL, membership(&club, &c, "2025-03-01")).await;
    assert_eq!(error_code(&viewer).0, "FORBIDDEN");
    // Only the enrolment and the leave were written.
    assert_eq!(store.counts().await.unwrap().changes, changes_before + 2);
    assert_eq!(store.programs().await.unwrap().len(), 1);
}

/// A customer of the hand-made table: name, segment, private, its club membership (joined, left), its exit.
type Row = (&'static str, &'static str, bool, Option<Membership>, Option<&'static str>);

/// A membership of the hand-made table: joined, and left if it did.
type Membership = (&'static str, Option<&'static str>);

/// `value` is `expected`, to rounding (sums in another order).
fn close(value: &Value, expected: f64) {
    let got = value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"));
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
}

#[tokio::test]
async fn retention_reproduces_a_table_worked_by_hand_and_a_viewer_never_counts_a_private_customer() {
    let (store, _dir) = fresh_store();
    let schema = schema(store);
    let club = create_program(&schema, "CLUB", "CLUB").await;
    let other = create_program(&schema, "POINTS", "FREQUENCY").await;
    // The period is the first half of 2025; every customer since 2024-01-01.
    let mut customers = BTreeMap::new();
    // (name, segment, private, club membership (joined, left), exit)
    let table: [Row; 12] = [
        ("m1", "SMB", false, Some(("2024-06-01", None)), None),
        ("m2", "SMB", false, Some(("2024-06-01", None)), Some("2025-03-01")),
        ("m3", "SMB", false, Some(("2024-06-01", Some("2025-02-01"))), None),
        ("n1", "SMB", false, None, Some("2025-02-01")),
        ("n2", "SMB", false, None, Some("2025-05-01")),
        ("n3", "SMB", false, None, None),
        ("n4", "SMB", false, Some(("2024-02-01", Some("2024-12-01"))), None),
        ("m4", "ENT", false, Some(("2024-06-01", None)), None),
        ("n5", "ENT", false, None, Some("2025-04-01")),
        ("n6", "ENT", false, None, None),
        // Private: a member who leaves the firm and a non-member who stays; only an editor counts them.
        ("h1", "ENT", true, Some(("2024-06-01", None)), Some("2025-02-15")),
        ("h2", "SMB", true, None, None),
    ];
    for (name, segment, private, membership, left) in table {
        let id = customer(&schema, name, segment, private).await;
        if let Some((joined, gone)) = membership {
            enrol(&schema, &club, &id, joined).await;
            if let Some(gone) = gone {
                leave(&schema, &club, &id, gone).await;
            }
        }
        if let Some(date) = left {
            exit(&schema, &id, date).await;
        }
        customers.insert(name, id);
    }
    // A membership of another programme counts for neither.
    enrol(&schema, &other, &customers["n3"], "2024-06-01").await;

    let cohort = |at_start: u64, churned: u64| json!({ "atStart": at_start, "churned": churned, "churnRate": (at_start > 0).then(|| churned as f64 / at_start as f64) });
    // Editor. Members at the start: m1, m2, m3, m4, h1; churned m2, h1. Non-members: SMB n1..n4, h2 (2 of 5
    // left); ENT n5, n6 (1 of 2). Expected = (3 × 2/5 + 2 × 1/2) / 5.
    let editor = retention(&schema, EDITOR, &club, "2025-01-01", "2025-07-01", "2025-01-15").await;
    assert_eq!(editor["memberCount"], 5);
    let report = &editor["retention"];
    assert_eq!(report["members"], cohort(5, 2));
    assert_eq!(report["comparedMembers"], cohort(5, 2));
    assert_eq!(report["nonMembers"], cohort(7, 3));
    let expected = (3.0 * 2.0 / 5.0 + 2.0 * 0.5) / 5.0;
    close(&report["expectedChurnRate"], expected);
    close(&report["difference"], 2.0 / 5.0 - expected);
    assert_eq!(
        report["segments"],
        json!([
            { "segment": "ENT", "members": { "atStart": 2, "churned": 1 }, "nonMembers": { "atStart": 2, "churned": 1 } },
            { "segment": "SMB", "members": { "atStart": 3, "churned": 1 }, "nonMembers": { "atStart": 5, "churned": 2 } },
        ])
    );
    // Viewer: without h1 and h2. Members m1..m4, m2 churned; SMB non-members n1..n4 (2 of 4), ENT n5, n6 (1 of 2).
    let viewer = retention(&schema, VIEWER, &club, "2025-01-01", "2025-07-01", "2025-01-15").await;
    assert_eq!(viewer["memberCount"], 4, "a viewer's count leaves the private member out");
    let report = &viewer["retention"];
    assert_eq!(report["members"], cohort(4, 1));
    assert_eq!(report["nonMembers"], cohort(6, 3));
    let expected = (3.0 * 0.5 + 1.0 * 0.5) / 4.0;
    close(&report["expectedChurnRate"], expected);
    assert_eq!(
        report["segments"],
        json!([
            { "segment": "ENT", "members": { "atStart": 1, "churned": 0 }, "nonMembers": { "atStart": 2, "churned": 1 } },
            { "segment": "SMB", "members": { "atStart": 3, "churned": 1 }, "nonMembers": { "atStart": 4, "churned": 2 } },
        ])
    );
    // Member counts on other days: the private member left the firm but not the club.
    let later = retention(&schema, EDITOR, &club, "2025-01-01", "2025-07-01", "2025-06-01").await;
    assert_eq!(later["memberCount"], 4, "m1, m2 (gone, still a member), m4, h1; m3 left");
    let before = retention(&schema, VIEWER, &club, "2025-01-01", "2025-07-01", "2024-03-01").await;
    assert_eq!(before["memberCount"], 1, "n4 alone");

    // Limits: a period of a day or more, at most 240 months; an analysis in the complexity model.
    let variables = |from: &str, to: &str| json!({ "id": club, "from": from, "to": to });
    let empty = run_as(&schema, EDITOR, RETENTION, variables("2025-01-01", "2025-01-01")).await;
    assert_eq!(error_code(&empty), ("BAD_USER_INPUT".into(), "to".into()));
    let long = run_as(&schema, EDITOR, RETENTION, variables("2000-01-01", "2030-01-02")).await;
    assert_eq!(error_code(&long), ("BAD_USER_INPUT".into(), "to".into()));
    let many = run_as(
        &schema,
        EDITOR,
        r#"{ programs(first: 10) { nodes { retention(from: "2025-01-01", to: "2025-02-01") { difference } } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(error_code(&many).0, "LIMIT_EXCEEDED", "{many:#}");
}

/// An independent recount of one programme's retention over the stored records: a customer is at the start when
/// it became one before `from` and its last lifecycle event before `from` is not an exit; it churned when it has an
/// exit in `[from, to)`; a member when a membership covers `from`. Returns (members, churned, non-members in the
/// members' segments, churned, expected churn rate) and the members on `to`.
fn recount(rows: &[Stakeholder], program: i64, from: NaiveDate, to: NaiveDate) -> ((u64, u64, u64, u64, f64), u64) {
    let mut segments: BTreeMap<Option<String>, [u64; 4]> = BTreeMap::new();
    let mut members_on_to = 0;
    for row in rows {
        let KindDetails::Customer(customer) = &row.details else { continue };
        let member_on = |day: NaiveDate| {
            customer
                .memberships
                .iter()
                .any(|m| m.program.0 == program && m.joined <= day && m.left.is_none_or(|left| day < left))
        };
        members_on_to += u64::from(member_on(to));
        let Some(since) = customer.customer_since(row.created_at) else { continue };
        let events = customer.lifecycle();
        let last_before = events.iter().rev().find(|event| event.date() < from);
        if since >= from || matches!(last_before, Some(LifecycleEvent::Exit { .. })) {
            continue;
        }
        let churned = events
            .iter()
            .any(|event| matches!(event, LifecycleEvent::Exit { date, .. } if from <= *date && *date < to));
        let entry = segments.entry(customer.segment.as_ref().map(|segment| segment.to_string())).or_default();
        let offset = if member_on(from) { 0 } else { 2 };
        entry[offset] += 1;
        entry[offset + 1] += u64::from(churned);
    }
    let (mut members, mut churned, mut others, mut others_churned, mut weighted) = (0, 0, 0, 0, 0.0);
    for [m, mc, n, nc] in segments.values().copied() {
        if m > 0 && n > 0 {
            members += m;
            churned += mc;
            others += n;
            others_churned += nc;
            weighted += m as f64 * nc as f64 / n as f64;
        }
    }
    ((members, churned, others, others_churned, weighted / members as f64), members_on_to)
}

#[tokio::test]
async fn on_the_demo_retention_and_member_counts_match_a_recount_for_editors_and_viewers() {
    let schema = schema(demo_store());
    let sql = rusqlite::Connection::open(demo_db()).unwrap();
    let read = |privacy: &str| -> Vec<Stakeholder> {
        let mut statement = sql
            .prepare(&format!("SELECT record FROM stakeholder WHERE archived_at IS NULL AND {privacy} ORDER BY id"))
            .unwrap();
        let rows = statement.query_map([], |row| row.get::<_, String>(0)).unwrap();
        rows.map(|record| stakegraph::store::record::read_stakeholder(&record.unwrap()).unwrap()).collect()
    };
    let programs = run_ok(&schema, "{ programs { nodes { id key } } }", json!({})).await;
    let programs = programs["programs"]["nodes"].as_array().unwrap().clone();
    assert_eq!(programs.len(), 3);
    // The demo's last year.
    let (from, to) = ("2025-06-01", "2026-06-01");
    let day = |text: &str| text.parse::<NaiveDate>().unwrap();
    let mut private_left_out = false;
    for (caller, privacy) in [(EDITOR, "1"), (VIEWER, "private = 0")] {
        let rows = read(privacy);
        for (n, program) in programs.iter().enumerate() {
            let answer = retention(&schema, caller, &program["id"], from, to, to).await;
            let ((members, churned, others, others_churned, expected), on_to) =
                recount(&rows, n as i64 + 1, day(from), day(to));
            let report = &answer["retention"];
            assert_eq!(answer["memberCount"], on_to, "{caller:?} {program}");
            assert_eq!(report["comparedMembers"]["atStart"], members, "{caller:?} {program}");
            assert_eq!(report["comparedMembers"]["churned"], churned, "{caller:?} {program}");
            assert_eq!(report["nonMembers"]["atStart"], others, "{caller:?} {program}");
            assert_eq!(report["nonMembers"]["churned"], others_churned, "{caller:?} {program}");
            let got = report["expectedChurnRate"].as_f64().unwrap();
            assert!((got - expected).abs() < 1e-12, "{caller:?} {program}: {got} vs {expected}");
            if n == 0 {
                assert!(members > 10 && others > 10, "a demo with something to chart: {report:#}");
            }
        }
        if caller == VIEWER {
            let editor = retention(&schema, EDITOR, &programs[0]["id"], from, to, to).await;
            let viewer = retention(&schema, VIEWER, &programs[0]["id"], from, to, to).await;
            private_left_out = editor["retention"]["nonMembers"] != viewer["retention"]["nonMembers"]
                || editor["memberCount"] != viewer["memberCount"];
        }
    }
    assert!(private_left_out, "the demo has private customers for the viewer's figures to leave out");
}

//! Exit management (issue 13, point 3): `exitAnalysis` reproduces a table worked by hand from customers written
//! through the mutations (exits, win-backs, a private and an archived customer, a manager), and on the demo graph
//! matches a recount in SQL over the stored records, for an editor and for a viewer (who must not count private
//! customers).

use crate::support::{demo_db, demo_store, error_code, fresh_store, run_as, run_ok};
use serde_json::{json, Value};
use stakegraph::api::ids::GlobalId;
use stakegraph::api::{build_schema, ApiLimits, Caller, StakegraphSchema};
use stakegraph::domain::{Role, StakeholderId};
use stakegraph::store::GraphStore;
use std::sync::Arc;

const EDITOR: Caller = Caller::Key(Role::Editor);
const VIEWER: Caller = Caller::Key(Role::Viewer);

fn schema(store: Arc<dyn GraphStore>) -> StakegraphSchema {
    build_schema(store, ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() }, false)
}

const ANALYSIS: &str = r#"query($from: NaiveDate!, $to: NaiveDate!, $filter: ExitFilter) {
  exitAnalysis(from: $from, to: $to, filter: $filter) {
    from to customersAtStart churned exits churnRate retentionRate lifetimeValueLost winBacks goneAtStart wonBack
    winBackRate
    byReason { reason controllable exits share lifetimeValueLost }
    controllable { exits share lifetimeValueLost }
    uncontrollable { exits share lifetimeValueLost }
    months { from to customersAtStart churned churnRate exits lifetimeValueLost winBacks }
  }
}"#;

const CREATE: &str = r#"mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id customerSince } }"#;
const EXIT: &str = r#"mutation($input: RecordCustomerExitInput!) { recordCustomerExit(input: $input) { id status } }"#;
const WIN_BACK: &str =
    r#"mutation($input: RecordCustomerWinBackInput!) { recordCustomerWinBack(input: $input) { id status } }"#;

/// Creates a customer since `since` worth `value` in `segment`; returns its id.
async fn customer(
    schema: &StakegraphSchema,
    key: &str,
    since: Option<&str>,
    value: f64,
    segment: &str,
    private: bool,
) -> Value {
    let status = if since.is_some() { "ACTIVE" } else { "PROSPECT" };
    let input = json!({ "input": { "key": key, "name": key, "power": 0.5, "interest": 0.5, "status": status,
        "segment": segment, "lifetimeValue": value, "customerSince": since, "private": private } });
    run_ok(schema, CREATE, input).await["createCustomer"]["id"].clone()
}

async fn exit(schema: &StakegraphSchema, id: &Value, reason: &str, date: &str) {
    let done = run_ok(schema, EXIT, json!({ "input": { "id": id, "reason": reason, "date": date } })).await;
    assert_eq!(done["recordCustomerExit"]["status"], "CHURNED");
}

async fn win_back(schema: &StakegraphSchema, id: &Value, date: &str) {
    let done = run_ok(schema, WIN_BACK, json!({ "input": { "id": id, "date": date } })).await;
    assert_eq!(done["recordCustomerWinBack"]["status"], "WON_BACK");
}

async fn analysis(schema: &StakegraphSchema, caller: Caller, from: &str, to: &str, filter: Value) -> Value {
    let response = run_as(schema, caller, ANALYSIS, json!({ "from": from, "to": to, "filter": filter })).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    response["data"]["exitAnalysis"].clone()
}

/// `[customersAtStart, churned, exits, lifetimeValueLost, winBacks]` of a period or month.
fn row(stretch: &Value) -> Vec<Value> {
    ["customersAtStart", "churned", "exits", "lifetimeValueLost", "winBacks"]
        .iter()
        .map(|key| stretch[key].clone())
        .collect()
}

/// `{ reason: [exits, lifetimeValueLost] }` for the reasons with exits.
fn reasons(report: &Value) -> Value {
    let mut found = serde_json::Map::new();
    for reason in report["byReason"].as_array().unwrap() {
        if reason["exits"].as_u64().unwrap() > 0 {
            found.insert(
                reason["reason"].as_str().unwrap().to_owned(),
                json!([reason["exits"], reason["lifetimeValueLost"]]),
            );
        }
    }
    Value::Object(found)
}

#[tokio::test]
async fn the_exit_analysis_reproduces_a_table_worked_by_hand() {
    let (store, _dir) = fresh_store();
    let schema = schema(store);
    // The period is the first quarter of 2025.
    let a = customer(&schema, "A", Some("2024-01-01"), 100.0, "SMB", false).await; // stays
    let b = customer(&schema, "B", Some("2024-06-01"), 200.0, "SMB", false).await;
    exit(&schema, &b, "PRICE", "2025-02-10").await;
    let c = customer(&schema, "C", Some("2025-01-20"), 50.0, "CONSUMER", false).await; // joins during it
    exit(&schema, &c, "MARKET", "2025-03-05").await;
    let d = customer(&schema, "D", Some("2023-01-01"), 400.0, "ENTERPRISE", false).await;
    exit(&schema, &d, "SERVICE", "2024-11-01").await;
    win_back(&schema, &d, "2025-02-14").await;
    exit(&schema, &d, "SERVICE", "2025-03-30").await;
    let e = customer(&schema, "E", Some("2024-01-01"), 10.0, "SMB", false).await;
    exit(&schema, &e, "PRICE", "2025-01-01").await; // the first day: at the start, churned in January
    let f = customer(&schema, "F", Some("2024-01-01"), 1000.0, "SMB", true).await; // private
    exit(&schema, &f, "PRODUCT", "2025-02-02").await;
    let g = customer(&schema, "G", Some("2024-01-01"), 70.0, "SMB", false).await; // archived below
    exit(&schema, &g, "TECHNOLOGY", "2025-03-10").await;
    run_ok(&schema, r#"mutation($id: ID!) { archiveStakeholder(id: $id) { id } }"#, json!({ "id": g })).await;
    let h = customer(&schema, "H", None, 5.0, "SMB", false).await; // a prospect: never a customer
    let manager = run_ok(
        &schema,
        r#"mutation { createEmployee(input: { key: "M", name: "Manager", power: 0.5, interest: 0.5 }) { id } }"#,
        json!({}),
    )
    .await["createEmployee"]["id"]
        .clone();
    for managed in [&b, &d] {
        let link = r#"mutation($input: UpsertRelationshipInput!) { upsertRelationship(input: $input) { created } }"#;
        run_ok(
            &schema,
            link,
            json!({ "input": { "from": manager, "to": managed, "type": "MANAGES", "level": "BASIC" } }),
        )
        .await;
    }

    let (from, to) = ("2025-01-01", "2025-04-01");
    let editor = analysis(&schema, EDITOR, from, to, json!(null)).await;
    // At the start: A, B, E, F (D had left, C and H were not customers). Churned: B, E, F. Exits: B, C, D, E, F.
    assert_eq!(row(&editor), vec![json!(4), json!(3), json!(5), json!(1660.0), json!(1)]);
    assert_eq!((editor["churnRate"].clone(), editor["retentionRate"].clone()), (json!(0.75), json!(0.25)));
    // Gone at the start: D (left in November 2024), back in February.
    assert_eq!(
        (editor["goneAtStart"].clone(), editor["wonBack"].clone(), editor["winBackRate"].clone()),
        (json!(1), json!(1), json!(1.0))
    );
    assert_eq!(
        reasons(&editor),
        json!({ "PRICE": [2, 210.0], "PRODUCT": [1, 1000.0], "SERVICE": [1, 400.0], "MARKET": [1, 50.0] })
    );
    assert_eq!(editor["byReason"].as_array().unwrap().len(), 6, "every reason, zeros included");
    assert_eq!(
        editor["byReason"][0],
        json!({ "reason": "PRICE", "controllable": true, "exits": 2, "share": 0.4,
        "lifetimeValueLost": 210.0 })
    );
    assert_eq!(editor["controllable"], json!({ "exits": 4, "share": 0.8, "lifetimeValueLost": 1610.0 }));
    assert_eq!(editor["uncontrollable"], json!({ "exits": 1, "share": 0.2, "lifetimeValueLost": 50.0 }));
    let months: Vec<Vec<Value>> = editor["months"].as_array().unwrap().iter().map(row).collect();
    assert_eq!(
        months,
        vec![
            // January: A, B, E, F at the start; E leaves.
            vec![json!(4), json!(1), json!(1), json!(10.0), json!(0)],
            // February: A, B, C, F; B and F leave; D comes back.
            vec![json!(4), json!(2), json!(2), json!(1200.0), json!(1)],
            // March: A, C, D; C and D leave.
            vec![json!(3), json!(2), json!(2), json!(450.0), json!(0)],
        ]
    );
    assert_eq!(editor["months"][1]["from"], "2025-02-01");
    assert_eq!(editor["months"][1]["churnRate"], 0.5);

    // A viewer does not count the private customer F, anywhere.
    let viewer = analysis(&schema, VIEWER, from, to, json!(null)).await;
    assert_eq!(row(&viewer), vec![json!(3), json!(2), json!(4), json!(660.0), json!(1)]);
    assert_eq!(reasons(&viewer), json!({ "PRICE": [2, 210.0], "SERVICE": [1, 400.0], "MARKET": [1, 50.0] }));
    let months: Vec<Value> =
        viewer["months"].as_array().unwrap().iter().map(|month| month["customersAtStart"].clone()).collect();
    assert_eq!(months, vec![json!(3), json!(3), json!(3)]);

    // The archived customer G counts when asked for.
    let archived = analysis(&schema, EDITOR, from, to, json!({ "includeArchived": true })).await;
    assert_eq!(row(&archived), vec![json!(5), json!(4), json!(6), json!(1730.0), json!(1)]);
    // The manager's customers: B and D.
    let managed = analysis(&schema, EDITOR, from, to, json!({ "manager": manager })).await;
    assert_eq!(row(&managed), vec![json!(1), json!(1), json!(2), json!(600.0), json!(1)]);
    // A segment, and a market every customer is in.
    let smb = analysis(&schema, EDITOR, from, to, json!({ "segments": ["SMB", "SMB"] })).await;
    assert_eq!(row(&smb), vec![json!(4), json!(3), json!(3), json!(1210.0), json!(0)]);
    let market = analysis(&schema, EDITOR, from, to, json!({ "markets": ["CUSTOMER"] })).await;
    assert_eq!(row(&market), row(&editor));
    let none = analysis(&schema, EDITOR, from, to, json!({ "markets": ["SUPPLIER"] })).await;
    assert_eq!(row(&none), vec![json!(0), json!(0), json!(0), json!(0.0), json!(0)]);
    assert_eq!(none["churnRate"], Value::Null);

    // The customers' own lifecycle.
    let lifecycle = run_ok(
        &schema,
        r#"query($id: ID!) { node(id: $id) { ... on Customer { customerSince status lifecycle { date change reason } } } }"#,
        json!({ "id": d }),
    )
    .await;
    assert_eq!(
        lifecycle["node"],
        json!({ "customerSince": "2023-01-01", "status": "CHURNED", "lifecycle": [
            { "date": "2024-11-01", "change": "EXIT", "reason": "SERVICE" },
            { "date": "2025-02-14", "change": "WIN_BACK", "reason": null },
            { "date": "2025-03-30", "change": "EXIT", "reason": "SERVICE" },
        ] })
    );
    let prospect = run_ok(
        &schema,
        r#"query($id: ID!) { node(id: $id) { ... on Customer { customerSince } } }"#,
        json!({ "id": h }),
    )
    .await;
    assert_eq!(prospect["node"]["customerSince"], Value::Null);
    // Coming back through an update is a win-back today, in the change log as one.
    let update = r#"mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { status lifecycle { date change } } }"#;
    let back = run_ok(&schema, update, json!({ "input": { "id": b, "status": "ACTIVE" } })).await;
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(back["updateCustomer"]["lifecycle"][1], json!({ "date": today, "change": "WIN_BACK" }));
    let log = run_ok(&schema, "{ changes(first: 100) { edges { node { kind } } } }", json!({})).await;
    let kinds: Vec<&str> =
        log["changes"]["edges"].as_array().unwrap().iter().map(|edge| edge["node"]["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|kind| **kind == "CUSTOMER_WON_BACK").count(),
        2,
        "D's, and B's by update: {kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"CUSTOMER_WON_BACK"), "the update is logged as a win-back");
    assert_eq!(kinds.iter().filter(|kind| **kind == "CUSTOMER_EXITED").count(), 7, "{kinds:?}");
    let _ = a;
}

#[tokio::test]
async fn bad_periods_managers_and_lifecycle_changes_are_refused_with_a_code_and_change_nothing() {
    let (store, _dir) = fresh_store();
    let schema = schema(store);
    let refused = |from: &'static str, to: &'static str, filter: Value, caller: Caller| {
        let schema = schema.clone();
        async move {
            error_code(&run_as(&schema, caller, ANALYSIS, json!({ "from": from, "to": to, "filter": filter })).await)
        }
    };
    assert_eq!(refused("2025-01-01", "2025-01-01", json!(null), EDITOR).await, ("BAD_USER_INPUT".into(), "to".into()));
    assert_eq!(refused("2000-01-01", "2025-01-01", json!(null), EDITOR).await, ("BAD_USER_INPUT".into(), "to".into()));
    let many: Vec<String> = (0..101).map(|n| format!("S{n}")).collect();
    assert_eq!(
        refused("2025-01-01", "2025-02-01", json!({ "segments": many }), EDITOR).await,
        ("BAD_USER_INPUT".into(), "filter.segments".into())
    );
    let repeated: Vec<&str> = vec!["SMB"; 50_000];
    let once = run_as(
        &schema,
        EDITOR,
        ANALYSIS,
        json!({ "from": "2025-01-01", "to": "2025-02-01", "filter": { "segments": repeated } }),
    )
    .await;
    assert!(once.get("errors").is_none(), "a repeated segment is one segment: {once:#}");
    let customer = customer(&schema, "C", Some("2024-01-01"), 1.0, "SMB", false).await;
    let (code, field) = refused("2025-01-01", "2025-02-01", json!({ "manager": customer }), EDITOR).await;
    assert_eq!((code.as_str(), field.as_str()), ("BAD_USER_INPUT", "filter.manager"));
    // A private manager answers a viewer exactly as an id that does not exist.
    let secret = run_ok(
        &schema,
        r#"mutation { createEmployee(input: { key: "S", name: "S", power: 0.5, interest: 0.5, private: true }) { id } }"#,
        json!({}),
    )
    .await["createEmployee"]["id"]
        .clone();
    let unknown = json!(GlobalId::Stakeholder(StakeholderId(9999)).encode().0);
    let hidden = run_as(
        &schema,
        VIEWER,
        ANALYSIS,
        json!({ "from": "2025-01-01", "to": "2025-02-01", "filter": { "manager": secret } }),
    )
    .await;
    let missing = run_as(
        &schema,
        VIEWER,
        ANALYSIS,
        json!({ "from": "2025-01-01", "to": "2025-02-01", "filter": { "manager": unknown } }),
    )
    .await;
    let message = |response: &Value| response["errors"][0]["message"].as_str().unwrap().replace("9999", "ID");
    let GlobalId::Stakeholder(number) = GlobalId::decode(secret.as_str().unwrap(), "id").unwrap() else { panic!() };
    assert_eq!(message(&hidden).replace(&number.to_string(), "ID"), message(&missing), "{hidden:#} {missing:#}");
    // CHURNED only through an exit; a win-back only of a customer who left, not before its exit, not in the future.
    let update = r#"mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { status } }"#;
    let churned = run_as(&schema, EDITOR, update, json!({ "input": { "id": customer, "status": "CHURNED" } })).await;
    assert!(churned["errors"][0]["message"].as_str().unwrap().contains("recordCustomerExit"), "{churned:#}");
    let not_gone =
        run_as(&schema, EDITOR, WIN_BACK, json!({ "input": { "id": customer, "date": "2025-01-01" } })).await;
    assert!(not_gone["errors"][0]["message"].as_str().unwrap().contains("not CHURNED"), "{not_gone:#}");
    exit(&schema, &customer, "PRICE", "2025-03-01").await;
    let early = run_as(&schema, EDITOR, WIN_BACK, json!({ "input": { "id": customer, "date": "2025-02-01" } })).await;
    assert_eq!(error_code(&early), ("BAD_USER_INPUT".into(), "input.date".into()));
    let future = run_as(&schema, EDITOR, WIN_BACK, json!({ "input": { "id": customer, "date": "2999-01-01" } })).await;
    assert_eq!(error_code(&future), ("BAD_USER_INPUT".into(), "input.date".into()));
    let before_since =
        run_as(&schema, EDITOR, EXIT, json!({ "input": { "id": customer, "reason": "PRICE", "date": "2023-01-01" } }))
            .await;
    assert!(
        before_since["errors"][0]["message"].as_str().unwrap().contains("on or after 2024-01-01"),
        "{before_since:#}"
    );
    // A customer is not created CHURNED (create it, then record its exit), nor a prospect with a customer-since day.
    let churned_new = run_as(
        &schema,
        EDITOR,
        CREATE,
        json!({ "input": { "key": "X", "name": "X", "power": 0.5, "interest": 0.5, "status": "CHURNED" } }),
    )
    .await;
    assert_eq!(error_code(&churned_new), ("BAD_USER_INPUT".into(), "input.status".into()));
    let prospect_since = run_as(&schema, EDITOR, CREATE, json!({ "input": { "key": "Y", "name": "Y", "power": 0.5, "interest": 0.5, "status": "PROSPECT", "customerSince": "2020-01-01" } })).await;
    assert_eq!(error_code(&prospect_since), ("BAD_USER_INPUT".into(), "input.customerSince".into()));
    let since_future = run_as(
        &schema,
        EDITOR,
        CREATE,
        json!({ "input": { "key": "F", "name": "F", "power": 0.5, "interest": 0.5, "customerSince": "2999-01-01" } }),
    )
    .await;
    assert_eq!(error_code(&since_future), ("BAD_USER_INPUT".into(), "input.customerSince".into()));
    let lifecycle = run_ok(
        &schema,
        r#"query($id: ID!) { node(id: $id) { ... on Customer { status lifecycle { date } } } }"#,
        json!({ "id": customer }),
    )
    .await;
    assert_eq!(
        lifecycle["node"],
        json!({ "status": "CHURNED", "lifecycle": [{ "date": "2025-03-01" }] }),
        "nothing else written"
    );
}

/// The recount in SQL of one period over the demo's stored records: customers at the start of `from` and how
/// many of them left by `to`, exits and lifetime value lost by reason, win-backs.
fn recount(sql: &rusqlite::Connection, from: &str, to: &str, privacy: &str) -> (u64, u64, Value, u64) {
    let customers = format!(
        "SELECT id, record, json_extract(record, '$.details.lifetime_value') AS value,
                COALESCE(json_extract(record, '$.details.since'),
                         CASE WHEN status = 'PROSPECT' THEN NULL ELSE substr(json_extract(record, '$.created_at'), 1, 10) END) AS since
         FROM stakeholder WHERE kind = 'CUSTOMER' AND archived_at IS NULL AND {privacy}"
    );
    let events = "SELECT json_extract(e.value, '$.event') AS event, json_extract(e.value, '$.date') AS day, \
                  json_extract(e.value, '$.reason') AS reason, e.key AS position \
                  FROM json_each(json_extract(c.record, '$.details.lifecycle')) e";
    // At the start: a customer before `from` whose last change before `from` (if any) was a win-back.
    let at_start = format!(
        "WITH c AS ({customers}) SELECT c.id FROM c WHERE c.since < '{from}' AND COALESCE(
            (SELECT event FROM ({events}) WHERE day < '{from}' ORDER BY position DESC LIMIT 1), 'WIN_BACK') = 'WIN_BACK'"
    );
    let count = |query: String| -> u64 { sql.query_row(&query, [], |row| row.get::<_, i64>(0)).unwrap() as u64 };
    let customers_at_start = count(format!("SELECT COUNT(*) FROM ({at_start})"));
    let churned = count(format!(
        "WITH c AS ({customers}) SELECT COUNT(*) FROM c WHERE c.id IN ({at_start}) AND EXISTS
            (SELECT 1 FROM ({events}) WHERE event = 'EXIT' AND day >= '{from}' AND day < '{to}')"
    ));
    let mut by_reason = serde_json::Map::new();
    let mut statement = sql
        .prepare(&format!(
            "WITH c AS ({customers}) SELECT json_extract(e.value, '$.reason') AS reason, COUNT(*), TOTAL(c.value)
             FROM c, json_each(json_extract(c.record, '$.details.lifecycle')) e
             WHERE json_extract(e.value, '$.event') = 'EXIT' AND json_extract(e.value, '$.date') >= '{from}'
               AND json_extract(e.value, '$.date') < '{to}' GROUP BY reason"
        ))
        .unwrap();
    let rows = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, f64>(2)?)))
        .unwrap();
    for found in rows {
        let (reason, exits, value) = found.unwrap();
        by_reason.insert(reason, json!([exits, value]));
    }
    let win_backs = count(format!(
        "WITH c AS ({customers}) SELECT COUNT(*) FROM c, json_each(json_extract(c.record, '$.details.lifecycle')) e
         WHERE json_extract(e.value, '$.event') = 'WIN_BACK' AND json_extract(e.value, '$.date') >= '{from}'
           AND json_extract(e.value, '$.date') < '{to}'"
    ));
    (customers_at_start, churned, Value::Object(by_reason), win_backs)
}

#[tokio::test]
async fn the_demo_s_two_years_of_exits_match_a_recount_in_sql_for_editors_and_viewers() {
    let schema = schema(demo_store());
    let sql = rusqlite::Connection::open(demo_db()).unwrap();
    // The demo's two years of history end at its anchor, 2026-06-01.
    let (from, to) = ("2024-06-01", "2026-06-01");
    let mut private_left_out = false;
    for (caller, privacy) in [(EDITOR, "1"), (VIEWER, "private = 0")] {
        let report = analysis(&schema, caller, from, to, json!(null)).await;
        let (customers_at_start, churned, by_reason, win_backs) = recount(&sql, from, to, privacy);
        assert_eq!(report["customersAtStart"], customers_at_start, "{caller:?}");
        assert_eq!(report["churned"], churned, "{caller:?}");
        assert_eq!(report["winBacks"], win_backs, "{caller:?}");
        // Gone at the start (last change before `from` an exit), and of those, back during the period.
        let gone = format!(
            "SELECT s.id, s.record FROM stakeholder s WHERE s.kind = 'CUSTOMER' AND s.archived_at IS NULL AND {privacy}
             AND (SELECT json_extract(e.value, '$.event') FROM json_each(json_extract(s.record, '$.details.lifecycle')) e
                  WHERE json_extract(e.value, '$.date') < '{from}' ORDER BY e.key DESC LIMIT 1) = 'EXIT'"
        );
        let count = |query: String| -> u64 { sql.query_row(&query, [], |row| row.get::<_, i64>(0)).unwrap() as u64 };
        assert_eq!(report["goneAtStart"], count(format!("SELECT COUNT(*) FROM ({gone})")), "{caller:?}");
        let back = count(format!(
            "SELECT COUNT(*) FROM ({gone}) g WHERE EXISTS (SELECT 1 FROM json_each(json_extract(g.record, '$.details.lifecycle')) e
             WHERE json_extract(e.value, '$.event') = 'WIN_BACK' AND json_extract(e.value, '$.date') >= '{from}'
               AND json_extract(e.value, '$.date') < '{to}')"
        ));
        assert_eq!(report["wonBack"], back, "{caller:?}");
        // Sums of lifetime values in another order than the service's: equal to rounding.
        let reported = reasons(&report);
        assert_eq!(
            reported.as_object().unwrap().keys().collect::<Vec<_>>(),
            by_reason.as_object().unwrap().keys().collect::<Vec<_>>()
        );
        for (reason, expected) in by_reason.as_object().unwrap() {
            assert_eq!(reported[reason][0], expected[0], "{reason} {caller:?}");
            let (got, want) = (reported[reason][1].as_f64().unwrap(), expected[1].as_f64().unwrap());
            assert!((got - want).abs() <= 1e-9 * want.max(1.0), "{reason}: {got} vs {want}");
        }
        assert!(customers_at_start > 20 && churned > 3 && win_backs > 0, "a demo with something to chart: {report:#}");
        assert!(by_reason.as_object().unwrap().len() >= 4, "a mix of reasons: {by_reason}");
        // The monthly series: 24 months, their exits adding up, each month's start recounted.
        let months = report["months"].as_array().unwrap();
        assert_eq!(months.len(), 24);
        let exits: u64 = months.iter().map(|month| month["exits"].as_u64().unwrap()).sum();
        assert_eq!(exits, report["exits"].as_u64().unwrap());
        for month in months.iter().step_by(5) {
            let (start, end) = (month["from"].as_str().unwrap(), month["to"].as_str().unwrap());
            let (at_start, churned, _, win_backs) = recount(&sql, start, end, privacy);
            assert_eq!(
                (
                    month["customersAtStart"].as_u64().unwrap(),
                    month["churned"].as_u64().unwrap(),
                    month["winBacks"].as_u64().unwrap()
                ),
                (at_start, churned, win_backs),
                "{start} {caller:?}"
            );
        }
        if caller == VIEWER {
            let editor = analysis(&schema, EDITOR, from, to, json!(null)).await;
            private_left_out = editor["customersAtStart"] != report["customersAtStart"];
        }
    }
    assert!(private_left_out, "the demo has private customers for the viewer's analysis to leave out");
}

#[tokio::test]
async fn a_subscriber_filtering_on_exits_and_win_backs_gets_each_once_in_order_however_it_was_written() {
    use futures_util::StreamExt;
    let (store, _dir) = fresh_store();
    let schema = schema(store);
    let request = async_graphql::Request::new(
        "subscription { changes(filter: { kinds: [CUSTOMER_EXITED, CUSTOMER_WON_BACK] }) { kind stakeholders } }",
    )
    .data(EDITOR);
    let mut feed = Box::pin(async_graphql::Executor::execute_stream(&schema, request, None));
    // Let the subscription start at the current position before anything is written.
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), feed.next()).await.is_err());
    let id = customer(&schema, "S", Some("2024-01-01"), 10.0, "SMB", false).await;
    exit(&schema, &id, "PRICE", "2025-01-10").await;
    win_back(&schema, &id, "2025-02-10").await;
    exit(&schema, &id, "SERVICE", "2025-03-10").await;
    // Back again through an update: a win-back too.
    let update = r#"mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { status } }"#;
    run_ok(&schema, update, json!({ "input": { "id": id, "status": "AT_RISK" } })).await;
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next()).await.unwrap().unwrap();
        let event = event.data.into_json().unwrap()["changes"].clone();
        assert_eq!(event["stakeholders"], json!([id]));
        kinds.push(event["kind"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds, ["CUSTOMER_EXITED", "CUSTOMER_WON_BACK", "CUSTOMER_EXITED", "CUSTOMER_WON_BACK"]);
    // Nothing else (the creation) passed the filter.
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), feed.next()).await.is_err());
}

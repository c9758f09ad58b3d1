//! Every operation in `queries/` runs against the demo graph, and its results are checked against the database
//! with independent SQL.

use crate::support::{demo_copy, demo_db, demo_store, operation, run_ok, schema};
use serde_json::{json, Value};
use stakegraph::api::ids::GlobalId;
use std::collections::BTreeSet;

/// The operations these tests run; a new file in `queries/` must be added here (and tested).
/// Subscriptions (`changes_feed`, `weakening_relationships`) run in `subscriptions.rs`.
const COVERED: &[&str] = &[
    "at_risk_customers.graphql",
    "brokers.graphql",
    "changes_feed.graphql",
    "changes_since.graphql",
    "create_customer.graphql",
    "customers_with_managers.graphql",
    "dashboard_page.graphql",
    "exit_dashboard.graphql",
    "influence_reach.graphql",
    "key_person_risk.graphql",
    "manage_closely.graphql",
    "market_charts.graphql",
    "market_overview.graphql",
    "manager_portfolio.graphql",
    "program_retention.graphql",
    "record_customer_exit.graphql",
    "record_customer_win_back.graphql",
    "record_interactions.graphql",
    "regulator_to_customer_paths.graphql",
    "retention_priorities.graphql",
    "search_stakeholders.graphql",
    "stakeholder_profile.graphql",
    "strongest_relationships.graphql",
    "top_influencers.graphql",
    "upsert_relationship.graphql",
    "weakening_relationships.graphql",
];

fn sql() -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(demo_db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn count(sql_text: &str, params: impl rusqlite::Params) -> u64 {
    sql().query_row(sql_text, params, |row| row.get::<_, i64>(0)).unwrap() as u64
}

fn number(id: &Value) -> i64 {
    match GlobalId::decode(id.as_str().expect("an id"), "id").unwrap() {
        GlobalId::Stakeholder(id) => id.0,
        GlobalId::Relationship(id) => id.0,
        GlobalId::Interaction(id) => id.0,
        GlobalId::Program(id) => id.0,
    }
}

/// The employee who manages the most customers, and how many.
pub(crate) fn busiest_manager() -> (i64, i64) {
    sql()
        .query_row(
            "SELECT from_id, COUNT(*) AS n FROM relationship WHERE type = 'MANAGES' GROUP BY from_id ORDER BY n DESC, from_id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

fn stakeholder_gid(id: i64) -> Value {
    json!(GlobalId::Stakeholder(stakegraph::domain::StakeholderId(id)).encode().0)
}

fn edges(connection: &Value) -> &Vec<Value> {
    connection["edges"].as_array().expect("edges")
}

#[test]
fn every_committed_operation_is_covered() {
    let directory = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries");
    let found: BTreeSet<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".graphql"))
        .collect();
    let covered: BTreeSet<String> = COVERED.iter().map(|name| name.to_string()).collect();
    assert_eq!(found, covered, "every file in queries/ must run in a test");
    assert!(found.len() >= 8);
}

#[tokio::test]
async fn customers_with_managers() {
    let data =
        run_ok(&schema(demo_store()), &operation("customers_with_managers.graphql"), json!({ "first": 40 })).await;
    let page = &data["stakeholders"];
    let expected = count(
        "SELECT COUNT(*) FROM stakeholder WHERE kind = 'CUSTOMER' AND status IN ('ACTIVE', 'AT_RISK') AND archived_at IS NULL",
        [],
    );
    assert_eq!(page["totalCount"].as_u64().unwrap(), expected);
    assert_eq!(edges(page).len(), 40);
    let names: Vec<&str> = edges(page).iter().map(|edge| edge["node"]["name"].as_str().unwrap()).collect();
    assert!(names.windows(2).all(|pair| pair[0] <= pair[1]), "sorted by name");
    let mut managed = 0;
    for edge in edges(page) {
        let node = &edge["node"];
        assert!(["ACTIVE", "AT_RISK"].contains(&node["status"].as_str().unwrap()));
        if let Some(manager) = node["relationshipManager"].as_object() {
            managed += 1;
            let manages = count(
                "SELECT COUNT(*) FROM relationship r JOIN stakeholder e ON e.id = r.from_id
                 WHERE r.type = 'MANAGES' AND r.from_id = ?1 AND r.to_id = ?2 AND e.kind = 'EMPLOYEE'",
                [number(&manager["id"]), number(&node["id"])],
            );
            assert_eq!(manages, 1, "the manager shown really manages the customer");
        } else {
            let manages =
                count("SELECT COUNT(*) FROM relationship WHERE type = 'MANAGES' AND to_id = ?1", [number(&node["id"])]);
            assert_eq!(manages, 0, "a customer with a manager must show it");
        }
    }
    assert!(managed > 0, "some customers on the page have a relationship manager");
}

#[tokio::test]
async fn stakeholder_profile() {
    let (busiest, relationships): (i64, i64) = sql()
        .query_row(
            "SELECT id, (SELECT COUNT(*) FROM relationship r WHERE r.from_id = s.id OR r.to_id = s.id) AS n
             FROM stakeholder s WHERE private = 0 ORDER BY n DESC, id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let variables = json!({ "id": stakeholder_gid(busiest), "relationships": 10, "interactions": 3 });
    let data = run_ok(&schema(demo_store()), &operation("stakeholder_profile.graphql"), variables).await;
    let profile = &data["stakeholder"];
    assert_eq!(number(&profile["id"]), busiest);
    let listed = &profile["relationships"];
    assert_eq!(listed["totalCount"].as_i64().unwrap(), relationships);
    assert_eq!(edges(listed).len(), 10.min(relationships as usize));
    let levels: Vec<i64> = edges(listed)
        .iter()
        .map(|edge| {
            ["BASIC", "REACTIVE", "ACCOUNTABLE", "PROACTIVE", "PARTNERSHIP"]
                .iter()
                .position(|level| edge["node"]["level"] == *level)
                .unwrap() as i64
        })
        .collect();
    assert!(levels.windows(2).all(|pair| pair[0] >= pair[1]), "strongest level first: {levels:?}");
    for edge in edges(listed) {
        let relationship = number(&edge["node"]["id"]);
        let interactions = count("SELECT COUNT(*) FROM interaction WHERE relationship_id = ?1", [relationship]);
        let page = &edge["node"]["interactions"];
        assert_eq!(page["totalCount"].as_u64().unwrap(), interactions);
        let times: Vec<&str> = edges(page).iter().map(|edge| edge["node"]["at"].as_str().unwrap()).collect();
        assert!(times.len() <= 3 && times.windows(2).all(|pair| pair[0] >= pair[1]), "latest first");
        let counterpart = number(&edge["counterpart"]["id"]);
        let ends = count("SELECT COUNT(*) FROM relationship WHERE id = ?1 AND (from_id = ?2 OR to_id = ?2) AND (from_id = ?3 OR to_id = ?3)", [relationship, busiest, counterpart]);
        assert_eq!(ends, 1, "the counterpart is the other end");
    }
}

#[tokio::test]
async fn dashboard_page() {
    let data = run_ok(&schema(demo_store()), &operation("dashboard_page.graphql"), json!({ "first": 50 })).await;
    let page = &data["stakeholders"];
    assert_eq!(edges(page).len(), 50);
    assert_eq!(
        page["totalCount"].as_u64().unwrap(),
        count("SELECT COUNT(*) FROM stakeholder WHERE kind = 'CUSTOMER' AND archived_at IS NULL", [])
    );
    for edge in edges(page) {
        let id = number(&edge["node"]["id"]);
        let relationships = &edge["node"]["relationships"];
        let expected = count("SELECT COUNT(*) FROM relationship WHERE from_id = ?1 OR to_id = ?1", [id]);
        assert_eq!(relationships["totalCount"].as_u64().unwrap(), expected);
        assert_eq!(edges(relationships).len() as u64, expected.min(5));
    }
}

#[tokio::test]
async fn market_charts() {
    let data =
        run_ok(&schema(demo_store()), &operation("market_charts.graphql"), json!({ "market": "CUSTOMER" })).await;
    let people = &data["stakeholders"]["aggregate"];
    // The customer market's bit is 1 (the first market).
    let in_market = "archived_at IS NULL AND (markets & 1) != 0";
    assert_eq!(
        people["count"].as_u64().unwrap(),
        count(&format!("SELECT COUNT(*) FROM stakeholder WHERE {in_market}"), [])
    );
    for bucket in people["byKind"].as_array().unwrap() {
        let expected = count(
            &format!("SELECT COUNT(*) FROM stakeholder WHERE {in_market} AND kind = ?1"),
            [bucket["key"].as_str().unwrap()],
        );
        assert_eq!(bucket["count"].as_u64().unwrap(), expected, "{bucket}");
    }
    let listing = &data["relationships"];
    let either_end = "FROM relationship r JOIN stakeholder a ON a.id = r.from_id JOIN stakeholder b ON b.id = r.to_id
        WHERE a.archived_at IS NULL AND b.archived_at IS NULL AND ((a.markets | b.markets) & 1) != 0";
    let total = count(&format!("SELECT COUNT(*) {either_end}"), []);
    assert_eq!(listing["aggregate"]["count"].as_u64().unwrap(), total);
    for bucket in listing["aggregate"]["byLevel"].as_array().unwrap() {
        let rank = ["BASIC", "REACTIVE", "ACCOUNTABLE", "PROACTIVE", "PARTNERSHIP"]
            .iter()
            .position(|level| *level == bucket["key"].as_str().unwrap())
            .unwrap()
            + 1;
        let expected = count(&format!("SELECT COUNT(*) {either_end} AND r.level = ?1"), [rank as i64]);
        assert_eq!(bucket["count"].as_u64().unwrap(), expected, "{bucket}");
    }
    let histogram = listing["aggregate"]["strengthHistogram"].as_array().unwrap();
    assert_eq!(histogram.len(), 5);
    assert_eq!(histogram.iter().map(|bucket| bucket["count"].as_u64().unwrap()).sum::<u64>(), total);
    let strongest = edges(listing);
    assert_eq!(strongest.len(), 5);
    let scores: Vec<f64> = strongest.iter().map(|edge| edge["node"]["strength"]["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|pair| pair[0] >= pair[1] - 1e-4), "strongest first: {scores:?}");
    let mean = listing["aggregate"]["meanStrength"].as_f64().unwrap();
    assert!(scores[0] >= mean, "the strongest is above the mean");
}

#[tokio::test]
async fn at_risk_customers() {
    let data = run_ok(&schema(demo_store()), &operation("at_risk_customers.graphql"), json!({})).await;
    let page = &data["stakeholders"];
    let expected = count("SELECT COUNT(*) FROM stakeholder WHERE status = 'AT_RISK' AND archived_at IS NULL", []);
    assert!(expected > 0, "the demo graph has customers at risk");
    assert_eq!(page["totalCount"].as_u64().unwrap(), expected);
    let powers: Vec<f64> = edges(page).iter().map(|edge| edge["node"]["power"].as_f64().unwrap()).collect();
    assert!(powers.windows(2).all(|pair| pair[0] >= pair[1]), "most powerful first");
    assert!(edges(page).iter().all(|edge| edge["node"]["status"] == "AT_RISK"));
}

#[tokio::test]
async fn retention_priorities() {
    let data = run_ok(&schema(demo_store()), &operation("retention_priorities.graphql"), json!({})).await;
    let ranking = &data["atRiskCustomers"];
    let expected = count(
        "SELECT COUNT(*) FROM stakeholder WHERE kind = 'CUSTOMER' AND status IN ('ACTIVE', 'AT_RISK', 'WON_BACK') \
         AND archived_at IS NULL",
        [],
    );
    assert_eq!(ranking["candidates"].as_u64().unwrap(), expected);
    let scored = ranking["scored"].as_u64().unwrap();
    assert!((20..expected).contains(&scored), "{scored} of {expected} scored");
    let entries = ranking["customers"].as_array().unwrap();
    assert_eq!(entries.len(), 20);
    let mut previous = f64::INFINITY;
    for (place, entry) in entries.iter().enumerate() {
        assert_eq!(entry["position"], place + 1);
        let (customer, risk) = (&entry["customer"], &entry["churnRisk"]);
        assert!(matches!(customer["status"].as_str(), Some("ACTIVE" | "AT_RISK" | "WON_BACK")), "{customer}");
        let stored = count(
            "SELECT CAST(json_extract(record, '$.details.lifetime_value') * 100 AS INTEGER) FROM stakeholder \
             WHERE id = ?1",
            [number(&customer["id"])],
        );
        let lifetime_value = customer["lifetimeValue"].as_f64().unwrap();
        assert_eq!(stored, (lifetime_value * 100.0) as u64);
        let value = risk["valueAtRisk"].as_f64().unwrap();
        assert!((value - lifetime_value * risk["score"].as_f64().unwrap()).abs() < 1e-6 * lifetime_value);
        assert!(value <= previous, "most value at risk first");
        previous = value;
        let contributions: f64 =
            risk["drivers"].as_array().unwrap().iter().map(|d| d["contribution"].as_f64().unwrap()).sum();
        assert!((contributions - risk["score"].as_f64().unwrap()).abs() < 1e-9, "{risk}");
        assert_eq!(risk["model"], "churn-v1");
    }
}

#[tokio::test]
async fn manage_closely() {
    let data = run_ok(&schema(demo_store()), &operation("manage_closely.graphql"), json!({})).await;
    let page = &data["stakeholders"];
    // INFLUENCE is bit 3 of the stored market mask.
    let expected = count(
        "SELECT COUNT(*) FROM stakeholder WHERE (markets & 8) != 0 AND power >= 0.5 AND interest >= 0.5 AND archived_at IS NULL",
        [],
    );
    assert!(expected > 0, "the demo graph has powerful, interested media or government");
    assert_eq!(page["totalCount"].as_u64().unwrap(), expected);
    for edge in edges(page) {
        let node = &edge["node"];
        assert_eq!(node["mendelow"], "MANAGE_CLOSELY");
        assert!(node["power"].as_f64().unwrap() >= 0.5 && node["interest"].as_f64().unwrap() >= 0.5);
    }
}

#[tokio::test]
async fn manager_portfolio() {
    let (manager, managed): (i64, i64) = busiest_manager();
    let data = run_ok(
        &schema(demo_store()),
        &operation("manager_portfolio.graphql"),
        json!({ "id": stakeholder_gid(manager) }),
    )
    .await;
    let portfolio = &data["stakeholder"]["managedCustomers"];
    assert_eq!(portfolio["totalCount"].as_i64().unwrap(), managed);
    assert!(managed > 1, "relationship managers hold several customers");
    // The totals over the same customers: those that are customers now have a churn risk, and hold the value.
    let totals = &data["stakeholder"]["portfolio"];
    assert_eq!(totals["customers"].as_i64().unwrap(), managed);
    let active: Vec<&Value> =
        edges(portfolio).iter().map(|edge| &edge["node"]).filter(|node| !node["churnRisk"].is_null()).collect();
    assert_eq!(totals["activeCustomers"].as_u64().unwrap(), active.len() as u64);
    let active_sql = count(
        "SELECT COUNT(*) FROM relationship r JOIN stakeholder c ON c.id = r.to_id WHERE r.type = 'MANAGES'
         AND r.from_id = ?1 AND c.status NOT IN ('PROSPECT', 'CHURNED') AND c.archived_at IS NULL",
        [manager],
    );
    assert_eq!(active.len() as u64, active_sql);
    let held: f64 = active.iter().map(|node| node["lifetimeValue"].as_f64().unwrap_or(0.0)).sum();
    assert!((totals["lifetimeValue"].as_f64().unwrap() - held).abs() < 1e-6 * held.max(1.0), "{totals:#}");
    let at_risk = active.iter().filter(|node| node["churnRisk"]["score"].as_f64().unwrap() >= 0.5).count();
    // Scores move with the clock between the two fields' reads by far less than the distance to 0.5 of most.
    assert!(totals["atRisk"].as_u64().unwrap().abs_diff(at_risk as u64) <= 1, "{totals:#}");
    assert!(totals["keyPersonLoss"]["affected"].as_i64().unwrap() > 0, "{totals:#}");
    for edge in edges(portfolio) {
        let customer = number(&edge["node"]["id"]);
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM relationship WHERE type = 'MANAGES' AND from_id = ?1 AND to_id = ?2",
                [manager, customer]
            ),
            1
        );
    }
}

#[tokio::test]
async fn search_stakeholders() {
    let name: String = sql()
        .query_row("SELECT name FROM stakeholder WHERE kind = 'SUPPLIER' ORDER BY id LIMIT 1", [], |row| row.get(0))
        .unwrap();
    let word = name.split_whitespace().next().unwrap().to_lowercase();
    let data =
        run_ok(&schema(demo_store()), &operation("search_stakeholders.graphql"), json!({ "text": word, "first": 100 }))
            .await;
    let page = &data["stakeholders"];
    let expected = count(
        "SELECT COUNT(*) FROM stakeholder WHERE (name LIKE ?1 OR key LIKE ?1) AND archived_at IS NULL",
        [format!("%{word}%")],
    );
    assert!(expected >= 1);
    assert_eq!(page["totalCount"].as_u64().unwrap(), expected);
    for edge in edges(page) {
        let node = &edge["node"];
        let text = format!("{} {}", node["name"].as_str().unwrap(), node["key"].as_str().unwrap()).to_lowercase();
        assert!(text.contains(&word), "{text} contains {word}");
    }
}

#[tokio::test]
async fn create_customer() {
    let (store, _dir) = demo_copy();
    let input = json!({ "key": "CRM-0001", "name": "Harbour Bakeries", "status": "ACTIVE", "segment": "SMB", "lifetimeValue": 4200.0, "markets": ["REFERRAL"] });
    let data = run_ok(&schema(store.clone()), &operation("create_customer.graphql"), json!({ "input": input })).await;
    let created = &data["createCustomer"];
    assert_eq!(created["kind"], "CUSTOMER");
    assert_eq!(created["markets"], json!(["CUSTOMER", "REFERRAL"]));
    assert_eq!(created["status"], "ACTIVE");
    use stakegraph::store::GraphStore;
    let stored = store.stakeholder_by_key("CRM-0001").await.unwrap().expect("stored");
    assert_eq!(stored.id.0, number(&created["id"]));
}

#[tokio::test]
async fn upsert_relationship() {
    let (store, _dir) = demo_copy();
    let schema = schema(store.clone());
    let (a, b): (i64, i64) = sql()
        .query_row(
            "SELECT s.id, m.id FROM stakeholder s, stakeholder m WHERE s.kind = 'CUSTOMER' AND m.kind = 'MEDIA'
             AND NOT EXISTS (SELECT 1 FROM relationship r WHERE r.from_id = m.id AND r.to_id = s.id AND r.type = 'COVERS')
             ORDER BY s.id, m.id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let input = |level: &str| json!({ "input": { "from": stakeholder_gid(b), "to": stakeholder_gid(a), "type": "COVERS", "level": level, "trust": 0.4, "bonds": ["SOCIAL"] } });
    let first = run_ok(&schema, &operation("upsert_relationship.graphql"), input("REACTIVE")).await;
    assert_eq!(first["upsertRelationship"]["created"], true);
    assert_eq!(first["upsertRelationship"]["relationship"]["levelRank"], 2);
    let second = run_ok(&schema, &operation("upsert_relationship.graphql"), input("PROACTIVE")).await;
    assert_eq!(second["upsertRelationship"]["created"], false);
    assert_eq!(second["upsertRelationship"]["relationship"]["id"], first["upsertRelationship"]["relationship"]["id"]);
    assert_eq!(second["upsertRelationship"]["relationship"]["level"], "PROACTIVE");
    assert_eq!(number(&second["upsertRelationship"]["relationship"]["from"]["id"]), b);
}

#[tokio::test]
async fn record_interactions() {
    let (store, _dir) = demo_copy();
    let relationship: i64 = sql()
        .query_row("SELECT id FROM relationship WHERE type = 'MANAGES' ORDER BY id LIMIT 1", [], |row| row.get(0))
        .unwrap();
    let gid = GlobalId::Relationship(stakegraph::domain::RelationshipId(relationship)).encode().0;
    let before = count("SELECT COUNT(*) FROM interaction WHERE relationship_id = ?1", [relationship]);
    let input = json!({ "input": { "interactions": [
        { "relationship": gid, "at": "2026-05-30T10:00:00Z", "channel": "MEETING", "direction": "OUTBOUND", "sentiment": 0.7, "note": "Quarterly review" },
        { "relationship": gid, "at": "2026-05-31T15:30:00Z", "channel": "PURCHASE", "direction": "INBOUND", "sentiment": 0.5, "amount": 18250.0, "productLine": "Analytics" }
    ]}});
    let data = run_ok(&schema(store.clone()), &operation("record_interactions.graphql"), input).await;
    assert_eq!(data["recordInteractions"]["count"], 2);
    assert_eq!(data["recordInteractions"]["interactions"][1]["productLine"], "Analytics");
    use stakegraph::store::GraphStore;
    let pages = store
        .interaction_pages(
            &[stakegraph::domain::RelationshipId(relationship)],
            1,
            None,
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(pages.values().next().unwrap().total_count, before + 2);
}

#[tokio::test]
async fn record_customer_exit() {
    let (store, _dir) = demo_copy();
    let customer: i64 = sql()
        .query_row("SELECT id FROM stakeholder WHERE status = 'ACTIVE' ORDER BY id LIMIT 1", [], |row| row.get(0))
        .unwrap();
    let input = json!({ "input": { "id": stakeholder_gid(customer), "reason": "SERVICE", "date": "2026-05-20" } });
    let data = run_ok(&schema(store), &operation("record_customer_exit.graphql"), input).await;
    let exited = &data["recordCustomerExit"];
    assert_eq!(exited["status"], "CHURNED");
    assert_eq!(exited["exitReason"], "SERVICE");
    assert_eq!(exited["exitDate"], "2026-05-20");
}

#[tokio::test]
async fn exit_dashboard() {
    let variables = json!({ "from": "2024-06-01", "to": "2026-06-01", "segments": ["SMB", "ENTERPRISE"] });
    let data = run_ok(&schema(demo_store()), &operation("exit_dashboard.graphql"), variables).await;
    let report = &data["exitAnalysis"];
    // Exits by reason, recounted from the stored lifecycles of the two segments' live customers.
    let connection = sql();
    let mut statement = connection
        .prepare(
            "SELECT json_extract(e.value, '$.reason'), COUNT(*) FROM stakeholder s,
               json_each(json_extract(s.record, '$.details.lifecycle')) e
             WHERE s.kind = 'CUSTOMER' AND s.archived_at IS NULL
               AND json_extract(s.record, '$.details.segment') IN ('SMB', 'ENTERPRISE')
               AND json_extract(e.value, '$.event') = 'EXIT'
               AND json_extract(e.value, '$.date') >= '2024-06-01' AND json_extract(e.value, '$.date') < '2026-06-01'
             GROUP BY 1",
        )
        .unwrap();
    let expected: std::collections::BTreeMap<String, u64> = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let reported: std::collections::BTreeMap<String, u64> = report["byReason"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|reason| reason["exits"].as_u64().unwrap() > 0)
        .map(|reason| (reason["reason"].as_str().unwrap().to_owned(), reason["exits"].as_u64().unwrap()))
        .collect();
    assert_eq!(reported, expected);
    assert_eq!(report["months"].as_array().unwrap().len(), 24);
    let controllable = report["controllable"]["exits"].as_u64().unwrap();
    assert_eq!(controllable + report["uncontrollable"]["exits"].as_u64().unwrap(), report["exits"].as_u64().unwrap());
    assert_eq!(report["uncontrollable"]["exits"].as_u64().unwrap(), expected.get("MARKET").copied().unwrap_or(0));
}

#[tokio::test]
async fn program_retention() {
    let program = GlobalId::Program(stakegraph::domain::ProgramId(1)).encode();
    let variables = json!({ "program": program, "from": "2025-06-01", "to": "2026-06-01", "asOf": "2026-01-01" });
    let data = run_ok(&schema(demo_store()), &operation("program_retention.graphql"), variables).await;
    // Every programme, with its members on the day recounted from the stored memberships of live customers.
    assert_eq!(data["programs"]["totalCount"], count("SELECT COUNT(*) FROM program", []));
    let nodes = data["programs"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        let members = count(
            "SELECT COUNT(DISTINCT s.id) FROM stakeholder s, json_each(json_extract(s.record, '$.details.memberships')) m
             WHERE s.kind = 'CUSTOMER' AND s.archived_at IS NULL AND json_extract(m.value, '$.program') = ?1
               AND json_extract(m.value, '$.joined') <= '2026-01-01'
               AND (json_extract(m.value, '$.left') IS NULL OR json_extract(m.value, '$.left') > '2026-01-01')",
            [number(&node["id"])],
        );
        assert_eq!(node["memberCount"], members, "{node}");
        assert!(members > 0, "{node}");
    }
    // The retention's segments add up to its cohorts, and the demo's members stay more than comparable others.
    let report = &data["program"]["retention"];
    let sum = |group: &str, field: &str| -> u64 {
        report["segments"].as_array().unwrap().iter().map(|segment| segment[group][field].as_u64().unwrap()).sum()
    };
    assert_eq!(sum("members", "atStart"), report["members"]["atStart"].as_u64().unwrap());
    assert_eq!(sum("members", "churned"), report["members"]["churned"].as_u64().unwrap());
    assert_eq!(sum("nonMembers", "atStart"), report["nonMembers"]["atStart"].as_u64().unwrap());
    assert!(report["difference"].as_f64().unwrap() < 0.0, "{report:#}");
}

#[tokio::test]
async fn record_customer_win_back() {
    let (store, _dir) = demo_copy();
    let (customer, left): (i64, String) = sql()
        .query_row(
            "SELECT id, json_extract(record, '$.details.exit.date') FROM stakeholder WHERE status = 'CHURNED'
             ORDER BY id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let input = json!({ "input": { "id": stakeholder_gid(customer), "date": "2026-05-30" } });
    let data = run_ok(&schema(store), &operation("record_customer_win_back.graphql"), input).await;
    let back = &data["recordCustomerWinBack"];
    assert_eq!(back["status"], "WON_BACK");
    let lifecycle = back["lifecycle"].as_array().unwrap();
    assert_eq!(lifecycle.last().unwrap(), &json!({ "date": "2026-05-30", "change": "WIN_BACK", "reason": null }));
    assert_eq!(lifecycle[lifecycle.len() - 2]["date"], left, "after its exit");
}

#[tokio::test]
async fn strongest_relationships() {
    use stakegraph::domain::strength::StrengthModel;
    use stakegraph::store::GraphStore;
    let (manager, _): (i64, i64) = busiest_manager();
    let as_of = "2026-06-01T00:00:00Z";
    let variables = json!({ "id": stakeholder_gid(manager), "asOf": as_of, "first": 5 });
    let store = demo_store();
    let data = run_ok(&schema(store.clone()), &operation("strongest_relationships.graphql"), variables).await;
    let ranked = data["stakeholder"]["strongestRelationships"].as_array().unwrap();
    assert_eq!(ranked.len(), 5);
    let scores: Vec<f64> = ranked.iter().map(|entry| entry["strength"]["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|pair| pair[0] >= pair[1]), "strongest first: {scores:?}");

    // Independently: score every relationship of the manager from the store and compare with the top five.
    let at = chrono::DateTime::parse_from_rfc3339(as_of).unwrap().to_utc();
    let model = StrengthModel::default();
    let id = stakegraph::domain::StakeholderId(manager);
    let relationships = store.relationships_of(&[id]).await.unwrap().remove(&id).unwrap();
    let ids: Vec<_> = relationships.iter().map(|relationship| relationship.id).collect();
    let histories = store.interaction_histories(&ids).await.unwrap();
    let mut expected: Vec<f64> =
        relationships.iter().map(|r| model.evaluate_history(r, &histories[&r.id], at).score).collect();
    expected.sort_by(|a, b| b.total_cmp(a));
    for (found, expected) in scores.iter().zip(&expected) {
        assert!((found - expected).abs() < 1e-12, "{found} vs {expected}");
    }
    assert_eq!(ranked[0]["strength"]["model"], "strength-v1");
}

#[tokio::test]
async fn changes_since() {
    let store = demo_store();
    let first = run_ok(&schema(store.clone()), &operation("changes_since.graphql"), json!({ "first": 100 })).await;
    let page = edges(&first["changes"]);
    assert_eq!(page.len(), 100);
    assert_eq!(page[0]["node"]["kind"], "STAKEHOLDER_CREATED", "the log starts with the first stakeholder");
    let cursor = first["changes"]["pageInfo"]["endCursor"].clone();
    let next =
        run_ok(&schema(store), &operation("changes_since.graphql"), json!({ "after": cursor, "first": 5 })).await;
    let expected = count("SELECT COUNT(*) FROM change_log WHERE seq > 100 AND seq <= 105", []);
    assert_eq!(edges(&next["changes"]).len() as u64, expected);
}

#[tokio::test]
async fn market_overview() {
    let data = run_ok(&schema(demo_store()), &operation("market_overview.graphql"), json!({})).await;
    let markets = data["marketOverview"].as_array().unwrap();
    assert_eq!(markets.len(), 6);
    for (bit, summary) in markets.iter().enumerate() {
        // Stakeholders and relationships of the market, recounted in SQL.
        let stakeholders =
            count("SELECT COUNT(*) FROM stakeholder WHERE archived_at IS NULL AND (markets & ?1) != 0", [1i64 << bit]);
        assert_eq!(summary["stakeholders"].as_u64(), Some(stakeholders), "{summary}");
        let relationships = count(
            "SELECT COUNT(*) FROM relationship r JOIN stakeholder a ON a.id = r.from_id JOIN stakeholder b
               ON b.id = r.to_id WHERE a.archived_at IS NULL AND b.archived_at IS NULL
               AND ((a.markets | b.markets) & ?1) != 0",
            [1i64 << bit],
        );
        assert_eq!(summary["relationships"].as_u64(), Some(relationships), "{summary}");
        let levels: u64 = summary["byLevel"].as_array().unwrap().iter().map(|bar| bar["count"].as_u64().unwrap()).sum();
        assert_eq!(levels, relationships);
        let ranked = summary["topInfluencers"].as_array().unwrap();
        assert_eq!(ranked.len() as u64, stakeholders.min(3));
    }
    // The weakening relationships, most weakened first, each below the threshold by its own trend.
    let weakening = data["relationships"]["edges"].as_array().unwrap();
    let trends: Vec<f64> = weakening.iter().map(|edge| edge["node"]["strength"]["trend"].as_f64().unwrap()).collect();
    assert!(trends.iter().all(|trend| *trend <= -0.05 + 1e-5), "{trends:?}");
    assert!(trends.windows(2).all(|pair| pair[0] <= pair[1] + 1e-5), "{trends:?}");
    let total: u64 = markets.iter().map(|summary| summary["weakening"].as_u64().unwrap()).max().unwrap();
    assert!(data["relationships"]["totalCount"].as_u64().unwrap() >= total);
}

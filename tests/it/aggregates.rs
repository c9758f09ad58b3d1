//! Aggregates for charts (issue 13, point 1): `stakeholders { aggregate }` and the graph's `relationships` listing
//! with its `aggregate`, each checked against a recount in SQL over the same database, for an editor (who sees
//! private stakeholders) and a viewer (who must not count them).

use crate::support::{demo_copy, demo_db, demo_store, error_code, run_as, run_ok};
use serde_json::{json, Value};
use stakegraph::api::{build_schema, ApiLimits, Caller, StakegraphSchema};
use stakegraph::domain::{Level, Market, RelationshipType, Role, StakeholderKind};
use stakegraph::store::GraphStore;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A schema whose analysis rate does not stop a test that pages through a whole listing (each page is an analysis:
/// a pass over the graph).
fn schema(store: Arc<dyn GraphStore>) -> StakegraphSchema {
    build_schema(store, ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() }, false)
}

const EDITOR: Caller = Caller::Key(Role::Editor);
const VIEWER: Caller = Caller::Key(Role::Viewer);

const STAKEHOLDER_AGGREGATE: &str = r#"query($filter: StakeholderFilter) {
  stakeholders(filter: $filter, first: 1) {
    totalCount
    aggregate {
      count
      byKind { key count }
      byMarket { key count }
      byStatus { key count }
      byMendelow { key count }
    }
  }
}"#;

/// `{ key: count }` of a list of buckets.
fn buckets(list: &Value) -> BTreeMap<String, u64> {
    list.as_array()
        .expect("a list of buckets")
        .iter()
        .map(|bucket| (bucket["key"].as_str().unwrap().to_owned(), bucket["count"].as_u64().unwrap()))
        .collect()
}

/// The same buckets recounted in SQL over the stakeholders `condition` selects: every category present, zeros too.
fn stakeholder_recount(sql: &rusqlite::Connection, condition: &str) -> Value {
    let count = |extra: &str| -> u64 {
        sql.query_row(&format!("SELECT COUNT(*) FROM stakeholder WHERE ({condition}) AND ({extra})"), [], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap() as u64
    };
    let by = |pairs: Vec<(String, String)>| -> Value {
        Value::Array(pairs.into_iter().map(|(key, extra)| json!({ "key": key, "count": count(&extra) })).collect())
    };
    let kinds = StakeholderKind::ALL.iter().map(|kind| (kind.to_string(), format!("kind = '{kind}'"))).collect();
    let markets = Market::ALL
        .iter()
        .enumerate()
        .map(|(bit, market)| (market.to_string(), format!("(markets & {}) != 0", 1 << bit)))
        .collect();
    let statuses = ["PROSPECT", "ACTIVE", "AT_RISK", "CHURNED", "WON_BACK"]
        .iter()
        .map(|status| (status.to_string(), format!("kind = 'CUSTOMER' AND status = '{status}'")))
        .collect();
    let quadrants = [
        ("MANAGE_CLOSELY", "power >= 0.5 AND interest >= 0.5"),
        ("KEEP_SATISFIED", "power >= 0.5 AND interest < 0.5"),
        ("KEEP_INFORMED", "power < 0.5 AND interest >= 0.5"),
        ("MONITOR", "power < 0.5 AND interest < 0.5"),
    ]
    .iter()
    .map(|(key, extra)| (key.to_string(), extra.to_string()))
    .collect();
    json!({
        "count": count("1"),
        "byKind": by(kinds),
        "byMarket": by(markets),
        "byStatus": by(statuses),
        "byMendelow": by(quadrants),
    })
}

#[tokio::test]
async fn stakeholder_aggregates_match_a_recount_in_sql_and_leave_private_ones_out_for_viewers() {
    let schema = schema(demo_store());
    let sql = rusqlite::Connection::open(demo_db()).unwrap();
    let cases: &[(Value, &str)] = &[
        (json!(null), "archived_at IS NULL"),
        (json!({ "kinds": ["CUSTOMER", "EMPLOYEE"] }), "archived_at IS NULL AND kind IN ('CUSTOMER', 'EMPLOYEE')"),
        (json!({ "markets": ["REFERRAL"] }), "archived_at IS NULL AND (markets & 2) != 0"),
        (json!({ "status": ["ACTIVE", "AT_RISK"] }), "archived_at IS NULL AND status IN ('ACTIVE', 'AT_RISK')"),
        (json!({ "mendelow": ["MANAGE_CLOSELY"] }), "archived_at IS NULL AND power >= 0.5 AND interest >= 0.5"),
        (json!({ "search": "an" }), "archived_at IS NULL AND (name LIKE '%an%' OR key LIKE '%an%')"),
        (json!({ "includeArchived": true }), "1"),
    ];
    assert_eq!(Market::ALL[1], Market::Referral, "the markets bit of the case above");
    let mut private_seen = 0;
    for (filter, condition) in cases {
        for (caller, privacy) in [(EDITOR, "1"), (VIEWER, "private = 0")] {
            let response = run_as(&schema, caller, STAKEHOLDER_AGGREGATE, json!({ "filter": filter })).await;
            assert!(response.get("errors").is_none(), "{response:#}");
            let listing = &response["data"]["stakeholders"];
            let expected = stakeholder_recount(&sql, &format!("({condition}) AND {privacy}"));
            assert_eq!(listing["aggregate"], expected, "filter {filter}, caller {caller:?}");
            assert_eq!(listing["aggregate"]["count"], listing["totalCount"]);
            if caller == EDITOR {
                private_seen += expected["count"].as_u64().unwrap()
                    - stakeholder_recount(&sql, &format!("({condition}) AND private = 0"))["count"].as_u64().unwrap();
            }
        }
    }
    assert!(private_seen > 0, "the demo graph has private stakeholders for the viewer's counts to leave out");
}

#[tokio::test]
async fn archived_stakeholders_count_only_when_the_filter_includes_them() {
    let (store, _dir) = demo_copy();
    let schema = schema(store);
    let count = |data: &Value| data["stakeholders"]["aggregate"]["count"].as_u64().unwrap();
    let all = json!({ "filter": { "includeArchived": true } });
    let before = run_ok(&schema, STAKEHOLDER_AGGREGATE, all.clone()).await;
    let live_before = run_ok(&schema, STAKEHOLDER_AGGREGATE, json!({})).await;
    assert_eq!(count(&before), count(&live_before));
    let first = run_ok(&schema, "{ stakeholders(first: 1) { edges { node { id } } } }", json!({})).await;
    let id = first["stakeholders"]["edges"][0]["node"]["id"].clone();
    run_ok(&schema, r#"mutation($id: ID!) { archiveStakeholder(id: $id) { id } }"#, json!({ "id": id })).await;
    let after = run_ok(&schema, STAKEHOLDER_AGGREGATE, all).await;
    let live_after = run_ok(&schema, STAKEHOLDER_AGGREGATE, json!({})).await;
    assert_eq!(count(&after), count(&before), "archived, still counted when included");
    assert_eq!(count(&live_after), count(&live_before) - 1, "archived, left out by default");
}

const RELATIONSHIP_PAGE: &str = r#"query($filter: RelationshipListFilter, $order: RelationshipListOrder, $after: String, $asOf: DateTime) {
  relationships(filter: $filter, orderBy: $order, first: 100, after: $after) {
    totalCount
    asOf
    pageInfo { hasNextPage endCursor }
    edges { node { id level type from { id } to { id } strength(asOf: $asOf) { score } } }
  }
}"#;

const RELATIONSHIP_AGGREGATE: &str = r#"query($filter: RelationshipListFilter) {
  relationships(filter: $filter, first: 0) {
    totalCount
    asOf
    aggregate {
      count
      meanStrength
      strengthHistogram(buckets: 10) { key from to count }
      byLevel { key count }
      byType { key count }
      byMarket { key count }
    }
  }
}"#;

/// Every relationship of the listing, page by page, in the order it gives.
async fn every_page(
    schema: &StakegraphSchema,
    caller: Caller,
    filter: &Value,
    order: &str,
    as_of: &Value,
) -> (Vec<Value>, u64) {
    let (mut nodes, mut after) = (Vec::new(), Value::Null);
    loop {
        let variables = json!({ "filter": filter, "order": order, "after": after, "asOf": as_of });
        let response = run_as(schema, caller, RELATIONSHIP_PAGE, variables).await;
        assert!(response.get("errors").is_none(), "{response:#}");
        let listing = &response["data"]["relationships"];
        let total = listing["totalCount"].as_u64().unwrap();
        nodes.extend(listing["edges"].as_array().unwrap().iter().map(|edge| edge["node"].clone()));
        if !listing["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return (nodes, total);
        }
        after = listing["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn the_graph_relationship_listing_pages_in_order_and_its_aggregate_matches_a_recount() {
    let schema = schema(demo_store());
    let sql = rusqlite::Connection::open(demo_db()).unwrap();
    let filters = [
        (json!(null), "1"),
        (
            json!({ "types": ["MANAGES", "KNOWS"], "levels": ["PROACTIVE", "PARTNERSHIP"] }),
            "r.type IN ('MANAGES', 'KNOWS') AND r.level IN (4, 5)",
        ),
        (
            json!({ "kinds": ["MEDIA"], "markets": ["INFLUENCE"] }),
            "(a.kind = 'MEDIA' OR b.kind = 'MEDIA') AND ((a.markets | b.markets) & 8) != 0",
        ),
    ];
    assert_eq!(Market::ALL[3], Market::Influence, "the markets bit of the case above");
    for (filter, condition) in &filters {
        for (caller, privacy) in [(EDITOR, "1"), (VIEWER, "a.private = 0 AND b.private = 0")] {
            let aggregate = run_as(&schema, caller, RELATIONSHIP_AGGREGATE, json!({ "filter": filter })).await;
            assert!(aggregate.get("errors").is_none(), "{aggregate:#}");
            let listing = &aggregate["data"]["relationships"];
            let as_of = listing["asOf"].clone();
            let where_clause = format!(
                "FROM relationship r JOIN stakeholder a ON a.id = r.from_id JOIN stakeholder b ON b.id = r.to_id
                 WHERE a.archived_at IS NULL AND b.archived_at IS NULL AND ({condition}) AND {privacy}"
            );
            let count = |extra: &str| -> u64 {
                sql.query_row(&format!("SELECT COUNT(*) {where_clause} AND ({extra})"), [], |row| row.get::<_, i64>(0))
                    .unwrap() as u64
            };
            let total = count("1");
            assert!(total > 0, "filter {filter} selects something");
            let aggregate = &listing["aggregate"];
            assert_eq!(aggregate["count"].as_u64(), Some(total), "filter {filter}, {caller:?}");
            assert_eq!(listing["totalCount"].as_u64(), Some(total));
            let levels: BTreeMap<String, u64> = Level::ALL
                .iter()
                .map(|level| (level.to_string(), count(&format!("r.level = {}", level.rank()))))
                .collect();
            assert_eq!(buckets(&aggregate["byLevel"]), levels);
            let types: BTreeMap<String, u64> = RelationshipType::ALL
                .iter()
                .map(|rel_type| (rel_type.to_string(), count(&format!("r.type = '{rel_type}'"))))
                .collect();
            assert_eq!(buckets(&aggregate["byType"]), types);
            let markets: BTreeMap<String, u64> = Market::ALL
                .iter()
                .enumerate()
                .map(|(bit, market)| {
                    (market.to_string(), count(&format!("((a.markets | b.markets) & {}) != 0", 1 << bit)))
                })
                .collect();
            assert_eq!(buckets(&aggregate["byMarket"]), markets);

            // Strength: every relationship's own score at the listing's `asOf`, read page by page, in both
            // strength orders and by id.
            let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
            for order in ["ID", "STRENGTH_DESC", "STRENGTH_ASC"] {
                let (nodes, paged_total) = every_page(&schema, caller, filter, order, &as_of).await;
                assert_eq!(paged_total, total);
                assert_eq!(nodes.len() as u64, total, "every relationship once, {order}");
                let scores: Vec<f64> = nodes.iter().map(|node| node["strength"]["score"].as_f64().unwrap()).collect();
                for (pair, nodes) in scores.windows(2).zip(nodes.windows(2)) {
                    // The listing sorts by the engine's single-precision strengths.
                    let (first, second) = (pair[0] as f32, pair[1] as f32);
                    match order {
                        "STRENGTH_DESC" => assert!(first >= second - 1e-6, "{order}: {pair:?}"),
                        "STRENGTH_ASC" => assert!(first <= second + 1e-6, "{order}: {pair:?}"),
                        _ => assert!(
                            id_number(&nodes[0]["id"]) < id_number(&nodes[1]["id"]),
                            "{order}: {} then {}",
                            nodes[0]["id"],
                            nodes[1]["id"]
                        ),
                    }
                }
                let mut sorted: Vec<String> =
                    nodes.iter().map(|node| node["id"].as_str().unwrap().to_owned()).collect();
                sorted.sort();
                sorted.dedup();
                assert_eq!(sorted.len() as u64, total, "no relationship twice, {order}");
                ids.insert(order, sorted);
                if order == "ID" {
                    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
                    let listed = aggregate["meanStrength"].as_f64().unwrap();
                    assert!((listed - mean).abs() < 1e-5, "mean strength {listed} against {mean}");
                    let histogram = &aggregate["strengthHistogram"];
                    for (index, bucket) in histogram.as_array().unwrap().iter().enumerate() {
                        let (from, to) = (index as f64 / 10.0, (index + 1) as f64 / 10.0);
                        let inside = |score: f64| score >= from && (score < to || (index == 9 && score <= 1.0));
                        let near = |score: f64| (score - from).abs() < 1e-5 || (score - to).abs() < 1e-5;
                        let counted = scores.iter().filter(|score| inside(**score)).count() as i64;
                        let uncertain = scores.iter().filter(|score| near(**score)).count() as i64;
                        let listed = bucket["count"].as_i64().unwrap();
                        assert!((listed - counted).abs() <= uncertain, "bucket {index}: {listed} against {counted}");
                        assert_eq!(bucket["key"], format!("{from:.2}-{to:.2}"));
                    }
                    let summed: u64 =
                        histogram.as_array().unwrap().iter().map(|bucket| bucket["count"].as_u64().unwrap()).sum();
                    assert_eq!(summed, total);
                }
            }
            assert_eq!(ids["ID"], ids["STRENGTH_DESC"]);
            assert_eq!(ids["ID"], ids["STRENGTH_ASC"]);
        }
    }
}

/// The number inside a relationship's global id (`Relationship:<id>`, base64url), to check id order.
fn id_number(id: &Value) -> i64 {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id.as_str().unwrap()).unwrap();
    String::from_utf8(bytes).unwrap().strip_prefix("Relationship:").unwrap().parse().unwrap()
}

#[tokio::test]
async fn strength_range_filters_hold_and_bad_arguments_are_refused_with_a_code() {
    let schema = schema(demo_store());
    let filter = json!({ "minStrength": 0.3, "maxStrength": 0.6 });
    let as_of =
        run_ok(&schema, "{ relationships(first: 0) { asOf } }", json!({})).await["relationships"]["asOf"].clone();
    let (nodes, total) = every_page(&schema, EDITOR, &filter, "STRENGTH_DESC", &as_of).await;
    assert!(total > 0 && nodes.len() as u64 == total);
    for node in &nodes {
        let score = node["strength"]["score"].as_f64().unwrap();
        assert!((0.3 - 1e-6..=0.6 + 1e-6).contains(&score), "{score} outside [0.3, 0.6]");
    }
    let all = run_ok(&schema, "{ relationships(first: 0) { totalCount } }", json!({})).await;
    assert!(all["relationships"]["totalCount"].as_u64().unwrap() > total, "the range leaves some out");

    let refused = |query: &'static str, variables: Value| {
        let schema = schema.clone();
        async move { error_code(&run_as(&schema, EDITOR, query, variables).await) }
    };
    let histogram =
        "query($b: Int!) { relationships(first: 0) { aggregate { strengthHistogram(buckets: $b) { count } } } }";
    assert_eq!(refused(histogram, json!({ "b": 0 })).await.0, "BAD_USER_INPUT");
    assert_eq!(refused(histogram, json!({ "b": 101 })).await.0, "BAD_USER_INPUT");
    let range = "query($f: RelationshipListFilter) { relationships(filter: $f) { totalCount } }";
    let (code, field) = refused(range, json!({ "f": { "minStrength": 1.5 } })).await;
    assert_eq!((code.as_str(), field.as_str()), ("BAD_USER_INPUT", "filter.minStrength"));
    // A cursor of one order does not page another.
    let page =
        run_ok(&schema, "{ relationships(first: 1, orderBy: STRENGTH_DESC) { pageInfo { endCursor } } }", json!({}))
            .await;
    let cursor = page["relationships"]["pageInfo"]["endCursor"].clone();
    let other = "query($after: String) { relationships(first: 1, orderBy: ID, after: $after) { totalCount } }";
    assert_eq!(refused(other, json!({ "after": cursor })).await.0, "BAD_USER_INPUT");
    // Each aggregate is an analysis, and so is the graph's listing: four in one document are past the default
    // limit of three.
    let four = "{ a: stakeholders { aggregate { count } } b: stakeholders { aggregate { count } }
                  c: relationships(first: 0) { aggregate { count } } }";
    assert_eq!(refused(four, json!({})).await.0, "LIMIT_EXCEEDED");
    let three = "{ a: stakeholders { aggregate { count } } b: relationships(first: 0) { aggregate { count } } }";
    let response = run_as(&schema, EDITOR, three, json!({})).await;
    assert!(response.get("errors").is_none(), "{response:#}");
}

#[tokio::test]
async fn perceived_value_round_trips_through_the_mutations_and_the_change_log_and_bad_inputs_name_their_field() {
    let (store, _dir) = crate::support::fresh_store();
    let schema = schema(store);
    let create = r#"mutation($input: CreateCustomerInput!) {
        createCustomer(input: $input) { id perceivedValue { coreValue servicesValue price relationshipCosts cpv } } }"#;
    let input = json!({ "input": { "key": "c-1", "name": "Acme", "power": 0.5, "interest": 0.5, "segment": "SMB",
        "perceivedValue": { "coreValue": 120, "servicesValue": 30, "price": 100, "relationshipCosts": 25 } } });
    let created = run_ok(&schema, create, input).await;
    let value = &created["createCustomer"]["perceivedValue"];
    assert_eq!(value["cpv"].as_f64().unwrap(), 150.0 / 125.0, "hand-computed: (120 + 30) / (100 + 25)");
    assert_eq!(value["price"], 100.0);
    let id = created["createCustomer"]["id"].clone();
    let update =
        r#"mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { perceivedValue { cpv } } }"#;
    let changed = json!({ "input": { "id": id, "perceivedValue":
        { "coreValue": 80, "servicesValue": 10, "price": 100, "relationshipCosts": 20 } } });
    let updated = run_ok(&schema, update, changed).await;
    assert_eq!(updated["updateCustomer"]["perceivedValue"]["cpv"].as_f64().unwrap(), 90.0 / 120.0);
    let log = run_ok(&schema, "{ changes(first: 10) { edges { node { kind payload } } } }", json!({})).await;
    let last = log["changes"]["edges"].as_array().unwrap().last().unwrap()["node"].clone();
    assert_eq!(last["kind"], "STAKEHOLDER_UPDATED");
    assert_eq!(last["payload"]["before"]["details"]["perceived_value"]["core_value"], 120.0);
    assert_eq!(last["payload"]["after"]["details"]["perceived_value"]["core_value"], 80.0);
    // Aggregated per segment, over the customers that have one.
    let aggregate =
        run_ok(&schema, "{ stakeholders { aggregate { cpvBySegment { segment customers meanCpv } } } }", json!({}))
            .await;
    assert_eq!(
        aggregate["stakeholders"]["aggregate"]["cpvBySegment"],
        json!([{ "segment": "SMB", "customers": 1, "meanCpv": 0.75 }])
    );

    let refused = |perceived: Value| {
        let schema = schema.clone();
        async move {
            let input = json!({ "input": { "key": "c-2", "name": "Bad", "power": 0.5, "interest": 0.5,
                "perceivedValue": perceived } });
            error_code(&run_as(&schema, EDITOR, create, input).await)
        }
    };
    let (code, field) =
        refused(json!({ "coreValue": 1, "servicesValue": 1, "price": 0, "relationshipCosts": 0 })).await;
    assert_eq!((code.as_str(), field.as_str()), ("BAD_USER_INPUT", "input.perceivedValue"));
    let (code, field) =
        refused(json!({ "coreValue": 1, "servicesValue": 1, "price": -5, "relationshipCosts": 1 })).await;
    assert_eq!((code.as_str(), field.as_str()), ("BAD_USER_INPUT", "input.perceivedValue.price"));
    let count = run_ok(&schema, "{ stakeholders { totalCount } }", json!({})).await;
    assert_eq!(count["stakeholders"]["totalCount"], 1, "nothing written by a refused mutation");
}

#[tokio::test]
async fn the_demo_records_perceived_values_and_their_mean_per_segment_matches_a_recount_from_the_records() {
    let schema = schema(demo_store());
    let sql = rusqlite::Connection::open(demo_db()).unwrap();
    let mut statement =
        sql.prepare("SELECT record FROM stakeholder WHERE kind = 'CUSTOMER' AND archived_at IS NULL").unwrap();
    let mut expected: BTreeMap<Option<String>, (u64, f64)> = BTreeMap::new();
    let records = statement.query_map([], |row| row.get::<_, String>(0)).unwrap();
    for record in records {
        let record: Value = serde_json::from_str(&record.unwrap()).unwrap();
        let value = &record["details"]["perceived_value"];
        if value.is_null() {
            continue;
        }
        let get = |field: &str| value[field].as_f64().unwrap();
        let cpv = (get("core_value") + get("services_value")) / (get("price") + get("relationship_costs"));
        let entry = expected.entry(record["details"]["segment"].as_str().map(str::to_owned)).or_default();
        entry.0 += 1;
        entry.1 += cpv;
    }
    assert!(expected.len() >= 3, "the demo's segments have perceived values: {expected:?}");
    let data =
        run_ok(&schema, "{ stakeholders { aggregate { cpvBySegment { segment customers meanCpv } } } }", json!({}))
            .await;
    let listed = data["stakeholders"]["aggregate"]["cpvBySegment"].as_array().unwrap().clone();
    assert_eq!(listed.len(), expected.len());
    for (row, (segment, (customers, sum))) in listed.iter().zip(&expected) {
        assert_eq!(row["segment"].as_str().map(str::to_owned), *segment);
        assert_eq!(row["customers"].as_u64().unwrap(), *customers);
        assert!((row["meanCpv"].as_f64().unwrap() - sum / *customers as f64).abs() < 1e-9);
    }
}

#[tokio::test]
async fn a_viewer_s_charts_do_not_move_when_a_private_stakeholder_is_created_changed_or_linked() {
    let (store, _dir) = demo_copy();
    // Four analyses in one document: both listings' aggregates and the exit analysis.
    let limits = ApiLimits { analyses_per_minute_per_key: 1_000_000, max_analyses: 4, ..ApiLimits::default() };
    let schema = build_schema(store, limits, false);
    let charts = r#"{
      stakeholders(first: 0) { totalCount aggregate { count byKind { key count } byMarket { key count }
        byStatus { key count } byMendelow { key count } cpvBySegment { segment customers meanCpv } } }
      relationships(first: 0) { totalCount aggregate { count meanStrength strengthHistogram { count }
        byLevel { key count } byType { key count } byMarket { key count } } }
      exitAnalysis(from: "2024-06-01", to: "2026-06-01") { customersAtStart churned exits lifetimeValueLost
        winBacks byReason { exits lifetimeValueLost } months { customersAtStart churned exits winBacks } }
    }"#;
    let viewer_before = run_as(&schema, VIEWER, charts, json!({})).await;
    let editor_before = run_as(&schema, EDITOR, charts, json!({})).await;
    assert!(viewer_before.get("errors").is_none(), "{viewer_before:#}");

    // A private customer in a segment of its own, with a perceived value, linked to a public stakeholder by a
    // strong relationship, then changed.
    let create = r#"mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"#;
    let input = json!({ "input": { "key": "SECRET-1", "name": "Secret Holdings", "private": true, "status": "ACTIVE",
        "segment": "SECRET", "power": 0.9, "interest": 0.9,
        "perceivedValue": { "coreValue": 10, "servicesValue": 1, "price": 1, "relationshipCosts": 1 } } });
    let secret = run_ok(&schema, create, input).await["createCustomer"]["id"].clone();
    let public = run_ok(
        &schema,
        "{ stakeholders(first: 1, filter: { kinds: [EMPLOYEE] }) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    let public = public["stakeholders"]["edges"][0]["node"]["id"].clone();
    let link = r#"mutation($input: UpsertRelationshipInput!) { upsertRelationship(input: $input) { created } }"#;
    let relationship = json!({ "input": { "from": public, "to": secret, "type": "MANAGES", "level": "PARTNERSHIP",
        "trust": 1.0, "commitment": 1.0, "bonds": ["FINANCIAL", "SOCIAL", "STRUCTURAL"] } });
    run_ok(&schema, link, relationship).await;
    let update = r#"mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { id } }"#;
    run_ok(&schema, update, json!({ "input": { "id": secret, "status": "AT_RISK", "customerSince": "2020-01-01" } }))
        .await;
    // It leaves in the period and comes back.
    let exit =
        r#"mutation($id: ID!) { recordCustomerExit(input: { id: $id, reason: PRICE, date: "2025-01-10" }) { id } }"#;
    run_ok(&schema, exit, json!({ "id": secret })).await;
    let back = r#"mutation($id: ID!) { recordCustomerWinBack(input: { id: $id, date: "2025-05-10" }) { id } }"#;
    run_ok(&schema, back, json!({ "id": secret })).await;

    let viewer_after = run_as(&schema, VIEWER, charts, json!({})).await;
    let editor_after = run_as(&schema, EDITOR, charts, json!({})).await;
    assert_eq!(viewer_after, viewer_before, "nothing a viewer charts tells of the private customer");
    let count = |response: &Value, listing: &str| response["data"][listing]["aggregate"]["count"].as_u64().unwrap();
    assert_eq!(count(&editor_after, "stakeholders"), count(&editor_before, "stakeholders") + 1);
    assert_eq!(count(&editor_after, "relationships"), count(&editor_before, "relationships") + 1);
    let segments = editor_after["data"]["stakeholders"]["aggregate"]["cpvBySegment"].to_string();
    assert!(segments.contains("SECRET"), "an editor sees the private segment: {segments}");
    let exits = |response: &Value, field: &str| response["data"]["exitAnalysis"][field].as_u64().unwrap();
    assert_eq!(exits(&editor_after, "exits"), exits(&editor_before, "exits") + 1);
    assert_eq!(exits(&editor_after, "winBacks"), exits(&editor_before, "winBacks") + 1);
    assert_eq!(exits(&editor_after, "customersAtStart"), exits(&editor_before, "customersAtStart") + 1);
}

/// A schema whose engine's clock is ten days after the demo's last interaction: the relationships active in the
/// 30 days before it need their histories for their trends ([`stakegraph::engine::trends`]).
fn schema_after_the_demo() -> (StakegraphSchema, chrono::DateTime<chrono::Utc>) {
    let clock = crate::support::demo_anchor() + chrono::Duration::days(10);
    let store: Arc<dyn GraphStore> = demo_store();
    let engine =
        stakegraph::engine::Engine::new(store, Arc::new(Default::default())).with_clock(Arc::new(move || clock));
    let limits = ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() };
    (stakegraph::api::build_schema_on(Arc::new(engine), limits, false), clock)
}

const TREND_PAGE: &str = r#"query($filter: RelationshipListFilter, $order: RelationshipListOrder, $after: String, $asOf: DateTime) {
  relationships(filter: $filter, orderBy: $order, first: 100, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    aggregate { count meanTrend }
    edges { node { id strength(asOf: $asOf) { score trend } } }
  }
}"#;

/// Every relationship of a trend listing, page by page: (id, trend as the relationship itself computes it), with the
/// listing's total and mean trend.
async fn trend_pages(
    schema: &StakegraphSchema,
    filter: &Value,
    order: &str,
    as_of: &str,
) -> (Vec<(String, f64)>, u64, f64) {
    let (mut listed, mut after) = (Vec::new(), Value::Null);
    loop {
        let variables = json!({ "filter": filter, "order": order, "after": after, "asOf": as_of });
        let response = run_as(schema, EDITOR, TREND_PAGE, variables).await;
        assert!(response.get("errors").is_none(), "{response:#}");
        let listing = &response["data"]["relationships"];
        for edge in listing["edges"].as_array().unwrap() {
            let node = &edge["node"];
            listed.push((node["id"].as_str().unwrap().to_owned(), node["strength"]["trend"].as_f64().unwrap()));
        }
        if !listing["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            let total = listing["totalCount"].as_u64().unwrap();
            let mean = listing["aggregate"]["meanTrend"].as_f64().unwrap_or(0.0);
            assert_eq!(listing["aggregate"]["count"].as_u64(), Some(total));
            return (listed, total, mean);
        }
        after = listing["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn trend_filters_and_orders_agree_with_each_relationship_s_own_trend() {
    let (schema, clock) = schema_after_the_demo();
    let as_of = clock.to_rfc3339();
    // Every relationship, most weakened first: each one's own trend (read from its history) in that order.
    let (all, total, mean) = trend_pages(&schema, &json!(null), "TREND_ASC", &as_of).await;
    assert_eq!(all.len() as u64, total);
    for pair in all.windows(2) {
        assert!(pair[0].1 <= pair[1].1 + 1e-5, "TREND_ASC: {pair:?}");
    }
    let own_mean = all.iter().map(|(_, trend)| trend).sum::<f64>() / total as f64;
    assert!((mean - own_mean).abs() < 1e-5, "meanTrend {mean} against {own_mean}");
    let moving = all.iter().filter(|(_, trend)| trend.abs() > 1e-3).count();
    assert!(moving * 10 > all.len(), "the demo's last weeks move a good share of trends: {moving} of {}", all.len());
    let (descending, _, _) = trend_pages(&schema, &json!(null), "TREND_DESC", &as_of).await;
    assert_eq!(descending.len() as u64, total);
    assert!(descending.windows(2).all(|pair| pair[0].1 >= pair[1].1 - 1e-5));
    // A threshold splits the listing in two: each side holds exactly the relationships whose own trend is on it.
    let threshold = all[all.len() / 4].1;
    let (weakening, below, _) = trend_pages(&schema, &json!({ "maxTrend": threshold }), "ID", &as_of).await;
    let (rest, above, _) = trend_pages(&schema, &json!({ "minTrend": threshold }), "ID", &as_of).await;
    assert!(weakening.iter().all(|(_, trend)| *trend <= threshold + 1e-5));
    assert!(rest.iter().all(|(_, trend)| *trend >= threshold - 1e-5));
    let near = all.iter().filter(|(_, trend)| (trend - threshold).abs() < 1e-5).count() as u64;
    assert!(below + above >= total && below + above <= total + near, "{below} + {above} against {total}");
    let expected_below = all.iter().filter(|(_, trend)| *trend <= threshold).count() as i64;
    assert!((below as i64 - expected_below).abs() <= near as i64);
    // Out of range: refused with a code, naming the field.
    let refused =
        run_as(&schema, EDITOR, "{ relationships(filter: { maxTrend: 1.5 }, first: 1) { totalCount } }", json!({}))
            .await;
    assert_eq!(error_code(&refused), ("BAD_USER_INPUT".to_owned(), "filter.maxTrend".to_owned()));
}

const MARKET_OVERVIEW: &str = r#"query($asOf: DateTime) {
  marketOverview(asOf: $asOf, weakeningBelow: -0.02) {
    market asOf stakeholders relationships meanStrength strengthTrend bondCoverage weakening
    stakeholdersByKind { key count }
    byMendelow { key count }
    byLevel { key count }
    byBond { key count }
    topInfluencers(first: 5) { position weightedDegree stakeholder { id markets } }
  }
}"#;

const MARKET_CHECK: &str = r#"query($filter: RelationshipListFilter) {
  relationships(filter: $filter, first: 0) { aggregate { count meanStrength meanTrend byLevel { key count } } }
}"#;

#[tokio::test]
async fn the_market_overview_matches_recounts_and_the_relationship_listing_for_editors_and_viewers() {
    let (schema, clock) = schema_after_the_demo();
    let sql = rusqlite::Connection::open(demo_db()).unwrap();
    for (caller, privacy, stakeholder_privacy) in
        [(EDITOR, "1", "1"), (VIEWER, "a.private = 0 AND b.private = 0", "private = 0")]
    {
        let overview = run_as(&schema, caller, MARKET_OVERVIEW, json!({})).await;
        assert!(overview.get("errors").is_none(), "{overview:#}");
        let markets = overview["data"]["marketOverview"].as_array().unwrap();
        assert_eq!(markets.len(), 6);
        for (bit, (summary, market)) in markets.iter().zip(Market::ALL).enumerate() {
            assert_eq!(summary["market"], market.to_string());
            assert_eq!(
                summary["asOf"].as_str().map(|text| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap()),
                Some(clock)
            );
            let in_market = format!("((a.markets | b.markets) & {}) != 0", 1 << bit);
            let from = format!(
                "FROM relationship r JOIN stakeholder a ON a.id = r.from_id JOIN stakeholder b ON b.id = r.to_id
                 WHERE a.archived_at IS NULL AND b.archived_at IS NULL AND {in_market} AND {privacy}"
            );
            let count = |extra: &str| -> u64 {
                sql.query_row(&format!("SELECT COUNT(*) {from} AND ({extra})"), [], |row| row.get::<_, i64>(0)).unwrap()
                    as u64
            };
            let relationships = count("1");
            assert_eq!(summary["relationships"].as_u64(), Some(relationships), "{market}, {caller:?}");
            let bonds: BTreeMap<String, u64> = stakegraph::domain::Bond::ALL
                .iter()
                .enumerate()
                .map(|(bit, bond)| (bond.to_string(), count(&format!("(r.bonds & {}) != 0", 1 << bit))))
                .collect();
            assert_eq!(buckets(&summary["byBond"]), bonds, "{market}");
            if relationships > 0 {
                let coverage = count("r.bonds != 0") as f64 / relationships as f64;
                assert!((summary["bondCoverage"].as_f64().unwrap() - coverage).abs() < 1e-9);
            }
            let stakeholders: u64 = sql
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM stakeholder WHERE archived_at IS NULL AND (markets & {}) != 0 AND {stakeholder_privacy}",
                        1 << bit
                    ),
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .unwrap() as u64;
            assert_eq!(summary["stakeholders"].as_u64(), Some(stakeholders), "{market}, {caller:?}");
            assert_eq!(buckets(&summary["stakeholdersByKind"]).values().sum::<u64>(), stakeholders);
            assert_eq!(buckets(&summary["byMendelow"]).values().sum::<u64>(), stakeholders);
            // Strength, trend and levels as the graph's relationship listing counts the same market.
            let check =
                run_as(&schema, caller, MARKET_CHECK, json!({ "filter": { "markets": [market.to_string()] } })).await;
            let aggregate = &check["data"]["relationships"]["aggregate"];
            assert_eq!(aggregate["count"].as_u64(), Some(relationships));
            assert_eq!(buckets(&summary["byLevel"]), buckets(&aggregate["byLevel"]));
            for (field, listed) in [("meanStrength", "meanStrength"), ("strengthTrend", "meanTrend")] {
                match (summary[field].as_f64(), aggregate[listed].as_f64()) {
                    (Some(overview), Some(listing)) => assert!((overview - listing).abs() < 1e-6, "{market} {field}"),
                    (overview, listing) => assert_eq!(overview, listing, "{market} {field}"),
                }
            }
            let weakening = run_as(
                &schema,
                caller,
                MARKET_CHECK,
                json!({ "filter": { "markets": [market.to_string()], "maxTrend": -0.02 } }),
            )
            .await;
            let listed = weakening["data"]["relationships"]["aggregate"]["count"].as_u64().unwrap();
            // `weakening` counts trends strictly below; the listing's bound includes -0.02 itself.
            assert!(summary["weakening"].as_u64().unwrap() <= listed, "{market}");
            assert!(listed - summary["weakening"].as_u64().unwrap() <= 1, "{market}");
            // The ranking: members of the market, best first, none private for a viewer.
            let ranked = summary["topInfluencers"].as_array().unwrap();
            assert_eq!(ranked.len() as u64, stakeholders.min(5));
            for (index, entry) in ranked.iter().enumerate() {
                assert_eq!(entry["position"].as_u64(), Some(index as u64 + 1));
                let markets = entry["stakeholder"]["markets"].as_array().unwrap();
                assert!(markets.contains(&json!(market.to_string())), "{entry}");
            }
            assert!(ranked
                .windows(2)
                .all(|pair| pair[0]["weightedDegree"].as_f64() >= pair[1]["weightedDegree"].as_f64()));
        }
    }
    // A time within ten minutes of the engine's clock is answered at the clock.
    let near = run_as(
        &schema,
        EDITOR,
        MARKET_OVERVIEW,
        json!({ "asOf": (clock + chrono::Duration::minutes(5)).to_rfc3339() }),
    )
    .await;
    let answered = near["data"]["marketOverview"][0]["asOf"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>();
    assert_eq!(answered.unwrap(), clock, "{near:#}");
    // At an earlier time: each market's mean strength is the mean of its relationships' own strengths then.
    let earlier = (clock - chrono::Duration::days(20)).to_rfc3339();
    let overview = run_as(&schema, EDITOR, MARKET_OVERVIEW, json!({ "asOf": earlier })).await;
    assert!(overview.get("errors").is_none(), "{overview:#}");
    let customer = &overview["data"]["marketOverview"][0];
    assert_eq!(customer["market"], "CUSTOMER");
    let (listed, total, _) = trend_pages(&schema, &json!({ "markets": ["CUSTOMER"] }), "ID", &earlier).await;
    assert_eq!(customer["relationships"].as_u64(), Some(total));
    let own_trend = listed.iter().map(|(_, trend)| trend).sum::<f64>() / total as f64;
    assert!((customer["strengthTrend"].as_f64().unwrap() - own_trend).abs() < 1e-5, "{customer} against {own_trend}");
    // Bad arguments are refused with a code naming them.
    for (query, field) in [
        ("{ marketOverview(weakeningBelow: -2) { market } }", "weakeningBelow"),
        ("{ marketOverview(asOf: \"2020-01-01T00:00:00Z\") { market } }", "asOf"),
    ] {
        let refused = run_as(&schema, EDITOR, query, json!({})).await;
        assert_eq!(error_code(&refused), ("BAD_USER_INPUT".to_owned(), field.to_owned()), "{refused:#}");
    }
}

/// The trends' histories are read once: a write that records no interaction reads none, one that does reads that
/// relationship's, and the decay sweep reads none (the engine keeps the windows of the relationships active since
/// the trend base); the trends stay those a fresh engine computes from every history.
#[tokio::test]
async fn trends_read_each_history_once_across_writes_and_the_decay_sweep() {
    use stakegraph::store::metered::Metered;
    let (store, _dir) = demo_copy();
    let metered = Arc::new(Metered::new(store.clone()));
    let clock = Arc::new(std::sync::Mutex::new(crate::support::demo_anchor() + chrono::Duration::days(10)));
    let time = clock.clone();
    let engine = Arc::new(
        stakegraph::engine::Engine::new(metered.clone(), Arc::new(Default::default()))
            .with_clock(Arc::new(move || *time.lock().unwrap())),
    );
    let limits = ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() };
    let schema = stakegraph::api::build_schema_on(engine.clone(), limits, false);
    let histories = || metered.calls().get("interaction_histories").copied().unwrap_or(0);
    const TRENDS: &str = "{ relationships(first: 0, filter: { maxTrend: -0.01 }) { aggregate { count meanTrend } } }";
    // What an engine that keeps nothing answers at the same clock.
    let fresh = |at: chrono::DateTime<chrono::Utc>| {
        let engine = stakegraph::engine::Engine::new(store.clone(), Arc::new(Default::default()))
            .with_clock(Arc::new(move || at));
        stakegraph::api::build_schema_on(Arc::new(engine), limits, false)
    };
    let same = |kept: &Value, fresh: &Value| {
        let (kept, fresh) = (&kept["relationships"]["aggregate"], &fresh["relationships"]["aggregate"]);
        assert_eq!(kept["count"], fresh["count"]);
        assert!((kept["meanTrend"].as_f64().unwrap() - fresh["meanTrend"].as_f64().unwrap()).abs() < 1e-6);
    };

    let now = || *clock.lock().unwrap();
    let first = run_ok(&schema, TRENDS, json!({})).await;
    let read = histories();
    assert!(read >= 1, "the first trends read the active relationships' histories");
    same(&first, &run_ok(&fresh(now()), TRENDS, json!({})).await);

    // New trust on a relationship: no history read.
    let relationship = run_ok(
        &schema,
        "{ relationships(first: 1, orderBy: TREND_ASC) { edges { node { id from { id } to { id } type } } } }",
        json!({}),
    )
    .await;
    let node = &relationship["relationships"]["edges"][0]["node"];
    run_ok(
        &schema,
        "mutation($input: UpsertRelationshipInput!) { upsertRelationship(input: $input) { created } }",
        json!({ "input": { "from": node["from"]["id"], "to": node["to"]["id"], "type": node["type"], "trust": 0.11 } }),
    )
    .await;
    let after_trust = run_ok(&schema, TRENDS, json!({})).await;
    assert_eq!(histories(), read, "a change of trust reads no history");
    same(&after_trust, &run_ok(&fresh(now()), TRENDS, json!({})).await);

    // An interaction: that relationship's history, in one read.
    let at = (now() - chrono::Duration::days(1)).to_rfc3339();
    run_ok(
        &schema,
        "mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count } }",
        json!({ "input": { "interactions": [{ "relationship": node["id"], "at": at, "channel": "MEETING",
                "direction": "INBOUND", "sentiment": 0.9 }] } }),
    )
    .await;
    let after_interaction = run_ok(&schema, TRENDS, json!({})).await;
    assert_eq!(histories(), read + 1, "only the changed relationship's history");
    same(&after_interaction, &run_ok(&fresh(now()), TRENDS, json!({})).await);

    // The decay sweep (the clock moves past the refresh interval): every past strength is evaluated again, from the
    // windows the engine keeps.
    *clock.lock().unwrap() += chrono::Duration::minutes(11);
    engine.catch_up().await.unwrap();
    let swept = run_ok(&schema, TRENDS, json!({})).await;
    assert_eq!(histories(), read + 1, "the sweep reads no history");
    same(&swept, &run_ok(&fresh(now()), TRENDS, json!({})).await);
    // A day later the windows are moved on to the new base, and still answer alike.
    *clock.lock().unwrap() += chrono::Duration::days(2);
    engine.catch_up().await.unwrap();
    let later = run_ok(&schema, TRENDS, json!({})).await;
    assert_eq!(histories(), read + 1);
    same(&later, &run_ok(&fresh(now()), TRENDS, json!({})).await);
}

//! Churn risk (issue 13, point 4): `Customer.churnRisk` read back against what the API shows of the same customer
//! by other paths (its relationships' strengths and trends, its interactions and their topics), so that each
//! driver is checked against an independent computation; its principal relationship is its manager's; a viewer's
//! risk reads no private relationship. The model itself reproduces a hand-computed case in `domain::churn`.

use crate::support::{fresh_store, run_as, run_ok};
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use stakegraph::api::{build_schema_of, ApiLimits, Caller, StakegraphSchema};
use stakegraph::domain::churn::ChurnModel;
use stakegraph::domain::Role;

const VIEWER: Caller = Caller::Key(Role::Viewer);

async fn create(schema: &StakegraphSchema, mutation: &str, input: Value) -> Value {
    let query = format!("mutation($input: {mutation}Input!) {{ {}(input: $input) {{ id }} }}", lower_first(mutation));
    run_ok(schema, &query, json!({ "input": input })).await[lower_first(mutation)]["id"].clone()
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

async fn link(schema: &StakegraphSchema, from: &Value, to: &Value, rel_type: &str, level: &str) -> Value {
    let query =
        r#"mutation($input: UpsertRelationshipInput!) { upsertRelationship(input: $input) { relationship { id } } }"#;
    let input = json!({ "input": { "from": from, "to": to, "type": rel_type, "level": level, "trust": 0.7 } });
    run_ok(schema, query, input).await["upsertRelationship"]["relationship"]["id"].clone()
}

const RISK: &str = r#"query($id: ID!) { node(id: $id) { ... on Customer {
  churnRisk { score model valueAtRisk principalRelationship drivers { name value weight contribution } }
  relationships(first: 50) { edges { node { id type strength { score trend } } } }
} } }"#;

fn driver(risk: &Value, name: &str) -> f64 {
    risk["drivers"].as_array().unwrap().iter().find(|driver| driver["name"] == name).unwrap()["value"].as_f64().unwrap()
}

#[tokio::test]
async fn churn_risk_drivers_match_what_the_api_shows_of_the_customer_and_a_viewer_s_read_no_private_tie() {
    let (store, _dir) = fresh_store();
    let limits = ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() };
    let churn = ChurnModel { retention_costs: [("SMB".to_owned(), 1.0)].into(), ..ChurnModel::default() };
    let schema = build_schema_of(store.clone(), limits, false, Default::default(), churn);
    let customer = create(
        &schema,
        "CreateCustomer",
        json!({ "key": "C", "name": "Customer", "power": 0.5,
        "interest": 0.5, "status": "ACTIVE", "lifetimeValue": 1000.0, "segment": "SMB" }),
    )
    .await;
    let staff = |key: &str, private: bool| json!({ "key": key, "name": key, "power": 0.5, "interest": 0.5, "private": private });
    let manager = create(&schema, "CreateEmployee", staff("M", true)).await;
    let colleague = create(&schema, "CreateEmployee", staff("K", false)).await;
    let supplier = create(&schema, "CreateSupplier", staff("S", false)).await;
    let managed = link(&schema, &manager, &customer, "MANAGES", "PARTNERSHIP").await;
    let known = link(&schema, &colleague, &customer, "KNOWS", "REACTIVE").await;
    link(&schema, &customer, &supplier, "KNOWS", "BASIC").await;
    let now = Utc::now();
    let interaction = |relationship: &Value, days: i64, direction: &str, topic: Option<&str>| {
        json!({ "relationship": relationship, "at": now - Duration::days(days), "channel": "CALL",
                "direction": direction, "sentiment": -0.3, "topic": topic })
    };
    let interactions = vec![
        interaction(&managed, 120, "INBOUND", Some("COMPLAINT")), // outside the 90 days
        interaction(&managed, 40, "INBOUND", Some("RETURN")),
        interaction(&managed, 25, "OUTBOUND", Some("COMPLAINT")),
        interaction(&managed, 10, "OUTBOUND", Some("PROMOTION")),
        interaction(&known, 3, "INBOUND", Some("COMPLAINT")),
    ];
    let record = "mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count } }";
    run_ok(&schema, record, json!({ "input": { "interactions": interactions } })).await;

    let editor = run_ok(&schema, RISK, json!({ "id": customer })).await["node"].clone();
    let risk = &editor["churnRisk"];
    assert_eq!(risk["model"], "churn-v1");
    // The manager's relationship is the principal one; the signals read it.
    assert_eq!(risk["principalRelationship"], managed);
    let edges = editor["relationships"]["edges"].as_array().unwrap();
    let strength_of =
        |id: &Value| edges.iter().find(|edge| edge["node"]["id"] == *id).unwrap()["node"]["strength"].clone();
    let principal = strength_of(&managed);
    // Each read takes its own "now": time-dependent values agree to well within 1e-6 (a second moves silence by
    // about 1e-7), not to the last bit.
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(close(driver(risk, "WEAKNESS"), 1.0 - principal["score"].as_f64().unwrap()), "{risk:#} {principal:#}");
    let decline = (-principal["trend"].as_f64().unwrap() / 0.1).clamp(0.0, 1.0);
    assert!(close(driver(risk, "DECLINE"), decline), "{risk:#} {principal:#}");
    // Last inbound 40 days ago on it; two complaints or returns in 90 days on it (not the one on another tie).
    assert!(close(driver(risk, "SILENCE"), 1.0 - (-40.0f64 / 60.0).exp2()), "{risk:#}");
    assert!(close(driver(risk, "COMPLAINTS"), 0.75), "{risk:#}");
    // The manager's share of the ties with staff (the manager and the colleague; not the supplier).
    let staff_sum = principal["score"].as_f64().unwrap() + strength_of(&known)["score"].as_f64().unwrap();
    assert!(close(driver(risk, "EXPOSURE"), principal["score"].as_f64().unwrap() / staff_sum), "{risk:#}");
    let score = risk["score"].as_f64().unwrap();
    let sum: f64 =
        risk["drivers"].as_array().unwrap().iter().map(|driver| driver["contribution"].as_f64().unwrap()).sum();
    assert!(close(sum, score) && score > 0.0 && score < 1.0, "{risk:#}");
    assert!(close(risk["valueAtRisk"].as_f64().unwrap(), 1000.0 * score));
    // Worth retaining: the segment's configured cost (1) is below the value at risk; a recorded cost above it is not.
    let worth = "query($id: ID!) { node(id: $id) { ... on Customer { retentionCost churnRisk { retentionCost worthRetaining valueAtRisk } } } }";
    let cheap = run_ok(&schema, worth, json!({ "id": customer })).await;
    assert_eq!(cheap["node"]["retentionCost"], Value::Null, "none recorded");
    assert_eq!(
        (cheap["node"]["churnRisk"]["retentionCost"].clone(), cheap["node"]["churnRisk"]["worthRetaining"].clone()),
        (json!(1.0), json!(true))
    );
    let update = "mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { retentionCost } }";
    run_ok(&schema, update, json!({ "input": { "id": customer, "retentionCost": 999.0 } })).await;
    let dear = run_ok(&schema, worth, json!({ "id": customer })).await;
    let at_risk = dear["node"]["churnRisk"]["valueAtRisk"].as_f64().unwrap();
    assert_eq!(dear["node"]["churnRisk"]["retentionCost"], 999.0);
    assert_eq!(dear["node"]["churnRisk"]["worthRetaining"], json!(999.0 < at_risk), "{dear:#}");
    assert!(at_risk < 999.0, "this customer's risk is below 0.999: not worth 999");

    // A viewer does not see the private manager's relationship: the principal one is the strongest it sees, with
    // no manager (full exposure).
    let viewer = run_as(&schema, VIEWER, RISK, json!({ "id": customer })).await;
    assert!(viewer.get("errors").is_none(), "{viewer:#}");
    let risk = &viewer["data"]["node"]["churnRisk"];
    assert_ne!(risk["principalRelationship"], managed);
    assert_eq!(risk["principalRelationship"], known, "the colleague's tie is stronger than the supplier's");
    assert_eq!(driver(risk, "EXPOSURE"), 1.0);
    assert!(close(driver(risk, "SILENCE"), 1.0 - (-3.0f64 / 60.0).exp2()), "{risk:#}");

    // A prospect, and a customer who has left, have none.
    let prospect =
        create(&schema, "CreateCustomer", json!({ "key": "P", "name": "P", "power": 0.5, "interest": 0.5 })).await;

    // The manager's portfolio: the customer and the prospect, one of them a customer now, its value and risk as
    // the customer's own churnRisk says, and the key-person loss as keyPersonRisk says.
    let prospect_tie = link(&schema, &manager, &prospect, "MANAGES", "BASIC").await;
    let portfolio = r#"query($id: ID!, $above: Float!) {
      node(id: $id) { ... on Employee { portfolio(atRiskAbove: $above) { customers activeCustomers meanStrength atRisk
        atRiskAbove lifetimeValue valueAtRisk keyPersonLoss { affected totalLoss } } } }
      keyPersonRisk(employee: $id) { affected totalLoss }
    }"#;
    let score = run_ok(&schema, RISK, json!({ "id": customer })).await["node"]["churnRisk"]["score"].as_f64().unwrap();
    let strengths = run_ok(&schema, "query($a: ID!, $b: ID!) { a: relationship(id: $a) { strength { score } } b: relationship(id: $b) { strength { score } } }",
        json!({ "a": managed, "b": prospect_tie })).await;
    let mean = (strengths["a"]["strength"]["score"].as_f64().unwrap()
        + strengths["b"]["strength"]["score"].as_f64().unwrap())
        / 2.0;
    // Risk grows with time (silence, decay) between the requests, by far less than 1e-4.
    let near = |a: f64, b: f64| (a - b).abs() < 1e-6 * b.abs().max(1.0);
    for (above, at_risk) in [(0.0, 1), (score - 1e-4, 1), (score + 1e-4, 0)] {
        let data = run_ok(&schema, portfolio, json!({ "id": manager, "above": above })).await;
        let held = &data["node"]["portfolio"];
        assert_eq!(
            (held["customers"].clone(), held["activeCustomers"].clone(), held["atRisk"].clone()),
            (json!(2), json!(1), json!(at_risk)),
            "{held:#}"
        );
        assert!(near(held["meanStrength"].as_f64().unwrap(), mean), "{held:#}");
        assert_eq!(held["lifetimeValue"], 1000.0);
        assert!(near(held["valueAtRisk"].as_f64().unwrap(), 1000.0 * score), "{held:#} {score}");
        assert_eq!(held["keyPersonLoss"], data["keyPersonRisk"]);
    }
    let refused = run_as(&schema, Caller::Key(Role::Editor), portfolio, json!({ "id": manager, "above": 1.5 })).await;
    assert_eq!(crate::support::error_code(&refused), ("BAD_USER_INPUT".into(), "atRiskAbove".into()));
    // A portfolio larger than the limit is refused with a code naming it.
    let tight = ApiLimits { max_churn_customers: 1, ..limits };
    let tight = build_schema_of(store.clone(), tight, false, Default::default(), Default::default());
    let over = run_as(&tight, Caller::Key(Role::Editor), portfolio, json!({ "id": manager, "above": 0.5 })).await;
    assert_eq!(over["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{over:#}");
    assert_eq!(over["errors"][0]["extensions"]["limit"], "max_churn_customers", "{over:#}");
    // A viewer cannot reach the private manager; the public colleague's portfolio is empty to everyone.
    let colleague_portfolio = run_as(&schema, VIEWER, portfolio, json!({ "id": colleague, "above": 0.5 })).await;
    assert_eq!(colleague_portfolio["data"]["node"]["portfolio"]["customers"], 0, "{colleague_portfolio:#}");

    let none = run_ok(
        &schema,
        "query($id: ID!) { node(id: $id) { ... on Customer { churnRisk { score } } } }",
        json!({ "id": prospect }),
    )
    .await;
    assert_eq!(none["node"]["churnRisk"], Value::Null);
    run_ok(
        &schema,
        "mutation($id: ID!) { recordCustomerExit(input: { id: $id, reason: PRICE }) { id } }",
        json!({ "id": customer }),
    )
    .await;
    let gone = run_ok(
        &schema,
        "query($id: ID!) { node(id: $id) { ... on Customer { churnRisk { score } } } }",
        json!({ "id": customer }),
    )
    .await;
    assert_eq!(gone["node"]["churnRisk"], Value::Null);
    // The customer who left is still managed but no longer active; an archived one is no longer held at all.
    let held = "query($id: ID!) { node(id: $id) { ... on Employee { portfolio { customers activeCustomers lifetimeValue } } } }";
    let after_exit = run_ok(&schema, held, json!({ "id": manager })).await;
    assert_eq!(after_exit["node"]["portfolio"], json!({ "customers": 2, "activeCustomers": 0, "lifetimeValue": 0.0 }));
    run_ok(&schema, "mutation($id: ID!) { archiveStakeholder(id: $id) { id } }", json!({ "id": prospect })).await;
    let after_archive = run_ok(&schema, held, json!({ "id": manager })).await;
    assert_eq!(after_archive["node"]["portfolio"]["customers"], 1);
}

const AT_RISK: &str = r#"query($filter: AtRiskFilter, $first: Int!) { atRiskCustomers(first: $first, filter: $filter) {
  candidates customers { position customer { id name } churnRisk { score valueAtRisk } } } }"#;

#[tokio::test]
async fn at_risk_customers_rank_the_selected_customers_by_value_at_risk_as_the_caller_may_see_them() {
    let (store, _dir) = fresh_store();
    let limits = ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() };
    let schema = build_schema_of(store.clone(), limits, false, Default::default(), Default::default());
    let new = |key: &str, value: Option<f64>, segment: &str, private: bool| {
        json!({ "key": key, "name": key, "power": 0.5, "interest": 0.5, "status": "ACTIVE", "lifetimeValue": value,
                "segment": segment, "private": private })
    };
    let a = create(&schema, "CreateCustomer", new("A", Some(1000.0), "SMB", false)).await;
    let b = create(&schema, "CreateCustomer", new("B", Some(10.0), "SMB", false)).await;
    let c = create(&schema, "CreateCustomer", new("C", None, "SMB", false)).await;
    let d = create(&schema, "CreateCustomer", new("D", Some(100_000.0), "CONSUMER", true)).await;
    let gone = create(&schema, "CreateCustomer", new("G", Some(1_000_000.0), "SMB", false)).await;
    run_ok(
        &schema,
        "mutation($id: ID!) { recordCustomerExit(input: { id: $id, reason: PRICE }) { id } }",
        json!({ "id": gone }),
    )
    .await;
    create(
        &schema,
        "CreateCustomer",
        json!({ "key": "P", "name": "P", "power": 0.5, "interest": 0.5, "segment": "SMB" }),
    )
    .await;
    let manager =
        create(&schema, "CreateEmployee", json!({ "key": "M", "name": "M", "power": 0.5, "interest": 0.5 })).await;
    for customer in [&a, &b] {
        link(&schema, &manager, customer, "MANAGES", "PROACTIVE").await;
    }
    let ids = |data: &Value| -> Vec<Value> {
        data["atRiskCustomers"]["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["customer"]["id"].clone())
            .collect()
    };

    // The editor: every live customer now (not the prospect, not the one gone), the private one first by value.
    let editor = run_ok(&schema, AT_RISK, json!({ "first": 10 })).await;
    assert_eq!(editor["atRiskCustomers"]["candidates"], 4);
    assert_eq!(ids(&editor), vec![d.clone(), a.clone(), b.clone(), c.clone()], "{editor:#}");
    // Each entry's risk is the customer's own churnRisk, and the value at risk decreases down the list.
    let entries = editor["atRiskCustomers"]["customers"].as_array().unwrap();
    let values: Vec<f64> =
        entries.iter().map(|entry| entry["churnRisk"]["valueAtRisk"].as_f64().unwrap_or(0.0)).collect();
    assert!(values.windows(2).all(|pair| pair[0] >= pair[1]), "{values:?}");
    let own = run_ok(
        &schema,
        "query($id: ID!) { node(id: $id) { ... on Customer { churnRisk { score } } } }",
        json!({ "id": a }),
    )
    .await;
    let score = entries[1]["churnRisk"]["score"].as_f64().unwrap();
    assert!((own["node"]["churnRisk"]["score"].as_f64().unwrap() - score).abs() < 1e-6);
    assert_eq!(entries.iter().map(|entry| entry["position"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);

    // A viewer never sees the private customer, nor is it counted.
    let viewer = run_as(&schema, VIEWER, AT_RISK, json!({ "first": 10 })).await;
    assert!(viewer.get("errors").is_none(), "{viewer:#}");
    assert_eq!(viewer["data"]["atRiskCustomers"]["candidates"], 3);
    assert_eq!(ids(&viewer["data"]), vec![a.clone(), b.clone(), c.clone()]);
    // Filters: a segment, a manager; `first` cuts the list, not the candidates.
    let smb = run_ok(&schema, AT_RISK, json!({ "first": 1, "filter": { "segments": ["SMB"] } })).await;
    assert_eq!((smb["atRiskCustomers"]["candidates"].clone(), ids(&smb)), (json!(3), vec![a.clone()]));
    let managed = run_ok(&schema, AT_RISK, json!({ "first": 10, "filter": { "manager": manager } })).await;
    assert_eq!(ids(&managed), vec![a.clone(), b.clone()]);
    // More candidates than the limit: refused with a code naming it.
    let tight = ApiLimits { max_churn_customers: 2, ..limits };
    let tight = build_schema_of(store, tight, false, Default::default(), Default::default());
    let over = run_as(&tight, Caller::Key(Role::Editor), AT_RISK, json!({ "first": 10 })).await;
    assert_eq!(over["errors"][0]["extensions"]["limit"], "max_churn_customers", "{over:#}");
}

const AT_RISK_HORIZON: &str = r#"query($manager: ID!, $horizon: Int) {
  atRiskCustomers(horizonDays: $horizon, first: 50, filter: { manager: $manager }) {
    candidates customers { customer { id } churnRisk { model principalRelationship drivers { name value } } } } }"#;

#[tokio::test]
async fn a_ranking_s_horizon_sets_how_far_ahead_falling_below_the_threshold_counts() {
    let (store, _dir) = fresh_store();
    let limits = ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() };
    let schema = build_schema_of(store, limits, false, Default::default(), Default::default());
    let manager =
        create(&schema, "CreateEmployee", json!({ "key": "M", "name": "M", "power": 0.5, "interest": 0.5 })).await;
    // Two customers whose managed relationship was busy yesterday and sour: it decays below 0.3 within months.
    for key in ["A", "B"] {
        let customer = create(
            &schema,
            "CreateCustomer",
            json!({ "key": key, "name": key, "power": 0.5, "interest": 0.5, "status": "ACTIVE", "lifetimeValue": 100.0 }),
        )
        .await;
        let relationship = link(&schema, &manager, &customer, "MANAGES", "BASIC").await;
        let at = (Utc::now() - Duration::days(1)).to_rfc3339();
        let interactions: Vec<Value> = ["INBOUND", "OUTBOUND", "INBOUND", "OUTBOUND", "INBOUND"]
            .iter()
            .map(|direction| {
                json!({ "relationship": relationship, "at": at, "channel": "MEETING", "direction": direction,
                        "sentiment": -0.5 })
            })
            .collect();
        run_ok(
            &schema,
            "mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count } }",
            json!({ "input": { "interactions": interactions } }),
        )
        .await;
    }
    let ranking = |horizon: Option<i32>| {
        let schema = schema.clone();
        let manager = manager.clone();
        async move { run_ok(&schema, AT_RISK_HORIZON, json!({ "manager": manager, "horizon": horizon })).await }
    };
    let falling = |data: &Value| -> Vec<(String, f64)> {
        data["atRiskCustomers"]["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["churnRisk"]["principalRelationship"].as_str().unwrap().to_owned(),
                    driver(&entry["churnRisk"], "FALLING"),
                )
            })
            .collect()
    };
    let (default, ninety, decade) = (ranking(None).await, ranking(Some(90)).await, ranking(Some(3650)).await);
    assert_eq!(falling(&default), falling(&ninety), "the model's horizon is 90 days");
    let model = |data: &Value| data["atRiskCustomers"]["customers"][0]["churnRisk"]["model"].clone();
    assert_eq!(model(&default), json!("churn-v1"));
    assert_ne!(model(&decade), model(&default), "another horizon is another model version");
    // Each value is `1 − days until the relationship falls below 0.3 / horizon`, clamped to [0, 1].
    for (data, horizon) in [(&ninety, 90.0), (&decade, 3650.0)] {
        for (relationship, value) in falling(data) {
            let forecast = run_ok(
                &schema,
                "query($id: ID!) { relationship(id: $id) { strength { fallsBelow(threshold: 0.3) } } }",
                json!({ "id": relationship }),
            )
            .await;
            let when: chrono::DateTime<Utc> =
                forecast["relationship"]["strength"]["fallsBelow"].as_str().expect("it falls below").parse().unwrap();
            let days = (when - Utc::now()).num_seconds() as f64 / 86_400.0;
            assert!(days > 1.0, "the fall is ahead: {days} days");
            let expected = (1.0 - days / horizon).clamp(0.0, 1.0);
            assert!((value - expected).abs() < 1e-3, "horizon {horizon}: {value} against {expected} ({days} days)");
        }
    }
    assert!(falling(&decade).iter().zip(falling(&ninety)).any(|((_, far), (_, near))| *far > near + 0.01));
    for horizon in [0, 3651] {
        let refused = run_as(
            &schema,
            Caller::Key(Role::Editor),
            AT_RISK_HORIZON,
            json!({ "manager": manager, "horizon": horizon }),
        )
        .await;
        assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{refused:#}");
        assert_eq!(refused["errors"][0]["extensions"]["field"], "horizonDays");
    }
}

const EVERY_RISK: &str = r#"query($after: String) {
  stakeholders(first: 100, after: $after, filter: { kinds: [CUSTOMER], status: [ACTIVE, AT_RISK, WON_BACK] }) {
    pageInfo { hasNextPage endCursor }
    edges { node { id ... on Customer { churnRisk { score valueAtRisk } } } } } }"#;

const GRAPH_WIDE: &str = r#"query($first: Int!) { atRiskCustomers(first: $first) {
  candidates scored customers { position customer { id } churnRisk { score valueAtRisk } } } }"#;

/// Every live customer's value at risk as `caller` sees it, from each one's own `churnRisk`, page by page.
async fn every_value_at_risk(schema: &StakegraphSchema, caller: Caller) -> Vec<(String, f64)> {
    let mut values = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = run_as(schema, caller, EVERY_RISK, json!({ "after": after })).await;
        assert!(page.get("errors").is_none(), "{page:#}");
        let listing = &page["data"]["stakeholders"];
        for edge in listing["edges"].as_array().unwrap() {
            let node = &edge["node"];
            let value = node["churnRisk"]["valueAtRisk"].as_f64().unwrap_or(0.0);
            values.push((node["id"].as_str().unwrap().to_owned(), value));
        }
        if listing["pageInfo"]["hasNextPage"] != true {
            return values;
        }
        after = listing["pageInfo"]["endCursor"].clone();
    }
}

/// `atRiskCustomers` over the whole demo graph (more customers than `limits.max_churn_customers`, set to 60 here,
/// would let it score one by one) ranks exactly as scoring every customer does: the same values at risk, place by place, each the
/// customer's own; it scores a small part of them; a viewer's ranking leaves the private ones out. (Scores are
/// read a moment apart, so values are compared within 1e-6; the order of near-equal values may differ.)
#[tokio::test]
async fn the_graph_wide_ranking_is_the_one_scoring_every_customer_gives() {
    let limits = ApiLimits {
        analyses_per_minute_per_key: 1_000_000,
        max_forecasts: 1_000_000,
        max_cost: u64::MAX / 4,
        max_churn_customers: 60,
        ..ApiLimits::default()
    };
    let schema = build_schema_of(crate::support::demo_store(), limits, false, Default::default(), Default::default());
    for caller in [Caller::Key(Role::Editor), VIEWER] {
        let everyone = every_value_at_risk(&schema, caller).await;
        let mut expected: Vec<f64> = everyone.iter().map(|(_, value)| *value).collect();
        expected.sort_by(|a, b| b.total_cmp(a));
        let own: std::collections::HashMap<&str, f64> =
            everyone.iter().map(|(id, value)| (id.as_str(), *value)).collect();
        let ranking = run_as(&schema, caller, GRAPH_WIDE, json!({ "first": 10 })).await;
        assert!(ranking.get("errors").is_none(), "{ranking:#}");
        let ranking = &ranking["data"]["atRiskCustomers"];
        let candidates = ranking["candidates"].as_u64().unwrap() as usize;
        assert_eq!(candidates, everyone.len());
        assert!(candidates > 60, "the demo has more customers than one ranking may score: {candidates}");
        let scored = ranking["scored"].as_u64().unwrap() as usize;
        assert!((10..=60).contains(&scored), "{scored} of {candidates} scored");
        let entries = ranking["customers"].as_array().unwrap();
        assert_eq!(entries.len(), 10);
        for (place, entry) in entries.iter().enumerate() {
            let value = entry["churnRisk"]["valueAtRisk"].as_f64().unwrap_or(0.0);
            let close = |other: f64| (value - other).abs() <= 1e-6 * value.abs().max(1.0);
            assert!(close(expected[place]), "place {place}: {value} against {}", expected[place]);
            let id = entry["customer"]["id"].as_str().unwrap();
            assert!(close(own[id]), "{id}: {value} in the ranking, {} of its own", own[id]);
        }
    }
    // A ranking that cannot be settled within the limit is refused with a code naming it.
    let tight = ApiLimits { max_churn_customers: 5, analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() };
    let tight = build_schema_of(crate::support::demo_store(), tight, false, Default::default(), Default::default());
    let over = run_as(&tight, Caller::Key(Role::Editor), GRAPH_WIDE, json!({ "first": 10 })).await;
    assert_eq!(over["errors"][0]["extensions"]["limit"], "max_churn_customers", "{over:#}");
}

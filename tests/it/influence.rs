//! Influence analyses through the API, checked against an oracle built independently from the store: every
//! relationship's strength from the domain formula (f64, at the analysis' `asOf`) and the reference path search
//! over a plain graph. The projection keeps strengths in single precision, hence the 1e-6 tolerance.

use crate::support::{demo_copy, demo_db, demo_store, error_code, operation, run_ok, schema};
use serde_json::{json, Value};
use stakegraph::api::ids::GlobalId;
use stakegraph::domain::strength::StrengthModel;
use stakegraph::domain::{Market, StakeholderId};
use stakegraph::engine::paths::{strongest_paths, Graph};
use stakegraph::store::{GraphStore, SqliteStore};
use std::collections::HashMap;

/// The graph as the analyses should see it, computed without the engine.
struct Oracle {
    ids: Vec<i64>,
    /// Undirected edges (both ways) with f64 strengths.
    edges: Vec<(u32, u32, f64)>,
    markets: Vec<bool>,
}

impl Oracle {
    async fn of(store: &SqliteStore, as_of: &str) -> Self {
        let at = chrono::DateTime::parse_from_rfc3339(as_of).unwrap().to_utc();
        let model = StrengthModel::default();
        let scan = store.graph_scan().await.unwrap();
        let ids: Vec<i64> = scan.stakeholders.iter().map(|row| row.id.0).collect();
        let index: HashMap<i64, u32> = ids.iter().enumerate().map(|(index, id)| (*id, index as u32)).collect();
        let mut edges = Vec::new();
        for relationship in &scan.relationships {
            let (Some(&from), Some(&to)) = (index.get(&relationship.from.0), index.get(&relationship.to.0)) else {
                continue;
            };
            let strength = model.evaluate(relationship, &relationship.sums, at).score;
            edges.push((from, to, strength));
            edges.push((to, from, strength));
        }
        let markets = scan.stakeholders.iter().map(|row| row.markets.contains(Market::Influence)).collect();
        Self { ids, edges, markets }
    }

    fn index(&self, id: i64) -> u32 {
        self.ids.binary_search(&id).unwrap() as u32
    }

    fn graph(&self, min_strength: f64) -> Graph {
        Graph::from_edges(self.ids.len(), &self.edges).with_min_strength(min_strength)
    }

    /// PageRank straight from the definition (power iteration, parallel edges adding), personalised to the
    /// influence market.
    fn pagerank_influence(&self, min_strength: f64) -> Vec<f64> {
        let n = self.ids.len();
        let members: Vec<usize> = (0..n).filter(|node| self.markets[*node]).collect();
        let mut jump = vec![0.0; n];
        for node in &members {
            jump[*node] = 1.0 / members.len() as f64;
        }
        let mut out = vec![0.0; n];
        let kept: Vec<&(u32, u32, f64)> =
            self.edges.iter().filter(|edge| edge.2 as f32 >= min_strength as f32).collect();
        for (from, _, strength) in &kept {
            out[*from as usize] += f64::from(*strength as f32);
        }
        let mut rank = jump.clone();
        for _ in 0..500 {
            let dangling: f64 = (0..n).filter(|node| out[*node] == 0.0).map(|node| rank[node]).sum();
            let mut next: Vec<f64> = jump.iter().map(|share| (0.15 + 0.85 * dangling) * share).collect();
            for (from, to, strength) in &kept {
                next[*to as usize] += 0.85 * rank[*from as usize] * f64::from(*strength as f32) / out[*from as usize];
            }
            rank = next;
        }
        rank
    }
}

const VIEWER: stakegraph::api::Caller = stakegraph::api::Caller::Key(stakegraph::domain::Role::Viewer);

fn id_of(value: &Value) -> i64 {
    match GlobalId::decode(value.as_str().expect("an id"), "id").unwrap() {
        GlobalId::Stakeholder(id) => id.0,
        other => panic!("not a stakeholder: {other:?}"),
    }
}

pub(crate) fn gid(id: i64) -> Value {
    json!(GlobalId::Stakeholder(StakeholderId(id)).encode().0)
}

fn sql() -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(demo_db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// The government body with the most relationships, and the enterprise-sized customer (highest power) it has no
/// direct relationship with.
pub(crate) fn regulator_and_key_customer() -> (i64, i64) {
    let connection = sql();
    let regulator: i64 = connection
        .query_row(
            "SELECT s.id FROM stakeholder s JOIN relationship r ON r.from_id = s.id OR r.to_id = s.id
             WHERE s.kind = 'GOVERNMENT' AND s.archived_at IS NULL GROUP BY s.id ORDER BY COUNT(*) DESC, s.id LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let customer: i64 = connection
        .query_row(
            "SELECT id FROM stakeholder WHERE kind = 'CUSTOMER' AND archived_at IS NULL AND id NOT IN
               (SELECT to_id FROM relationship WHERE from_id = ?1 UNION SELECT from_id FROM relationship WHERE to_id = ?1)
             ORDER BY power DESC, id LIMIT 1",
            [regulator],
            |row| row.get(0),
        )
        .unwrap();
    (regulator, customer)
}

#[tokio::test]
async fn regulator_to_customer_paths_are_the_strongest_and_explain_each_step() {
    let store = demo_store();
    let (regulator, customer) = regulator_and_key_customer();
    let variables = json!({ "regulator": gid(regulator), "customer": gid(customer), "first": 3, "maxHops": 4 });
    let data = run_ok(&schema(store.clone()), &operation("regulator_to_customer_paths.graphql"), variables).await;
    let result = &data["influencePaths"];
    let paths = result["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 3, "the demo graph links a regulator to a key customer in several ways");

    let oracle = Oracle::of(&store, result["asOf"].as_str().unwrap()).await;
    let expected = strongest_paths(&oracle.graph(0.05), oracle.index(regulator), oracle.index(customer), 3, 4);
    assert_eq!(expected.len(), 3);
    let mut previous = f64::INFINITY;
    for (path, expected) in paths.iter().zip(&expected) {
        let score = path["score"].as_f64().unwrap();
        assert!((score - expected.score).abs() < 1e-6, "score {score} vs the oracle's {}", expected.score);
        assert!(score <= previous, "strongest first");
        previous = score;
        let steps = path["steps"].as_array().unwrap();
        assert_eq!(path["hops"].as_u64().unwrap() as usize, steps.len());
        assert!((1..=4).contains(&steps.len()));
        assert_eq!(id_of(&steps[0]["from"]["id"]), regulator);
        assert_eq!(id_of(&steps[steps.len() - 1]["to"]["id"]), customer);
        let mut product = 1.0;
        let mut weakest = f64::INFINITY;
        for (position, step) in steps.iter().enumerate() {
            if position > 0 {
                assert_eq!(step["from"]["id"], steps[position - 1]["to"]["id"], "steps chain up");
            }
            let strength = step["strength"].as_f64().unwrap();
            assert!(strength >= 0.05);
            product *= strength;
            weakest = weakest.min(strength);
            // The relationship really joins the two stakeholders of the step.
            let relationship = match GlobalId::decode(step["relationship"]["id"].as_str().unwrap(), "id").unwrap() {
                GlobalId::Relationship(id) => id.0,
                other => panic!("not a relationship: {other:?}"),
            };
            let (from, to): (i64, i64) = sql()
                .query_row("SELECT from_id, to_id FROM relationship WHERE id = ?1", [relationship], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .unwrap();
            let ends = [id_of(&step["from"]["id"]), id_of(&step["to"]["id"])];
            assert!(ends == [from, to] || ends == [to, from]);
        }
        assert!((product - score).abs() < 1e-12, "a path's score is the product of its steps");
        assert_eq!(path["weakestLink"].as_f64().unwrap(), weakest);
    }
}

#[tokio::test]
async fn top_influencers_of_the_influence_market_follow_personalised_pagerank() {
    let store = demo_store();
    let data = run_ok(&schema(store.clone()), &operation("top_influencers.graphql"), json!({})).await;
    let result = &data["keyInfluencers"];
    assert_eq!(result["market"], "INFLUENCE");
    let ranked = result["ranked"].as_array().unwrap();
    assert_eq!(ranked.len(), 10);

    let oracle = Oracle::of(&store, result["asOf"].as_str().unwrap()).await;
    let expected = oracle.pagerank_influence(0.05);
    let mut sorted = expected.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    for (position, entry) in ranked.iter().enumerate() {
        assert_eq!(entry["position"].as_u64().unwrap() as usize, position + 1);
        let node = oracle.index(id_of(&entry["stakeholder"]["id"]));
        let score = entry["score"].as_f64().unwrap();
        assert!((score - expected[node as usize]).abs() < 1e-6, "{score} vs {}", expected[node as usize]);
        assert!((score - sorted[position]).abs() < 1e-6, "place {position} holds the {position}th best score");
    }
    // Personalisation moves the ranking towards the market: more of its members make the top 50 than in the
    // graph-wide ranking.
    let members = |market: Value| {
        let schema = schema(store.clone());
        async move {
            let variables = json!({ "market": market, "first": 50 });
            let data = run_ok(&schema, &operation("top_influencers.graphql"), variables).await;
            let ranked = data["keyInfluencers"]["ranked"].as_array().unwrap().clone();
            assert_eq!(ranked.len(), 50);
            ranked
                .iter()
                .filter(|entry| entry["stakeholder"]["markets"].as_array().unwrap().iter().any(|m| m == "INFLUENCE"))
                .count()
        }
    };
    let (personalised, global) = (members(json!("INFLUENCE")).await, members(Value::Null).await);
    assert!(
        personalised > global,
        "{personalised} members of the influence market in the personalised top 50, {global} overall"
    );
}

#[tokio::test]
async fn influence_reach_lists_the_best_score_to_each_stakeholder() {
    let store = demo_store();
    let (regulator, _) = regulator_and_key_customer();
    let variables = json!({ "from": gid(regulator), "maxHops": 3, "minScore": 0.05, "first": 25 });
    let data = run_ok(&schema(store.clone()), &operation("influence_reach.graphql"), variables).await;
    let reached = data["influenceReach"]["reached"].as_array().unwrap();
    assert!(!reached.is_empty());
    let oracle = Oracle::of(&store, data["influenceReach"]["asOf"].as_str().unwrap()).await;
    let graph = oracle.graph(0.05);
    let scores: Vec<f64> = reached.iter().map(|entry| entry["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|pair| pair[0] >= pair[1]), "strongest first");
    for entry in reached {
        let target = oracle.index(id_of(&entry["stakeholder"]["id"]));
        assert_ne!(id_of(&entry["stakeholder"]["id"]), regulator, "the source is not its own reach");
        let best = &strongest_paths(&graph, oracle.index(regulator), target, 1, 3)[0];
        assert!((entry["score"].as_f64().unwrap() - best.score).abs() < 1e-6);
        assert!(entry["score"].as_f64().unwrap() >= 0.05);
    }
}

#[tokio::test]
async fn analyses_past_their_limits_are_refused_with_limit_exceeded() {
    let schema = schema(demo_store());
    let (regulator, customer) = regulator_and_key_customer();
    let paths = "query($from: ID!, $to: ID!, $first: Int!, $maxHops: Int!) {
        influencePaths(from: $from, to: $to, first: $first, maxHops: $maxHops) { paths { score } } }";
    for (first, max_hops, field) in [(3, 50, "maxHops"), (10_000, 4, "first")] {
        let variables = json!({ "from": gid(regulator), "to": gid(customer), "first": first, "maxHops": max_hops });
        let response = crate::support::run_as(&schema, VIEWER, paths, variables).await;
        assert_eq!(error_code(&response), ("LIMIT_EXCEEDED".to_owned(), field.to_owned()), "{response}");
    }
    let response =
        crate::support::run_as(&schema, VIEWER, "{ keyInfluencers(first: 10000) { ranked { score } } }", json!({}))
            .await;
    assert_eq!(error_code(&response).0, "LIMIT_EXCEEDED");
    let unknown = json!({ "from": gid(999_999), "to": gid(customer), "first": 1, "maxHops": 2 });
    let response = crate::support::run_as(&schema, VIEWER, paths, unknown).await;
    assert_eq!(error_code(&response), ("BAD_USER_INPUT".to_owned(), "from".to_owned()));
}

#[tokio::test]
async fn an_analysis_past_its_time_budget_stops_with_limit_exceeded() {
    let limits = stakegraph::api::ApiLimits { analysis_budget_ms: 0, ..Default::default() };
    let schema = stakegraph::api::build_schema(demo_store(), limits, true);
    let response = schema.execute("{ keyInfluencers(first: 5) { ranked { score } } }").await;
    let response = serde_json::to_value(&response).unwrap();
    assert_eq!(error_code(&response).0, "LIMIT_EXCEEDED", "{response}");
    assert!(response["errors"][0]["message"].as_str().unwrap().contains("time budget"));
}

#[tokio::test]
async fn a_mutation_is_visible_to_strength_and_paths_as_soon_as_it_returns() {
    let (store, _dir) = demo_copy();
    let schema = schema(store.clone());
    let (regulator, customer) = regulator_and_key_customer();
    let paths = "query($from: ID!, $to: ID!) {
        influencePaths(from: $from, to: $to, first: 1, maxHops: 4) { paths { score hops steps { relationship { id } strength } } } }";
    let variables = json!({ "from": gid(regulator), "to": gid(customer) });
    let before = run_ok(&schema, paths, variables.clone()).await;
    let before_score = before["influencePaths"]["paths"][0]["score"].as_f64().unwrap();
    assert!(before["influencePaths"]["paths"][0]["hops"].as_u64().unwrap() >= 2);

    // A direct, close relationship between them, with a meeting today.
    let upsert = "mutation($from: ID!, $to: ID!) { upsertRelationship(input: { from: $from, to: $to, type: INFLUENCES,
        level: PARTNERSHIP, bonds: [SOCIAL, STRUCTURAL, FINANCIAL], trust: 0.95, commitment: 0.95, since: \"2015-01-01T00:00:00Z\" })
        { relationship { id } } }";
    let created = run_ok(&schema, upsert, variables.clone()).await;
    let relationship = created["upsertRelationship"]["relationship"]["id"].clone();
    let record = "mutation($relationship: ID!, $at: DateTime!) { recordInteractions(input: { interactions: [
        { relationship: $relationship, at: $at, channel: MEETING, direction: OUTBOUND, sentiment: 0.9 },
        { relationship: $relationship, at: $at, channel: CALL, direction: INBOUND, sentiment: 0.8 } ] }) { count } }";
    let at = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let recorded = run_ok(&schema, record, json!({ "relationship": relationship, "at": at })).await;
    assert_eq!(recorded["recordInteractions"]["count"], 2);

    let after = run_ok(&schema, paths, variables).await;
    let best = &after["influencePaths"]["paths"][0];
    assert_eq!(best["hops"], 1, "the new direct relationship is now the strongest path");
    assert_eq!(best["steps"][0]["relationship"]["id"], relationship);
    let score = best["score"].as_f64().unwrap();
    assert!(score > before_score);
    let strength = "query($id: ID!) { relationship(id: $id) { strength { score } } }";
    let strength = run_ok(&schema, strength, json!({ "id": relationship })).await;
    let current = strength["relationship"]["strength"]["score"].as_f64().unwrap();
    assert!(
        (current - score).abs() < 1e-4,
        "the path carries the relationship's current strength: {current} vs {score}"
    );
}

#[tokio::test]
async fn paths_go_around_private_intermediaries_for_viewers() {
    let (store, _dir) = demo_copy();
    let schema = schema(store);
    let (regulator, customer) = regulator_and_key_customer();
    let paths = "query($from: ID!, $to: ID!) { influencePaths(from: $from, to: $to, first: 1, maxHops: 4) {
        paths { score steps { to { id name kind masked } strength } } } }";
    let variables = json!({ "from": gid(regulator), "to": gid(customer) });
    let data = run_ok(&schema, paths, variables.clone()).await;
    let path = data["influencePaths"]["paths"][0].clone();
    let intermediary = path["steps"][0]["to"].clone();
    let mutation = match intermediary["kind"].as_str().unwrap() {
        "CUSTOMER" => "updateCustomer",
        "SUPPLIER" => "updateSupplier",
        "DISTRIBUTOR" => "updateDistributor",
        "EMPLOYEE" => "updateEmployee",
        "MEDIA" => "updateMediaOutlet",
        "GOVERNMENT" => "updateGovernmentBody",
        other => panic!("unknown kind {other}"),
    };
    let update = format!("mutation($id: ID!) {{ {mutation}(input: {{ id: $id, private: true }}) {{ id }} }}");
    run_ok(&schema, &update, json!({ "id": intermediary["id"] })).await;

    // A viewer's paths never pass through a private stakeholder: the best one left is another, no stronger.
    let seen_by_viewer = crate::support::run_as(&schema, VIEWER, paths, variables.clone()).await;
    let around = &seen_by_viewer["data"]["influencePaths"]["paths"][0];
    assert!(around["score"].as_f64().unwrap() <= path["score"].as_f64().unwrap());
    assert!(!seen_by_viewer.to_string().contains(intermediary["id"].as_str().unwrap()), "{seen_by_viewer}");
    assert!(around["steps"].as_array().unwrap().iter().all(|step| step["to"]["masked"] == false));
    let seen_by_admin = run_ok(&schema, paths, variables).await;
    let clear = &seen_by_admin["influencePaths"]["paths"][0];
    assert_eq!(clear["score"], path["score"], "an admin still goes through it");
    assert_eq!(clear["steps"][0]["to"]["masked"], false);
    assert_eq!(clear["steps"][0]["to"]["name"], intermediary["name"]);

    // Named as an end, the private stakeholder answers like an id that does not exist.
    let to_private = json!({ "from": gid(regulator), "to": intermediary["id"] });
    let refused = crate::support::run_as(&schema, VIEWER, paths, to_private).await;
    let unknown = json!({ "from": gid(regulator), "to": gid(999_999_999) });
    let unknown = crate::support::run_as(&schema, VIEWER, paths, unknown).await;
    let message = |response: &Value, id: i64| {
        response["errors"][0]["message"].as_str().expect("an error").replace(&id.to_string(), "#")
    };
    assert_eq!(refused["errors"][0]["extensions"], unknown["errors"][0]["extensions"]);
    assert_eq!(message(&refused, id_of(&intermediary["id"])), message(&unknown, 999_999_999));
}

/// Members of staff in the oracle's numbering.
fn staff(store_rows: &stakegraph::store::GraphScan, oracle: &Oracle) -> Vec<u32> {
    store_rows
        .stakeholders
        .iter()
        .filter(|row| {
            row.kind == stakegraph::domain::StakeholderKind::Employee && row.markets.contains(Market::Internal)
        })
        .map(|row| oracle.index(row.id.0))
        .collect()
}

#[tokio::test]
async fn key_person_risk_of_the_busiest_manager() {
    use stakegraph::engine::risk::key_person_losses;
    let store = demo_store();
    let manager: i64 = sql()
        .query_row(
            "SELECT from_id FROM relationship WHERE type = 'MANAGES' GROUP BY from_id ORDER BY COUNT(*) DESC, from_id LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let variables = json!({ "employee": gid(manager), "first": 10 });
    let data = run_ok(&schema(store.clone()), &operation("key_person_risk.graphql"), variables).await;
    let risk = &data["keyPersonRisk"];
    assert_eq!(id_of(&risk["employee"]["id"]), manager);
    let losses = risk["losses"].as_array().unwrap();
    assert_eq!(losses.len(), 10);

    let oracle = Oracle::of(&store, risk["asOf"].as_str().unwrap()).await;
    let scan = store.graph_scan().await.unwrap();
    let employees = staff(&scan, &oracle);
    let expected = key_person_losses(&oracle.graph(0.05), &employees, oracle.index(manager), 0.01, None).unwrap();
    for (found, expected) in losses.iter().zip(&expected) {
        assert!((found["loss"].as_f64().unwrap() - expected.lost()).abs() < 1e-6);
        assert!((found["before"].as_f64().unwrap() - expected.before).abs() < 1e-6);
        let loss = found["loss"].as_f64().unwrap();
        assert!((found["before"].as_f64().unwrap() - found["after"].as_f64().unwrap() - loss).abs() < 1e-12);
    }
    let total: f64 = expected.iter().map(|loss| loss.lost()).sum();
    assert!((risk["totalLoss"].as_f64().unwrap() - total).abs() < 1e-4 * total.max(1.0));
    let by_market: f64 =
        risk["byMarket"].as_array().unwrap().iter().map(|market| market["loss"].as_f64().unwrap()).sum();
    assert!(by_market >= risk["totalLoss"].as_f64().unwrap() - 1e-9, "every loss counts in its markets");
    assert_eq!(risk["byMarket"][0]["market"], "CUSTOMER", "an account manager's loss falls on customers first");

    // The biggest losses include customers the manager manages: the firm reached them through this person.
    let managed = losses.iter().any(|loss| {
        let customer = id_of(&loss["stakeholder"]["id"]);
        sql()
            .query_row(
                "SELECT COUNT(*) FROM relationship WHERE type = 'MANAGES' AND from_id = ?1 AND to_id = ?2",
                [manager, customer],
                |row| row.get::<_, i64>(0),
            )
            .unwrap()
            > 0
    });
    assert!(managed);

    let response = crate::support::run_as(
        &schema(store),
        VIEWER,
        &operation("key_person_risk.graphql"),
        json!({ "employee": gid(id_of(&losses[0]["stakeholder"]["id"])) }),
    )
    .await;
    assert_eq!(error_code(&response), ("BAD_USER_INPUT".to_owned(), "employee".to_owned()), "only staff");
}

#[tokio::test]
async fn brokers_between_customers_and_influencers_by_exact_betweenness() {
    use stakegraph::engine::brokers::betweenness;
    let store = demo_store();
    let data = run_ok(&schema(store.clone()), &operation("brokers.graphql"), json!({ "first": 5 })).await;
    let brokers = &data["brokers"];
    assert_eq!(brokers["exact"], true, "the test graph is below the sampling threshold");
    let ranked = brokers["ranked"].as_array().unwrap();
    assert_eq!(ranked.len(), 5);
    let oracle = Oracle::of(&store, brokers["asOf"].as_str().unwrap()).await;
    let sources: Vec<u32> = (0..oracle.ids.len() as u32).collect();
    let expected = betweenness(&oracle.graph(0.05), &sources, None).unwrap();
    let mut previous = f64::INFINITY;
    for broker in ranked {
        let score = broker["score"].as_f64().unwrap();
        assert!(score <= previous);
        previous = score;
        let node = oracle.index(id_of(&broker["stakeholder"]["id"]));
        let expected = expected[node as usize] / 2.0;
        assert!((score - expected).abs() <= 1e-3 * expected.max(1.0), "{score} vs {expected}");
        let bridges = broker["bridges"].as_array().unwrap();
        assert!(bridges.contains(&json!("CUSTOMER")) && bridges.contains(&json!("INFLUENCE")), "{broker}");
    }
}

/// Above the sampling threshold, the first request ranks from a quick sample and starts a background estimate;
/// requests then get its progress, and once it has finished its settled ranking: two seeds give the same top 10,
/// the exact one.
#[tokio::test]
async fn brokers_from_a_background_estimate_have_the_same_top_ten_for_two_seeds() {
    use stakegraph::api::{build_schema, ApiLimits};
    let store = demo_store();
    let query = "{ brokers(first: 10) { asOf asOfCursor exact stable sources ranked { stakeholder { id } score } } }";
    let mut tops = Vec::new();
    for seed in [1, 2] {
        let limits = ApiLimits {
            betweenness_exact_below: 100,
            betweenness_samples: 8,
            betweenness_seed: seed,
            // The test asks again and again until the estimate has finished.
            analyses_per_minute_per_key: 1_000_000,
            ..ApiLimits::default()
        };
        let schema = build_schema(store.clone(), limits, false);
        let quick = run_ok(&schema, query, json!({})).await["brokers"].clone();
        assert_eq!((&quick["sources"], &quick["exact"], &quick["stable"]), (&json!(8), &json!(false), &json!(false)));
        // The estimate runs on other threads: ask until it has finished (no timing is asserted).
        let mut estimated = quick.clone();
        let mut seen = vec![8];
        for _ in 0..6_000 {
            estimated = run_ok(&schema, query, json!({})).await["brokers"].clone();
            let sources = estimated["sources"].as_u64().unwrap();
            if seen.last() != Some(&sources) {
                seen.push(sources);
            }
            if estimated["stable"] == json!(true) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(estimated["stable"], true, "{estimated}");
        assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "progress only grows: {seen:?}");
        assert_eq!(estimated["asOfCursor"], quick["asOfCursor"], "no change since: the same snapshot");
        assert_eq!(estimated["asOf"], quick["asOf"]);
        let ranked = estimated["ranked"].as_array().unwrap();
        assert_eq!(ranked.len(), 10);
        tops.push(ranked.iter().map(|broker| id_of(&broker["stakeholder"]["id"])).collect::<Vec<_>>());
    }
    assert_eq!(tops[0], tops[1], "two seeds, one top 10");
    let exact = run_ok(&schema(store.clone()), query, json!({})).await["brokers"].clone();
    assert_eq!(exact["exact"], true);
    let exact: Vec<i64> =
        exact["ranked"].as_array().unwrap().iter().map(|broker| id_of(&broker["stakeholder"]["id"])).collect();
    assert_eq!(tops[0], exact, "the settled top 10 is the exact one, in order");
}

/// A write made by another process (another store over the same database file) reaches this process's
/// analyses through the change log: the follower applies it without anyone calling this process.
#[tokio::test]
async fn writes_of_another_process_reach_the_analyses_through_the_change_log() {
    use stakegraph::domain::{Command, Level, RelationshipType, RelationshipUpsert};
    let (store, dir) = demo_copy();
    let schema = schema(store.clone());
    let engine = schema.engine().clone();
    let (regulator, customer) = regulator_and_key_customer();
    let paths = "query($from: ID!, $to: ID!) { influencePaths(from: $from, to: $to, first: 1, maxHops: 4) {
        paths { hops steps { relationship { id } } } } }";
    let variables = json!({ "from": gid(regulator), "to": gid(customer) });
    let before = run_ok(&schema, paths, variables.clone()).await;
    assert!(before["influencePaths"]["paths"][0]["hops"].as_u64().unwrap() >= 2);
    let follower = engine.spawn_follower(std::time::Duration::from_millis(20));

    let other = SqliteStore::open(dir.path().join("copy.db")).unwrap();
    let upsert = RelationshipUpsert {
        from: StakeholderId(regulator),
        to: StakeholderId(customer),
        rel_type: RelationshipType::Influences,
        level: Some(Level::Partnership),
        bonds: None,
        trust: stakegraph::domain::Probability::parse(1.0).ok(),
        commitment: stakegraph::domain::Probability::parse(1.0).ok(),
        since: Some(chrono::Utc::now() - chrono::Duration::days(3650)),
        basis: None,
    };
    other.apply(vec![Command::UpsertRelationship(upsert)], chrono::Utc::now()).await.unwrap();

    // Wait (bounded) for the follower; the assertion is on what it applied, not on how fast.
    let mut hops = 0;
    for _ in 0..250 {
        let after = run_ok(&schema, paths, variables.clone()).await;
        hops = after["influencePaths"]["paths"][0]["hops"].as_u64().unwrap();
        if hops == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    follower.abort();
    assert_eq!(hops, 1, "the direct relationship written by the other process is the strongest path now");
    let seq = store.changes_after(0, usize::MAX).await.unwrap().last().unwrap().seq;
    assert_eq!(engine.loaded().unwrap().seq(), seq, "the projection stands at the log's last entry");
}

/// The regulator's direct, strongest possible relationship to the key customer, as a command.
pub(crate) fn direct_influence(regulator: i64, customer: i64) -> stakegraph::domain::Command {
    use stakegraph::domain::{Command, Level, Probability, RelationshipType, RelationshipUpsert};
    Command::UpsertRelationship(RelationshipUpsert {
        from: StakeholderId(regulator),
        to: StakeholderId(customer),
        rel_type: RelationshipType::Influences,
        level: Some(Level::Partnership),
        bonds: None,
        trust: Probability::parse(1.0).ok(),
        commitment: Probability::parse(1.0).ok(),
        since: Some(chrono::Utc::now() - chrono::Duration::days(3650)),
        basis: None,
    })
}

/// Polls `future` once: whatever it waits for first, it is waiting for it now.
async fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    let mut future = Some(future);
    std::future::poll_fn(|context| std::task::Poll::Ready(future.take().expect("polled once").poll(context))).await
}

/// A projection build held after its scan, and a write committed meanwhile (which the scan predates).
struct BuildAndWrite {
    engine: std::sync::Arc<stakegraph::engine::Engine>,
    held: std::sync::Arc<crate::support::Held>,
    /// The build, answering the position of the snapshot it built.
    building: tokio::task::JoinHandle<Result<i64, stakegraph::engine::EngineError>>,
    written: stakegraph::domain::Applied,
    _dir: tempfile::TempDir,
}

async fn build_and_write() -> BuildAndWrite {
    use crate::support::{Held, Hold};
    use stakegraph::engine::Engine;
    let (store, _dir) = demo_copy();
    let held = Held::new(store.clone(), Hold::Scan);
    let engine = std::sync::Arc::new(Engine::new(held.clone(), std::sync::Arc::new(StrengthModel::default())));
    let building = tokio::spawn({
        let engine = engine.clone();
        async move { engine.load().await.map(|snapshot| snapshot.seq()) }
    });
    held.entered().await;
    let (regulator, customer) = regulator_and_key_customer();
    let written = store.apply(vec![direct_influence(regulator, customer)], chrono::Utc::now()).await.unwrap();
    BuildAndWrite { engine, held, building, written, _dir }
}

/// A projection build whose scan started before a write committed: `catch_up` called meanwhile waits for the
/// build, then applies the log after the scan, so the write is in the snapshot it returns (it used to return the
/// build's snapshot as it was).
#[tokio::test]
async fn catch_up_during_a_build_applies_the_writes_its_scan_missed() {
    let BuildAndWrite { engine, held, building, written, _dir } = build_and_write().await;
    let seq = written.events.last().unwrap().seq;

    let catching_up = engine.catch_up();
    tokio::pin!(catching_up);
    assert!(poll_once(catching_up.as_mut()).await.is_pending(), "waits for the build in progress");
    held.release();
    let built = building.await.unwrap().unwrap();
    assert!(built < seq, "the build's scan predates the write");
    let snapshot = catching_up.await.unwrap();
    assert_eq!(snapshot.seq(), seq, "caught up to the write");
    let relationship = written.events.last().unwrap().relationship.unwrap();
    assert!(
        (0..snapshot.edge_count()).any(|edge| snapshot.relationship(edge) == relationship),
        "the new relationship is in the projection"
    );
}

/// A write this process acknowledged while the projection was being built (`Engine::reflect`, what a mutation
/// calls) is in the snapshot every later `load` hands out, though the build's scan predates it; the mutation did
/// not wait for the build.
#[tokio::test]
async fn a_write_reflected_during_a_build_is_in_every_later_load() {
    let BuildAndWrite { engine, held, building, written, _dir } = build_and_write().await;
    let seq = written.events.last().unwrap().seq;
    engine.reflect(seq).await.expect("returns at once, without waiting for the build");

    let loading = engine.load();
    tokio::pin!(loading);
    assert!(poll_once(loading.as_mut()).await.is_pending(), "waits for the build in progress");
    held.release();
    assert!(building.await.unwrap().unwrap() < seq, "the build's scan predates the write");
    assert_eq!(loading.await.unwrap().seq(), seq, "the load waiting for the build brings it up to the write");
    assert_eq!(engine.load().await.unwrap().seq(), seq);
}

/// The records the loaders read are not handed out while they lack a write acknowledged during the build (the
/// store answers instead), and hold it once a load has brought the projection up to it.
#[tokio::test]
async fn records_built_before_a_write_acknowledged_during_the_build_are_not_read() {
    let BuildAndWrite { engine, held, building, written, _dir } = build_and_write().await;
    let (seq, relationship) =
        (written.events.last().unwrap().seq, written.events.last().unwrap().relationship.unwrap());
    engine.reflect(seq).await.unwrap();
    held.release();
    assert!(building.await.unwrap().unwrap() < seq, "built from a scan that predates the write");
    assert!(
        engine.records().is_none_or(|records| records.relationship(relationship).is_some()),
        "records without the acknowledged write are not read"
    );
    engine.load().await.unwrap();
    let records = engine.records().expect("the projection holds the write now");
    assert!(records.relationship(relationship).is_some());
}

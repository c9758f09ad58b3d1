//! Tier 1: the schema executed in-process.

use crate::support::{demo_store, error_code, fresh_store, metered_schema, run_as, run_ok, schema, stored};
use futures_util::StreamExt;
use serde_json::{json, Value};
use stakegraph::api::{build_schema, ApiLimits, Caller};
use stakegraph::domain::Role;
use stakegraph::store::{GraphStore, SqliteStore};

const CREATE_CUSTOMER: &str = r#"
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) { id key name kind primaryMarket markets mendelow status segment lifetimeValue }
}"#;

const CREATE_SUPPLIER: &str = r#"
mutation($input: CreateSupplierInput!) { createSupplier(input: $input) { id name category private masked } }"#;

const CREATE_EMPLOYEE: &str = r#"
mutation($input: CreateEmployeeInput!) { createEmployee(input: $input) { id name primaryMarket } }"#;

const UPSERT: &str = r#"
mutation($input: UpsertRelationshipInput!) {
  upsertRelationship(input: $input) { created relationship { id type level trust bonds from { id } to { id } } }
}"#;

const RECORD: &str = r#"
mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count interactions { id } } }"#;

const EDITOR: Caller = Caller::Key(Role::Editor);

async fn create(schema: &stakegraph::api::StakegraphSchema, mutation: &str, input: Value) -> Value {
    let data = run_ok(schema, mutation, json!({ "input": input })).await;
    data.as_object().and_then(|fields| fields.values().next()).cloned().expect("one mutation result")
}

/// A small graph: a customer, an employee managing it, and the relationship between them.
async fn small_graph(schema: &stakegraph::api::StakegraphSchema) -> (String, String, String) {
    let customer =
        create(schema, CREATE_CUSTOMER, json!({ "key": "C-1", "name": "Acme Foods", "status": "ACTIVE" })).await;
    let employee =
        create(schema, CREATE_EMPLOYEE, json!({ "key": "E-1", "name": "Dana Reyes", "role": "Account Manager" })).await;
    let upsert = json!({ "input": {
        "from": employee["id"], "to": customer["id"], "type": "MANAGES", "level": "PROACTIVE", "trust": 0.8,
        "bonds": ["SOCIAL", "FINANCIAL"]
    }});
    let data = run_ok(schema, UPSERT, upsert).await;
    let relationship = data["upsertRelationship"]["relationship"]["id"].as_str().unwrap().to_owned();
    (customer["id"].as_str().unwrap().to_owned(), employee["id"].as_str().unwrap().to_owned(), relationship)
}

#[tokio::test]
async fn created_customer_reads_back_with_derived_fields() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let input = json!({
        "key": " C-42 ", "name": "Northwind Traders", "power": 0.8, "interest": 0.3,
        "markets": ["REFERRAL"], "status": "ACTIVE", "segment": "ENTERPRISE", "lifetimeValue": 125000.0
    });
    let customer = create(&schema, CREATE_CUSTOMER, input).await;
    assert_eq!(customer["key"], "C-42", "keys are trimmed");
    assert_eq!(customer["kind"], "CUSTOMER");
    assert_eq!(customer["primaryMarket"], "CUSTOMER");
    assert_eq!(customer["markets"], json!(["CUSTOMER", "REFERRAL"]));
    assert_eq!(customer["mendelow"], "KEEP_SATISFIED");
    assert_eq!(customer["lifetimeValue"], 125000.0);

    let read = run_ok(
        &schema,
        "query($id: ID!) { node(id: $id) { id ... on Customer { name segment } } }",
        json!({ "id": customer["id"] }),
    )
    .await;
    assert_eq!(read["node"]["name"], "Northwind Traders");
    assert_eq!(read["node"]["segment"], "ENTERPRISE");

    let changes = store.changes_after(0, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind.as_str(), "STAKEHOLDER_CREATED");
}

#[tokio::test]
async fn relationships_managers_and_interactions_resolve() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (customer, employee, relationship) = small_graph(&schema).await;
    let interactions = json!({ "input": { "interactions": [
        { "relationship": relationship, "at": "2026-01-10T09:00:00Z", "channel": "MEETING", "direction": "OUTBOUND", "sentiment": 0.6 },
        { "relationship": relationship, "at": "2026-02-10T09:00:00Z", "channel": "PURCHASE", "direction": "INBOUND",
          "sentiment": 0.4, "amount": 1200.5, "productLine": "Cold chain" }
    ]}});
    let recorded = run_ok(&schema, RECORD, interactions).await;
    assert_eq!(recorded["recordInteractions"]["count"], 2);

    let query = r#"query($id: ID!, $employee: ID!) {
      customer: stakeholder(id: $id) {
        ... on Customer { relationshipManager { id name role } }
        relationships { totalCount edges { direction counterpart { id } node { type level levelRank trust bonds
          interactions(first: 1) { totalCount pageInfo { hasNextPage } edges { node { channel amount productLine } } } } } }
      }
      employee: stakeholder(id: $employee) {
        ... on Employee { managedCustomers { totalCount edges { node { id name } } } }
      }
    }"#;
    let data = run_ok(&schema, query, json!({ "id": customer, "employee": employee })).await;
    assert_eq!(data["customer"]["relationshipManager"]["id"], employee.as_str());
    assert_eq!(data["customer"]["relationshipManager"]["role"], "Account Manager");
    let edge = &data["customer"]["relationships"]["edges"][0];
    assert_eq!(edge["direction"], "INCOMING");
    assert_eq!(edge["counterpart"]["id"], employee.as_str());
    assert_eq!(edge["node"]["levelRank"], 4);
    assert_eq!(edge["node"]["bonds"], json!(["FINANCIAL", "SOCIAL"]));
    let page = &edge["node"]["interactions"];
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["edges"][0]["node"]["channel"], "PURCHASE", "newest first");
    assert_eq!(page["edges"][0]["node"]["productLine"], "Cold chain");
    assert_eq!(data["employee"]["managedCustomers"]["totalCount"], 1);
    assert_eq!(data["employee"]["managedCustomers"]["edges"][0]["node"]["name"], "Acme Foods");

    let kinds: Vec<String> =
        store.changes_after(0, 100).await.unwrap().iter().map(|event| event.kind.as_str().to_owned()).collect();
    assert_eq!(kinds, ["STAKEHOLDER_CREATED", "STAKEHOLDER_CREATED", "RELATIONSHIP_CREATED", "INTERACTIONS_RECORDED"]);
}

/// Runs a bad mutation and checks it is refused with `BAD_USER_INPUT` at `field`, and that nothing was written.
async fn assert_refused(
    store: &SqliteStore,
    schema: &stakegraph::api::StakegraphSchema,
    query: &str,
    variables: Value,
    field: &str,
) {
    let before = store.counts().await.unwrap();
    let response = run_as(schema, EDITOR, query, variables).await;
    let (code, found_field) = error_code(&response);
    assert_eq!(code, "BAD_USER_INPUT", "{response:#}");
    assert_eq!(found_field, field, "{response:#}");
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(message.len() > field.len() + 10, "the message explains the fix: {message}");
    assert_eq!(store.counts().await.unwrap(), before, "nothing may be written by a refused mutation");
}

#[tokio::test]
async fn bad_input_is_refused_with_its_path_and_writes_nothing() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (customer, employee, relationship) = small_graph(&schema).await;
    let unknown = stakegraph::api::ids::GlobalId::Stakeholder(stakegraph::domain::StakeholderId(999_999)).encode();

    let upsert =
        |from: Value, trust: f64| json!({ "input": { "from": from, "to": customer, "type": "KNOWS", "trust": trust } });
    assert_refused(&store, &schema, UPSERT, upsert(json!(unknown), 0.5), "input.from").await;
    assert_refused(&store, &schema, UPSERT, upsert(json!(employee), 1.5), "input.trust").await;
    assert_refused(&store, &schema, UPSERT, upsert(json!("garbage"), 0.5), "input.from").await;

    let bad_name = json!({ "input": { "key": "C-2", "name": "   " } });
    assert_refused(&store, &schema, CREATE_CUSTOMER, bad_name, "input.name").await;

    let unknown_enum = r#"mutation { createCustomer(input: { key: "C-3", name: "Ok", status: HAPPY }) { id } }"#;
    assert_refused(&store, &schema, unknown_enum, json!({}), "input.status").await;

    let interaction = |sentiment: f64, relationship: &str| {
        json!({
            "relationship": relationship, "at": "2026-01-10T09:00:00Z", "channel": "CALL", "direction": "INBOUND", "sentiment": sentiment
        })
    };
    let bad_sentiment =
        json!({ "input": { "interactions": [interaction(0.2, &relationship), interaction(-2.0, &relationship)] } });
    assert_refused(&store, &schema, RECORD, bad_sentiment, "input.interactions.1.sentiment").await;

    let missing_relationship =
        stakegraph::api::ids::GlobalId::Relationship(stakegraph::domain::RelationshipId(4242)).encode();
    let one_bad = json!({ "input": { "interactions": [
        interaction(0.2, &relationship), interaction(0.1, &relationship), interaction(0.3, &missing_relationship.0)
    ] } });
    assert_refused(&store, &schema, RECORD, one_bad, "input.interactions.2.relationship").await;

    let future = json!({ "input": { "interactions": [{
        "relationship": relationship, "at": "2999-01-01T00:00:00Z", "channel": "CALL", "direction": "INBOUND"
    }] } });
    assert_refused(&store, &schema, RECORD, future, "input.interactions.0.at").await;

    let wrong_shape = json!({ "input": { "from": customer, "to": employee, "type": "MANAGES" } });
    assert_refused(&store, &schema, UPSERT, wrong_shape, "input.type").await;

    let wrong_kind = r#"mutation($id: ID!) { updateSupplier(input: { id: $id, category: "Steel" }) { id } }"#;
    assert_refused(&store, &schema, wrong_kind, json!({ "id": customer }), "input.id").await;
}

#[tokio::test]
async fn duplicate_keys_and_archived_stakeholders_conflict() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (customer, _, _) = small_graph(&schema).await;
    let response =
        run_as(&schema, EDITOR, CREATE_CUSTOMER, json!({ "input": { "key": "C-1", "name": "Again" } })).await;
    assert_eq!(error_code(&response), ("CONFLICT".to_owned(), "input.key".to_owned()));

    let archive = r#"mutation($id: ID!) { archiveStakeholder(id: $id) { id archivedAt } }"#;
    let data = run_ok(&schema, archive, json!({ "id": customer })).await;
    assert!(data["archiveStakeholder"]["archivedAt"].is_string());
    let listed = run_ok(
        &schema,
        "{ stakeholders { totalCount } all: stakeholders(filter: { includeArchived: true }) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(listed["stakeholders"]["totalCount"], 1, "archived stakeholders leave listings");
    assert_eq!(listed["all"]["totalCount"], 2, "but are kept");
    let update = r#"mutation($id: ID!) { updateCustomer(input: { id: $id, status: AT_RISK }) { id } }"#;
    let response = run_as(&schema, EDITOR, update, json!({ "id": customer })).await;
    assert_eq!(error_code(&response), ("CONFLICT".to_owned(), "input.id".to_owned()));
}

#[tokio::test]
async fn writes_need_an_editor_key_and_reads_need_a_key() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let input = json!({ "input": { "key": "C-9", "name": "Nobody Writes This" } });
    for (caller, expected) in [
        (Caller::Anonymous, "UNAUTHENTICATED"),
        (Caller::InvalidKey, "UNAUTHENTICATED"),
        (Caller::Key(Role::Viewer), "FORBIDDEN"),
    ] {
        let response = run_as(&schema, caller, CREATE_CUSTOMER, input.clone()).await;
        assert_eq!(error_code(&response).0, expected, "{caller:?}: {response:#}");
        assert!(response["data"].is_null());
    }
    assert_eq!(store.counts().await.unwrap().stakeholders, 0);
    assert_eq!(store.counts().await.unwrap().changes, 0);

    let read = "{ stakeholders { totalCount } }";
    assert_eq!(error_code(&run_as(&schema, Caller::Anonymous, read, json!({})).await).0, "UNAUTHENTICATED");
    let viewer = run_as(&schema, Caller::Key(Role::Viewer), read, json!({})).await;
    assert!(viewer.get("errors").is_none(), "{viewer:#}");

    let demo = build_schema(store.clone(), ApiLimits::default(), true);
    let anonymous = run_as(&demo, Caller::Anonymous, read, json!({})).await;
    assert!(anonymous.get("errors").is_none(), "anonymous reads in demo mode: {anonymous:#}");
    let anonymous_write = run_as(&demo, Caller::Anonymous, CREATE_CUSTOMER, input).await;
    assert_eq!(error_code(&anonymous_write).0, "UNAUTHENTICATED", "demo mode never lets anonymous callers write");
}

#[tokio::test]
async fn private_stakeholders_are_masked_for_viewers_and_hidden_from_their_searches() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let input = json!({ "key": "S-7", "name": "Secret Alloys", "private": true, "category": "Rare metals" });
    let supplier = create(&schema, CREATE_SUPPLIER, input).await;
    assert_eq!(supplier["masked"], false, "the editor who created it sees it");

    let query = r#"query($id: ID!) { stakeholder(id: $id) {
        __typename id name key kind power interest mendelow markets primaryMarket private createdAt masked
        ... on Supplier { category } } }"#;
    let viewer = run_as(&schema, Caller::Key(Role::Viewer), query, json!({ "id": supplier["id"] })).await;
    let seen = &viewer["data"]["stakeholder"];
    assert_eq!(seen["masked"], true);
    assert_eq!(seen["__typename"], "MaskedStakeholder", "its type must not name its kind");
    assert_eq!(seen["id"], supplier["id"]);
    for field in ["name", "key", "kind", "power", "interest", "mendelow", "markets", "primaryMarket", "private"] {
        assert!(seen[field].is_null(), "{field} of a masked stakeholder: {}", seen[field]);
    }
    assert!(seen["createdAt"].is_null() && seen["category"].is_null());
    let editor = run_as(&schema, EDITOR, query, json!({ "id": supplier["id"] })).await;
    assert_eq!(editor["data"]["stakeholder"]["category"], "Rare metals");

    let search = r#"{ stakeholders(filter: { search: "secret" }) { totalCount } }"#;
    let viewer = run_as(&schema, Caller::Key(Role::Viewer), search, json!({})).await;
    assert_eq!(viewer["data"]["stakeholders"]["totalCount"], 0, "a viewer's search must not reveal private names");
    let editor = run_as(&schema, EDITOR, search, json!({})).await;
    assert_eq!(editor["data"]["stakeholders"]["totalCount"], 1);
    let by_key =
        run_as(&schema, Caller::Key(Role::Viewer), r#"{ stakeholderByKey(key: "S-7") { id } }"#, json!({})).await;
    assert!(by_key["data"]["stakeholderByKey"].is_null());
}

#[tokio::test]
async fn nested_pages_cost_a_constant_number_of_store_calls() {
    let nested = r#"query($first: Int!) {
      stakeholders(first: $first) { edges { node { id name
        ... on Customer { relationshipManager { name } }
        relationships(first: 10) { edges { counterpart { id name kind } node { type from { id } to { id }
          interactions(first: 2) { totalCount edges { node { channel } } } } } }
      } } }
    }"#;
    let mut calls = Vec::new();
    for first in [5, 20, 50, 100] {
        let store = SqliteStore::open(crate::support::demo_db()).unwrap();
        let (schema, metered) = metered_schema(store);
        let data = run_ok(&schema, nested, json!({ "first": first })).await;
        let edges = data["stakeholders"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), first);
        let related: usize =
            edges.iter().map(|edge| edge["node"]["relationships"]["edges"].as_array().unwrap().len()).sum();
        assert!(related > first, "the page must really be nested ({related} relationships)");
        calls.push((first, metered.total_calls(), metered.calls()));
    }
    for (first, total, by_method) in &calls {
        assert!(*total <= 4, "page of {first}: {total} store calls ({by_method:?})");
    }
    assert!(calls.windows(2).all(|pair| pair[0].1 == pair[1].1), "calls must not grow with the page: {calls:?}");
}

#[tokio::test]
async fn pages_read_from_the_records_answer_as_the_store_does() {
    // A nested page of every kind, with managers, relationships both ways, counterparts, nodes by id and a
    // relationship by id, as an admin and as a viewer (who gets private stakeholders masked and their
    // relationships withheld).
    let nested = r#"query($first: Int!, $ids: [ID!]!) {
      stakeholders(first: $first) { totalCount edges { node { id name kind
        ... on Customer { status relationshipManager { id name } }
        relationships(first: 10, orderBy: LEVEL_DESC) { totalCount edges { direction counterpart { id name kind }
          node { id type level trust commitment bonds since from { id } to { id } } } }
      } } }
      nodes(ids: $ids) { id ... on Relationship { type from { id name } to { id name } } }
    }"#;
    let store = SqliteStore::open(crate::support::demo_db()).unwrap();
    let (schema, metered) = metered_schema(store);
    let probe = run_ok(
        &schema,
        "{ stakeholders(first: 30) { edges { node { id relationships(first: 2) { edges { node { id } } } } } } }",
        json!({}),
    )
    .await;
    let mut ids: Vec<Value> = Vec::new();
    for edge in probe["stakeholders"]["edges"].as_array().unwrap() {
        ids.push(edge["node"]["id"].clone());
        for related in edge["node"]["relationships"]["edges"].as_array().unwrap() {
            ids.push(related["node"]["id"].clone());
        }
    }
    let variables = json!({ "first": 100, "ids": ids });
    let callers = [Caller::Key(Role::Admin), Caller::Key(Role::Viewer)];
    let mut from_store = Vec::new();
    for caller in callers {
        from_store.push(run_as(&schema, caller, nested, variables.clone()).await);
    }
    // Listings the records answer (id order, kinds, markets, statuses, privacy), and some they leave to the store
    // (a search, another order), three pages each, as both callers.
    let listings = [
        json!({}),
        json!({ "filter": { "kinds": ["CUSTOMER", "MEDIA"] } }),
        json!({ "filter": { "markets": ["REFERRAL", "INFLUENCE"] }, "orderBy": { "field": "ID", "direction": "DESC" } }),
        json!({ "filter": { "status": ["AT_RISK", "ACTIVE"] } }),
        json!({ "filter": { "search": "a" } }),
        json!({ "orderBy": { "field": "NAME" } }),
    ];
    let listing = r#"query($filter: StakeholderFilter, $orderBy: StakeholderOrder, $after: String) {
      stakeholders(first: 7, filter: $filter, orderBy: $orderBy, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name kind } } } }"#;
    let pages = |schema: stakegraph::api::StakegraphSchema| {
        let listings = listings.clone();
        async move {
            let mut answers = Vec::new();
            for caller in callers {
                for arguments in &listings {
                    let mut variables = arguments.clone();
                    for _ in 0..3 {
                        let answer = run_as(&schema, caller, listing, variables.clone()).await;
                        assert!(answer.get("errors").is_none(), "{answer:#}");
                        variables["after"] = answer["data"]["stakeholders"]["pageInfo"]["endCursor"].clone();
                        answers.push(answer);
                    }
                }
            }
            answers
        }
    };
    let listed_by_store = pages(schema.clone()).await;
    assert!(schema.engine().records().is_none(), "no analysis ran: the projection is not built yet");
    schema.engine().load().await.unwrap();
    let records = schema.engine().records().expect("built with the projection");
    assert!(!records.is_empty());
    let before = metered.calls();
    for (caller, expected) in callers.into_iter().zip(&from_store) {
        assert!(expected.get("errors").is_none(), "{expected:#}");
        let answer = run_as(&schema, caller, nested, variables.clone()).await;
        assert_eq!(&answer, expected, "the records answer as the store does ({caller:?})");
    }
    let after = metered.calls();
    let made: Vec<_> = after.iter().filter(|(method, count)| before.get(*method) != Some(count)).collect();
    assert!(made.is_empty(), "no store call once the records are built: {made:?}");
    let listed_by_records = pages(schema.clone()).await;
    assert_eq!(listed_by_records, listed_by_store, "listings page the same from the records as from the store");
    let listed = metered.calls()["list_stakeholders"] - after["list_stakeholders"];
    assert_eq!(listed, 2 * 2 * 3, "only the search and the order by name went to the store (two callers, three pages)");
}

#[tokio::test]
async fn listings_page_through_every_match_exactly_once() {
    let schema = schema(demo_store());
    let query = r#"query($after: String) {
      stakeholders(first: 37, after: $after, filter: { kinds: [CUSTOMER, MEDIA] }, orderBy: { field: NAME, direction: DESC }) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id name kind } }
      }
    }"#;
    let mut after = Value::Null;
    let mut seen = Vec::new();
    let mut names = Vec::new();
    let total = loop {
        let data = run_ok(&schema, query, json!({ "after": after })).await;
        let page = &data["stakeholders"];
        let total = page["totalCount"].as_u64().unwrap();
        for edge in page["edges"].as_array().unwrap() {
            assert!(["CUSTOMER", "MEDIA"].contains(&edge["node"]["kind"].as_str().unwrap()));
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
            names.push(edge["node"]["name"].as_str().unwrap().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break total;
        }
        after = page["pageInfo"]["endCursor"].clone();
    };
    assert_eq!(seen.len() as u64, total);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no stakeholder twice");
    assert!(names.windows(2).all(|pair| pair[0] >= pair[1]), "sorted by name, descending");
}

#[tokio::test]
async fn limits_are_enforced_with_clear_codes() {
    let schema = schema(demo_store());
    let too_big = run_as(&schema, EDITOR, "{ stakeholders(first: 1000) { totalCount } }", json!({})).await;
    assert_eq!(error_code(&too_big), ("LIMIT_EXCEEDED".to_owned(), "first".to_owned()));
    let bad_cursor =
        run_as(&schema, EDITOR, r#"{ stakeholders(after: "bm90LWEtY3Vyc29y") { totalCount } }"#, json!({})).await;
    assert_eq!(error_code(&bad_cursor), ("BAD_USER_INPUT".to_owned(), "after".to_owned()));
    let mut deep = "id".to_owned();
    for _ in 0..6 {
        deep = format!("relationships(first: 1) {{ edges {{ counterpart {{ {deep} }} }} }}");
    }
    let deep = format!("{{ stakeholders(first: 1) {{ edges {{ node {{ {deep} }} }} }} }}");
    let response = run_as(&schema, EDITOR, &deep, json!({})).await;
    assert_eq!(error_code(&response).0, "LIMIT_EXCEEDED", "{response:#}");
    let wide = r#"{ stakeholders(first: 100) { edges { node { relationships(first: 100) { edges { counterpart {
        relationships(first: 100) { edges { node { id } } } } } } } } } }"#;
    let response = run_as(&schema, EDITOR, wide, json!({})).await;
    assert_eq!(error_code(&response).0, "LIMIT_EXCEEDED", "a million-edge query is refused before it runs");
}

#[tokio::test]
async fn customer_exit_marks_churned_and_is_logged() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (customer, employee, _) = small_graph(&schema).await;
    // A customer since 2020 (created today), so that it may leave on a past day.
    let since = r#"mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { customerSince } }"#;
    run_ok(&schema, since, json!({ "input": { "id": customer, "customerSince": "2020-01-01" } })).await;
    let exit = r#"mutation($input: RecordCustomerExitInput!) { recordCustomerExit(input: $input) { status exitReason exitDate } }"#;
    let early =
        run_as(&schema, EDITOR, exit, json!({ "input": { "id": customer, "reason": "PRICE", "date": "2019-03-01" } }))
            .await;
    assert_eq!(
        error_code(&early),
        ("BAD_USER_INPUT".to_owned(), "input.date".to_owned()),
        "before it became a customer"
    );
    let data =
        run_ok(&schema, exit, json!({ "input": { "id": customer, "reason": "PRICE", "date": "2026-03-01" } })).await;
    assert_eq!(
        data["recordCustomerExit"],
        json!({ "status": "CHURNED", "exitReason": "PRICE", "exitDate": "2026-03-01" })
    );
    let not_customer = run_as(&schema, EDITOR, exit, json!({ "input": { "id": employee, "reason": "PRICE" } })).await;
    assert_eq!(error_code(&not_customer), ("BAD_USER_INPUT".to_owned(), "input.id".to_owned()));
    let last = store.changes_after(0, 100).await.unwrap().pop().unwrap();
    assert_eq!(last.kind.as_str(), "CUSTOMER_EXITED");
    assert_eq!(stored(&last.payload)["before"]["details"]["status"], "ACTIVE");
    assert_eq!(stored(&last.payload)["after"]["details"]["status"], "CHURNED");
}

#[tokio::test]
async fn metered_store_counts_calls() {
    let (store, _dir) = fresh_store();
    let metered = stakegraph::store::Metered::new(store);
    metered.counts().await.unwrap();
    metered.counts().await.unwrap();
    assert_eq!(metered.calls().get("counts"), Some(&2));
    assert_eq!(metered.total_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_executions_all_complete_each_batching_on_its_own() {
    let store = SqliteStore::open(crate::support::demo_db()).unwrap();
    let (schema, metered) = metered_schema(store);
    let query = r#"query($after: String) { stakeholders(first: 20, after: $after) { edges { node { id
        relationships(first: 5) { edges { counterpart { id } } } } } pageInfo { endCursor } } }"#;
    let first = run_ok(&schema, query, json!({})).await;
    let cursor = first["stakeholders"]["pageInfo"]["endCursor"].clone();
    let before = metered.total_calls();
    let runs = (0..16).map(|index| {
        let schema = schema.clone();
        let after = if index % 2 == 0 { Value::Null } else { cursor.clone() };
        tokio::spawn(async move { run_ok(&schema, query, json!({ "after": after })).await })
    });
    let results = futures_util::future::join_all(runs).await;
    for (index, result) in results.into_iter().enumerate() {
        let data = result.expect("execution completes");
        let expected = if index % 2 == 0 { &first } else { &data };
        assert_eq!(data["stakeholders"]["edges"].as_array().unwrap().len(), 20);
        assert_eq!(data, *expected, "same query, same answer");
    }
    // Each execution's loads form its own batches (one call per level), never merged with or held for another
    // execution's: the same pages asked by 16 requests at once cost 16 times one request's calls.
    let calls = metered.total_calls() - before;
    assert_eq!(calls, 16 * 3, "16 executions of 3 levels, one store call per level each");
}

/// A private customer managed by a public employee, with one interaction; and a public customer.
async fn private_graph(schema: &stakegraph::api::StakegraphSchema) -> (String, String, String, String) {
    let hidden = create(
        schema,
        CREATE_CUSTOMER,
        json!({ "key": "C-HID", "name": "Hidden Harbor", "private": true, "status": "AT_RISK" }),
    )
    .await;
    create(schema, CREATE_CUSTOMER, json!({ "key": "C-OPEN", "name": "Open Bakery", "status": "AT_RISK" })).await;
    let manager = create(schema, CREATE_EMPLOYEE, json!({ "key": "E-9", "name": "Dana Reyes" })).await;
    let upsert = json!({ "input": { "from": manager["id"], "to": hidden["id"], "type": "MANAGES" } });
    let relationship = run_ok(schema, UPSERT, upsert).await["upsertRelationship"]["relationship"]["id"].clone();
    let input = json!({ "input": { "interactions": [{ "relationship": relationship, "at": "2026-01-10T09:00:00Z",
        "channel": "MEETING", "direction": "OUTBOUND", "note": "renewal terms" }] } });
    let interaction = run_ok(schema, RECORD, input).await["recordInteractions"]["interactions"][0]["id"].clone();
    let ids = [&hidden["id"], &manager["id"], &relationship, &interaction];
    let [a, b, c, d] = ids.map(|id| id.as_str().unwrap().to_owned());
    (a, b, c, d)
}

#[tokio::test]
async fn masked_stakeholders_leak_nothing_through_listings_cursors_or_networks() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (hidden, manager, relationship, interaction) = private_graph(&schema).await;
    let viewer = Caller::Key(Role::Viewer);

    let by_name = r#"{ stakeholders(orderBy: { field: NAME }) { totalCount edges { node { name masked } } } }"#;
    let seen = run_as(&schema, viewer, by_name, json!({})).await;
    assert_eq!(seen["data"]["stakeholders"]["totalCount"], 2, "a name-ordered listing would place the hidden name");
    assert!(seen.to_string().find("Hidden").is_none());
    assert_eq!(run_as(&schema, EDITOR, by_name, json!({})).await["data"]["stakeholders"]["totalCount"], 3);

    let by_status = r#"{ stakeholders(filter: { status: [AT_RISK] }) { totalCount } }"#;
    assert_eq!(run_as(&schema, viewer, by_status, json!({})).await["data"]["stakeholders"]["totalCount"], 1);

    let by_id = r#"{ stakeholders(orderBy: { field: CREATED_AT }) { edges { cursor node { masked } } } }"#;
    let listed = run_as(&schema, viewer, by_id, json!({})).await;
    let edges = listed["data"]["stakeholders"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "in any order, a viewer's listing leaves the private row out");
    let listed = run_as(&schema, EDITOR, by_id, json!({})).await;
    let edges = listed["data"]["stakeholders"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3);
    use base64::Engine;
    for edge in edges {
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(edge["cursor"].as_str().unwrap()).unwrap();
        assert!(!String::from_utf8_lossy(&cursor).contains("Hidden"), "cursors carry no values");
    }

    let network = r#"query($hidden: ID!, $manager: ID!) {
      hidden: stakeholder(id: $hidden) { relationships { totalCount } ... on Customer { relationshipManager { id } } }
      manager: stakeholder(id: $manager) { relationships { totalCount edges { counterpart { name masked }
        node { interactions { totalCount edges { node { note } } } } } } }
    }"#;
    let variables = json!({ "hidden": hidden, "manager": manager });
    let seen = run_as(&schema, viewer, network, variables.clone()).await;
    assert!(seen["data"]["hidden"]["relationships"].is_null(), "a masked stakeholder's network is withheld");
    assert!(seen["data"]["hidden"]["relationshipManager"].is_null());
    assert_eq!(
        seen["data"]["manager"]["relationships"]["totalCount"], 0,
        "a relationship with a masked end is withheld"
    );
    assert!(!seen.to_string().contains("renewal terms"));
    let full = run_as(&schema, EDITOR, network, variables).await;
    assert_eq!(full["data"]["manager"]["relationships"]["edges"][0]["node"]["interactions"]["totalCount"], 1);

    let node = r#"query($id: ID!) { node(id: $id) { id } }"#;
    for id in [&interaction, &relationship] {
        assert!(run_as(&schema, viewer, node, json!({ "id": id })).await["data"]["node"].is_null());
        assert!(!run_as(&schema, EDITOR, node, json!({ "id": id })).await["data"]["node"].is_null());
    }
}

#[tokio::test]
async fn absurd_cursors_and_several_mutation_fields_are_refused_cleanly() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (_, employee, _) = small_graph(&schema).await;
    use base64::Engine;
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("relationships|{}", usize::MAX));
    let query =
        r#"query($id: ID!, $after: String) { stakeholder(id: $id) { relationships(after: $after) { totalCount } } }"#;
    let response = run_as(&schema, EDITOR, query, json!({ "id": employee, "after": cursor })).await;
    assert_eq!(error_code(&response), ("BAD_USER_INPUT".to_owned(), "after".to_owned()));

    let before = store.counts().await.unwrap();
    let two = r#"mutation { a: createSupplier(input: { key: "S-1", name: "One" }) { id }
                           b: createSupplier(input: { key: "S-2", name: "Two", power: 2 }) { id } }"#;
    let response = run_as(&schema, EDITOR, two, json!({})).await;
    assert_eq!(error_code(&response).0, "BAD_USER_INPUT", "{response:#}");
    assert_eq!(store.counts().await.unwrap(), before, "neither mutation ran");
}

#[tokio::test]
async fn interactions_on_archived_stakeholders_are_refused() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (customer, _, relationship) = small_graph(&schema).await;
    run_ok(&schema, r#"mutation($id: ID!) { archiveStakeholder(id: $id) { id } }"#, json!({ "id": customer })).await;
    let input = json!({ "input": { "interactions": [{ "relationship": relationship, "at": "2026-01-10T09:00:00Z",
        "channel": "CALL", "direction": "INBOUND" }] } });
    let response = run_as(&schema, EDITOR, RECORD, input).await;
    assert_eq!(error_code(&response), ("CONFLICT".to_owned(), "input.interactions.0.relationship".to_owned()));
}

#[tokio::test]
async fn relationship_strength_is_explained_and_evaluated_as_of_any_time() {
    use stakegraph::domain::strength::StrengthModel;
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (customer, _, relationship) = small_graph(&schema).await;
    let input = json!({ "input": { "interactions": [
        { "relationship": relationship, "at": "2026-01-10T09:00:00Z", "channel": "MEETING", "direction": "OUTBOUND", "sentiment": 0.6 },
        { "relationship": relationship, "at": "2026-02-10T09:00:00Z", "channel": "PURCHASE", "direction": "INBOUND", "sentiment": 0.4 }
    ]}});
    run_ok(&schema, RECORD, input).await;
    let query = r#"query($id: ID!, $asOf: DateTime!) { relationship(id: $id) { strength(asOf: $asOf) {
        score trend model asOf components { name value weight contribution } } } }"#;
    let forecast = r#"query($id: ID!, $asOf: DateTime!, $threshold: Float!) { relationship(id: $id) {
        strength(asOf: $asOf) { fallsBelow(threshold: $threshold) } } }"#;

    let id = match stakegraph::api::ids::GlobalId::decode(&relationship, "id").unwrap() {
        stakegraph::api::ids::GlobalId::Relationship(id) => id,
        other => panic!("{other:?}"),
    };
    let stored = store.relationships_by_id(&[id]).await.unwrap().pop().unwrap();
    let history = store.interaction_histories(&[id]).await.unwrap().remove(&id).unwrap();
    let model = StrengthModel::default();
    for as_of in ["2026-03-01T00:00:00Z", "2026-01-20T00:00:00Z"] {
        let data = run_ok(&schema, query, json!({ "id": relationship, "asOf": as_of })).await;
        let strength = &data["relationship"]["strength"];
        let at = chrono::DateTime::parse_from_rfc3339(as_of).unwrap().to_utc();
        let expected = model.evaluate_history(&stored, &history, at);
        assert!((strength["score"].as_f64().unwrap() - expected.score).abs() < 1e-12, "{as_of}");
        let total: f64 =
            strength["components"].as_array().unwrap().iter().map(|c| c["contribution"].as_f64().unwrap()).sum();
        assert!((total - expected.score).abs() < 1e-12, "contributions add up");
        assert!((strength["trend"].as_f64().unwrap() - model.trend(&stored, &history, at)).abs() < 1e-12);
        assert_eq!(strength["model"], "strength-v1");
        let threshold = expected.score - 0.05;
        let data =
            run_ok(&schema, forecast, json!({ "id": relationship, "asOf": as_of, "threshold": threshold })).await;
        let falls = data["relationship"]["strength"]["fallsBelow"].as_str().expect("decay brings it below");
        let falls = chrono::DateTime::parse_from_rfc3339(falls).unwrap().to_utc();
        assert!(falls > at, "the forecast lies ahead");
        let frozen = stakegraph::domain::strength::DecayedSums::from_history(&model, &history, at);
        assert!(model.evaluate(&stored, &frozen, falls).score < threshold, "with no interaction after {as_of}");
    }
    let early = run_ok(&schema, query, json!({ "id": relationship, "asOf": "2026-01-20T00:00:00Z" })).await;
    let late = run_ok(&schema, query, json!({ "id": relationship, "asOf": "2026-03-01T00:00:00Z" })).await;
    assert_ne!(early["relationship"]["strength"]["score"], late["relationship"]["strength"]["score"]);

    let bad = r#"query($id: ID!) { relationship(id: $id) { strength { fallsBelow(threshold: 1.5) } } }"#;
    let response = run_as(&schema, EDITOR, bad, json!({ "id": relationship })).await;
    assert_eq!(error_code(&response), ("BAD_USER_INPUT".to_owned(), "threshold".to_owned()));

    let other = create(&schema, CREATE_SUPPLIER, json!({ "key": "S-3", "name": "Weak Link Ltd" })).await;
    run_ok(&schema, UPSERT, json!({ "input": { "from": other["id"], "to": customer, "type": "KNOWS" } })).await;
    let ranked = r#"query($id: ID!) { stakeholder(id: $id) { strongestRelationships(first: 5, asOf: "2026-03-01T00:00:00Z") {
        counterpart { name } strength { score } } } }"#;
    let data = run_ok(&schema, ranked, json!({ "id": customer })).await;
    let list = data["stakeholder"]["strongestRelationships"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["counterpart"]["name"], "Dana Reyes", "the managed, active relationship is the strongest");
    assert!(list[0]["strength"]["score"].as_f64().unwrap() > list[1]["strength"]["score"].as_f64().unwrap());
}

#[tokio::test]
async fn the_change_log_pages_in_order_and_withholds_only_masked_payloads() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    private_graph(&schema).await;
    let query = crate::support::operation("changes_since.graphql");
    let total = store.counts().await.unwrap().changes;
    for caller in [EDITOR, Caller::Key(Role::Viewer)] {
        let mut after = Value::Null;
        let mut events = Vec::new();
        loop {
            let response = run_as(&schema, caller, &query, json!({ "after": after, "first": 2 })).await;
            let page = &response["data"]["changes"];
            events.extend(page["edges"].as_array().unwrap().iter().map(|edge| edge["node"].clone()));
            if page["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(events.len() as u64, total, "{caller:?}: every change, none skipped");
        let kinds: Vec<Option<&str>> = events.iter().map(|event| event["kind"].as_str()).collect();
        let masked = events.iter().filter(|event| event["masked"] == true).count();
        if caller == EDITOR {
            assert_eq!(
                kinds,
                [
                    Some("STAKEHOLDER_CREATED"),
                    Some("STAKEHOLDER_CREATED"),
                    Some("STAKEHOLDER_CREATED"),
                    Some("RELATIONSHIP_CREATED"),
                    Some("INTERACTIONS_RECORDED")
                ]
            );
            assert_eq!(masked, 0);
            assert!(Value::from(events.clone()).to_string().contains("Hidden Harbor"));
        } else {
            // The private customer's creation, its relationship and its interactions keep their place, and say
            // nothing but their cursor.
            assert_eq!(kinds, [None, Some("STAKEHOLDER_CREATED"), Some("STAKEHOLDER_CREATED"), None, None]);
            assert_eq!(masked, 3);
            assert!(events
                .iter()
                .filter(|event| event["masked"] == true)
                .all(|event| event["payload"].is_null() && event["at"].is_null() && event["cursor"].is_string()));
            assert!(!Value::from(events.clone()).to_string().contains("Hidden Harbor"));
        }
    }
    let bad = run_as(&schema, EDITOR, &query, json!({ "after": "bm9wZQ" })).await;
    assert_eq!(error_code(&bad), ("BAD_USER_INPUT".to_owned(), "after".to_owned()));
}

#[tokio::test]
async fn interaction_topics_round_trip_through_the_mutation_the_log_a_subscription_and_the_filter() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (_, _, relationship) = small_graph(&schema).await;
    let log = run_ok(&schema, "{ changes(first: 100) { edges { node { cursor } } } }", json!({})).await;
    let after = log["changes"]["edges"].as_array().unwrap().last().unwrap()["node"]["cursor"].clone();
    let request =
        async_graphql::Request::new("subscription($after: String) { changes(after: $after) { kind payload } }")
            .variables(async_graphql::Variables::from_json(json!({ "after": after })))
            .data(EDITOR);
    let mut feed = Box::pin(async_graphql::Executor::execute_stream(&schema, request, None));
    let interactions = json!({ "input": { "interactions": [
        { "relationship": relationship, "at": "2026-01-10T09:00:00Z", "channel": "PURCHASE", "direction": "INBOUND", "topic": "ORDER" },
        { "relationship": relationship, "at": "2026-01-12T09:00:00Z", "channel": "SUPPORT", "direction": "INBOUND",
          "sentiment": -0.8, "topic": "COMPLAINT" },
        { "relationship": relationship, "at": "2026-01-15T09:00:00Z", "channel": "MEETING", "direction": "OUTBOUND" }
    ]}});
    let recorded = run_ok(&schema, RECORD, interactions).await;
    let ids = recorded["recordInteractions"]["interactions"].clone();

    let event = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next()).await.unwrap().unwrap();
    let event = event.data.into_json().unwrap()["changes"].clone();
    assert_eq!(event["kind"], "INTERACTIONS_RECORDED");
    assert_eq!(event["payload"]["topics"], json!(["ORDER", "COMPLAINT", null]), "{event}");
    let logged = store.changes_after(0, 100).await.unwrap();
    let last = logged.last().unwrap();
    assert_eq!(stored(&last.payload)["topics"], json!(["ORDER", "COMPLAINT", null]), "and in the durable log");

    let read = r#"query($id: ID!, $topics: [Topic!]) { relationship(id: $id) {
        all: interactions { totalCount edges { node { id topic } } }
        some: interactions(topics: $topics) { totalCount edges { node { topic } } } } }"#;
    let data = run_ok(&schema, read, json!({ "id": relationship, "topics": ["COMPLAINT", "RETURN"] })).await;
    let all = &data["relationship"]["all"];
    assert_eq!(all["totalCount"], 3);
    let topics: Vec<Value> =
        all["edges"].as_array().unwrap().iter().map(|edge| edge["node"]["topic"].clone()).collect();
    assert_eq!(topics, [json!(null), json!("COMPLAINT"), json!("ORDER")], "newest first");
    assert_eq!(all["edges"][2]["node"]["id"], ids[0]["id"]);
    let some = &data["relationship"]["some"];
    assert_eq!(some["totalCount"], 1, "the count follows the filter");
    assert_eq!(some["edges"], json!([{ "node": { "topic": "COMPLAINT" } }]));
}

const UPSERT_STAKEHOLDERS: &str = r#"mutation($input: UpsertStakeholdersInput!) { upsertStakeholders(input: $input) {
  created changed unchanged stakeholders { id key name kind ... on Customer { status lifetimeValue } } } }"#;

/// `upsertStakeholders`: a nightly sync is one call, all or nothing; sending the same records again changes and
/// logs nothing; a corrected record updates in place; refusals name the item.
#[tokio::test]
async fn upsert_stakeholders_by_key_is_one_transaction_and_a_repeat_is_a_no_op() {
    let (store, _dir) = fresh_store();
    let schema = stakegraph::api::build_schema(
        store.clone(),
        stakegraph::api::ApiLimits { max_batch: 4, ..Default::default() },
        false,
    );
    let records = |name: &str| {
        json!({ "input": {
            "customers": [
                { "key": "C-1", "name": name, "power": 0.5, "interest": 0.5, "status": "ACTIVE", "lifetimeValue": 100.0 },
                { "key": "C-2", "name": "Second", "power": 0.2, "interest": 0.9, "status": "ACTIVE" }
            ],
            "suppliers": [{ "key": "S-1", "name": "Supplier", "power": 0.3, "interest": 0.3, "category": "steel" }]
        } })
    };
    let data = run_ok(&schema, UPSERT_STAKEHOLDERS, records("First")).await;
    let payload = &data["upsertStakeholders"];
    assert_eq!(
        (payload["created"].clone(), payload["changed"].clone(), payload["unchanged"].clone()),
        (json!(3), json!(0), json!(0))
    );
    let keys: Vec<&str> =
        payload["stakeholders"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["C-1", "C-2", "S-1"], "in input order");
    assert_eq!(store.counts().await.unwrap().changes, 3);

    let again = run_ok(&schema, UPSERT_STAKEHOLDERS, records("First")).await;
    assert_eq!(again["upsertStakeholders"]["unchanged"], 3);
    assert_eq!(again["upsertStakeholders"]["stakeholders"], payload["stakeholders"], "the same ids, the same records");
    assert_eq!(store.counts().await.unwrap().changes, 3, "a repeat logs nothing");

    let corrected = run_ok(&schema, UPSERT_STAKEHOLDERS, records("First Ltd")).await;
    assert_eq!(
        (corrected["upsertStakeholders"]["changed"].clone(), corrected["upsertStakeholders"]["unchanged"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(corrected["upsertStakeholders"]["stakeholders"][0]["name"], "First Ltd");
    assert_eq!(corrected["upsertStakeholders"]["stakeholders"][0]["id"], payload["stakeholders"][0]["id"]);
    assert_eq!(store.counts().await.unwrap().changes, 4);

    // A key of another kind: refused at its item, and nothing of the call is written.
    let clash = json!({ "input": {
        "customers": [
            { "key": "C-3", "name": "Third", "power": 0.5, "interest": 0.5 },
            { "key": "S-1", "name": "Not a customer", "power": 0.5, "interest": 0.5 }
        ] } });
    let refused = run_as(&schema, Caller::Key(Role::Admin), UPSERT_STAKEHOLDERS, clash).await;
    assert_eq!(error_code(&refused), ("CONFLICT".into(), "input.customers.1.key".into()), "{refused:#}");
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.stakeholders, counts.changes), (3, 4), "nothing of the refused call");

    // A key twice in one call, a call past `max_batch`, an empty call, a viewer.
    let twice = json!({ "input": {
        "customers": [{ "key": "X", "name": "X", "power": 0.5, "interest": 0.5 }],
        "employees": [{ "key": "X", "name": "X", "power": 0.5, "interest": 0.5 }] } });
    let refused = run_as(&schema, Caller::Key(Role::Admin), UPSERT_STAKEHOLDERS, twice).await;
    assert_eq!(error_code(&refused), ("BAD_USER_INPUT".into(), "input.employees.0.key".into()));
    let many: Vec<Value> =
        (0..5).map(|i| json!({ "key": format!("M-{i}"), "name": "M", "power": 0.5, "interest": 0.5 })).collect();
    let refused =
        run_as(&schema, Caller::Key(Role::Admin), UPSERT_STAKEHOLDERS, json!({ "input": { "suppliers": many } })).await;
    assert_eq!(error_code(&refused), ("LIMIT_EXCEEDED".into(), "input".into()), "{refused:#}");
    let refused = run_as(&schema, Caller::Key(Role::Admin), UPSERT_STAKEHOLDERS, json!({ "input": {} })).await;
    assert_eq!(error_code(&refused).0, "BAD_USER_INPUT");
    // The payload's list is priced per item: 6 items × 100 relationships' forecasts is past `max_forecasts` (500).
    let six: Vec<Value> =
        (0..6).map(|i| json!({ "key": format!("F-{i}"), "name": "F", "power": 0.5, "interest": 0.5 })).collect();
    let heavy = "mutation($input: UpsertStakeholdersInput!) { upsertStakeholders(input: $input) { stakeholders { \
                 relationships(first: 100) { edges { node { strength { fallsBelow(threshold: 0.3) } } } } } } }";
    let schema_six = build_schema(store.clone(), ApiLimits { max_batch: 10, ..Default::default() }, false);
    let refused = run_as(&schema_six, Caller::Key(Role::Admin), heavy, json!({ "input": { "suppliers": six } })).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED", "{refused:#}");
    let refused = run_as(&schema, Caller::Key(Role::Viewer), UPSERT_STAKEHOLDERS, records("Viewer")).await;
    assert!(refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", "{refused:#}");
    assert_eq!(store.counts().await.unwrap().changes, 4);
}

const UPSERT_RELATIONSHIPS: &str = r#"mutation($input: UpsertRelationshipsInput!) { upsertRelationships(input: $input) {
  created changed unchanged relationships { id type trust from { key } to { key } } } }"#;

/// `upsertRelationships` names the ends by key: one transaction, a repeat is a no-op, a correction updates in
/// place, an unknown key is refused at its field and nothing is written.
#[tokio::test]
async fn upsert_relationships_by_key_is_one_transaction_and_a_repeat_is_a_no_op() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let people = json!({ "input": {
        "customers": [{ "key": "C-1", "name": "Customer", "power": 0.5, "interest": 0.5, "status": "ACTIVE" }],
        "employees": [{ "key": "E-1", "name": "Manager", "power": 0.5, "interest": 0.5 }],
        "suppliers": [{ "key": "S-1", "name": "Supplier", "power": 0.5, "interest": 0.5 }] } });
    run_ok(&schema, UPSERT_STAKEHOLDERS, people).await;
    let links = |trust: f64| {
        json!({ "input": { "relationships": [
            { "fromKey": "E-1", "toKey": "C-1", "type": "MANAGES", "level": "PROACTIVE", "trust": trust },
            { "fromKey": "C-1", "toKey": "S-1", "type": "KNOWS" }
        ] } })
    };
    let data = run_ok(&schema, UPSERT_RELATIONSHIPS, links(0.7)).await;
    let payload = &data["upsertRelationships"];
    assert_eq!((payload["created"].clone(), payload["unchanged"].clone()), (json!(2), json!(0)));
    assert_eq!(payload["relationships"][0]["from"]["key"], "E-1");
    assert_eq!(payload["relationships"][0]["to"]["key"], "C-1");
    assert_eq!(payload["relationships"][0]["trust"], 0.7);
    let logged = store.counts().await.unwrap().changes;
    // The engine's projection has them: the graph's relationships, and the manager's customers.
    let seen = run_ok(
        &schema,
        "{ relationships(first: 0) { aggregate { count } } stakeholders(first: 0, filter: { kinds: [CUSTOMER] }) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(
        (seen["relationships"]["aggregate"]["count"].clone(), seen["stakeholders"]["totalCount"].clone()),
        (json!(2), json!(1))
    );
    let again = run_ok(&schema, UPSERT_RELATIONSHIPS, links(0.7)).await;
    assert_eq!(again["upsertRelationships"]["unchanged"], 2);
    assert_eq!(again["upsertRelationships"]["relationships"], payload["relationships"]);
    assert_eq!(store.counts().await.unwrap().changes, logged, "a repeat logs nothing");
    let corrected = run_ok(&schema, UPSERT_RELATIONSHIPS, links(0.9)).await;
    let corrected = &corrected["upsertRelationships"];
    assert_eq!((corrected["changed"].clone(), corrected["unchanged"].clone()), (json!(1), json!(1)));
    assert_eq!(corrected["relationships"][0]["id"], payload["relationships"][0]["id"]);
    assert_eq!(store.counts().await.unwrap().changes, logged + 1);

    let unknown = json!({ "input": { "relationships": [
        { "fromKey": "E-1", "toKey": "S-1", "type": "KNOWS" },
        { "fromKey": "C-1", "toKey": "NOPE", "type": "KNOWS" }
    ] } });
    let refused = run_as(&schema, Caller::Key(Role::Admin), UPSERT_RELATIONSHIPS, unknown).await;
    assert_eq!(error_code(&refused), ("BAD_USER_INPUT".into(), "input.relationships.1.toKey".into()), "{refused:#}");
    let twice = json!({ "input": { "relationships": [
        { "fromKey": "C-1", "toKey": "S-1", "type": "KNOWS" },
        { "fromKey": "C-1", "toKey": "S-1", "type": "KNOWS", "trust": 0.1 }
    ] } });
    let refused = run_as(&schema, Caller::Key(Role::Admin), UPSERT_RELATIONSHIPS, twice).await;
    assert_eq!(error_code(&refused), ("BAD_USER_INPUT".into(), "input.relationships.1".into()), "{refused:#}");
    // A type the ends cannot have: refused by the store at its item, with the rest of the call.
    let wrong = json!({ "input": { "relationships": [
        { "fromKey": "E-1", "toKey": "S-1", "type": "KNOWS" },
        { "fromKey": "S-1", "toKey": "C-1", "type": "MANAGES" }
    ] } });
    let refused = run_as(&schema, Caller::Key(Role::Admin), UPSERT_RELATIONSHIPS, wrong).await;
    assert_eq!(error_code(&refused), ("BAD_USER_INPUT".into(), "input.relationships.1.type".into()), "{refused:#}");
    assert_eq!(store.counts().await.unwrap().changes, logged + 1, "nothing of the refused calls");
    let refused = run_as(&schema, Caller::Key(Role::Viewer), UPSERT_RELATIONSHIPS, links(0.1)).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused:#}");
}

#[tokio::test]
async fn a_retried_record_with_keys_records_each_interaction_once() {
    let (store, _dir) = fresh_store();
    let schema = schema(store.clone());
    let (_, _, relationship) = small_graph(&schema).await;
    let call = |key: &str, sentiment: f64| {
        json!({ "relationship": relationship, "at": "2026-01-10T09:00:00Z", "channel": "CALL",
                "direction": "INBOUND", "sentiment": sentiment, "key": key })
    };
    let record = "mutation($input: RecordInteractionsInput!) {
        recordInteractions(input: $input) { count interactions { id key sentiment } } }";
    let first = run_ok(&schema, record, json!({ "input": { "interactions": [call("crm-1", 0.5)] } })).await;
    assert_eq!(first["recordInteractions"]["count"], 1);
    let id = first["recordInteractions"]["interactions"][0]["id"].clone();
    assert_eq!(first["recordInteractions"]["interactions"][0]["key"], "crm-1");
    // The client did not hear back and sends the same request again, with one more.
    let retry = json!({ "input": { "interactions": [call("crm-1", 0.5), call("crm-2", 0.1)] } });
    let again = run_ok(&schema, record, retry).await;
    assert_eq!(again["recordInteractions"]["count"], 1, "only crm-2 is new");
    assert_eq!(again["recordInteractions"]["interactions"][0]["id"], id, "crm-1 comes back as recorded");
    let logged = store.changes_after(0, 100).await.unwrap();
    let recorded: Vec<_> = logged.iter().filter(|event| event.kind.as_str() == "INTERACTIONS_RECORDED").collect();
    assert_eq!(recorded.len(), 2, "one event per request that recorded something");
    // Other values under a recorded key: refused, naming the field, and nothing is written.
    let changed = json!({ "input": { "interactions": [call("crm-3", 0.2), call("crm-1", -0.9)] } });
    let response = run_as(&schema, Caller::Key(Role::Admin), record, changed).await;
    assert_eq!(error_code(&response), ("CONFLICT".to_owned(), "input.interactions.1.key".to_owned()));
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("already recorded") && message.contains("sentiment"), "{message}");
    assert_eq!(store.changes_after(0, 100).await.unwrap().len(), logged.len(), "the refused request wrote nothing");
}

/// A stakeholder made public after it was private: the events of its private days (its creation, and the change
/// that made it public) stay masked for a viewer, whatever fields are asked (`changedFields` would tell its old
/// name); its later changes show, with their typed fields.
#[tokio::test]
async fn the_changes_of_a_stakeholder_while_it_was_private_stay_masked_once_it_is_public() {
    let (store, _dir) = fresh_store();
    let schema = schema(store);
    let create = r#"mutation { createCustomer(input: { key: "P-1", name: "Hidden Harbor", private: true }) { id } }"#;
    let id = run_ok(&schema, create, json!({})).await["createCustomer"]["id"].clone();
    let update = "mutation($id: ID!, $name: String, $private: Boolean, $segment: String) {
        updateCustomer(input: { id: $id, name: $name, private: $private, segment: $segment }) { id } }";
    run_ok(&schema, update, json!({ "id": id, "name": "Open Harbor", "private": false })).await;
    run_ok(&schema, update, json!({ "id": id, "segment": "SMB" })).await;

    let query = "{ changes(first: 10) { edges { node { masked kind changedFields { field before after }
        stakeholderNow { id ... on Customer { name segment } } payload } } } }";
    let events = |response: Value| -> Vec<Value> {
        assert!(response.get("errors").is_none(), "{response:#}");
        response["data"]["changes"]["edges"].as_array().unwrap().iter().map(|edge| edge["node"].clone()).collect()
    };
    let viewer = events(run_as(&schema, Caller::Key(Role::Viewer), query, json!({})).await);
    let masked: Vec<&Value> = viewer.iter().map(|event| &event["masked"]).collect();
    assert_eq!(masked, [&json!(true), &json!(true), &json!(false)], "{viewer:#?}");
    assert!(!json!(viewer).to_string().contains("Hidden Harbor"), "{viewer:#?}");
    for event in &viewer[..2] {
        for field in ["kind", "changedFields", "stakeholderNow", "payload"] {
            assert!(event[field].is_null(), "{field} of a masked event: {event}");
        }
    }
    let later = &viewer[2];
    assert_eq!(later["changedFields"], json!([{ "field": "segment", "before": null, "after": "SMB" }]));
    assert_eq!(later["stakeholderNow"]["name"], "Open Harbor");

    let editor = events(run_as(&schema, EDITOR, query, json!({})).await);
    assert!(editor.iter().all(|event| event["masked"] == false));
    let renamed = editor[1]["changedFields"].as_array().unwrap();
    assert!(renamed.contains(&json!({ "field": "name", "before": "Hidden Harbor", "after": "Open Harbor" })));
    assert!(renamed.contains(&json!({ "field": "private", "before": true, "after": false })));
}

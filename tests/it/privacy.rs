//! The privacy policy (README, "Privacy"), checked on every read surface of the schema.
//!
//! A graph with private stakeholders (a private customer managed by a public employee, a private employee managing
//! a public customer, a private supplier, relationships between public and private stakeholders and between
//! private ones, interactions on all of them, updates, an exit, an archive) is read by a viewer and by an anonymous
//! caller (anonymous reads on) through every root field and subscription, each with a selection generated from the
//! schema's introspection: every field of every type reachable from it, to a depth. Every response must hold
//! nothing of a private stakeholder: none of its names, keys or texts, no id of a relationship or interaction
//! withheld, and its own id only inside a masked stakeholder (`MaskedStakeholder`, `masked: true`, every other
//! field null). An editor reading the same surfaces sees all of it, so the checks can fail.
//!
//! The root fields covered are listed in [`QUERY_FIELDS`] and [`SUBSCRIPTION_FIELDS`]; a field added to the schema
//! fails the test until it is covered here.

use crate::support::{error_code, fresh_store, run_as};
use async_graphql::futures_util::StreamExt;
use serde_json::{json, Value};
use stakegraph::api::{build_schema, ApiLimits, Caller, StakegraphSchema};
use stakegraph::domain::Role;
use std::collections::{BTreeSet, HashMap};

const EDITOR: Caller = Caller::Key(Role::Editor);
const VIEWER: Caller = Caller::Key(Role::Viewer);
const ANONYMOUS: Caller = Caller::Anonymous;

/// Every root query field this test reads.
const QUERY_FIELDS: &[&str] = &[
    "node",
    "nodes",
    "stakeholder",
    "stakeholderByKey",
    "stakeholders",
    "relationship",
    "relationships",
    "graphCounts",
    "influencePaths",
    "influenceReach",
    "keyInfluencers",
    "brokers",
    "keyPersonRisk",
    "exitAnalysis",
    "atRiskCustomers",
    "marketOverview",
    "changes",
    "programs",
    "program",
    "webhooks",
    "webhookDeliveries",
    "_service",
    "_entities",
];

/// Every root subscription field this test reads.
const SUBSCRIPTION_FIELDS: &[&str] = &["changes", "relationshipChanged", "strengthCrossed"];

/// How deep the generated selections go (object levels below the root field): deep enough to reach a stakeholder's
/// relationships' interactions and ends; each level multiplies the size of the document.
const DEPTH: usize = 4;

/// The test graph: global ids by name, and what must never reach a caller who sees private stakeholders masked.
struct Graph {
    ids: HashMap<&'static str, String>,
    /// Global ids of the private stakeholders.
    private_ids: Vec<String>,
    /// Global ids of the relationships with a private end and of their interactions.
    withheld: Vec<String>,
    /// Texts and ids that only an editor may read: private names, keys and texts, and the global ids of the
    /// relationships (and their interactions) with a private end.
    secrets: Vec<String>,
}

impl Graph {
    fn id(&self, name: &str) -> &str {
        &self.ids[name]
    }
}

/// A schema with anonymous reads on and limits wide enough for the generated selections.
fn wide_schema(store: std::sync::Arc<dyn stakegraph::store::GraphStore>) -> StakegraphSchema {
    let limits = ApiLimits {
        max_depth: 64,
        max_complexity: 1_000_000,
        max_nodes: u64::MAX,
        max_body_bytes: 64 << 20,
        max_nesting: 256,
        max_cost: u64::MAX,
        max_forecasts: u64::MAX,
        max_analyses: 100_000,
        analyses_per_minute_per_key: u32::MAX / 2,
        // Every employee in the generated selections computes its portfolio, an analysis: thousands at once.
        max_queued_analyses: 1_000_000,
        // The generated selections are large, and a debug build on a busy CI machine is slow.
        request_timeout_ms: 600_000,
        ..ApiLimits::default()
    };
    build_schema(store, limits, true)
}

async fn ok(schema: &StakegraphSchema, query: &str, variables: Value) -> Value {
    let response = run_as(schema, EDITOR, query, variables).await;
    assert!(response.get("errors").is_none(), "{query}: {response:#}");
    response["data"].clone()
}

/// Builds the graph as an editor.
async fn build_graph(schema: &StakegraphSchema) -> Graph {
    let mut ids: HashMap<&'static str, String> = HashMap::new();
    let mut secrets: Vec<String> = Vec::new();
    let mut withheld: Vec<String> = Vec::new();
    let stakeholders: [(&str, &str, Value); 9] = [
        ("P1", "createCustomer", json!({ "key": "PUB-C1", "name": "Open Bakery", "status": "ACTIVE" })),
        ("P2", "createCustomer", json!({ "key": "PUB-C2", "name": "Corner Shop", "status": "AT_RISK" })),
        ("E1", "createEmployee", json!({ "key": "PUB-E1", "name": "Dana Reyes", "role": "Account lead" })),
        ("S1", "createSupplier", json!({ "key": "PUB-S1", "name": "Steel Works", "category": "Steel" })),
        ("M1", "createMediaOutlet", json!({ "key": "PUB-M1", "name": "Daily Bugle", "outlet": "Bugle" })),
        (
            "H1",
            "createCustomer",
            json!({ "key": "HIDKEY-C", "name": "Hidden Harbor", "private": true, "status": "AT_RISK",
                    "segment": "hush-segment", "power": 0.9, "interest": 0.9 }),
        ),
        (
            "H2",
            "createEmployee",
            json!({ "key": "HIDKEY-E", "name": "Secret Agent", "private": true, "role": "ghost-role",
                    "department": "shadow-dept" }),
        ),
        (
            "H3",
            "createSupplier",
            json!({ "key": "HIDKEY-S", "name": "Covert Metals", "private": true, "category": "cloak-category" }),
        ),
        ("H4", "createCustomer", json!({ "key": "HIDKEY-A", "name": "Buried Vault", "private": true })),
    ];
    for (name, mutation, input) in stakeholders {
        let input_type = format!("{}{}Input", "Create", &mutation["create".len()..]);
        let query = format!("mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ id }} }}");
        let id =
            ok(schema, &query, json!({ "input": input.clone() })).await[mutation]["id"].as_str().unwrap().to_owned();
        if input["private"] == true {
            secrets.push(input["key"].as_str().unwrap().to_owned());
            secrets.push(input["name"].as_str().unwrap().to_owned());
            for text in ["segment", "role", "department", "category"] {
                if let Some(value) = input[text].as_str() {
                    secrets.push(value.to_owned());
                }
            }
        }
        ids.insert(name, id);
    }
    // (name, from, to, type, hidden): hidden when an end is private.
    let relationships = [
        ("r1", "E1", "H1", "MANAGES"),
        ("r2", "H2", "P1", "MANAGES"),
        ("r3", "E1", "P2", "MANAGES"),
        ("r4", "E1", "S1", "KNOWS"),
        ("r5", "S1", "P1", "SUPPLIES"),
        ("r6", "M1", "H1", "KNOWS"),
        ("r7", "H3", "P2", "SUPPLIES"),
        ("r8", "H1", "H2", "KNOWS"),
        ("r9", "E1", "H2", "KNOWS"),
        ("r10", "M1", "P1", "KNOWS"),
        ("r11", "H4", "P2", "KNOWS"),
    ];
    let upsert =
        "mutation($input: UpsertRelationshipInput!) { upsertRelationship(input: $input) { relationship { id } } }";
    let mut interactions = Vec::new();
    for (name, from, to, rel_type) in relationships {
        let hidden = from.starts_with('H') || to.starts_with('H');
        // The hidden relationships are strong, so that an editor's strongest paths run through them.
        // r6 (hidden) and r10 (public) alike, so that the strengthCrossed check sees both cross.
        let (level, trust) = match name {
            "r6" | "r10" => ("PROACTIVE", 0.5),
            _ if hidden => ("PARTNERSHIP", 0.95),
            _ => ("REACTIVE", 0.3),
        };
        let input = json!({ "from": ids[from], "to": ids[to], "type": rel_type, "level": level, "trust": trust,
                            "commitment": trust, "bonds": ["SOCIAL", "STRUCTURAL"] });
        let id = ok(schema, upsert, json!({ "input": input })).await["upsertRelationship"]["relationship"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if hidden {
            withheld.push(id.clone());
        }
        // r6 and r10 get only old interactions: the strengthCrossed check raises them later.
        let at = if name == "r6" || name == "r10" { "2024-01-10T09:00:00Z" } else { "2026-01-10T09:00:00Z" };
        let note = if hidden { format!("whisper-note-{name}") } else { format!("public-note-{name}") };
        for (channel, direction) in [("MEETING", "INBOUND"), ("CALL", "OUTBOUND"), ("PURCHASE", "INBOUND")] {
            interactions.push((
                hidden,
                json!({ "relationship": id, "at": at, "channel": channel,
                "direction": direction, "sentiment": 0.6, "note": note, "amount": 120.5,
                "productLine": if hidden { "veiled-line" } else { "open-line" } }),
            ));
        }
        if hidden {
            secrets.push(note);
        }
        ids.insert(name, id);
    }
    secrets.push("veiled-line".to_owned());
    let record =
        "mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { interactions { id } } }";
    let input: Vec<Value> = interactions.iter().map(|(_, interaction)| interaction.clone()).collect();
    let recorded = ok(schema, record, json!({ "input": { "interactions": input } })).await;
    let recorded = recorded["recordInteractions"]["interactions"].as_array().unwrap().clone();
    for ((hidden, _), interaction) in interactions.iter().zip(&recorded) {
        if *hidden {
            withheld.push(interaction["id"].as_str().unwrap().to_owned());
        }
    }
    ids.insert("public-interaction", recorded.last().unwrap()["id"].as_str().unwrap().to_owned());
    // A programme with a public and a private member (the private one also leaves it).
    let program = ok(
        schema,
        "mutation { createProgram(input: { key: \"PRG\", name: \"Open Club\", kind: CLUB, markets: [CUSTOMER] }) { id } }",
        json!({}),
    )
    .await["createProgram"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Customers since 2024, members since 2025 (the private one leaves today).
    let since = "mutation($id: ID!) { updateCustomer(input: { id: $id, customerSince: \"2024-01-01\" }) { id } }";
    let enrol = "mutation($program: ID!, $customer: ID!) { enrolInProgram(input: { programId: $program, customerId: $customer, date: \"2025-01-01\" }) { id } }";
    for name in ["P1", "H1"] {
        ok(schema, since, json!({ "id": ids[name] })).await;
        ok(schema, enrol, json!({ "program": program, "customer": ids[name] })).await;
    }
    let leave = "mutation($program: ID!, $customer: ID!) { leaveProgram(input: { programId: $program, customerId: $customer }) { id } }";
    ok(schema, leave, json!({ "program": program, "customer": ids["H1"] })).await;
    ids.insert("program", program);
    // Changes after creation: an update, an exit, an archive.
    let update = "mutation($id: ID!) { updateCustomer(input: { id: $id, name: \"Hidden Harbor Holdings\" }) { id } }";
    ok(schema, update, json!({ "id": ids["H1"] })).await;
    secrets.push("Hidden Harbor Holdings".to_owned());
    let exit = "mutation($id: ID!) { recordCustomerExit(input: { id: $id, reason: PRICE }) { id } }";
    ok(schema, exit, json!({ "id": ids["H1"] })).await;
    ok(schema, "mutation($id: ID!) { archiveStakeholder(id: $id) { id } }", json!({ "id": ids["H4"] })).await;
    let private_ids = ["H1", "H2", "H3", "H4"].iter().map(|name| ids[name].clone()).collect();
    secrets.extend(withheld.iter().cloned());
    Graph { ids, private_ids, withheld, secrets }
}

// ---------------------------------------------------------------------------------------------------------------
// Selections generated from the schema.

/// The schema's types, from introspection.
struct Types {
    by_name: HashMap<String, Value>,
}

const INTROSPECTION: &str = r#"{ __schema {
    queryType { name } subscriptionType { name }
    types { kind name possibleTypes { name }
      fields { name
        args { name defaultValue type { ...Ref } }
        type { ...Ref } } } } }
  fragment Ref on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }"#;

/// The named type under NON_NULL and LIST wrappers, and whether the outer type is non-null.
fn named(reference: &Value) -> (&str, &str) {
    let mut reference = reference;
    while reference["name"].is_null() {
        reference = &reference["ofType"];
    }
    (reference["kind"].as_str().unwrap(), reference["name"].as_str().unwrap())
}

impl Types {
    async fn load(schema: &StakegraphSchema) -> Self {
        let data = ok(schema, INTROSPECTION, json!({})).await;
        let by_name = data["__schema"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ty| (ty["name"].as_str().unwrap().to_owned(), ty.clone()))
            .collect();
        Types { by_name }
    }

    fn fields(&self, type_name: &str) -> Vec<Value> {
        self.by_name[type_name]["fields"].as_array().cloned().unwrap_or_default()
    }

    /// The root fields of the root type `root` ("Query" or "SubscriptionRoot").
    fn root_fields(&self, root: &str) -> BTreeSet<String> {
        self.fields(root).iter().map(|field| field["name"].as_str().unwrap().to_owned()).collect()
    }

    /// A selection of every field of `type_name` to `depth` object levels (interfaces: their own fields, then
    /// every implementation's others under an inline fragment, aliased so that no two clash).
    fn selection(&self, type_name: &str, depth: usize) -> String {
        let ty = &self.by_name[type_name];
        let mut out = String::from("__typename ");
        let own: Vec<Value> = self.fields(type_name);
        for field in &own {
            out.push_str(&self.field(field, depth, None));
        }
        if ty["kind"] == "INTERFACE" || ty["kind"] == "UNION" {
            let own_names: BTreeSet<&str> = own.iter().map(|field| field["name"].as_str().unwrap()).collect();
            for possible in ty["possibleTypes"].as_array().unwrap() {
                let possible = possible["name"].as_str().unwrap();
                // Stakeholders under `Node` and `_Entity`: through the `Stakeholder` interface, once.
                let through_interface =
                    matches!(type_name, "Node" | "_Entity") && self.implements_stakeholder(possible);
                if through_interface {
                    continue;
                }
                let mut fragment = String::new();
                for field in self.fields(possible) {
                    if !own_names.contains(field["name"].as_str().unwrap()) {
                        fragment.push_str(&self.field(&field, depth, Some(possible)));
                    }
                }
                if !fragment.is_empty() {
                    out.push_str(&format!("... on {possible} {{ {fragment} }} "));
                }
            }
            if matches!(type_name, "Node" | "_Entity") {
                out.push_str(&format!("... on Stakeholder {{ {} }} ", self.selection("Stakeholder", depth)));
            }
        }
        out
    }

    fn implements_stakeholder(&self, type_name: &str) -> bool {
        self.by_name["Stakeholder"]["possibleTypes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|possible| possible["name"] == type_name)
    }

    /// One field with the arguments it needs, aliased as `<type>_<field>` inside a fragment on `fragment`.
    fn field(&self, field: &Value, depth: usize, fragment: Option<&str>) -> String {
        let name = field["name"].as_str().unwrap();
        let (kind, type_name) = named(&field["type"]);
        let arguments: Vec<String> = field["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|argument| argument["type"]["kind"] == "NON_NULL" && argument["defaultValue"].is_null())
            .map(|argument| {
                let argument = argument["name"].as_str().unwrap();
                let value = match argument {
                    "threshold" => "0.3",
                    "from" => "\"2020-01-01\"",
                    "to" => "\"2030-01-01\"",
                    other => panic!("no value for the required argument `{other}` of `{name}`: add one here"),
                };
                format!("{argument}: {value}")
            })
            .collect();
        let arguments = if arguments.is_empty() { String::new() } else { format!("({})", arguments.join(", ")) };
        let alias = fragment.map(|on| format!("{on}_{name}: ")).unwrap_or_default();
        match kind {
            "OBJECT" | "INTERFACE" | "UNION" if depth == 0 => String::new(),
            "OBJECT" | "INTERFACE" | "UNION" => {
                format!("{alias}{name}{arguments} {{ {} }} ", self.selection(type_name, depth - 1))
            }
            _ => format!("{alias}{name}{arguments} "),
        }
    }

    /// The operation `query` (or `subscription`) reading root field `field` with `arguments`, selecting all to
    /// [`DEPTH`].
    fn operation(&self, operation: &str, root: &str, field: &str, arguments: &str) -> String {
        self.operation_to(operation, root, field, arguments, DEPTH)
    }

    /// [`Types::operation`] to `depth`.
    fn operation_to(&self, operation: &str, root: &str, field: &str, arguments: &str, depth: usize) -> String {
        let root_field = self.fields(root).into_iter().find(|candidate| candidate["name"] == field).unwrap();
        let (kind, type_name) = named(&root_field["type"]);
        let selection = if kind == "SCALAR" || kind == "ENUM" {
            String::new()
        } else {
            format!("{{ {} }}", self.selection(type_name, depth))
        };
        let arguments = if arguments.is_empty() { String::new() } else { format!("({arguments})") };
        format!("{operation} {{ {field}{arguments} {selection} }}")
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What a response may hold.

/// Fails if `response` holds a secret, or a private stakeholder's id anywhere but as the `id` of a masked
/// stakeholder whose every other field is null.
fn assert_leaks_nothing(graph: &Graph, what: &str, response: &Value) {
    let text = response.to_string();
    for secret in &graph.secrets {
        // Ids are whole JSON strings (one id's text may begin another's); names and notes may sit inside texts.
        let found = if graph.withheld.contains(secret) {
            text.contains(&format!("\"{secret}\""))
        } else {
            text.contains(secret.as_str())
        };
        assert!(!found, "{what}: the response holds `{secret}`: {text}");
    }
    check_private_ids(graph, what, response, None);
}

fn check_private_ids(
    graph: &Graph,
    what: &str,
    value: &Value,
    parent: Option<(&serde_json::Map<String, Value>, &str)>,
) {
    match value {
        Value::String(text) if graph.private_ids.contains(text) => {
            let Some((object, key)) = parent else { panic!("{what}: a private id outside any object") };
            assert_eq!(key, "id", "{what}: a private stakeholder's id as `{key}`: {object:?}");
            assert_eq!(object.get("masked"), Some(&Value::Bool(true)), "{what}: not masked: {object:?}");
            for (field, value) in object {
                match field.as_str() {
                    "id" | "masked" => {}
                    "__typename" => assert_eq!(value, "MaskedStakeholder", "{what}: {object:?}"),
                    _ => assert!(value.is_null(), "{what}: `{field}` of a masked stakeholder: {object:?}"),
                }
            }
        }
        Value::Object(object) => {
            for (key, child) in object {
                check_private_ids(graph, what, child, Some((object, key)));
            }
        }
        Value::Array(items) => {
            for item in items {
                check_private_ids(graph, what, item, parent);
            }
        }
        _ => {}
    }
}

/// Runs `query` as `caller`: for a viewer or anonymous caller, checks the response leaks nothing; returns it.
async fn read(schema: &StakegraphSchema, graph: &Graph, caller: Caller, what: &str, query: &str) -> Value {
    let response = run_as(schema, caller, query, json!({})).await;
    if caller != EDITOR {
        assert_leaks_nothing(graph, &format!("{caller:?} {what}"), &response);
    }
    response
}

/// Asserts that `refused` (naming a private stakeholder, raw id `private`) is the same refusal as `unknown`
/// (naming the raw id 999999, which does not exist).
fn assert_same_refusal(what: &str, refused: &Value, unknown: &Value, private: i64) {
    assert!(refused.get("errors").is_some(), "{what}: a private id must be refused like an unknown one: {refused}");
    let message =
        |response: &Value, id: &str| response["errors"][0]["message"].as_str().unwrap_or_default().replace(id, "<id>");
    assert_eq!(refused["errors"][0]["extensions"], unknown["errors"][0]["extensions"], "{what}");
    assert_eq!(message(refused, &private.to_string()), message(unknown, "999999"), "{what}");
    assert!(
        refused["data"].is_null() || refused["data"].as_object().is_none_or(|data| data.values().all(Value::is_null))
    );
}

fn raw_id(global: &str) -> i64 {
    match stakegraph::api::ids::GlobalId::decode(global, "id").unwrap() {
        stakegraph::api::ids::GlobalId::Stakeholder(id) => id.0,
        other => panic!("not a stakeholder: {other:?}"),
    }
}

fn unknown_stakeholder() -> String {
    stakegraph::api::ids::GlobalId::Stakeholder(stakegraph::domain::StakeholderId(999_999)).encode().0
}

// ---------------------------------------------------------------------------------------------------------------
// The walk.

/// Every read of every root query field, as `caller`; returns the responses by what they read.
async fn read_every_query(
    schema: &StakegraphSchema,
    types: &Types,
    graph: &Graph,
    caller: Caller,
) -> Vec<(String, Value)> {
    let mut responses = Vec::new();
    let public_ids = ["P1", "P2", "E1", "S1", "M1"];
    let unknown = unknown_stakeholder();
    let every_id: Vec<&str> = graph
        .ids
        .values()
        .chain(&graph.private_ids)
        .chain(&graph.withheld)
        .map(String::as_str)
        .chain([unknown.as_str()])
        .collect();
    let run = |what: String, query: String| (what, query);
    let mut reads: Vec<(String, String)> = Vec::new();
    for id in &every_id {
        let query = types.operation_to("query", "Query", "node", &format!("id: \"{id}\""), DEPTH - 1);
        reads.push(run(format!("node({id})"), query));
    }
    let list: Vec<String> = every_id.iter().map(|id| format!("\"{id}\"")).collect();
    reads.push(run("nodes".into(), types.operation("query", "Query", "nodes", &format!("ids: [{}]", list.join(", ")))));
    // Federation: a router's representations of every stakeholder id, as each stakeholder type (and as the
    // `Stakeholder` interface) in one request, and of every relationship id.
    for id in &every_id {
        use stakegraph::api::ids::GlobalId;
        let typenames = match GlobalId::decode(&async_graphql::ID(id.to_string()), "id") {
            Ok(GlobalId::Stakeholder(_)) => &stakegraph::api::federation::ENTITIES[..8],
            Ok(GlobalId::Relationship(_)) => &["Relationship"][..],
            _ => continue,
        };
        let representations: Vec<String> =
            typenames.iter().map(|typename| format!("{{ __typename: \"{typename}\", id: \"{id}\" }}")).collect();
        let arguments = format!("representations: [{}]", representations.join(", "));
        let query = types.operation_to("query", "Query", "_entities", &arguments, DEPTH - 1);
        reads.push(run(format!("_entities({id} as {})", typenames.join(", ")), query));
    }
    reads.push(run("_service".into(), types.operation("query", "Query", "_service", "")));
    for name in ["P1", "E1", "H1", "H2", "H3", "H4"] {
        let id = graph.id(name);
        reads.push(run(
            format!("stakeholder({name})"),
            types.operation("query", "Query", "stakeholder", &format!("id: \"{id}\"")),
        ));
    }
    for key in ["PUB-C1", "HIDKEY-C", "HIDKEY-E", "HIDKEY-S", "HIDKEY-A"] {
        reads.push(run(
            format!("stakeholderByKey({key})"),
            types.operation("query", "Query", "stakeholderByKey", &format!("key: \"{key}\"")),
        ));
    }
    let filters = [
        "",
        "filter: { kinds: [CUSTOMER, EMPLOYEE, SUPPLIER, MEDIA, DISTRIBUTOR, GOVERNMENT] }",
        "filter: { markets: [CUSTOMER, INTERNAL, SUPPLIER, INFLUENCE, REFERRAL, RECRUITMENT] }",
        "filter: { search: \"h\" }",
        "filter: { status: [PROSPECT, ACTIVE, AT_RISK, CHURNED, WON_BACK] }",
        "filter: { mendelow: [MANAGE_CLOSELY, KEEP_SATISFIED, KEEP_INFORMED, MONITOR] }",
        "filter: { includeArchived: true }",
    ];
    // Every filter in one order, every order without a filter (the orders are checked again with cursors below).
    for filter in filters {
        let arguments = format!("{filter} orderBy: {{ field: ID, direction: ASC }}");
        reads.push(run(
            format!("stakeholders({arguments})"),
            types.operation("query", "Query", "stakeholders", &arguments),
        ));
    }
    for field in ["NAME", "CREATED_AT", "POWER", "INTEREST"] {
        for direction in ["ASC", "DESC"] {
            let arguments = format!("orderBy: {{ field: {field}, direction: {direction} }}");
            let query = types.operation_to("query", "Query", "stakeholders", &arguments, 2);
            reads.push(run(format!("stakeholders({arguments})"), query));
        }
    }
    for name in ["r1", "r2", "r4", "r8"] {
        let id = graph.id(name);
        reads.push(run(
            format!("relationship({name})"),
            types.operation("query", "Query", "relationship", &format!("id: \"{id}\"")),
        ));
    }
    reads.push(run("graphCounts".into(), types.operation("query", "Query", "graphCounts", "")));
    reads.push(run("changes".into(), types.operation("query", "Query", "changes", "first: 100")));
    for from in public_ids {
        for to in public_ids.iter().filter(|to| **to != from) {
            let arguments =
                format!("from: \"{}\", to: \"{}\", first: 5, maxHops: 4, minStrength: 0", graph.id(from), graph.id(to));
            reads.push(run(
                format!("influencePaths({from}, {to})"),
                types.operation("query", "Query", "influencePaths", &arguments),
            ));
        }
        let arguments = format!("from: \"{}\", maxHops: 4, minScore: 0, minStrength: 0, first: 50", graph.id(from));
        reads.push(run(
            format!("influenceReach({from})"),
            types.operation("query", "Query", "influenceReach", &arguments),
        ));
    }
    for market in ["", "market: CUSTOMER", "market: INTERNAL", "market: SUPPLIER", "market: INFLUENCE"] {
        let arguments = format!("{market} first: 50, minStrength: 0");
        reads.push(run(
            format!("keyInfluencers({market})"),
            types.operation("query", "Query", "keyInfluencers", &arguments),
        ));
    }
    for markets in ["", "markets: [CUSTOMER]", "markets: [INTERNAL, CUSTOMER]"] {
        let arguments = format!("{markets} first: 50, minStrength: 0");
        reads.push(run(format!("brokers({markets})"), types.operation("query", "Query", "brokers", &arguments)));
    }
    let arguments = format!("employee: \"{}\", first: 50, minScore: 0, minStrength: 0", graph.id("E1"));
    reads.push(run("keyPersonRisk(E1)".into(), types.operation("query", "Query", "keyPersonRisk", &arguments)));
    let period = "from: \"2020-01-01\", to: \"2030-01-01\"";
    for filter in ["", "filter: { includeArchived: true }", &format!("filter: {{ manager: \"{}\" }}", graph.id("E1"))] {
        let arguments = format!("{period} {filter}");
        reads.push(run(
            format!("exitAnalysis({filter})"),
            types.operation("query", "Query", "exitAnalysis", &arguments),
        ));
    }
    for filter in ["", &format!("filter: {{ manager: \"{}\" }}", graph.id("E1"))] {
        let arguments = format!("first: 50 {filter}");
        reads.push(run(
            format!("atRiskCustomers({filter})"),
            types.operation("query", "Query", "atRiskCustomers", &arguments),
        ));
    }
    for as_of in ["weakeningBelow: 0", "asOf: \"2026-01-01T00:00:00Z\", weakeningBelow: 0"] {
        reads.push(run(format!("marketOverview({as_of})"), types.operation("query", "Query", "marketOverview", as_of)));
    }
    reads.push(run("programs".into(), types.operation("query", "Query", "programs", "first: 50")));
    let program = format!("id: \"{}\"", graph.id("program"));
    reads.push(run("program".into(), types.operation("query", "Query", "program", &program)));
    for (what, query) in reads {
        let response = read(schema, graph, caller, &what, &query).await;
        assert!(response["data"].is_object() || response.get("errors").is_some(), "{what}: {response}");
        if let Some(errors) = response.get("errors") {
            panic!("{caller:?} {what}: unexpected errors {errors:#}");
        }
        responses.push((what, response));
    }
    responses
}

/// Analyses naming a private stakeholder answer exactly as for an id that does not exist.
async fn private_arguments_are_unknown_ids(schema: &StakegraphSchema, types: &Types, graph: &Graph, caller: Caller) {
    let unknown = unknown_stakeholder();
    for name in ["H1", "H2", "H3"] {
        let private = graph.id(name);
        let raw = raw_id(private);
        let cases = [
            ("influencePaths", "from: \"{}\", to: \"{E1}\""),
            ("influencePaths", "from: \"{E1}\", to: \"{}\""),
            ("influenceReach", "from: \"{}\""),
            ("keyPersonRisk", "employee: \"{}\""),
            ("exitAnalysis", "from: \"2020-01-01\", to: \"2030-01-01\", filter: { manager: \"{}\" }"),
            ("atRiskCustomers", "filter: { manager: \"{}\" }"),
        ];
        for (field, template) in cases {
            let arguments = |id: &str| template.replace("{E1}", graph.id("E1")).replace("{}", id);
            let what = format!("{field}({name})");
            let refused =
                read(schema, graph, caller, &what, &types.operation("query", "Query", field, &arguments(private)))
                    .await;
            let expected =
                run_as(schema, caller, &types.operation("query", "Query", field, &arguments(&unknown)), json!({}))
                    .await;
            assert_same_refusal(&format!("{caller:?} {what}"), &refused, &expected, raw);
        }
    }
}

/// Cursors: one naming a private stakeholder (an editor's, or forged) is refused exactly like one naming no row;
/// forged cursors of the other connections reveal nothing.
async fn forged_cursors_reveal_nothing(schema: &StakegraphSchema, types: &Types, graph: &Graph, caller: Caller) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    for field in ["ID", "NAME", "CREATED_AT", "POWER", "INTEREST"] {
        for direction in ["ASC", "DESC"] {
            let listing = format!(
                "{{ stakeholders(first: 100, orderBy: {{ field: {field}, direction: {direction} }}, filter: {{ includeArchived: true }}) {{ edges {{ cursor node {{ id }} }} }} }}"
            );
            let editor = run_as(schema, EDITOR, &listing, json!({})).await;
            for edge in editor["data"]["stakeholders"]["edges"].as_array().unwrap() {
                let cursor = edge["cursor"].as_str().unwrap();
                let is_private = graph.private_ids.iter().any(|id| edge["node"]["id"] == *id);
                let arguments = format!(
                    "first: 100, after: \"{cursor}\", orderBy: {{ field: {field}, direction: {direction} }}, filter: {{ includeArchived: true }}"
                );
                let what = format!("stakeholders({arguments})");
                let query = types.operation_to("query", "Query", "stakeholders", &arguments, 2);
                let response = read(schema, graph, caller, &what, &query).await;
                if is_private {
                    // The same cursor naming a row that does not exist.
                    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).unwrap()).unwrap();
                    let raw = raw_id(edge["node"]["id"].as_str().unwrap());
                    let forged = text.replace(&format!("\"id\":{raw}"), "\"id\":999999");
                    assert_ne!(forged, text, "the cursor names its row: {text}");
                    let forged = URL_SAFE_NO_PAD.encode(forged);
                    let unknown = run_as(
                        schema,
                        caller,
                        &listing.replace("first: 100,", &format!("first: 100, after: \"{forged}\",")),
                        json!({}),
                    )
                    .await;
                    assert_eq!(error_code(&response), ("BAD_USER_INPUT".to_owned(), "after".to_owned()), "{what}");
                    assert_eq!(response["errors"][0]["message"], unknown["errors"][0]["message"], "{what}");
                    assert_eq!(response["errors"][0]["extensions"], unknown["errors"][0]["extensions"], "{what}");
                } else {
                    assert!(response.get("errors").is_none(), "{what}: {response}");
                }
            }
        }
    }
    // Offset cursors of in-memory lists, interaction and change cursors: any position, nothing hidden.
    let offsets = |list: &str, offset: i64| URL_SAFE_NO_PAD.encode(format!("{list}|{offset}"));
    for offset in [-1, 0, 1, 2, 5, 1_000] {
        for name in ["E1", "P1", "P2", "M1"] {
            let id = graph.id(name);
            let query = format!(
                "{{ stakeholder(id: \"{id}\") {{ relationships(after: \"{}\") {{ {} }} ... on Employee {{ managedCustomers(after: \"{}\") {{ {} }} }} }} }}",
                offsets("relationships", offset),
                types.selection("RelationshipConnection", 3),
                offsets("managedCustomers", offset),
                types.selection("CustomerConnection", 3),
            );
            read(schema, graph, caller, &format!("forged offset {offset} on {name}"), &query).await;
        }
        let changes = URL_SAFE_NO_PAD.encode(format!("changes|{offset}"));
        let query = types.operation("query", "Query", "changes", &format!("after: \"{changes}\""));
        read(schema, graph, caller, &format!("changes after {offset}"), &query).await;
    }
    for name in ["r3", "r4", "r5", "r10"] {
        for cursor in ["interactions|0:0", "interactions|99999999999999:99999", "interactions|1767000000000:3"] {
            let query = format!(
                "{{ relationship(id: \"{}\") {{ interactions(after: \"{}\") {{ {} }} }} }}",
                graph.id(name),
                URL_SAFE_NO_PAD.encode(cursor),
                types.selection("InteractionConnection", 3)
            );
            read(schema, graph, caller, &format!("forged interaction cursor on {name}"), &query).await;
        }
    }
}

/// Reads the next `n` messages of a subscription, each checked.
async fn next_messages(
    stream: &mut futures_util::stream::BoxStream<'static, async_graphql::Response>,
    graph: &Graph,
    caller: Caller,
    what: &str,
    n: usize,
) -> Vec<Value> {
    let mut messages = Vec::new();
    for _ in 0..n {
        let response = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| panic!("{caller:?} {what}: a message within 10 s"))
            .expect("the stream is open");
        let response = serde_json::to_value(&response).unwrap();
        assert!(response.get("errors").is_none(), "{caller:?} {what}: {response:#}");
        if caller != EDITOR {
            assert_leaks_nothing(graph, &format!("{caller:?} {what}"), &response);
        }
        messages.push(response["data"].clone());
    }
    messages
}

fn subscribe(
    schema: &StakegraphSchema,
    caller: Caller,
    query: &str,
) -> futures_util::stream::BoxStream<'static, async_graphql::Response> {
    let request = async_graphql::Request::new(query).data(caller);
    Box::pin(async_graphql::Executor::execute_stream(schema, request, None))
}

/// Polls `stream` until its subscription has started (nothing is due yet, so nothing arrives).
async fn start(stream: &mut futures_util::stream::BoxStream<'static, async_graphql::Response>) {
    if let Ok(message) = tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await {
        panic!("nothing was due yet, got {:?}", message.map(|response| response.data));
    }
}

#[tokio::test]
async fn no_read_surface_shows_a_viewer_or_anonymous_caller_anything_of_a_private_stakeholder_but_its_id() {
    let (store, _dir) = fresh_store();
    let schema = wide_schema(store.clone());
    let graph = build_graph(&schema).await;
    let types = Types::load(&schema).await;

    // Every root field is covered here.
    assert_eq!(
        types.root_fields("Query"),
        QUERY_FIELDS.iter().map(|field| field.to_string()).collect(),
        "root query fields"
    );
    let subscription_root = run_as(&schema, EDITOR, "{ __schema { subscriptionType { name } } }", json!({})).await;
    let subscription_root =
        subscription_root["data"]["__schema"]["subscriptionType"]["name"].as_str().unwrap().to_owned();
    assert_eq!(
        types.root_fields(&subscription_root),
        SUBSCRIPTION_FIELDS.iter().map(|field| field.to_string()).collect(),
        "root subscription fields"
    );

    // The editor sees every secret somewhere: the checks below can fail.
    let editor: Vec<(String, Value)> = read_every_query(&schema, &types, &graph, EDITOR).await;
    let everything: String = editor.iter().map(|(_, response)| response.to_string()).collect();
    for secret in &graph.secrets {
        assert!(everything.contains(secret.as_str()), "the editor's reads never show `{secret}`");
    }
    for id in &graph.private_ids {
        assert!(everything.contains(id.as_str()));
    }
    // An editor's strongest path between two public stakeholders runs through a private one.
    let path = &editor.iter().find(|(what, _)| what == "influencePaths(E1, P1)").unwrap().1;
    assert!(graph.private_ids.iter().any(|id| path.to_string().contains(id.as_str())), "{path}");

    for caller in [VIEWER, ANONYMOUS] {
        let responses = read_every_query(&schema, &types, &graph, caller).await;
        let find = |what: &str| responses.iter().find(|(read, _)| read == what).unwrap().1["data"].clone();
        // Masked stakeholders by id; none in a listing; withheld relationships as unknown ids.
        assert_eq!(find("stakeholder(H1)")["stakeholder"]["__typename"], "MaskedStakeholder");
        assert!(find("stakeholderByKey(HIDKEY-C)")["stakeholderByKey"].is_null());
        for name in ["r1", "r2", "r8"] {
            assert!(find(&format!("relationship({name})"))["relationship"].is_null(), "{caller:?} {name}");
        }
        assert_eq!(find("relationship(r4)")["relationship"]["id"], graph.id("r4"));
        let listing = find("stakeholders( orderBy: { field: ID, direction: ASC })");
        assert_eq!(listing["stakeholders"]["totalCount"], 5, "{caller:?}: the five public stakeholders");
        let listing = find("stakeholders(filter: { includeArchived: true } orderBy: { field: ID, direction: ASC })");
        assert_eq!(listing["stakeholders"]["totalCount"], 5);
        // Counts: public stakeholders, the four relationships between public ones and their interactions.
        let counts = &find("graphCounts")["graphCounts"];
        let editor_counts = &editor.iter().find(|(what, _)| what == "graphCounts").unwrap().1["data"]["graphCounts"];
        assert_eq!(
            (&counts["stakeholders"], &counts["relationships"], &counts["interactions"], &counts["changes"]),
            (&json!(5), &json!(4), &json!(12), &editor_counts["changes"]),
            "{caller:?}"
        );
        assert_eq!((&editor_counts["stakeholders"], &editor_counts["relationships"]), (&json!(9), &json!(11)));
        // A public employee's relationships leave out those with a private end, in the list and its count.
        let employee = &find("stakeholder(E1)")["stakeholder"];
        assert_eq!(employee["relationships"]["totalCount"], 2, "{caller:?}: r3 and r4 only");
        assert_eq!(employee["Employee_managedCustomers"]["totalCount"], 1, "{caller:?}: P2 only");
        let customer = &find("stakeholder(P1)")["stakeholder"];
        assert!(customer["Customer_relationshipManager"].is_null(), "{caller:?}: its manager is private");
        assert_eq!(customer["relationships"]["totalCount"], 2, "{caller:?}: r5 and r10");
        // The change feed keeps every event's place.
        let editor_changes = &editor.iter().find(|(what, _)| what == "changes").unwrap().1["data"]["changes"]["edges"];
        assert_eq!(
            find("changes")["changes"]["edges"].as_array().unwrap().len(),
            editor_changes.as_array().unwrap().len()
        );

        private_arguments_are_unknown_ids(&schema, &types, &graph, caller).await;
        forged_cursors_reveal_nothing(&schema, &types, &graph, caller).await;
    }

    // Webhooks (their URLs, filters and deliveries) are an admin's alone: refused to everyone else, with no data.
    for caller in [EDITOR, VIEWER, ANONYMOUS] {
        for query in ["{ webhooks { id url } }", "{ webhookDeliveries(webhook: \"V2ViaG9vazox\") { messageId } }"] {
            let response = run_as(&schema, caller, query, json!({})).await;
            let expected = if caller == ANONYMOUS { "UNAUTHENTICATED" } else { "FORBIDDEN" };
            assert_eq!(error_code(&response).0, expected, "{caller:?} {query}: {response:#}");
            assert!(response["data"].is_null(), "{caller:?} {query}: {response:#}");
        }
    }

    // Subscriptions: the whole change feed, one public stakeholder's relationship changes, strength crossings.
    let total = editor.iter().find(|(what, _)| what == "changes").unwrap().1["data"]["changes"]["edges"]
        .as_array()
        .unwrap()
        .len();
    let from_start = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, "changes|0");
    let changes = types.operation("subscription", &subscription_root, "changes", &format!("after: \"{from_start}\""));
    let filtered = types.operation(
        "subscription",
        &subscription_root,
        "changes",
        &format!("after: \"{from_start}\", filter: {{ kinds: [STAKEHOLDER_CREATED] }}"),
    );
    // What each feed must deliver, from the editor's page of the log: (kind, stakeholders, cursor) per event.
    let log: Vec<Value> = editor.iter().find(|(what, _)| what == "changes").unwrap().1["data"]["changes"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"].clone())
        .collect();
    let involves_private = |event: &Value| {
        event["stakeholders"].as_array().unwrap().iter().any(|id| graph.private_ids.iter().any(|private| id == private))
    };
    let expected = |caller: Caller, wanted: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        log.iter()
            .filter(|event| wanted(event) && (caller == EDITOR || !involves_private(event)))
            .map(|event| event["cursor"].clone())
            .collect()
    };
    let cursors = |messages: &[Value], field: &str| -> Vec<Value> {
        messages.iter().map(|message| message[field]["cursor"].clone()).collect()
    };
    let relationship_changed = |name: &str| {
        types.operation(
            "subscription",
            &subscription_root,
            "relationshipChanged",
            &format!("stakeholder: \"{}\", after: \"{from_start}\"", graph.id(name)),
        )
    };
    // Strengths of r6 (hidden) and r10 (public) now, to set a threshold both will cross.
    let strength = "query($id: ID!) { relationship(id: $id) { strength { score } } }";
    let mut highest: f64 = 0.0;
    for name in ["r6", "r10"] {
        let score = ok(&schema, strength, json!({ "id": graph.id(name) })).await["relationship"]["strength"]["score"]
            .as_f64()
            .unwrap();
        highest = highest.max(score);
    }
    let crossed = types.operation(
        "subscription",
        &subscription_root,
        "strengthCrossed",
        &format!("threshold: {}, hysteresis: 0.01", highest + 0.05),
    );
    let mut crossings = Vec::new();
    for caller in [EDITOR, VIEWER, ANONYMOUS] {
        let mut feed = subscribe(&schema, caller, &changes);
        let events = next_messages(&mut feed, &graph, caller, "subscription changes", total).await;
        let masked = events.iter().filter(|event| event["changes"]["masked"] == true).count();
        assert_eq!(masked > 0, caller != EDITOR, "{caller:?}: {masked} masked events");
        // A filter never matches a masked event: the viewer's feed of creations holds the public ones only.
        let created = expected(caller, &|event| event["kind"] == "STAKEHOLDER_CREATED");
        let mut feed = subscribe(&schema, caller, &filtered);
        let events = next_messages(&mut feed, &graph, caller, "subscription changes (filtered)", created.len()).await;
        assert_eq!(cursors(&events, "changes"), created, "{caller:?}");
        for name in ["E1", "P1", "H1", "H2"] {
            let id = graph.id(name);
            let wanted = expected(caller, &|event| {
                ["RELATIONSHIP_CREATED", "RELATIONSHIP_UPDATED", "INTERACTIONS_RECORDED"]
                    .contains(&event["kind"].as_str().unwrap())
                    && event["stakeholders"].as_array().unwrap().iter().any(|end| end == id)
            });
            let what = format!("relationshipChanged({name})");
            let mut stream = subscribe(&schema, caller, &relationship_changed(name));
            let events = next_messages(&mut stream, &graph, caller, &what, wanted.len()).await;
            assert_eq!(cursors(&events, "relationshipChanged"), wanted, "{caller:?} {what}");
            if wanted.is_empty() {
                // A private stakeholder's feed is empty for a viewer, like an unknown id's.
                start(&mut stream).await;
            }
        }
        let mut stream = subscribe(&schema, caller, &crossed);
        start(&mut stream).await;
        crossings.push((caller, stream));
    }
    // Both r6 and r10 rise well above the threshold in one change.
    let meetings: Vec<Value> = ["r6", "r10"]
        .iter()
        .flat_map(|name| (0..12).map(move |n| (name, n)))
        .map(|(name, n)| {
            json!({ "relationship": graph.id(name), "at": chrono::Utc::now() - chrono::Duration::minutes(n),
                    "channel": "MEETING", "direction": if n % 2 == 0 { "INBOUND" } else { "OUTBOUND" }, "sentiment": 0.9 })
        })
        .collect();
    let record = "mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count } }";
    ok(&schema, record, json!({ "input": { "interactions": meetings } })).await;
    for (caller, mut stream) in crossings {
        let message = next_messages(&mut stream, &graph, caller, "strengthCrossed", 1).await.remove(0);
        let relationships: Vec<&str> = message["strengthCrossed"]["crossings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|crossing| crossing["relationship"].as_str().unwrap())
            .collect();
        if caller == EDITOR {
            assert_eq!(relationships, [graph.id("r6"), graph.id("r10")]);
        } else {
            assert_eq!(relationships, [graph.id("r10")], "{caller:?}");
        }
    }
}

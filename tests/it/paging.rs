//! Relay paging both ways on every connection: backward (`last`/`before`) reads the same items in the same order
//! as forward (`first`/`after`), with the same cursors and a `pageInfo` that tells where more lie.

use crate::support::{demo_store, error_code, fresh_store, run_as, run_ok, schema};
use serde_json::{json, Value};
use stakegraph::api::{build_schema, ApiLimits, Caller, StakegraphSchema};
use stakegraph::domain::Role;

const EDITOR: Caller = Caller::Key(Role::Editor);

/// The selection every case reads of its connection.
const PAGE: &str = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { ...Item } }";

/// One connection to page through: a query with `$first`, `$after`, `$last`, `$before` (and `$id` where it reads
/// below a node), where its connection is in `data`, and how many items a page holds.
struct Case {
    name: &'static str,
    query: String,
    at: &'static str,
    id: Option<String>,
    per_page: usize,
}

/// One page as read.
struct Page {
    items: Vec<(String, Value)>,
    has_next: bool,
    has_previous: bool,
    start: Value,
    end: Value,
}

async fn read(schema: &StakegraphSchema, case: &Case, paging: Value) -> Page {
    let mut variables = paging;
    variables["id"] = json!(case.id);
    let response = run_as(schema, EDITOR, &case.query, variables.clone()).await;
    assert!(response.get("errors").is_none(), "{}: {variables}: {response:#}", case.name);
    let connection = response["data"].pointer(case.at).unwrap_or_else(|| panic!("{}: {response:#}", case.name));
    let info = &connection["pageInfo"];
    let items: Vec<(String, Value)> = connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| (edge["cursor"].as_str().unwrap().to_owned(), edge["node"].clone()))
        .collect();
    let cursors = |end: usize| items.get(end).map(|(cursor, _)| json!(cursor)).unwrap_or(Value::Null);
    assert_eq!(info["startCursor"], cursors(0), "{}: startCursor is the first edge's", case.name);
    assert_eq!(info["endCursor"], cursors(items.len().wrapping_sub(1)), "{}: endCursor is the last edge's", case.name);
    Page {
        has_next: info["hasNextPage"].as_bool().unwrap(),
        has_previous: info["hasPreviousPage"].as_bool().unwrap(),
        start: info["startCursor"].clone(),
        end: info["endCursor"].clone(),
        items,
    }
}

/// Pages through `case` forward, then backward from its end, and checks that both read the same, page by page
/// in the other direction, and that a backward page from a cursor in the middle ends just before it.
async fn both_ways(schema: &StakegraphSchema, case: &Case) {
    let n = case.per_page;
    let mut forward: Vec<(String, Value)> = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = read(schema, case, json!({ "first": n, "after": after })).await;
        assert_eq!(
            page.has_previous,
            !after.is_null(),
            "{}: forward pages after a cursor have items before",
            case.name
        );
        assert!(page.items.len() == n || !page.has_next, "{}: a short page is the last", case.name);
        forward.extend(page.items);
        if !page.has_next {
            break;
        }
        after = page.end;
    }
    assert!(forward.len() > 2 * n, "{}: {} items make more than two pages of {n}", case.name, forward.len());
    assert!(forward.len() >= 6, "{}: {} items leave room around the middle", case.name, forward.len());
    let mut backward: Vec<(String, Value)> = Vec::new();
    let mut before = Value::Null;
    loop {
        let page = read(schema, case, json!({ "last": n, "before": before })).await;
        assert_eq!(page.has_next, !before.is_null(), "{}: backward pages before a cursor have items after", case.name);
        assert!(page.items.len() == n || !page.has_previous, "{}: a short page is the first", case.name);
        backward.splice(0..0, page.items);
        if !page.has_previous {
            break;
        }
        before = page.start;
    }
    let nodes = |items: &[(String, Value)]| items.iter().map(|(_, node)| node.clone()).collect::<Vec<_>>();
    assert_eq!(nodes(&backward), nodes(&forward), "{}: backward reads what forward reads, in order", case.name);
    assert_eq!(backward, forward, "{}: with the same cursors", case.name);
    // From an edge's cursor in the middle, both ways, the pages meet at it.
    let middle = forward.len() / 2;
    let cursor = &forward[middle].0;
    let before = read(schema, case, json!({ "last": 2, "before": cursor })).await;
    assert_eq!(before.items, forward[middle - 2..middle], "{}: the two before the middle", case.name);
    assert!(before.has_previous && before.has_next, "{}", case.name);
    let after = read(schema, case, json!({ "first": 2, "after": cursor })).await;
    assert_eq!(after.items, forward[middle + 1..middle + 3], "{}: the two after the middle", case.name);
    // `last` alone reads the end of the list.
    let end = read(schema, case, json!({ "last": 3 })).await;
    assert_eq!(end.items, forward[forward.len() - 3..], "{}: `last` alone is the list's end", case.name);
    assert!(!end.has_next, "{}", case.name);
}

/// A query of a connection reached through the node with global id `$id`.
fn below_node(on: &str, connection: &str, item: &str) -> String {
    format!(
        "query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {{
           node(id: $id) {{ ... on {on} {{ {connection}(first: $first, after: $after, last: $last, before: $before) {{ {PAGE} }} }} }}
         }}
         {item}"
    )
}

/// The demo stakeholder of `kind` with the most items in `count` (a `totalCount` path below each node).
async fn busiest(schema: &StakegraphSchema, kind: &str, on: &str, counted: &str) -> String {
    let query = format!(
        "{{ stakeholders(first: 100, filter: {{ kinds: [{kind}] }}) {{ nodes {{ id ... on {on} {{ {counted}(first: 0) {{ totalCount }} }} }} }} }}"
    );
    let data = run_ok(schema, &query, json!({})).await;
    let nodes = data["stakeholders"]["nodes"].as_array().unwrap();
    let busiest = nodes.iter().max_by_key(|node| node[counted]["totalCount"].as_u64().unwrap()).unwrap();
    busiest["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_connection_pages_backward_as_it_pages_forward() {
    // Paging through the graph's relationships takes more analyses than a caller may start in a minute by default.
    let limits = ApiLimits { analyses_per_minute_per_key: 1_000_000, ..ApiLimits::default() };
    let schema = build_schema(demo_store(), limits, false);
    let employee = busiest(&schema, "EMPLOYEE", "Employee", "managedCustomers").await;
    let data = run_ok(
        &schema,
        "query($id: ID!) { node(id: $id) { ... on Employee { relationships(first: 100) { nodes { id interactions(first: 0) { totalCount } } } } } }",
        json!({ "id": employee }),
    )
    .await;
    let relationships = data["node"]["relationships"]["nodes"].as_array().unwrap();
    let busy = relationships.iter().max_by_key(|node| node["interactions"]["totalCount"].as_u64().unwrap()).unwrap();
    let busy = busy["id"].as_str().unwrap().to_owned();

    let paging = "$first: Int, $after: String, $last: Int, $before: String";
    let args = "first: $first, after: $after, last: $last, before: $before";
    let cases = [
        Case {
            name: "stakeholders by name, descending (the store's listing)",
            query: format!(
                "query({paging}) {{ stakeholders(filter: {{ kinds: [MEDIA, GOVERNMENT] }}, orderBy: {{ field: NAME, direction: DESC }}, {args}) {{ {PAGE} }} }}
                 fragment Item on Stakeholder {{ id name }}"
            ),
            at: "/stakeholders",
            id: None,
            per_page: 9,
        },
        Case {
            name: "stakeholders by id (the engine's records)",
            query: format!(
                "query({paging}) {{ stakeholders(filter: {{ kinds: [SUPPLIER] }}, {args}) {{ {PAGE} }} }}
                 fragment Item on Stakeholder {{ id }}"
            ),
            at: "/stakeholders",
            id: None,
            per_page: 11,
        },
        Case {
            name: "the graph's relationships, strongest first",
            query: format!(
                "query({paging}) {{ relationships(filter: {{ kinds: [MEDIA] }}, orderBy: STRENGTH_DESC, {args}) {{ {PAGE} }} }}
                 fragment Item on Relationship {{ id }}"
            ),
            at: "/relationships",
            id: None,
            per_page: 13,
        },
        Case {
            name: "a stakeholder's relationships",
            query: below_node("Employee", "relationships", "fragment Item on Relationship { id }"),
            at: "/node/relationships",
            id: Some(employee.clone()),
            per_page: 3,
        },
        Case {
            name: "an employee's managed customers",
            query: below_node("Employee", "managedCustomers", "fragment Item on Customer { id }"),
            at: "/node/managedCustomers",
            id: Some(employee.clone()),
            per_page: 2,
        },
        Case {
            name: "a relationship's interactions",
            query: below_node("Relationship", "interactions", "fragment Item on Interaction { id at }"),
            at: "/node/interactions",
            id: Some(busy),
            per_page: 2,
        },
    ];
    for case in &cases {
        both_ways(&schema, case).await;
    }
}

#[tokio::test]
async fn the_change_log_pages_backward_as_it_pages_forward() {
    let (store, _dir) = fresh_store();
    let schema = schema(store);
    let create = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }";
    for n in 0..23 {
        run_ok(&schema, create, json!({ "input": { "key": format!("C-{n}"), "name": format!("Customer {n}") } })).await;
    }
    let case = Case {
        name: "the change log",
        query: format!(
            "query($first: Int, $after: String, $last: Int, $before: String) {{
               changes(first: $first, after: $after, last: $last, before: $before) {{ {PAGE} }}
             }}
             fragment Item on ChangeEvent {{ cursor kind }}"
        ),
        at: "/changes",
        id: None,
        per_page: 4,
    };
    both_ways(&schema, &case).await;
}

#[tokio::test]
async fn programmes_and_memberships_page_backward_as_they_page_forward() {
    let (store, _dir) = fresh_store();
    let schema = schema(store);
    let create = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }";
    let customer =
        run_ok(&schema, create, json!({ "input": { "key": "C-1", "name": "Loyal Ltd", "status": "ACTIVE" } })).await;
    let customer = customer["createCustomer"]["id"].as_str().unwrap().to_owned();
    let program = "mutation($input: CreateProgramInput!) { createProgram(input: $input) { id } }";
    let enrol = "mutation($input: ProgramMembershipInput!) { enrolInProgram(input: $input) { id } }";
    for n in 0..7 {
        let input = json!({ "key": format!("P-{n}"), "name": format!("Programme {n}"), "kind": "CLUB", "markets": ["CUSTOMER"] });
        let created = run_ok(&schema, program, json!({ "input": input })).await;
        let input = json!({ "programId": created["createProgram"]["id"], "customerId": customer });
        run_ok(&schema, enrol, json!({ "input": input })).await;
    }
    let cases = [
        Case {
            name: "programmes",
            query: format!(
                "query($first: Int, $after: String, $last: Int, $before: String) {{
                   programs(first: $first, after: $after, last: $last, before: $before) {{ {PAGE} }}
                 }}
                 fragment Item on Program {{ id }}"
            ),
            at: "/programs",
            id: None,
            per_page: 2,
        },
        Case {
            name: "a customer's programme memberships",
            query: below_node("Customer", "programs", "fragment Item on ProgramMembership { joined program { id } }"),
            at: "/node/programs",
            id: Some(customer),
            per_page: 2,
        },
    ];
    for case in &cases {
        both_ways(&schema, case).await;
    }
}

#[tokio::test]
async fn paging_arguments_that_mix_directions_are_refused_saying_what_to_pass() {
    let schema = schema(demo_store());
    let data = run_ok(&schema, "{ stakeholders(first: 2) { pageInfo { endCursor } } }", json!({})).await;
    let cursor = data["stakeholders"]["pageInfo"]["endCursor"].clone();
    let query = "query($first: Int, $after: String, $last: Int, $before: String) {
      stakeholders(first: $first, after: $after, last: $last, before: $before) { totalCount }
    }";
    for (variables, field) in [
        (json!({ "first": 2, "last": 2 }), "last"),
        (json!({ "after": cursor, "before": cursor }), "before"),
        (json!({ "first": 2, "before": cursor }), "before"),
        (json!({ "last": 2, "after": cursor }), "after"),
        (json!({ "last": -1 }), "last"),
        (json!({ "before": "bm90LWEtY3Vyc29y" }), "before"),
    ] {
        let response = run_as(&schema, EDITOR, query, variables.clone()).await;
        assert_eq!(error_code(&response), ("BAD_USER_INPUT".to_owned(), field.to_owned()), "{variables}: {response:#}");
        assert!(response["data"].is_null() || response["data"]["stakeholders"].is_null());
    }
    let too_big = run_as(&schema, EDITOR, query, json!({ "last": 1000 })).await;
    assert_eq!(error_code(&too_big), ("LIMIT_EXCEEDED".to_owned(), "last".to_owned()));
    let message = too_big["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("`before`"), "says how to page on: {message}");
    // `last` costs what `first` costs: a page of pages of pages backward is refused before it runs.
    let wide = r#"{ stakeholders(last: 100) { edges { node { relationships(last: 100) { edges { counterpart {
        relationships(last: 100) { edges { node { id } } } } } } } } } }"#;
    let response = run_as(&schema, EDITOR, wide, json!({})).await;
    assert_eq!(error_code(&response).0, "LIMIT_EXCEEDED", "a million-edge query is refused before it runs");
}

//! Apollo Federation v2: the subgraph SDL that `_service` serves composes with a second subgraph that adds fields
//! to every stakeholder (`@interfaceObject`) and to relationships, by the official `@apollo/composition`
//! (`tests/js/federation.mjs`); `_entities` answers a router's representations over HTTP, as the privacy policy
//! says, within its limit.
//!
//! Needs `node` and `npm` on the PATH; installs `tests/js/node_modules` with `npm ci` when it is missing.

use crate::graphql_ws_client::{ensure_client_installed, js_dir};
use crate::support::{error_code, post_graphql, serve, EDITOR_KEY};
use serde_json::{json, Value};
use std::process::Command;

const VIEWER_KEY: &str = "viewer-key-for-the-federation-test";

const ENTITIES: &str = "query($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on Stakeholder { id name masked }
    ... on Customer { status }
    ... on Relationship { id type }
  }
}";

#[tokio::test]
async fn the_subgraph_composes_with_another_and_resolves_entities_as_the_privacy_policy_says() {
    let installed = tokio::task::spawn_blocking(ensure_client_installed);
    let (address, _dir) = serve(|config| {
        config.api_keys = stakegraph::config::ApiKeys::parse(&format!("editor:{EDITOR_KEY},viewer:{VIEWER_KEY}"))
            .expect("valid keys");
    })
    .await;
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    let run = |key: &'static str, query: &'static str, variables: Value| {
        let (client, base) = (client.clone(), base.clone());
        async move { post_graphql(&client, &base, Some(key), &json!({ "query": query, "variables": variables })).await }
    };

    // The SDL a router reads, composed with a second subgraph.
    let service = run(VIEWER_KEY, "{ _service { sdl } }", json!({})).await;
    let sdl = service["data"]["_service"]["sdl"].as_str().unwrap_or_else(|| panic!("{service:#}")).to_owned();
    assert_eq!(sdl, stakegraph::api::federation_sdl(), "`stakegraph schema --federation` prints what it serves");
    for entity in stakegraph::api::federation::ENTITIES {
        let keyword = if entity == "Stakeholder" { "interface" } else { "type" };
        let header = sdl.lines().find(|line| line.starts_with(&format!("{keyword} {entity} "))).unwrap();
        assert!(header.ends_with("@key(fields: \"id\") {"), "{header}");
    }
    if let Err(error) = installed.await {
        std::panic::resume_unwind(error.into_panic());
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &sdl).unwrap();
    let output = Command::new("node").arg(js_dir().join("federation.mjs")).arg(file.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the composition did not run ({}):\n{stderr}", output.status);
    let composed: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}: {stderr}"));
    assert_eq!(composed["errors"], json!([]), "the supergraph composes: {composed:#}");
    let has = |of: &str, field: &str| composed[of].as_array().unwrap().contains(&json!(field));
    assert!(has("stakeholder", "satisfaction") && has("stakeholder", "strongestRelationships"), "{composed}");
    assert!(has("customer", "satisfaction"), "the interface object's field reaches every type: {composed}");
    assert!(has("relationship", "contractValue") && has("relationship", "strength"), "{composed}");
    assert!(has("query", "surveys") && has("query", "stakeholders"), "{composed}");

    // A public customer, a private one, and a relationship between them.
    let create = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }";
    let public = run(EDITOR_KEY, create, json!({ "input": { "key": "C-1", "name": "Open Ltd" } })).await;
    let public = public["data"]["createCustomer"]["id"].clone();
    let private =
        run(EDITOR_KEY, create, json!({ "input": { "key": "C-2", "name": "Secret Ltd", "private": true } })).await;
    let private = private["data"]["createCustomer"]["id"].clone();
    let upsert =
        "mutation($input: UpsertRelationshipInput!) { upsertRelationship(input: $input) { relationship { id } } }";
    let input = json!({ "input": { "from": public, "to": private, "type": "REFERS", "level": "BASIC" } });
    let relationship = run(EDITOR_KEY, upsert, input).await;
    let relationship = relationship["data"]["upsertRelationship"]["relationship"]["id"].clone();
    assert!(relationship.is_string(), "{relationship}");

    let representations = json!({ "representations": [
        { "__typename": "Customer", "id": public },
        { "__typename": "Stakeholder", "id": public },
        { "__typename": "Employee", "id": public },
        { "__typename": "Stakeholder", "id": private },
        { "__typename": "Customer", "id": private },
        { "__typename": "Relationship", "id": relationship },
    ]});
    let editor = run(EDITOR_KEY, ENTITIES, representations.clone()).await;
    assert!(editor.get("errors").is_none(), "{editor:#}");
    let entities = &editor["data"]["_entities"];
    assert_eq!(entities[0]["name"], "Open Ltd");
    assert_eq!(entities[0]["status"], "PROSPECT");
    assert_eq!(entities[1]["__typename"], "Customer", "a `Stakeholder` representation answers as its own type");
    assert_eq!(entities[2], Value::Null, "a customer is no employee");
    assert_eq!(entities[3]["name"], "Secret Ltd", "an editor sees a private stakeholder");
    assert_eq!(entities[4]["name"], "Secret Ltd");
    assert_eq!((&entities[5]["id"], &entities[5]["type"]), (&relationship, &json!("REFERS")));

    let viewer = run(VIEWER_KEY, ENTITIES, representations).await;
    assert!(viewer.get("errors").is_none(), "{viewer:#}");
    let entities = &viewer["data"]["_entities"];
    assert_eq!(entities[0]["name"], "Open Ltd");
    assert_eq!(entities[3], json!({ "__typename": "MaskedStakeholder", "id": private, "name": null, "masked": true }));
    assert_eq!(entities[4], Value::Null, "masked, it is no customer to a viewer");
    assert_eq!(entities[5], Value::Null, "a relationship with a private end is withheld");
    assert!(!viewer.to_string().contains("Secret"), "{viewer:#}");

    // Representations a router never sends are refused saying what is wrong; too many are refused before a read.
    let unknown =
        run(EDITOR_KEY, ENTITIES, json!({ "representations": [{ "__typename": "Survey", "id": "1" }] })).await;
    assert_eq!(error_code(&unknown), ("BAD_USER_INPUT".to_owned(), "representations.0.__typename".to_owned()));
    let keyless = run(EDITOR_KEY, ENTITIES, json!({ "representations": [{ "__typename": "Customer" }] })).await;
    assert_eq!(error_code(&keyless), ("BAD_USER_INPUT".to_owned(), "representations.0".to_owned()));
    let many: Vec<Value> = (0..101).map(|_| json!({ "__typename": "Customer", "id": public })).collect();
    let too_many = run(EDITOR_KEY, ENTITIES, json!({ "representations": many })).await;
    assert_eq!(error_code(&too_many).0, "LIMIT_EXCEEDED", "{too_many:#}");
    let anonymous = post_graphql(&client, &base, None, &json!({ "query": "{ _service { sdl } }" })).await;
    assert_eq!(anonymous["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{anonymous:#}");
}

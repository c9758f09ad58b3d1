//! Relay: the official `relay-compiler` (npm, locked in `tests/js`) compiles every operation of `queries/` and a
//! paginated fragment of every connection (`tests/js/relay/RelayPaging.js`) against `schema/schema.graphql`, and
//! marks each connection's pagination bidirectional (`loadNext` and `loadPrevious` both work).
//!
//! Needs `node` and `npm` on the PATH; installs `tests/js/node_modules` with `npm ci` when it is missing.

use crate::graphql_ws_client::{ensure_client_installed, js_dir};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// The operation a document of `queries/` defines, and its text without comments (relay-compiler reads documents
/// inside a JavaScript template literal, whose backticks the comments use).
fn operation(text: &str) -> (String, String) {
    let body: Vec<&str> = text.lines().filter(|line| !line.trim_start().starts_with('#')).collect();
    let body = body.join("\n");
    let name = body
        .split_whitespace()
        .skip_while(|word| !["query", "mutation", "subscription"].contains(word))
        .nth(1)
        .map(|name| name.split('(').next().unwrap_or(name).trim_end_matches('{').to_owned())
        .expect("each document of queries/ names its operation");
    assert!(!body.contains('`') && !body.contains("${"), "{name} cannot go in a template literal");
    (name, body)
}

#[test]
fn relay_compiler_accepts_the_schema_every_operation_in_queries_and_paging_both_ways() {
    ensure_client_installed();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = tempfile::tempdir().unwrap();
    let src = project.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut expected: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(root.join("queries")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "graphql") {
            continue;
        }
        let (name, body) = operation(&std::fs::read_to_string(&path).unwrap());
        let module = format!("import {{ graphql }} from \"react-relay\";\nexport default graphql`\n{body}\n`;\n");
        std::fs::write(src.join(format!("{name}.js")), module).unwrap();
        expected.push(name);
    }
    assert!(expected.len() >= 20, "queries/ holds the example operations");
    let paging = std::fs::read_to_string(js_dir().join("relay").join("RelayPaging.js")).unwrap();
    std::fs::write(src.join("RelayPaging.js"), &paging).unwrap();
    let fragments: Vec<String> = paging
        .lines()
        .filter_map(|line| line.trim().strip_prefix("fragment "))
        .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(fragments.len(), 8, "a fragment for each connection");
    let config = json!({
        "src": "./src",
        "schema": root.join("schema").join("schema.graphql"),
        "language": "javascript",
    });
    std::fs::write(project.path().join("relay.config.json"), config.to_string()).unwrap();
    let output = Command::new("node")
        .arg(js_dir().join("node_modules").join("relay-compiler").join("cli.js"))
        .current_dir(project.path())
        .output()
        .expect("node runs relay-compiler");
    let log = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && !log.contains("[ERROR]"), "relay-compiler refused ({}):\n{log}", output.status);
    // relay-compiler skips a template literal it cannot read without a word: every document has its artifact.
    let generated = src.join("__generated__");
    for name in &expected {
        assert!(generated.join(format!("{name}.graphql.js")).is_file(), "no artifact for {name}:\n{log}");
    }
    for fragment in &fragments {
        let artifact = std::fs::read_to_string(generated.join(format!("{fragment}.graphql.js")))
            .unwrap_or_else(|error| panic!("no artifact for {fragment} ({error}):\n{log}"));
        assert!(artifact.contains("\"direction\": \"bidirectional\""), "{fragment} does not page both ways");
    }
}

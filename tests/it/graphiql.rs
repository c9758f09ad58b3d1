//! GraphiQL with no network: headless Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium from
//! PyPI through `tests/py/graphiql_offline.py`) loads `/` from a real server with every other host unreachable,
//! runs a query in GraphiQL and reads its result; every resource the page loaded came from the service itself.
//!
//! `STAKEGRAPH_SCREENSHOT=docs/graphiql-offline.png cargo test --test it graphiql` writes the README's screenshot.

use crate::support::{create_customer_named, python_path, serve, EDITOR_KEY};
use serde_json::{json, Value};
use std::process::Command;

#[tokio::test]
async fn graphiql_runs_a_query_from_embedded_assets_with_no_other_host_reachable() {
    for tool in ["chromium", "chromedriver"] {
        let found = Command::new(tool).arg("--version").output().is_ok_and(|output| output.status.success());
        assert!(found, "this test needs `{tool}` on the PATH: `apt-get install chromium chromium-driver`");
    }
    let selenium = tokio::task::spawn_blocking(|| python_path("selenium", "selenium==4.51.0")).await.unwrap();
    let (address, _dir) = serve(|_| {}).await;
    for (key, name) in [("C-1", "Northwind Traders"), ("C-2", "Contoso Foods")] {
        create_customer_named(&address, key, name).await;
    }
    let base = format!("http://{address}");
    let query = "{ stakeholders(first: 5) { totalCount nodes { name } } }";
    let script = format!("{}/tests/py/graphiql_offline.py", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("python3");
    // The key goes where a user puts it: in GraphiQL's headers editor.
    let headers = json!({ "Authorization": format!("Bearer {EDITOR_KEY}") }).to_string();
    command.arg(&script).args([base.as_str(), query, headers.as_str()]);
    if let Ok(path) = std::env::var("STAKEGRAPH_SCREENSHOT") {
        command.arg(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")));
    }
    if let Some(path) = selenium {
        command.env("PYTHONPATH", path);
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser run failed ({}):\n{stderr}", output.status);
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}:\n{stderr}"));
    assert_eq!(seen["result"]["data"]["stakeholders"]["totalCount"], 2, "{seen:#}");
    let names = &seen["result"]["data"]["stakeholders"]["nodes"];
    assert_eq!(names, &json!([{ "name": "Northwind Traders" }, { "name": "Contoso Foods" }]));
    let resources: Vec<&str> = seen["resources"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for file in ["graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js"] {
        assert!(resources.iter().any(|resource| resource.ends_with(file)), "{file} was not loaded: {resources:?}");
    }
    for resource in &resources {
        assert!(resource.starts_with(&format!("{base}/")), "a resource from elsewhere: {resource}");
    }
    // No console error: nothing refused by the page's Content-Security-Policy or its integrity hashes, no script
    // failure.
    let errors: Vec<&Value> =
        seen["console"].as_array().unwrap().iter().filter(|message| message.to_string().contains("SEVERE")).collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

//! The committed SDL is what the code generates, and what `stakegraph schema` prints.

use std::path::PathBuf;

#[test]
fn committed_schema_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/schema.graphql");
    let committed = std::fs::read_to_string(&path).expect("schema/schema.graphql exists");
    let generated = stakegraph::api::sdl();
    assert!(
        committed == generated,
        "schema/schema.graphql is out of date; run `cargo run -- schema > schema/schema.graphql` and commit it"
    );
}

#[test]
fn the_schema_command_prints_the_committed_schema() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stakegraph")).arg("schema").output().expect("runs");
    assert!(output.status.success());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/schema.graphql");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed == std::fs::read_to_string(path).unwrap(),
        "`stakegraph schema` differs from schema/schema.graphql"
    );
}

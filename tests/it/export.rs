//! `export-graph --format graphml | gexf` (issue 14, point 3): the demo graph written with names and attributes and
//! read back by networkx (`read_graphml`, `read_gexf`), checked against the database with SQL and against the CSV
//! export's strengths; private stakeholders only with `--include-private`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const AS_OF: &str = "2026-06-01T00:00:00Z";

/// Runs `stakegraph export-graph` on `db` with `args`; its JSON report.
fn export(db: &Path, out: &Path, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_stakegraph"))
        .args(["export-graph", "--db"])
        .arg(db)
        .arg("--out")
        .arg(out)
        .args(["--as-of", AS_OF])
        .args(args)
        .output()
        .expect("export-graph runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

/// What networkx reads of `file` (`graphml` or `gexf`): every node's attributes and every edge's
/// `(source, target, relationship_id, strength, weight)`.
fn read_back(file: &Path, format: &str) -> serde_json::Value {
    let script = r#"
import json, sys
import networkx as nx
path, fmt = sys.argv[1], sys.argv[2]
graph = nx.read_graphml(path) if fmt == "graphml" else nx.read_gexf(path)
assert graph.is_directed()
nodes = {node: {k: v for k, v in data.items()} for node, data in graph.nodes(data=True)}
# Floats as Python's shortest text (serde_json's default parser does not round-trip every f64).
edges = [[u, v, int(data["relationship_id"]), repr(float(data["strength"])), repr(data.get("weight"))]
         for u, v, data in graph.edges(data=True)]
print(json.dumps({"nodes": nodes, "edges": edges}))
"#;
    let mut python = Command::new("python3");
    python.args(["-c", script]).arg(file).arg(format);
    if let Some(path) = crate::support::python_path("networkx", "networkx==3.6.1") {
        python.env("PYTHONPATH", path);
    }
    let output = python.output().expect("python3 runs");
    assert!(
        output.status.success(),
        "networkx could not read {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from the script")
}

/// The CSV export's strength of each relationship.
fn csv_strengths(dir: &Path) -> HashMap<i64, f64> {
    let text = std::fs::read_to_string(dir.join("edges.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[2].parse().unwrap(), fields[4].parse().unwrap())
        })
        .collect()
}

#[test]
fn graphml_and_gexf_read_back_by_networkx_hold_the_graph_with_names_and_private_stakeholders_only_when_asked() {
    let (_store, dir) = crate::support::demo_copy();
    let db: PathBuf = dir.path().join("copy.db");
    let sql = rusqlite::Connection::open(&db).unwrap();
    let count = |query: &str| sql.query_row(query, [], |row| row.get::<_, i64>(0)).unwrap();
    let live = "archived_at IS NULL";
    let public_nodes = count(&format!("SELECT COUNT(*) FROM stakeholder WHERE {live} AND private = 0"));
    let all_nodes = count(&format!("SELECT COUNT(*) FROM stakeholder WHERE {live}"));
    let between = |condition: &str| {
        count(&format!(
            "SELECT COUNT(*) FROM relationship r JOIN stakeholder a ON a.id = r.from_id JOIN stakeholder b \
             ON b.id = r.to_id WHERE a.{live} AND b.{live} {condition}"
        ))
    };
    let (public_edges, all_edges) = (between("AND a.private = 0 AND b.private = 0"), between(""));
    assert!(all_nodes > public_nodes && all_edges > public_edges, "the demo has private stakeholders");
    let names: HashMap<String, (String, String, i64)> = sql
        .prepare(&format!("SELECT id, name, kind, private FROM stakeholder WHERE {live}"))
        .unwrap()
        .query_map([], |row| Ok((row.get::<_, i64>(0)?.to_string(), (row.get(1)?, row.get(2)?, row.get(3)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();

    let out = tempfile::tempdir().unwrap();
    export(&db, out.path(), &["--format", "csv"]);
    let strengths = csv_strengths(out.path());
    for (format, flag) in [("graphml", false), ("gexf", false), ("graphml", true)] {
        let target = out.path().join(format!("{format}-{flag}"));
        let mut args = vec!["--format", format];
        if flag {
            args.push("--include-private");
        }
        let report = export(&db, &target, &args);
        let (nodes, edges) = if flag { (all_nodes, all_edges) } else { (public_nodes, public_edges) };
        assert_eq!((report["nodes"].as_i64(), report["edges"].as_i64()), (Some(nodes), Some(edges)), "{report}");
        let expected_left_out = if flag { 0 } else { all_nodes - public_nodes };
        assert_eq!(report["private_left_out"].as_i64(), Some(expected_left_out));
        let file = PathBuf::from(report["file"].as_str().unwrap());
        assert_eq!(file.extension().and_then(|ext| ext.to_str()), Some(format));
        let graph = read_back(&file, format);
        let read_nodes = graph["nodes"].as_object().unwrap();
        let read_edges = graph["edges"].as_array().unwrap();
        assert_eq!((read_nodes.len() as i64, read_edges.len() as i64), (nodes, edges), "{format} {flag}");
        for (id, attributes) in read_nodes {
            let (name, kind, private) = &names[id];
            assert_eq!(attributes["name"].as_str(), Some(name.as_str()), "{id}");
            assert_eq!(attributes["kind"].as_str(), Some(kind.as_str()), "{id}");
            assert_eq!(attributes["private"].as_bool(), Some(*private == 1), "{id}");
            assert!(flag || *private == 0, "a private stakeholder in an export without --include-private: {id}");
            if format == "gexf" {
                assert_eq!(attributes["label"].as_str(), Some(name.as_str()));
            }
        }
        for edge in read_edges {
            let relationship = edge[2].as_i64().unwrap();
            let strength: f64 = edge[3].as_str().unwrap().parse().unwrap();
            // The same f64 as the CSV export's (the analyses' value), after a round trip through text.
            assert_eq!(strength, strengths[&relationship], "relationship {relationship}");
            if format == "gexf" {
                assert_eq!(edge[4].as_str().unwrap().parse::<f64>().ok(), Some(strength), "GEXF weight");
            }
        }
    }
}

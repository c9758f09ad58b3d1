//! `export-graph`: the projected graph for other tools, so that they load exactly the graph the analyses run on:
//! as CSV (indices, ids and strengths, for igraph and the benchmarks), or with names and attributes as GraphML or
//! GEXF (for Gephi, Cytoscape and networkx). Private stakeholders, and every relationship of theirs, are left out
//! unless asked for.

use super::snapshot::Snapshot;
use crate::domain::{KindDetails, Relationship, RelationshipId, Stakeholder, StakeholderId};
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// Stakeholders written.
    pub nodes: usize,
    /// Relationships written.
    pub edges: usize,
    /// The time strengths are evaluated at.
    pub as_of: chrono::DateTime<chrono::Utc>,
    /// `nodes.csv`.
    pub nodes_file: PathBuf,
    /// `edges.csv`.
    pub edges_file: PathBuf,
}

/// Writes `nodes.csv` (`index,id,kind,markets,private`; index is the dense node index other files refer to)
/// and `edges.csv` (`source,target,relationship_id,type,strength`; source and target are node indices, the
/// relationship runs from source to target, strength is the exact value the analyses use) into `dir`. Each
/// file is written beside its final name and renamed into place, so a failed export leaves no partial file.
/// Every stakeholder is written, private ones included (flagged): the file has ids, no names.
pub fn write_csv(snapshot: &Snapshot, dir: &Path) -> std::io::Result<Exported> {
    std::fs::create_dir_all(dir)?;
    let nodes_file = dir.join("nodes.csv");
    let edges_file = dir.join("edges.csv");
    write_atomically(&nodes_file, |out| {
        writeln!(out, "index,id,kind,markets,private")?;
        for node in 0..snapshot.node_count() as u32 {
            let markets: Vec<&str> = snapshot.markets(node).iter().map(|market| market.as_str()).collect();
            writeln!(
                out,
                "{node},{},{},{},{}",
                snapshot.stakeholder(node).0,
                snapshot.kind(node).as_str(),
                markets.join("|"),
                u8::from(snapshot.is_private(node))
            )?;
        }
        Ok(())
    })?;
    write_atomically(&edges_file, |out| {
        writeln!(out, "source,target,relationship_id,type,strength")?;
        for source in 0..snapshot.node_count() as u32 {
            for edge in snapshot.out_edges(source) {
                // `{}` of an f64 is the shortest text that reads back as the same value.
                writeln!(
                    out,
                    "{source},{},{},{},{}",
                    snapshot.target(edge),
                    snapshot.relationship(edge).0,
                    snapshot.relationship_type(edge).as_str(),
                    f64::from(snapshot.strength(edge))
                )?;
            }
        }
        Ok(())
    })?;
    Ok(Exported {
        nodes: snapshot.node_count(),
        edges: snapshot.edge_count(),
        as_of: snapshot.as_of(),
        nodes_file,
        edges_file,
    })
}

/// The formats with names and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// GraphML (`graph.graphml`): Cytoscape, networkx (`read_graphml`), Gephi.
    GraphMl,
    /// GEXF 1.2 (`graph.gexf`): Gephi, networkx (`read_gexf`).
    Gexf,
}

impl Markup {
    /// The file it writes.
    pub fn file_name(self) -> &'static str {
        match self {
            Markup::GraphMl => "graph.graphml",
            Markup::Gexf => "graph.gexf",
        }
    }
}

/// What a labelled export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedMarkup {
    /// Stakeholders written.
    pub nodes: usize,
    /// Relationships written.
    pub edges: usize,
    /// Private stakeholders left out (0 with `include_private`).
    pub private_left_out: usize,
    /// The time strengths are evaluated at.
    pub as_of: chrono::DateTime<chrono::Utc>,
    /// The file.
    pub file: PathBuf,
}

/// A value of an attribute.
enum Value<'a> {
    Text(&'a str),
    Number(f64),
    Flag(bool),
}

/// The attributes of a stakeholder, `(name, value)`, in the order of [`NODE_KEYS`]; absent ones left out.
fn node_attributes<'a>(stakeholder: &'a Stakeholder, markets: &'a str) -> Vec<(&'static str, Value<'a>)> {
    let mut attributes = vec![
        ("key", Value::Text(stakeholder.key.as_str())),
        ("name", Value::Text(stakeholder.name.as_str())),
        ("kind", Value::Text(stakeholder.kind().as_str())),
        ("markets", Value::Text(markets)),
        ("power", Value::Number(stakeholder.power.get())),
        ("interest", Value::Number(stakeholder.interest.get())),
        ("private", Value::Flag(stakeholder.private)),
    ];
    if let KindDetails::Customer(details) = &stakeholder.details {
        attributes.push(("status", Value::Text(details.status.as_str())));
        if let Some(segment) = &details.segment {
            attributes.push(("segment", Value::Text(segment.as_str())));
        }
        if let Some(value) = details.lifetime_value {
            attributes.push(("lifetime_value", Value::Number(value.get())));
        }
    }
    attributes
}

/// Stakeholder attributes: name and type (GraphML `attr.type`; GEXF takes the same names).
const NODE_KEYS: &[(&str, &str)] = &[
    ("key", "string"),
    ("name", "string"),
    ("kind", "string"),
    ("markets", "string"),
    ("power", "double"),
    ("interest", "double"),
    ("private", "boolean"),
    ("status", "string"),
    ("segment", "string"),
    ("lifetime_value", "double"),
];

/// Relationship attributes.
const EDGE_KEYS: &[(&str, &str)] = &[
    ("relationship_id", "long"),
    ("type", "string"),
    ("level", "string"),
    ("bonds", "string"),
    ("trust", "double"),
    ("commitment", "double"),
    ("since", "string"),
    ("strength", "double"),
];

/// Writes the projected graph with names and attributes as `markup` into `dir` (`graph.graphml` or `graph.gexf`,
/// renamed into place once whole): a node per live stakeholder (its id the stakeholder's id; key, name, kind,
/// markets `|`-separated, power, interest, private, and for customers status, segment and lifetime value), a
/// directed edge per relationship between two written stakeholders (relationship id, type, level, bonds, trust,
/// commitment, since, and strength at the snapshot's time, the exact value the analyses use; GEXF also gives it as
/// the edge's weight). `stakeholders` are the live ones (others are ignored), `relationships` any (those the
/// snapshot does not hold are ignored). Private stakeholders and their relationships only with
/// `include_private`. O(n + m).
pub fn write_markup(
    snapshot: &Snapshot,
    stakeholders: &[Stakeholder],
    relationships: &[Relationship],
    include_private: bool,
    markup: Markup,
    dir: &Path,
) -> std::io::Result<ExportedMarkup> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join(markup.file_name());
    let by_id: HashMap<StakeholderId, &Stakeholder> =
        stakeholders.iter().map(|stakeholder| (stakeholder.id, stakeholder)).collect();
    let details: HashMap<RelationshipId, &Relationship> =
        relationships.iter().map(|relationship| (relationship.id, relationship)).collect();
    // The stakeholder of each node, when it is written.
    let written: Vec<Option<&Stakeholder>> = (0..snapshot.node_count() as u32)
        .map(|node| {
            let stakeholder = by_id.get(&snapshot.stakeholder(node)).copied()?;
            (include_private || !stakeholder.private).then_some(stakeholder)
        })
        .collect();
    let private_left_out =
        written.iter().zip(0..).filter(|(row, node)| row.is_none() && snapshot.is_private(*node)).count();
    let (mut nodes, mut edges) = (0, 0);
    write_atomically(&file, |out| {
        let mut xml = Writer::new_with_indent(out, b' ', 2);
        xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let (root, graph) = match markup {
            Markup::GraphMl => (
                vec![
                    ("xmlns", "http://graphml.graphdrawing.org/xmlns"),
                    ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
                    (
                        "xsi:schemaLocation",
                        "http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd",
                    ),
                ],
                vec![("id", "stakegraph"), ("edgedefault", "directed")],
            ),
            Markup::Gexf => (
                vec![("xmlns", "http://www.gexf.net/1.2draft"), ("version", "1.2")],
                vec![("defaultedgetype", "directed"), ("mode", "static")],
            ),
        };
        let root_name = if markup == Markup::GraphMl { "graphml" } else { "gexf" };
        xml.create_element(root_name).with_attributes(root).write_inner_content(|xml| {
            if markup == Markup::GraphMl {
                for (domain, keys) in [("node", NODE_KEYS), ("edge", EDGE_KEYS)] {
                    for (name, kind) in keys {
                        xml.create_element("key")
                            .with_attributes([
                                ("id", *name),
                                ("for", domain),
                                ("attr.name", *name),
                                ("attr.type", *kind),
                            ])
                            .write_empty()?;
                    }
                }
            } else {
                xml.create_element("meta").write_inner_content(|xml| {
                    xml.create_element("creator").write_text_content(BytesText::new("Stakegraph"))?;
                    Ok(())
                })?;
            }
            xml.create_element("graph").with_attributes(graph).write_inner_content(|xml| {
                if markup == Markup::Gexf {
                    for (class, keys) in [("node", NODE_KEYS), ("edge", EDGE_KEYS)] {
                        xml.create_element("attributes").with_attribute(("class", class)).write_inner_content(
                            |xml| {
                                for (name, kind) in keys {
                                    xml.create_element("attribute")
                                        .with_attributes([("id", *name), ("title", *name), ("type", *kind)])
                                        .write_empty()?;
                                }
                                Ok(())
                            },
                        )?;
                    }
                    xml.create_element("nodes").write_inner_content(|xml| {
                        nodes = write_nodes(xml, snapshot, &written, markup)?;
                        Ok(())
                    })?;
                    xml.create_element("edges").write_inner_content(|xml| {
                        edges = write_edges(xml, snapshot, &written, &details, markup)?;
                        Ok(())
                    })?;
                } else {
                    nodes = write_nodes(xml, snapshot, &written, markup)?;
                    edges = write_edges(xml, snapshot, &written, &details, markup)?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(ExportedMarkup { nodes, edges, private_left_out, as_of: snapshot.as_of(), file })
}

/// `text` with the characters XML 1.0 does not allow replaced by U+FFFD (labels have no control characters, but
/// may hold the noncharacters U+FFFE and U+FFFF, which a reader would reject).
fn xml_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let invalid = |c: char| matches!(c, '\u{FFFE}' | '\u{FFFF}') || (c < ' ' && !matches!(c, '\t' | '\n' | '\r'));
    if text.contains(invalid) {
        text.replace(invalid, "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// The text of an attribute's value: numbers as the shortest text that reads back as the same f64.
fn text(value: &Value<'_>) -> String {
    match value {
        Value::Text(text) => xml_safe(text).into_owned(),
        Value::Number(number) => number.to_string(),
        Value::Flag(flag) => flag.to_string(),
    }
}

/// Writes the attribute values of one node or edge: GraphML `<data key>`, GEXF `<attvalues>`.
fn write_values<W: Write>(
    xml: &mut Writer<W>,
    values: &[(&'static str, Value<'_>)],
    markup: Markup,
) -> std::io::Result<()> {
    match markup {
        Markup::GraphMl => {
            for (name, value) in values {
                xml.create_element("data")
                    .with_attribute(("key", *name))
                    .write_text_content(BytesText::new(&text(value)))?;
            }
        }
        Markup::Gexf => {
            xml.create_element("attvalues").write_inner_content(|xml| {
                for (name, value) in values {
                    xml.create_element("attvalue")
                        .with_attributes([("for", *name), ("value", text(value).as_str())])
                        .write_empty()?;
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn write_nodes<W: Write>(
    xml: &mut Writer<W>,
    snapshot: &Snapshot,
    written: &[Option<&Stakeholder>],
    markup: Markup,
) -> std::io::Result<usize> {
    let mut count = 0;
    for (node, stakeholder) in written.iter().enumerate() {
        let Some(stakeholder) = stakeholder else { continue };
        let markets: Vec<&str> = snapshot.markets(node as u32).iter().map(|market| market.as_str()).collect();
        let markets = markets.join("|");
        let id = stakeholder.id.0.to_string();
        let mut element = xml.create_element("node").with_attribute(("id", id.as_str()));
        if markup == Markup::Gexf {
            element = element.with_attribute(("label", xml_safe(stakeholder.name.as_str()).as_ref()));
        }
        element.write_inner_content(|xml| write_values(xml, &node_attributes(stakeholder, &markets), markup))?;
        count += 1;
    }
    Ok(count)
}

fn write_edges<W: Write>(
    xml: &mut Writer<W>,
    snapshot: &Snapshot,
    written: &[Option<&Stakeholder>],
    details: &HashMap<RelationshipId, &Relationship>,
    markup: Markup,
) -> std::io::Result<usize> {
    let mut count = 0;
    for source in 0..snapshot.node_count() as u32 {
        let Some(from) = written[source as usize] else { continue };
        for edge in snapshot.out_edges(source) {
            let Some(to) = written[snapshot.target(edge) as usize] else { continue };
            let id = snapshot.relationship(edge);
            let Some(relationship) = details.get(&id) else { continue };
            let strength = f64::from(snapshot.strength(edge));
            let bonds: Vec<&str> = relationship.bonds.iter().map(|bond| bond.as_str()).collect();
            let bonds = bonds.join("|");
            let since = relationship.since.to_rfc3339();
            let relationship_id = id.0.to_string();
            let mut values = vec![
                ("relationship_id", Value::Text(&relationship_id)),
                ("type", Value::Text(relationship.rel_type.as_str())),
                ("level", Value::Text(relationship.level.as_str())),
                ("bonds", Value::Text(&bonds)),
            ];
            if let Some(trust) = relationship.trust {
                values.push(("trust", Value::Number(trust.get())));
            }
            if let Some(commitment) = relationship.commitment {
                values.push(("commitment", Value::Number(commitment.get())));
            }
            values.push(("since", Value::Text(&since)));
            values.push(("strength", Value::Number(strength)));
            let (source_id, target_id) = (from.id.0.to_string(), to.id.0.to_string());
            let edge_id = format!("r{}", id.0);
            let weight = strength.to_string();
            let mut element = xml.create_element("edge").with_attributes([
                ("id", edge_id.as_str()),
                ("source", source_id.as_str()),
                ("target", target_id.as_str()),
            ]);
            if markup == Markup::Gexf {
                element = element.with_attribute(("weight", weight.as_str()));
            }
            element.write_inner_content(|xml| write_values(xml, &values, markup))?;
            count += 1;
        }
    }
    Ok(count)
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = path.with_file_name(format!("{name}.partial"));
    let result = (|| {
        let mut out = BufWriter::new(std::fs::File::create(&partial)?);
        write(&mut out)?;
        out.into_inner().map_err(|error| error.into_error())?.sync_all()
    })();
    match result {
        Ok(()) => std::fs::rename(&partial, path),
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::xml_safe;

    #[test]
    fn text_xml_does_not_allow_is_replaced() {
        assert_eq!(xml_safe("Smith & Sons <Ltd>"), "Smith & Sons <Ltd>", "escaping is the writer's");
        assert_eq!(xml_safe("a\u{FFFE}b\u{FFFF}"), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(xml_safe("tab\tok\u{1}"), "tab\tok\u{FFFD}");
    }
}

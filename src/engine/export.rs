//! `export-graph`: the projected graph as CSV, so that other tools load exactly the graph the analyses run on.

use super::snapshot::Snapshot;
use serde::Serialize;
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

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let partial = path.with_extension("csv.partial");
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

//! `stakegraph export`: a store's stakeholders, customers' exits and win-backs, programmes, relationships,
//! interactions and memberships as CSV files in exactly the formats `stakegraph import` reads (`stakeholders.csv`,
//! `lifecycle.csv`, `programs.csv`, `relationships.csv`, `interactions.csv`, `memberships.csv`), so that importing
//! them into an empty database gives the same graph, with the same strengths.
//!
//! What the formats do not carry is not written: archived stakeholders (and their relationships and
//! interactions). A customer's `customer_since` is written as the
//! day it counts from (its creation day when none was given), so that its memberships import after it. Private
//! stakeholders, and everything joining them, only with `include_private`. An interaction recorded without a key
//! is written with `interaction-<id>`, so that a second import of the export records it once.

use crate::domain::{
    Interaction, KindDetails, LifecycleEvent, Relationship, RelationshipId, Stakeholder, StakeholderId,
};
use crate::import::{
    INTERACTION_FIELDS, LIFECYCLE_FIELDS, MEMBERSHIP_FIELDS, PROGRAM_FIELDS, RELATIONSHIP_FIELDS, STAKEHOLDER_FIELDS,
};
use crate::store::{GraphStore, StoreError};
use chrono::SecondsFormat;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Exported {
    /// Stakeholder rows.
    pub stakeholders: usize,
    /// Relationship rows.
    pub relationships: usize,
    /// Interaction rows.
    pub interactions: usize,
    /// Programme rows.
    pub programs: usize,
    /// Membership rows.
    pub memberships: usize,
    /// Private stakeholders left out (without `include_private`).
    pub private_left_out: usize,
    /// Exits and win-backs (lifecycle rows).
    pub lifecycle: usize,
    /// The files, in the order to import them.
    pub files: Vec<PathBuf>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

/// The row of `stakeholder` under [`STAKEHOLDER_FIELDS`].
fn stakeholder_row(stakeholder: &Stakeholder) -> Vec<String> {
    let mut row: HashMap<&str, String> = HashMap::new();
    row.insert("kind", stakeholder.kind().as_str().to_owned());
    row.insert("key", stakeholder.key.to_string());
    row.insert("name", stakeholder.name.to_string());
    row.insert("power", stakeholder.power.get().to_string());
    row.insert("interest", stakeholder.interest.get().to_string());
    row.insert("private", stakeholder.private.to_string());
    let markets: Vec<&str> = stakeholder.extra_markets.iter().map(|market| market.as_str()).collect();
    row.insert("markets", markets.join("|"));
    match &stakeholder.details {
        KindDetails::Customer(customer) => {
            row.insert("status", customer.status.as_str().to_owned());
            row.insert("segment", optional(customer.segment.as_ref()));
            row.insert("lifetime_value", optional(customer.lifetime_value.map(|value| value.get())));
            row.insert("customer_since", optional(customer.customer_since(stakeholder.created_at)));
            row.insert("retention_cost", optional(customer.retention_cost.map(|value| value.get())));
            if let Some(value) = &customer.perceived_value {
                row.insert("core_value", value.core_value.get().to_string());
                row.insert("services_value", value.services_value.get().to_string());
                row.insert("price", value.price.get().to_string());
                row.insert("relationship_costs", value.relationship_costs.get().to_string());
            }
        }
        KindDetails::Supplier { category } => {
            row.insert("category", optional(category.as_ref()));
        }
        KindDetails::Distributor { channel, region } => {
            row.insert("channel", optional(channel.as_ref()));
            row.insert("region", optional(region.as_ref()));
        }
        KindDetails::Employee { role, department, candidate } => {
            row.insert("role", optional(role.as_ref()));
            row.insert("department", optional(department.as_ref()));
            row.insert("candidate", candidate.to_string());
        }
        KindDetails::Media { outlet, reach } => {
            row.insert("outlet", optional(outlet.as_ref()));
            row.insert("reach", optional(*reach));
        }
        KindDetails::Government { agency, jurisdiction } => {
            row.insert("agency", optional(agency.as_ref()));
            row.insert("jurisdiction", optional(jurisdiction.as_ref()));
        }
    }
    STAKEHOLDER_FIELDS.iter().map(|field| row.remove(field).unwrap_or_default()).collect()
}

/// The lifecycle rows of a customer, under [`LIFECYCLE_FIELDS`].
fn lifecycle_rows(key: &str, events: &[LifecycleEvent]) -> Vec<Vec<String>> {
    events
        .iter()
        .map(|event| {
            let reason = match event {
                LifecycleEvent::Exit { reason, .. } => reason.as_str(),
                LifecycleEvent::WinBack { .. } => "",
            };
            vec![key.to_owned(), event.name().to_owned(), event.date().to_string(), reason.to_owned()]
        })
        .collect()
}

fn relationship_row(relationship: &Relationship, keys: &HashMap<StakeholderId, &str>) -> Vec<String> {
    let bonds: Vec<&str> = relationship.bonds.iter().map(|bond| bond.as_str()).collect();
    let mut row: HashMap<&str, String> = HashMap::from([
        ("from_key", keys[&relationship.from].to_owned()),
        ("to_key", keys[&relationship.to].to_owned()),
        ("type", relationship.rel_type.as_str().to_owned()),
        ("level", relationship.level.as_str().to_owned()),
        ("bonds", bonds.join("|")),
        ("trust", optional(relationship.trust.map(|trust| trust.get()))),
        ("commitment", optional(relationship.commitment.map(|commitment| commitment.get()))),
        ("since", time(relationship.since)),
        ("basis", optional(relationship.basis.map(|basis| basis.as_str()))),
    ]);
    RELATIONSHIP_FIELDS.iter().map(|field| row.remove(field).unwrap_or_default()).collect()
}

fn interaction_row(
    interaction: &Interaction,
    relationship: &Relationship,
    keys: &HashMap<StakeholderId, &str>,
) -> Vec<String> {
    let key = match &interaction.key {
        Some(key) => key.to_string(),
        None => format!("interaction-{}", interaction.id),
    };
    let mut row: HashMap<&str, String> = HashMap::from([
        ("key", key),
        ("from_key", keys[&relationship.from].to_owned()),
        ("to_key", keys[&relationship.to].to_owned()),
        ("type", relationship.rel_type.as_str().to_owned()),
        ("at", time(interaction.at)),
        ("channel", interaction.channel.as_str().to_owned()),
        ("direction", interaction.direction.as_str().to_owned()),
        ("sentiment", interaction.sentiment.get().to_string()),
        ("amount", optional(interaction.amount.map(|amount| amount.get()))),
        ("product_line", optional(interaction.product_line.as_ref())),
        ("topic", optional(interaction.topic.map(|topic| topic.as_str()))),
        ("note", interaction.note.clone().unwrap_or_default()),
    ]);
    INTERACTION_FIELDS.iter().map(|field| row.remove(field).unwrap_or_default()).collect()
}

/// A CSV file written under a temporary name, renamed into place once every file of the export is written.
struct File {
    path: PathBuf,
    partial: PathBuf,
    writer: csv::Writer<std::fs::File>,
}

impl File {
    fn create(dir: &Path, name: &str, header: &[&str]) -> Result<Self, ExportError> {
        let path = dir.join(name);
        let partial = dir.join(format!("{name}.partial"));
        let failed = |source| ExportError::Write { path: path.clone(), source };
        let mut writer = csv::Writer::from_path(&partial).map_err(|error| failed(error.into()))?;
        writer.write_record(header).map_err(|error| failed(error.into()))?;
        Ok(Self { path, partial, writer })
    }

    fn row(&mut self, row: &[String]) -> Result<(), ExportError> {
        self.writer
            .write_record(row)
            .map_err(|error| ExportError::Write { path: self.path.clone(), source: error.into() })
    }

    /// Writes out and syncs the file; [`Written::rename`] puts it in place.
    fn finish(self) -> Result<Written, ExportError> {
        let failed = |source| ExportError::Write { path: self.path.clone(), source };
        let file = self.writer.into_inner().map_err(|error| failed(error.into_error()))?;
        file.sync_all().map_err(failed)?;
        Ok(Written { path: self.path, partial: self.partial })
    }
}

/// A file written in full under its temporary name.
struct Written {
    path: PathBuf,
    partial: PathBuf,
}

impl Written {
    fn rename(self) -> Result<PathBuf, ExportError> {
        std::fs::rename(&self.partial, &self.path)
            .map_err(|source| ExportError::Write { path: self.path.clone(), source })?;
        Ok(self.path)
    }
}

/// Writes what `store` holds into `dir` in the import's formats (see the module's documentation).
pub async fn run(store: &dyn GraphStore, dir: &Path, include_private: bool) -> Result<Exported, ExportError> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Write { path: dir.to_owned(), source })?;
    let scan = store.graph_scan().await?;
    let mut exported = Exported::default();
    let mut stakeholders = File::create(dir, "stakeholders.csv", STAKEHOLDER_FIELDS)?;
    let mut written: Vec<Stakeholder> = Vec::with_capacity(scan.stakeholders.len());
    let ids: Vec<StakeholderId> = scan.stakeholders.iter().map(|row| row.id).collect();
    for chunk in ids.chunks(10_000) {
        let mut found = store.stakeholders_by_id(chunk).await?;
        found.sort_by_key(|stakeholder| stakeholder.id);
        for stakeholder in found {
            if stakeholder.is_archived() {
                continue;
            }
            if stakeholder.private && !include_private {
                exported.private_left_out += 1;
                continue;
            }
            stakeholders.row(&stakeholder_row(&stakeholder))?;
            exported.stakeholders += 1;
            written.push(stakeholder);
        }
    }
    let stakeholders = stakeholders.finish()?;
    let mut lifecycle = File::create(dir, "lifecycle.csv", LIFECYCLE_FIELDS)?;
    for stakeholder in &written {
        let KindDetails::Customer(customer) = &stakeholder.details else { continue };
        for row in lifecycle_rows(stakeholder.key.as_str(), &customer.lifecycle()) {
            lifecycle.row(&row)?;
            exported.lifecycle += 1;
        }
    }
    let lifecycle = lifecycle.finish()?;
    let mut programs = File::create(dir, "programs.csv", PROGRAM_FIELDS)?;
    let stored_programs = store.programs().await?;
    for program in &stored_programs {
        let markets: Vec<&str> = program.markets.iter().map(|market| market.as_str()).collect();
        programs.row(&[
            program.key.to_string(),
            program.name.to_string(),
            program.kind.as_str().to_owned(),
            markets.join("|"),
        ])?;
    }
    exported.programs = stored_programs.len();
    let programs = programs.finish()?;
    let program_keys: HashMap<crate::domain::ProgramId, &str> =
        stored_programs.iter().map(|program| (program.id, program.key.as_str())).collect();
    let mut memberships = File::create(dir, "memberships.csv", MEMBERSHIP_FIELDS)?;
    for stakeholder in &written {
        let KindDetails::Customer(customer) = &stakeholder.details else { continue };
        for membership in &customer.memberships {
            let Some(program) = program_keys.get(&membership.program) else { continue };
            memberships.row(&[
                stakeholder.key.to_string(),
                (*program).to_owned(),
                membership.joined.to_string(),
                optional(membership.left),
            ])?;
            exported.memberships += 1;
        }
    }
    let memberships = memberships.finish()?;
    let keys: HashMap<StakeholderId, &str> =
        written.iter().map(|stakeholder| (stakeholder.id, stakeholder.key.as_str())).collect();
    let kept: Vec<&Relationship> = scan
        .relationships
        .iter()
        .filter(|relationship| keys.contains_key(&relationship.from) && keys.contains_key(&relationship.to))
        .collect();
    let mut relationships = File::create(dir, "relationships.csv", RELATIONSHIP_FIELDS)?;
    for relationship in &kept {
        relationships.row(&relationship_row(relationship, &keys))?;
    }
    exported.relationships = kept.len();
    let relationships = relationships.finish()?;
    let mut interactions = File::create(dir, "interactions.csv", INTERACTION_FIELDS)?;
    for chunk in kept.chunks(1_000) {
        let ids: Vec<RelationshipId> = chunk.iter().map(|relationship| relationship.id).collect();
        let mut histories = store.interaction_histories(&ids).await?;
        for relationship in chunk {
            for interaction in histories.remove(&relationship.id).unwrap_or_default() {
                interactions.row(&interaction_row(&interaction, relationship, &keys))?;
                exported.interactions += 1;
            }
        }
    }
    // All three in place only once all three are written: an export that fails part-way leaves the files before it.
    let interactions = interactions.finish()?;
    for written in [stakeholders, lifecycle, programs, relationships, interactions, memberships] {
        exported.files.push(written.rename()?);
    }
    Ok(exported)
}

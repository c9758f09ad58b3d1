//! `stakegraph migrate`: copies a whole store (programmes, stakeholders, relationships with their decayed sums,
//! interactions, the change log) into a Cypher store, keeping every id and sequence number.
//!
//! The programmes go first, all in one statement (a graph keeps at most a thousand). Then the copy goes in four
//! phases, each in id order and in chunks; each chunk is one guarded statement that also
//! moves the target's counter node up to the chunk's last id. The counter is therefore where an interrupted copy
//! resumes, and since every record is `MERGE`d on its id, a chunk written twice leaves one of each record. At the
//! end the counts of both stores are compared.

use crate::domain::{RelationshipId, StakeholderId};
use crate::store::cypher::CypherStore;
use crate::store::{GraphCounts, GraphStore, StoreError};
use std::collections::BTreeSet;

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A store failed; the copy can be run again and resumes.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target holds a graph that is not (a part of) the source's.
    #[error(
        "the target already holds {target} change events but the source only {in_source}: it is another graph; \
             copy into an empty database"
    )]
    ForeignTarget {
        /// Change events in the target.
        target: i64,
        /// Change events in the source.
        in_source: u64,
    },
    /// The target holds data that is not an earlier copy of this source.
    #[error(
        "the target is not empty ({target:?}) and was copied from {copied_from}, not from this source; \
             copy into an empty database"
    )]
    NotACopy {
        /// What the target holds.
        target: GraphCounts,
        /// Where its data came from.
        copied_from: String,
    },
    /// The source's ids have gaps this copy cannot walk.
    #[error("the source's {what} ids have a gap of more than {gap} after id {after}; it cannot be copied in order")]
    Gap {
        /// Which records.
        what: &'static str,
        /// The last id found.
        after: i64,
        /// How many ids were missing in a row.
        gap: i64,
    },
    /// After the copy the programmes differ.
    #[error("the copy is incomplete: the source holds {in_source} programmes, the target {target}")]
    ProgramMismatch {
        /// The source's programmes.
        in_source: usize,
        /// The target's.
        target: usize,
    },
    /// After the copy the counts differ.
    #[error("the copy is incomplete: the source holds {in_source:?}, the target {target:?}")]
    Mismatch {
        /// The source's counts.
        in_source: GraphCounts,
        /// The target's counts.
        target: GraphCounts,
    },
}

/// Which phase a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Stakeholders.
    Stakeholders,
    /// Relationships.
    Relationships,
    /// Interactions.
    Interactions,
    /// Change-log entries.
    Changes,
}

impl Phase {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Stakeholders => "stakeholders",
            Phase::Relationships => "relationships",
            Phase::Interactions => "interactions",
            Phase::Changes => "change events",
        }
    }
}

/// How far a copy has come.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The phase.
    pub phase: Phase,
    /// Records of this phase in the target.
    pub done: u64,
    /// Records of this phase in the source.
    pub total: u64,
}

/// Records per chunk.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSizes {
    /// Stakeholders (each carries its JSON record).
    pub stakeholders: usize,
    /// Relationships.
    pub relationships: usize,
    /// Interactions.
    pub interactions: usize,
    /// Change-log entries.
    pub changes: usize,
}

impl Default for ChunkSizes {
    fn default() -> Self {
        Self { stakeholders: 1_000, relationships: 2_000, interactions: 5_000, changes: 2_000 }
    }
}

/// Empty id ranges in a row after which a walk gives up (ids are handed out one after the other, so the source
/// should have none).
const MAX_EMPTY_CHUNKS: i64 = 100;

/// What a finished copy found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The source's counts, equal to the target's.
    pub counts: GraphCounts,
    /// Whether the target already held everything (a copy run again after it finished).
    pub already_complete: bool,
}

/// Copies `source` (named `name`, e.g. `sqlite:/path/to/file.db`) into `target`, resuming where an earlier run
/// from the same source stopped; `progress` hears after every chunk.
pub async fn migrate(
    source: &dyn GraphStore,
    name: &str,
    target: &CypherStore,
    chunks: ChunkSizes,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Migrated, MigrateError> {
    let totals = source.counts().await?;
    let position = target.position().await?;
    if position.seq > totals.changes as i64 {
        return Err(MigrateError::ForeignTarget { target: position.seq, in_source: totals.changes });
    }
    let before = target.counts().await?;
    let fresh = before == GraphCounts::default();
    if !fresh && position.migration.as_deref() != Some(name) {
        return Err(MigrateError::NotACopy {
            target: before,
            copied_from: position.migration.clone().unwrap_or_else(|| "nowhere: it was written by a service".into()),
        });
    }
    let already_complete = before == totals && position.seq == totals.changes as i64;
    let none = BTreeSet::new();

    // Programmes, before the customers whose memberships name them; written again when a copy resumes.
    let programs = source.programs().await?;
    if !programs.is_empty() && target.programs().await? != programs {
        target.copy_programs(name, programs.clone()).await?;
    }

    // Stakeholders, by id.
    let (mut next, mut done, mut empty) = (position.stakeholder + 1, before.stakeholders, 0);
    while done < totals.stakeholders {
        let ids: Vec<StakeholderId> = (next..next + chunks.stakeholders as i64).map(StakeholderId).collect();
        next += chunks.stakeholders as i64;
        let stakeholders = source.stakeholders_by_id(&ids).await?;
        empty = if stakeholders.is_empty() { empty + 1 } else { 0 };
        if empty > MAX_EMPTY_CHUNKS {
            return Err(MigrateError::Gap { what: "stakeholder", after: ids[0].0 - 1, gap: empty * ids.len() as i64 });
        }
        done += stakeholders.len() as u64;
        if !stakeholders.is_empty() {
            target.copy(name, stakeholders, Vec::new(), &none, Vec::new(), Vec::new()).await?;
        }
        progress(Progress {
            phase: Phase::Stakeholders,
            done: done.min(totals.stakeholders),
            total: totals.stakeholders,
        });
    }

    // Relationships, by id, with their decayed sums.
    let (mut next, mut done, mut empty) = (position.relationship + 1, before.relationships, 0);
    while done < totals.relationships {
        let ids: Vec<RelationshipId> = (next..next + chunks.relationships as i64).map(RelationshipId).collect();
        next += chunks.relationships as i64;
        let relationships = source.relationships_by_id(&ids).await?;
        empty = if relationships.is_empty() { empty + 1 } else { 0 };
        if empty > MAX_EMPTY_CHUNKS {
            return Err(MigrateError::Gap { what: "relationship", after: ids[0].0 - 1, gap: empty * ids.len() as i64 });
        }
        done += relationships.len() as u64;
        if !relationships.is_empty() {
            let written = relationships.iter().map(|relationship| relationship.id).collect();
            target.copy(name, Vec::new(), relationships, &written, Vec::new(), Vec::new()).await?;
        }
        progress(Progress {
            phase: Phase::Relationships,
            done: done.min(totals.relationships),
            total: totals.relationships,
        });
    }

    // Interactions, by id, each linked to both ends of its relationship.
    let (mut next, mut done, mut empty) = (position.interaction + 1, before.interactions, 0);
    while done < totals.interactions {
        let ids: Vec<_> = (next..next + chunks.interactions as i64).map(crate::domain::InteractionId).collect();
        next += chunks.interactions as i64;
        let interactions = source.interactions_by_id(&ids).await?;
        empty = if interactions.is_empty() { empty + 1 } else { 0 };
        if empty > MAX_EMPTY_CHUNKS {
            return Err(MigrateError::Gap { what: "interaction", after: ids[0].0 - 1, gap: empty * ids.len() as i64 });
        }
        done += interactions.len() as u64;
        if !interactions.is_empty() {
            let on: Vec<RelationshipId> = interactions
                .iter()
                .map(|interaction| interaction.relationship)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let relationships = source.relationships_by_id(&on).await?;
            target.copy(name, Vec::new(), relationships, &none, interactions, Vec::new()).await?;
        }
        progress(Progress {
            phase: Phase::Interactions,
            done: done.min(totals.interactions),
            total: totals.interactions,
        });
    }

    // The change log, in sequence order; the counter's sequence number ends at the source's.
    let mut after = position.seq;
    loop {
        let events = source.changes_after(after, chunks.changes).await?;
        let Some(last) = events.last().map(|event| event.seq) else { break };
        target.copy(name, Vec::new(), Vec::new(), &none, Vec::new(), events).await?;
        after = last;
        progress(Progress { phase: Phase::Changes, done: after.max(0) as u64, total: totals.changes });
    }

    let copied = target.programs().await?.len();
    if copied != programs.len() {
        return Err(MigrateError::ProgramMismatch { in_source: programs.len(), target: copied });
    }
    let counts = target.counts().await?;
    if counts != totals {
        return Err(MigrateError::Mismatch { in_source: totals, target: counts });
    }
    Ok(Migrated { counts, already_complete })
}

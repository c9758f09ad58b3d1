//! Applying a batch of commands in one SQLite transaction, with its change events: the batch rules live in
//! [`crate::store::batch`]; this module answers their reads and writes with SQL.

use super::rows::{self, to_ms, PROGRAM_COLUMNS, RELATIONSHIP_COLUMNS};
use crate::domain::strength::{DecayedSums, StrengthModel};
use crate::domain::{
    Applied, ChangeEvent, Command, Interaction, InteractionId, NewInteraction, PendingEvent, Program, ProgramId,
    Relationship, RelationshipId, RelationshipType, Stakeholder, StakeholderId,
};
use crate::store::batch::{self, BatchTarget};
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};

/// Applies `commands` at time `at` inside `tx`; the caller commits only when this returns `Ok`.
pub fn apply(
    tx: &Transaction<'_>,
    model: &StrengthModel,
    commands: Vec<Command>,
    at: DateTime<Utc>,
) -> StoreResult<Applied> {
    batch::apply(&mut InTransaction(tx), model, commands, at)
}

/// A batch's reads and writes inside one SQLite transaction.
struct InTransaction<'a, 'conn>(&'a Transaction<'conn>);

impl BatchTarget for InTransaction<'_, '_> {
    fn stakeholder(&mut self, id: StakeholderId) -> StoreResult<Option<Stakeholder>> {
        self.0
            .prepare_cached("SELECT record FROM stakeholder WHERE id = ?1")
            .and_then(|mut statement| statement.query_row([id.0], rows::stakeholder).optional())
            .map_err(rows::internal)
    }

    fn archived(&mut self, id: StakeholderId) -> StoreResult<Option<bool>> {
        self.0
            .prepare_cached("SELECT archived_at IS NOT NULL FROM stakeholder WHERE id = ?1")
            .and_then(|mut statement| statement.query_row([id.0], |row| row.get(0)).optional())
            .map_err(rows::internal)
    }

    fn stakeholder_with_key(&mut self, key: &str) -> StoreResult<Option<StakeholderId>> {
        self.0
            .prepare_cached("SELECT id FROM stakeholder WHERE key = ?1")
            .and_then(|mut statement| statement.query_row([key], |row| row.get(0)).optional())
            .map(|id| id.map(StakeholderId))
            .map_err(rows::internal)
    }

    fn next_stakeholder_id(&mut self) -> StoreResult<StakeholderId> {
        self.0
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM stakeholder", [], |row| row.get(0))
            .map(StakeholderId)
            .map_err(rows::internal)
    }

    /// Writes the whole record and the columns derived from it, in one statement.
    fn put_stakeholder(&mut self, stakeholder: &Stakeholder) -> StoreResult<()> {
        let record = crate::store::record::write_stakeholder(stakeholder)?;
        self.0
            .prepare_cached(
                "INSERT INTO stakeholder (id, key, kind, name, status, markets, power, interest, private,
                                          created_at, updated_at, archived_at, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (id) DO UPDATE SET
                    key = excluded.key, kind = excluded.kind, name = excluded.name, status = excluded.status,
                    markets = excluded.markets, power = excluded.power, interest = excluded.interest,
                    private = excluded.private, updated_at = excluded.updated_at,
                    archived_at = excluded.archived_at, record = excluded.record",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    stakeholder.id.0,
                    stakeholder.key.as_str(),
                    stakeholder.kind().as_str(),
                    stakeholder.name.as_str(),
                    stakeholder.details.customer_status().map(|status| status.as_str()),
                    stakeholder.markets().bits(),
                    stakeholder.power.get(),
                    stakeholder.interest.get(),
                    stakeholder.private,
                    to_ms(stakeholder.created_at),
                    to_ms(stakeholder.updated_at),
                    stakeholder.archived_at.map(to_ms),
                    record,
                ])
            })
            .map_err(rows::internal)?;
        Ok(())
    }

    fn relationship_between(
        &mut self,
        from: StakeholderId,
        to: StakeholderId,
        rel_type: RelationshipType,
    ) -> StoreResult<Option<Relationship>> {
        self.0
            .prepare_cached(&format!(
                "SELECT {RELATIONSHIP_COLUMNS} FROM relationship WHERE from_id = ?1 AND to_id = ?2 AND type = ?3"
            ))
            .and_then(|mut statement| {
                statement.query_row(params![from.0, to.0, rel_type.as_str()], rows::relationship).optional()
            })
            .map_err(rows::internal)
    }

    fn relationship(&mut self, id: RelationshipId) -> StoreResult<Option<Relationship>> {
        self.0
            .prepare_cached(&format!("SELECT {RELATIONSHIP_COLUMNS} FROM relationship WHERE id = ?1"))
            .and_then(|mut statement| statement.query_row([id.0], rows::relationship).optional())
            .map_err(rows::internal)
    }

    fn next_relationship_id(&mut self) -> StoreResult<RelationshipId> {
        self.0
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM relationship", [], |row| row.get(0))
            .map(RelationshipId)
            .map_err(rows::internal)
    }

    fn put_relationship(&mut self, relationship: &Relationship) -> StoreResult<()> {
        self.0
            .prepare_cached(
                "INSERT INTO relationship (id, from_id, to_id, type, level, bonds, trust, commitment, since, basis,
                                           created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET
                    level = excluded.level, bonds = excluded.bonds, trust = excluded.trust,
                    commitment = excluded.commitment, since = excluded.since, basis = excluded.basis,
                    updated_at = excluded.updated_at",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    relationship.id.0,
                    relationship.from.0,
                    relationship.to.0,
                    relationship.rel_type.as_str(),
                    relationship.level.rank(),
                    relationship.bonds.bits(),
                    relationship.trust.map(|trust| trust.get()),
                    relationship.commitment.map(|commitment| commitment.get()),
                    to_ms(relationship.since),
                    relationship.basis.map(|basis| basis.as_str()),
                    to_ms(relationship.created_at),
                    to_ms(relationship.updated_at),
                ])
            })
            .map_err(rows::internal)?;
        Ok(())
    }

    fn interactions_with_keys(&mut self, keys: &[&str]) -> StoreResult<Vec<Interaction>> {
        let keys = super::array_of(keys.iter().map(|key| (*key).to_owned()));
        self.0
            .prepare_cached(&format!("SELECT {} FROM interaction WHERE key IN rarray(?1)", rows::INTERACTION_COLUMNS))
            .and_then(|mut statement| statement.query_map([keys], rows::interaction)?.collect::<rusqlite::Result<_>>())
            .map_err(rows::internal)
    }

    fn insert_interaction(&mut self, interaction: NewInteraction) -> StoreResult<Interaction> {
        self.0
            .prepare_cached(
                "INSERT INTO interaction (relationship_id, at, channel, direction, sentiment, amount,
                                          product_line, note, topic, key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    interaction.relationship.0,
                    to_ms(interaction.at),
                    interaction.channel.as_str(),
                    interaction.direction.as_str(),
                    interaction.sentiment.get(),
                    interaction.amount.map(|amount| amount.get()),
                    interaction.product_line.as_ref().map(|line| line.as_str()),
                    interaction.note.as_deref(),
                    interaction.topic.map(|topic| topic.as_str()),
                    interaction.key.as_ref().map(|key| key.as_str()),
                ])
            })
            .map_err(rows::internal)?;
        Ok(interaction.with_id(InteractionId(self.0.last_insert_rowid())))
    }

    fn put_sums(&mut self, id: RelationshipId, sums: &DecayedSums) -> StoreResult<()> {
        write_sums(self.0, id, sums)
    }

    fn program(&mut self, id: ProgramId) -> StoreResult<Option<Program>> {
        self.0
            .prepare_cached(&format!("SELECT {PROGRAM_COLUMNS} FROM program WHERE id = ?1"))
            .and_then(|mut statement| statement.query_row([id.0], rows::program).optional())
            .map_err(rows::internal)
    }

    fn programs(&mut self) -> StoreResult<Vec<Program>> {
        self.0
            .prepare_cached(&format!("SELECT {PROGRAM_COLUMNS} FROM program ORDER BY id"))
            .and_then(|mut statement| statement.query_map([], rows::program)?.collect())
            .map_err(rows::internal)
    }

    fn put_program(&mut self, program: &Program) -> StoreResult<()> {
        self.0
            .prepare_cached(
                "INSERT INTO program (id, key, name, kind, markets, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET key = excluded.key, name = excluded.name, kind = excluded.kind,
                    markets = excluded.markets",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    program.id.0,
                    program.key.as_str(),
                    program.name.as_str(),
                    program.kind.as_str(),
                    program.markets.bits(),
                    to_ms(program.created_at),
                ])
            })
            .map_err(rows::internal)?;
        Ok(())
    }

    fn append_event(&mut self, event: PendingEvent, at: DateTime<Utc>) -> StoreResult<ChangeEvent> {
        let stakeholders = serde_json::to_string(&event.stakeholders).map_err(rows::internal)?;
        let payload = crate::store::record::write_change(&event.payload)?;
        self.0
            .prepare_cached(
                "INSERT INTO change_log (at, kind, stakeholders, relationship_id, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    to_ms(at),
                    event.kind.as_str(),
                    stakeholders,
                    event.relationship.map(|id| id.0),
                    payload
                ])
            })
            .map_err(rows::internal)?;
        Ok(event.commit(self.0.last_insert_rowid(), at))
    }
}

/// Stores the decayed sums of relationship `id`.
pub fn write_sums(tx: &Transaction<'_>, id: RelationshipId, sums: &DecayedSums) -> StoreResult<()> {
    tx.prepare_cached(
        "UPDATE relationship SET sum_weighted = ?2, sum_inbound = ?3, sum_outbound = ?4, sum_sentiment = ?5,
                                 last_at = ?6
         WHERE id = ?1",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            id.0,
            sums.weighted,
            sums.inbound,
            sums.outbound,
            sums.sentiment,
            sums.last.map(|seconds| (seconds * 1_000.0).round() as i64),
        ])
    })
    .map_err(rows::internal)?;
    Ok(())
}

/// Recomputes every relationship's decayed sums from its interaction history (after a change of half-life or
/// channel weights, or on the first open of a store written before the sums were kept).
pub fn recompute_sums(tx: &Transaction<'_>, model: &StrengthModel) -> StoreResult<u64> {
    tx.execute(
        "UPDATE relationship SET sum_weighted = 0, sum_inbound = 0, sum_outbound = 0, sum_sentiment = 0,
                                 last_at = NULL",
        [],
    )
    .map_err(rows::internal)?;
    let mut statement = tx
        .prepare(&format!("SELECT {} FROM interaction ORDER BY relationship_id, at, id", rows::INTERACTION_COLUMNS))
        .map_err(rows::internal)?;
    let mut rows_read = statement.query([]).map_err(rows::internal)?;
    let mut current: Option<(RelationshipId, DecayedSums)> = None;
    let mut relationships = 0;
    while let Some(row) = rows_read.next().map_err(rows::internal)? {
        let interaction = rows::interaction(row).map_err(rows::internal)?;
        if current.as_ref().is_some_and(|(id, _)| *id != interaction.relationship) {
            let (id, sums) = current.take().expect("checked");
            write_sums(tx, id, &sums)?;
            relationships += 1;
        }
        let (_, sums) = current.get_or_insert_with(|| (interaction.relationship, DecayedSums::default()));
        sums.add(model, interaction.at, interaction.channel, interaction.direction, interaction.sentiment.get());
    }
    if let Some((id, sums)) = current {
        write_sums(tx, id, &sums)?;
        relationships += 1;
    }
    Ok(relationships)
}

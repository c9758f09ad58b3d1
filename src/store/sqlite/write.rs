//! Applying a batch of commands in one SQLite transaction, with its change events.

use super::rows::{self, to_ms, RELATIONSHIP_COLUMNS};
use crate::domain::strength::{DecayedSums, StrengthModel};
use crate::domain::{
    Applied, ChangeEvent, ChangeKind, Command, Interaction, InteractionId, NewInteraction, NewStakeholder, Outcome,
    PendingEvent, Relationship, RelationshipId, RelationshipUpsert, Stakeholder, StakeholderId,
};
use crate::store::{Rejection, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::BTreeMap;

/// Applies `commands` at time `at` inside `tx`; the caller commits only when this returns `Ok`.
pub fn apply(
    tx: &Transaction<'_>,
    model: &StrengthModel,
    commands: Vec<Command>,
    at: DateTime<Utc>,
) -> StoreResult<Applied> {
    let mut batch = Batch { tx, model, at, events: Vec::new() };
    let mut outcomes = Vec::with_capacity(commands.len());
    for (index, command) in commands.into_iter().enumerate() {
        outcomes.push(batch.command(index, command)?);
    }
    let events = batch.events.into_iter().map(|event| append_event(tx, event, at)).collect::<StoreResult<_>>()?;
    Ok(Applied { outcomes, events })
}

struct Batch<'a, 'conn> {
    tx: &'a Transaction<'conn>,
    /// Keeps each relationship's decayed sums as interactions are recorded.
    model: &'a StrengthModel,
    at: DateTime<Utc>,
    events: Vec<PendingEvent>,
}

fn not_found(command: usize, field: &str, what: &str, id: impl std::fmt::Display) -> StoreError {
    StoreError::rejected(
        command,
        field,
        Rejection::NotFound,
        format!("no {what} has id {id}; check the id, or list {what}s to find it"),
    )
}

impl Batch<'_, '_> {
    fn command(&mut self, index: usize, command: Command) -> StoreResult<Outcome> {
        match command {
            Command::CreateStakeholder(new) => self.create_stakeholder(index, new),
            Command::UpdateStakeholder { id, patch } => {
                let before = self.live_stakeholder(index, id)?;
                let mut after = before.clone();
                after
                    .apply_patch(patch, self.at)
                    .map_err(|error| StoreError::rejected(index, "id", Rejection::Invalid, error.0))?;
                self.write_stakeholder(&after)?;
                self.events.push(PendingEvent::stakeholder(ChangeKind::StakeholderUpdated, Some(&before), &after));
                Ok(Outcome::Stakeholder(after))
            }
            Command::ArchiveStakeholder { id } => {
                let before = self.stakeholder(index, id)?;
                if before.is_archived() {
                    return Ok(Outcome::Stakeholder(before));
                }
                let mut after = before.clone();
                after.archived_at = Some(self.at);
                after.updated_at = self.at;
                self.write_stakeholder(&after)?;
                self.events.push(PendingEvent::stakeholder(ChangeKind::StakeholderArchived, Some(&before), &after));
                Ok(Outcome::Stakeholder(after))
            }
            Command::RecordCustomerExit { id, exit } => {
                let before = self.live_stakeholder(index, id)?;
                let mut after = before.clone();
                after
                    .record_exit(exit, self.at)
                    .map_err(|error| StoreError::rejected(index, "id", Rejection::Invalid, error.0))?;
                self.write_stakeholder(&after)?;
                self.events.push(PendingEvent::stakeholder(ChangeKind::CustomerExited, Some(&before), &after));
                Ok(Outcome::Stakeholder(after))
            }
            Command::UpsertRelationship(upsert) => self.upsert_relationship(index, upsert),
            Command::RecordInteractions(interactions) => self.record_interactions(index, interactions),
        }
    }

    fn stakeholder(&self, index: usize, id: StakeholderId) -> StoreResult<Stakeholder> {
        self.tx
            .prepare_cached("SELECT record FROM stakeholder WHERE id = ?1")
            .and_then(|mut statement| statement.query_row([id.0], rows::stakeholder).optional())
            .map_err(rows::internal)?
            .ok_or_else(|| not_found(index, "id", "stakeholder", id))
    }

    fn live_stakeholder(&self, index: usize, id: StakeholderId) -> StoreResult<Stakeholder> {
        let stakeholder = self.stakeholder(index, id)?;
        if stakeholder.is_archived() {
            return Err(StoreError::rejected(
                index,
                "id",
                Rejection::Conflict,
                format!("stakeholder {id} is archived and can no longer change"),
            ));
        }
        Ok(stakeholder)
    }

    fn create_stakeholder(&mut self, index: usize, new: NewStakeholder) -> StoreResult<Outcome> {
        let taken: Option<i64> = self
            .tx
            .prepare_cached("SELECT id FROM stakeholder WHERE key = ?1")
            .and_then(|mut statement| statement.query_row([new.key.as_str()], |row| row.get(0)).optional())
            .map_err(rows::internal)?;
        if let Some(existing) = taken {
            return Err(StoreError::rejected(
                index,
                "key",
                Rejection::Conflict,
                format!(
                    "key '{}' is already used by stakeholder {existing}; choose another key or update that one",
                    new.key
                ),
            ));
        }
        let next: i64 = self
            .tx
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM stakeholder", [], |row| row.get(0))
            .map_err(rows::internal)?;
        let stakeholder = new.into_stakeholder(StakeholderId(next), self.at);
        self.write_stakeholder(&stakeholder)?;
        self.events.push(PendingEvent::stakeholder(ChangeKind::StakeholderCreated, None, &stakeholder));
        Ok(Outcome::Stakeholder(stakeholder))
    }

    /// Writes the whole record and the columns derived from it, in one statement.
    fn write_stakeholder(&self, stakeholder: &Stakeholder) -> StoreResult<()> {
        let record = serde_json::to_string(stakeholder).map_err(rows::internal)?;
        self.tx
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

    fn upsert_relationship(&mut self, index: usize, upsert: RelationshipUpsert) -> StoreResult<Outcome> {
        if upsert.from == upsert.to {
            return Err(StoreError::rejected(
                index,
                "to",
                Rejection::Invalid,
                "a relationship joins two different stakeholders; `from` and `to` are the same",
            ));
        }
        let from = self.live_stakeholder(index, upsert.from).map_err(|error| retarget(error, "from"))?;
        let to = self.live_stakeholder(index, upsert.to).map_err(|error| retarget(error, "to"))?;
        upsert
            .rel_type
            .check_ends(from.kind(), to.kind())
            .map_err(|error| StoreError::rejected(index, "type", Rejection::Invalid, error.0))?;
        let existing = self
            .tx
            .prepare_cached(&format!(
                "SELECT {RELATIONSHIP_COLUMNS} FROM relationship WHERE from_id = ?1 AND to_id = ?2 AND type = ?3"
            ))
            .and_then(|mut statement| {
                statement
                    .query_row(params![upsert.from.0, upsert.to.0, upsert.rel_type.as_str()], rows::relationship)
                    .optional()
            })
            .map_err(rows::internal)?;
        let (relationship, created) = match existing {
            Some(before) => {
                let mut after = before.clone();
                upsert.update(&mut after, self.at);
                self.write_relationship(&after)?;
                self.events.push(PendingEvent::relationship(Some(&before), &after));
                (after, false)
            }
            None => {
                let next: i64 = self
                    .tx
                    .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM relationship", [], |row| row.get(0))
                    .map_err(rows::internal)?;
                let created = upsert.create(RelationshipId(next), self.at);
                self.write_relationship(&created)?;
                self.events.push(PendingEvent::relationship(None, &created));
                (created, true)
            }
        };
        Ok(Outcome::Relationship { relationship, created })
    }

    fn write_relationship(&self, relationship: &Relationship) -> StoreResult<()> {
        self.tx
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

    fn record_interactions(&mut self, index: usize, interactions: Vec<NewInteraction>) -> StoreResult<Outcome> {
        let mut relationships: BTreeMap<RelationshipId, Relationship> = BTreeMap::new();
        for (position, interaction) in interactions.iter().enumerate() {
            interaction
                .check_time(self.at)
                .map_err(|error| StoreError::rejected(index, format!("{position}.at"), Rejection::Invalid, error.0))?;
            if relationships.contains_key(&interaction.relationship) {
                continue;
            }
            let relationship = self
                .tx
                .prepare_cached(&format!("SELECT {RELATIONSHIP_COLUMNS} FROM relationship WHERE id = ?1"))
                .and_then(|mut statement| {
                    statement.query_row([interaction.relationship.0], rows::relationship).optional()
                })
                .map_err(rows::internal)?
                .ok_or_else(|| {
                    not_found(index, &format!("{position}.relationship"), "relationship", interaction.relationship)
                })?;
            // Archived stakeholders no longer change, and neither does their history.
            for end in [relationship.from, relationship.to] {
                self.live_stakeholder(index, end)
                    .map_err(|error| retarget(error, &format!("{position}.relationship")))?;
            }
            relationships.insert(relationship.id, relationship);
        }
        let mut recorded = Vec::with_capacity(interactions.len());
        {
            let mut insert = self
                .tx
                .prepare_cached(
                    "INSERT INTO interaction (relationship_id, at, channel, direction, sentiment, amount,
                                              product_line, note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(rows::internal)?;
            for interaction in interactions {
                insert
                    .execute(params![
                        interaction.relationship.0,
                        to_ms(interaction.at),
                        interaction.channel.as_str(),
                        interaction.direction.as_str(),
                        interaction.sentiment.get(),
                        interaction.amount.map(|amount| amount.get()),
                        interaction.product_line.as_ref().map(|line| line.as_str()),
                        interaction.note.as_deref(),
                    ])
                    .map_err(rows::internal)?;
                recorded.push(interaction.with_id(InteractionId(self.tx.last_insert_rowid())));
            }
        }
        let mut by_relationship: BTreeMap<RelationshipId, Vec<&Interaction>> = BTreeMap::new();
        for interaction in &recorded {
            by_relationship.entry(interaction.relationship).or_default().push(interaction);
            let sums = &mut relationships.get_mut(&interaction.relationship).expect("looked up above").sums;
            sums.add(
                self.model,
                interaction.at,
                interaction.channel,
                interaction.direction,
                interaction.sentiment.get(),
            );
        }
        for relationship in relationships.values() {
            write_sums(self.tx, relationship.id, &relationship.sums)?;
        }
        for (id, on_it) in &by_relationship {
            self.events.push(PendingEvent::interactions(&relationships[id], on_it));
        }
        Ok(Outcome::Interactions(recorded))
    }
}

/// Points a "not found"/"archived" refusal about a stakeholder at the field it came from.
fn retarget(error: StoreError, field: &str) -> StoreError {
    match error {
        StoreError::Rejected { command, reason, message, .. } => {
            StoreError::Rejected { command, field: field.to_owned(), reason, message }
        }
        other => other,
    }
}

fn append_event(tx: &Transaction<'_>, event: PendingEvent, at: DateTime<Utc>) -> StoreResult<ChangeEvent> {
    let stakeholders = serde_json::to_string(&event.stakeholders).map_err(rows::internal)?;
    let payload = serde_json::to_string(&event.payload).map_err(rows::internal)?;
    tx.prepare_cached(
        "INSERT INTO change_log (at, kind, stakeholders, relationship_id, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
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
    Ok(event.commit(tx.last_insert_rowid(), at))
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

//! A write batch on a Cypher engine: read what the commands need, apply the batch rules in memory, then write
//! the result in one guarded statement ([`statements::WRITE_BATCH`]).

use super::rows;
use super::statements::{self, kind_label};
use super::value::{map, Value};
use super::Statement;
use crate::domain::strength::DecayedSums;
use crate::domain::{
    ChangeEvent, Command, Interaction, InteractionId, NewInteraction, PendingEvent, Program, ProgramId, Relationship,
    RelationshipId, RelationshipType, Stakeholder, StakeholderId, StakeholderKind,
};
use crate::store::batch::BatchTarget;
use crate::store::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The counter node's values: its version, the last change-log sequence number and the last id of each record
/// kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counter {
    /// Bumped by every write: the guard of the next one.
    pub version: i64,
    /// The last change-log sequence number.
    pub seq: i64,
    /// The last stakeholder id given out.
    pub stakeholder: i64,
    /// The last relationship id given out.
    pub relationship: i64,
    /// The last interaction id given out.
    pub interaction: i64,
    /// Where a copy made by `migrate` into this graph came from.
    pub migration: Option<String>,
}

impl Counter {
    /// The counter from a [`statements::READ_COUNTER`] row.
    pub fn from_row(row: &[Value]) -> StoreResult<Self> {
        Ok(Self {
            version: row[0].int()?,
            seq: row[1].int()?,
            stakeholder: row[2].int()?,
            relationship: row[3].int()?,
            interaction: row[4].int()?,
            migration: row[5].opt_text()?.map(str::to_owned),
        })
    }

    fn value(&self) -> Value {
        map([
            ("seq", self.seq.into()),
            ("stakeholder", self.stakeholder.into()),
            ("relationship", self.relationship.into()),
            ("interaction", self.interaction.into()),
            ("migration", self.migration.clone().into()),
        ])
    }
}

/// What a batch will look up, gathered from its commands before it runs.
#[derive(Debug, Default)]
pub struct Lookups {
    /// Stakeholders by id.
    pub stakeholders: BTreeSet<StakeholderId>,
    /// Keys of stakeholders to create or upsert (their owners are read too).
    pub keys: BTreeSet<String>,
    /// Relationships by ends and type.
    pub ends: BTreeSet<(StakeholderId, StakeholderId, RelationshipType)>,
    /// Relationships by id.
    pub relationships: BTreeSet<RelationshipId>,
    /// Whether the batch reads the programmes (all of them: a graph keeps at most a thousand).
    pub programs: bool,
    /// Relationships by the keys of their ends and type: their ends are looked up once the keys' owners are known.
    pub by_key: Vec<(String, String, RelationshipType)>,
    /// Interactions by key.
    pub interaction_keys: BTreeSet<String>,
}

impl Lookups {
    /// Everything `commands` may look up (the ends of looked-up relationships are added once those are read).
    pub fn of(commands: &[Command]) -> Self {
        let mut lookups = Self::default();
        for command in commands {
            match command {
                Command::CreateStakeholder(new) | Command::UpsertStakeholder { new, .. } => {
                    lookups.keys.insert(new.key.as_str().to_owned());
                }
                Command::UpdateStakeholder { id, .. }
                | Command::ArchiveStakeholder { id }
                | Command::RecordCustomerExit { id, .. }
                | Command::RecordCustomerWinBack { id, .. } => {
                    lookups.stakeholders.insert(*id);
                }
                Command::UpsertRelationship(upsert) => {
                    lookups.stakeholders.extend([upsert.from, upsert.to]);
                    lookups.ends.insert((upsert.from, upsert.to, upsert.rel_type));
                }
                Command::UpsertRelationshipByKey { from, to, upsert } => {
                    // The ends are added once the keys' owners are read (`Lookups::by_key`).
                    lookups.keys.extend([from.as_str().to_owned(), to.as_str().to_owned()]);
                    lookups.by_key.push((from.as_str().to_owned(), to.as_str().to_owned(), upsert.rel_type));
                }
                Command::RecordInteractions(interactions) => {
                    lookups.relationships.extend(interactions.iter().map(|interaction| interaction.relationship));
                    lookups.interaction_keys.extend(
                        interactions
                            .iter()
                            .filter_map(|interaction| Some(interaction.key.as_ref()?.as_str().to_owned())),
                    );
                }
                Command::RecordInteractionsByKey(keyed) => {
                    for keyed in keyed {
                        let (from, to) = (keyed.from.as_str().to_owned(), keyed.to.as_str().to_owned());
                        lookups.keys.extend([from.clone(), to.clone()]);
                        lookups.by_key.push((from, to, keyed.rel_type));
                        if let Some(key) = &keyed.interaction.key {
                            lookups.interaction_keys.insert(key.as_str().to_owned());
                        }
                    }
                }
                Command::CreateProgram(_) | Command::UpsertProgram(_) => lookups.programs = true,
                Command::MembershipByKey { customer, .. } => {
                    lookups.programs = true;
                    lookups.keys.insert(customer.as_str().to_owned());
                }
                Command::LifecycleByKey { customer, .. } => {
                    lookups.keys.insert(customer.as_str().to_owned());
                }
                Command::EnrolInProgram { customer, .. } | Command::LeaveProgram { customer, .. } => {
                    lookups.programs = true;
                    lookups.stakeholders.insert(*customer);
                }
            }
        }
        lookups
    }
}

/// The rows a batch reads, as they were at the counter's sequence number, and what it writes, in memory.
#[derive(Debug, Default)]
pub struct Prepared {
    counter: Counter,
    expected: i64,
    /// The highest stakeholder id when the batch read its rows: higher ones are the batch's own.
    read_stakeholders: i64,
    /// Looked-up stakeholders (`None`: looked up and missing), updated as the batch writes them.
    stakeholders: HashMap<StakeholderId, Option<Stakeholder>>,
    keys: HashMap<String, Option<StakeholderId>>,
    ends: HashMap<(StakeholderId, StakeholderId, RelationshipType), Option<RelationshipId>>,
    relationships: HashMap<RelationshipId, Option<Relationship>>,
    written_stakeholders: BTreeSet<StakeholderId>,
    written_relationships: BTreeSet<RelationshipId>,
    interactions: Vec<Interaction>,
    /// Looked-up interactions by key (`None`: looked up and missing), and the batch's own.
    interaction_keys: HashMap<String, Option<Interaction>>,
    /// Every programme, when the batch read them (`None`: it did not).
    programs: Option<BTreeMap<ProgramId, Program>>,
    written_programs: BTreeSet<ProgramId>,
    events: Vec<ChangeEvent>,
}

fn not_read(what: &str) -> StoreError {
    StoreError::Internal(format!("a write batch looked up {what} it had not read beforehand"))
}

impl Prepared {
    /// A batch prepared at `counter` over the rows read for its lookups.
    pub fn new(
        counter: Counter,
        lookups: &Lookups,
        stakeholders: Vec<Stakeholder>,
        key_owners: Vec<(String, StakeholderId)>,
        relationships: Vec<Relationship>,
    ) -> Self {
        let mut prepared =
            Prepared { expected: counter.version, read_stakeholders: counter.stakeholder, counter, ..Self::default() };
        prepared.stakeholders = lookups.stakeholders.iter().map(|id| (*id, None)).collect();
        prepared.keys = lookups.keys.iter().map(|key| (key.clone(), None)).collect();
        prepared.ends = lookups.ends.iter().map(|ends| (*ends, None)).collect();
        prepared.relationships = lookups.relationships.iter().map(|id| (*id, None)).collect();
        for stakeholder in stakeholders {
            prepared.stakeholders.insert(stakeholder.id, Some(stakeholder));
        }
        for (key, id) in key_owners {
            prepared.keys.insert(key, Some(id));
        }
        for relationship in relationships {
            prepared.ends.insert((relationship.from, relationship.to, relationship.rel_type), Some(relationship.id));
            prepared.relationships.insert(relationship.id, Some(relationship));
        }
        prepared
    }

    /// A batch that copies records as they are (ids, sequence numbers and sums kept), as `migrate` does:
    /// `relationships` must hold the relationships of `interactions` too (written only when in `written`).
    pub fn copy(
        counter: Counter,
        stakeholders: Vec<Stakeholder>,
        relationships: Vec<Relationship>,
        written: &BTreeSet<RelationshipId>,
        interactions: Vec<Interaction>,
        events: Vec<ChangeEvent>,
    ) -> Self {
        let mut prepared = Prepared { expected: counter.version, counter, ..Self::default() };
        for stakeholder in stakeholders {
            prepared.counter.stakeholder = prepared.counter.stakeholder.max(stakeholder.id.0);
            prepared.written_stakeholders.insert(stakeholder.id);
            prepared.stakeholders.insert(stakeholder.id, Some(stakeholder));
        }
        for relationship in relationships {
            if written.contains(&relationship.id) {
                prepared.counter.relationship = prepared.counter.relationship.max(relationship.id.0);
                prepared.written_relationships.insert(relationship.id);
            }
            prepared.relationships.insert(relationship.id, Some(relationship));
        }
        for interaction in &interactions {
            prepared.counter.interaction = prepared.counter.interaction.max(interaction.id.0);
        }
        for event in &events {
            prepared.counter.seq = prepared.counter.seq.max(event.seq);
        }
        prepared.interactions = interactions;
        prepared.events = events;
        prepared
    }

    /// The same batch, holding the interactions found for [`Lookups::interaction_keys`].
    pub fn with_interactions(mut self, lookups: &Lookups, found: Vec<Interaction>) -> Self {
        self.interaction_keys = lookups.interaction_keys.iter().map(|key| (key.clone(), None)).collect();
        for interaction in found {
            if let Some(key) = &interaction.key {
                self.interaction_keys.insert(key.as_str().to_owned(), Some(interaction));
            }
        }
        self
    }

    /// The same batch, holding every programme (read for a batch whose [`Lookups::programs`] is set).
    pub fn with_programs(mut self, programs: Vec<Program>) -> Self {
        self.programs = Some(programs.into_iter().map(|program| (program.id, program)).collect());
        self
    }

    /// A batch that copies `programs` as they are (ids kept), as `migrate` does.
    pub fn copy_programs(counter: Counter, programs: Vec<Program>) -> Self {
        let mut prepared = Prepared { expected: counter.version, counter, ..Self::default() };
        prepared.written_programs = programs.iter().map(|program| program.id).collect();
        prepared.with_programs(programs)
    }

    /// Whether the batch changed anything.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many records its statement writes: stakeholders, relationships, interactions, programmes and events.
    pub fn rows(&self) -> usize {
        self.written_stakeholders.len()
            + self.written_relationships.len()
            + self.interactions.len()
            + self.written_programs.len()
            + self.events.len()
    }

    /// The statement that writes everything the batch did, guarded by the counter version it was read at.
    pub fn statement(&self) -> StoreResult<Statement> {
        let mut statement = Statement::new(statements::WRITE_BATCH.as_str(), statements::WRITE_COLUMNS)
            .param("expected", self.expected)
            .param("counter", self.counter.value());
        let mut by_kind: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
        for id in &self.written_stakeholders {
            let stakeholder = self.stakeholders[id].as_ref().expect("a written stakeholder is held");
            by_kind
                .entry(kind_label(stakeholder.kind()))
                .or_default()
                .push(map([("id", id.0.into()), ("props", rows::stakeholder_props(stakeholder)?)]));
        }
        for kind in StakeholderKind::ALL {
            let list = by_kind.remove(kind_label(*kind)).unwrap_or_default();
            statement = statement.param(statements::stakeholders_param(*kind), Value::List(list));
        }
        let mut by_type: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
        for id in &self.written_relationships {
            let relationship = self.relationships[id].as_ref().expect("a written relationship is held");
            by_type.entry(relationship.rel_type.as_str()).or_default().push(map([
                ("id", id.0.into()),
                ("from", relationship.from.0.into()),
                ("to", relationship.to.0.into()),
                ("props", rows::relationship_props(relationship)),
            ]));
        }
        for rel_type in RelationshipType::ALL {
            let list = by_type.remove(rel_type.as_str()).unwrap_or_default();
            statement = statement.param(statements::relationships_param(*rel_type), Value::List(list));
        }
        let interactions = self
            .interactions
            .iter()
            .map(|interaction| {
                let relationship = self
                    .relationships
                    .get(&interaction.relationship)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| not_read("the relationship of an interaction"))?;
                Ok(map([
                    ("id", interaction.id.0.into()),
                    ("from", relationship.from.0.into()),
                    ("to", relationship.to.0.into()),
                    ("props", rows::interaction_props(interaction)),
                ]))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let programs = self
            .written_programs
            .iter()
            .filter_map(|id| self.programs.as_ref().and_then(|programs| programs.get(id)))
            .map(|program| map([("id", program.id.0.into()), ("props", rows::program_props(program))]))
            .collect::<Vec<_>>();
        let statement = statement.param("programs", Value::List(programs));
        let events = self
            .events
            .iter()
            .map(|event| Ok(map([("seq", event.seq.into()), ("props", rows::event_props(event)?)])))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(statement.param("interactions", Value::List(interactions)).param("events", Value::List(events)))
    }
}

impl BatchTarget for Prepared {
    fn stakeholder(&mut self, id: StakeholderId) -> StoreResult<Option<Stakeholder>> {
        self.stakeholders.get(&id).cloned().ok_or_else(|| not_read("a stakeholder"))
    }

    fn stakeholder_with_key(&mut self, key: &str) -> StoreResult<Option<StakeholderId>> {
        self.keys.get(key).copied().ok_or_else(|| not_read("a key"))
    }

    fn next_stakeholder_id(&mut self) -> StoreResult<StakeholderId> {
        self.counter.stakeholder += 1;
        Ok(StakeholderId(self.counter.stakeholder))
    }

    fn put_stakeholder(&mut self, stakeholder: &Stakeholder) -> StoreResult<()> {
        self.keys.insert(stakeholder.key.as_str().to_owned(), Some(stakeholder.id));
        self.stakeholders.insert(stakeholder.id, Some(stakeholder.clone()));
        self.written_stakeholders.insert(stakeholder.id);
        Ok(())
    }

    fn relationship_between(
        &mut self,
        from: StakeholderId,
        to: StakeholderId,
        rel_type: RelationshipType,
    ) -> StoreResult<Option<Relationship>> {
        match self.ends.get(&(from, to, rel_type)) {
            Some(Some(id)) => self.relationship(*id),
            Some(None) => Ok(None),
            // A stakeholder this batch created has only the relationships this batch made (in `ends`).
            None if from.0 > self.read_stakeholders || to.0 > self.read_stakeholders => Ok(None),
            None => Err(not_read("a relationship by its ends")),
        }
    }

    fn relationship(&mut self, id: RelationshipId) -> StoreResult<Option<Relationship>> {
        self.relationships.get(&id).cloned().ok_or_else(|| not_read("a relationship"))
    }

    fn next_relationship_id(&mut self) -> StoreResult<RelationshipId> {
        self.counter.relationship += 1;
        Ok(RelationshipId(self.counter.relationship))
    }

    fn put_relationship(&mut self, relationship: &Relationship) -> StoreResult<()> {
        let mut relationship = relationship.clone();
        // The sums stay as stored: they change only through `put_sums`.
        if let Some(Some(stored)) = self.relationships.get(&relationship.id) {
            relationship.sums = stored.sums;
        }
        self.ends.insert((relationship.from, relationship.to, relationship.rel_type), Some(relationship.id));
        self.written_relationships.insert(relationship.id);
        self.relationships.insert(relationship.id, Some(relationship));
        Ok(())
    }

    fn interactions_with_keys(&mut self, keys: &[&str]) -> StoreResult<Vec<Interaction>> {
        let mut found = Vec::new();
        for key in keys {
            match self.interaction_keys.get(*key) {
                Some(Some(interaction)) => found.push(interaction.clone()),
                Some(None) => {}
                None => return Err(not_read("an interaction by key")),
            }
        }
        Ok(found)
    }

    fn insert_interaction(&mut self, interaction: NewInteraction) -> StoreResult<Interaction> {
        self.counter.interaction += 1;
        let interaction = interaction.with_id(InteractionId(self.counter.interaction));
        if let Some(key) = &interaction.key {
            self.interaction_keys.insert(key.as_str().to_owned(), Some(interaction.clone()));
        }
        self.interactions.push(interaction.clone());
        Ok(interaction)
    }

    fn put_sums(&mut self, id: RelationshipId, sums: &DecayedSums) -> StoreResult<()> {
        let relationship =
            self.relationships.get_mut(&id).and_then(Option::as_mut).ok_or_else(|| not_read("a relationship"))?;
        relationship.sums = *sums;
        self.written_relationships.insert(id);
        Ok(())
    }

    fn program(&mut self, id: ProgramId) -> StoreResult<Option<Program>> {
        self.programs.as_ref().map(|programs| programs.get(&id).cloned()).ok_or_else(|| not_read("a programme"))
    }

    fn programs(&mut self) -> StoreResult<Vec<Program>> {
        self.programs
            .as_ref()
            .map(|programs| programs.values().cloned().collect())
            .ok_or_else(|| not_read("programmes"))
    }

    fn put_program(&mut self, program: &Program) -> StoreResult<()> {
        self.programs.get_or_insert_with(BTreeMap::new).insert(program.id, program.clone());
        self.written_programs.insert(program.id);
        Ok(())
    }

    fn append_event(&mut self, event: PendingEvent, at: DateTime<Utc>) -> StoreResult<ChangeEvent> {
        self.counter.seq += 1;
        let event = event.commit(self.counter.seq, at);
        self.events.push(event.clone());
        Ok(event)
    }
}

//! The rules of a write batch, written once for every backend: which commands are refused and why, what each
//! command changes, and which change events it appends. A backend supplies the reads and writes through
//! [`BatchTarget`]; SQLite answers them inside its transaction, the Cypher backend from rows it fetched before
//! the batch and writes everything afterwards in one statement.

use crate::domain::program::MAX_PROGRAMS;
use crate::domain::strength::{DecayedSums, StrengthModel};
use crate::domain::{
    Applied, ChangeEvent, ChangeKind, Command, CustomerStatus, Interaction, KeyedInteraction, NewInteraction,
    NewProgram, NewStakeholder, Outcome, PendingEvent, Program, ProgramId, Relationship, RelationshipId,
    RelationshipType, RelationshipUpsert, Stakeholder, StakeholderId,
};
use crate::store::{Rejection, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// The reads and writes a batch needs from its backend, all inside one transaction (or its equivalent).
pub(crate) trait BatchTarget {
    /// The stakeholder with this id, archived or not.
    fn stakeholder(&mut self, id: StakeholderId) -> StoreResult<Option<Stakeholder>>;
    /// Whether the stakeholder with this id is archived (`None`: there is none). What only needs to know that is
    /// cheaper asking this than reading the whole record.
    fn archived(&mut self, id: StakeholderId) -> StoreResult<Option<bool>> {
        Ok(self.stakeholder(id)?.map(|stakeholder| stakeholder.is_archived()))
    }
    /// The id of the stakeholder that uses this key.
    fn stakeholder_with_key(&mut self, key: &str) -> StoreResult<Option<StakeholderId>>;
    /// The id the next created stakeholder gets.
    fn next_stakeholder_id(&mut self) -> StoreResult<StakeholderId>;
    /// Writes a stakeholder's whole record (created or changed).
    fn put_stakeholder(&mut self, stakeholder: &Stakeholder) -> StoreResult<()>;
    /// The relationship with these ends and type.
    fn relationship_between(
        &mut self,
        from: StakeholderId,
        to: StakeholderId,
        rel_type: RelationshipType,
    ) -> StoreResult<Option<Relationship>>;
    /// The relationship with this id.
    fn relationship(&mut self, id: RelationshipId) -> StoreResult<Option<Relationship>>;
    /// The id the next created relationship gets.
    fn next_relationship_id(&mut self) -> StoreResult<RelationshipId>;
    /// Writes a relationship's fields (created or changed), leaving its decayed sums as they are stored.
    fn put_relationship(&mut self, relationship: &Relationship) -> StoreResult<()>;
    /// The interactions recorded with these keys (this batch's own included), in any order.
    fn interactions_with_keys(&mut self, keys: &[&str]) -> StoreResult<Vec<Interaction>>;
    /// Records an interaction, giving it its id.
    fn insert_interaction(&mut self, interaction: NewInteraction) -> StoreResult<Interaction>;
    /// Writes a relationship's decayed sums.
    fn put_sums(&mut self, id: RelationshipId, sums: &DecayedSums) -> StoreResult<()>;
    /// The programme with this id.
    fn program(&mut self, id: ProgramId) -> StoreResult<Option<Program>>;
    /// Every programme, in id order (at most [`MAX_PROGRAMS`]): what creating one checks its key and the bound
    /// against, and where its id follows from.
    fn programs(&mut self) -> StoreResult<Vec<Program>>;
    /// Writes a programme (created).
    fn put_program(&mut self, program: &Program) -> StoreResult<()>;
    /// Appends a change event at time `at`, giving it its sequence number.
    fn append_event(&mut self, event: PendingEvent, at: DateTime<Utc>) -> StoreResult<ChangeEvent>;
}

/// A domain refusal of command `index`, naming its field.
fn refused(index: usize, error: crate::domain::Refused) -> StoreError {
    StoreError::rejected(index, error.field, Rejection::Invalid, error.message)
}

/// Whether an update made a customer come back (its lifecycle grew by a win-back).
fn won_back(before: &Stakeholder, after: &Stakeholder) -> bool {
    use crate::domain::{KindDetails, LifecycleEvent};
    match (&before.details, &after.details) {
        (KindDetails::Customer(before), KindDetails::Customer(after)) => {
            after.lifecycle().len() > before.lifecycle().len()
                && matches!(after.lifecycle().last(), Some(LifecycleEvent::WinBack { .. }))
        }
        _ => false,
    }
}

/// Applies `commands` at time `at` through `target`; the caller commits only when this returns `Ok`.
pub(crate) fn apply(
    target: &mut impl BatchTarget,
    model: &StrengthModel,
    commands: Vec<Command>,
    at: DateTime<Utc>,
) -> StoreResult<Applied> {
    let mut batch = Batch { target, model, at, events: Vec::new(), programs: None };
    let mut outcomes = Vec::with_capacity(commands.len());
    for (index, command) in commands.into_iter().enumerate() {
        outcomes.push(batch.command(index, command)?);
    }
    let Batch { target, events, .. } = batch;
    let events = events.into_iter().map(|event| target.append_event(event, at)).collect::<StoreResult<_>>()?;
    Ok(Applied { outcomes, events })
}

struct Batch<'a, T> {
    target: &'a mut T,
    /// Keeps each relationship's decayed sums as interactions are recorded.
    model: &'a StrengthModel,
    at: DateTime<Utc>,
    events: Vec<PendingEvent>,
    /// Every programme, read once for the batch when a command first needs them, with those it creates.
    programs: Option<Vec<Program>>,
}

fn not_found(command: usize, field: &str, what: &str, id: impl std::fmt::Display) -> StoreError {
    StoreError::rejected(
        command,
        field,
        Rejection::NotFound,
        format!("no {what} has id {id}; check the id, or list {what}s to find it"),
    )
}

fn archived(command: usize, id: StakeholderId) -> StoreError {
    StoreError::rejected(
        command,
        "id",
        Rejection::Conflict,
        format!("stakeholder {id} is archived and can no longer change"),
    )
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

impl<T: BatchTarget> Batch<'_, T> {
    fn command(&mut self, index: usize, command: Command) -> StoreResult<Outcome> {
        match command {
            Command::CreateStakeholder(new) => self.create_stakeholder(index, new),
            Command::UpsertStakeholder { new, patch } => match self.target.stakeholder_with_key(new.key.as_str())? {
                None => match self.create_stakeholder(index, new)? {
                    Outcome::Stakeholder(stakeholder) => {
                        Ok(Outcome::StakeholderUpserted { stakeholder, created: true, changed: false })
                    }
                    other => Ok(other),
                },
                Some(id) => self.update_by_key(index, id, new, patch),
            },
            Command::UpdateStakeholder { id, patch } => {
                let before = self.live_stakeholder(index, id)?;
                let mut after = before.clone();
                after.apply_patch(patch, self.at).map_err(|error| refused(index, error))?;
                self.target.put_stakeholder(&after)?;
                // Coming back from CHURNED through an update is a win-back, logged as one.
                let kind = if won_back(&before, &after) {
                    ChangeKind::CustomerWonBack
                } else {
                    ChangeKind::StakeholderUpdated
                };
                self.events.push(PendingEvent::stakeholder(kind, Some(&before), &after));
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
                self.target.put_stakeholder(&after)?;
                self.events.push(PendingEvent::stakeholder(ChangeKind::StakeholderArchived, Some(&before), &after));
                Ok(Outcome::Stakeholder(after))
            }
            Command::RecordCustomerExit { id, exit } => {
                self.change_customer(index, id, ChangeKind::CustomerExited, |after, at| after.record_exit(exit, at))
            }
            Command::RecordCustomerWinBack { id, date } => {
                self.change_customer(index, id, ChangeKind::CustomerWonBack, |after, at| {
                    after.record_win_back(date, at)
                })
            }
            Command::CreateProgram(new) => self.create_program(index, new).map(Outcome::Program),
            Command::UpsertProgram(new) => self.upsert_program(index, new),
            Command::MembershipByKey { customer, program, joined, left } => {
                self.membership_by_key(index, &customer, &program, joined, left)
            }
            Command::LifecycleByKey { customer, number, event, then } => {
                self.lifecycle_by_key(index, &customer, number, event, then)
            }
            Command::EnrolInProgram { program, customer, date } => {
                self.change_membership(index, program, customer, date, ChangeKind::ProgramJoined)
            }
            Command::LeaveProgram { program, customer, date } => {
                self.change_membership(index, program, customer, date, ChangeKind::ProgramLeft)
            }
            Command::UpsertRelationship(upsert) => self.upsert_relationship(index, upsert),
            Command::UpsertRelationshipByKey { from, to, upsert } => {
                let from = self.key_owner(index, &from, "fromKey")?;
                let to = self.key_owner(index, &to, "toKey")?;
                self.upsert_relationship(index, RelationshipUpsert { from, to, ..upsert })
            }
            Command::RecordInteractions(interactions) => self.record_interactions(index, interactions),
            Command::RecordInteractionsByKey(keyed) => self.record_interactions_by_key(index, keyed),
        }
    }

    /// Records interactions on relationships named by their ends' keys and type (see
    /// [`Command::RecordInteractionsByKey`]); each relationship is looked up once.
    fn record_interactions_by_key(&mut self, index: usize, keyed: Vec<KeyedInteraction>) -> StoreResult<Outcome> {
        let mut interactions = Vec::with_capacity(keyed.len());
        let mut resolved = HashMap::new();
        for (position, KeyedInteraction { from, to, rel_type, mut interaction }) in keyed.into_iter().enumerate() {
            let ends = (from, to, rel_type);
            interaction.relationship = match resolved.get(&ends) {
                Some(id) => *id,
                None => {
                    let id = self.relationship_by_key(index, position, &ends)?;
                    resolved.insert(ends, id);
                    id
                }
            };
            interactions.push(interaction);
        }
        self.record_interactions(index, interactions)
    }

    /// The relationship of type `rel_type` between the stakeholders with keys `from` and `to`; refused at
    /// `{position}.fromKey` or `{position}.toKey` when a key has no owner, at `{position}.type` when there is no
    /// such relationship.
    fn relationship_by_key(
        &mut self,
        index: usize,
        position: usize,
        (from, to, rel_type): &(crate::domain::Label, crate::domain::Label, RelationshipType),
    ) -> StoreResult<RelationshipId> {
        let from_id = self.key_owner(index, from, &format!("{position}.fromKey"))?;
        let to_id = self.key_owner(index, to, &format!("{position}.toKey"))?;
        match self.target.relationship_between(from_id, to_id, *rel_type)? {
            Some(relationship) => Ok(relationship.id),
            None => Err(StoreError::rejected(
                index,
                format!("{position}.type"),
                Rejection::NotFound,
                format!(
                    "there is no {} relationship from '{from}' to '{to}'; create it first (in the same batch or \
                     before) or fix the keys and type",
                    rel_type.as_str()
                ),
            )),
        }
    }

    /// The stakeholder that has `key` (this batch's own included); refused at `field` when there is none.
    fn key_owner(&mut self, index: usize, key: &crate::domain::Label, field: &str) -> StoreResult<StakeholderId> {
        self.target.stakeholder_with_key(key.as_str())?.ok_or_else(|| {
            StoreError::rejected(
                index,
                field,
                Rejection::NotFound,
                format!("no stakeholder has key '{key}'; create it first (in the same batch or before) or fix the key"),
            )
        })
    }

    /// Makes stakeholder `id`, which has `new`'s key, what `new` describes: refused when it is archived or of
    /// another kind; nothing written or logged when nothing differs.
    fn update_by_key(
        &mut self,
        index: usize,
        id: StakeholderId,
        new: NewStakeholder,
        patch: crate::domain::StakeholderPatch,
    ) -> StoreResult<Outcome> {
        let before = self.stakeholder(index, id)?;
        if before.is_archived() {
            return Err(StoreError::rejected(
                index,
                "key",
                Rejection::Conflict,
                format!(
                    "key '{}' belongs to stakeholder {id}, which is archived and can no longer change; use \
                     another key",
                    new.key
                ),
            ));
        }
        if before.kind() != new.kind() {
            return Err(StoreError::rejected(
                index,
                "key",
                Rejection::Conflict,
                format!(
                    "key '{}' belongs to stakeholder {id}, a {}, not a {}; send it as a {} or use another key",
                    new.key,
                    before.kind().as_str(),
                    new.kind().as_str(),
                    before.kind().as_str()
                ),
            ));
        }
        // A customer who left comes back only when the sender says so: a stale record's "ACTIVE" is no win-back.
        if let (
            Some(CustomerStatus::Churned),
            Some(crate::domain::DetailsPatch::Customer { status: Some(status), .. }),
        ) = (before.details.customer_status(), &patch.details)
        {
            if !matches!(status, CustomerStatus::Churned | CustomerStatus::WonBack) {
                return Err(StoreError::rejected(
                    index,
                    "status",
                    Rejection::Conflict,
                    format!(
                        "customer '{}' has left (its exit is recorded), so an upsert does not make it {status}; \
                         send WON_BACK to record that it came back, or leave the status out",
                        new.key
                    ),
                ));
            }
        }
        let mut after = before.clone();
        after.apply_patch(patch, self.at).map_err(|error| refused(index, error))?;
        let unchanged = Stakeholder { updated_at: before.updated_at, ..after.clone() } == before;
        if unchanged {
            return Ok(Outcome::StakeholderUpserted { stakeholder: before, created: false, changed: false });
        }
        self.target.put_stakeholder(&after)?;
        let kind = if won_back(&before, &after) { ChangeKind::CustomerWonBack } else { ChangeKind::StakeholderUpdated };
        self.events.push(PendingEvent::stakeholder(kind, Some(&before), &after));
        Ok(Outcome::StakeholderUpserted { stakeholder: after, created: false, changed: true })
    }

    /// Applies a lifecycle change to live customer `id` and logs it as `kind`.
    fn change_customer(
        &mut self,
        index: usize,
        id: StakeholderId,
        kind: ChangeKind,
        change: impl FnOnce(&mut Stakeholder, DateTime<Utc>) -> Result<(), crate::domain::Refused>,
    ) -> StoreResult<Outcome> {
        let before = self.live_stakeholder(index, id)?;
        let mut after = before.clone();
        change(&mut after, self.at).map_err(|error| refused(index, error))?;
        self.target.put_stakeholder(&after)?;
        self.events.push(PendingEvent::stakeholder(kind, Some(&before), &after));
        Ok(Outcome::Stakeholder(after))
    }

    /// Every programme (this batch's own included), read from the target once per batch.
    fn programs(&mut self) -> StoreResult<&[Program]> {
        if self.programs.is_none() {
            self.programs = Some(self.target.programs()?);
        }
        Ok(self.programs.get_or_insert_with(Vec::new))
    }

    /// The programme with key `key`, if there is one.
    fn program_with_key(&mut self, key: &crate::domain::Label) -> StoreResult<Option<Program>> {
        Ok(self.programs()?.iter().find(|program| program.key == *key).cloned())
    }

    /// Creates a programme: its key unused by any other programme, at most [`MAX_PROGRAMS`] in all.
    fn create_program(&mut self, index: usize, new: NewProgram) -> StoreResult<Program> {
        let programs = self.programs()?;
        if let Some(existing) = programs.iter().find(|program| program.key == new.key) {
            return Err(StoreError::rejected(
                index,
                "key",
                Rejection::Conflict,
                format!("key '{}' is already used by programme {}; choose another key", new.key, existing.id),
            ));
        }
        if programs.len() >= MAX_PROGRAMS {
            return Err(StoreError::rejected(
                index,
                "key",
                Rejection::Conflict,
                format!("there are {} programmes, the most one graph keeps; reuse one of them", programs.len()),
            ));
        }
        let id = ProgramId(programs.iter().map(|program| program.id.0).max().unwrap_or(0) + 1);
        let program = new.into_program(id, self.at);
        self.programs.get_or_insert_with(Vec::new).push(program.clone());
        self.target.put_program(&program)?;
        self.events.push(PendingEvent::program_created(&program));
        Ok(program)
    }

    fn upsert_program(&mut self, index: usize, new: NewProgram) -> StoreResult<Outcome> {
        match self.program_with_key(&new.key)? {
            Some(program) if program.name == new.name && program.kind == new.kind && program.markets == new.markets => {
                Ok(Outcome::ProgramUpserted { program, created: false })
            }
            Some(program) => Err(StoreError::rejected(
                index,
                "key",
                Rejection::Conflict,
                format!(
                    "key '{}' is programme {}, with another name, kind or markets; a programme does not change once \
                     created: give it as it is, or use another key",
                    new.key, program.id
                ),
            )),
            None => Ok(Outcome::ProgramUpserted { program: self.create_program(index, new)?, created: true }),
        }
    }

    /// Event `number` of a customer's lifecycle by its key (see [`Command::LifecycleByKey`]).
    fn lifecycle_by_key(
        &mut self,
        index: usize,
        customer: &crate::domain::Label,
        number: usize,
        event: crate::domain::LifecycleEvent,
        then: Option<crate::domain::CustomerStatus>,
    ) -> StoreResult<Outcome> {
        use crate::domain::{CustomerExit, KindDetails, LifecycleEvent};
        let id = self.key_owner(index, customer, "customerKey")?;
        let before = self.live_stakeholder(index, id).map_err(|error| retarget(error, "customerKey"))?;
        let KindDetails::Customer(details) = &before.details else {
            return Err(StoreError::rejected(
                index,
                "customerKey",
                Rejection::Invalid,
                format!("'{customer}' is a {}; only customers have exits and win-backs", before.kind().as_str()),
            ));
        };
        let recorded = details.lifecycle().into_owned();
        let (mut current, recorded_now) = match recorded.get(number.saturating_sub(1)) {
            Some(stored) if *stored == event => (before, false),
            Some(stored) => {
                return Err(StoreError::rejected(
                    index,
                    "event",
                    Rejection::Conflict,
                    format!(
                        "the customer's lifecycle holds {} on {} as event {number}; a recorded exit or win-back does \
                         not change: give the lifecycle as it is recorded, then what follows",
                        stored.name(),
                        stored.date()
                    ),
                ));
            }
            None if recorded.len() + 1 < number || number == 0 => {
                return Err(StoreError::rejected(
                    index,
                    "event",
                    Rejection::Invalid,
                    format!(
                        "this is event {number} of the customer's lifecycle, which holds {} events; give its whole \
                         lifecycle, in date order",
                        recorded.len()
                    ),
                ));
            }
            None => {
                let outcome = match event {
                    LifecycleEvent::Exit { reason, date } => {
                        self.change_customer(index, id, ChangeKind::CustomerExited, |after, at| {
                            after.record_exit(CustomerExit { reason, date }, at)
                        })?
                    }
                    LifecycleEvent::WinBack { date } => {
                        self.change_customer(index, id, ChangeKind::CustomerWonBack, |after, at| {
                            after.record_win_back(date, at)
                        })?
                    }
                };
                let Outcome::Stakeholder(after) = outcome else { unreachable!("a customer change gives the customer") };
                (after, true)
            }
        };
        let status = match &current.details {
            KindDetails::Customer(details) => Some(details.status),
            _ => None,
        };
        let status_set = match then.filter(|then| Some(*then) != status) {
            Some(then) => {
                let before = current.clone();
                let patch = crate::domain::StakeholderPatch::customer_status(then);
                current.apply_patch(patch, self.at).map_err(|error| refused(index, error))?;
                self.target.put_stakeholder(&current)?;
                self.events.push(PendingEvent::stakeholder(ChangeKind::StakeholderUpdated, Some(&before), &current));
                true
            }
            None => false,
        };
        Ok(Outcome::Lifecycle { customer: current, recorded: recorded_now, status_set })
    }

    /// A customer's membership by keys (see [`Command::MembershipByKey`]).
    fn membership_by_key(
        &mut self,
        index: usize,
        customer: &crate::domain::Label,
        program: &crate::domain::Label,
        joined: chrono::NaiveDate,
        left: Option<chrono::NaiveDate>,
    ) -> StoreResult<Outcome> {
        let id = self.key_owner(index, customer, "customerKey")?;
        let Some(program_id) = self.program_with_key(program)?.map(|found| found.id) else {
            return Err(StoreError::rejected(
                index,
                "programKey",
                Rejection::NotFound,
                format!(
                    "no programme has key '{program}'; create it first (in the same batch or before) or fix the key"
                ),
            ));
        };
        let before = self.live_stakeholder(index, id).map_err(|error| retarget(error, "customerKey"))?;
        let recorded = match &before.details {
            crate::domain::KindDetails::Customer(details) => details
                .memberships
                .iter()
                .find(|membership| membership.program == program_id && membership.joined == joined)
                .cloned(),
            _ => None,
        };
        let mut after = before.clone();
        let created = match recorded {
            Some(membership) if membership.left == left => {
                return Ok(Outcome::Membership { customer: before, created: false, changed: false });
            }
            Some(membership) if membership.left.is_some() => {
                return Err(StoreError::rejected(
                    index,
                    "left",
                    Rejection::Conflict,
                    format!(
                        "the customer left programme '{program}' on {}; a recorded leaving does not change",
                        membership.left.map(|day| day.to_string()).unwrap_or_default()
                    ),
                ));
            }
            Some(_) => false,
            None => {
                after.enrol_in_program(program_id, joined, self.at).map_err(|error| refused(index, error))?;
                self.events.push(PendingEvent::membership(
                    ChangeKind::ProgramJoined,
                    program_id,
                    joined,
                    &before,
                    &after,
                ));
                true
            }
        };
        if let Some(day) = left {
            let enrolled = after.clone();
            after.leave_program(program_id, day, self.at).map_err(|error| refused(index, error))?;
            self.events.push(PendingEvent::membership(ChangeKind::ProgramLeft, program_id, day, &enrolled, &after));
        }
        self.target.put_stakeholder(&after)?;
        Ok(Outcome::Membership { customer: after, created, changed: !created })
    }

    /// Enrols live customer `customer` in programme `program` on `date`, or records that it left (by `kind`).
    fn change_membership(
        &mut self,
        index: usize,
        program: ProgramId,
        customer: StakeholderId,
        date: chrono::NaiveDate,
        kind: ChangeKind,
    ) -> StoreResult<Outcome> {
        if self.target.program(program)?.is_none() {
            return Err(not_found(index, "programId", "programme", program));
        }
        let before = self.live_stakeholder(index, customer).map_err(|error| retarget(error, "customerId"))?;
        let mut after = before.clone();
        let changed = match kind {
            ChangeKind::ProgramJoined => after.enrol_in_program(program, date, self.at),
            _ => after.leave_program(program, date, self.at),
        };
        changed.map_err(|error| refused(index, error))?;
        self.target.put_stakeholder(&after)?;
        self.events.push(PendingEvent::membership(kind, program, date, &before, &after));
        Ok(Outcome::Stakeholder(after))
    }

    fn stakeholder(&mut self, index: usize, id: StakeholderId) -> StoreResult<Stakeholder> {
        self.target.stakeholder(id)?.ok_or_else(|| not_found(index, "id", "stakeholder", id))
    }

    fn live_stakeholder(&mut self, index: usize, id: StakeholderId) -> StoreResult<Stakeholder> {
        let stakeholder = self.stakeholder(index, id)?;
        if stakeholder.is_archived() {
            return Err(archived(index, id));
        }
        Ok(stakeholder)
    }

    /// Refuses unless stakeholder `id` exists and is live (without reading its record).
    fn check_live(&mut self, index: usize, id: StakeholderId) -> StoreResult<()> {
        match self.target.archived(id)? {
            None => Err(not_found(index, "id", "stakeholder", id)),
            Some(true) => Err(archived(index, id)),
            Some(false) => Ok(()),
        }
    }

    fn create_stakeholder(&mut self, index: usize, new: NewStakeholder) -> StoreResult<Outcome> {
        if let crate::domain::KindDetails::Customer(customer) = &new.details {
            customer.check_new(self.at.date_naive()).map_err(|error| refused(index, error))?;
        }
        if let Some(existing) = self.target.stakeholder_with_key(new.key.as_str())? {
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
        let id = self.target.next_stakeholder_id()?;
        let stakeholder = new.into_stakeholder(id, self.at);
        self.target.put_stakeholder(&stakeholder)?;
        self.events.push(PendingEvent::stakeholder(ChangeKind::StakeholderCreated, None, &stakeholder));
        Ok(Outcome::Stakeholder(stakeholder))
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
        let (relationship, created, changed) =
            match self.target.relationship_between(upsert.from, upsert.to, upsert.rel_type)? {
                Some(before) => {
                    let mut after = before.clone();
                    upsert.update(&mut after, self.at);
                    // Sent again as it is stored: nothing to write or log.
                    if (Relationship { updated_at: before.updated_at, ..after.clone() }) == before {
                        return Ok(Outcome::Relationship { relationship: before, created: false, changed: false });
                    }
                    self.target.put_relationship(&after)?;
                    self.events.push(PendingEvent::relationship(Some(&before), &after));
                    (after, false, true)
                }
                None => {
                    let id = self.target.next_relationship_id()?;
                    let created = upsert.create(id, self.at);
                    self.target.put_relationship(&created)?;
                    self.events.push(PendingEvent::relationship(None, &created));
                    (created, true, false)
                }
            };
        Ok(Outcome::Relationship { relationship, created, changed })
    }

    fn record_interactions(&mut self, index: usize, interactions: Vec<NewInteraction>) -> StoreResult<Outcome> {
        let mut relationships: BTreeMap<RelationshipId, Relationship> = BTreeMap::new();
        let mut live = std::collections::BTreeSet::new();
        // What each interaction is: one already recorded under its key (nothing to do), or one to record.
        let mut found: Vec<Option<Interaction>> = Vec::with_capacity(interactions.len());
        let mut keys = HashMap::new();
        let wanted: Vec<&str> =
            interactions.iter().filter_map(|interaction| Some(interaction.key.as_ref()?.as_str())).collect();
        let mut recorded: HashMap<String, Interaction> = if wanted.is_empty() {
            HashMap::new()
        } else {
            let found = self.target.interactions_with_keys(&wanted)?;
            found.into_iter().filter_map(|stored| Some((stored.key.as_ref()?.as_str().to_owned(), stored))).collect()
        };
        for (position, interaction) in interactions.iter().enumerate() {
            if let Some(key) = &interaction.key {
                if let Some(first) = keys.insert(key.as_str(), position) {
                    return Err(StoreError::rejected(
                        index,
                        format!("{position}.key"),
                        Rejection::Conflict,
                        format!("key '{key}' is also given to interaction {first}; give each interaction its own key"),
                    ));
                }
                if let Some(stored) = recorded.remove(key.as_str()) {
                    if let Some(field) = interaction.differs_from(&stored) {
                        return Err(StoreError::rejected(
                            index,
                            format!("{position}.key"),
                            Rejection::Conflict,
                            format!(
                                "key '{key}' is already recorded (interaction {}) with another {field}; a recorded \
                                 interaction does not change: give a new interaction a new key, or send the \
                                 recorded one as it was",
                                stored.id
                            ),
                        ));
                    }
                    found.push(Some(stored));
                    continue;
                }
            }
            found.push(None);
            interaction
                .check_time(self.at)
                .map_err(|error| StoreError::rejected(index, format!("{position}.at"), Rejection::Invalid, error.0))?;
            if relationships.contains_key(&interaction.relationship) {
                continue;
            }
            let relationship = self.target.relationship(interaction.relationship)?.ok_or_else(|| {
                not_found(index, &format!("{position}.relationship"), "relationship", interaction.relationship)
            })?;
            // Archived stakeholders no longer change, and neither does their history.
            for end in [relationship.from, relationship.to] {
                if !live.contains(&end) {
                    self.check_live(index, end)
                        .map_err(|error| retarget(error, &format!("{position}.relationship")))?;
                    live.insert(end);
                }
            }
            relationships.insert(relationship.id, relationship);
        }
        let mut all = Vec::with_capacity(interactions.len());
        let mut new = Vec::with_capacity(interactions.len());
        for (interaction, found) in interactions.into_iter().zip(found) {
            new.push(found.is_none());
            all.push(match found {
                Some(stored) => stored,
                None => self.target.insert_interaction(interaction)?,
            });
        }
        let mut by_relationship: BTreeMap<RelationshipId, Vec<&Interaction>> = BTreeMap::new();
        for interaction in all.iter().zip(&new).filter(|(_, new)| **new).map(|(interaction, _)| interaction) {
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
        let recorded = new.iter().filter(|new| **new).count();
        for relationship in relationships.values() {
            self.target.put_sums(relationship.id, &relationship.sums)?;
        }
        for (id, on_it) in &by_relationship {
            self.events.push(PendingEvent::interactions(&relationships[id], on_it));
        }
        Ok(Outcome::Interactions { interactions: all, recorded })
    }
}

//! The write language (commands) and the change log it produces (one event per command).

use super::program::{NewProgram, Program};
use super::relationship::{Interaction, NewInteraction, Relationship, RelationshipUpsert};
use super::stakeholder::{CustomerExit, LifecycleEvent, NewStakeholder, Stakeholder, StakeholderPatch};
use super::values::{InteractionId, Label, ProgramId, RelationshipId, StakeholderId};
use super::vocabulary::{CustomerStatus, RelationshipType, Topic};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// One change to the graph. A batch of commands is applied all-or-nothing, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Create a stakeholder.
    CreateStakeholder(NewStakeholder),
    /// Create the stakeholder `new` (its key not used yet), or, when a live one of the same kind has the key,
    /// change that one with `patch` (the fields the sender gave; the others keep their values; a customer who left
    /// comes back only through status WON_BACK). Nothing is written or logged when nothing differs, so sending the
    /// same record again is a no-op.
    UpsertStakeholder {
        /// The record to create.
        new: NewStakeholder,
        /// What to change on the existing stakeholder with `new`'s key.
        patch: StakeholderPatch,
    },
    /// Change a stakeholder's fields.
    UpdateStakeholder {
        /// Which one.
        id: StakeholderId,
        /// What changes.
        patch: StakeholderPatch,
    },
    /// Archive a stakeholder (kept, never deleted).
    ArchiveStakeholder {
        /// Which one.
        id: StakeholderId,
    },
    /// Create or change a relationship.
    UpsertRelationship(RelationshipUpsert),
    /// Create or change the relationship between the stakeholders with these keys (resolved inside the batch, so
    /// one batch may create stakeholders and their relationships); `upsert`'s own `from` and `to` are not read.
    UpsertRelationshipByKey {
        /// The key of the stakeholder it starts at.
        from: Label,
        /// The key of the stakeholder it ends at.
        to: Label,
        /// Its type and fields.
        upsert: RelationshipUpsert,
    },
    /// Record interactions, possibly on several relationships.
    RecordInteractions(Vec<NewInteraction>),
    /// Record interactions on the relationships with these ends (by key) and types, resolved inside the batch like
    /// [`Command::UpsertRelationshipByKey`]'s; each interaction's own `relationship` is not read.
    RecordInteractionsByKey(Vec<KeyedInteraction>),
    /// Record that a customer left.
    RecordCustomerExit {
        /// Which customer.
        id: StakeholderId,
        /// Why and when.
        exit: CustomerExit,
    },
    /// Record that a customer who left came back.
    RecordCustomerWinBack {
        /// Which customer.
        id: StakeholderId,
        /// The day it came back.
        date: NaiveDate,
    },
    /// Create a relationship-marketing programme.
    CreateProgram(NewProgram),
    /// Create a programme, or find it as given by its key (nothing written or logged); a programme with the key
    /// and other fields is refused, since a programme does not change once created.
    UpsertProgram(NewProgram),
    /// A customer's membership of a programme, both by key (resolved inside the batch): enrolled on `joined` and,
    /// when `left` is given, no longer a member from that day. A membership found as given changes nothing; one
    /// found without `left` is ended on `left`.
    MembershipByKey {
        /// The customer's key.
        customer: Label,
        /// The programme's key.
        program: Label,
        /// The day it joined.
        joined: NaiveDate,
        /// The day it left, if it has.
        left: Option<NaiveDate>,
    },
    /// Event `number` (from 1) of a customer's lifecycle, by the customer's key (resolved inside the batch): an
    /// exit or win-back recorded as the mutations record them when the lifecycle holds the events before it; found
    /// as given, nothing; another event in its place is refused (a recorded lifecycle is only added to). Then, when
    /// `then` is given (the status a customer was moved to after its last exit or win-back), the status is set to
    /// it unless it has it.
    LifecycleByKey {
        /// The customer's key.
        customer: Label,
        /// Its place in the customer's lifecycle, from 1.
        number: usize,
        /// The exit or win-back.
        event: LifecycleEvent,
        /// The status to leave the customer in after this event, if not the one the event gives.
        then: Option<CustomerStatus>,
    },
    /// Enrol a customer in a programme.
    EnrolInProgram {
        /// Which programme.
        program: ProgramId,
        /// Which customer.
        customer: StakeholderId,
        /// The day it joined.
        date: NaiveDate,
    },
    /// Record that a customer left a programme.
    LeaveProgram {
        /// Which programme.
        program: ProgramId,
        /// Which customer.
        customer: StakeholderId,
        /// The day it left.
        date: NaiveDate,
    },
}

/// An interaction on the relationship of type `rel_type` from the stakeholder with key `from` to the one with key
/// `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedInteraction {
    /// The key of the stakeholder the relationship starts at.
    pub from: Label,
    /// The key of the stakeholder it ends at.
    pub to: Label,
    /// Its type.
    pub rel_type: RelationshipType,
    /// The interaction.
    pub interaction: NewInteraction,
}

/// What one command produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The stakeholder as it is after the command.
    Stakeholder(Stakeholder),
    /// The stakeholder as it is after an upsert by key, and what the upsert did.
    StakeholderUpserted {
        /// Its state after the upsert.
        stakeholder: Stakeholder,
        /// Whether the upsert created it.
        created: bool,
        /// Whether the upsert changed it (false when it created it, or found it as given).
        changed: bool,
    },
    /// The relationship after the command, and whether it was new.
    Relationship {
        /// Its state after the upsert.
        relationship: Relationship,
        /// Whether the upsert created it.
        created: bool,
        /// Whether the upsert changed it (false when it created it, or found it as given: then nothing was
        /// written or logged).
        changed: bool,
    },
    /// The interactions, in input order: each one recorded by the command, or, for one whose key was already
    /// recorded, as it was recorded then.
    Interactions {
        /// Every interaction of the command.
        interactions: Vec<Interaction>,
        /// How many of them the command recorded (the others' keys were recorded before, and nothing was written or
        /// logged for them).
        recorded: usize,
    },
    /// The programme created.
    Program(Program),
    /// The programme an upsert by key created or found.
    ProgramUpserted {
        /// The programme.
        program: Program,
        /// Whether the upsert created it (otherwise it was found as given: nothing written or logged).
        created: bool,
    },
    /// The customer after a lifecycle event by key, and what it did.
    Lifecycle {
        /// The customer.
        customer: Stakeholder,
        /// Whether the event was recorded (otherwise it was found as given).
        recorded: bool,
        /// Whether the status was set afterwards.
        status_set: bool,
    },
    /// The customer after a membership by key, and what it did.
    Membership {
        /// The customer.
        customer: Stakeholder,
        /// Whether the customer was enrolled.
        created: bool,
        /// Whether a recorded membership was ended.
        changed: bool,
    },
}

/// What a committed batch produced: one outcome per command, and the change events appended with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// One per command, in order.
    pub outcomes: Vec<Outcome>,
    /// The change log entries written in the same transaction.
    pub events: Vec<ChangeEvent>,
}

/// What kind of change an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// A stakeholder was created.
    StakeholderCreated,
    /// A stakeholder's fields changed.
    StakeholderUpdated,
    /// A stakeholder was archived.
    StakeholderArchived,
    /// A relationship was created.
    RelationshipCreated,
    /// A relationship's fields changed.
    RelationshipUpdated,
    /// Interactions were recorded on a relationship.
    InteractionsRecorded,
    /// A customer exited.
    CustomerExited,
    /// A customer who had left came back.
    CustomerWonBack,
    /// A relationship-marketing programme was created.
    ProgramCreated,
    /// A customer joined a programme.
    ProgramJoined,
    /// A customer left a programme.
    ProgramLeft,
}

impl ChangeKind {
    /// Whether a change of this kind writes the rows of the stakeholders it names (the others name them only as
    /// the ends of the relationship that changed).
    pub fn changes_stakeholders(self) -> bool {
        match self {
            ChangeKind::StakeholderCreated
            | ChangeKind::StakeholderUpdated
            | ChangeKind::StakeholderArchived
            | ChangeKind::CustomerExited
            | ChangeKind::CustomerWonBack
            | ChangeKind::ProgramJoined
            | ChangeKind::ProgramLeft => true,
            ChangeKind::RelationshipCreated
            | ChangeKind::RelationshipUpdated
            | ChangeKind::InteractionsRecorded
            | ChangeKind::ProgramCreated => false,
        }
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::StakeholderCreated => "STAKEHOLDER_CREATED",
            ChangeKind::StakeholderUpdated => "STAKEHOLDER_UPDATED",
            ChangeKind::StakeholderArchived => "STAKEHOLDER_ARCHIVED",
            ChangeKind::RelationshipCreated => "RELATIONSHIP_CREATED",
            ChangeKind::RelationshipUpdated => "RELATIONSHIP_UPDATED",
            ChangeKind::InteractionsRecorded => "INTERACTIONS_RECORDED",
            ChangeKind::CustomerExited => "CUSTOMER_EXITED",
            ChangeKind::CustomerWonBack => "CUSTOMER_WON_BACK",
            ChangeKind::ProgramCreated => "PROGRAM_CREATED",
            ChangeKind::ProgramJoined => "PROGRAM_JOINED",
            ChangeKind::ProgramLeft => "PROGRAM_LEFT",
        }
    }
}

/// An entry of the durable change log (transactional outbox): written in the same transaction as the change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Monotonically increasing position in the log; the resume cursor.
    pub seq: i64,
    /// When the change was committed.
    pub at: DateTime<Utc>,
    /// What changed.
    pub kind: ChangeKind,
    /// The stakeholders involved.
    pub stakeholders: Vec<StakeholderId>,
    /// The relationship involved, if any.
    pub relationship: Option<RelationshipId>,
    /// The records before and after, or what was recorded.
    pub payload: Change,
}

impl ChangeEvent {
    /// Whether the stakeholder record this event holds was private before or after the change (a relationship's,
    /// an interaction's or a programme's event holds none).
    pub fn records_a_private_stakeholder(&self) -> bool {
        let (before, after) = self.payload.stakeholder();
        before.is_some_and(|before| before.private) || after.is_some_and(|after| after.private)
    }
}

/// What a change event records: the records before and after the change, or what was recorded. Its stored form is
/// the store's own (`store::record`), not this type.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A stakeholder created (no `before`), changed, archived, exited or won back.
    Stakeholder {
        /// The stakeholder before the change; none when the change created it.
        before: Option<Box<Stakeholder>>,
        /// The stakeholder after it.
        after: Box<Stakeholder>,
    },
    /// A customer who joined or left a programme.
    Membership {
        /// The programme.
        program: ProgramId,
        /// The day it joined or left.
        date: NaiveDate,
        /// The customer before.
        before: Box<Stakeholder>,
        /// The customer after.
        after: Box<Stakeholder>,
    },
    /// A relationship created (no `before`) or changed.
    Relationship {
        /// The relationship before the change; none when the change created it.
        before: Option<Box<Relationship>>,
        /// The relationship after it.
        after: Box<Relationship>,
    },
    /// Interactions recorded on one relationship.
    Interactions {
        /// Their ids, in the order they were recorded.
        ids: Vec<InteractionId>,
        /// What each was about, beside its id, when any has a topic (entries written before topics have none).
        topics: Option<Vec<Option<Topic>>>,
    },
    /// A programme created.
    Program(Box<Program>),
}

impl Change {
    /// The stakeholder before and after, for a stakeholder's change or a membership's (none for the others).
    pub fn stakeholder(&self) -> (Option<&Stakeholder>, Option<&Stakeholder>) {
        match self {
            Change::Stakeholder { before, after } => (before.as_deref(), Some(after)),
            Change::Membership { before, after, .. } => (Some(before), Some(after)),
            _ => (None, None),
        }
    }

    /// The relationship before and after, for a relationship's change (none for the others).
    pub fn relationship(&self) -> (Option<&Relationship>, Option<&Relationship>) {
        match self {
            Change::Relationship { before, after } => (before.as_deref(), Some(after)),
            _ => (None, None),
        }
    }
}

/// A change event before the store has given it its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    /// What changed.
    pub kind: ChangeKind,
    /// The stakeholders involved.
    pub stakeholders: Vec<StakeholderId>,
    /// The relationship involved, if any.
    pub relationship: Option<RelationshipId>,
    /// The records before and after, or what was recorded.
    pub payload: Change,
}

impl PendingEvent {
    /// The event for a stakeholder that was created, changed, archived or exited.
    pub fn stakeholder(kind: ChangeKind, before: Option<&Stakeholder>, after: &Stakeholder) -> Self {
        Self {
            kind,
            stakeholders: vec![after.id],
            relationship: None,
            payload: Change::Stakeholder {
                before: before.map(|before| Box::new(before.clone())),
                after: Box::new(after.clone()),
            },
        }
    }

    /// The event for a programme that was created: it names no stakeholder.
    pub fn program_created(program: &Program) -> Self {
        Self {
            kind: ChangeKind::ProgramCreated,
            stakeholders: Vec::new(),
            relationship: None,
            payload: Change::Program(Box::new(program.clone())),
        }
    }

    /// The event for a customer who joined or left (`kind`) programme `program` on `date`: the customer before and
    /// after, with the programme's id and the day.
    pub fn membership(
        kind: ChangeKind,
        program: ProgramId,
        date: NaiveDate,
        before: &Stakeholder,
        after: &Stakeholder,
    ) -> Self {
        Self {
            kind,
            stakeholders: vec![after.id],
            relationship: None,
            payload: Change::Membership {
                program,
                date,
                before: Box::new(before.clone()),
                after: Box::new(after.clone()),
            },
        }
    }

    /// The event for a relationship that was created or changed. It holds the relationship's fields without its
    /// decayed sums, which the log does not keep (interactions change them, and their own events say so), so that
    /// an event reads back from the log as it was written.
    pub fn relationship(before: Option<&Relationship>, after: &Relationship) -> Self {
        let kind = if before.is_some() { ChangeKind::RelationshipUpdated } else { ChangeKind::RelationshipCreated };
        let fields =
            |relationship: &Relationship| Box::new(Relationship { sums: Default::default(), ..relationship.clone() });
        Self {
            kind,
            stakeholders: vec![after.from, after.to],
            relationship: Some(after.id),
            payload: Change::Relationship { before: before.map(fields), after: fields(after) },
        }
    }

    /// The event for interactions recorded on one relationship.
    pub fn interactions(relationship: &Relationship, recorded: &[&Interaction]) -> Self {
        let topics = recorded
            .iter()
            .any(|interaction| interaction.topic.is_some())
            .then(|| recorded.iter().map(|interaction| interaction.topic).collect());
        Self {
            kind: ChangeKind::InteractionsRecorded,
            stakeholders: vec![relationship.from, relationship.to],
            relationship: Some(relationship.id),
            payload: Change::Interactions { ids: recorded.iter().map(|interaction| interaction.id).collect(), topics },
        }
    }

    /// The committed event with its sequence number.
    pub fn commit(self, seq: i64, at: DateTime<Utc>) -> ChangeEvent {
        ChangeEvent {
            seq,
            at,
            kind: self.kind,
            stakeholders: self.stakeholders,
            relationship: self.relationship,
            payload: self.payload,
        }
    }
}

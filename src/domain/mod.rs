//! Pure domain types and rules: stakeholders, relationships, interactions, the write language and the change log.
//! No I/O, no async, no GraphQL, HTTP or database types.

pub mod access;
pub mod change;
pub mod churn;
pub mod program;
pub mod relationship;
pub mod stakeholder;
pub mod strength;
pub mod values;
pub mod vocabulary;
pub mod webhook;

pub use access::Role;
pub use change::{Applied, Change, ChangeEvent, ChangeKind, Command, KeyedInteraction, Outcome, PendingEvent};
pub use program::{Membership, NewProgram, Program};
pub use relationship::{Interaction, NewInteraction, Relationship, RelationshipUpsert};
pub use stakeholder::{
    CustomerDetails, CustomerExit, DetailsPatch, KindDetails, LifecycleEvent, NewStakeholder, PerceivedValue, Refused,
    Stakeholder, StakeholderPatch,
};
pub use values::{
    parse_note, Amount, InteractionId, InvalidValue, Label, Probability, ProgramId, RelationshipId, Sentiment,
    StakeholderId, WebhookId,
};
pub use vocabulary::{
    Basis, Bond, BondSet, Channel, CustomerStatus, Direction, ExitReason, Level, Market, MarketSet, Mendelow,
    ProgramKind, RelationshipType, StakeholderKind, Topic, TopicSet,
};

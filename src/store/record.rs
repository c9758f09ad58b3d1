//! The stored forms of a stakeholder's record and of a change event's payload: JSON of versioned types of their
//! own, apart from the domain's records ([`Stakeholder`], [`Relationship`], [`Program`], [`Change`]) and the API's,
//! so that either can change without silently changing what is in the database or how what earlier versions wrote
//! is read. Both backends keep these texts (SQLite in `stakeholder.record` and `change_event.payload`, Cypher in
//! the `record` of a `:Stakeholder` node and the `payload` of a `:ChangeEvent` node).
//!
//! Values (labels, amounts, probabilities, dates, the vocabulary's names, market and bond sets) are stored in their
//! own spelling, which the SQLite columns and the import formats share; the records around them are the `…V1`
//! types here. Version 1 is what every version so far has written, and it carries no version tag: a new stored
//! version is a new type written with `"version"` as its first member (as [`super::StoredWebhook`] is), told apart
//! by [`is_tagged`], with a conversion from version 1. The golden files in `golden/` pin version 1 byte for byte.

use super::{StoreError, StoreResult};
use crate::domain::change::Change;
use crate::domain::program::Membership;
use crate::domain::{
    Amount, Basis, BondSet, ChangeKind, CustomerDetails, CustomerExit, CustomerStatus, ExitReason, InteractionId,
    KindDetails, Label, Level, LifecycleEvent, MarketSet, PerceivedValue, Probability, Program, ProgramId, ProgramKind,
    Relationship, RelationshipId, RelationshipType, Stakeholder, StakeholderId, Topic,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The text of a stakeholder's stored record (the newest version).
pub fn write_stakeholder(stakeholder: &Stakeholder) -> StoreResult<String> {
    serde_json::to_string(&StakeholderV1::from(stakeholder))
        .map_err(|error| StoreError::Internal(format!("writing stakeholder {}: {error}", stakeholder.id.0)))
}

/// The stakeholder in a stored record of any version.
pub fn read_stakeholder(text: &str) -> StoreResult<Stakeholder> {
    refuse_tagged(text, "stakeholder record")?;
    let stored: StakeholderV1 = serde_json::from_str(text)
        .map_err(|error| StoreError::Internal(format!("a stakeholder record this version cannot read: {error}")))?;
    Ok(stored.into())
}

/// The text of a change event's stored payload (the newest version). Its members are in name order at every level,
/// as version 1 has always been written.
pub fn write_change(change: &Change) -> StoreResult<String> {
    Ok(change_json(change)?.to_string())
}

/// The payload as version 1's JSON value: what the deprecated `ChangeEvent.payload` field returns.
pub fn change_json(change: &Change) -> StoreResult<serde_json::Value> {
    let value = match change {
        Change::Stakeholder { before, after } => serde_json::to_value(StakeholderChangeV1 {
            before: before.as_deref().map(StakeholderV1::from),
            after: StakeholderV1::from(&**after),
        }),
        Change::Membership { program, date, before, after } => serde_json::to_value(MembershipChangeV1 {
            before: StakeholderV1::from(&**before),
            after: StakeholderV1::from(&**after),
            program: program.0,
            date: *date,
        }),
        Change::Relationship { before, after } => serde_json::to_value(RelationshipChangeV1 {
            before: before.as_deref().map(RelationshipV1::from),
            after: RelationshipV1::from(&**after),
        }),
        Change::Interactions { ids, topics } => serde_json::to_value(InteractionsV1 {
            interactions: ids.iter().map(|id| id.0).collect(),
            topics: topics.clone(),
        }),
        Change::Program(program) => serde_json::to_value(ProgramChangeV1 { program: ProgramV1::from(&**program) }),
    };
    value.map_err(|error| StoreError::Internal(format!("writing a change payload: {error}")))
}

/// The payload of a change of `kind` in stored text of any version.
pub fn read_change(kind: ChangeKind, text: &str) -> StoreResult<Change> {
    refuse_tagged(text, "change payload")?;
    let unreadable = |error: serde_json::Error| {
        StoreError::Internal(format!("a {} change payload this version cannot read: {error}", kind.as_str()))
    };
    Ok(match kind {
        ChangeKind::StakeholderCreated
        | ChangeKind::StakeholderUpdated
        | ChangeKind::StakeholderArchived
        | ChangeKind::CustomerExited
        | ChangeKind::CustomerWonBack => {
            let stored: StakeholderChangeV1 = serde_json::from_str(text).map_err(unreadable)?;
            Change::Stakeholder {
                before: stored.before.map(|before| Box::new(before.into())),
                after: Box::new(stored.after.into()),
            }
        }
        ChangeKind::ProgramJoined | ChangeKind::ProgramLeft => {
            let stored: MembershipChangeV1 = serde_json::from_str(text).map_err(unreadable)?;
            Change::Membership {
                program: ProgramId(stored.program),
                date: stored.date,
                before: Box::new(stored.before.into()),
                after: Box::new(stored.after.into()),
            }
        }
        ChangeKind::RelationshipCreated | ChangeKind::RelationshipUpdated => {
            let stored: RelationshipChangeV1 = serde_json::from_str(text).map_err(unreadable)?;
            Change::Relationship {
                before: stored.before.map(|before| Box::new(before.into())),
                after: Box::new(stored.after.into()),
            }
        }
        ChangeKind::InteractionsRecorded => {
            let stored: InteractionsV1 = serde_json::from_str(text).map_err(unreadable)?;
            Change::Interactions {
                ids: stored.interactions.into_iter().map(InteractionId).collect(),
                topics: stored.topics,
            }
        }
        ChangeKind::ProgramCreated => {
            let stored: ProgramChangeV1 = serde_json::from_str(text).map_err(unreadable)?;
            Change::Program(Box::new(stored.program.into()))
        }
    })
}

/// Whether stored text is of a tagged version (2 or later): version 1 is an object without a `version` member.
pub fn is_tagged(text: &str) -> bool {
    text.trim_start().strip_prefix('{').is_some_and(|rest| rest.trim_start().starts_with("\"version\""))
}

/// Refuses a tagged version, which this version does not know (a database written by a later version).
fn refuse_tagged(text: &str, what: &str) -> StoreResult<()> {
    if is_tagged(text) {
        return Err(StoreError::Internal(format!(
            "a {what} of a later stored version than this version of Stakegraph reads; run the version that wrote it"
        )));
    }
    Ok(())
}

/// Version 1 of a stakeholder's record.
#[derive(Serialize, Deserialize)]
struct StakeholderV1 {
    id: i64,
    key: Label,
    name: Label,
    power: Probability,
    interest: Probability,
    private: bool,
    extra_markets: MarketSet,
    details: DetailsV1,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    archived_at: Option<DateTime<Utc>>,
}

/// Version 1 of the fields of a stakeholder's kind.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
enum DetailsV1 {
    Customer(CustomerV1),
    Supplier { category: Option<Label> },
    Distributor { channel: Option<Label>, region: Option<Label> },
    Employee { role: Option<Label>, department: Option<Label>, candidate: bool },
    Media { outlet: Option<Label>, reach: Option<u64> },
    Government { agency: Option<Label>, jurisdiction: Option<Label> },
}

/// Version 1 of a customer's fields. The members after `exit` came in later releases of version 1: records written
/// before them lack them, and they are written only when set.
#[derive(Serialize, Deserialize)]
struct CustomerV1 {
    status: CustomerStatus,
    segment: Option<Label>,
    lifetime_value: Option<Amount>,
    exit: Option<ExitV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    perceived_value: Option<PerceivedValueV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    lifecycle: Vec<LifecycleV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retention_cost: Option<Amount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    memberships: Vec<MembershipV1>,
}

/// Version 1 of a customer's exit.
#[derive(Serialize, Deserialize)]
struct ExitV1 {
    reason: ExitReason,
    date: NaiveDate,
}

/// Version 1 of a customer's perceived value.
#[derive(Serialize, Deserialize)]
struct PerceivedValueV1 {
    core_value: Amount,
    services_value: Amount,
    price: Amount,
    relationship_costs: Amount,
}

/// Version 1 of one exit or win-back.
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "SCREAMING_SNAKE_CASE")]
enum LifecycleV1 {
    Exit { reason: ExitReason, date: NaiveDate },
    WinBack { date: NaiveDate },
}

/// Version 1 of one stretch of a programme membership.
#[derive(Serialize, Deserialize)]
struct MembershipV1 {
    program: i64,
    joined: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    left: Option<NaiveDate>,
}

/// Version 1 of a relationship as a change payload holds it (its decayed sums are not in it).
#[derive(Serialize, Deserialize)]
struct RelationshipV1 {
    id: i64,
    from: i64,
    to: i64,
    #[serde(rename = "type")]
    rel_type: RelationshipType,
    level: Level,
    bonds: BondSet,
    trust: Option<Probability>,
    commitment: Option<Probability>,
    since: DateTime<Utc>,
    basis: Option<Basis>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Version 1 of a programme as a change payload holds it.
#[derive(Serialize, Deserialize)]
struct ProgramV1 {
    id: i64,
    key: Label,
    name: Label,
    kind: ProgramKind,
    markets: MarketSet,
    created_at: DateTime<Utc>,
}

/// Version 1 of the payload of a stakeholder created, changed, archived, exited or won back.
#[derive(Serialize, Deserialize)]
struct StakeholderChangeV1 {
    before: Option<StakeholderV1>,
    after: StakeholderV1,
}

/// Version 1 of the payload of a customer joining or leaving a programme.
#[derive(Serialize, Deserialize)]
struct MembershipChangeV1 {
    before: StakeholderV1,
    after: StakeholderV1,
    program: i64,
    date: NaiveDate,
}

/// Version 1 of the payload of a relationship created or changed.
#[derive(Serialize, Deserialize)]
struct RelationshipChangeV1 {
    before: Option<RelationshipV1>,
    after: RelationshipV1,
}

/// Version 1 of the payload of interactions recorded: their ids and, when any has a topic, each one's (entries
/// written before topics have none).
#[derive(Serialize, Deserialize)]
struct InteractionsV1 {
    interactions: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topics: Option<Vec<Option<Topic>>>,
}

/// Version 1 of the payload of a programme created.
#[derive(Serialize, Deserialize)]
struct ProgramChangeV1 {
    program: ProgramV1,
}

impl From<&Stakeholder> for StakeholderV1 {
    fn from(stakeholder: &Stakeholder) -> Self {
        let details = match &stakeholder.details {
            KindDetails::Customer(customer) => DetailsV1::Customer(CustomerV1 {
                status: customer.status,
                segment: customer.segment.clone(),
                lifetime_value: customer.lifetime_value,
                exit: customer.exit.map(|exit| ExitV1 { reason: exit.reason, date: exit.date }),
                perceived_value: customer.perceived_value.map(|value| PerceivedValueV1 {
                    core_value: value.core_value,
                    services_value: value.services_value,
                    price: value.price,
                    relationship_costs: value.relationship_costs,
                }),
                since: customer.since,
                lifecycle: customer
                    .lifecycle
                    .iter()
                    .map(|event| match *event {
                        LifecycleEvent::Exit { reason, date } => LifecycleV1::Exit { reason, date },
                        LifecycleEvent::WinBack { date } => LifecycleV1::WinBack { date },
                    })
                    .collect(),
                retention_cost: customer.retention_cost,
                memberships: customer
                    .memberships
                    .iter()
                    .map(|membership| MembershipV1 {
                        program: membership.program.0,
                        joined: membership.joined,
                        left: membership.left,
                    })
                    .collect(),
            }),
            KindDetails::Supplier { category } => DetailsV1::Supplier { category: category.clone() },
            KindDetails::Distributor { channel, region } => {
                DetailsV1::Distributor { channel: channel.clone(), region: region.clone() }
            }
            KindDetails::Employee { role, department, candidate } => {
                DetailsV1::Employee { role: role.clone(), department: department.clone(), candidate: *candidate }
            }
            KindDetails::Media { outlet, reach } => DetailsV1::Media { outlet: outlet.clone(), reach: *reach },
            KindDetails::Government { agency, jurisdiction } => {
                DetailsV1::Government { agency: agency.clone(), jurisdiction: jurisdiction.clone() }
            }
        };
        StakeholderV1 {
            id: stakeholder.id.0,
            key: stakeholder.key.clone(),
            name: stakeholder.name.clone(),
            power: stakeholder.power,
            interest: stakeholder.interest,
            private: stakeholder.private,
            extra_markets: stakeholder.extra_markets,
            details,
            created_at: stakeholder.created_at,
            updated_at: stakeholder.updated_at,
            archived_at: stakeholder.archived_at,
        }
    }
}

impl From<StakeholderV1> for Stakeholder {
    fn from(stored: StakeholderV1) -> Self {
        let details = match stored.details {
            DetailsV1::Customer(customer) => KindDetails::Customer(CustomerDetails {
                status: customer.status,
                segment: customer.segment,
                lifetime_value: customer.lifetime_value,
                exit: customer.exit.map(|exit| CustomerExit { reason: exit.reason, date: exit.date }),
                // As stored: the rule that price and costs are not both 0 is the writer's (version 1 kept no other).
                perceived_value: customer.perceived_value.map(|value| PerceivedValue {
                    core_value: value.core_value,
                    services_value: value.services_value,
                    price: value.price,
                    relationship_costs: value.relationship_costs,
                }),
                since: customer.since,
                lifecycle: customer
                    .lifecycle
                    .into_iter()
                    .map(|event| match event {
                        LifecycleV1::Exit { reason, date } => LifecycleEvent::Exit { reason, date },
                        LifecycleV1::WinBack { date } => LifecycleEvent::WinBack { date },
                    })
                    .collect(),
                retention_cost: customer.retention_cost,
                memberships: customer
                    .memberships
                    .into_iter()
                    .map(|membership| Membership {
                        program: ProgramId(membership.program),
                        joined: membership.joined,
                        left: membership.left,
                    })
                    .collect(),
            }),
            DetailsV1::Supplier { category } => KindDetails::Supplier { category },
            DetailsV1::Distributor { channel, region } => KindDetails::Distributor { channel, region },
            DetailsV1::Employee { role, department, candidate } => {
                KindDetails::Employee { role, department, candidate }
            }
            DetailsV1::Media { outlet, reach } => KindDetails::Media { outlet, reach },
            DetailsV1::Government { agency, jurisdiction } => KindDetails::Government { agency, jurisdiction },
        };
        Stakeholder {
            id: StakeholderId(stored.id),
            key: stored.key,
            name: stored.name,
            power: stored.power,
            interest: stored.interest,
            private: stored.private,
            extra_markets: stored.extra_markets,
            details,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            archived_at: stored.archived_at,
        }
    }
}

impl From<&Relationship> for RelationshipV1 {
    fn from(relationship: &Relationship) -> Self {
        RelationshipV1 {
            id: relationship.id.0,
            from: relationship.from.0,
            to: relationship.to.0,
            rel_type: relationship.rel_type,
            level: relationship.level,
            bonds: relationship.bonds,
            trust: relationship.trust,
            commitment: relationship.commitment,
            since: relationship.since,
            basis: relationship.basis,
            created_at: relationship.created_at,
            updated_at: relationship.updated_at,
        }
    }
}

impl From<RelationshipV1> for Relationship {
    fn from(stored: RelationshipV1) -> Self {
        Relationship {
            id: RelationshipId(stored.id),
            from: StakeholderId(stored.from),
            to: StakeholderId(stored.to),
            rel_type: stored.rel_type,
            level: stored.level,
            bonds: stored.bonds,
            trust: stored.trust,
            commitment: stored.commitment,
            since: stored.since,
            basis: stored.basis,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            sums: Default::default(),
        }
    }
}

impl From<&Program> for ProgramV1 {
    fn from(program: &Program) -> Self {
        ProgramV1 {
            id: program.id.0,
            key: program.key.clone(),
            name: program.name.clone(),
            kind: program.kind,
            markets: program.markets,
            created_at: program.created_at,
        }
    }
}

impl From<ProgramV1> for Program {
    fn from(stored: ProgramV1) -> Self {
        Program {
            id: ProgramId(stored.id),
            key: stored.key,
            name: stored.name,
            kind: stored.kind,
            markets: stored.markets,
            created_at: stored.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_written_before_the_later_members_of_version_1_is_read_and_written_as_it_was() {
        let old = r#"{"id":3,"key":"C-3","name":"Old","power":0.5,"interest":0.5,"private":false,"extra_markets":[],"details":{"kind":"CUSTOMER","status":"CHURNED","segment":null,"lifetime_value":null,"exit":{"reason":"SERVICE","date":"2024-05-01"}},"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z","archived_at":null}"#;
        let read = read_stakeholder(old).unwrap();
        let KindDetails::Customer(customer) = &read.details else { panic!("a customer") };
        assert!(customer.lifecycle.is_empty() && customer.memberships.is_empty() && customer.since.is_none());
        assert_eq!(customer.exit.map(|exit| exit.reason), Some(ExitReason::Service));
        assert_eq!(customer.lifecycle().len(), 1, "its one exit is its lifecycle");
        assert_eq!(customer.perceived_value, None);
        assert_eq!(write_stakeholder(&read).unwrap(), old);
    }

    #[test]
    fn a_later_version_or_a_damaged_text_is_refused_with_what_it_is() {
        let later = r#"{"version":"2","id":1}"#;
        assert!(is_tagged(later) && !is_tagged(r#"{"id":1,"version":"2"}"#));
        let refused = read_stakeholder(later).unwrap_err().to_string();
        assert!(refused.contains("later stored version"), "{refused}");
        let refused = read_change(ChangeKind::ProgramCreated, later).unwrap_err().to_string();
        assert!(refused.contains("change payload of a later stored version"), "{refused}");
        let damaged = read_change(ChangeKind::InteractionsRecorded, r#"{"interactions":"7"}"#).unwrap_err();
        assert!(damaged.to_string().contains("INTERACTIONS_RECORDED change payload this version cannot read"));
    }
}

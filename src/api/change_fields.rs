//! What a change event says changed, field by field, in the API's own names and shapes: a stakeholder's or a
//! relationship's fields as its GraphQL type spells them (`lifetimeValue`, `exitReason`, `programs`), with values
//! as those fields return them (enum names, ISO dates, global ids), never the stored record's own JSON.
//!
//! Only stored fields are compared; what is derived from them (`mendelow`, `primaryMarket`, a relationship's
//! `strength`) changes with them and is read from the record itself.

use super::ids::GlobalId;
use crate::domain::{self, KindDetails, LifecycleEvent};
use async_graphql::{Json, SimpleObject};
use serde_json::{json, Value};

/// One field a change set, with its value before and after, as the field returns it on `Stakeholder` (or its
/// kind's type) or `Relationship`.
#[derive(SimpleObject, serde::Serialize, Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// The field's name on the GraphQL type (`status`, `lifetimeValue`, `level`).
    pub field: String,
    /// Its value before the change; null when it had none, or the change created the record.
    pub before: Option<Json<Value>>,
    /// Its value after the change; null when it has none.
    pub after: Option<Json<Value>>,
}

/// The fields a stakeholder's record holds, by their GraphQL names, with the values those fields return.
fn stakeholder_fields(stakeholder: &domain::Stakeholder) -> Vec<(&'static str, Value)> {
    let mut fields = vec![
        ("key", json!(stakeholder.key)),
        ("name", json!(stakeholder.name)),
        ("markets", json!(stakeholder.markets())),
        ("power", json!(stakeholder.power)),
        ("interest", json!(stakeholder.interest)),
        ("private", json!(stakeholder.private)),
        ("archivedAt", json!(stakeholder.archived_at)),
    ];
    match &stakeholder.details {
        KindDetails::Customer(customer) => {
            let perceived = customer.perceived_value.as_ref().map(|value| {
                json!({
                    "coreValue": value.core_value,
                    "servicesValue": value.services_value,
                    "price": value.price,
                    "relationshipCosts": value.relationship_costs,
                })
            });
            let lifecycle: Vec<Value> = customer
                .lifecycle()
                .iter()
                .map(|event| match *event {
                    LifecycleEvent::Exit { reason, date } => {
                        json!({ "date": date, "change": "EXIT", "reason": reason })
                    }
                    LifecycleEvent::WinBack { date } => json!({ "date": date, "change": "WIN_BACK", "reason": null }),
                })
                .collect();
            let programs: Vec<Value> = customer
                .memberships
                .iter()
                .map(|membership| {
                    json!({
                        "program": GlobalId::Program(membership.program).encode().0,
                        "joined": membership.joined,
                        "left": membership.left,
                    })
                })
                .collect();
            fields.extend([
                ("status", json!(customer.status)),
                ("segment", json!(customer.segment)),
                ("lifetimeValue", json!(customer.lifetime_value)),
                ("retentionCost", json!(customer.retention_cost)),
                ("perceivedValue", json!(perceived)),
                ("exitReason", json!(customer.exit.as_ref().map(|exit| exit.reason))),
                ("exitDate", json!(customer.exit.as_ref().map(|exit| exit.date))),
                ("customerSince", json!(customer.customer_since(stakeholder.created_at))),
                ("lifecycle", json!(lifecycle)),
                ("programs", json!(programs)),
            ]);
        }
        KindDetails::Supplier { category } => fields.push(("category", json!(category))),
        KindDetails::Distributor { channel, region } => {
            fields.extend([("channel", json!(channel)), ("region", json!(region))]);
        }
        KindDetails::Employee { role, department, candidate } => {
            fields.extend([("role", json!(role)), ("department", json!(department)), ("candidate", json!(candidate))]);
        }
        KindDetails::Media { outlet, reach } => fields.extend([("outlet", json!(outlet)), ("reach", json!(reach))]),
        KindDetails::Government { agency, jurisdiction } => {
            fields.extend([("agency", json!(agency)), ("jurisdiction", json!(jurisdiction))]);
        }
    }
    fields
}

/// The fields a relationship's record holds that a change may set (its ends and type never change).
fn relationship_fields(relationship: &domain::Relationship) -> Vec<(&'static str, Value)> {
    vec![
        ("level", json!(relationship.level)),
        ("bonds", json!(relationship.bonds)),
        ("trust", json!(relationship.trust)),
        ("commitment", json!(relationship.commitment)),
        ("since", json!(relationship.since)),
        ("basis", json!(relationship.basis)),
    ]
}

/// The fields that differ between `before` and `after` (every field `after` has a value for, when there was no
/// `before`), in the order the type lists them.
fn differences(before: Option<Vec<(&'static str, Value)>>, after: Vec<(&'static str, Value)>) -> Vec<FieldChange> {
    let had = |field: &str| {
        before
            .as_ref()
            .map(|fields| fields.iter().find(|(name, _)| *name == field).map_or(Value::Null, |(_, v)| v.clone()))
    };
    let present = |value: Value| (!value.is_null()).then_some(Json(value));
    after
        .into_iter()
        .filter_map(|(field, after)| {
            let before = had(field);
            let changed = match &before {
                Some(before) => *before != after,
                None => !after.is_null() && after != json!([]) && after != json!(false),
            };
            changed.then(|| FieldChange {
                field: field.to_owned(),
                before: before.and_then(present),
                after: present(after),
            })
        })
        .collect()
}

/// The fields `event` changed.
pub(crate) fn field_changes(event: &domain::ChangeEvent) -> Vec<FieldChange> {
    if let (before, Some(after)) = event.payload.stakeholder() {
        differences(before.map(stakeholder_fields), stakeholder_fields(after))
    } else if let (before, Some(after)) = event.payload.relationship() {
        differences(before.map(relationship_fields), relationship_fields(after))
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(field: &str, before: Value, after: Value) -> FieldChange {
        let present = |value: Value| (!value.is_null()).then_some(Json(value));
        FieldChange { field: field.into(), before: present(before), after: present(after) }
    }

    #[test]
    fn an_update_lists_only_what_differs_and_a_creation_what_was_set() {
        let before = vec![("name", json!("A")), ("status", json!("ACTIVE")), ("segment", Value::Null)];
        let after = vec![("name", json!("A")), ("status", json!("CHURNED")), ("segment", json!("SMB"))];
        assert_eq!(
            differences(Some(before), after.clone()),
            vec![change("status", json!("ACTIVE"), json!("CHURNED")), change("segment", Value::Null, json!("SMB"))]
        );
        let created = differences(None, after);
        assert_eq!(
            created.iter().map(|change| change.field.as_str()).collect::<Vec<_>>(),
            ["name", "status", "segment"]
        );
        assert!(created.iter().all(|change| change.before.is_none()));
    }
}

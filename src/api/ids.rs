//! Opaque global ids (`Node.id`) and connection cursors: base64url text that clients must not parse.

use super::error::{ApiError, ApiResult};
use crate::domain::{InteractionId, ProgramId, RelationshipId, StakeholderId};
use crate::store::{InteractionCursor, StakeholderCursor};
use async_graphql::ID;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// What a global id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalId {
    /// A stakeholder.
    Stakeholder(StakeholderId),
    /// A relationship.
    Relationship(RelationshipId),
    /// An interaction.
    Interaction(InteractionId),
    /// A relationship-marketing programme.
    Program(ProgramId),
}

impl GlobalId {
    /// The opaque id a client sees.
    pub fn encode(self) -> ID {
        let text = match self {
            GlobalId::Stakeholder(id) => format!("Stakeholder:{id}"),
            GlobalId::Relationship(id) => format!("Relationship:{id}"),
            GlobalId::Interaction(id) => format!("Interaction:{id}"),
            GlobalId::Program(id) => format!("Program:{id}"),
        };
        ID(URL_SAFE_NO_PAD.encode(text))
    }

    /// Decodes an id a client sent; `field` is where it came from, for the error.
    pub fn decode(id: &str, field: &str) -> ApiResult<Self> {
        let invalid = || {
            ApiError::bad_input(
                field,
                format!("'{id}' is not an id issued by this service; use the `id` field of a node you have queried"),
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(id.trim()).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (kind, number) = text.split_once(':').ok_or_else(invalid)?;
        let number: i64 = number.parse().map_err(|_| invalid())?;
        match kind {
            "Stakeholder" => Ok(GlobalId::Stakeholder(StakeholderId(number))),
            "Relationship" => Ok(GlobalId::Relationship(RelationshipId(number))),
            "Interaction" => Ok(GlobalId::Interaction(InteractionId(number))),
            "Program" => Ok(GlobalId::Program(ProgramId(number))),
            _ => Err(invalid()),
        }
    }
}

/// Decodes a stakeholder id, refusing ids of other node types.
pub fn stakeholder_id(id: &ID, field: &str) -> ApiResult<StakeholderId> {
    match GlobalId::decode(id, field)? {
        GlobalId::Stakeholder(id) => Ok(id),
        _ => {
            Err(ApiError::bad_input(field, format!("'{}' is not a stakeholder id; pass the id of a stakeholder", id.0)))
        }
    }
}

/// Decodes a relationship id, refusing ids of other node types.
pub fn relationship_id(id: &ID, field: &str) -> ApiResult<RelationshipId> {
    match GlobalId::decode(id, field)? {
        GlobalId::Relationship(id) => Ok(id),
        _ => Err(ApiError::bad_input(
            field,
            format!("'{}' is not a relationship id; pass the id of a relationship", id.0),
        )),
    }
}

/// Decodes a programme id, refusing ids of other node types.
pub fn program_id(id: &ID, field: &str) -> ApiResult<ProgramId> {
    match GlobalId::decode(id, field)? {
        GlobalId::Program(id) => Ok(id),
        _ => Err(ApiError::bad_input(field, format!("'{}' is not a programme id; pass the id of a Program", id.0))),
    }
}

fn encode_cursor(prefix: &str, body: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{prefix}|{body}"))
}

/// A refusal of a damaged cursor passed as `argument` (`after` or `before`).
pub fn damaged_cursor(argument: &str) -> ApiError {
    ApiError::bad_input(argument, format!("this cursor is damaged; start again without `{argument}`"))
}

fn decode_cursor(cursor: &str, prefix: &str, argument: &str) -> ApiResult<String> {
    let invalid = || ApiError::bad_input(argument, crate::store::INVALID_CURSOR);
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (found, body) = text.split_once('|').ok_or_else(invalid)?;
    if found != prefix {
        return Err(invalid());
    }
    Ok(body.to_owned())
}

/// Cursor of a stakeholder listing.
pub fn encode_stakeholder_cursor(cursor: &StakeholderCursor) -> String {
    encode_cursor("stakeholders", &serde_json::to_string(cursor).unwrap_or_default())
}

/// Decodes a stakeholder listing's cursor.
pub fn decode_stakeholder_cursor(cursor: &str, argument: &str) -> ApiResult<StakeholderCursor> {
    let body = decode_cursor(cursor, "stakeholders", argument)?;
    serde_json::from_str(&body).map_err(|_| damaged_cursor(argument))
}

/// Cursor of an in-memory list at `offset` (relationships, managed customers); `list` names the list.
pub fn encode_offset_cursor(list: &str, offset: usize) -> String {
    encode_cursor(list, &offset.to_string())
}

/// Decodes an offset cursor of list `list`: the offset of the edge it was issued for.
pub fn decode_offset_cursor(list: &str, cursor: &str, argument: &str) -> ApiResult<usize> {
    decode_cursor(cursor, list, argument)?.parse().map_err(|_| damaged_cursor(argument))
}

/// Cursor of a keyset page of list `list` (the list's name says its order): the sort key and id of the edge it
/// was issued for.
pub fn encode_key_cursor(list: &str, key: u64, id: i64) -> String {
    encode_cursor(list, &format!("{key}:{id}"))
}

/// Decodes a keyset cursor of list `list`.
pub fn decode_key_cursor(list: &str, cursor: &str, argument: &str) -> ApiResult<(u64, i64)> {
    let body = decode_cursor(cursor, list, argument)?;
    let damaged = || damaged_cursor(argument);
    let (key, id) = body.split_once(':').ok_or_else(damaged)?;
    Ok((key.parse().map_err(|_| damaged())?, id.parse().map_err(|_| damaged())?))
}

/// Cursor of an interaction page.
pub fn encode_interaction_cursor(cursor: InteractionCursor) -> String {
    encode_cursor("interactions", &format!("{}:{}", cursor.at_ms, cursor.id.0))
}

/// Decodes an interaction page's cursor.
pub fn decode_interaction_cursor(cursor: &str, argument: &str) -> ApiResult<InteractionCursor> {
    let body = decode_cursor(cursor, "interactions", argument)?;
    let damaged = || damaged_cursor(argument);
    let (at, id) = body.split_once(':').ok_or_else(damaged)?;
    Ok(InteractionCursor {
        at_ms: at.parse().map_err(|_| damaged())?,
        id: InteractionId(id.parse().map_err(|_| damaged())?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip_and_refuse_other_types() {
        let id = GlobalId::Stakeholder(StakeholderId(42)).encode();
        assert_eq!(stakeholder_id(&id, "id").unwrap(), StakeholderId(42));
        let relationship = GlobalId::Relationship(RelationshipId(7)).encode();
        assert!(stakeholder_id(&relationship, "id").is_err());
        assert!(GlobalId::decode("not-base64!", "id").is_err());
    }

    #[test]
    fn cursors_are_bound_to_their_list() {
        let cursor = encode_offset_cursor("relationships", 3);
        assert_eq!(decode_offset_cursor("relationships", &cursor, "after").unwrap(), 3);
        assert!(decode_offset_cursor("managedCustomers", &cursor, "after").is_err());
    }
}

//! The change log as a query: integrators page through every committed change in order with `changes(after,
//! first)` and resume from the last cursor they processed.
//!
//! An event involving a stakeholder the caller sees masked keeps its place (its cursor) and says nothing else:
//! `masked` is true and every other field is null (its kind, time, stakeholders and relationship would tell
//! what the mask hides, or name a relationship withheld from the caller).

use super::auth::{Caller, Need};
use super::change_fields::{field_changes, FieldChange};
use super::error::{ApiError, ApiResult};
use super::ids::GlobalId;
use super::loaders::Loaders;
use super::paging::PageRequest;
use super::programs::{load_program, Program};
use super::relationships::{load_relationship, Relationship};
use super::stakeholders::{load_stakeholder, StakeholderNode};
use super::ApiContext;
use crate::domain::{self, StakeholderId};
use crate::store::PageDirection;
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, Json, Object, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashSet;
use std::sync::Arc;

/// What kind of change an event records.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::ChangeKind")]
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
    /// A relationship-marketing programme was created (it names no stakeholder; the payload holds it).
    ProgramCreated,
    /// A customer joined a programme (the payload names the programme and the day).
    ProgramJoined,
    /// A customer left a programme (the payload names the programme and the day).
    ProgramLeft,
}

/// A view of one log entry, shared by every subscriber it goes to: each field is computed only when a
/// selection asks for it.
pub struct ChangeEvent {
    event: Arc<domain::ChangeEvent>,
    masked: bool,
}

/// One committed change, in commit order.
#[Object]
impl ChangeEvent {
    /// Where this event sits in the log: pass it as `after` to resume after it.
    async fn cursor(&self) -> String {
        encode(self.event.seq)
    }

    /// True when the event involves a stakeholder this caller sees masked: then every field but `cursor` is null.
    async fn masked(&self) -> bool {
        self.masked
    }

    /// When the change was committed; null when masked.
    async fn at(&self) -> Option<DateTime<Utc>> {
        self.visible().map(|event| event.at)
    }

    /// What changed; null when masked.
    async fn kind(&self) -> Option<ChangeKind> {
        self.visible().map(|event| event.kind.into())
    }

    /// The stakeholders involved; null when masked.
    async fn stakeholders(&self) -> Option<Vec<ID>> {
        self.visible().map(|event| event.stakeholders.iter().map(|id| GlobalId::Stakeholder(*id).encode()).collect())
    }

    /// The relationship involved, if any; null when masked.
    async fn relationship(&self) -> Option<ID> {
        self.visible().and_then(|event| event.relationship).map(|id| GlobalId::Relationship(id).encode())
    }

    /// Before and after values, in the stored record's own shape; null when masked.
    #[graphql(
        deprecation = "the stored record's own JSON, kept for one release: read `changedFields`, `stakeholderNow`, \
                             `relationshipNow`, `program`, `membershipDate` and `recordedInteractions` instead"
    )]
    async fn payload(&self) -> ApiResult<Option<Json<serde_json::Value>>> {
        let Some(event) = self.visible() else { return Ok(None) };
        Ok(Some(Json(crate::store::record::change_json(&event.payload)?)))
    }

    /// The fields this change set on the stakeholder or relationship, each with its value before and after as the
    /// field returns it (a created record lists every field it was given); empty for recorded interactions and a
    /// created programme; null when masked.
    async fn changed_fields(&self) -> Option<Vec<FieldChange>> {
        self.visible().map(field_changes)
    }

    /// The stakeholder the change was made to (a created, changed, archived, exited, won-back, enrolled or leaving
    /// one), as the caller may see it now, not as it was then; null for a relationship's or a programme's change,
    /// and when masked.
    async fn stakeholder_now(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        match self.visible() {
            Some(event) if event.kind.changes_stakeholders() => match event.stakeholders.first() {
                Some(id) => load_stakeholder(ctx, *id).await,
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// The relationship the change was made to (created, changed, or given interactions), as the caller may see it
    /// now; null for other changes, and when masked.
    async fn relationship_now(&self, ctx: &Context<'_>) -> ApiResult<Option<Relationship>> {
        match self.visible().and_then(|event| event.relationship) {
            Some(id) => load_relationship(ctx, id).await,
            None => Ok(None),
        }
    }

    /// The programme a `PROGRAM_CREATED`, `PROGRAM_JOINED` or `PROGRAM_LEFT` change is about, as it is now; null
    /// for other changes, and when masked.
    async fn program(&self, ctx: &Context<'_>) -> ApiResult<Option<Program>> {
        match self.program_id() {
            Some(id) => load_program(ctx, id).await,
            None => Ok(None),
        }
    }

    /// The day a customer joined (`PROGRAM_JOINED`) or left (`PROGRAM_LEFT`) the programme; null for other
    /// changes, and when masked.
    async fn membership_date(&self) -> Option<NaiveDate> {
        self.membership_day()
    }

    /// The interactions an `INTERACTIONS_RECORDED` change recorded, by id (read them with `node(id)`, or page
    /// them on `relationshipNow.interactions`); null for other changes, and when masked.
    async fn recorded_interactions(&self) -> Option<Vec<ID>> {
        self.interaction_ids()
    }
}

/// The Standard Webhooks `type` of a change: `stakeholder.created`, `customer.won_back`, `interactions.recorded`, ….
fn message_type(kind: domain::ChangeKind) -> String {
    use domain::ChangeKind::*;
    match kind {
        StakeholderCreated => "stakeholder.created",
        StakeholderUpdated => "stakeholder.updated",
        StakeholderArchived => "stakeholder.archived",
        RelationshipCreated => "relationship.created",
        RelationshipUpdated => "relationship.updated",
        InteractionsRecorded => "interactions.recorded",
        CustomerExited => "customer.exited",
        CustomerWonBack => "customer.won_back",
        ProgramCreated => "program.created",
        ProgramJoined => "program.joined",
        ProgramLeft => "program.left",
    }
    .to_owned()
}

pub(crate) fn encode(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("changes|{seq}"))
}

pub(crate) fn decode(cursor: &str) -> ApiResult<i64> {
    decode_argument(cursor, "after")
}

/// [`decode`] of a cursor passed as `argument`, which a refusal names.
fn decode_argument(cursor: &str, argument: &str) -> ApiResult<i64> {
    let invalid = || {
        ApiError::bad_input(
            argument,
            "this cursor did not come from `changes`; pass the `cursor` of an event you processed",
        )
    };
    let text =
        String::from_utf8(URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?).map_err(|_| invalid())?;
    // Sequence numbers start at 1; 0 is "before the first event", anything below was forged.
    text.strip_prefix("changes|").and_then(|seq| seq.parse().ok()).filter(|seq: &i64| *seq >= 0).ok_or_else(invalid)
}

impl ChangeEvent {
    /// The view of `event` for a caller who sees the stakeholders in `hidden` masked, and who may see private
    /// stakeholders or not (`sees_private`): an event whose stakeholder was private before or after the change is
    /// masked for a caller who may not, even when the stakeholder is public now (its fields back then would tell
    /// what the mask hid).
    pub(crate) fn of(event: Arc<domain::ChangeEvent>, hidden: &HashSet<StakeholderId>, sees_private: bool) -> Self {
        let masked = event.stakeholders.iter().any(|id| hidden.contains(id))
            || (!sees_private && event.records_a_private_stakeholder());
        ChangeEvent { event, masked }
    }

    /// The event, unless it is masked.
    fn visible(&self) -> Option<&domain::ChangeEvent> {
        (!self.masked).then_some(&*self.event)
    }

    /// The programme of a programme change.
    fn program_id(&self) -> Option<domain::ProgramId> {
        match &self.visible()?.payload {
            domain::Change::Program(program) => Some(program.id),
            domain::Change::Membership { program, .. } => Some(*program),
            _ => None,
        }
    }

    /// The day of a joining or a leaving.
    fn membership_day(&self) -> Option<NaiveDate> {
        match &self.visible()?.payload {
            domain::Change::Membership { date, .. } => Some(*date),
            _ => None,
        }
    }

    /// The interactions an `INTERACTIONS_RECORDED` change recorded.
    fn interaction_ids(&self) -> Option<Vec<ID>> {
        match &self.visible()?.payload {
            domain::Change::Interactions { ids, .. } => {
                Some(ids.iter().map(|id| GlobalId::Interaction(*id).encode()).collect())
            }
            _ => None,
        }
    }

    /// The event as a webhook message's body, in the shape Standard Webhooks gives it: `type` (`stakeholder.created`,
    /// `relationship.updated`, …, or `change.masked`), `timestamp` (the commit time; null when masked) and `data`,
    /// which holds the fields of the `ChangeEvent` type that need no further reading: `cursor`, `masked`, `kind`,
    /// `at`, `stakeholders`, `relationship`, `changedFields`, `program`, `membershipDate` and
    /// `recordedInteractions`, each null where the GraphQL field would be.
    pub(crate) fn message(&self) -> ApiResult<serde_json::Value> {
        let changed_fields = self.visible().map(field_changes);
        let kind = self.visible().map(|event| event.kind);
        let kind_name = kind.map(|kind| async_graphql::Value::from(ChangeKind::from(kind)).to_string());
        Ok(serde_json::json!({
            "type": kind.map_or("change.masked".to_owned(), message_type),
            "timestamp": self.visible().map(|event| event.at),
            "data": {
                "cursor": encode(self.event.seq),
                "masked": self.masked,
                "kind": kind_name,
                "at": self.visible().map(|event| event.at),
                "stakeholders": self.visible().map(|event| {
                    event.stakeholders.iter().map(|id| GlobalId::Stakeholder(*id).encode().0).collect::<Vec<_>>()
                }),
                "relationship": self
                    .visible()
                    .and_then(|event| event.relationship)
                    .map(|id| GlobalId::Relationship(id).encode().0),
                "changedFields": changed_fields,
                "program": self.program_id().map(|id| GlobalId::Program(id).encode().0),
                "membershipDate": self.membership_day(),
                "recordedInteractions": self
                    .interaction_ids()
                    .map(|ids| ids.into_iter().map(|id| id.0).collect::<Vec<_>>()),
            },
        }))
    }

    /// Whether the caller sees this event masked.
    pub(crate) fn is_masked(&self) -> bool {
        self.masked
    }

    /// The log entry, whatever the caller may see of it (for filters, which must check `masked` first).
    pub(crate) fn record(&self) -> &domain::ChangeEvent {
        &self.event
    }

    /// Its position in the log.
    pub(crate) fn seq(&self) -> i64 {
        self.event.seq
    }

    /// When it was committed.
    pub(crate) fn committed_at(&self) -> DateTime<Utc> {
        self.event.at
    }
}

/// The change-log root field.
#[derive(Default)]
pub struct ChangesQuery;

#[Object]
impl ChangesQuery {
    /// Every committed change after `after` (from the start without it), oldest first; or, paging backward, the
    /// `last` changes before `before` (the latest without it), still oldest first. Nothing is ever skipped: an
    /// event involving a stakeholder the caller sees masked keeps its place with everything but its cursor
    /// withheld.
    #[graphql(guard = "Need::Read")]
    async fn changes(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<Connection<String, ChangeEvent>> {
        let api = ctx.data_unchecked::<ApiContext>();
        let request = PageRequest::read(ctx, first, after, last, before)?;
        let cursor = request.cursor.as_deref();
        let at = cursor.map(|cursor| decode_argument(cursor, request.cursor_argument())).transpose()?;
        let (count, wanted) = (request.count, request.count + 1);
        let (mut events, has_previous_page, has_next_page) = match request.direction {
            PageDirection::Forward => {
                let after = at.unwrap_or(0);
                let mut events = api.store.changes_after(after, wanted).await?;
                let more = events.len() > count;
                events.truncate(count);
                (events, after > 0, more)
            }
            PageDirection::Backward => {
                let mut events = api.store.changes_before(at.unwrap_or(i64::MAX), wanted).await?;
                let more = events.len() > count;
                if more {
                    events.remove(0);
                }
                (events, more, at.is_some())
            }
        };
        let hidden = hidden_stakeholders(ctx, &events).await?;
        let sees_private = Caller::of(ctx).sees_private();
        let mut connection = Connection::new(has_previous_page, has_next_page);
        connection.edges.extend(events.drain(..).map(|event| {
            let node = ChangeEvent::of(Arc::new(event), &hidden, sees_private);
            Edge::new(encode(node.seq()), node)
        }));
        Ok(connection)
    }
}

/// The stakeholders of `events` that this caller sees masked.
async fn hidden_stakeholders(ctx: &Context<'_>, events: &[domain::ChangeEvent]) -> ApiResult<HashSet<StakeholderId>> {
    if Caller::of(ctx).sees_private() {
        return Ok(HashSet::new());
    }
    let ids: HashSet<StakeholderId> = events.iter().flat_map(|event| event.stakeholders.iter().copied()).collect();
    let found = ctx.data_unchecked::<Loaders>().load_many(ids).await?;
    Ok(found.into_iter().filter(|(_, stakeholder)| stakeholder.private).map(|(id, _)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cursors_of_real_positions_decode() {
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("changes|5")).ok(), Some(5));
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("changes|0")).ok(), Some(0));
        for forged in ["changes|-1", "changes|-9223372036854775808", "changes|x", "stakeholders|5"] {
            assert!(decode(&URL_SAFE_NO_PAD.encode(forged)).is_err(), "{forged}");
        }
    }
}

//! Storage: the [`GraphStore`] trait every backend implements, the queries it answers, and its errors.
//!
//! Every write goes through [`GraphStore::apply`]: one transaction that changes the graph and appends one
//! [`ChangeEvent`](crate::domain::ChangeEvent) per command to the durable change log (a transactional outbox).

mod batch;
pub mod cypher;
pub mod falkor;
#[cfg(test)]
mod golden;
pub mod metered;
pub mod neo4j;
pub mod record;
pub mod sqlite;
pub mod webhook;

use crate::domain::webhook::Webhook;
use crate::domain::{
    Applied, ChangeEvent, Command, CustomerStatus, Interaction, InteractionId, MarketSet, Mendelow, Program,
    Relationship, RelationshipId, Stakeholder, StakeholderId, StakeholderKind, Topic, TopicSet, WebhookId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub use cypher::CypherStore;
pub use metered::{Metered, StoreCalls};
pub use sqlite::SqliteStore;
pub use webhook::StoredWebhook;

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A command was refused; nothing of its batch was written.
    #[error("command {command}: {field}: {message}")]
    Rejected {
        /// Index of the refused command in its batch.
        command: usize,
        /// Path of the offending value inside that command's input (dotted, may be empty).
        field: String,
        /// What kind of refusal.
        reason: Rejection,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// A cursor did not come from this service, or from another query.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// The backend cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else; details are for the log, not for clients.
    #[error("store failure: {0}")]
    Internal(String),
}

/// The kind of a refused command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A value is not acceptable.
    Invalid,
    /// A referenced record does not exist.
    NotFound,
    /// The command clashes with the current state (a duplicate key, an archived stakeholder).
    Conflict,
}

impl StoreError {
    /// A refusal of command `command`.
    pub fn rejected(command: usize, field: impl Into<String>, reason: Rejection, message: impl Into<String>) -> Self {
        StoreError::Rejected { command, field: field.into(), reason, message: message.into() }
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which stakeholders a listing returns. Empty vectors mean "any".
#[derive(Debug, Clone, Default)]
pub struct StakeholderFilter {
    /// Any of these kinds.
    pub kinds: Vec<StakeholderKind>,
    /// Taking part in any of these markets.
    pub markets: MarketSet,
    /// Name or key contains this text (case-insensitive for ASCII).
    pub search: Option<String>,
    /// Customers with any of these lifecycle statuses.
    pub statuses: Vec<CustomerStatus>,
    /// In any of these Mendelow quadrants.
    pub mendelow: Vec<Mendelow>,
    /// Include archived stakeholders.
    pub include_archived: bool,
    /// Leave private stakeholders out (for callers who see them masked: a listing would tell what the mask hides).
    /// A cursor naming a private stakeholder is then refused too, so that no cursor positions a page by it.
    pub exclude_private: bool,
}

impl StakeholderFilter {
    /// Whether `stakeholder` is one this filter lists: what the stores' listings select, in memory (the search as
    /// SQLite's `LIKE` compares: ASCII letters in either case, anything else exactly).
    pub fn matches(&self, stakeholder: &Stakeholder) -> bool {
        let contains = |text: &str, part: &str| text.to_ascii_lowercase().contains(&part.to_ascii_lowercase());
        (self.include_archived || !stakeholder.is_archived())
            && (self.kinds.is_empty() || self.kinds.contains(&stakeholder.kind()))
            && (self.markets.is_empty() || stakeholder.markets().bits() & self.markets.bits() != 0)
            && (self.statuses.is_empty()
                || stakeholder.details.customer_status().is_some_and(|status| self.statuses.contains(&status)))
            && (self.mendelow.is_empty() || self.mendelow.contains(&stakeholder.mendelow()))
            && self.search.as_deref().is_none_or(|search| {
                contains(stakeholder.name.as_str(), search) || contains(stakeholder.key.as_str(), search)
            })
            && !(self.exclude_private && stakeholder.private)
    }
}

/// The SQL and Cypher spellings of `topics`, for `topic IN (…)`: the stored names of its topics.
pub fn topic_names(topics: TopicSet) -> Vec<&'static str> {
    Topic::ALL.iter().filter(|topic| topics.contains(**topic)).map(|topic| topic.as_str()).collect()
}

/// The field a listing is sorted by; ties always go to the lower id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StakeholderSort {
    /// By id (creation order).
    #[default]
    Id,
    /// By name.
    Name,
    /// By creation time.
    CreatedAt,
    /// By power.
    Power,
    /// By interest.
    Interest,
}

impl StakeholderSort {
    /// The stored field it sorts by: a SQLite column, a Cypher node property.
    pub fn field(self) -> &'static str {
        match self {
            StakeholderSort::Id => "id",
            StakeholderSort::Name => "name",
            StakeholderSort::CreatedAt => "created_at",
            StakeholderSort::Power => "power",
            StakeholderSort::Interest => "interest",
        }
    }
}

/// The condition that a stakeholder is in Mendelow `quadrant`, on the stored `power` and `interest` fields named
/// with `prefix` (`""` for SQL columns, `"s."` for the properties of node `s`).
fn mendelow_condition(quadrant: Mendelow, prefix: &str) -> String {
    let (power, interest) = match quadrant {
        Mendelow::ManageClosely => (">=", ">="),
        Mendelow::KeepSatisfied => (">=", "<"),
        Mendelow::KeepInformed => ("<", ">="),
        Mendelow::Monitor => ("<", "<"),
    };
    format!("({prefix}power {power} 0.5 AND {prefix}interest {interest} 0.5)")
}

/// A listing's sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StakeholderOrder {
    /// Sort field.
    pub field: StakeholderSort,
    /// Largest first.
    pub descending: bool,
}

/// Where a page of a listing ends: the last row's id. The row's sort value is read again from the store, so a
/// cursor never carries a value (a private name, say) that its holder may not see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StakeholderCursor {
    /// The sort field the cursor was made for.
    pub sort: StakeholderSort,
    /// Whether it was a descending listing.
    pub descending: bool,
    /// The last row's id.
    pub id: StakeholderId,
}

/// A request for one page of stakeholders.
#[derive(Debug, Clone, Default)]
pub struct StakeholderQuery {
    /// Which stakeholders.
    pub filter: StakeholderFilter,
    /// In which order.
    pub order: StakeholderOrder,
    /// How many at most.
    pub first: usize,
    /// Continue after this cursor.
    pub after: Option<StakeholderCursor>,
    /// Whether to count all matches too.
    pub with_total: bool,
}

/// Why a cursor is refused when it did not come from its listing: the API says it of a cursor it cannot read, the
/// stores of one naming a row the listing can never hold, whether the row does not exist or is one the listing
/// leaves out (a private stakeholder), so that the refusal tells nothing about the row.
pub const INVALID_CURSOR: &str =
    "this cursor did not come from this list; pass the `cursor` of an edge (or `pageInfo.endCursor`) of the same list";

impl StakeholderQuery {
    /// Refuses a cursor made for a listing in another order, or naming a row the listing can never hold: one that
    /// does not exist, or a private one when private rows are left out. A page continues from its cursor's row's
    /// sort value, read from the store; a forged cursor naming a row the caller may not see would tell where that
    /// row sorts (between which names, say). Both backends call this before they list.
    pub async fn check_cursor(&self, store: &(impl GraphStore + ?Sized)) -> StoreResult<()> {
        let Some(cursor) = &self.after else { return Ok(()) };
        if cursor.sort != self.order.field || cursor.descending != self.order.descending {
            return Err(StoreError::InvalidCursor(
                "the cursor belongs to a listing with another order; pass the same orderBy as the page it came from"
                    .into(),
            ));
        }
        let row = store.stakeholders_by_id(&[cursor.id]).await?;
        match row.first() {
            Some(row) if !(self.filter.exclude_private && row.private) => Ok(()),
            _ => Err(StoreError::InvalidCursor(INVALID_CURSOR.into())),
        }
    }
}

/// One page of stakeholders.
#[derive(Debug, Clone, Default)]
pub struct StakeholderPage {
    /// The rows, with the cursor that continues after each.
    pub items: Vec<(Stakeholder, StakeholderCursor)>,
    /// Whether more rows follow.
    pub has_next_page: bool,
    /// All matches, when asked for.
    pub total_count: Option<u64>,
}

impl StakeholderPage {
    /// The page of `query` from the rows read for it, in order: up to `first + 1`, the extra one telling that
    /// more follow.
    pub fn of(query: &StakeholderQuery, mut rows: Vec<Stakeholder>, total_count: Option<u64>) -> Self {
        let has_next_page = rows.len() > query.first;
        rows.truncate(query.first);
        let order = query.order;
        let items = rows
            .into_iter()
            .map(|stakeholder| {
                let cursor = StakeholderCursor { sort: order.field, descending: order.descending, id: stakeholder.id };
                (stakeholder, cursor)
            })
            .collect();
        Self { items, has_next_page, total_count }
    }
}

/// Which way a page is read from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PageDirection {
    /// The items after the cursor, in the list's order (from the list's start without one).
    #[default]
    Forward,
    /// The items before the cursor, nearest it (up to the list's end without one).
    Backward,
}

/// Where a page of interactions (newest first) ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InteractionCursor {
    /// The last row's time, in milliseconds since the epoch.
    pub at_ms: i64,
    /// The last row's id.
    pub id: InteractionId,
}

/// A page of one relationship's interactions, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InteractionPage {
    /// The rows, newest first whichever way they were read.
    pub items: Vec<Interaction>,
    /// Whether more rows lie beyond the page in the direction it was read (older ones forward, newer ones
    /// backward).
    pub has_more: bool,
    /// All interactions of the relationship.
    pub total_count: u64,
}

/// How much the graph holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GraphCounts {
    /// Stakeholders, archived included.
    pub stakeholders: u64,
    /// Relationships.
    pub relationships: u64,
    /// Interactions.
    pub interactions: u64,
    /// Change-log entries.
    pub changes: u64,
}

/// A live stakeholder as the engine's projection needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeRow {
    /// Its id.
    pub id: StakeholderId,
    /// Its kind.
    pub kind: StakeholderKind,
    /// Every market it belongs to (its kind's primary market included).
    pub markets: MarketSet,
    /// Whether it is private.
    pub private: bool,
}

impl NodeRow {
    /// The row of `stakeholder`.
    pub fn of(stakeholder: &Stakeholder) -> Self {
        Self {
            id: stakeholder.id,
            kind: stakeholder.kind(),
            markets: stakeholder.markets(),
            private: stakeholder.private,
        }
    }
}

/// The whole graph (archived stakeholders left out) as of one change-log position:
/// what the engine's projection is built from.
#[derive(Debug, Clone, Default)]
pub struct GraphScan {
    /// The last change-log sequence number the scan reflects.
    pub seq: i64,
    /// Live stakeholders, by id.
    pub stakeholders: Vec<NodeRow>,
    /// Every relationship, by id (those with an archived end included: the projection leaves them out).
    pub relationships: Vec<Relationship>,
    /// Archived stakeholders, by id (not in the projection; the engine's records keep them for aggregates).
    pub archived: Vec<StakeholderId>,
}

/// `relationships` (in id order) listed under each of `ids` they start or end at.
fn by_end(
    ids: &[StakeholderId],
    relationships: impl IntoIterator<Item = Relationship>,
) -> HashMap<StakeholderId, Vec<Relationship>> {
    let mut by_stakeholder: HashMap<StakeholderId, Vec<Relationship>> =
        ids.iter().map(|id| (*id, Vec::new())).collect();
    for relationship in relationships {
        if let Some(list) = by_stakeholder.get_mut(&relationship.to) {
            list.push(relationship.clone());
        }
        if let Some(list) = by_stakeholder.get_mut(&relationship.from) {
            list.push(relationship);
        }
    }
    by_stakeholder
}

/// A graph store. Reads are batched by id so that a DataLoader can serve a whole GraphQL page with one call;
/// writes are batches of commands applied in one transaction together with their change events.
#[async_trait]
pub trait GraphStore: Send + Sync + 'static {
    /// The stakeholders with these ids (missing ids are left out), in no particular order.
    async fn stakeholders_by_id(&self, ids: &[StakeholderId]) -> StoreResult<Vec<Stakeholder>>;

    /// The stakeholder with this key.
    async fn stakeholder_by_key(&self, key: &str) -> StoreResult<Option<Stakeholder>>;

    /// One page of stakeholders.
    async fn list_stakeholders(&self, query: &StakeholderQuery) -> StoreResult<StakeholderPage>;

    /// The relationships with these ids (missing ids are left out).
    async fn relationships_by_id(&self, ids: &[RelationshipId]) -> StoreResult<Vec<Relationship>>;

    /// Every relationship that starts or ends at one of these stakeholders, by stakeholder, ordered by id.
    async fn relationships_of(&self, ids: &[StakeholderId]) -> StoreResult<HashMap<StakeholderId, Vec<Relationship>>>;

    /// A page of up to `count` interactions of each relationship in their list's order (newest first), with
    /// counts: forward, the newest ones older than `cursor`; backward, the oldest ones newer than `cursor` (the
    /// oldest of all without one). Only those with one of `topics` when it is not empty (the counts too).
    async fn interaction_pages(
        &self,
        relationships: &[RelationshipId],
        count: usize,
        cursor: Option<InteractionCursor>,
        direction: PageDirection,
        topics: TopicSet,
    ) -> StoreResult<HashMap<RelationshipId, InteractionPage>>;

    /// Every interaction of each relationship, oldest first (the history that strength as of a past time reads).
    async fn interaction_histories(
        &self,
        relationships: &[RelationshipId],
    ) -> StoreResult<HashMap<RelationshipId, Vec<Interaction>>>;

    /// The interactions with these ids (missing ids are left out).
    async fn interactions_by_id(&self, ids: &[InteractionId]) -> StoreResult<Vec<Interaction>>;

    /// Every relationship-marketing programme, in id order (at most [`crate::domain::program::MAX_PROGRAMS`]).
    async fn programs(&self) -> StoreResult<Vec<Program>>;

    /// Applies the commands all-or-nothing at time `at`, appending their change events in the same transaction.
    async fn apply(&self, commands: Vec<Command>, at: DateTime<Utc>) -> StoreResult<Applied>;

    /// Change-log entries with a sequence number above `after`, oldest first, at most `limit`.
    async fn changes_after(&self, after: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>>;

    /// Up to `limit` committed changes with positions before `before`, the latest of them, oldest first (the
    /// change log paged backward).
    async fn changes_before(&self, before: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>>;

    /// The whole live graph, read consistently at one change-log position.
    async fn graph_scan(&self) -> StoreResult<GraphScan>;

    /// How much the graph holds.
    async fn counts(&self) -> StoreResult<GraphCounts>;

    /// How much of the graph a caller who may not see private stakeholders sees: public stakeholders (archived
    /// included), the relationships whose two ends are public, their interactions, and every change-log entry.
    async fn public_counts(&self) -> StoreResult<GraphCounts>;

    /// Whether the backend answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Every registered webhook, in id order. Webhooks are bookkeeping beside the graph, not graph data: the four
    /// webhook calls write no change event (a delivery would otherwise log a change to deliver).
    async fn webhooks(&self) -> StoreResult<Vec<Webhook>>;

    /// Registers `webhook` under a new id (its own `id` is ignored) and returns it with that id.
    async fn create_webhook(&self, webhook: Webhook) -> StoreResult<Webhook>;

    /// Saves `webhook` over the stored one with its id; false when there is none (it was deleted).
    async fn save_webhook(&self, webhook: &Webhook) -> StoreResult<bool>;

    /// Deletes the webhook with this id; false when there was none.
    async fn delete_webhook(&self, id: WebhookId) -> StoreResult<bool>;

    /// Makes what is committed complete in the store's own files, so that they can be copied alone (SQLite: folds
    /// the write-ahead log into the database file). Called after `demo`, `migrate` and on a clean shutdown; a
    /// server backend has nothing to do.
    async fn checkpoint(&self) -> StoreResult<()>;
}

//! A [`GraphStore`] decorator that counts calls per method: how tests and benchmarks prove batching, and what
//! `/metrics` reports.

use super::{
    GraphCounts, GraphScan, GraphStore, InteractionCursor, InteractionPage, StakeholderPage, StakeholderQuery,
    StoreResult,
};
use crate::domain::webhook::Webhook;
use crate::domain::{
    Applied, ChangeEvent, Command, Interaction, InteractionId, Relationship, RelationshipId, Stakeholder,
    StakeholderId, WebhookId,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Calls made so far, by method name.
pub type StoreCalls = BTreeMap<&'static str, u64>;

/// Wraps a store and counts every call by method.
pub struct Metered {
    inner: Arc<dyn GraphStore>,
    counters: Arc<[(&'static str, AtomicU64)]>,
}

const METHODS: [&str; 18] = [
    "stakeholders_by_id",
    "stakeholder_by_key",
    "list_stakeholders",
    "relationships_by_id",
    "relationships_of",
    "interaction_pages",
    "interaction_histories",
    "interactions_by_id",
    "apply",
    "programs",
    "changes_after",
    "counts",
    "public_counts",
    "ping",
    "webhooks",
    "create_webhook",
    "save_webhook",
    "delete_webhook",
];

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn GraphStore>) -> Self {
        Self { inner, counters: METHODS.iter().map(|name| (*name, AtomicU64::new(0))).collect() }
    }

    /// The calls made so far, by method (methods never called are left out).
    pub fn calls(&self) -> StoreCalls {
        self.counters
            .iter()
            .map(|(name, count)| (*name, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// All calls made so far.
    pub fn total_calls(&self) -> u64 {
        self.counters.iter().map(|(_, count)| count.load(Ordering::Relaxed)).sum()
    }

    fn count(&self, method: &'static str) {
        if let Some((_, counter)) = self.counters.iter().find(|(name, _)| *name == method) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[async_trait]
impl GraphStore for Metered {
    async fn stakeholders_by_id(&self, ids: &[StakeholderId]) -> StoreResult<Vec<Stakeholder>> {
        self.count("stakeholders_by_id");
        self.inner.stakeholders_by_id(ids).await
    }

    async fn stakeholder_by_key(&self, key: &str) -> StoreResult<Option<Stakeholder>> {
        self.count("stakeholder_by_key");
        self.inner.stakeholder_by_key(key).await
    }

    async fn list_stakeholders(&self, query: &StakeholderQuery) -> StoreResult<StakeholderPage> {
        self.count("list_stakeholders");
        self.inner.list_stakeholders(query).await
    }

    async fn relationships_by_id(&self, ids: &[RelationshipId]) -> StoreResult<Vec<Relationship>> {
        self.count("relationships_by_id");
        self.inner.relationships_by_id(ids).await
    }

    async fn relationships_of(&self, ids: &[StakeholderId]) -> StoreResult<HashMap<StakeholderId, Vec<Relationship>>> {
        self.count("relationships_of");
        self.inner.relationships_of(ids).await
    }

    async fn interaction_pages(
        &self,
        relationships: &[RelationshipId],
        count: usize,
        cursor: Option<InteractionCursor>,
        direction: crate::store::PageDirection,
        topics: crate::domain::TopicSet,
    ) -> StoreResult<HashMap<RelationshipId, InteractionPage>> {
        self.count("interaction_pages");
        self.inner.interaction_pages(relationships, count, cursor, direction, topics).await
    }

    async fn interaction_histories(
        &self,
        relationships: &[RelationshipId],
    ) -> StoreResult<HashMap<RelationshipId, Vec<Interaction>>> {
        self.count("interaction_histories");
        self.inner.interaction_histories(relationships).await
    }

    async fn interactions_by_id(&self, ids: &[InteractionId]) -> StoreResult<Vec<Interaction>> {
        self.count("interactions_by_id");
        self.inner.interactions_by_id(ids).await
    }

    async fn apply(&self, commands: Vec<Command>, at: DateTime<Utc>) -> StoreResult<Applied> {
        self.count("apply");
        self.inner.apply(commands, at).await
    }

    async fn programs(&self) -> StoreResult<Vec<crate::domain::Program>> {
        self.count("programs");
        self.inner.programs().await
    }

    async fn changes_after(&self, after: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        self.count("changes_after");
        self.inner.changes_after(after, limit).await
    }

    async fn changes_before(&self, before: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        self.count("changes_before");
        self.inner.changes_before(before, limit).await
    }

    async fn graph_scan(&self) -> StoreResult<GraphScan> {
        self.count("graph_scan");
        self.inner.graph_scan().await
    }

    async fn counts(&self) -> StoreResult<GraphCounts> {
        self.count("counts");
        self.inner.counts().await
    }

    async fn public_counts(&self) -> StoreResult<GraphCounts> {
        self.count("public_counts");
        self.inner.public_counts().await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.count("ping");
        self.inner.ping().await
    }

    async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.count("webhooks");
        self.inner.webhooks().await
    }

    async fn create_webhook(&self, webhook: Webhook) -> StoreResult<Webhook> {
        self.count("create_webhook");
        self.inner.create_webhook(webhook).await
    }

    async fn save_webhook(&self, webhook: &Webhook) -> StoreResult<bool> {
        self.count("save_webhook");
        self.inner.save_webhook(webhook).await
    }

    async fn delete_webhook(&self, id: WebhookId) -> StoreResult<bool> {
        self.count("delete_webhook");
        self.inner.delete_webhook(id).await
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        self.inner.checkpoint().await
    }
}

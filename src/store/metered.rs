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
use crate::telemetry::{self, Histograms};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prometheus_client::metrics::family::Family;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracing::Instrument as _;

/// Calls made so far, by method name.
pub type StoreCalls = BTreeMap<&'static str, u64>;

/// Wraps a store and counts every call by method, with its duration and, for reads by a list of ids (a
/// DataLoader's batch), how many keys it carried.
pub struct Metered {
    inner: Arc<dyn GraphStore>,
    counters: Arc<[(&'static str, AtomicU64)]>,
    seconds: Histograms<StoreLabels>,
    keys: Histograms<StoreLabels>,
}

/// The label of a store metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct StoreLabels {
    /// The store method.
    method: &'static str,
}

/// Records a call's duration when dropped.
struct Timed(prometheus_client::metrics::histogram::Histogram, std::time::Instant, &'static str);

impl Drop for Timed {
    fn drop(&mut self) {
        self.0.observe(self.1.elapsed().as_secs_f64());
    }
}

impl Timed {
    /// Awaits `call` in a span of its own, for traces ([`crate::traces`]); the duration is recorded when it is
    /// done, or given up.
    async fn time<T>(self, call: impl std::future::Future<Output = T>) -> T {
        // Calls made outside any request (the follower, webhooks, subscriptions' batches) would each be a trace
        // of their own, several a second, forever.
        if tracing::Span::current().is_none() {
            return call.await;
        }
        let span = tracing::debug_span!(
            target: crate::traces::TARGET,
            "store",
            otel.name = %format!("store {}", self.2),
            otel.kind = "client",
            db.operation.name = self.2,
        );
        call.instrument(span).await
    }
}

const METHODS: [&str; 19] = [
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
    "changes_before",
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
        Self {
            inner,
            counters: METHODS.iter().map(|name| (*name, AtomicU64::new(0))).collect(),
            seconds: Family::new_with_constructor(telemetry::seconds),
            keys: Family::new_with_constructor(telemetry::counts),
        }
    }

    /// Registers the calls' durations and batch sizes in `registry`.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_with_unit(
            "store_call_duration",
            "Calls to the graph store, by method",
            prometheus_client::registry::Unit::Seconds,
            self.seconds.clone(),
        );
        registry.register(
            "store_batch_keys",
            "Ids one store read by a list of ids carried (a DataLoader batch), by method",
            self.keys.clone(),
        );
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

    /// Counts a call of `method`; the guard records its duration when the call is done.
    #[must_use]
    fn count(&self, method: &'static str) -> Timed {
        if let Some((_, counter)) = self.counters.iter().find(|(name, _)| *name == method) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Timed(self.seconds.get_or_create(&StoreLabels { method }).clone(), std::time::Instant::now(), method)
    }

    /// Counts a call of `method` with a batch of `keys` ids.
    fn batch(&self, method: &'static str, keys: usize) -> Timed {
        self.keys.get_or_create(&StoreLabels { method }).observe(keys as f64);
        self.count(method)
    }
}

#[async_trait]
impl GraphStore for Metered {
    async fn stakeholders_by_id(&self, ids: &[StakeholderId]) -> StoreResult<Vec<Stakeholder>> {
        self.batch("stakeholders_by_id", ids.len()).time(self.inner.stakeholders_by_id(ids)).await
    }

    async fn stakeholder_by_key(&self, key: &str) -> StoreResult<Option<Stakeholder>> {
        self.count("stakeholder_by_key").time(self.inner.stakeholder_by_key(key)).await
    }

    async fn list_stakeholders(&self, query: &StakeholderQuery) -> StoreResult<StakeholderPage> {
        self.count("list_stakeholders").time(self.inner.list_stakeholders(query)).await
    }

    async fn relationships_by_id(&self, ids: &[RelationshipId]) -> StoreResult<Vec<Relationship>> {
        self.batch("relationships_by_id", ids.len()).time(self.inner.relationships_by_id(ids)).await
    }

    async fn relationships_of(&self, ids: &[StakeholderId]) -> StoreResult<HashMap<StakeholderId, Vec<Relationship>>> {
        self.batch("relationships_of", ids.len()).time(self.inner.relationships_of(ids)).await
    }

    async fn interaction_pages(
        &self,
        relationships: &[RelationshipId],
        count: usize,
        cursor: Option<InteractionCursor>,
        direction: crate::store::PageDirection,
        topics: crate::domain::TopicSet,
    ) -> StoreResult<HashMap<RelationshipId, InteractionPage>> {
        self.batch("interaction_pages", relationships.len())
            .time(self.inner.interaction_pages(relationships, count, cursor, direction, topics))
            .await
    }

    async fn interaction_histories(
        &self,
        relationships: &[RelationshipId],
    ) -> StoreResult<HashMap<RelationshipId, Vec<Interaction>>> {
        self.batch("interaction_histories", relationships.len())
            .time(self.inner.interaction_histories(relationships))
            .await
    }

    async fn interactions_by_id(&self, ids: &[InteractionId]) -> StoreResult<Vec<Interaction>> {
        self.batch("interactions_by_id", ids.len()).time(self.inner.interactions_by_id(ids)).await
    }

    async fn apply(&self, commands: Vec<Command>, at: DateTime<Utc>) -> StoreResult<Applied> {
        self.count("apply").time(self.inner.apply(commands, at)).await
    }

    async fn programs(&self) -> StoreResult<Vec<crate::domain::Program>> {
        self.count("programs").time(self.inner.programs()).await
    }

    async fn changes_after(&self, after: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        self.count("changes_after").time(self.inner.changes_after(after, limit)).await
    }

    async fn changes_before(&self, before: i64, limit: usize) -> StoreResult<Vec<ChangeEvent>> {
        self.count("changes_before").time(self.inner.changes_before(before, limit)).await
    }

    async fn graph_scan(&self) -> StoreResult<GraphScan> {
        self.count("graph_scan").time(self.inner.graph_scan()).await
    }

    async fn counts(&self) -> StoreResult<GraphCounts> {
        self.count("counts").time(self.inner.counts()).await
    }

    async fn public_counts(&self) -> StoreResult<GraphCounts> {
        self.count("public_counts").time(self.inner.public_counts()).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.count("ping").time(self.inner.ping()).await
    }

    async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.count("webhooks").time(self.inner.webhooks()).await
    }

    async fn create_webhook(&self, webhook: Webhook) -> StoreResult<Webhook> {
        self.count("create_webhook").time(self.inner.create_webhook(webhook)).await
    }

    async fn save_webhook(&self, webhook: &Webhook) -> StoreResult<bool> {
        self.count("save_webhook").time(self.inner.save_webhook(webhook)).await
    }

    async fn delete_webhook(&self, id: WebhookId) -> StoreResult<bool> {
        self.count("delete_webhook").time(self.inner.delete_webhook(id)).await
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        self.inner.checkpoint().await
    }
}

//! DataLoaders: every entity read of a request goes through these, so that a page of N stakeholders and their
//! relationships costs a constant number of store calls instead of N. Stakeholders and relationships come from
//! the engine's in-memory records (`engine::records`) once the projection is built; the store answers the rest
//! (interactions, archived stakeholders, and everything before the projection is built).

use crate::domain::{
    Interaction, InteractionId, Program, ProgramId, Relationship, RelationshipId, Stakeholder, StakeholderId, TopicSet,
};
use crate::engine::{Engine, Records};
use crate::store::{GraphStore, InteractionCursor, InteractionPage, PageDirection, StoreError};
use async_graphql::dataloader::{DataLoader, Loader};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::Instrument as _;

/// The one loader over the store; it answers several key types, each batched on its own.
pub struct StoreLoader {
    store: Arc<dyn GraphStore>,
}

/// The longest a batch waits for the executions to go idle: only a safety net against starvation, since every
/// execution that waits for a batch is idle, and polls are short.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// What the loaders know of the GraphQL execution they serve (every query and mutation has its own, so no batch
/// waits for another request): whether it is busy (being polled, or woken and waiting for a worker), and how many
/// loads it has asked for.
///
/// A plain DataLoader sends its batch a fixed delay after the first key. When walking a large page takes longer
/// than that delay (a debug build, a busy machine, a core taken by another thread), the page splits into several
/// batches and the number of store calls grows with the page size; and every level of a nested query waits the
/// full delay. Here a batch leaves as soon as every tracked execution is waiting (none busy) and none has asked
/// for anything since the last check: by then every resolver that could join the batch has, so a nested page
/// costs one store call per level whatever its size, and no level waits longer than it must. The count is a count,
/// not a flag, only because one execution may be woken while it is being polled.
#[derive(Default)]
pub struct Executions {
    busy: AtomicUsize,
    activity: AtomicU64,
    idle: Notify,
}

/// Where one tracked execution is: waiting, woken (runnable, counted as busy), or finished.
const WAITING: u8 = 0;
const WOKEN: u8 = 1;
const FINISHED: u8 = 2;

/// One tracked execution's waker: marks the execution busy when it is woken.
struct TrackedWaker {
    executions: Arc<Executions>,
    state: Arc<AtomicU8>,
    inner: Waker,
}

impl Wake for TrackedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only a waiting execution becomes busy; a finished one never counts again.
        if self.state.compare_exchange(WAITING, WOKEN, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.executions.busy.fetch_add(1, Ordering::AcqRel);
        }
        self.inner.wake_by_ref();
    }
}

/// Ends the tracking of an execution when it completes, panics, or is dropped (a client went away).
struct Tracking {
    executions: Arc<Executions>,
    state: Arc<AtomicU8>,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        if self.state.swap(FINISHED, Ordering::AcqRel) == WOKEN {
            self.executions.release();
        }
    }
}

/// Stops counting one poll as busy when the poll ends, even by a panic.
struct Polling<'a>(&'a Executions);

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Executions {
    fn release(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
        self.idle.notify_waiters();
    }

    /// Runs a GraphQL execution, telling the loaders whenever it is busy.
    pub async fn track<F: Future>(self: &Arc<Self>, execution: F) -> F::Output {
        // An execution starts out runnable.
        self.busy.fetch_add(1, Ordering::AcqRel);
        let tracking = Tracking { executions: self.clone(), state: Arc::new(AtomicU8::new(WOKEN)) };
        let mut execution = std::pin::pin!(execution);
        // The tracked waker made for the task's waker last time, kept while the task's waker stays the same.
        let mut tracked: Option<(Waker, Waker)> = None;
        std::future::poll_fn(|cx| {
            // The count this execution holds for being woken now stands for being polled.
            if tracking.state.swap(WAITING, Ordering::AcqRel) != WOKEN {
                self.busy.fetch_add(1, Ordering::AcqRel);
            }
            let _polling = Polling(self);
            let waker = match &tracked {
                Some((task, waker)) if task.will_wake(cx.waker()) => waker,
                _ => {
                    let waker = Waker::from(Arc::new(TrackedWaker {
                        executions: self.clone(),
                        state: tracking.state.clone(),
                        inner: cx.waker().clone(),
                    }));
                    &tracked.insert((cx.waker().clone(), waker)).1
                }
            };
            execution.as_mut().poll(&mut Context::from_waker(waker))
        })
        .await
    }

    /// Waits until the tracked execution is not busy and no load was asked for across one yield, or [`MAX_WAIT`].
    /// (Executions that are not tracked, subscriptions', count as idle whenever they yield.)
    async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let idle = self.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            let seen = self.activity.load(Ordering::Acquire);
            tokio::task::yield_now().await;
            if self.busy.load(Ordering::Acquire) == 0 && self.activity.load(Ordering::Acquire) == seen {
                return;
            }
            tokio::select! {
                () = idle => {}
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}

/// The loaders resolvers use: the engine's in-memory records first, then async-graphql's DataLoader over the
/// store, dispatched when the execution goes idle.
pub struct Loaders {
    loader: DataLoader<StoreLoader>,
    executions: Arc<Executions>,
    engine: Arc<Engine>,
}

impl Loaders {
    /// Loaders over `engine`'s records and store, dispatched as `executions` go idle. No cache: batching only, so
    /// a mutation's answer reads what the mutation wrote (the engine's records have caught up with it).
    pub fn new(engine: Arc<Engine>, executions: Arc<Executions>) -> Self {
        let settling = executions.clone();
        // A batch's store call belongs to the request that made the loaders (in its trace, [`crate::traces`]).
        let request = tracing::Span::current();
        let spawner = move |batch: BoxFuture<'static, ()>| {
            let settling = settling.clone();
            tokio::spawn(
                async move {
                    settling.settle().await;
                    batch.await;
                }
                .instrument(request.clone()),
            )
        };
        let store = StoreLoader { store: engine.store().clone() };
        let loader = DataLoader::new(store, spawner).delay(Duration::ZERO).max_batch_size(5_000);
        Self { loader, executions, engine }
    }

    /// Loads one value: from the records when they hold it, else batched with every other load of the same key
    /// type.
    pub async fn load_one<K>(&self, key: K) -> Result<Option<<StoreLoader as Loader<K>>::Value>, LoadError>
    where
        K: Remembered<Value = <StoreLoader as Loader<K>>::Value> + Send + Sync + Hash + Eq + Clone + 'static,
        StoreLoader: Loader<K, Error = LoadError>,
    {
        if let Some(found) = self.engine.records().and_then(|records| K::recall(&records, &key)) {
            return Ok(Some(found));
        }
        self.executions.activity.fetch_add(1, Ordering::AcqRel);
        self.loader.load_one(key).await
    }

    /// The relationships of `stakeholder` (both directions, in id order) that satisfy `wanted`: from the records
    /// when they hold the stakeholder (copying only those wanted), else from every relationship batched with the
    /// other loads of the same level.
    pub async fn relationships_of_where(
        &self,
        stakeholder: StakeholderId,
        wanted: impl Fn(&Relationship) -> bool,
    ) -> Result<Vec<Relationship>, LoadError> {
        if let Some(found) =
            self.engine.records().and_then(|records| records.relationships_of_where(stakeholder, &wanted))
        {
            return Ok(found);
        }
        self.executions.activity.fetch_add(1, Ordering::AcqRel);
        let all = self.loader.load_one(RelationshipsOf(stakeholder)).await?.unwrap_or_default();
        Ok(all.iter().filter(|relationship| wanted(relationship)).cloned().collect())
    }

    /// Loads several values: those the records hold from them, the others batched with every other load of the
    /// same key type.
    pub async fn load_many<K>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<HashMap<K, <StoreLoader as Loader<K>>::Value>, LoadError>
    where
        K: Remembered<Value = <StoreLoader as Loader<K>>::Value> + Send + Sync + Hash + Eq + Clone + 'static,
        StoreLoader: Loader<K, Error = LoadError>,
    {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        match self.engine.records() {
            Some(records) => {
                for key in keys {
                    match K::recall(&records, &key) {
                        Some(value) => {
                            found.insert(key, value);
                        }
                        None => missing.push(key),
                    }
                }
            }
            None => missing.extend(keys),
        }
        if !missing.is_empty() {
            self.executions.activity.fetch_add(1, Ordering::AcqRel);
            found.extend(self.loader.load_many(missing).await?);
        }
        Ok(found)
    }
}

/// Keys the engine's in-memory records may answer; `recall` is `None` when they do not hold it (the store
/// answers then).
pub trait Remembered: Sized {
    /// What a key loads.
    type Value;

    /// The value from `records`, if they hold it.
    fn recall(_records: &Records, _key: &Self) -> Option<Self::Value> {
        None
    }
}

impl Remembered for StakeholderId {
    type Value = Arc<Stakeholder>;

    fn recall(records: &Records, key: &Self) -> Option<Self::Value> {
        records.stakeholder(*key).cloned()
    }
}

impl Remembered for RelationshipId {
    type Value = Relationship;

    fn recall(records: &Records, key: &Self) -> Option<Self::Value> {
        records.relationship(*key).cloned()
    }
}

impl Remembered for HistoryOf {
    type Value = Arc<Vec<Interaction>>;
}

impl Remembered for InteractionId {
    type Value = Interaction;
}

impl Remembered for InteractionPageKey {
    type Value = InteractionPage;
}

impl Remembered for ProgramId {
    type Value = Arc<Program>;
}

/// Error type of every load: shared, because one batch answers many resolvers.
pub type LoadError = Arc<StoreError>;

/// Key: all relationships of one stakeholder (both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelationshipsOf(pub StakeholderId);

/// Key: the whole interaction history of one relationship, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryOf(pub RelationshipId);

/// Key: one page of a relationship's interactions, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InteractionPageKey {
    /// The relationship.
    pub relationship: RelationshipId,
    /// Page size.
    pub count: usize,
    /// Where the page starts (forward: older than it) or ends (backward: newer than it).
    pub cursor: Option<InteractionCursor>,
    /// Which way the page is read from its cursor.
    pub direction: PageDirection,
    /// Only interactions about these topics (empty: all).
    pub topics: TopicSet,
}

impl Loader<StakeholderId> for StoreLoader {
    type Value = Arc<Stakeholder>;
    type Error = LoadError;

    async fn load(&self, keys: &[StakeholderId]) -> Result<HashMap<StakeholderId, Self::Value>, Self::Error> {
        let found = self.store.stakeholders_by_id(keys).await?;
        Ok(found.into_iter().map(|stakeholder| (stakeholder.id, Arc::new(stakeholder))).collect())
    }
}

impl Loader<RelationshipsOf> for StoreLoader {
    type Value = Arc<Vec<Relationship>>;
    type Error = LoadError;

    async fn load(&self, keys: &[RelationshipsOf]) -> Result<HashMap<RelationshipsOf, Self::Value>, Self::Error> {
        let ids: Vec<StakeholderId> = keys.iter().map(|key| key.0).collect();
        let found = self.store.relationships_of(&ids).await?;
        Ok(found.into_iter().map(|(id, list)| (RelationshipsOf(id), Arc::new(list))).collect())
    }
}

impl Loader<RelationshipId> for StoreLoader {
    type Value = Relationship;
    type Error = LoadError;

    async fn load(&self, keys: &[RelationshipId]) -> Result<HashMap<RelationshipId, Self::Value>, Self::Error> {
        let found = self.store.relationships_by_id(keys).await?;
        Ok(found.into_iter().map(|relationship| (relationship.id, relationship)).collect())
    }
}

impl Loader<HistoryOf> for StoreLoader {
    type Value = Arc<Vec<Interaction>>;
    type Error = LoadError;

    async fn load(&self, keys: &[HistoryOf]) -> Result<HashMap<HistoryOf, Self::Value>, Self::Error> {
        let ids: Vec<RelationshipId> = keys.iter().map(|key| key.0).collect();
        let found = self.store.interaction_histories(&ids).await?;
        Ok(found.into_iter().map(|(id, history)| (HistoryOf(id), Arc::new(history))).collect())
    }
}

impl Loader<InteractionId> for StoreLoader {
    type Value = Interaction;
    type Error = LoadError;

    async fn load(&self, keys: &[InteractionId]) -> Result<HashMap<InteractionId, Self::Value>, Self::Error> {
        let found = self.store.interactions_by_id(keys).await?;
        Ok(found.into_iter().map(|interaction| (interaction.id, interaction)).collect())
    }
}

impl Loader<InteractionPageKey> for StoreLoader {
    type Value = InteractionPage;
    type Error = LoadError;

    /// One store call per distinct (page size, cursor, direction, topics): in a nested query every relationship
    /// asks for the same.
    async fn load(&self, keys: &[InteractionPageKey]) -> Result<HashMap<InteractionPageKey, Self::Value>, Self::Error> {
        type Group = (usize, Option<InteractionCursor>, PageDirection, TopicSet);
        let mut groups: HashMap<Group, Vec<RelationshipId>> = HashMap::new();
        for key in keys {
            groups.entry((key.count, key.cursor, key.direction, key.topics)).or_default().push(key.relationship);
        }
        let mut pages = HashMap::with_capacity(keys.len());
        for ((count, cursor, direction, topics), relationships) in groups {
            let found = self.store.interaction_pages(&relationships, count, cursor, direction, topics).await?;
            for (relationship, page) in found {
                pages.insert(InteractionPageKey { relationship, count, cursor, direction, topics }, page);
            }
        }
        Ok(pages)
    }
}

impl Loader<ProgramId> for StoreLoader {
    type Value = Arc<Program>;
    type Error = LoadError;

    /// Every programme in one store call (a graph keeps at most a thousand), the ones asked for kept.
    async fn load(&self, keys: &[ProgramId]) -> Result<HashMap<ProgramId, Self::Value>, Self::Error> {
        let found = self.store.programs().await?;
        Ok(found
            .into_iter()
            .filter(|program| keys.contains(&program.id))
            .map(|program| (program.id, Arc::new(program)))
            .collect())
    }
}

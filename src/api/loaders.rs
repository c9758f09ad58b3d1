//! DataLoaders: every entity read of a request goes through these, so that a page of N stakeholders and their
//! relationships costs a constant number of store calls instead of N.

use crate::domain::{Interaction, InteractionId, Relationship, RelationshipId, Stakeholder, StakeholderId};
use crate::store::{GraphStore, InteractionCursor, InteractionPage, StoreError};
use async_graphql::dataloader::{DataLoader, Loader};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The one loader over the store; it answers several key types, each batched on its own.
pub struct StoreLoader {
    store: Arc<dyn GraphStore>,
}

/// How long no resolver may have asked for anything before a batch is sent.
const QUIET: Duration = Duration::from_micros(100);
/// How many times in a row the batch must find no new request after letting the resolvers run.
const QUIET_ROUNDS: u32 = 3;
/// The longest a batch waits for resolvers to go quiet.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// The loaders resolvers use: async-graphql's DataLoader, dispatched when resolvers go quiet.
///
/// A plain DataLoader sends its batch a fixed delay after the first key. When walking a large page takes longer
/// than that delay (a debug build, a busy machine), the page splits into several batches and the number of
/// store calls grows with the page size; and every level of a nested query waits the full delay. Here every load
/// counts as activity, and a batch leaves as soon as the resolvers have gone quiet (see [`settle`]), so a nested
/// page costs one store call per level whatever its size, and waits about [`QUIET`] per level.
pub struct Loaders {
    loader: DataLoader<StoreLoader>,
    activity: Arc<AtomicU64>,
}

/// Waits until `activity` has stopped changing for [`QUIET`] and [`QUIET_ROUNDS`] yields, or [`MAX_WAIT`] has
/// passed. Counting yields as well as time keeps a thread preempted by the OS from looking quiet: after each
/// yield the resolvers that are ready run first.
async fn settle(activity: &AtomicU64) {
    let started = Instant::now();
    let mut seen = activity.load(Ordering::Acquire);
    let mut quiet_since = Instant::now();
    let mut quiet_rounds = 0;
    while started.elapsed() < MAX_WAIT {
        tokio::task::yield_now().await;
        let now = activity.load(Ordering::Acquire);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
            quiet_rounds = 0;
        } else {
            quiet_rounds += 1;
            if quiet_rounds >= QUIET_ROUNDS && quiet_since.elapsed() >= QUIET {
                return;
            }
        }
    }
}

impl Loaders {
    /// Loaders over `store`. No cache: batching only, so no request ever sees another request's stale read.
    pub fn new(store: Arc<dyn GraphStore>) -> Self {
        let activity = Arc::new(AtomicU64::new(0));
        let quiet = activity.clone();
        let spawner = move |batch: BoxFuture<'static, ()>| {
            let quiet = quiet.clone();
            tokio::spawn(async move {
                settle(&quiet).await;
                batch.await;
            })
        };
        let loader = DataLoader::new(StoreLoader { store }, spawner).delay(Duration::ZERO).max_batch_size(5_000);
        Self { loader, activity }
    }

    /// Loads one value, batched with every other load of the same key type.
    pub async fn load_one<K>(&self, key: K) -> Result<Option<<StoreLoader as Loader<K>>::Value>, LoadError>
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        StoreLoader: Loader<K, Error = LoadError>,
    {
        self.activity.fetch_add(1, Ordering::AcqRel);
        self.loader.load_one(key).await
    }

    /// Loads several values, batched with every other load of the same key type.
    pub async fn load_many<K>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<HashMap<K, <StoreLoader as Loader<K>>::Value>, LoadError>
    where
        K: Send + Sync + Hash + Eq + Clone + 'static,
        StoreLoader: Loader<K, Error = LoadError>,
    {
        self.activity.fetch_add(1, Ordering::AcqRel);
        self.loader.load_many(keys).await
    }
}

/// Error type of every load: shared, because one batch answers many resolvers.
pub type LoadError = Arc<StoreError>;

/// Key: all relationships of one stakeholder (both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelationshipsOf(pub StakeholderId);

/// Key: one page of a relationship's interactions, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InteractionPageKey {
    /// The relationship.
    pub relationship: RelationshipId,
    /// Page size.
    pub first: usize,
    /// Continue after (older than) this cursor.
    pub before: Option<InteractionCursor>,
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

    /// One store call per distinct (page size, cursor): in a nested query every relationship asks for the same.
    async fn load(&self, keys: &[InteractionPageKey]) -> Result<HashMap<InteractionPageKey, Self::Value>, Self::Error> {
        let mut groups: HashMap<(usize, Option<InteractionCursor>), Vec<RelationshipId>> = HashMap::new();
        for key in keys {
            groups.entry((key.first, key.before)).or_default().push(key.relationship);
        }
        let mut pages = HashMap::with_capacity(keys.len());
        for ((first, before), relationships) in groups {
            for (relationship, page) in self.store.interaction_pages(&relationships, first, before).await? {
                pages.insert(InteractionPageKey { relationship, first, before }, page);
            }
        }
        Ok(pages)
    }
}

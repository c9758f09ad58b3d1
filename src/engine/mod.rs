//! The in-memory projection of the graph and the algorithms over it (docs/models.md, ARCHITECTURE.md).
//!
//! [`Engine`] keeps the current [`Snapshot`] behind an atomic pointer: analyses take the snapshot they start
//! with and never see a half-applied change; applying a change builds the next snapshot beside it and swaps it
//! in, so writes never wait for an analysis. The projection is fed by the change log: built from a consistent
//! scan of the store at a log position, then brought forward by reading the log after that position (from this
//! process's writes, which catch up before their mutation returns, and by polling, for other processes).
//! Algorithms are pure functions over a snapshot.

pub mod aggregates;
pub mod analysis;
pub mod broker_ranking;
pub mod brokers;
pub mod churn;
pub mod crossings;
pub mod estimates;
pub mod exits;
pub mod export;
pub mod markets;
pub mod paths;
pub mod programs;
pub mod records;
pub mod risk;
pub mod snapshot;
pub mod trends;

pub use records::Records;
pub use snapshot::{Changes, ProjectionError, Snapshot};

use crate::domain::strength::StrengthModel;
use crate::domain::{ChangeEvent, RelationshipId, Stakeholder, StakeholderId};
use crate::store::{GraphStore, NodeRow, StoreError};
use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Duration, Utc};
use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Change-log entries read per step when catching up.
const LOG_PAGE: usize = 5_000;

/// Relationships whose histories are read per store call when past strengths need them.
const HISTORIES_PER_READ: usize = 2_000;

/// Stakeholders read per store call when the records are built.
const RECORDS_PER_READ: usize = 10_000;

/// Change-log entries kept in memory after the engine applied them, for subscribers that are close behind.
pub const RECENT_CAPACITY: usize = 20_000;

/// What time it is: the wall clock in service, a settable one in tests of decay.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The current snapshot's change-log position and the time its strengths are evaluated at; published whenever
/// either moves (a change applied, or the decay sweep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The change-log position.
    pub seq: i64,
    /// The strengths' clock.
    pub as_of: DateTime<Utc>,
}

/// The latest change-log entries the engine applied, in order. Positions may have gaps (a sequence number is not
/// reused), so entries are found by position, never by offset. A persistent vector: the engine derives the next
/// tail from the current one in O(log n) and swaps it in, so a reader never holds anything a writer waits for (a
/// subscriber's thread runs below a mutation's, and a lock held by it could keep the mutation waiting).
#[derive(Clone)]
struct Recent {
    /// Every entry with a position in `(start, end]` is in `events`.
    start: i64,
    /// The position of the last entry held (or `start`).
    end: i64,
    events: imbl::Vector<Arc<ChangeEvent>>,
    capacity: usize,
}

impl Recent {
    fn starting_at(seq: i64, capacity: usize) -> Self {
        Self { start: seq, end: seq, events: imbl::Vector::new(), capacity }
    }

    /// Holds `events` (entries at or before `end` are already held and skipped), dropping the oldest past capacity.
    fn extend(&mut self, events: Vec<ChangeEvent>) {
        for event in events {
            if event.seq <= self.end {
                continue;
            }
            self.end = event.seq;
            self.events.push_back(Arc::new(event));
        }
        while self.events.len() > self.capacity {
            if let Some(dropped) = self.events.pop_front() {
                self.start = dropped.seq;
            }
        }
    }

    /// Up to `limit` entries after `after`, or `None` when entries after `after` are no longer held.
    fn after(&self, after: i64, limit: usize) -> Option<Vec<Arc<ChangeEvent>>> {
        if after < self.start {
            return None;
        }
        let from = self
            .events
            .binary_search_by(
                |event| if event.seq <= after { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater },
            )
            .unwrap_or_else(|index| index);
        Some(self.events.clone().slice(from..).iter().take(limit).cloned().collect())
    }
}

/// Why the engine cannot serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The projection cannot hold the graph.
    #[error("the graph cannot be projected: {0}")]
    Projection(String),
}

impl From<ProjectionError> for EngineError {
    fn from(error: ProjectionError) -> Self {
        EngineError::Projection(error.to_string())
    }
}

/// The projection of one store, kept current.
pub struct Engine {
    store: Arc<dyn GraphStore>,
    model: Arc<StrengthModel>,
    /// How old the strengths' clock may get before the engine re-evaluates them all (the decay sweep).
    refresh: Duration,
    clock: Clock,
    current: ArcSwapOption<Snapshot>,
    /// The records the API reads, at least as new as the current snapshot.
    records: ArcSwapOption<Records>,
    /// One applier at a time; readers never take it.
    applying: tokio::sync::Mutex<()>,
    /// Results of whole-graph analyses for the snapshot they were computed on.
    memo: Memo,
    /// The position and clock of the current snapshot, for whoever waits for new changes (subscriptions).
    published: tokio::sync::watch::Sender<Published>,
    /// The latest change-log entries applied, so that subscribers close behind do not each read the store.
    recent: ArcSwap<Recent>,
    recent_capacity: usize,
    /// The interactions of the relationships active after the latest time past strengths were asked for
    /// ([`Engine::windows_at`]), kept across snapshots: a write re-reads only the histories it changed.
    windows: Arc<std::sync::Mutex<trends::Windows>>,
    /// Held while windows are built, so that requests arriving together read each history once.
    building: tokio::sync::Mutex<()>,
    /// The trend base the kept windows were last pruned and moved on to.
    pruned_at: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// The highest change-log position of a write this process acknowledged while the projection was not built
    /// ([`Engine::reflect`]): [`Engine::load`] never hands out a snapshot older than it.
    owed: AtomicI64,
}

/// Whole-graph results (PageRank, betweenness, aggregates) kept for one snapshot, identified by its position and
/// clock: repeated dashboard requests reuse them until the projection changes. At most [`MEMO_ENTRIES`] results,
/// the oldest forgotten first, so that requests varying an argument cannot make it grow without bound.
#[derive(Default)]
struct Memo {
    entries: std::sync::Mutex<MemoEntries>,
}

/// Results a memo keeps at most.
const MEMO_ENTRIES: usize = 64;

/// The snapshot's change-log position and clock (in ms), the results by key, and the keys in the order they came.
type MemoEntries = (i64, i64, HashMap<String, Arc<dyn Any + Send + Sync>>, std::collections::VecDeque<String>);

impl Memo {
    fn get<T: Any + Send + Sync>(&self, snapshot: &Snapshot, key: &str) -> Option<Arc<T>> {
        let entries = self.entries.lock().ok()?;
        let (seq, clock, map, _) = &*entries;
        if (*seq, *clock) != (snapshot.seq(), snapshot.as_of().timestamp_millis()) {
            return None;
        }
        map.get(key).cloned().and_then(|value| value.downcast::<T>().ok())
    }

    fn put<T: Any + Send + Sync>(&self, snapshot: &Snapshot, key: &str, value: Arc<T>) {
        let Ok(mut entries) = self.entries.lock() else { return };
        let identity = (snapshot.seq(), snapshot.as_of().timestamp_millis());
        if (entries.0, entries.1) != identity {
            *entries = (identity.0, identity.1, HashMap::new(), Default::default());
        }
        let (_, _, map, order) = &mut *entries;
        if map.insert(key.to_owned(), value).is_none() {
            order.push_back(key.to_owned());
            while order.len() > MEMO_ENTRIES {
                if let Some(oldest) = order.pop_front() {
                    map.remove(&oldest);
                }
            }
        }
    }
}

impl Engine {
    /// An engine over `store`; the projection is built on first use (or by [`Engine::load`]).
    pub fn new(store: Arc<dyn GraphStore>, model: Arc<StrengthModel>) -> Self {
        Self {
            store,
            model,
            refresh: Duration::minutes(10),
            clock: Arc::new(Utc::now),
            current: ArcSwapOption::empty(),
            records: ArcSwapOption::empty(),
            applying: tokio::sync::Mutex::new(()),
            memo: Memo::default(),
            published: tokio::sync::watch::Sender::new(Published { seq: 0, as_of: DateTime::UNIX_EPOCH }),
            recent: ArcSwap::from_pointee(Recent::starting_at(0, RECENT_CAPACITY)),
            recent_capacity: RECENT_CAPACITY,
            owed: AtomicI64::new(0),
            windows: Default::default(),
            building: tokio::sync::Mutex::new(()),
            pruned_at: Default::default(),
        }
    }

    /// This engine reading the time from `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// This engine holding the last `entries` applied log entries in memory (default [`RECENT_CAPACITY`]).
    pub fn with_recent_capacity(mut self, entries: usize) -> Self {
        self.recent_capacity = entries;
        self
    }

    /// The store the projection follows.
    pub fn store(&self) -> &Arc<dyn GraphStore> {
        &self.store
    }

    /// The strength model the projection evaluates.
    pub fn model(&self) -> &Arc<StrengthModel> {
        &self.model
    }

    /// The time by the engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The position and clock of the current snapshot, updated as the engine applies the log (after this
    /// process's mutations at once, after other processes' within the follower's interval) and sweeps decay.
    pub fn published(&self) -> tokio::sync::watch::Receiver<Published> {
        self.published.subscribe()
    }

    /// Up to `limit` change-log entries after position `after` from memory, or `None` when the engine no longer
    /// holds them (read the store). Entries are held once the snapshot that reflects them is current, so the
    /// current snapshot is never older than an entry returned here.
    pub fn recent_after(&self, after: i64, limit: usize) -> Option<Vec<Arc<ChangeEvent>>> {
        self.recent.load().after(after, limit)
    }

    /// The position the recent tail starts after: [`Engine::recent_after`] answers for every position from here.
    pub fn recent_start(&self) -> i64 {
        self.recent.load().start
    }

    /// Makes `snapshot` current, then holds `applied` (the log entries it reflects beyond the previous one) in the
    /// recent tail, then publishes its position: a subscriber woken by the position finds the entries, and never
    /// finds an entry newer than the current snapshot.
    fn swap(&self, snapshot: Arc<Snapshot>, applied: Vec<ChangeEvent>) {
        let next = Published { seq: snapshot.seq(), as_of: snapshot.as_of() };
        self.current.store(Some(snapshot));
        if !applied.is_empty() {
            // Only the applier (holding `applying`) writes the tail.
            let mut recent = Recent::clone(&self.recent.load());
            recent.extend(applied);
            self.recent.store(Arc::new(recent));
        }
        self.published.send_if_modified(|published| {
            let moved = next.seq > published.seq || (next.seq == published.seq && next.as_of != published.as_of);
            if moved {
                *published = next;
            }
            moved
        });
    }

    /// The result remembered for `snapshot` under `key`, if one is (cheap: a lookup, no computation).
    pub fn remembered<T: Any + Send + Sync>(&self, snapshot: &Snapshot, key: &str) -> Option<Arc<T>> {
        self.memo.get::<T>(snapshot, key)
    }

    /// The result of `compute` on `snapshot` under `key`, computed once per snapshot (on this thread: call it
    /// from a blocking task). `compute` returning `None` (out of time) is not remembered.
    pub fn memoized<T: Any + Send + Sync>(
        &self,
        snapshot: &Snapshot,
        key: &str,
        compute: impl FnOnce() -> Option<T>,
    ) -> Option<Arc<T>> {
        if let Some(found) = self.memo.get::<T>(snapshot, key) {
            return Some(found);
        }
        let value = Arc::new(compute()?);
        self.memo.put(snapshot, key, value.clone());
        Some(value)
    }

    /// The windows ([`trends::Window`]) of `needing` (relationships with their [`Snapshot::interactions_key`])
    /// that serve `at`: those kept that still do, the others built from histories read from the store,
    /// [`HISTORIES_PER_READ`] relationships a call (the lookups and building on blocking threads, one caller at a
    /// time, so that requests arriving together read each history once). What was built is kept, also when
    /// `deadline` passes midway (`Ok(None)`), so that a retry goes on from there. The answer is the caller's own:
    /// what the engine forgets afterwards does not change it. Asked at the snapshot's trend base (`trend_base`), the
    /// engine forgets the windows of relationships without an interaction after that base (the snapshot covers
    /// them) and folds into the others' sums the interactions older than it, so that it holds about the last
    /// [`crate::domain::strength::TREND_DAYS`] days of interactions of the relationships active in them.
    pub async fn windows_at(
        &self,
        needing: Vec<(RelationshipId, (u64, [u32; 4]))>,
        at: DateTime<Utc>,
        trend_base: bool,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<trends::Windows>, EngineError> {
        let blocking = |error: tokio::task::JoinError| EngineError::Projection(error.to_string());
        let _building = self.building.lock().await;
        let kept = self.windows.clone();
        let cache = kept.clone();
        let (mut found, missing) = tokio::task::spawn_blocking(move || {
            let cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut found = trends::Windows::with_capacity(needing.len());
            let mut missing = Vec::new();
            for (id, key) in needing {
                match cache.get(&id).filter(|window| window.serves(key, at)) {
                    Some(window) => {
                        found.insert(id, window.clone());
                    }
                    None => missing.push((id, key)),
                }
            }
            (found, missing)
        })
        .await
        .map_err(blocking)?;
        for chunk in missing.chunks(HISTORIES_PER_READ) {
            if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
                return Ok(None);
            }
            let ids: Vec<RelationshipId> = chunk.iter().map(|(id, _)| *id).collect();
            let histories = self.store.interaction_histories(&ids).await?;
            let (model, chunk, cache) = (self.model.clone(), chunk.to_vec(), kept.clone());
            let built = tokio::task::spawn_blocking(move || {
                let built = chunk.into_iter().map(|(id, key)| {
                    let history = histories.get(&id).map(Vec::as_slice).unwrap_or_default();
                    (id, Arc::new(trends::Window::new(&model, key, history, at)))
                });
                let built: Vec<_> = built.collect();
                cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(built.iter().cloned());
                built
            })
            .await
            .map_err(blocking)?;
            found.extend(built);
        }
        // Once per trend base (it moves with the decay sweep): a pass over every window kept.
        let moved = trend_base && {
            let mut pruned = self.pruned_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            pruned.replace(at) != Some(at)
        };
        if moved {
            let model = self.model.clone();
            tokio::task::spawn_blocking(move || {
                let mut cache = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                cache.retain(|_, window| window.active_after(at));
                for window in cache.values_mut() {
                    if at - window.base() > Duration::days(1) {
                        *window = Arc::new(window.advanced(&model, at));
                    }
                }
            })
            .await
            .map_err(blocking)?;
        }
        Ok(Some(found))
    }

    /// Makes `snapshot`, if it is still the current one, know the past strengths `known` ([`Snapshot::with_past`]),
    /// so that the snapshots the next changes make know them too and a trend after a write reads only the histories
    /// it changed. Skipped while a change is being applied (the next trend request reads them again).
    pub fn remember_past(&self, snapshot: &Arc<Snapshot>, known: &[(usize, f32)]) {
        let Ok(_applying) = self.applying.try_lock() else { return };
        let current = self.current.load_full();
        if current.as_ref().is_some_and(|current| Arc::ptr_eq(current, snapshot)) {
            self.current.store(Some(Arc::new(snapshot.with_past(known))));
        }
    }

    /// The current snapshot, building the projection first if it is not built yet (or waiting for the build in
    /// progress), and bringing it up to every write this process acknowledged before it was built
    /// ([`Engine::reflect`]).
    pub async fn load(&self) -> Result<Arc<Snapshot>, EngineError> {
        let owed = self.owed.load(Ordering::Acquire);
        if let Some(snapshot) = self.current.load_full().filter(|snapshot| snapshot.seq() >= owed) {
            return Ok(snapshot);
        }
        let _applying = self.applying.lock().await;
        let snapshot = match self.current.load_full() {
            Some(snapshot) => snapshot,
            None => self.build().await?,
        };
        if snapshot.seq() >= owed {
            return Ok(snapshot);
        }
        match self.apply_log(snapshot.clone()).await {
            Ok(snapshot) => Ok(snapshot),
            Err(error) => {
                tracing::warn!(%error, "the projection could not catch up with an acknowledged write; it will retry");
                Ok(self.current.load_full().unwrap_or(snapshot))
            }
        }
    }

    /// The current snapshot if it is built.
    pub fn loaded(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Makes a write this process committed at change-log position `seq` visible to every analysis that starts
    /// after this returns: a built projection catches up now; one not built yet, or being built from a scan that
    /// may have started before the write, owes it, and [`Engine::load`] brings it that far before handing it out.
    /// A mutation therefore never waits for a build, and no analysis misses a write acknowledged before it started.
    pub async fn reflect(&self, seq: i64) -> Result<(), EngineError> {
        if self.current.load().is_none() {
            self.owed.fetch_max(seq, Ordering::AcqRel);
            return Ok(());
        }
        self.catch_up().await.map(drop)
    }

    /// Builds the projection (if it is not built yet), applies every change-log entry after the current snapshot's
    /// position, and re-evaluates strengths whose clock is older than the refresh interval; returns the snapshot
    /// now current. When this returns after a write committed, the write is visible to every analysis that starts
    /// afterwards, even when a build was in progress (its scan may predate the write: the log after it is applied
    /// here).
    pub async fn catch_up(&self) -> Result<Arc<Snapshot>, EngineError> {
        let _applying = self.applying.lock().await;
        let snapshot = match self.current.load_full() {
            Some(snapshot) => snapshot,
            None => self.build().await?,
        };
        let mut snapshot = self.apply_log(snapshot).await?;
        let now = self.now();
        if now - snapshot.as_of() >= self.refresh {
            let base = snapshot.clone();
            let next = tokio::task::spawn_blocking(move || base.refreshed(now))
                .await
                .map_err(|error| EngineError::Projection(error.to_string()))?;
            snapshot = Arc::new(next);
            self.swap(snapshot.clone(), Vec::new());
        }
        Ok(snapshot)
    }

    /// Builds the projection from a consistent scan of the store and makes it current. The caller holds
    /// `applying`.
    async fn build(&self) -> Result<Arc<Snapshot>, EngineError> {
        let scan = self.store.graph_scan().await?;
        let model = self.model.clone();
        let now = self.now();
        let (snapshot, scan) =
            tokio::task::spawn_blocking(move || Snapshot::build(&scan, model, now).map(|built| (built, scan)))
                .await
                .map_err(|error| EngineError::Projection(error.to_string()))??;
        let snapshot = Arc::new(snapshot);
        // The stakeholders' records are read after the scan: each is at least as new as the snapshot, and any
        // that changed since comes again with the next catch-up.
        let mut stakeholders = Vec::with_capacity(scan.stakeholders.len());
        let ids: Vec<StakeholderId> =
            scan.stakeholders.iter().map(|node| node.id).chain(scan.archived.iter().copied()).collect();
        for chunk in ids.chunks(RECORDS_PER_READ) {
            stakeholders.extend(self.store.stakeholders_by_id(chunk).await?);
        }
        let records = tokio::task::spawn_blocking(move || Records::new(stakeholders, scan.relationships))
            .await
            .map_err(|error| EngineError::Projection(error.to_string()))?;
        self.records.store(Some(Arc::new(records)));
        self.recent.store(Arc::new(Recent::starting_at(snapshot.seq(), self.recent_capacity)));
        self.swap(snapshot.clone(), Vec::new());
        Ok(snapshot)
    }

    /// The records the API reads (live stakeholders, relationships, who has which), once the projection is
    /// built; at least as new as the current snapshot. `None` (the store answers) also while the projection lacks a
    /// write this process acknowledged during the build ([`Engine::reflect`]), until a load or catch-up brings it:
    /// a mutation's answer is read back from the records only when they hold it.
    pub fn records(&self) -> Option<Arc<Records>> {
        let owed = self.owed.load(Ordering::Acquire);
        match &*self.current.load() {
            Some(snapshot) if snapshot.seq() >= owed => self.records.load_full(),
            _ => None,
        }
    }

    /// Applies every change-log entry after `snapshot`'s position, making each step (snapshot and records) current;
    /// returns the last. The caller holds `applying`, and `snapshot` is the current one.
    async fn apply_log(&self, mut snapshot: Arc<Snapshot>) -> Result<Arc<Snapshot>, EngineError> {
        loop {
            let events = self.store.changes_after(snapshot.seq(), LOG_PAGE).await?;
            let Some(last) = events.last().map(|event| event.seq) else { break };
            // Only stakeholder events change a stakeholder's row; a relationship's event names its ends for
            // subscribers, and re-reading them (two per relationship of an interaction batch) changes nothing.
            let stakeholders: BTreeSet<StakeholderId> = events
                .iter()
                .filter(|event| event.kind.changes_stakeholders())
                .flat_map(|event| event.stakeholders.iter().copied())
                .collect();
            let relationships: BTreeSet<RelationshipId> =
                events.iter().filter_map(|event| event.relationship).collect();
            let (changes, rows) = self.changes(stakeholders, relationships).await?;
            let base = snapshot.clone();
            let records = self.records.load_full().unwrap_or_default();
            let (next, records) = tokio::task::spawn_blocking(move || {
                let records = records.apply(&rows, &changes.relationships);
                base.apply(last, &changes).map(|next| (next, records))
            })
            .await
            .map_err(|error| EngineError::Projection(error.to_string()))??;
            self.records.store(Some(Arc::new(records)));
            snapshot = Arc::new(next);
            let complete = events.len() < LOG_PAGE;
            self.swap(snapshot.clone(), events);
            if complete {
                break;
            }
        }
        Ok(snapshot)
    }

    /// The current rows of the stakeholders and relationships that changed: as the snapshot takes them, and the
    /// stakeholders' whole records.
    async fn changes(
        &self,
        stakeholders: BTreeSet<StakeholderId>,
        relationships: BTreeSet<RelationshipId>,
    ) -> Result<(Changes, Vec<Stakeholder>), EngineError> {
        let ids: Vec<StakeholderId> = stakeholders.into_iter().collect();
        let mut changes = Changes::default();
        let rows = self.store.stakeholders_by_id(&ids).await?;
        for stakeholder in &rows {
            if stakeholder.is_archived() {
                changes.removed.push(stakeholder.id);
            } else {
                changes.stakeholders.push(NodeRow::of(stakeholder));
            }
        }
        let ids: Vec<RelationshipId> = relationships.into_iter().collect();
        changes.relationships = self.store.relationships_by_id(&ids).await?;
        Ok((changes, rows))
    }

    /// Polls the change log every `every` (for writes made by other processes, and to refresh the clock) until
    /// the engine is dropped elsewhere; failures are logged and retried.
    pub fn spawn_follower(self: &Arc<Self>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(engine) = engine.upgrade() else { break };
                if let Err(error) = engine.catch_up().await {
                    tracing::warn!(%error, "the projection could not follow the change log; retrying");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChangeKind;

    fn entry(seq: i64) -> ChangeEvent {
        ChangeEvent {
            seq,
            at: Utc::now(),
            kind: ChangeKind::StakeholderCreated,
            stakeholders: vec![StakeholderId(seq)],
            relationship: None,
            payload: crate::domain::Change::Interactions { ids: Vec::new(), topics: None },
        }
    }

    fn positions(events: Option<Vec<Arc<ChangeEvent>>>) -> Option<Vec<i64>> {
        events.map(|events| events.iter().map(|event| event.seq).collect())
    }

    #[test]
    fn the_recent_tail_answers_only_for_positions_it_covers_and_skips_gaps_by_position() {
        let mut recent = Recent::starting_at(10, 3);
        recent.extend([11, 12, 14].map(entry).to_vec());
        assert_eq!(positions(recent.after(10, 10)), Some(vec![11, 12, 14]));
        assert_eq!(positions(recent.after(12, 10)), Some(vec![14]), "a gap at 13 is skipped by position");
        assert_eq!(positions(recent.after(11, 1)), Some(vec![12]));
        assert_eq!(positions(recent.after(14, 10)), Some(vec![]), "nothing after the end yet");
        assert_eq!(positions(recent.after(9, 10)), None, "before the start: read the store");
        // Entries already held are skipped; past capacity the oldest go and the start moves up to them.
        recent.extend([14, 15, 16].map(entry).to_vec());
        assert_eq!(positions(recent.after(12, 10)), Some(vec![14, 15, 16]));
        assert_eq!(positions(recent.after(11, 10)), None, "12 is no longer held");
    }
}

//! `strengthCrossed` (README, "What the API offers"): a relationship's strength moving past a threshold, with hysteresis.
//!
//! The rules (the band, which side a relationship is on, when a crossing is reported, what resuming reports) are
//! the engine's: [`crate::engine::crossings`]. This module is the subscription around them: it checks the
//! arguments, decides which relationships a subscriber watches (its scope, and what it may read), waits for each
//! snapshot the engine publishes, reads what changed from the change log, hands the watched relationships'
//! strengths to the subscriber's [`Tracker`], and maps what it reports to GraphQL with a cursor.
//!
//! The sides are re-evaluated on every snapshot the engine publishes: after each change (only the relationships
//! the change touched) and after each decay sweep, when the engine re-evaluates every strength at a later clock
//! (all of them: strength decays with time alone). Each evaluation that moves some relationship across sends one
//! message with all of its crossings and a cursor for that evaluation (`after` resumes from it).

use super::auth::Caller;
use super::enums::{Market, RelationshipType};
use super::error::ApiError;
use super::ids::GlobalId;
use super::subscription::Filter;
use super::ApiContext;
use crate::domain::{ChangeEvent, RelationshipId};
use crate::engine::crossings::{Band, Cause, Changed, Crossing, Direction, Tracker};
use crate::engine::{Engine, Published, Snapshot};
use crate::store::{GraphStore, StoreError};
use async_graphql::{Context, Enum, InputObject, SimpleObject, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, Stream};
use std::sync::Arc;

/// Change-log entries read per step while collecting what changed between two evaluations.
const PAGE: usize = 1_000;

/// Which relationships a `strengthCrossed` subscriber watches; every condition given must hold.
#[derive(InputObject, Default)]
pub struct StrengthWatch {
    /// Only the relationships of this stakeholder (either end).
    stakeholder: Option<ID>,
    /// Only relationships with an end in one of these markets.
    markets: Option<Vec<Market>>,
    /// Only relationships of these types.
    relationship_types: Option<Vec<RelationshipType>>,
}

/// Which way a strength moved past the threshold.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CrossingDirection {
    /// It rose above `threshold + hysteresis`.
    RoseAbove,
    /// It fell below `threshold − hysteresis`.
    FellBelow,
}

/// What moved it.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CrossingCause {
    /// A change to the relationship (created, updated, interactions recorded).
    Change,
    /// Time alone: the strength decayed (or, for a relationship whose inputs did not change, the clock moved).
    Decay,
    /// Reported on resuming because the relationship changed, or sat inside the band, at the resume cursor: its
    /// side now, which the client may already know.
    Resume,
}

impl From<Direction> for CrossingDirection {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::RoseAbove => CrossingDirection::RoseAbove,
            Direction::FellBelow => CrossingDirection::FellBelow,
        }
    }
}

impl From<Cause> for CrossingCause {
    fn from(cause: Cause) -> Self {
        match cause {
            Cause::Change => CrossingCause::Change,
            Cause::Decay => CrossingCause::Decay,
            Cause::Resume => CrossingCause::Resume,
        }
    }
}

/// One relationship that crossed.
#[derive(SimpleObject, Debug, Clone)]
pub struct StrengthCrossing {
    /// The relationship.
    pub relationship: ID,
    /// Its source stakeholder.
    pub from: ID,
    /// Its target stakeholder.
    pub to: ID,
    /// Its type.
    pub relationship_type: RelationshipType,
    /// Which way it crossed.
    pub direction: CrossingDirection,
    /// What moved it.
    pub cause: CrossingCause,
    /// Its strength at `asOf` (as the analyses see it: f32, at the engine's clock).
    pub strength: f64,
}

/// The crossings found by one evaluation.
#[derive(SimpleObject, Debug, Clone)]
pub struct StrengthCrossings {
    /// Pass as `after` to resume after this message.
    pub cursor: String,
    /// The time the strengths were evaluated at.
    pub as_of: DateTime<Utc>,
    /// The relationships that crossed, by relationship id.
    pub crossings: Vec<StrengthCrossing>,
}

/// Starts a `strengthCrossed` subscription.
pub(crate) async fn start(
    ctx: &Context<'_>,
    threshold: f64,
    hysteresis: f64,
    watch: Option<StrengthWatch>,
    after: Option<String>,
) -> Result<impl Stream<Item = Result<StrengthCrossings, ApiError>> + use<>, ApiError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ApiError::bad_input(
            "threshold",
            format!("{threshold} is not between 0 and 1; pass the strength to watch for, e.g. 0.3"),
        ));
    }
    if !(0.0..=0.5).contains(&hysteresis) {
        return Err(ApiError::bad_input(
            "hysteresis",
            format!("{hysteresis} is not between 0 and 0.5; pass how far past the threshold counts, e.g. 0.02"),
        ));
    }
    let watch = watch.unwrap_or_default();
    let scope = Filter::of(watch.stakeholder, watch.markets, watch.relationship_types)?;
    let resume = after.as_deref().map(decode).transpose()?;
    let api = ctx.data_unchecked::<ApiContext>();
    let mut published = api.engine.published();
    published.borrow_and_update();
    let snapshot = api.engine.load().await.map_err(|error| {
        tracing::error!(%error, "the engine is not available for strengthCrossed");
        ApiError::Unavailable
    })?;
    let mut watcher = Watcher {
        engine: api.engine.clone(),
        store: api.store.clone(),
        published,
        view: View { scope, sees_private: Caller::of(ctx).sees_private() },
        tracker: Tracker::new(Band::new(threshold, hysteresis)),
        ended: false,
        at: Published { seq: snapshot.seq(), as_of: snapshot.as_of() },
        pending: None,
    };
    match resume {
        None => watcher.settle(&snapshot),
        Some(point) => watcher.pending = watcher.resume(&snapshot, point).await?,
    }
    Ok(stream::unfold(watcher, |mut watcher| async move { watcher.next().await.map(|item| (item, watcher)) }))
}

/// One subscriber: what it watches, its sides, and where it stands in the engine's snapshots.
struct Watcher {
    engine: Arc<Engine>,
    store: Arc<dyn GraphStore>,
    published: tokio::sync::watch::Receiver<Published>,
    view: View,
    /// The side of every watched relationship, and the rules that move it.
    tracker: Tracker,
    ended: bool,
    /// The snapshot last evaluated.
    at: Published,
    /// Crossings found on resuming, sent first.
    pending: Option<StrengthCrossings>,
}

impl Watcher {
    /// The next message: crossings found on resuming, else those of the next evaluation that finds any. `None`
    /// ends the stream (the engine is gone, or the store failed: the client resumes from its cursor).
    async fn next(&mut self) -> Option<Result<StrengthCrossings, ApiError>> {
        if let Some(pending) = self.pending.take() {
            return Some(Ok(pending));
        }
        if self.ended {
            return None;
        }
        loop {
            self.published.changed().await.ok()?;
            let snapshot = self.engine.loaded()?;
            if (snapshot.seq(), snapshot.as_of()) == (self.at.seq, self.at.as_of) {
                continue;
            }
            let changed = match self.changed_since(self.at.seq, snapshot.seq()).await {
                Ok(changed) => changed,
                Err(error) => {
                    self.ended = true;
                    return Some(Err(error.into()));
                }
            };
            let crossings = if changed.needs_full_scan(snapshot.as_of() != self.at.as_of) {
                self.evaluate_all(&snapshot, &changed, false)
            } else {
                let edges = self.changed_edges(&snapshot, &changed);
                let watched = edges.into_iter().map(|(source, edge)| observed(&snapshot, source, edge));
                let found = self.tracker.evaluate_touched(watched, &changed);
                found.into_iter().map(|crossing| to_graphql(&snapshot, crossing)).collect()
            };
            self.at = Published { seq: snapshot.seq(), as_of: snapshot.as_of() };
            if !crossings.is_empty() {
                return Some(Ok(self.message(crossings)));
            }
        }
    }

    /// Sides at subscription time, by the plain threshold; nothing is reported.
    fn settle(&mut self, snapshot: &Snapshot) {
        let ids = self.view.candidates(snapshot).map(|(_, edge)| snapshot.relationship(edge));
        let watched = self
            .view
            .edges(snapshot)
            .map(|(_, edge)| (snapshot.relationship(edge), f64::from(snapshot.strength(edge))));
        self.tracker.settle(ids, watched);
    }

    /// Sides at the resume point `point` (see [`crate::engine::crossings`]), then the crossings between it and
    /// `snapshot`.
    async fn resume(&mut self, snapshot: &Snapshot, point: Published) -> Result<Option<StrengthCrossings>, ApiError> {
        let changed = self.changed_since(point.seq, snapshot.seq()).await?;
        let ids = self.view.candidates(snapshot).map(|(_, edge)| snapshot.relationship(edge));
        let watched = self.view.edges(snapshot).map(|(_, edge)| (snapshot.relationship(edge), edge));
        self.tracker.resume(ids, watched, &changed, |edge| f64::from(snapshot.strength_at(edge, point.as_of)));
        let crossings = self.evaluate_all(snapshot, &changed, true);
        Ok((!crossings.is_empty()).then(|| self.message(crossings)))
    }

    /// Re-evaluates every watched relationship; the crossings, by relationship id.
    fn evaluate_all(&mut self, snapshot: &Snapshot, changed: &Changed, resuming: bool) -> Vec<StrengthCrossing> {
        let ids = self.view.candidates(snapshot).map(|(_, edge)| snapshot.relationship(edge));
        let watched = self.view.edges(snapshot).map(|(source, edge)| observed(snapshot, source, edge));
        let found = self.tracker.evaluate_all(ids, watched, changed, resuming);
        found.into_iter().map(|crossing| to_graphql(snapshot, crossing)).collect()
    }

    /// The message for crossings found at the current evaluation point.
    fn message(&self, crossings: Vec<StrengthCrossing>) -> StrengthCrossings {
        StrengthCrossings { cursor: encode(self.at), as_of: self.at.as_of, crossings }
    }

    /// The watched edges of the relationships in `changed`.
    fn changed_edges(&self, snapshot: &Snapshot, changed: &Changed) -> Vec<(u32, usize)> {
        changed
            .touched()
            .iter()
            .filter_map(|&(relationship, from)| Some((snapshot.index_of(from)?, snapshot.edge_of(relationship, from)?)))
            .filter(|&(source, edge)| self.view.watches(snapshot, source, edge))
            .collect()
    }

    /// What the change log says changed in `(from, to]`: from the engine's recent entries, else the store.
    async fn changed_since(&self, from: i64, to: i64) -> Result<Changed, StoreError> {
        let mut changed = Changed::default();
        let mut cursor = from;
        while cursor < to {
            let events: Vec<Arc<ChangeEvent>> = match self.engine.recent_after(cursor, PAGE) {
                Some(events) => events,
                None => self.store.changes_after(cursor, PAGE).await?.into_iter().map(Arc::new).collect(),
            };
            let Some(last) = events.last().map(|event| event.seq) else { break };
            for event in events.iter().filter(|event| event.seq <= to) {
                changed.record(event);
            }
            cursor = last;
        }
        Ok(changed)
    }
}

/// A watched edge (from `source`) as the tracker takes it: its relationship, its strength now, and the edge.
fn observed(snapshot: &Snapshot, source: u32, edge: usize) -> (RelationshipId, f64, (u32, usize)) {
    (snapshot.relationship(edge), f64::from(snapshot.strength(edge)), (source, edge))
}

/// A crossing the tracker reported, as the API tells it.
fn to_graphql(snapshot: &Snapshot, crossing: Crossing<(u32, usize)>) -> StrengthCrossing {
    let (source, edge) = crossing.at;
    StrengthCrossing {
        relationship: GlobalId::Relationship(crossing.relationship).encode(),
        from: GlobalId::Stakeholder(snapshot.stakeholder(source)).encode(),
        to: GlobalId::Stakeholder(snapshot.stakeholder(snapshot.target(edge))).encode(),
        relationship_type: snapshot.relationship_type(edge).into(),
        direction: crossing.direction.into(),
        cause: crossing.cause.into(),
        strength: crossing.strength,
    }
}

/// What one subscriber may and wants to see.
struct View {
    scope: Filter,
    sees_private: bool,
}

impl View {
    /// Whether this subscriber watches `edge` from `source`: in its scope, and both ends readable to it.
    fn watches(&self, snapshot: &Snapshot, source: u32, edge: usize) -> bool {
        let target = snapshot.target(edge);
        let ends = [source, target].map(|node| (snapshot.stakeholder(node), snapshot.markets(node)));
        (self.sees_private || !(snapshot.is_private(source) || snapshot.is_private(target)))
            && self.scope.admits(ends.into_iter(), Some(snapshot.relationship_type(edge)))
    }

    /// The edges, as (source, edge), that the scope's stakeholder (if any) allows: every edge watched, and others.
    fn candidates<'a>(&self, snapshot: &'a Snapshot) -> Box<dyn Iterator<Item = (u32, usize)> + 'a> {
        match self.scope.stakeholder {
            Some(id) => match snapshot.index_of(id) {
                Some(node) => {
                    Box::new(snapshot.out_edges(node).map(move |edge| (node, edge)).chain(snapshot.in_edges(node)))
                }
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(
                (0..snapshot.node_count() as u32)
                    .flat_map(|node| snapshot.out_edges(node).map(move |edge| (node, edge))),
            ),
        }
    }

    /// Every edge this subscriber watches, as (source, edge), one at a time (a list of them all would cost 16 bytes
    /// an edge on every evaluation).
    fn edges<'a>(&'a self, snapshot: &'a Snapshot) -> Box<dyn Iterator<Item = (u32, usize)> + 'a> {
        Box::new(self.candidates(snapshot).filter(|&(source, edge)| self.watches(snapshot, source, edge)))
    }
}

fn encode(point: Published) -> String {
    URL_SAFE_NO_PAD.encode(format!("crossings|{}|{}", point.seq, point.as_of.timestamp_millis()))
}

fn decode(cursor: &str) -> Result<Published, ApiError> {
    let invalid = || {
        ApiError::bad_input(
            "after",
            "this cursor did not come from `strengthCrossed`; pass the `cursor` of the last message you processed",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.strip_prefix("crossings|").ok_or_else(invalid)?.split('|');
    let seq = parts.next().and_then(|seq| seq.parse().ok()).ok_or_else(invalid)?;
    let millis = parts.next().and_then(|millis| millis.parse().ok()).ok_or_else(invalid)?;
    let as_of = DateTime::from_timestamp_millis(millis).ok_or_else(invalid)?;
    Ok(Published { seq, as_of })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let point = Published { seq: 42, as_of: DateTime::from_timestamp_millis(1_780_000_000_123).unwrap() };
        assert_eq!(decode(&encode(point)).unwrap(), point);
        let from_changes = URL_SAFE_NO_PAD.encode("changes|42");
        assert!(matches!(decode(&from_changes), Err(ApiError::BadInput { .. })));
    }
}

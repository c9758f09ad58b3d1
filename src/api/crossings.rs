//! `strengthCrossed` (README, "What the API offers"): a relationship's strength moving past a threshold, with hysteresis.
//!
//! A watched relationship is on one side of the threshold. It counts as above once its strength exceeds
//! `threshold + hysteresis` and as below once it drops under `threshold − hysteresis`; inside that band it keeps
//! the side it had, so a strength hovering at the threshold fires nothing. A new relationship starts below (it had
//! no strength before it existed). The sides are re-evaluated on every snapshot the engine publishes: after each
//! change (only the relationships the change touched) and after each decay sweep, when the engine re-evaluates
//! every strength at a later clock (all of them: strength decays with time alone).
//!
//! Each evaluation that moves some relationship across sends one message with all of its crossings and a cursor
//! for that evaluation. Resuming with `after` compares each relationship with its side at that cursor: one that
//! has not changed since is reported exactly when its side differs now; one that changed since (or sat inside the
//! band then) is reported once it is outside the band, with its side then, which may repeat a side the client
//! already knew. Crossings are states, so a client applies them idempotently.

use super::auth::Caller;
use super::enums::{Market, RelationshipType};
use super::error::ApiError;
use super::ids::GlobalId;
use super::subscription::Filter;
use super::ApiContext;
use crate::domain::{ChangeEvent, ChangeKind, RelationshipId, StakeholderId};
use crate::engine::{Engine, Published, Snapshot};
use crate::store::{GraphStore, StoreError};
use async_graphql::{Context, Enum, InputObject, SimpleObject, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, Stream};
use std::collections::{HashMap, HashSet};
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
        threshold,
        lower: threshold - hysteresis,
        upper: threshold + hysteresis,
        view: View { scope, sees_private: Caller::of(ctx).sees_private() },
        sides: Sides::default(),
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

/// A relationship's side as this subscriber last saw it.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
#[repr(u8)]
enum Side {
    /// Not watched until now: a relationship created since starts below; one that came into view (a stakeholder
    /// turned public, or into a watched market) takes the side of the plain threshold without a report.
    #[default]
    Unseen = 0,
    Below = 1,
    Above = 2,
    /// Not known since a resume: reported once it is outside the band.
    Unsure = 3,
}

/// One subscriber's view of the sides.
struct Watcher {
    engine: Arc<Engine>,
    store: Arc<dyn GraphStore>,
    published: tokio::sync::watch::Receiver<Published>,
    threshold: f64,
    lower: f64,
    upper: f64,
    view: View,
    /// The side of every relationship watched at the last full evaluation, and of those watched since.
    sides: Sides,
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
            let crossings = if snapshot.as_of() != self.at.as_of || changed.stakeholders {
                self.evaluate(&snapshot, Scan::All, &changed, false)
            } else {
                let edges = self.changed_edges(&snapshot, &changed);
                self.evaluate(&snapshot, Scan::Edges(edges), &changed, false)
            };
            self.at = Published { seq: snapshot.seq(), as_of: snapshot.as_of() };
            if !crossings.is_empty() {
                return Some(Ok(self.message(crossings)));
            }
        }
    }

    /// Sides at subscription time, by the plain threshold; nothing is reported.
    fn settle(&mut self, snapshot: &Snapshot) {
        self.sides = Sides::for_ids(self.view.candidates(snapshot).map(|(_, edge)| snapshot.relationship(edge)));
        for (_, edge) in self.view.edges(snapshot) {
            let side = self.plain_side(f64::from(snapshot.strength(edge)));
            self.sides.set(snapshot.relationship(edge), side);
        }
    }

    fn plain_side(&self, strength: f64) -> Side {
        if strength >= self.threshold {
            Side::Above
        } else {
            Side::Below
        }
    }

    /// Sides at the resume point `point` (see the module docs), then the crossings between it and `snapshot`.
    async fn resume(&mut self, snapshot: &Snapshot, point: Published) -> Result<Option<StrengthCrossings>, ApiError> {
        let changed = self.changed_since(point.seq, snapshot.seq()).await?;
        self.sides = Sides::for_ids(self.view.candidates(snapshot).map(|(_, edge)| snapshot.relationship(edge)));
        for (_, edge) in self.view.edges(snapshot) {
            let relationship = snapshot.relationship(edge);
            let side = if changed.created.contains(&relationship) {
                Side::Unseen
            } else if changed.relationships.contains(&relationship) {
                Side::Unsure
            } else {
                self.side_of(f64::from(snapshot.strength_at(edge, point.as_of))).unwrap_or(Side::Unsure)
            };
            self.sides.set(relationship, side);
        }
        let crossings = self.evaluate(snapshot, Scan::All, &changed, true);
        Ok((!crossings.is_empty()).then(|| self.message(crossings)))
    }

    /// The side a strength settles, or `None` inside the band.
    fn side_of(&self, strength: f64) -> Option<Side> {
        if strength > self.upper {
            Some(Side::Above)
        } else if strength < self.lower {
            Some(Side::Below)
        } else {
            None
        }
    }

    /// Re-evaluates the watched edges `scan` names; returns the crossings, ordered by relationship id. A full
    /// scan also forgets the relationships no longer watched, so that one coming back into view is settled anew.
    fn evaluate(
        &mut self,
        snapshot: &Snapshot,
        scan: Scan,
        changed: &Changed,
        resuming: bool,
    ) -> Vec<StrengthCrossing> {
        let (edges, mut sides): (Box<dyn Iterator<Item = (u32, usize)> + '_>, Sides) = match scan {
            Scan::All => {
                let ids = self.view.candidates(snapshot).map(|(_, edge)| snapshot.relationship(edge));
                (self.view.edges(snapshot), std::mem::replace(&mut self.sides, Sides::for_ids(ids)))
            }
            Scan::Edges(edges) => (Box::new(edges.into_iter()), Sides::default()),
        };
        let mut crossings = Vec::new();
        for (source, edge) in edges {
            let relationship = snapshot.relationship(edge);
            let strength = f64::from(snapshot.strength(edge));
            let before = match sides.take(relationship) {
                Side::Unseen => self.sides.get(relationship),
                side => side,
            };
            let was = match before {
                Side::Unseen if changed.created.contains(&relationship) => Side::Below,
                Side::Unseen => {
                    let side = self.plain_side(strength);
                    self.sides.set(relationship, side);
                    continue;
                }
                side => side,
            };
            let Some(after) = self.side_of(strength) else {
                self.sides.set(relationship, was);
                continue;
            };
            self.sides.set(relationship, after);
            if was == after {
                continue;
            }
            let cause = match (before, changed.relationships.contains(&relationship)) {
                (Side::Unsure, _) if resuming => CrossingCause::Resume,
                (_, true) => CrossingCause::Change,
                _ => CrossingCause::Decay,
            };
            crossings.push((relationship, self.crossing(snapshot, source, edge, after, cause, strength)));
        }
        crossings.sort_by_key(|(relationship, _)| *relationship);
        crossings.into_iter().map(|(_, crossing)| crossing).collect()
    }

    fn crossing(
        &self,
        snapshot: &Snapshot,
        source: u32,
        edge: usize,
        side: Side,
        cause: CrossingCause,
        strength: f64,
    ) -> StrengthCrossing {
        StrengthCrossing {
            relationship: GlobalId::Relationship(snapshot.relationship(edge)).encode(),
            from: GlobalId::Stakeholder(snapshot.stakeholder(source)).encode(),
            to: GlobalId::Stakeholder(snapshot.stakeholder(snapshot.target(edge))).encode(),
            relationship_type: snapshot.relationship_type(edge).into(),
            direction: if side == Side::Above { CrossingDirection::RoseAbove } else { CrossingDirection::FellBelow },
            cause,
            strength,
        }
    }

    /// The message for crossings found at the current evaluation point.
    fn message(&self, crossings: Vec<StrengthCrossing>) -> StrengthCrossings {
        StrengthCrossings { cursor: encode(self.at), as_of: self.at.as_of, crossings }
    }

    /// The watched edges of the relationships in `changed`.
    fn changed_edges(&self, snapshot: &Snapshot, changed: &Changed) -> Vec<(u32, usize)> {
        changed
            .touched
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

/// The side of each watched relationship ([`Side::Unseen`] for any other). Watching everything, the ids are
/// dense: 2 bits per relationship id over the range they span (about 100 KB for 400,000 relationships, where a map
/// took about 9 MB); watching a few relationships with scattered ids (one stakeholder's), a map.
#[derive(Debug)]
enum Sides {
    Dense {
        /// The id of the first side held.
        base: i64,
        /// Four sides a byte, the lowest bits first.
        bits: Vec<u8>,
        /// How many are not [`Side::Unseen`].
        len: usize,
    },
    Sparse(HashMap<RelationshipId, Side>),
}

impl Default for Sides {
    fn default() -> Self {
        Sides::Sparse(HashMap::new())
    }
}

impl Sides {
    /// Room for the sides of `ids`, in the smaller of the two forms.
    fn for_ids(ids: impl Iterator<Item = RelationshipId>) -> Self {
        let (mut low, mut high, mut count) = (i64::MAX, i64::MIN, 0);
        for id in ids {
            (low, high, count) = (low.min(id.0), high.max(id.0), count + 1);
        }
        if count > 0 && dense_fits(low, high, count) {
            Sides::Dense { base: low, bits: vec![0; ((high - low) / 4 + 1) as usize], len: 0 }
        } else {
            Sides::Sparse(HashMap::with_capacity(count))
        }
    }

    fn get(&self, id: RelationshipId) -> Side {
        match self {
            Sides::Dense { base, bits, .. } => match usize::try_from(id.0 - base) {
                Ok(at) if at / 4 < bits.len() => Side::from_bits(bits[at / 4] >> (at % 4 * 2)),
                _ => Side::Unseen,
            },
            Sides::Sparse(map) => map.get(&id).copied().unwrap_or_default(),
        }
    }

    /// The side of `id`, forgetting it.
    fn take(&mut self, id: RelationshipId) -> Side {
        let side = self.get(id);
        if side != Side::Unseen {
            self.set(id, Side::Unseen);
        }
        side
    }

    fn set(&mut self, id: RelationshipId, side: Side) {
        match self {
            Sides::Sparse(map) if side == Side::Unseen => _ = map.remove(&id),
            Sides::Sparse(map) => _ = map.insert(id, side),
            Sides::Dense { base, bits, len } => {
                let last = *base + bits.len() as i64 * 4 - 1;
                if id.0 < *base || id.0 > last {
                    if side == Side::Unseen {
                        return;
                    }
                    // A relationship created since: grow, unless that would make the dense form the larger one.
                    let (low, high) = (id.0.min(*base), id.0.max(last));
                    if !dense_fits(low, high, *len + 1) {
                        *self = self.to_sparse();
                        return self.set(id, side);
                    }
                    if id.0 < *base {
                        let bytes = ((*base - id.0 + 3) / 4) as usize;
                        bits.splice(0..0, std::iter::repeat_n(0, bytes));
                        *base -= bytes as i64 * 4;
                    } else {
                        bits.resize(((id.0 - *base) / 4 + 1) as usize, 0);
                    }
                }
                let at = (id.0 - *base) as usize;
                let (byte, shift) = (&mut bits[at / 4], at % 4 * 2);
                let before = Side::from_bits(*byte >> shift);
                *byte = (*byte & !(0b11 << shift)) | ((side as u8) << shift);
                match (before == Side::Unseen, side == Side::Unseen) {
                    (true, false) => *len += 1,
                    (false, true) => *len -= 1,
                    _ => {}
                }
            }
        }
    }

    /// The same sides in a map.
    fn to_sparse(&self) -> Self {
        let Sides::Dense { base, bits, len } = self else { unreachable!("only a dense form converts") };
        let mut map = HashMap::with_capacity(*len + 1);
        for (at, byte) in bits.iter().enumerate().filter(|(_, byte)| **byte != 0) {
            for slot in 0..4 {
                let side = Side::from_bits(byte >> (slot * 2));
                if side != Side::Unseen {
                    map.insert(RelationshipId(base + (at * 4 + slot) as i64), side);
                }
            }
        }
        Sides::Sparse(map)
    }

    /// Heap bytes held.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        match self {
            Sides::Dense { bits, .. } => bits.capacity(),
            Sides::Sparse(map) => map.capacity() * (std::mem::size_of::<(RelationshipId, Side)>() + 1),
        }
    }
}

/// Whether 2 bits for every id in `low..=high` take less than a map of `count` entries (about 20 bytes each).
fn dense_fits(low: i64, high: i64, count: usize) -> bool {
    (i128::from(high) - i128::from(low) + 1) <= 64 * count as i128
}

impl Side {
    fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => Side::Unseen,
            1 => Side::Below,
            2 => Side::Above,
            _ => Side::Unsure,
        }
    }
}

/// Which watched edges an evaluation looks at.
enum Scan {
    /// Every one (after a decay sweep, or a change to a stakeholder).
    All,
    /// These (source, edge), the relationships a change touched.
    Edges(Vec<(u32, usize)>),
}

/// What changed between two evaluations.
#[derive(Default)]
struct Changed {
    /// Relationships created.
    created: HashSet<RelationshipId>,
    /// Relationships created or changed.
    relationships: HashSet<RelationshipId>,
    /// Each changed relationship with its source, to find its edge.
    touched: Vec<(RelationshipId, StakeholderId)>,
    /// Whether a stakeholder changed (its markets, privacy or presence may move many relationships in or out).
    stakeholders: bool,
}

impl Changed {
    fn record(&mut self, event: &ChangeEvent) {
        match (event.relationship, event.stakeholders.first()) {
            (Some(relationship), Some(&from)) => {
                if event.kind == ChangeKind::RelationshipCreated {
                    self.created.insert(relationship);
                }
                if self.relationships.insert(relationship) {
                    self.touched.push((relationship, from));
                }
            }
            _ => self.stakeholders |= event.kind != ChangeKind::StakeholderCreated,
        }
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

    #[test]
    fn sides_of_every_relationship_take_two_bits_each() {
        let ids = || (1..=400_000).map(RelationshipId);
        let mut sides = Sides::for_ids(ids());
        for id in ids() {
            sides.set(id, if id.0 % 3 == 0 { Side::Above } else { Side::Below });
        }
        assert!(matches!(sides, Sides::Dense { len: 400_000, .. }));
        assert_eq!(sides.heap_bytes(), 100_000, "400,000 sides in 100 KB");
        assert_eq!(sides.get(RelationshipId(3)), Side::Above);
        assert_eq!(sides.get(RelationshipId(4)), Side::Below);
        assert_eq!(sides.get(RelationshipId(400_001)), Side::Unseen);
        assert_eq!(sides.take(RelationshipId(4)), Side::Below);
        assert_eq!(sides.get(RelationshipId(4)), Side::Unseen);
        // A relationship created since grows the range.
        sides.set(RelationshipId(400_010), Side::Unsure);
        assert_eq!(sides.get(RelationshipId(400_010)), Side::Unsure);
        assert_eq!(sides.get(RelationshipId(400_009)), Side::Unseen);
    }

    #[test]
    fn a_few_scattered_sides_sit_in_a_map_and_dense_ones_turn_sparse_when_they_scatter() {
        let scattered = [5, 90_000, 400_000].map(RelationshipId);
        let mut sides = Sides::for_ids(scattered.into_iter());
        assert!(matches!(sides, Sides::Sparse(_)));
        sides.set(scattered[1], Side::Above);
        assert_eq!(sides.get(scattered[1]), Side::Above);
        assert!(sides.heap_bytes() < 200, "{} bytes", sides.heap_bytes());

        let mut sides = Sides::for_ids((10..20).map(RelationshipId));
        assert!(matches!(sides, Sides::Dense { .. }));
        for id in (10..20).map(RelationshipId) {
            sides.set(id, Side::Below);
        }
        sides.set(RelationshipId(7), Side::Above);
        assert!(matches!(sides, Sides::Dense { .. }), "a nearby id grows the range downwards");
        sides.set(RelationshipId(1_000_000), Side::Above);
        assert!(matches!(sides, Sides::Sparse(_)), "a far one turns it into a map");
        let expected = (10..20).map(|id| (id, Side::Below)).chain([(7, Side::Above), (1_000_000, Side::Above)]);
        for (id, side) in expected {
            assert_eq!(sides.get(RelationshipId(id)), side, "{id}");
        }
        assert_eq!(sides.get(RelationshipId(8)), Side::Unseen);
    }
}

//! Strength crossings with hysteresis (`strengthCrossed`, README "What the API offers"): which side of a threshold
//! each watched relationship is on, and when moving to the other side is reported.
//!
//! A watched relationship is on one side of the threshold. It counts as above once its strength exceeds
//! `threshold + hysteresis` and as below once it drops under `threshold − hysteresis`; inside that band it keeps
//! the side it had, so a strength hovering at the threshold fires nothing. A new relationship starts below (it had
//! no strength before it existed); one that comes into view otherwise (a stakeholder turned public, or into a
//! watched market) takes the side of the plain threshold without a report. A full evaluation forgets the
//! relationships no longer watched, so that one coming back into view is settled anew.
//!
//! On resuming from an earlier point, a relationship that has not changed since is compared with its side then:
//! it is reported exactly when its side differs now. One that changed since (or sat inside the band then) is
//! [`Side::Unsure`], reported once it is outside the band, with its side then, which may repeat a side the client
//! already knew. Crossings are states, so a client applies them idempotently.
//!
//! One subscriber's state is a [`Tracker`]: the [`Band`] and one [`Side`] per watched relationship. What is
//! watched and the strengths come from the caller (the API's view of a snapshot); the rules here see
//! relationship ids and strengths only, so they are checked on tables. An evaluation costs O(w) for the w
//! relationships it looks at, plus O(c log c) to order c crossings; the sides take 2 bits per relationship id over
//! the range the watched ids span, or a map entry each when they are few and scattered.

use crate::domain::{ChangeEvent, ChangeKind, KindDetails, RelationshipId, Stakeholder, StakeholderId};
use std::collections::{HashMap, HashSet};

/// A relationship's side as one subscriber last saw it.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
#[repr(u8)]
pub enum Side {
    /// Not watched until now: a relationship created since starts below; one that came into view (a stakeholder
    /// turned public, or into a watched market) takes the side of the plain threshold without a report.
    #[default]
    Unseen = 0,
    /// Below the threshold.
    Below = 1,
    /// Above the threshold.
    Above = 2,
    /// Not known since a resume: reported once it is outside the band.
    Unsure = 3,
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

/// The threshold and the band around it inside which a relationship keeps its side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    threshold: f64,
    lower: f64,
    upper: f64,
}

impl Band {
    /// The band `threshold ± hysteresis`.
    pub fn new(threshold: f64, hysteresis: f64) -> Self {
        Self { threshold, lower: threshold - hysteresis, upper: threshold + hysteresis }
    }

    /// The side of the plain threshold, band ignored (at the threshold: above): where a relationship first seen
    /// starts.
    pub fn plain_side(&self, strength: f64) -> Side {
        if strength >= self.threshold {
            Side::Above
        } else {
            Side::Below
        }
    }

    /// The side a strength settles, or `None` inside the band (its edges included).
    pub fn settled_side(&self, strength: f64) -> Option<Side> {
        if strength > self.upper {
            Some(Side::Above)
        } else if strength < self.lower {
            Some(Side::Below)
        } else {
            None
        }
    }
}

/// Which way a strength moved past the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// It rose above `threshold + hysteresis`.
    RoseAbove,
    /// It fell below `threshold − hysteresis`.
    FellBelow,
}

/// What moved a strength past the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A change to the relationship (created, updated, interactions recorded).
    Change,
    /// Time alone: the strength decayed (or, for a relationship whose inputs did not change, the clock moved).
    Decay,
    /// Reported on resuming because the relationship changed, or sat inside the band, at the resume point.
    Resume,
}

/// What the change log says changed between two evaluations.
#[derive(Debug, Default)]
pub struct Changed {
    /// Relationships created.
    created: HashSet<RelationshipId>,
    /// Relationships created or changed.
    relationships: HashSet<RelationshipId>,
    /// Each changed relationship with its source, to find its edge.
    touched: Vec<(RelationshipId, StakeholderId)>,
    /// Whether a stakeholder changed its markets, privacy or presence (which may move many relationships in or
    /// out of view).
    stakeholders: bool,
}

/// Whether a stakeholder's change-log entry may move relationships in or out of a watcher's view: an archive, or an
/// update of its privacy, extra markets or candidate flag (its primary market). A creation (no relationship yet), an
/// exit or a win-back (status and lifecycle only), a programme created, joined or left (a programme row, or a
/// customer's memberships only) and any other update (name, power, …) cannot: strength reads relationships only. An update without both
/// sides counts as one that may.
fn moves_view(event: &ChangeEvent) -> bool {
    match event.kind {
        ChangeKind::StakeholderCreated
        | ChangeKind::CustomerExited
        | ChangeKind::CustomerWonBack
        | ChangeKind::ProgramCreated
        | ChangeKind::ProgramJoined
        | ChangeKind::ProgramLeft => false,
        ChangeKind::StakeholderUpdated => match event.payload.stakeholder() {
            (Some(before), Some(after)) => {
                let candidate = |stakeholder: &Stakeholder| match stakeholder.details {
                    KindDetails::Employee { candidate, .. } => candidate,
                    _ => false,
                };
                before.private != after.private
                    || before.extra_markets != after.extra_markets
                    || before.archived_at != after.archived_at
                    || candidate(before) != candidate(after)
            }
            _ => true,
        },
        _ => true,
    }
}

impl Changed {
    /// Takes in one change-log entry.
    pub fn record(&mut self, event: &ChangeEvent) {
        match (event.relationship, event.stakeholders.first()) {
            (Some(relationship), Some(&from)) => {
                if event.kind == ChangeKind::RelationshipCreated {
                    self.created.insert(relationship);
                }
                if self.relationships.insert(relationship) {
                    self.touched.push((relationship, from));
                }
            }
            _ => self.stakeholders |= moves_view(event),
        }
    }

    /// The relationships created or changed, each once with its source stakeholder, in the log's order.
    pub fn touched(&self) -> &[(RelationshipId, StakeholderId)] {
        &self.touched
    }

    /// Whether an evaluation must look at every watched relationship rather than those [`Changed::touched`]: the
    /// clock moved (strength decays with time alone), or a stakeholder changed (which may move many relationships
    /// in or out of view).
    pub fn needs_full_scan(&self, clock_moved: bool) -> bool {
        clock_moved || self.stakeholders
    }

    fn created(&self, relationship: RelationshipId) -> bool {
        self.created.contains(&relationship)
    }

    fn changed(&self, relationship: RelationshipId) -> bool {
        self.relationships.contains(&relationship)
    }
}

/// What one evaluation does with one watched relationship: the side to keep, and the crossing to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The side kept until the next evaluation.
    pub side: Side,
    /// The crossing reported, if any.
    pub crossed: Option<(Direction, Cause)>,
}

/// The rule for one watched `relationship` whose side was `before` and whose strength is now `strength`, given
/// what `changed` since the last evaluation; `resuming` on the evaluation that follows a resume. O(1).
pub fn step(
    band: &Band,
    before: Side,
    strength: f64,
    relationship: RelationshipId,
    changed: &Changed,
    resuming: bool,
) -> Step {
    let was = match before {
        Side::Unseen if changed.created(relationship) => Side::Below,
        Side::Unseen => return Step { side: band.plain_side(strength), crossed: None },
        side => side,
    };
    let Some(after) = band.settled_side(strength) else {
        return Step { side: was, crossed: None };
    };
    if was == after {
        return Step { side: after, crossed: None };
    }
    let cause = match (before, changed.changed(relationship)) {
        (Side::Unsure, _) if resuming => Cause::Resume,
        (_, true) => Cause::Change,
        _ => Cause::Decay,
    };
    let direction = if after == Side::Above { Direction::RoseAbove } else { Direction::FellBelow };
    Step { side: after, crossed: Some((direction, cause)) }
}

/// One relationship that crossed, with what the caller attached to it (`at`: where it found it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing<T> {
    /// The relationship.
    pub relationship: RelationshipId,
    /// Which way it crossed.
    pub direction: Direction,
    /// What moved it.
    pub cause: Cause,
    /// Its strength now.
    pub strength: f64,
    /// What the caller passed along with it.
    pub at: T,
}

/// One subscriber's sides and the band they follow.
#[derive(Debug)]
pub struct Tracker {
    band: Band,
    /// The side of every relationship watched at the last full evaluation, and of those watched since.
    sides: Sides,
}

impl Tracker {
    /// A tracker with no side known yet.
    pub fn new(band: Band) -> Self {
        Self { band, sides: Sides::default() }
    }

    /// Sides at subscription time, by the plain threshold; nothing is reported. `ids`: every relationship that
    /// may be watched (it sizes the sides); `watched`: each relationship watched, with its strength. O(ids + w).
    pub fn settle(
        &mut self,
        ids: impl Iterator<Item = RelationshipId>,
        watched: impl Iterator<Item = (RelationshipId, f64)>,
    ) {
        self.sides = Sides::for_ids(ids);
        for (relationship, strength) in watched {
            self.sides.set(relationship, self.band.plain_side(strength));
        }
    }

    /// Sides at a resume point: a relationship created since is [`Side::Unseen`] (it starts below), one changed
    /// since is [`Side::Unsure`], any other takes the side its strength then (`strength_then(at)`) settles, or
    /// [`Side::Unsure`] inside the band. Follow with [`Tracker::evaluate_all`], `resuming`. O(ids + w).
    pub fn resume<T>(
        &mut self,
        ids: impl Iterator<Item = RelationshipId>,
        watched: impl Iterator<Item = (RelationshipId, T)>,
        changed: &Changed,
        mut strength_then: impl FnMut(T) -> f64,
    ) {
        self.sides = Sides::for_ids(ids);
        for (relationship, at) in watched {
            let side = if changed.created(relationship) {
                Side::Unseen
            } else if changed.changed(relationship) {
                Side::Unsure
            } else {
                self.band.settled_side(strength_then(at)).unwrap_or(Side::Unsure)
            };
            self.sides.set(relationship, side);
        }
    }

    /// Re-evaluates every watched relationship (`watched`: id, strength now, and what to hand back with a
    /// crossing); forgets those no longer watched, so that one coming back into view is settled anew. `ids` as
    /// for [`Tracker::settle`]. The crossings, by relationship id.
    pub fn evaluate_all<T>(
        &mut self,
        ids: impl Iterator<Item = RelationshipId>,
        watched: impl Iterator<Item = (RelationshipId, f64, T)>,
        changed: &Changed,
        resuming: bool,
    ) -> Vec<Crossing<T>> {
        let earlier = std::mem::replace(&mut self.sides, Sides::for_ids(ids));
        self.evaluate(earlier, watched, changed, resuming)
    }

    /// Re-evaluates the watched relationships among those a change touched; the others keep their sides. The
    /// crossings, by relationship id.
    pub fn evaluate_touched<T>(
        &mut self,
        watched: impl Iterator<Item = (RelationshipId, f64, T)>,
        changed: &Changed,
    ) -> Vec<Crossing<T>> {
        self.evaluate(Sides::default(), watched, changed, false)
    }

    /// Steps each of `watched` from its side in `earlier` (or, not there, in the current sides: a relationship
    /// met twice in one scan, or a partial scan) into the current sides.
    fn evaluate<T>(
        &mut self,
        mut earlier: Sides,
        watched: impl Iterator<Item = (RelationshipId, f64, T)>,
        changed: &Changed,
        resuming: bool,
    ) -> Vec<Crossing<T>> {
        let mut crossings = Vec::new();
        for (relationship, strength, at) in watched {
            let before = match earlier.take(relationship) {
                Side::Unseen => self.sides.get(relationship),
                side => side,
            };
            let step = step(&self.band, before, strength, relationship, changed, resuming);
            self.sides.set(relationship, step.side);
            if let Some((direction, cause)) = step.crossed {
                crossings.push(Crossing { relationship, direction, cause, strength, at });
            }
        }
        crossings.sort_by_key(|crossing| crossing.relationship);
        crossings
    }

    /// The side held for `relationship`.
    #[cfg(test)]
    fn side(&self, relationship: RelationshipId) -> Side {
        self.sides.get(relationship)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    /// Threshold 0.5, hysteresis 0.125: the band is [0.375, 0.625] (exact in binary, so its edges can be tested).
    fn band() -> Band {
        Band::new(0.5, 0.125)
    }

    /// What changed: relationships `created`, and others `updated`.
    fn changed(created: &[i64], updated: &[i64]) -> Changed {
        let mut changed = Changed::default();
        for &id in created {
            changed.created.insert(RelationshipId(id));
            changed.relationships.insert(RelationshipId(id));
        }
        for &id in updated {
            changed.relationships.insert(RelationshipId(id));
        }
        changed
    }

    fn event(seq: i64, kind: ChangeKind, stakeholders: &[i64], relationship: Option<i64>) -> ChangeEvent {
        ChangeEvent {
            seq,
            at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            kind,
            stakeholders: stakeholders.iter().copied().map(StakeholderId).collect(),
            relationship: relationship.map(RelationshipId),
            payload: crate::domain::Change::Interactions { ids: Vec::new(), topics: None },
        }
    }

    /// An employee, not a candidate, in no market beyond its own.
    fn employee() -> Stakeholder {
        Stakeholder {
            id: StakeholderId(10),
            key: crate::domain::Label::parse("E-10").unwrap(),
            name: crate::domain::Label::parse("A").unwrap(),
            power: crate::domain::Probability::parse(0.5).unwrap(),
            interest: crate::domain::Probability::parse(0.5).unwrap(),
            private: false,
            extra_markets: crate::domain::MarketSet::default(),
            details: KindDetails::Employee { role: None, department: None, candidate: false },
            created_at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            updated_at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            archived_at: None,
        }
    }

    #[test]
    fn one_step_follows_the_band() {
        use Cause::*;
        use Direction::*;
        use Side::*;
        #[derive(Clone, Copy)]
        enum Since {
            Nothing,
            Created,
            Updated,
        }
        // (case, side before, strength, what happened since, resuming) → (side kept, crossing)
        type Row<'a> = (&'a str, Side, f64, Since, bool, Side, Option<(Direction, Cause)>);
        let table: &[Row<'_>] = &[
            ("rises past the band by a change", Below, 0.7, Since::Updated, false, Above, Some((RoseAbove, Change))),
            ("rises past the band with time", Below, 0.7, Since::Nothing, false, Above, Some((RoseAbove, Decay))),
            ("falls past the band with time", Above, 0.3, Since::Nothing, false, Below, Some((FellBelow, Decay))),
            ("falls past the band by a change", Above, 0.3, Since::Updated, false, Below, Some((FellBelow, Change))),
            ("stays above outside the band", Above, 0.9, Since::Updated, false, Above, None),
            ("stays below outside the band", Below, 0.1, Since::Nothing, false, Below, None),
            ("above, inside the band under the threshold", Above, 0.45, Since::Updated, false, Above, None),
            ("below, inside the band over the threshold", Below, 0.55, Since::Nothing, false, Below, None),
            ("above, at the band's lower edge", Above, 0.375, Since::Nothing, false, Above, None),
            ("below, at the band's upper edge", Below, 0.625, Since::Nothing, false, Below, None),
            ("above, just under the lower edge", Above, 0.374, Since::Nothing, false, Below, Some((FellBelow, Decay))),
            ("below, just over the upper edge", Below, 0.626, Since::Nothing, false, Above, Some((RoseAbove, Decay))),
            (
                "created strong: starts below, rises",
                Unseen,
                0.7,
                Since::Created,
                false,
                Above,
                Some((RoseAbove, Change)),
            ),
            ("created inside the band: below", Unseen, 0.55, Since::Created, false, Below, None),
            ("created weak: below", Unseen, 0.2, Since::Created, false, Below, None),
            ("came into view strong: plain side", Unseen, 0.7, Since::Updated, false, Above, None),
            ("came into view at the threshold: above", Unseen, 0.5, Since::Nothing, false, Above, None),
            ("came into view inside the band: plain side", Unseen, 0.45, Since::Nothing, false, Below, None),
            ("unsure on resuming, above", Unsure, 0.7, Since::Nothing, true, Above, Some((RoseAbove, Resume))),
            ("unsure on resuming, below", Unsure, 0.2, Since::Updated, true, Below, Some((FellBelow, Resume))),
            ("unsure inside the band stays unsure", Unsure, 0.5, Since::Updated, true, Unsure, None),
            ("unsure later, moved by a change", Unsure, 0.7, Since::Updated, false, Above, Some((RoseAbove, Change))),
            ("unsure later, moved by time", Unsure, 0.2, Since::Nothing, false, Below, Some((FellBelow, Decay))),
            ("known on resuming: no resume cause", Below, 0.7, Since::Nothing, true, Above, Some((RoseAbove, Decay))),
        ];
        let id = RelationshipId(7);
        for &(case, before, strength, since, resuming, side, crossed) in table {
            let changed = match since {
                Since::Nothing => changed(&[], &[]),
                Since::Created => changed(&[id.0], &[]),
                Since::Updated => changed(&[], &[id.0]),
            };
            assert_eq!(step(&band(), before, strength, id, &changed, resuming), Step { side, crossed }, "{case}");
        }
    }

    #[test]
    fn a_relationship_crosses_each_time_it_leaves_the_band_on_the_other_side() {
        // One relationship settled at 0.7 (above), then evaluated at each strength in turn, with time alone.
        let table: &[(f64, Option<Direction>, Side)] = &[
            (0.55, None, Side::Above),
            (0.45, None, Side::Above),
            (0.3, Some(Direction::FellBelow), Side::Below),
            (0.45, None, Side::Below),
            (0.6, None, Side::Below),
            (0.65, Some(Direction::RoseAbove), Side::Above),
            (0.7, None, Side::Above),
            (0.1, Some(Direction::FellBelow), Side::Below),
            (0.9, Some(Direction::RoseAbove), Side::Above),
        ];
        let id = RelationshipId(1);
        let mut tracker = Tracker::new(band());
        tracker.settle([id].into_iter(), [(id, 0.7)].into_iter());
        assert_eq!(tracker.side(id), Side::Above);
        for (at, &(strength, direction, side)) in table.iter().enumerate() {
            let found =
                tracker.evaluate_all([id].into_iter(), [(id, strength, at)].into_iter(), &changed(&[], &[]), false);
            let expected: Vec<Crossing<usize>> = direction
                .map(|direction| Crossing { relationship: id, direction, cause: Cause::Decay, strength, at })
                .into_iter()
                .collect();
            assert_eq!(found, expected, "step {at}, strength {strength}");
            assert_eq!(tracker.side(id), side, "step {at}");
        }
    }

    #[test]
    fn settling_reports_nothing_and_takes_the_plain_side() {
        let mut tracker = Tracker::new(band());
        let strengths = [(1, 0.9), (2, 0.5), (3, 0.45), (4, 0.1)].map(|(id, strength)| (RelationshipId(id), strength));
        tracker.settle((1..=5).map(RelationshipId), strengths.into_iter());
        let sides = (1..=5).map(|id| tracker.side(RelationshipId(id))).collect::<Vec<_>>();
        assert_eq!(sides, [Side::Above, Side::Above, Side::Below, Side::Below, Side::Unseen], "5 is not watched");
    }

    #[test]
    fn crossings_come_by_relationship_id_whatever_the_scan_order() {
        let mut tracker = Tracker::new(band());
        let ids = || (1..=4).map(RelationshipId);
        tracker.settle(ids(), ids().map(|id| (id, 0.1)));
        let watched = [(4, 0.9), (2, 0.9), (3, 0.2), (1, 0.8)].map(|(id, strength)| (RelationshipId(id), strength, id));
        let found = tracker.evaluate_all(ids(), watched.into_iter(), &changed(&[], &[2]), false);
        let summary: Vec<(i64, Cause)> = found.iter().map(|crossing| (crossing.at, crossing.cause)).collect();
        assert_eq!(summary, [(1, Cause::Decay), (2, Cause::Change), (4, Cause::Decay)]);
    }

    #[test]
    fn a_relationship_met_twice_in_one_scan_is_reported_once() {
        // A self-relationship is both an out-edge and an in-edge of a watched stakeholder.
        let id = RelationshipId(3);
        let mut tracker = Tracker::new(band());
        tracker.settle([id].into_iter(), [(id, 0.1)].into_iter());
        let found = tracker.evaluate_all(
            [id, id].into_iter(),
            [(id, 0.9, "out"), (id, 0.9, "in")].into_iter(),
            &changed(&[], &[3]),
            false,
        );
        assert_eq!(found.iter().map(|crossing| crossing.at).collect::<Vec<_>>(), ["out"]);
        assert_eq!(tracker.side(id), Side::Above);
    }

    #[test]
    fn a_full_scan_forgets_what_left_the_view_and_settles_it_anew_when_it_comes_back() {
        let mut tracker = Tracker::new(band());
        let (kept, gone) = (RelationshipId(1), RelationshipId(2));
        tracker.settle([kept, gone].into_iter(), [(kept, 0.1), (gone, 0.1)].into_iter());
        // `gone` left the view (its stakeholder turned private, or the relationship is gone with an archived end).
        let found = tracker.evaluate_all([kept].into_iter(), [(kept, 0.1, ())].into_iter(), &changed(&[], &[]), false);
        assert!(found.is_empty());
        assert_eq!(tracker.side(gone), Side::Unseen, "forgotten");
        // Back in view and strong: it takes the plain side, without a report.
        let both = [(kept, 0.1, ()), (gone, 0.9, ())];
        let found = tracker.evaluate_all([kept, gone].into_iter(), both.into_iter(), &changed(&[], &[]), false);
        assert!(found.is_empty());
        assert_eq!(tracker.side(gone), Side::Above);
        // From there it crosses like any other.
        let found =
            tracker.evaluate_all([kept, gone].into_iter(), [(gone, 0.2, ())].into_iter(), &changed(&[], &[]), false);
        assert_eq!(found.iter().map(|crossing| crossing.direction).collect::<Vec<_>>(), [Direction::FellBelow]);
    }

    #[test]
    fn a_touched_scan_steps_only_the_relationships_given_and_starts_new_ones_below() {
        let mut tracker = Tracker::new(band());
        let ids = || (1..=3).map(RelationshipId);
        tracker.settle(ids(), ids().map(|id| (id, 0.1)));
        // 2 was updated and is strong now; 9 was created strong; 8 came into view strong (no change of its own).
        let watched = [(2, 0.9), (9, 0.8), (8, 0.8)].map(|(id, strength)| (RelationshipId(id), strength, id));
        let found = tracker.evaluate_touched(watched.into_iter(), &changed(&[9], &[2]));
        let summary: Vec<(i64, Direction, Cause)> =
            found.iter().map(|crossing| (crossing.at, crossing.direction, crossing.cause)).collect();
        assert_eq!(summary, [(2, Direction::RoseAbove, Cause::Change), (9, Direction::RoseAbove, Cause::Change)]);
        let sides: Vec<Side> = [1, 2, 3, 8, 9].map(|id| tracker.side(RelationshipId(id))).into();
        assert_eq!(sides, [Side::Below, Side::Above, Side::Below, Side::Above, Side::Above], "1 and 3 untouched");
    }

    #[test]
    fn resuming_reports_what_differs_from_the_resume_point_and_what_is_unsure() {
        // (case, strength then, strength now, what happened since) → crossing reported on resuming
        type Row<'a> = (&'a str, f64, f64, &'a str, Option<(Direction, Cause)>);
        let table: &[Row<'_>] = &[
            ("unchanged, same side", 0.1, 0.2, "", None),
            ("unchanged, fell with time", 0.9, 0.2, "", Some((Direction::FellBelow, Cause::Decay))),
            ("unchanged, inside the band now", 0.9, 0.45, "", None),
            ("unchanged, inside the band then, above now", 0.5, 0.9, "", Some((Direction::RoseAbove, Cause::Resume))),
            ("unchanged, inside the band then and now", 0.5, 0.55, "", None),
            ("changed since, above now: told again", 0.9, 0.9, "updated", Some((Direction::RoseAbove, Cause::Resume))),
            ("changed since, below now: told again", 0.1, 0.1, "updated", Some((Direction::FellBelow, Cause::Resume))),
            ("changed since, inside the band now", 0.9, 0.5, "updated", None),
            ("created since, strong", 0.0, 0.9, "created", Some((Direction::RoseAbove, Cause::Change))),
            ("created since, weak", 0.0, 0.1, "created", None),
        ];
        let id = RelationshipId(5);
        for &(case, then, now, since, crossed) in table {
            let changed = match since {
                "created" => changed(&[id.0], &[]),
                "updated" => changed(&[], &[id.0]),
                _ => changed(&[], &[]),
            };
            let mut tracker = Tracker::new(band());
            tracker.resume([id].into_iter(), [(id, then)].into_iter(), &changed, |strength| strength);
            let found = tracker.evaluate_all([id].into_iter(), [(id, now, ())].into_iter(), &changed, true);
            let found: Option<(Direction, Cause)> = found.first().map(|crossing| (crossing.direction, crossing.cause));
            assert_eq!(found, crossed, "{case}");
        }
    }

    #[test]
    fn resuming_looks_at_the_strength_then_only_for_relationships_unchanged_since() {
        let mut tracker = Tracker::new(band());
        let ids = || (1..=3).map(RelationshipId);
        let mut asked = Vec::new();
        tracker.resume(ids(), ids().map(|id| (id, id.0)), &changed(&[1], &[2]), |id| {
            asked.push(id);
            0.9
        });
        assert_eq!(asked, [3]);
        assert_eq!([1, 2, 3].map(|id| tracker.side(RelationshipId(id))), [Side::Unseen, Side::Unsure, Side::Above]);
    }

    #[test]
    fn the_log_tells_what_changed_and_whether_everything_must_be_looked_at() {
        let mut changed = Changed::default();
        for event in [
            event(1, ChangeKind::RelationshipCreated, &[10, 11], Some(1)),
            event(2, ChangeKind::InteractionsRecorded, &[12, 10], Some(2)),
            event(3, ChangeKind::RelationshipUpdated, &[10, 11], Some(1)),
            event(4, ChangeKind::StakeholderCreated, &[13], None),
        ] {
            changed.record(&event);
        }
        assert!(changed.created(RelationshipId(1)) && !changed.created(RelationshipId(2)));
        assert!(changed.changed(RelationshipId(1)) && changed.changed(RelationshipId(2)));
        assert!(!changed.changed(RelationshipId(3)));
        let expected = [(RelationshipId(1), StakeholderId(10)), (RelationshipId(2), StakeholderId(12))];
        assert_eq!(changed.touched(), expected, "each once, with its source, in the log's order");
        assert!(!changed.needs_full_scan(false), "a new stakeholder has no relationship yet");
        assert!(changed.needs_full_scan(true), "the clock moved: every strength decayed");
        for kind in [ChangeKind::StakeholderUpdated, ChangeKind::StakeholderArchived] {
            let mut changed = Changed::default();
            changed.record(&event(5, kind, &[10], None));
            assert!(changed.needs_full_scan(false), "{kind:?} may move relationships in or out of view");
        }
        for kind in [ChangeKind::CustomerExited, ChangeKind::CustomerWonBack] {
            let mut changed = Changed::default();
            changed.record(&event(5, kind, &[10], None));
            assert!(!changed.needs_full_scan(false), "{kind:?} changes a status, not who is in view");
        }
        for (kind, named) in [
            (ChangeKind::ProgramCreated, &[][..]),
            (ChangeKind::ProgramJoined, &[10][..]),
            (ChangeKind::ProgramLeft, &[10][..]),
        ] {
            let mut changed = Changed::default();
            changed.record(&event(5, kind, named, None));
            assert!(!changed.needs_full_scan(false), "{kind:?} changes memberships, not who is in view");
        }
        // An update moves relationships only through privacy, markets or the candidate flag.
        let before = employee();
        let updated = |change: &dyn Fn(&mut Stakeholder)| {
            let mut after = before.clone();
            change(&mut after);
            let mut event = event(6, ChangeKind::StakeholderUpdated, &[10], None);
            event.payload =
                crate::domain::Change::Stakeholder { before: Some(Box::new(before.clone())), after: Box::new(after) };
            let mut changed = Changed::default();
            changed.record(&event);
            changed.needs_full_scan(false)
        };
        assert!(!updated(&|after| after.name = crate::domain::Label::parse("B").unwrap()), "a rename moves nothing");
        assert!(updated(&|after| after.private = true));
        assert!(
            updated(&|after| after.extra_markets = crate::domain::MarketSet::of([crate::domain::Market::Referral]))
        );
        assert!(updated(&|after| {
            after.details = KindDetails::Employee { role: None, department: None, candidate: true }
        }));
        assert!(updated(&|after| after.archived_at = Some(after.updated_at)));
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

    #[test]
    fn a_tracker_stores_sides_densely_or_sparsely_by_the_ids_it_may_watch() {
        // (ids that may be watched) → dense?
        let table: &[(&[i64], bool)] =
            &[(&[1, 2, 3, 4, 5], true), (&[100, 164, 228], true), (&[1, 1_000, 1_000_000], false), (&[], false)];
        for &(ids, dense) in table {
            let mut tracker = Tracker::new(band());
            let watched = || ids.iter().copied().map(RelationshipId);
            tracker.settle(watched(), watched().map(|id| (id, 0.9)));
            assert_eq!(matches!(tracker.sides, Sides::Dense { .. }), dense, "{ids:?}");
            assert!(watched().all(|id| tracker.side(id) == Side::Above), "{ids:?}");
        }
    }
}

//! Every relationship's strength at another time than the snapshot's clock, and its 30-day trend (the strength at
//! the snapshot's clock minus the strength [`TREND_DAYS`] earlier, as `Relationship.strength.trend` defines it),
//! for graph-wide charts and filters.
//!
//! A snapshot holds each relationship's decayed sums as of its last interaction, so a time at or after that is read
//! from the snapshot alone; an earlier time needs the interactions up to it. For those relationships (the ones with
//! an interaction after the time asked: on a busy graph, those active in the last 30 days) a [`Window`] keeps the
//! sums up to a base time and the interactions after it, built once from the history and valid while the
//! relationship records no new interaction ([`Snapshot::interactions_key`]); the engine keeps them across snapshots
//! so that a write re-reads only the histories it changed.
//!
//! Pure functions: [`strengths_at`] is O(m) score evaluations plus O(k) for the k interactions the windows hold
//! after their base time.

use crate::domain::strength::{DecayedSums, StrengthModel, TREND_DAYS};
use crate::domain::vocabulary::{Channel, Direction};
use crate::domain::{Interaction, RelationshipId};
use crate::engine::Snapshot;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Edges evaluated between two looks at the deadline.
const EDGES_PER_CHECK: usize = 1 << 16;

/// The time a snapshot's trends compare with: [`TREND_DAYS`] before its clock.
pub fn trend_base(snapshot: &Snapshot) -> DateTime<Utc> {
    snapshot.as_of() - Duration::days(TREND_DAYS)
}

/// One interaction as the sums take it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Moment {
    at: DateTime<Utc>,
    channel: Channel,
    direction: Direction,
    sentiment: f64,
}

/// One relationship's decayed sums at `base` (its interactions at or before it) and its interactions after `base`
/// in time order: its sums at any time from `base` on, without its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// [`Snapshot::interactions_key`] of the relationship when the window was built.
    key: (u64, [u32; 4]),
    base: DateTime<Utc>,
    sums: DecayedSums,
    later: Vec<Moment>,
}

impl Window {
    /// The window of a relationship whose interactions are `history` (any order) and whose snapshot key is `key`,
    /// based at `base`. O(h log h).
    pub fn new(model: &StrengthModel, key: (u64, [u32; 4]), history: &[Interaction], base: DateTime<Utc>) -> Self {
        let mut moments: Vec<Moment> = history
            .iter()
            .map(|interaction| Moment {
                at: interaction.at,
                channel: interaction.channel,
                direction: interaction.direction,
                sentiment: interaction.sentiment.get(),
            })
            .collect();
        moments.sort_by_key(|moment| moment.at);
        let split = moments.partition_point(|moment| moment.at <= base);
        let mut sums = DecayedSums::default();
        for moment in &moments[..split] {
            sums.add(model, moment.at, moment.channel, moment.direction, moment.sentiment);
        }
        Self { key, base, sums, later: moments.split_off(split) }
    }

    /// Whether the window answers for a relationship with snapshot key `key` at `at`.
    pub fn serves(&self, key: (u64, [u32; 4]), at: DateTime<Utc>) -> bool {
        self.key == key && at >= self.base
    }

    /// Whether the relationship had an interaction after `at` when the window was built (so that evaluating it at
    /// `at` needs a window).
    pub fn active_after(&self, at: DateTime<Utc>) -> bool {
        let last = f64::from_bits(self.key.0);
        !last.is_nan() && last > crate::domain::strength::seconds(at)
    }

    /// The time it is based at.
    pub fn base(&self) -> DateTime<Utc> {
        self.base
    }

    /// Its interactions after the base.
    pub fn later(&self) -> usize {
        self.later.len()
    }

    /// The sums of the interactions at or before `at` (not before the base). O(interactions in (base, at]).
    pub fn sums_at(&self, model: &StrengthModel, at: DateTime<Utc>) -> DecayedSums {
        let mut sums = self.sums;
        for moment in self.later.iter().take_while(|moment| moment.at <= at) {
            sums.add(model, moment.at, moment.channel, moment.direction, moment.sentiment);
        }
        sums
    }

    /// The window moved on to `base` (later than its own): the interactions up to it folded into its sums, so
    /// that it holds only what a later time still needs.
    pub fn advanced(&self, model: &StrengthModel, base: DateTime<Utc>) -> Self {
        let split = self.later.partition_point(|moment| moment.at <= base);
        Self {
            key: self.key,
            base: base.max(self.base),
            sums: self.sums_at(model, base),
            later: self.later[split..].to_vec(),
        }
    }
}

/// The windows of the relationships a time needs, by relationship.
pub type Windows = HashMap<RelationshipId, Arc<Window>>;

/// The edges of `snapshot` that need a window to be evaluated at `at` (an interaction later than `at`), with their
/// relationship and key. O(m).
pub fn needing_history(snapshot: &Snapshot, at: DateTime<Utc>) -> Vec<(RelationshipId, (u64, [u32; 4]))> {
    (0..snapshot.edge_count())
        .filter(|&edge| !snapshot.covers(edge, at))
        .map(|edge| (snapshot.relationship(edge), snapshot.interactions_key(edge)))
        .collect()
}

/// Why strengths at a time could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PastError {
    /// The deadline passed first.
    #[error("out of time")]
    OutOfTime,
    /// A relationship needing its history has no window that serves the time.
    #[error("relationship {0} has no window for the time asked")]
    Missing(RelationshipId),
}

/// The strength of every edge of `snapshot` at `at` (its standing as the snapshot holds it, its interactions up to
/// `at`): from the snapshot where it covers `at`, else from the edge's window in `windows`. In edge order, in the
/// snapshot's f32. O(m + the windows' later interactions).
pub fn strengths_at(
    snapshot: &Snapshot,
    model: &StrengthModel,
    at: DateTime<Utc>,
    windows: &Windows,
    deadline: Option<Instant>,
) -> Result<Vec<f32>, PastError> {
    let seconds = crate::domain::strength::seconds(at);
    let mut strengths = Vec::with_capacity(snapshot.edge_count());
    for edge in 0..snapshot.edge_count() {
        if edge % EDGES_PER_CHECK == EDGES_PER_CHECK - 1 && deadline.is_some_and(|deadline| Instant::now() >= deadline)
        {
            return Err(PastError::OutOfTime);
        }
        let strength = if let Some(strength) = snapshot.strength_if_covered(edge, seconds) {
            strength
        } else {
            let id = snapshot.relationship(edge);
            let window = windows
                .get(&id)
                .filter(|window| window.serves(snapshot.interactions_key(edge), at))
                .ok_or(PastError::Missing(id))?;
            snapshot.strength_with(edge, &window.sums_at(model, at), at)
        };
        strengths.push(strength);
    }
    Ok(strengths)
}

/// The edges whose strength at [`trend_base`] the snapshot does not know ([`Snapshot::past_strength`]), with their
/// relationship and key: those that need a window for their trend. O(m).
pub fn past_unknown(snapshot: &Snapshot) -> Vec<(usize, RelationshipId, (u64, [u32; 4]))> {
    snapshot
        .past_unknown()
        .into_iter()
        .map(|edge| (edge, snapshot.relationship(edge), snapshot.interactions_key(edge)))
        .collect()
}

/// The strengths at [`trend_base`] of `edges` (in edge order), from their windows. O(edges + the windows' later
/// interactions).
pub fn past_from_windows(
    snapshot: &Snapshot,
    model: &StrengthModel,
    edges: &[usize],
    windows: &Windows,
) -> Result<Vec<(usize, f32)>, PastError> {
    let base = trend_base(snapshot);
    edges
        .iter()
        .map(|&edge| {
            let id = snapshot.relationship(edge);
            let window = windows
                .get(&id)
                .filter(|window| window.serves(snapshot.interactions_key(edge), base))
                .ok_or(PastError::Missing(id))?;
            Ok((edge, snapshot.strength_with(edge, &window.sums_at(model, base), base)))
        })
        .collect()
}

/// Every edge's 30-day trend: its strength at the snapshot's clock minus its strength at [`trend_base`], which the
/// snapshot knows or `known` gives (`(edge, strength)` in edge order, for the edges the snapshot does not know).
/// O(m).
pub fn trends(snapshot: &Snapshot, known: &[(usize, f32)]) -> Result<Vec<f32>, PastError> {
    let mut known = known.iter().peekable();
    (0..snapshot.edge_count())
        .map(|edge| {
            let past = match snapshot.past_strength(edge) {
                Some(past) => past,
                None => match known.next_if(|(at, _)| *at <= edge) {
                    Some((at, past)) if *at == edge => *past,
                    _ => return Err(PastError::Missing(snapshot.relationship(edge))),
                },
            };
            Ok(snapshot.strength(edge) - past)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        BondSet, InteractionId, Level, MarketSet, Relationship, RelationshipType, Sentiment, StakeholderId,
        StakeholderKind,
    };
    use crate::store::{GraphScan, NodeRow};
    use chrono::TimeZone;

    fn day(days: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(days)
    }

    fn interaction(id: i64, relationship: i64, at: DateTime<Utc>, direction: Direction, sentiment: f64) -> Interaction {
        Interaction {
            id: InteractionId(id),
            relationship: RelationshipId(relationship),
            at,
            channel: Channel::Meeting,
            direction,
            sentiment: Sentiment::parse(sentiment).unwrap(),
            amount: None,
            product_line: None,
            topic: None,
            note: None,
            key: None,
        }
    }

    fn relationship(id: i64, from: i64, to: i64, history: &[Interaction], model: &StrengthModel) -> Relationship {
        let mut relationship = Relationship {
            id: RelationshipId(id),
            from: StakeholderId(from),
            to: StakeholderId(to),
            rel_type: RelationshipType::BuysFrom,
            level: Level::Accountable,
            bonds: BondSet::default(),
            trust: None,
            commitment: None,
            since: day(0),
            basis: None,
            created_at: day(0),
            updated_at: day(0),
            sums: DecayedSums::default(),
        };
        relationship.sums = DecayedSums::from_history(model, history, DateTime::<Utc>::MAX_UTC);
        relationship
    }

    /// Three relationships: silent since day 10, active on days 10, 50 and 58 (after the trend base), and one with
    /// every interaction after the base; the clock is day 60, the base day 30.
    fn graph(model: &StrengthModel) -> (Snapshot, HashMap<RelationshipId, Vec<Interaction>>) {
        let histories = HashMap::from([
            (RelationshipId(1), vec![interaction(1, 1, day(10), Direction::Inbound, 0.5)]),
            (
                RelationshipId(2),
                vec![
                    interaction(3, 2, day(58), Direction::Outbound, -0.5),
                    interaction(2, 2, day(50), Direction::Inbound, 1.0),
                    interaction(4, 2, day(10), Direction::Inbound, 0.2),
                ],
            ),
            (RelationshipId(3), vec![interaction(5, 3, day(45), Direction::Inbound, 0.8)]),
        ]);
        let node = |id: i64| NodeRow {
            id: StakeholderId(id),
            kind: StakeholderKind::Customer,
            markets: MarketSet::EMPTY,
            private: false,
        };
        let scan = GraphScan {
            seq: 1,
            stakeholders: (1..=4).map(node).collect(),
            relationships: vec![
                relationship(1, 1, 4, &histories[&RelationshipId(1)], model),
                relationship(2, 2, 4, &histories[&RelationshipId(2)], model),
                relationship(3, 3, 4, &histories[&RelationshipId(3)], model),
            ],
            archived: Vec::new(),
        };
        (Snapshot::build(&scan, Arc::new(model.clone()), day(60)).unwrap(), histories)
    }

    #[test]
    fn past_strengths_and_trends_equal_the_history_recount() {
        let model = StrengthModel::default();
        let (snapshot, histories) = graph(&model);
        let base = trend_base(&snapshot);
        assert_eq!(base, day(30));
        let needing = needing_history(&snapshot, base);
        assert_eq!(needing.iter().map(|(id, _)| id.0).collect::<Vec<_>>(), vec![2, 3], "relationship 1 is covered");
        let windows: Windows =
            needing.iter().map(|(id, key)| (*id, Arc::new(Window::new(&model, *key, &histories[id], base)))).collect();
        let past = strengths_at(&snapshot, &model, base, &windows, None).unwrap();
        // The snapshot knows the past strength of the relationship silent since the base; the windows give the others.
        let unknown = past_unknown(&snapshot);
        assert_eq!(unknown.iter().map(|(_, id, _)| id.0).collect::<Vec<_>>(), vec![2, 3]);
        let edges: Vec<usize> = unknown.iter().map(|(edge, _, _)| *edge).collect();
        let known = past_from_windows(&snapshot, &model, &edges, &windows).unwrap();
        for (edge, strength) in &known {
            assert_eq!(*strength, past[*edge], "the same evaluation either way");
        }
        assert!(trends(&snapshot, &[]).is_err(), "without them the trends are not all known");
        let trends = trends(&snapshot, &known).unwrap();
        // Once told, the snapshot knows them.
        let told = snapshot.with_past(&known);
        assert!(told.past_unknown().is_empty());
        assert_eq!(super::trends(&told, &[]).unwrap(), trends);
        for (edge, trend) in trends.iter().enumerate() {
            let id = snapshot.relationship(edge);
            let relationship = relationship(id.0, 0, 0, &histories[&id], &model);
            let expected = model.trend(&relationship, &histories[&id], day(60));
            assert!((f64::from(*trend) - expected).abs() < 1e-5, "{id:?}: {trend} vs {expected}");
        }
        // Without the windows the relationships active since the base cannot be evaluated.
        assert_eq!(
            strengths_at(&snapshot, &model, base, &Windows::new(), None),
            Err(PastError::Missing(RelationshipId(2)))
        );
    }

    #[test]
    fn after_a_change_the_snapshot_forgets_only_the_past_strengths_the_change_can_move() {
        let model = StrengthModel::default();
        let (snapshot, mut histories) = graph(&model);
        let base = trend_base(&snapshot);
        let unknown = past_unknown(&snapshot);
        let windows: Windows = unknown
            .iter()
            .map(|(_, id, key)| (*id, Arc::new(Window::new(&model, *key, &histories[id], base))))
            .collect();
        let edges: Vec<usize> = unknown.iter().map(|(edge, _, _)| *edge).collect();
        let told = snapshot.with_past(&past_from_windows(&snapshot, &model, &edges, &windows).unwrap());
        assert!(told.past_unknown().is_empty());
        // Relationship 1 gets an interaction after the base, relationship 3 a back-dated one before it (which moves
        // its past strength): both need their histories again.
        histories.get_mut(&RelationshipId(1)).unwrap().push(interaction(6, 1, day(55), Direction::Outbound, 0.1));
        histories.get_mut(&RelationshipId(3)).unwrap().push(interaction(7, 3, day(20), Direction::Outbound, 0.3));
        let changed = crate::engine::Changes {
            relationships: vec![
                relationship(1, 1, 4, &histories[&RelationshipId(1)], &model),
                relationship(3, 3, 4, &histories[&RelationshipId(3)], &model),
            ],
            ..Default::default()
        };
        let next = told.apply(2, &changed).unwrap();
        let unknown: Vec<i64> = past_unknown(&next).iter().map(|(_, id, _)| id.0).collect();
        assert_eq!(unknown, vec![1, 3], "relationship 2 is unchanged and keeps its past strength");
        // Their windows are rebuilt (the keys changed) and the trends equal the recount again.
        let windows: Windows = past_unknown(&next)
            .iter()
            .map(|(_, id, key)| (*id, Arc::new(Window::new(&model, *key, &histories[id], base))))
            .collect();
        assert!(past_from_windows(&next, &model, &[0, 1, 2], &Windows::new()).is_err());
        let edges: Vec<usize> = past_unknown(&next).iter().map(|(edge, _, _)| *edge).collect();
        let trends = trends(&next, &past_from_windows(&next, &model, &edges, &windows).unwrap()).unwrap();
        for (edge, trend) in trends.iter().enumerate() {
            let id = next.relationship(edge);
            let relationship = relationship(id.0, 0, 0, &histories[&id], &model);
            let expected = model.trend(&relationship, &histories[&id], day(60));
            assert!((f64::from(*trend) - expected).abs() < 1e-5, "{id:?}: {trend} vs {expected}");
        }
    }

    #[test]
    fn a_window_serves_later_times_and_advances_without_changing_its_answers() {
        let model = StrengthModel::default();
        let history = [
            interaction(1, 1, day(5), Direction::Inbound, 0.5),
            interaction(2, 1, day(20), Direction::Outbound, -0.2),
            interaction(3, 1, day(40), Direction::Inbound, 0.9),
        ];
        let window = Window::new(&model, (7, [0; 4]), &history, day(10));
        assert_eq!(window.later(), 2);
        assert!(window.serves((7, [0; 4]), day(10)) && window.serves((7, [0; 4]), day(90)));
        assert!(!window.serves((7, [0; 4]), day(9)), "before its base it needs the history again");
        assert!(!window.serves((8, [0; 4]), day(30)), "a new interaction changes the key");
        for at in [day(10), day(20), day(25), day(40), day(90)] {
            let expected = DecayedSums::from_history(&model, &history, at);
            let sums = window.sums_at(&model, at);
            assert_eq!(sums.last, expected.last);
            assert!((sums.weighted - expected.weighted).abs() < 1e-12);
        }
        let advanced = window.advanced(&model, day(25));
        assert_eq!((advanced.base(), advanced.later()), (day(25), 1));
        assert_eq!(advanced.sums_at(&model, day(50)), window.sums_at(&model, day(50)));
    }
}

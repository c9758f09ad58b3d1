//! What a dashboard charts without paging through the graph: how many stakeholders a listing holds of each kind,
//! market, customer status and Mendelow quadrant; how many relationships of each level, type and market, their
//! mean strength and its histogram; and one page of the graph's relationships in id or strength order.
//!
//! Pure functions, one pass each: stakeholders over the records' rows (O(n)), relationships over a snapshot's
//! edges (O(m), and O(m log k) for a page of k). A stakeholder in several markets counts once in each, and so does
//! a relationship, which takes part in every market either of its ends does: the market buckets may add up to
//! more than `count`. Customer perceived value is averaged per segment over the customers that have it recorded.

use crate::domain::{
    CustomerDetails, CustomerStatus, KindDetails, Level, Market, MarketSet, Mendelow, RelationshipId, RelationshipType,
    Stakeholder, StakeholderKind,
};
use crate::engine::Snapshot;
use crate::store::PageDirection;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Instant;

/// Edges walked between two looks at the deadline.
const EDGES_PER_CHECK: usize = 1 << 16;

/// How many stakeholders of each kind, market, status and quadrant.
#[derive(Debug, Clone, PartialEq)]
pub struct StakeholderTally {
    /// Stakeholders counted.
    pub count: u64,
    /// Per [`StakeholderKind::ALL`].
    pub by_kind: Vec<u64>,
    /// Per [`Market::ALL`]: those taking part in the market.
    pub by_market: Vec<u64>,
    /// Per [`CustomerStatus::ALL`] (customers only).
    pub by_status: Vec<u64>,
    /// Per [`Mendelow::ALL`].
    pub by_mendelow: Vec<u64>,
    /// Customers with a recorded perceived value, per segment (`None`: no segment), with the sum of their CPVs.
    pub cpv_by_segment: BTreeMap<Option<String>, (u64, f64)>,
}

impl StakeholderTally {
    /// Nothing counted yet.
    pub fn new() -> Self {
        Self {
            count: 0,
            by_kind: vec![0; StakeholderKind::ALL.len()],
            by_market: vec![0; Market::ALL.len()],
            by_status: vec![0; CustomerStatus::ALL.len()],
            by_mendelow: vec![0; Mendelow::ALL.len()],
            cpv_by_segment: BTreeMap::new(),
        }
    }

    /// Counts `row` too.
    fn add(&mut self, row: &Stakeholder) {
        self.count += 1;
        self.by_kind[row.kind() as usize] += 1;
        let markets = row.markets();
        for (index, market) in Market::ALL.iter().enumerate() {
            if markets.contains(*market) {
                self.by_market[index] += 1;
            }
        }
        if let Some(status) = row.details.customer_status() {
            self.by_status[status as usize] += 1;
        }
        if let KindDetails::Customer(CustomerDetails { segment, perceived_value: Some(value), .. }) = &row.details {
            let (customers, sum) =
                self.cpv_by_segment.entry(segment.as_ref().map(|segment| segment.as_str().to_owned())).or_default();
            *customers += 1;
            *sum += value.cpv();
        }
        self.by_mendelow[row.mendelow() as usize] += 1;
    }
}

impl Default for StakeholderTally {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts `rows`. O(n).
pub fn tally_stakeholders<'a>(rows: impl IntoIterator<Item = &'a Stakeholder>) -> StakeholderTally {
    let mut tally = StakeholderTally::new();
    for row in rows {
        tally.add(row);
    }
    tally
}

/// Counts `rows` once per market ([`Market::ALL`] order): the tally of each market holds the rows taking part in
/// it, as [`tally_stakeholders`] of a listing filtered by that market would. One pass, O(n).
pub fn tally_by_market<'a>(rows: impl IntoIterator<Item = &'a Stakeholder>) -> Vec<StakeholderTally> {
    let mut tallies: Vec<StakeholderTally> = Market::ALL.iter().map(|_| StakeholderTally::new()).collect();
    for row in rows {
        let markets = row.markets();
        for (tally, market) in tallies.iter_mut().zip(Market::ALL) {
            if markets.contains(*market) {
                tally.add(row);
            }
        }
    }
    tallies
}

/// Which relationships of a snapshot count; every given criterion must hold, a list matches any of its values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelationshipCriteria {
    /// Either end takes part in one of these markets.
    pub markets: MarketSet,
    /// Of one of these types.
    pub types: Vec<RelationshipType>,
    /// At one of these levels.
    pub levels: Vec<Level>,
    /// Either end is of one of these kinds.
    pub kinds: Vec<StakeholderKind>,
    /// Strength at least this (as of the snapshot's clock).
    pub min_strength: Option<f32>,
    /// Strength at most this.
    pub max_strength: Option<f32>,
    /// 30-day trend at least this ([`crate::engine::trends`]; the caller passes the trends).
    pub min_trend: Option<f32>,
    /// 30-day trend at most this.
    pub max_trend: Option<f32>,
    /// Leave out relationships with a private end (for a caller who sees private stakeholders masked).
    pub hide_private: bool,
}

impl RelationshipCriteria {
    /// Whether the criteria bound the trend (and so need the trends).
    pub fn bounds_trend(&self) -> bool {
        self.min_trend.is_some() || self.max_trend.is_some()
    }

    /// Whether the edge from `source` to `target` counts; `trend` is its trend, when the caller has the trends
    /// (without them, trend bounds admit nothing).
    fn admits(
        &self,
        snapshot: &Snapshot,
        (source, edge, target): (u32, usize, u32),
        strength: f32,
        trend: Option<f32>,
    ) -> bool {
        (!self.hide_private || !(snapshot.is_private(source) || snapshot.is_private(target)))
            && self.min_strength.is_none_or(|least| strength >= least)
            && self.min_trend.is_none_or(|least| trend.is_some_and(|trend| trend >= least))
            && self.max_trend.is_none_or(|most| trend.is_some_and(|trend| trend <= most))
            && self.max_strength.is_none_or(|most| strength <= most)
            && (self.types.is_empty() || self.types.contains(&snapshot.relationship_type(edge)))
            && (self.levels.is_empty() || self.levels.contains(&snapshot.level(edge)))
            && (self.kinds.is_empty()
                || self.kinds.contains(&snapshot.kind(source))
                || self.kinds.contains(&snapshot.kind(target)))
            && (self.markets.is_empty()
                || (snapshot.markets(source).bits() | snapshot.markets(target).bits()) & self.markets.bits() != 0)
    }
}

/// Calls `visit(source, edge, target, strength)` for every edge of `snapshot` that `criteria` admits (`trends`: every
/// edge's trend, when the caller has them); `false` when `deadline` passed first.
fn each_edge(
    snapshot: &Snapshot,
    criteria: &RelationshipCriteria,
    trends: Option<&[f32]>,
    deadline: Option<Instant>,
    mut visit: impl FnMut(u32, usize, u32, f32),
) -> bool {
    let mut walked = 0usize;
    for source in 0..snapshot.node_count() as u32 {
        if criteria.hide_private && snapshot.is_private(source) {
            continue;
        }
        let before = walked;
        snapshot.for_each_out(source, |edge, target, strength| {
            walked += 1;
            let trend = trends.and_then(|trends| trends.get(edge).copied());
            if criteria.admits(snapshot, (source, edge, target), strength, trend) {
                visit(source, edge, target, strength);
            }
        });
        if before / EDGES_PER_CHECK != walked / EDGES_PER_CHECK && deadline.is_some_and(|at| Instant::now() >= at) {
            return false;
        }
    }
    true
}

/// How many relationships of each level, type and market, and how strong.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipTally {
    /// Relationships counted.
    pub count: u64,
    /// The sum of their strengths (mean = sum / count).
    pub strength_sum: f64,
    /// Counts of strength in `histogram.len()` equal buckets of [0, 1]: bucket `i` holds `[i/b, (i+1)/b)`, the last
    /// one 1 as well.
    pub histogram: Vec<u64>,
    /// Per [`Level::ALL`].
    pub by_level: Vec<u64>,
    /// Per [`RelationshipType::ALL`].
    pub by_type: Vec<u64>,
    /// Per [`Market::ALL`]: those with an end in the market.
    pub by_market: Vec<u64>,
    /// The sum of their trends, when the trends were given.
    pub trend_sum: Option<f64>,
}

impl RelationshipTally {
    /// The mean strength; `None` when nothing was counted.
    pub fn mean_strength(&self) -> Option<f64> {
        (self.count > 0).then(|| self.strength_sum / self.count as f64)
    }

    /// The mean 30-day trend; `None` when nothing was counted or the trends were not given.
    pub fn mean_trend(&self) -> Option<f64> {
        self.trend_sum.filter(|_| self.count > 0).map(|sum| sum / self.count as f64)
    }
}

/// Counts the relationships of `snapshot` that `criteria` admits, with a histogram of `buckets` (at least 1), and
/// adds up their `trends` when given. O(m); `None` when `deadline` passed first.
pub fn tally_relationships(
    snapshot: &Snapshot,
    criteria: &RelationshipCriteria,
    trends: Option<&[f32]>,
    buckets: usize,
    deadline: Option<Instant>,
) -> Option<RelationshipTally> {
    let buckets = buckets.max(1);
    let mut tally = RelationshipTally {
        count: 0,
        strength_sum: 0.0,
        histogram: vec![0; buckets],
        by_level: vec![0; Level::ALL.len()],
        by_type: vec![0; RelationshipType::ALL.len()],
        by_market: vec![0; Market::ALL.len()],
        trend_sum: trends.map(|_| 0.0),
    };
    let finished = each_edge(snapshot, criteria, trends, deadline, |source, edge, target, strength| {
        tally.count += 1;
        if let (Some(sum), Some(trends)) = (&mut tally.trend_sum, trends) {
            *sum += f64::from(trends[edge]);
        }
        tally.strength_sum += f64::from(strength);
        tally.histogram[bucket(strength, buckets)] += 1;
        tally.by_level[snapshot.level(edge) as usize] += 1;
        tally.by_type[snapshot.relationship_type(edge) as usize] += 1;
        let markets = snapshot.markets(source).union(snapshot.markets(target));
        for (index, market) in Market::ALL.iter().enumerate() {
            if markets.contains(*market) {
                tally.by_market[index] += 1;
            }
        }
    });
    finished.then_some(tally)
}

/// The bucket of `strength` among `buckets` equal ones of [0, 1].
fn bucket(strength: f32, buckets: usize) -> usize {
    ((f64::from(strength) * buckets as f64) as usize).min(buckets - 1)
}

/// The order of a page of relationships; ties always go to the lower id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EdgeOrder {
    /// By id (creation order).
    #[default]
    Id,
    /// Strongest first.
    StrengthDesc,
    /// Weakest first.
    StrengthAsc,
    /// Most strengthened over 30 days first (the caller passes the trends).
    TrendDesc,
    /// Most weakened over 30 days first.
    TrendAsc,
}

/// Where a relationship sorts: what a cursor holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeKey {
    /// What it sorts by as of the snapshot the page was read from: its strength, or its trend in a trend order
    /// (unused in id order).
    pub value: f32,
    /// Its id.
    pub id: RelationshipId,
}

impl EdgeOrder {
    fn compare(self, a: &EdgeKey, b: &EdgeKey) -> Ordering {
        match self {
            EdgeOrder::Id => Ordering::Equal,
            EdgeOrder::StrengthDesc | EdgeOrder::TrendDesc => b.value.total_cmp(&a.value),
            EdgeOrder::StrengthAsc | EdgeOrder::TrendAsc => a.value.total_cmp(&b.value),
        }
        .then(a.id.cmp(&b.id))
    }

    /// Whether it sorts by trend (and so needs the trends).
    pub fn by_trend(self) -> bool {
        matches!(self, EdgeOrder::TrendDesc | EdgeOrder::TrendAsc)
    }
}

/// Which page of relationships to read: up to `count` of them after `cursor` (forward) or before it (backward),
/// from the listing's start or end without one. The cursor is a key of an item of an earlier page: the page goes
/// on from where that key sorts now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeSpan {
    /// Where the page starts (forward) or ends (backward).
    pub cursor: Option<EdgeKey>,
    /// How many at most.
    pub count: usize,
    /// Which way it is read from the cursor.
    pub direction: PageDirection,
}

/// A page of relationships.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgePage {
    /// The relationships on the page, in order, each with its source end.
    pub items: Vec<(EdgeKey, crate::domain::StakeholderId)>,
    /// Whether more lie beyond the page in the direction it was read.
    pub has_more: bool,
}

/// The page `span` asks for of the relationships that `criteria` admits, in `order`. `trends`: every edge's trend,
/// which trend orders and bounds need (without them a trend order sorts by id). O(m log count); `None` when
/// `deadline` passed.
pub fn page_relationships(
    snapshot: &Snapshot,
    criteria: &RelationshipCriteria,
    trends: Option<&[f32]>,
    order: EdgeOrder,
    span: EdgeSpan,
    deadline: Option<Instant>,
) -> Option<EdgePage> {
    /// A candidate, ordered so that the heap's top is the one farthest from the cursor (the order, or its
    /// reverse when read backward).
    struct Candidate(EdgeKey, u32, EdgeOrder, PageDirection);
    impl PartialEq for Candidate {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other) == Ordering::Equal
        }
    }
    impl Eq for Candidate {}
    impl PartialOrd for Candidate {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Candidate {
        fn cmp(&self, other: &Self) -> Ordering {
            away(self.2, self.3, &self.0, &other.0)
        }
    }
    /// Compares two keys by their distance from the cursor along the direction read.
    fn away(order: EdgeOrder, direction: PageDirection, a: &EdgeKey, b: &EdgeKey) -> Ordering {
        match direction {
            PageDirection::Forward => order.compare(a, b),
            PageDirection::Backward => order.compare(b, a),
        }
    }
    let EdgeSpan { cursor, count, direction } = span;
    let wanted = count + 1;
    let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(wanted + 1);
    let finished = each_edge(snapshot, criteria, trends, deadline, |source, edge, _, strength| {
        let value = match (order.by_trend(), trends) {
            (true, Some(trends)) => trends[edge],
            (true, None) => 0.0,
            (false, _) => strength,
        };
        let key = EdgeKey { value, id: snapshot.relationship(edge) };
        if cursor.is_some_and(|cursor| away(order, direction, &key, &cursor) != Ordering::Greater) {
            return;
        }
        if heap.len() == wanted {
            if heap.peek().is_some_and(|last| away(order, direction, &key, &last.0) != Ordering::Less) {
                return;
            }
            heap.pop();
        }
        heap.push(Candidate(key, source, order, direction));
    });
    if !finished {
        return None;
    }
    let mut items: Vec<(EdgeKey, crate::domain::StakeholderId)> = heap
        .into_sorted_vec()
        .into_iter()
        .map(|Candidate(key, source, ..)| (key, snapshot.stakeholder(source)))
        .collect();
    let has_more = items.len() > count;
    items.truncate(count);
    if direction == PageDirection::Backward {
        items.reverse();
    }
    Some(EdgePage { items, has_more })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::strength::StrengthModel;
    use crate::domain::{BondSet, CustomerDetails, KindDetails, Label, Probability, Relationship, StakeholderId};
    use crate::store::{GraphScan, NodeRow};
    use chrono::{TimeZone, Utc};
    use std::sync::Arc;

    fn customer(id: i64, power: f64, interest: f64, status: CustomerStatus, extra: MarketSet) -> Stakeholder {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Stakeholder {
            id: StakeholderId(id),
            key: Label::try_from(format!("c{id}")).unwrap(),
            name: Label::try_from(format!("Customer {id}")).unwrap(),
            power: Probability::parse(power).unwrap(),
            interest: Probability::parse(interest).unwrap(),
            private: false,
            extra_markets: extra,
            details: KindDetails::Customer(CustomerDetails {
                status,
                segment: None,
                lifetime_value: None,
                exit: None,
                perceived_value: None,
                since: None,
                lifecycle: Vec::new(),
                memberships: Vec::new(),
                retention_cost: None,
            }),
            created_at: at,
            updated_at: at,
            archived_at: None,
        }
    }

    #[test]
    fn stakeholders_count_once_per_bucket_and_once_per_market() {
        let rows = [
            customer(1, 0.9, 0.9, CustomerStatus::Active, MarketSet::EMPTY),
            customer(2, 0.1, 0.9, CustomerStatus::Active, MarketSet::of([Market::Referral])),
            customer(3, 0.1, 0.1, CustomerStatus::Churned, MarketSet::EMPTY),
        ];
        let tally = tally_stakeholders(&rows);
        assert_eq!(tally.count, 3);
        assert_eq!(tally.by_kind[StakeholderKind::Customer as usize], 3);
        assert_eq!(tally.by_kind.iter().sum::<u64>(), 3);
        assert_eq!(tally.by_market[Market::Customer as usize], 3);
        assert_eq!(tally.by_market[Market::Referral as usize], 1);
        assert_eq!(tally.by_status[CustomerStatus::Active as usize], 2);
        assert_eq!(tally.by_status[CustomerStatus::Churned as usize], 1);
        assert_eq!(tally.by_mendelow[Mendelow::ManageClosely as usize], 1);
        assert_eq!(tally.by_mendelow[Mendelow::KeepInformed as usize], 1);
        assert_eq!(tally.by_mendelow[Mendelow::Monitor as usize], 1);
    }

    /// Five stakeholders (4 private, 5 a media outlet) and relationships with `meetings` meetings each, so their
    /// strengths differ.
    fn snapshot() -> Snapshot {
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let node = |id: i64, kind: StakeholderKind, private: bool| NodeRow {
            id: StakeholderId(id),
            kind,
            markets: MarketSet::of([kind.primary_market(false)]),
            private,
        };
        let model = Arc::new(StrengthModel::default());
        let relationship = |id: i64, from: i64, to: i64, level: u8, meetings: u32| {
            let mut relationship = Relationship {
                id: RelationshipId(id),
                from: StakeholderId(from),
                to: StakeholderId(to),
                rel_type: if to == 5 { RelationshipType::Covers } else { RelationshipType::Knows },
                level: Level::from_rank(level).unwrap(),
                bonds: BondSet::EMPTY,
                trust: None,
                commitment: None,
                since: at - chrono::Duration::days(400),
                basis: None,
                created_at: at,
                updated_at: at,
                sums: Default::default(),
            };
            for day in 0..meetings {
                relationship.sums.add(
                    &model,
                    at - chrono::Duration::days(i64::from(day)),
                    crate::domain::Channel::Meeting,
                    crate::domain::Direction::Inbound,
                    0.5,
                );
            }
            relationship
        };
        let scan = GraphScan {
            archived: Vec::new(),
            seq: 1,
            stakeholders: vec![
                node(1, StakeholderKind::Customer, false),
                node(2, StakeholderKind::Customer, false),
                node(3, StakeholderKind::Employee, false),
                node(4, StakeholderKind::Customer, true),
                node(5, StakeholderKind::Media, false),
            ],
            relationships: vec![
                relationship(10, 3, 1, 5, 8),
                relationship(11, 3, 2, 1, 0),
                relationship(12, 3, 4, 3, 4),
                relationship(13, 1, 5, 2, 2),
                relationship(14, 2, 1, 4, 1),
            ],
        };
        Snapshot::build(&scan, model, at).unwrap()
    }

    #[test]
    fn relationships_tally_by_level_type_and_market_and_hide_private_ends() {
        let snapshot = snapshot();
        let all = tally_relationships(&snapshot, &RelationshipCriteria::default(), None, 4, None).unwrap();
        assert_eq!(all.count, 5);
        assert_eq!(all.histogram.iter().sum::<u64>(), 5);
        assert_eq!(all.by_level, vec![1, 1, 1, 1, 1]);
        assert_eq!(all.by_type[RelationshipType::Covers as usize], 1);
        assert_eq!(all.by_type[RelationshipType::Knows as usize], 4);
        // Every relationship has a customer at one end; two have the employee (internal market); one the outlet.
        assert_eq!(all.by_market[Market::Customer as usize], 5);
        assert_eq!(all.by_market[Market::Internal as usize], 3);
        assert_eq!(all.by_market[Market::Influence as usize], 1);
        let public = RelationshipCriteria { hide_private: true, ..Default::default() };
        let seen = tally_relationships(&snapshot, &public, None, 4, None).unwrap();
        assert_eq!(seen.count, 4, "relationship 12 has a private end");
        let strengths: Vec<f64> = (0..snapshot.node_count() as u32)
            .flat_map(|node| snapshot.out_edges(node).collect::<Vec<_>>())
            .filter(|&edge| snapshot.relationship(edge) != RelationshipId(12))
            .map(|edge| f64::from(snapshot.strength(edge)))
            .collect();
        let mean = strengths.iter().sum::<f64>() / 4.0;
        assert!((seen.mean_strength().unwrap() - mean).abs() < 1e-12);
        let media = RelationshipCriteria { kinds: vec![StakeholderKind::Media], ..Default::default() };
        assert_eq!(tally_relationships(&snapshot, &media, None, 1, None).unwrap().count, 1);
        let levels = RelationshipCriteria { levels: vec![Level::Basic, Level::Partnership], ..Default::default() };
        assert_eq!(tally_relationships(&snapshot, &levels, None, 1, None).unwrap().count, 2);
        let internal = RelationshipCriteria { markets: MarketSet::of([Market::Internal]), ..Default::default() };
        assert_eq!(tally_relationships(&snapshot, &internal, None, 1, None).unwrap().count, 3);
        let none = RelationshipCriteria { min_strength: Some(0.9), max_strength: Some(0.1), ..Default::default() };
        let empty = tally_relationships(&snapshot, &none, None, 1, None).unwrap();
        assert_eq!((empty.count, empty.mean_strength()), (0, None));
    }

    #[test]
    fn histogram_buckets_are_half_open_and_the_last_holds_one() {
        assert_eq!(bucket(0.0, 10), 0);
        assert_eq!(bucket(0.1, 10), 1);
        assert_eq!(bucket(0.0999, 10), 0);
        assert_eq!(bucket(1.0, 10), 9);
        assert_eq!(bucket(0.5, 1), 0);
    }

    #[test]
    fn pages_follow_the_order_and_go_on_after_their_cursor() {
        let snapshot = snapshot();
        let criteria = RelationshipCriteria::default();
        let span = |cursor, count, direction| EdgeSpan { cursor, count, direction };
        for order in [EdgeOrder::Id, EdgeOrder::StrengthDesc, EdgeOrder::StrengthAsc] {
            // The whole list in one page, then the same list two at a time, forward and backward.
            let whole =
                page_relationships(&snapshot, &criteria, None, order, span(None, 10, PageDirection::Forward), None)
                    .unwrap();
            assert_eq!(whole.items.len(), 5);
            assert!(!whole.has_more);
            for pair in whole.items.windows(2) {
                assert_eq!(order.compare(&pair[0].0, &pair[1].0), Ordering::Less, "{order:?}");
            }
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page =
                    page_relationships(&snapshot, &criteria, None, order, span(after, 2, PageDirection::Forward), None)
                        .unwrap();
                paged.extend(page.items.iter().copied());
                after = page.items.last().map(|(key, _)| *key);
                if !page.has_more {
                    break;
                }
            }
            assert_eq!(paged, whole.items, "{order:?}");
            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let page = page_relationships(
                    &snapshot,
                    &criteria,
                    None,
                    order,
                    span(before, 2, PageDirection::Backward),
                    None,
                )
                .unwrap();
                paged.splice(0..0, page.items.iter().copied());
                before = page.items.first().map(|(key, _)| *key);
                if !page.has_more {
                    break;
                }
            }
            assert_eq!(paged, whole.items, "{order:?}, backward");
        }
        let forward = |count| span(None, count, PageDirection::Forward);
        let by_id = page_relationships(&snapshot, &criteria, None, EdgeOrder::Id, forward(10), None).unwrap();
        let ids: Vec<i64> = by_id.items.iter().map(|(key, _)| key.id.0).collect();
        assert_eq!(ids, vec![10, 11, 12, 13, 14]);
        let strongest =
            page_relationships(&snapshot, &criteria, None, EdgeOrder::StrengthDesc, forward(1), None).unwrap();
        assert_eq!(strongest.items[0].0.id, RelationshipId(10), "eight meetings");
        assert_eq!(strongest.items[0].1, StakeholderId(3));
    }
}

//! The six markets at a glance (`marketOverview`): for each market, its relationships (those with an end taking part
//! in it), how strong they are and how that moved over 30 days, how many sit at each Kotler level, how many are
//! tied by each bond, how many are weakening, and the market's most connected stakeholders.
//!
//! One pass over a snapshot's edges: O(m · markets) plus O(n log k) for the rankings. A relationship counts once in
//! each market either of its ends takes part in. The stakeholders' own counts (and Mendelow quadrants) come from the
//! records' tallies ([`crate::engine::aggregates::tally_stakeholders`]).

use crate::domain::{Bond, BondSet, Level, Market, MarketSet};
use crate::engine::analysis::top_of;
use crate::engine::Snapshot;
use std::time::Instant;

/// Edges walked between two looks at the deadline.
const EDGES_PER_CHECK: usize = 1 << 16;

/// One market's relationships.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketRelationships {
    /// The market.
    pub market: Market,
    /// Relationships with an end in the market.
    pub count: u64,
    /// The sum of their strengths.
    pub strength_sum: f64,
    /// The sum of their 30-day trends.
    pub trend_sum: f64,
    /// Per [`Level::ALL`].
    pub by_level: Vec<u64>,
    /// Per [`Bond::ALL`]: those tied by the bond.
    pub by_bond: Vec<u64>,
    /// Those tied by at least one bond.
    pub bonded: u64,
    /// Those whose trend is below the weakening threshold.
    pub weakening: u64,
    /// The market's stakeholders with the highest strength-weighted degree, as (node, the sum of the strengths of
    /// its counted relationships), highest first (ties: lower node).
    pub most_connected: Vec<(u32, f64)>,
}

impl MarketRelationships {
    fn new(market: Market) -> Self {
        Self {
            market,
            count: 0,
            strength_sum: 0.0,
            trend_sum: 0.0,
            by_level: vec![0; Level::ALL.len()],
            by_bond: vec![0; Bond::ALL.len()],
            bonded: 0,
            weakening: 0,
            most_connected: Vec::new(),
        }
    }

    /// The mean strength; `None` without relationships.
    pub fn mean_strength(&self) -> Option<f64> {
        (self.count > 0).then(|| self.strength_sum / self.count as f64)
    }

    /// The mean 30-day trend (the mean strength now minus the mean strength of the same relationships 30 days
    /// earlier); `None` without relationships.
    pub fn mean_trend(&self) -> Option<f64> {
        (self.count > 0).then(|| self.trend_sum / self.count as f64)
    }
}

/// What [`market_overview`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct OverviewInputs<'a> {
    /// Every edge's strength at the overview's time, in edge order; `None`: the snapshot's own.
    pub strengths: Option<&'a [f32]>,
    /// Every edge's 30-day trend at that time.
    pub trends: &'a [f32],
    /// A relationship whose trend is below this is weakening.
    pub weakening_below: f32,
    /// How many of the most connected stakeholders to rank per market.
    pub top: usize,
    /// Leave out private stakeholders and relationships with a private end.
    pub hide_private: bool,
}

/// The relationships of each of the six markets ([`Market::ALL`] order) in `snapshot`. `None` when `deadline`
/// passed first.
pub fn market_overview(
    snapshot: &Snapshot,
    inputs: OverviewInputs<'_>,
    deadline: Option<Instant>,
) -> Option<Vec<MarketRelationships>> {
    // Edges are first counted per (markets of their ends, level, bonds): a few thousand cells, each then added to
    // every market its ends take part in, so that the pass over the edges does a constant amount of work per edge.
    const LEVELS: usize = 5;
    const BOND_SETS: usize = 1 << 3;
    debug_assert_eq!((Level::ALL.len(), 1 << Bond::ALL.len()), (LEVELS, BOND_SETS));
    #[derive(Clone, Copy, Default)]
    struct Cell {
        count: u64,
        strength_sum: f64,
        trend_sum: f64,
        weakening: u64,
    }
    let mut cells = vec![Cell::default(); 64 * LEVELS * BOND_SETS];
    let mut degree = vec![0.0f64; snapshot.node_count()];
    let hidden = |node: u32| inputs.hide_private && snapshot.is_private(node);
    let mut walked = 0usize;
    for source in 0..snapshot.node_count() as u32 {
        if hidden(source) {
            continue;
        }
        let before = walked;
        let from = snapshot.markets(source).bits();
        for edge in snapshot.out_edges(source) {
            walked += 1;
            let target = snapshot.target(edge);
            if hidden(target) {
                continue;
            }
            let strength = inputs.strengths.map_or_else(|| snapshot.strength(edge), |strengths| strengths[edge]);
            let trend = inputs.trends[edge];
            degree[source as usize] += f64::from(strength);
            degree[target as usize] += f64::from(strength);
            let ends = usize::from((from | snapshot.markets(target).bits()) & 63);
            let cell = &mut cells[(ends * LEVELS + snapshot.level(edge) as usize) * BOND_SETS
                + usize::from(snapshot.bonds(edge).bits())];
            cell.count += 1;
            cell.strength_sum += f64::from(strength);
            cell.trend_sum += f64::from(trend);
            cell.weakening += u64::from(trend < inputs.weakening_below);
        }
        if before / EDGES_PER_CHECK != walked / EDGES_PER_CHECK && deadline.is_some_and(|at| Instant::now() >= at) {
            return None;
        }
    }
    let mut markets: Vec<MarketRelationships> =
        Market::ALL.iter().map(|market| MarketRelationships::new(*market)).collect();
    for (index, cell) in cells.iter().enumerate().filter(|(_, cell)| cell.count > 0) {
        let (ends, level, bonds) = (index / (LEVELS * BOND_SETS), index / BOND_SETS % LEVELS, index % BOND_SETS);
        let bonds = BondSet::from_bits(bonds as u8);
        for summary in markets.iter_mut().filter(|summary| MarketSet::from_bits(ends as u8).contains(summary.market)) {
            summary.count += cell.count;
            summary.strength_sum += cell.strength_sum;
            summary.trend_sum += cell.trend_sum;
            summary.weakening += cell.weakening;
            summary.by_level[level] += cell.count;
            for (index, bond) in Bond::ALL.iter().enumerate() {
                if bonds.contains(*bond) {
                    summary.by_bond[index] += cell.count;
                }
            }
            if !bonds.is_empty() {
                summary.bonded += cell.count;
            }
        }
    }
    for summary in &mut markets {
        let members: Vec<u32> = (0..snapshot.node_count() as u32)
            .filter(|&node| !hidden(node) && snapshot.markets(node).contains(summary.market))
            .collect();
        let ranked = top_of(members, &degree, inputs.top);
        summary.most_connected = ranked.into_iter().map(|node| (node, degree[node as usize])).collect();
    }
    Some(markets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::strength::StrengthModel;
    use crate::domain::StakeholderKind;
    use crate::domain::{Relationship, RelationshipId, RelationshipType, StakeholderId};
    use crate::store::{GraphScan, NodeRow};
    use chrono::{TimeZone, Utc};
    use std::sync::Arc;

    fn node(id: i64, kind: StakeholderKind, private: bool) -> NodeRow {
        NodeRow { id: StakeholderId(id), kind, markets: MarketSet::of([kind.primary_market(false)]), private }
    }

    fn relationship(id: i64, from: i64, to: i64, level: Level, bonds: &[Bond]) -> Relationship {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Relationship {
            id: RelationshipId(id),
            from: StakeholderId(from),
            to: StakeholderId(to),
            rel_type: RelationshipType::BuysFrom,
            level,
            bonds: BondSet::of(bonds.iter().copied()),
            trust: None,
            commitment: None,
            since: at,
            basis: None,
            created_at: at,
            updated_at: at,
            sums: Default::default(),
        }
    }

    #[test]
    fn each_market_counts_the_relationships_with_an_end_in_it_and_ranks_its_members() {
        // 1, 2 customers; 3 a supplier; 4 an employee (internal), private.
        let scan = GraphScan {
            seq: 1,
            stakeholders: vec![
                node(1, StakeholderKind::Customer, false),
                node(2, StakeholderKind::Customer, false),
                node(3, StakeholderKind::Supplier, false),
                node(4, StakeholderKind::Employee, true),
            ],
            relationships: vec![
                relationship(10, 1, 3, Level::Partnership, &[Bond::Financial, Bond::Social]),
                relationship(11, 2, 3, Level::Basic, &[]),
                relationship(12, 4, 1, Level::Reactive, &[Bond::Structural]),
            ],
            archived: Vec::new(),
        };
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let snapshot = Snapshot::build(&scan, Arc::new(StrengthModel::default()), at).unwrap();
        let edge = |id: i64| (0..snapshot.edge_count()).find(|&edge| snapshot.relationship(edge).0 == id).unwrap();
        let mut strengths = vec![0.0f32; 3];
        let mut trends = vec![0.0f32; 3];
        for (id, strength, trend) in [(10, 0.8, -0.1), (11, 0.2, 0.05), (12, 0.5, -0.2)] {
            strengths[edge(id)] = strength;
            trends[edge(id)] = trend;
        }
        let inputs = OverviewInputs {
            strengths: Some(&strengths),
            trends: &trends,
            weakening_below: -0.05,
            top: 5,
            hide_private: false,
        };
        let all = market_overview(&snapshot, inputs, None).unwrap();
        let of = |summaries: &[MarketRelationships], market: Market| {
            summaries.iter().find(|summary| summary.market == market).unwrap().clone()
        };
        let customer = of(&all, Market::Customer);
        assert_eq!(customer.count, 3, "every relationship has a customer end");
        assert!((customer.mean_strength().unwrap() - 0.5).abs() < 1e-6);
        assert!((customer.mean_trend().unwrap() - (-0.25 / 3.0)).abs() < 1e-6);
        assert_eq!(customer.by_level[Level::Partnership as usize], 1);
        assert_eq!(customer.by_bond[Bond::Financial as usize], 1);
        assert_eq!(customer.bonded, 2);
        assert_eq!(customer.weakening, 2, "-0.1 and -0.2 are below -0.05");
        // Node 0 (customer 1): 0.8 + 0.5; node 1 (customer 2): 0.2.
        assert_eq!(customer.most_connected.iter().map(|(node, _)| *node).collect::<Vec<_>>(), vec![0, 1]);
        assert!((customer.most_connected[0].1 - 1.3).abs() < 1e-6);
        let supplier = of(&all, Market::Supplier);
        assert_eq!((supplier.count, supplier.weakening), (2, 1));
        assert_eq!(of(&all, Market::Internal).count, 1);
        assert_eq!(of(&all, Market::Referral).count, 0);
        assert_eq!(of(&all, Market::Referral).mean_strength(), None);
        // A viewer: the private employee and its relationship are not counted anywhere.
        let masked = market_overview(&snapshot, OverviewInputs { hide_private: true, ..inputs }, None).unwrap();
        assert_eq!(of(&masked, Market::Customer).count, 2);
        assert_eq!(of(&masked, Market::Internal).count, 0);
        assert!(of(&masked, Market::Internal).most_connected.is_empty());
        assert!((of(&masked, Market::Customer).most_connected[0].1 - 0.8).abs() < 1e-6);
    }
}

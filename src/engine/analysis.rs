//! Analyses over a snapshot: which edges a walk may take, the steps of a path found on one, and weighted PageRank.

use super::paths::{Adjacency, Path};
use super::snapshot::Snapshot;
use crate::domain::{Market, MarketSet, RelationshipId, StakeholderId, StakeholderKind};
use std::time::Instant;

/// Which way influence may travel over a relationship (which runs from one stakeholder to another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flow {
    /// From `from` to `to` only.
    Forward,
    /// From `to` back to `from` only.
    Backward,
    /// Both ways: a relationship is a two-way channel.
    #[default]
    Both,
}

impl Flow {
    /// The opposite flow (walking edges backwards).
    pub fn reversed(self) -> Self {
        match self {
            Flow::Forward => Flow::Backward,
            Flow::Backward => Flow::Forward,
            Flow::Both => Flow::Both,
        }
    }
}

/// Which stakeholders a path may pass through (its ends are always allowed): all, or those of one of these
/// kinds and in one of these markets (an empty list does not restrict).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Via {
    /// Allowed kinds; empty: any.
    pub kinds: Vec<StakeholderKind>,
    /// Allowed markets; empty: any.
    pub markets: MarketSet,
}

impl Via {
    fn kind_mask(&self) -> u16 {
        self.kinds.iter().fold(0u16, |mask, kind| mask | 1 << (*kind as u16))
    }
}

/// A snapshot seen as a graph to walk: the flow, the weakest edge worth taking, who may be passed through, and
/// whether private stakeholders are hidden.
#[derive(Debug, Clone, Copy)]
pub struct Walk<'a> {
    snapshot: &'a Snapshot,
    flow: Flow,
    min_strength: f32,
    kinds: u16,
    markets: u8,
    hide_private: bool,
}

impl<'a> Walk<'a> {
    /// Walks `snapshot` along `flow` over edges of at least `min_strength`, through stakeholders allowed by `via`.
    pub fn new(snapshot: &'a Snapshot, flow: Flow, min_strength: f64, via: &Via) -> Self {
        Self {
            snapshot,
            flow,
            // The stored strengths are f32: compare in f32 so that the threshold means the same to every tool.
            // A relationship of strength 0 carries nothing and is never followed.
            min_strength: (min_strength as f32).max(f32::MIN_POSITIVE),
            kinds: via.kind_mask(),
            markets: via.markets.bits(),
            hide_private: false,
        }
    }

    /// The same walk, over only the public part of the graph when `hide` is true: a private stakeholder is
    /// then neither passed through nor reached, and no relationship with a private end is followed (for callers
    /// who may not see private stakeholders; see the README's privacy policy).
    pub fn hiding_private(self, hide: bool) -> Self {
        Self { hide_private: hide, ..self }
    }

    /// Whether `node` is hidden from this walk.
    #[inline]
    pub fn hides(&self, node: u32) -> bool {
        self.hide_private && self.snapshot.is_private(node)
    }

    /// The snapshot walked.
    pub fn snapshot(&self) -> &'a Snapshot {
        self.snapshot
    }

    /// The strongest traversable relationship from `from` to `to` along the flow: (edge, strength).
    pub fn edge(&self, from: u32, to: u32) -> Option<(usize, f64)> {
        let snapshot = self.snapshot;
        if self.hides(from) || self.hides(to) {
            return None;
        }
        let mut best: Option<(usize, f32)> = None;
        let mut consider = |edge: usize| {
            let strength = snapshot.strength(edge);
            let better = best.is_none_or(|(best_edge, best_strength)| {
                strength > best_strength
                    || (strength == best_strength && snapshot.relationship(edge) < snapshot.relationship(best_edge))
            });
            if strength >= self.min_strength && better {
                best = Some((edge, strength));
            }
        };
        if self.flow != Flow::Backward {
            snapshot.out_edges(from).filter(|&edge| snapshot.target(edge) == to).for_each(&mut consider);
        }
        if self.flow != Flow::Forward {
            snapshot.out_edges(to).filter(|&edge| snapshot.target(edge) == from).for_each(&mut consider);
        }
        best.map(|(edge, strength)| (edge, f64::from(strength)))
    }
}

impl Adjacency for Walk<'_> {
    fn node_count(&self) -> usize {
        self.snapshot.node_count()
    }

    #[inline]
    fn neighbors(&self, node: u32, mut visit: impl FnMut(u32, f64)) {
        let snapshot = self.snapshot;
        if self.hides(node) {
            return;
        }
        if self.flow != Flow::Backward {
            snapshot.for_each_out(node, |_, target, strength| {
                if strength >= self.min_strength && !self.hides(target) {
                    visit(target, f64::from(strength));
                }
            });
        }
        if self.flow != Flow::Forward {
            snapshot.for_each_in(node, |_, source, strength| {
                if strength >= self.min_strength && !self.hides(source) {
                    visit(source, f64::from(strength));
                }
            });
        }
    }

    fn reverse_neighbors(&self, node: u32, visit: impl FnMut(u32, f64)) {
        Walk { flow: self.flow.reversed(), ..*self }.neighbors(node, visit)
    }

    fn passable(&self, node: u32) -> bool {
        !self.hides(node)
            && (self.kinds == 0 || self.kinds & (1 << (self.snapshot.kind(node) as u16)) != 0)
            && (self.markets == 0 || self.snapshot.markets(node).bits() & self.markets != 0)
    }

    fn link(&self, from: u32, to: u32) -> Option<f64> {
        self.edge(from, to).map(|(_, strength)| strength)
    }
}

/// One step of a path on a walk's snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathStep {
    /// Where the step starts.
    pub from: StakeholderId,
    /// Where it ends.
    pub to: StakeholderId,
    /// The relationship it runs over: the strongest the walk follows between the two (ties: the lower id).
    pub relationship: RelationshipId,
    /// That relationship's strength.
    pub strength: f64,
}

/// A path found on a walk, told step by step.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkedPath {
    /// The product of its steps' strengths, as the search computed it.
    pub score: f64,
    /// The steps, from the source to the target.
    pub steps: Vec<PathStep>,
    /// The weakest step's strength (1 for a path without steps).
    pub weakest_link: f64,
}

impl WalkedPath {
    /// `path`, found on `walk`, step by step. O(hops · degree).
    ///
    /// # Panics
    ///
    /// If two consecutive nodes of `path` have no link on `walk`: the path was not found on it.
    pub fn of(walk: &Walk<'_>, path: &Path) -> Self {
        let snapshot = walk.snapshot;
        let steps: Vec<PathStep> = path
            .nodes
            .windows(2)
            .map(|pair| {
                let (edge, strength) = walk.edge(pair[0], pair[1]).expect("a found path's link");
                PathStep {
                    from: snapshot.stakeholder(pair[0]),
                    to: snapshot.stakeholder(pair[1]),
                    relationship: snapshot.relationship(edge),
                    strength,
                }
            })
            .collect();
        let weakest_link = steps.iter().map(|step| step.strength).fold(1.0, f64::min);
        Self { score: path.score, steps, weakest_link }
    }
}

/// Where PageRank's surfer may restart for a `keyInfluencers` ranking.
#[derive(Debug, Clone, PartialEq)]
pub enum Restarts {
    /// Anywhere: the plain ranking.
    Anywhere,
    /// Only at these nodes: personalised to a market, or the public part of the graph for a caller who sees private
    /// stakeholders masked (a private stakeholder's rank is then 0).
    Only(Vec<u32>),
    /// Nowhere: nobody to rank (no visible stakeholder in the market).
    Nowhere,
}

impl Restarts {
    /// The restarts for ranking the stakeholders `walk` shows, personalised to `market` when given. O(n).
    pub fn of(walk: &Walk<'_>, market: Option<Market>) -> Self {
        let snapshot = walk.snapshot();
        let eligible =
            |node: &u32| !walk.hides(*node) && market.is_none_or(|market| snapshot.markets(*node).contains(market));
        if market.is_none() && !walk.hide_private {
            return Restarts::Anywhere;
        }
        match (0..snapshot.node_count() as u32).filter(eligible).collect::<Vec<_>>() {
            nodes if nodes.is_empty() => Restarts::Nowhere,
            nodes => Restarts::Only(nodes),
        }
    }

    /// The teleport set [`pagerank`] takes (empty: all nodes).
    pub fn teleport(&self) -> &[u32] {
        match self {
            Restarts::Only(nodes) => nodes,
            Restarts::Anywhere | Restarts::Nowhere => &[],
        }
    }
}

/// Damping of the key-influencer PageRank.
pub const DAMPING: f64 = 0.85;
/// PageRank stops when a sweep changes the ranks by less than this (L1).
pub const PAGERANK_TOLERANCE: f64 = 1e-9;
/// Most PageRank sweeps.
const PAGERANK_SWEEPS: usize = 1_000;

/// The key influencers of a walk: who PageRank ranks first, and how many sweeps it took.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfluencers {
    /// The first of the ranking, as (node, score), best first (ties: lower node).
    pub ranked: Vec<(u32, f64)>,
    /// The sweeps PageRank took (0 when it had nowhere to restart: nobody ranked).
    pub iterations: usize,
}

/// The `first` key influencers of `walk`: weighted PageRank (damping [`DAMPING`]) restarting at the members of
/// `market` (everyone the walk does not hide, without one), ranked by [`top_ranked`]. `ranks` gives the PageRank of
/// a restart set, memoised by the caller (the engine keeps one per snapshot and key); it is not called when no one
/// is in the market. `None` if `deadline` passes first. O(sweeps · (n + m)) the first time, O(n) after.
pub fn key_influencers(
    walk: &Walk<'_>,
    market: Option<Market>,
    first: usize,
    deadline: Option<Instant>,
    ranks: impl FnOnce(&dyn Fn() -> Option<Ranks>) -> Option<std::sync::Arc<Ranks>>,
) -> Option<KeyInfluencers> {
    let restarts = Restarts::of(walk, market);
    if restarts == Restarts::Nowhere {
        return Some(KeyInfluencers { ranked: Vec::new(), iterations: 0 });
    }
    let compute = || pagerank(walk, DAMPING, PAGERANK_TOLERANCE, restarts.teleport(), PAGERANK_SWEEPS, deadline);
    let ranks = ranks(&compute)?;
    let ranked =
        top_ranked(walk, &ranks.values, first).into_iter().map(|node| (node, ranks.values[node as usize])).collect();
    Some(KeyInfluencers { ranked, iterations: ranks.iterations })
}

/// The `first` nodes `walk` shows with the highest `values`, highest first (ties: lower node). O(n + k log k).
pub fn top_ranked(walk: &Walk<'_>, values: &[f64], first: usize) -> Vec<u32> {
    top_of((0..values.len() as u32).filter(|&node| !walk.hides(node)).collect(), values, first)
}

/// The `first` of `candidates` with the highest `values` (indexed by node), highest first (ties: lower node).
/// O(c + k log k).
pub fn top_of(mut ranked: Vec<u32>, values: &[f64], first: usize) -> Vec<u32> {
    let order = |a: &u32, b: &u32| values[*b as usize].total_cmp(&values[*a as usize]).then(a.cmp(b));
    if ranked.len() > first && first > 0 {
        ranked.select_nth_unstable_by(first - 1, order);
    }
    ranked.truncate(first);
    ranked.sort_unstable_by(order);
    ranked
}

/// The result of PageRank.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranks {
    /// One value per node, summing to 1.
    pub values: Vec<f64>,
    /// Sweeps made.
    pub iterations: usize,
}

/// Weighted PageRank over `walk`'s edges (weight = strength; parallel relationships add), damping `damping`,
/// until the L1 change of a sweep is below `tolerance`. A node without edges spreads its rank like the
/// teleport does. `teleport` restricts the jumps (and so personalises the ranking) to the given nodes; empty:
/// all nodes.
///
/// Gauss–Seidel sweeps over a pull layout built once per call (each node's incident edges and weights in one
/// contiguous run), which converges in about half the sweeps of the power method to the same fixed point.
///
/// Returns `None` if `deadline` passes first.
pub fn pagerank(
    walk: &Walk<'_>,
    damping: f64,
    tolerance: f64,
    teleport: &[u32],
    max_iterations: usize,
    deadline: Option<Instant>,
) -> Option<Ranks> {
    let n = walk.node_count();
    if n == 0 {
        return Some(Ranks { values: Vec::new(), iterations: 0 });
    }
    let layout = PullLayout::of(walk);
    let mut jump = vec![0.0f64; n];
    if teleport.is_empty() {
        jump.fill(1.0 / n as f64);
    } else {
        let share = 1.0 / teleport.len() as f64;
        for &node in teleport {
            jump[node as usize] += share;
        }
    }
    // `share[v]` = rank[v] / out-weight[v]: what one unit of edge weight from v carries.
    let mut rank = jump.clone();
    let mut share: Vec<f64> = (0..n).map(|node| layout.spread(node, rank[node])).collect();
    let mut iterations = 0;
    while iterations < max_iterations {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return None;
        }
        iterations += 1;
        let dangling: f64 = layout.dangling.iter().map(|&node| rank[node as usize]).sum();
        let mut change = 0.0;
        for node in 0..n {
            let range = layout.offsets[node] as usize..layout.offsets[node + 1] as usize;
            let mut inflow = 0.0f64;
            for (&source, &weight) in layout.sources[range.clone()].iter().zip(&layout.weights[range]) {
                inflow += f64::from(weight) * share[source as usize];
            }
            let value = (1.0 - damping) * jump[node] + damping * (inflow + dangling * jump[node]);
            change += (value - rank[node]).abs();
            rank[node] = value;
            share[node] = layout.spread(node, value);
        }
        // Gauss–Seidel does not keep the total at 1 on its own.
        let total: f64 = rank.iter().sum();
        if total > 0.0 {
            for node in 0..n {
                rank[node] /= total;
                share[node] = layout.spread(node, rank[node]);
            }
        }
        if change < tolerance {
            break;
        }
    }
    Some(Ranks { values: rank, iterations })
}

/// Every node's incident edges (as seen from the other end), contiguous, with weights and out-weights.
struct PullLayout {
    offsets: Vec<u32>,
    sources: Vec<u32>,
    weights: Vec<f32>,
    /// 1 / total weight leaving each node (0 for a node without edges).
    inverse_out: Vec<f64>,
    dangling: Vec<u32>,
}

impl PullLayout {
    fn of(walk: &Walk<'_>) -> Self {
        let n = walk.node_count();
        let mut offsets = Vec::with_capacity(n + 1);
        let mut sources = Vec::new();
        let mut weights = Vec::new();
        let mut out_weight = vec![0.0f64; n];
        offsets.push(0u32);
        // Pull from the other end: the edges arriving at `node` along the flow are those leaving it against it.
        let pull = Walk { flow: walk.flow.reversed(), ..*walk };
        for node in 0..n as u32 {
            pull.neighbors(node, |source, strength| {
                sources.push(source);
                weights.push(strength as f32);
                out_weight[source as usize] += strength;
            });
            offsets.push(sources.len() as u32);
        }
        let inverse_out: Vec<f64> =
            out_weight.iter().map(|&weight| if weight > 0.0 { 1.0 / weight } else { 0.0 }).collect();
        let dangling = (0..n as u32).filter(|&node| out_weight[node as usize] == 0.0).collect();
        Self { offsets, sources, weights, inverse_out, dangling }
    }

    #[inline]
    fn spread(&self, node: usize, rank: f64) -> f64 {
        rank * self.inverse_out[node]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::strength::StrengthModel;
    use crate::domain::{Level, Probability, RelationshipId, RelationshipType, RelationshipUpsert, StakeholderId};
    use crate::store::{GraphScan, NodeRow};
    use chrono::{TimeZone, Utc};
    use std::sync::Arc;

    /// A snapshot of `nodes` customers joined by KNOWS relationships `(from, to, level, trust)`.
    pub(crate) fn snapshot(nodes: i64, edges: &[(i64, i64, u8, f64)]) -> Snapshot {
        snapshot_with_private(nodes, &[], edges)
    }

    /// [`snapshot`], with the stakeholders `private` (ids) private.
    fn snapshot_with_private(nodes: i64, private: &[i64], edges: &[(i64, i64, u8, f64)]) -> Snapshot {
        snapshot_at(0, nodes, private, edges)
    }

    /// [`snapshot_with_private`] at change-log position `seq`.
    pub(crate) fn snapshot_at(seq: i64, nodes: i64, private: &[i64], edges: &[(i64, i64, u8, f64)]) -> Snapshot {
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let scan = GraphScan {
            archived: Vec::new(),
            seq,
            stakeholders: (1..=nodes)
                .map(|id| NodeRow {
                    id: StakeholderId(id),
                    kind: StakeholderKind::Customer,
                    markets: MarketSet::EMPTY,
                    private: private.contains(&id),
                })
                .collect(),
            relationships: edges
                .iter()
                .enumerate()
                .map(|(index, &(from, to, level, trust))| {
                    RelationshipUpsert {
                        from: StakeholderId(from),
                        to: StakeholderId(to),
                        rel_type: RelationshipType::Knows,
                        level: Level::from_rank(level),
                        bonds: None,
                        trust: Some(Probability::parse(trust).unwrap()),
                        commitment: None,
                        since: Some(at),
                        basis: None,
                    }
                    .create(RelationshipId(index as i64 + 1), at)
                })
                .collect(),
        };
        Snapshot::build(&scan, Arc::new(StrengthModel::default()), at).unwrap()
    }

    /// Dense power iteration straight from the definition: the oracle.
    fn dense_pagerank(walk: &Walk<'_>, damping: f64) -> Vec<f64> {
        let n = walk.node_count();
        let mut weights = vec![vec![0.0; n]; n];
        for from in 0..n as u32 {
            walk.neighbors(from, |to, strength| weights[from as usize][to as usize] += f64::from(strength as f32));
        }
        let mut rank = vec![1.0 / n as f64; n];
        for _ in 0..2_000 {
            let mut next = vec![(1.0 - damping) / n as f64; n];
            for from in 0..n {
                let total: f64 = weights[from].iter().sum();
                for to in 0..n {
                    let share = if total > 0.0 { weights[from][to] / total } else { 1.0 / n as f64 };
                    next[to] += damping * rank[from] * share;
                }
            }
            rank = next;
        }
        rank
    }

    #[test]
    fn pagerank_matches_the_definition_in_every_flow() {
        let snapshot = snapshot(6, &[(1, 2, 5, 0.9), (2, 3, 3, 0.4), (3, 1, 4, 0.7), (1, 2, 2, 0.2), (4, 5, 1, 0.1)]);
        for flow in [Flow::Both, Flow::Forward, Flow::Backward] {
            let walk = Walk::new(&snapshot, flow, 0.0, &Via::default());
            let ranks = pagerank(&walk, 0.85, 1e-13, &[], 1_000, None).unwrap();
            let expected = dense_pagerank(&walk, 0.85);
            let distance: f64 = ranks.values.iter().zip(&expected).map(|(a, b)| (a - b).abs()).sum();
            assert!(distance < 1e-10, "{flow:?}: L1 distance {distance}");
            assert!((ranks.values.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn walks_respect_flow_strength_and_intermediaries() {
        let snapshot = snapshot(3, &[(1, 2, 5, 0.9), (2, 3, 5, 0.9)]);
        let forward = Walk::new(&snapshot, Flow::Forward, 0.0, &Via::default());
        assert!(forward.edge(0, 1).is_some() && forward.edge(1, 0).is_none());
        let backward = Walk::new(&snapshot, Flow::Backward, 0.0, &Via::default());
        assert!(backward.edge(1, 0).is_some() && backward.edge(0, 1).is_none());
        let strong_only = Walk::new(&snapshot, Flow::Both, 0.99, &Via::default());
        assert!(strong_only.edge(0, 1).is_none());
        let via_media = Via { kinds: vec![StakeholderKind::Media], markets: MarketSet::EMPTY };
        let walk = Walk::new(&snapshot, Flow::Both, 0.0, &via_media);
        assert!(super::super::paths::strongest_paths(&walk, 0, 2, 1, 4).is_empty(), "a customer cannot be passed");
        let walk = Walk::new(&snapshot, Flow::Both, 0.0, &Via::default());
        assert_eq!(super::super::paths::strongest_paths(&walk, 0, 2, 1, 4)[0].nodes, [0, 1, 2]);
    }

    #[test]
    fn a_walk_hiding_private_stakeholders_neither_passes_through_nor_reaches_them() {
        // 1 — 2 (private) — 3, and 1 — 3 weakly; 2 — 4.
        let graph = snapshot_with_private(4, &[2], &[(1, 2, 5, 0.9), (2, 3, 5, 0.9), (1, 3, 1, 0.1), (2, 4, 5, 0.9)]);
        let open = Walk::new(&graph, Flow::Both, 0.0, &Via::default());
        assert_eq!(super::super::paths::strongest_paths(&open, 0, 2, 1, 4)[0].nodes, [0, 1, 2]);
        let hiding = open.hiding_private(true);
        assert_eq!(
            super::super::paths::strongest_paths(&hiding, 0, 2, 1, 4)[0].nodes,
            [0, 2],
            "around the private one"
        );
        assert!(super::super::paths::strongest_paths(&hiding, 0, 3, 1, 4).is_empty(), "4 is reached only through 2");
        assert!(hiding.edge(0, 1).is_none() && hiding.edge(1, 3).is_none());
        assert!(super::super::paths::reach(&hiding, 0, 4, 0.0).iter().all(|&(node, _, _)| node != 1 && node != 3));
        let mut neighbours = Vec::new();
        hiding.neighbors(1, |node, _| neighbours.push(node));
        assert!(neighbours.is_empty(), "a hidden node has no edges");
        // PageRank teleporting to the public nodes only equals PageRank on the public part of the graph.
        let ranks = pagerank(&hiding, 0.85, 1e-13, &[0, 2, 3], 1_000, None).unwrap();
        assert_eq!(ranks.values[1], 0.0);
        let public = snapshot(3, &[(1, 2, 1, 0.1)]);
        let expected = pagerank(&Walk::new(&public, Flow::Both, 0.0, &Via::default()), 0.85, 1e-13, &[], 1_000, None);
        let expected = expected.unwrap().values;
        for (ours, theirs) in [ranks.values[0], ranks.values[2], ranks.values[3]].iter().zip(&expected) {
            assert!((ours - theirs).abs() < 1e-10, "{ours} against {theirs}");
        }
    }

    #[test]
    fn top_ranked_takes_the_highest_visible_ones_ties_to_the_lower_node() {
        let snapshot = snapshot_with_private(5, &[2], &[(1, 2, 3, 0.5)]);
        let all = Walk::new(&snapshot, Flow::Both, 0.0, &Via::default());
        let values = [0.1, 0.4, 0.4, 0.05, 0.3];
        assert_eq!(top_ranked(&all, &values, 3), vec![1, 2, 4]);
        assert_eq!(top_ranked(&all, &values, 10), vec![1, 2, 4, 0, 3]);
        assert!(top_ranked(&all, &values, 0).is_empty());
        let public = all.hiding_private(true);
        assert_eq!(top_ranked(&public, &values, 3), vec![2, 4, 0], "node 1 (stakeholder 2) is private");
    }

    #[test]
    fn a_walked_path_names_the_strongest_relationship_of_each_step_and_its_weakest_link() {
        // 1 — 2 twice (relationship 1 strong, 3 weak), 2 — 3 (relationship 2).
        let snapshot = snapshot(3, &[(1, 2, 5, 0.9), (2, 3, 3, 0.4), (1, 2, 2, 0.2)]);
        let strength = |relationship: i64, from: i64| {
            let edge = snapshot.edge_of(RelationshipId(relationship), StakeholderId(from)).unwrap();
            f64::from(snapshot.strength(edge))
        };
        let (strong, weak, second) = (strength(1, 1), strength(3, 1), strength(2, 2));
        assert!(strong > weak && strong > second, "{strong} {weak} {second}");
        // (case, flow, nodes) → steps as (from, to, relationship, strength)
        type Row<'a> = (&'a str, Flow, &'a [u32], &'a [(i64, i64, i64, f64)]);
        let table: &[Row<'_>] = &[
            ("along", Flow::Forward, &[0, 1, 2], &[(1, 2, 1, strong), (2, 3, 2, second)]),
            ("back, both ways", Flow::Both, &[2, 1, 0], &[(3, 2, 2, second), (2, 1, 1, strong)]),
            ("back, against the relationships", Flow::Backward, &[1, 0], &[(2, 1, 1, strong)]),
            ("no step", Flow::Both, &[1], &[]),
        ];
        for &(case, flow, nodes, expected) in table {
            let walk = Walk::new(&snapshot, flow, 0.0, &Via::default());
            let path = Path { nodes: nodes.to_vec(), score: 0.25 };
            let walked = WalkedPath::of(&walk, &path);
            let steps: Vec<(i64, i64, i64, f64)> =
                walked.steps.iter().map(|step| (step.from.0, step.to.0, step.relationship.0, step.strength)).collect();
            assert_eq!(steps, expected, "{case}");
            let weakest = expected.iter().map(|step| step.3).fold(1.0, f64::min);
            assert_eq!((walked.score, walked.weakest_link), (0.25, weakest), "{case}");
        }
    }

    #[test]
    fn restarts_are_everywhere_unless_a_market_or_privacy_narrows_them() {
        let snapshot = snapshot_with_private(3, &[3], &[(1, 2, 3, 0.5)]);
        let all = Walk::new(&snapshot, Flow::Both, 0.0, &Via::default());
        assert_eq!(Restarts::of(&all, None), Restarts::Anywhere);
        assert!(Restarts::of(&all, None).teleport().is_empty());
        assert_eq!(Restarts::of(&all.hiding_private(true), None), Restarts::Only(vec![0, 1]));
        // These test stakeholders take part in no market (the API's tests personalise to real ones).
        assert_eq!(Restarts::of(&all, Some(Market::Customer)), Restarts::Nowhere);
    }

    #[test]
    fn key_influencers_rank_by_pagerank_and_ask_for_ranks_only_when_someone_can_restart() {
        // A star: everyone knows 2 strongly; 2 ranks first, then the lower ids.
        let snapshot = snapshot(4, &[(1, 2, 5, 1.0), (3, 2, 5, 1.0), (4, 2, 5, 1.0)]);
        let walk = Walk::new(&snapshot, Flow::Both, 0.0, &Via::default());
        let asked = std::cell::Cell::new(0);
        let ranks = |compute: &dyn Fn() -> Option<Ranks>| {
            asked.set(asked.get() + 1);
            compute().map(std::sync::Arc::new)
        };
        let found = key_influencers(&walk, None, 2, None, ranks).unwrap();
        assert_eq!(asked.get(), 1);
        let direct = pagerank(&walk, DAMPING, PAGERANK_TOLERANCE, &[], 1_000, None).unwrap();
        let nodes: Vec<u32> = found.ranked.iter().map(|(node, _)| *node).collect();
        assert_eq!(nodes, top_ranked(&walk, &direct.values, 2));
        assert_eq!(nodes[0], snapshot.index_of(StakeholderId(2)).unwrap(), "the hub first");
        assert!(found.ranked.iter().all(|(node, score)| *score == direct.values[*node as usize]));
        assert_eq!(found.iterations, direct.iterations);
        // Nobody in the market: nothing ranked, and no PageRank asked for.
        let none = key_influencers(&walk, Some(Market::Customer), 2, None, |_| unreachable!("no restart set")).unwrap();
        assert_eq!(none, KeyInfluencers { ranked: Vec::new(), iterations: 0 });
        // A deadline already passed: no answer.
        let past = Some(Instant::now() - std::time::Duration::from_secs(1));
        assert_eq!(key_influencers(&walk, None, 2, past, |compute| compute().map(std::sync::Arc::new)), None);
    }
}

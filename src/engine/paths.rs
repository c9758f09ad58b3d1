//! Strongest influence paths (DESIGN.md §4): the influence a path carries is the product of its edge strengths;
//! the `k` strongest loopless paths come from Yen's algorithm over a hop-bounded best-path search.
//!
//! Order of paths (and tie-breaking, deterministic): higher score first, then fewer hops, then the lower node
//! sequence. Scores are always the left-to-right product along the path, so every path has exactly one score.
//!
//! This is the reference implementation, exact on any graph; its speed on the 1M-edge graph is the engine
//! work's next step.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

/// A directed graph in compressed sparse rows: the out-edges of node `n` are `offsets[n]..offsets[n + 1]`.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    offsets: Vec<usize>,
    targets: Vec<u32>,
    strengths: Vec<f64>,
}

impl Graph {
    /// A graph of `nodes` nodes from `(from, to, strength)` edges, strength in (0, 1]. Of parallel edges only the
    /// strongest is kept (it is the one any strongest path takes); self-loops are dropped.
    pub fn from_edges(nodes: usize, edges: &[(u32, u32, f64)]) -> Self {
        let mut best: HashMap<(u32, u32), f64> = HashMap::new();
        for &(from, to, strength) in edges {
            if from != to && (from as usize) < nodes && (to as usize) < nodes && strength > 0.0 {
                let slot = best.entry((from, to)).or_insert(strength);
                *slot = slot.max(strength.min(1.0));
            }
        }
        let mut sorted: Vec<((u32, u32), f64)> = best.into_iter().collect();
        sorted.sort_by_key(|(pair, _)| *pair);
        let mut offsets = vec![0usize; nodes + 1];
        for ((from, _), _) in &sorted {
            offsets[*from as usize + 1] += 1;
        }
        for node in 0..nodes {
            offsets[node + 1] += offsets[node];
        }
        let targets = sorted.iter().map(|((_, to), _)| *to).collect();
        let strengths = sorted.iter().map(|(_, strength)| *strength).collect();
        Self { offsets, targets, strengths }
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The out-edges of `node`: (target, strength), by target.
    pub fn out(&self, node: u32) -> impl Iterator<Item = (u32, f64)> + '_ {
        let range = self.offsets[node as usize]..self.offsets[node as usize + 1];
        self.targets[range.clone()].iter().copied().zip(self.strengths[range].iter().copied())
    }

    fn strength(&self, from: u32, to: u32) -> Option<f64> {
        self.out(from).find(|(target, _)| *target == to).map(|(_, strength)| strength)
    }
}

/// A loopless path and the influence it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The nodes, from the source to the target.
    pub nodes: Vec<u32>,
    /// The product of the edge strengths, left to right.
    pub score: f64,
}

impl Path {
    /// Edges on the path.
    pub fn hops(&self) -> usize {
        self.nodes.len().saturating_sub(1)
    }

    /// The weakest edge's strength.
    pub fn weakest_link(&self, graph: &Graph) -> f64 {
        self.nodes.windows(2).filter_map(|pair| graph.strength(pair[0], pair[1])).fold(1.0, f64::min)
    }
}

/// The order of paths: higher score, then fewer hops, then the lower node sequence.
fn order(a_score: f64, a_nodes: &[u32], b_score: f64, b_nodes: &[u32]) -> Ordering {
    b_score.total_cmp(&a_score).then(a_nodes.len().cmp(&b_nodes.len())).then_with(|| a_nodes.cmp(b_nodes))
}

/// A search label: a partial path from the search's start, ordered as the paths it can become.
#[derive(Debug, Clone, PartialEq)]
struct Label {
    score: f64,
    nodes: Vec<u32>,
}

impl Eq for Label {}

impl Ord for Label {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: the best label must compare greatest.
        order(other.score, &other.nodes, self.score, &self.nodes)
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a search may not use.
struct Bans<'a> {
    nodes: &'a HashSet<u32>,
    edges: &'a HashSet<(u32, u32)>,
}

/// The best path (in path order) that continues `prefix` (score `prefix_score`) to `target` within `max_hops`
/// edges in all, using edges of at least `min_strength` and nothing banned. A best-first search over
/// (node, hops) states: extending a path never improves its order, so the first label to reach a state is best.
fn best_continuation(
    graph: &Graph,
    prefix: &[u32],
    prefix_score: f64,
    target: u32,
    max_hops: usize,
    min_strength: f64,
    bans: &Bans<'_>,
) -> Option<Label> {
    let mut heap = BinaryHeap::new();
    let mut settled: HashSet<(u32, usize)> = HashSet::new();
    heap.push(Label { score: prefix_score, nodes: prefix.to_vec() });
    while let Some(label) = heap.pop() {
        let node = *label.nodes.last()?;
        if node == target {
            return Some(label);
        }
        let hops = label.nodes.len() - 1;
        if !settled.insert((node, hops)) || hops >= max_hops {
            continue;
        }
        for (next, strength) in graph.out(node) {
            if strength < min_strength || bans.nodes.contains(&next) || bans.edges.contains(&(node, next)) {
                continue;
            }
            if label.nodes.contains(&next) {
                continue;
            }
            let mut nodes = label.nodes.clone();
            nodes.push(next);
            heap.push(Label { score: label.score * strength, nodes });
        }
    }
    None
}

/// The `k` strongest loopless paths from `from` to `to` with at most `max_hops` edges, over edges of at least
/// `min_strength` (Yen's algorithm).
pub fn strongest_paths(graph: &Graph, from: u32, to: u32, k: usize, max_hops: usize, min_strength: f64) -> Vec<Path> {
    let nodes = graph.nodes() as u32;
    if k == 0 || from == to || from >= nodes || to >= nodes {
        return Vec::new();
    }
    let none_nodes = HashSet::new();
    let none_edges = HashSet::new();
    let bans = Bans { nodes: &none_nodes, edges: &none_edges };
    let Some(first) = best_continuation(graph, &[from], 1.0, to, max_hops, min_strength, &bans) else {
        return Vec::new();
    };
    let mut found = vec![first];
    let mut candidates: BTreeSet<Label> = BTreeSet::new();
    while found.len() < k {
        let previous = found.last().expect("at least one path").clone();
        for spur_at in 0..previous.nodes.len() - 1 {
            let root = &previous.nodes[..=spur_at];
            let root_score = root
                .windows(2)
                .fold(1.0, |score, pair| score * graph.strength(pair[0], pair[1]).expect("a found path's edge exists"));
            let banned_edges: HashSet<(u32, u32)> = found
                .iter()
                .filter(|path| path.nodes.len() > spur_at + 1 && path.nodes[..=spur_at] == *root)
                .map(|path| (path.nodes[spur_at], path.nodes[spur_at + 1]))
                .collect();
            let banned_nodes: HashSet<u32> = root[..spur_at].iter().copied().collect();
            let bans = Bans { nodes: &banned_nodes, edges: &banned_edges };
            if let Some(candidate) = best_continuation(graph, root, root_score, to, max_hops, min_strength, &bans) {
                if !found.contains(&candidate) {
                    candidates.insert(candidate);
                }
            }
        }
        // BTreeSet keeps labels in `Ord` order, whose greatest is the best path.
        let Some(best) = candidates.pop_last() else { break };
        found.push(best);
    }
    found.into_iter().map(|label| Path { nodes: label.nodes, score: label.score }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every loopless path within the limits, in path order: the oracle.
    fn brute_force(graph: &Graph, from: u32, to: u32, max_hops: usize, min_strength: f64) -> Vec<Path> {
        fn walk(
            graph: &Graph,
            to: u32,
            max_hops: usize,
            min_strength: f64,
            nodes: &mut Vec<u32>,
            score: f64,
            out: &mut Vec<Path>,
        ) {
            let node = *nodes.last().unwrap();
            if node == to {
                out.push(Path { nodes: nodes.clone(), score });
                return;
            }
            if nodes.len() > max_hops {
                return;
            }
            for (next, strength) in graph.out(node) {
                if strength >= min_strength && !nodes.contains(&next) {
                    nodes.push(next);
                    walk(graph, to, max_hops, min_strength, nodes, score * strength, out);
                    nodes.pop();
                }
            }
        }
        let mut out = Vec::new();
        walk(graph, to, max_hops, min_strength, &mut vec![from], 1.0, &mut out);
        out.sort_by(|a, b| order(a.score, &a.nodes, b.score, &b.nodes));
        out
    }

    #[test]
    fn the_strongest_chain_beats_the_direct_weak_edge() {
        let graph = Graph::from_edges(4, &[(0, 3, 0.1), (0, 1, 0.9), (1, 2, 0.9), (2, 3, 0.9), (0, 2, 0.5)]);
        let paths = strongest_paths(&graph, 0, 3, 3, 4, 0.05);
        let sequences: Vec<&[u32]> = paths.iter().map(|path| path.nodes.as_slice()).collect();
        assert_eq!(sequences, [&[0, 1, 2, 3][..], &[0, 2, 3][..], &[0, 3][..]]);
        assert!((paths[0].score - 0.729).abs() < 1e-12);
        assert!((paths[0].weakest_link(&graph) - 0.9).abs() < 1e-12);
        assert_eq!(strongest_paths(&graph, 0, 3, 3, 1, 0.05).len(), 1, "a hop limit of 1 leaves the direct edge");
        assert!(strongest_paths(&graph, 0, 3, 3, 1, 0.2).is_empty(), "edges below minStrength are not traversed");
    }

    #[test]
    fn ties_go_to_fewer_hops_then_lower_ids() {
        let graph = Graph::from_edges(5, &[(0, 4, 0.25), (0, 1, 0.5), (1, 4, 0.5), (0, 2, 0.5), (2, 4, 0.5)]);
        let paths = strongest_paths(&graph, 0, 4, 3, 3, 0.0);
        let sequences: Vec<&[u32]> = paths.iter().map(|path| path.nodes.as_slice()).collect();
        assert_eq!(sequences, [&[0, 4][..], &[0, 1, 4][..], &[0, 2, 4][..]]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// On random small graphs (strengths from a small set, so that ties are common), Yen's paths are exactly
        /// the first `k` of all loopless paths enumerated by brute force.
        #[test]
        fn yen_agrees_with_brute_force(
            nodes in 2usize..8,
            raw in prop::collection::vec((0u32..8, 0u32..8, prop::sample::select(vec![0.1, 0.25, 0.5, 0.8, 1.0])), 0..30),
            k in 1usize..8,
            max_hops in 1usize..6,
            min_strength in prop::sample::select(vec![0.0, 0.2, 0.6]),
        ) {
            let graph = Graph::from_edges(nodes, &raw);
            let expected = brute_force(&graph, 0, nodes as u32 - 1, max_hops, min_strength);
            let found = strongest_paths(&graph, 0, nodes as u32 - 1, k, max_hops, min_strength);
            let expected: Vec<Path> = expected.into_iter().take(k).collect();
            prop_assert_eq!(found, expected);
        }
    }
}

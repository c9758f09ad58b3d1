//! Strongest influence paths (docs/models.md, "Influence"): the influence a path carries is the product of its edge strengths;
//! the `k` strongest loopless paths come from Yen's algorithm over a hop-bounded best-path search.
//!
//! A path is a sequence of stakeholders; each step takes the strongest traversable relationship between its two
//! stakeholders (parallel relationships are one link). Order of paths (and tie-breaking, deterministic): higher
//! score first, then fewer hops, then the lower node sequence (node indices follow stakeholder ids). Scores are
//! the left-to-right product along the path, so every path has exactly one score.
//!
//! The search is best-first over labels kept in an arena (a label is a node, its hop count, its score and its
//! parent label): a label is expanded only if no label already expanded at its node has as few hops or fewer.
//! With every strength at most 1, that pruning never loses a best path, and without a hop limit it reduces to
//! Dijkstra's algorithm.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::Instant;

/// A graph the algorithms can walk: nodes are `0..node_count()`.
pub trait Adjacency {
    /// How many nodes.
    fn node_count(&self) -> usize;

    /// Calls `visit(next, strength)` for every traversable edge leaving `node` (parallel edges may repeat `next`).
    fn neighbors(&self, node: u32, visit: impl FnMut(u32, f64));

    /// Calls `visit(previous, strength)` for every traversable edge arriving at `node`.
    fn reverse_neighbors(&self, node: u32, visit: impl FnMut(u32, f64));

    /// Whether a path may pass through `node` on its way (endpoints are always allowed).
    fn passable(&self, _node: u32) -> bool {
        true
    }

    /// The strongest traversable edge from `from` to `to`.
    fn link(&self, from: u32, to: u32) -> Option<f64> {
        let mut best: Option<f64> = None;
        self.neighbors(from, |next, strength| {
            if next == to && best.is_none_or(|best| strength > best) {
                best = Some(strength);
            }
        });
        best
    }
}

/// A directed graph in compressed sparse rows (for tests and small inputs): the out-edges of node `n` are
/// `offsets[n]..offsets[n + 1]`.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    offsets: Vec<usize>,
    targets: Vec<u32>,
    strengths: Vec<f64>,
    /// Every edge as (to, from, strength), for walking backwards.
    reversed: Vec<(u32, u32, f64)>,
    min_strength: f64,
}

impl Graph {
    /// A graph of `nodes` nodes from `(from, to, strength)` edges, strength in (0, 1]. Of parallel edges only the
    /// strongest is kept (it is the one any strongest path takes); self-loops are dropped.
    pub fn from_edges(nodes: usize, edges: &[(u32, u32, f64)]) -> Self {
        let mut best: HashMap<(u32, u32), f64> = HashMap::new();
        for &(from, to, strength) in edges {
            if from != to && (from as usize) < nodes && (to as usize) < nodes && strength > 0.0 {
                let slot = best.entry((from, to)).or_insert(strength.min(1.0));
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
        let mut reversed: Vec<(u32, u32, f64)> =
            sorted.iter().map(|((from, to), strength)| (*to, *from, *strength)).collect();
        reversed.sort_by_key(|(to, from, _)| (*to, *from));
        Self { offsets, targets, strengths, reversed, min_strength: 0.0 }
    }

    /// The same graph, traversing only edges of at least `min_strength`.
    pub fn with_min_strength(mut self, min_strength: f64) -> Self {
        self.min_strength = min_strength;
        self
    }
}

impl Adjacency for Graph {
    fn node_count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    fn neighbors(&self, node: u32, mut visit: impl FnMut(u32, f64)) {
        let range = self.offsets[node as usize]..self.offsets[node as usize + 1];
        for (target, strength) in self.targets[range.clone()].iter().zip(&self.strengths[range]) {
            if *strength >= self.min_strength {
                visit(*target, *strength);
            }
        }
    }

    fn reverse_neighbors(&self, node: u32, mut visit: impl FnMut(u32, f64)) {
        let start = self.reversed.partition_point(|(to, _, _)| *to < node);
        for &(_, from, strength) in self.reversed[start..].iter().take_while(|(to, _, _)| *to == node) {
            if strength >= self.min_strength {
                visit(from, strength);
            }
        }
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

    /// The strength of each step, in order.
    pub fn strengths(&self, graph: &impl Adjacency) -> Vec<f64> {
        self.nodes.windows(2).map(|pair| graph.link(pair[0], pair[1]).unwrap_or(0.0)).collect()
    }
}

/// The order of paths: higher score, then fewer hops, then the lower node sequence.
fn order(a_score: f64, a_nodes: &[u32], b_score: f64, b_nodes: &[u32]) -> Ordering {
    b_score.total_cmp(&a_score).then(a_nodes.len().cmp(&b_nodes.len())).then_with(|| a_nodes.cmp(b_nodes))
}

/// A path found by Yen's algorithm, kept in a set ordered best-last.
#[derive(Debug, Clone, PartialEq)]
struct Candidate(Path);

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        order(other.0.score, &other.0.nodes, self.0.score, &self.0.nodes)
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

const NO_PARENT: u32 = u32::MAX;

/// Relative slack when pruning by a bound, so that rounding in products never prunes an optimal path.
const SLACK: f64 = 1e-9;

/// A partial path: where it is, how it got there.
#[derive(Debug, Clone, Copy)]
struct Label {
    node: u32,
    hops: u32,
    parent: u32,
}

/// A heap entry: the greatest key pops first, then the fewest hops; equal entries are resolved by node sequence
/// outside the heap. The key is the score, or in a bounding search the score times the potential.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    key: f64,
    score: f64,
    hops: u32,
    label: u32,
}

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.total_cmp(&other.key).then(other.hops.cmp(&self.hops)).then(other.label.cmp(&self.label))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A plain Dijkstra entry (score, node).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plain(f64, u32);

impl Eq for Plain {}

impl Ord for Plain {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

impl PartialOrd for Plain {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One side of a bidirectional strongest-path search (plain Dijkstra, scores only).
struct Side {
    /// Best score found so far from the side's start (0: not reached); final once settled.
    score: Vec<f64>,
    done: Vec<bool>,
    settled: Vec<u32>,
    heap: BinaryHeap<Plain>,
    /// Edges scanned.
    work: usize,
}

impl Side {
    fn new(nodes: usize, start: u32) -> Self {
        let mut score = vec![0.0; nodes];
        score[start as usize] = 1.0;
        Self {
            score,
            done: vec![false; nodes],
            settled: Vec::new(),
            heap: BinaryHeap::from([Plain(1.0, start)]),
            work: 0,
        }
    }

    /// The best score not settled yet (0: none left).
    fn top(&self) -> f64 {
        self.heap.peek().map_or(0.0, |entry| entry.0)
    }

    /// Settles the best node and offers its edges (given by `edges`); where an edge meets a node the other side
    /// has reached (`other`), the joined path may improve `best`.
    fn step(&mut self, edges: impl FnOnce(u32, &mut dyn FnMut(u32, f64)), other: &[f64], best: &mut f64) {
        let Some(Plain(score, node)) = self.heap.pop() else { return };
        if self.done[node as usize] {
            return;
        }
        self.done[node as usize] = true;
        self.settled.push(node);
        let Self { score: scores, heap, work, .. } = self;
        edges(node, &mut |next, strength| {
            *work += 1;
            let candidate = score * strength;
            if other[next as usize] > 0.0 {
                *best = best.max(candidate * other[next as usize]);
            }
            if candidate > scores[next as usize] {
                scores[next as usize] = candidate;
                heap.push(Plain(candidate, next));
            }
        });
    }
}

/// An upper bound on the best score from any node to one target: exact for the nodes a backward search
/// settled, `floor` for the rest (whose best score is at most the backward frontier's). It ignores hop limits,
/// bans and who may be passed, so it never underestimates; and it is consistent, so a search ordered by
/// score × potential settles each node with its best score first.
#[derive(Debug, Default)]
struct Potential {
    exact: Vec<f64>,
    floor: f64,
}

impl Potential {
    #[inline]
    fn at(&self, node: u32) -> f64 {
        let exact = self.exact[node as usize];
        if exact > 0.0 {
            exact
        } else {
            self.floor
        }
    }
}

/// How a best-first search orders and prunes.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Exact path order; labels that cannot reach `lower_bound` (by the potential) are dropped.
    Exact { lower_bound: f64 },
    /// Ordered by score × potential: finds the best score quickly, without the tie order.
    Bound,
    /// Exact path order without a target or potential (reach).
    Open,
}

/// Scratch space for searches, reused across the searches of one query.
#[derive(Debug, Default)]
pub struct Search {
    labels: Vec<Label>,
    heap: BinaryHeap<Entry>,
    /// Fewest hops of a label expanded at each node (`u32::MAX`: none yet), reset through `touched`.
    expanded: Vec<u32>,
    touched: Vec<u32>,
    /// Best score pushed for each node so far (used when no hop limit binds), reset through `pushed`.
    tentative: Vec<f64>,
    pushed: Vec<u32>,
    banned: Vec<bool>,
    potential: Potential,
    /// When to give up; searches check it every few thousand labels.
    deadline: Option<Instant>,
    /// Whether a search gave up at the deadline (its results are then incomplete).
    exhausted: bool,
}

/// What a search may not use: nodes, and directed links (from, to).
#[derive(Debug, Default)]
struct Bans {
    nodes: Vec<u32>,
    links: HashSet<(u32, u32)>,
}

impl Search {
    /// Scratch space for graphs of `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Self {
            expanded: vec![u32::MAX; nodes],
            tentative: vec![0.0; nodes],
            banned: vec![false; nodes],
            ..Self::default()
        }
    }

    /// The same scratch space, giving up at `deadline`.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Whether a search ran out of time: its answer is incomplete and must not be used.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    fn out_of_time(&mut self, step: u32) -> bool {
        if step % 4096 == 0 && self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            self.exhausted = true;
        }
        self.exhausted
    }

    fn reset(&mut self) {
        for node in self.touched.drain(..) {
            self.expanded[node as usize] = u32::MAX;
        }
        for node in self.pushed.drain(..) {
            self.tentative[node as usize] = 0.0;
        }
        self.labels.clear();
        self.heap.clear();
    }

    fn sequence(&self, mut label: u32) -> Vec<u32> {
        let mut nodes = Vec::new();
        while label != NO_PARENT {
            nodes.push(self.labels[label as usize].node);
            label = self.labels[label as usize].parent;
        }
        nodes.reverse();
        nodes
    }

    /// Pops the best entry; among entries equal in key and hops, the one with the lowest node sequence.
    fn pop_best(&mut self) -> Option<Entry> {
        let best = self.heap.pop()?;
        let tied = |entry: &Entry| entry.key == best.key && entry.hops == best.hops;
        if !self.heap.peek().is_some_and(tied) {
            return Some(best);
        }
        let mut ties = vec![best];
        while self.heap.peek().is_some_and(tied) {
            ties.push(self.heap.pop().expect("peeked"));
        }
        let winner = (0..ties.len())
            .min_by(|a, b| self.sequence(ties[*a].label).cmp(&self.sequence(ties[*b].label)))
            .expect("one at least");
        let chosen = ties.swap_remove(winner);
        self.heap.extend(ties);
        Some(chosen)
    }

    /// Computes the potential towards `target`: a backward Dijkstra from `target`, run alongside a forward one
    /// from `source` until together they prove the best score between them (bidirectional stopping rule; the
    /// side that has scanned fewer edges goes next, since hubs make one side expensive). Returns the best
    /// unconstrained score (0 if `target` cannot be reached at all). Settling more of the backward side to
    /// tighten the bound for Yen's spur searches was measured: it costs more than it saves.
    fn prepare(&mut self, graph: &impl Adjacency, source: u32, target: u32) -> f64 {
        let n = graph.node_count();
        let mut forward = Side::new(n, source);
        let mut backward = Side::new(n, target);
        let mut best = if source == target { 1.0 } else { 0.0 };
        let mut step = 0u32;
        loop {
            step = step.wrapping_add(1);
            if self.out_of_time(step) {
                break;
            }
            let (top_forward, top_backward) = (forward.top(), backward.top());
            if top_forward * top_backward <= best * (1.0 - SLACK) || (top_forward == 0.0 && top_backward == 0.0) {
                break;
            }
            // The side that has scanned fewer edges goes next (hubs make one side expensive).
            if top_backward == 0.0 || (top_forward > 0.0 && forward.work <= backward.work) {
                forward.step(|node, visit| graph.neighbors(node, visit), &backward.score, &mut best);
            } else {
                backward.step(|node, visit| graph.reverse_neighbors(node, visit), &forward.score, &mut best);
            }
        }
        let mut exact = std::mem::take(&mut self.potential.exact);
        exact.clear();
        exact.resize(n, 0.0);
        for &node in &backward.settled {
            exact[node as usize] = backward.score[node as usize];
        }
        self.potential = Potential { exact, floor: backward.top() };
        best
    }

    /// The best continuation (in path order) of `prefix` (score `prefix_score`) to `target`, with at most
    /// `max_hops` edges in all and nothing banned: a bounding search finds the best score, then an exact search
    /// pruned by it finds the path that comes first in path order.
    fn best_continuation(
        &mut self,
        graph: &impl Adjacency,
        prefix: &[u32],
        prefix_score: f64,
        target: u32,
        max_hops: usize,
        bans: &Bans,
    ) -> Option<Path> {
        for &node in &bans.nodes {
            self.banned[node as usize] = true;
        }
        let bound = self.search(graph, prefix, prefix_score, Some(target), max_hops, bans, Mode::Bound, |_, _, _| true);
        let found = bound.and_then(|(_, score)| {
            let lower_bound = score * (1.0 - SLACK);
            self.search(
                graph,
                prefix,
                prefix_score,
                Some(target),
                max_hops,
                bans,
                Mode::Exact { lower_bound },
                |_, _, _| true,
            )
        });
        for &node in &bans.nodes {
            self.banned[node as usize] = false;
        }
        found.map(|(label, score)| Path { nodes: self.sequence(label), score })
    }

    /// One best-first search from `prefix`. Each first expansion of a node is reported to
    /// `settle(node, score, hops)`, which stops the search by returning false. Returns the label and score of
    /// `target` when it is reached.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &mut self,
        graph: &impl Adjacency,
        prefix: &[u32],
        prefix_score: f64,
        target: Option<u32>,
        max_hops: usize,
        bans: &Bans,
        mode: Mode,
        mut settle: impl FnMut(u32, f64, u32) -> bool,
    ) -> Option<(u32, f64)> {
        self.reset();
        let mut parent = NO_PARENT;
        for (hops, &node) in prefix.iter().enumerate() {
            self.labels.push(Label { node, hops: hops as u32, parent });
            parent = self.labels.len() as u32 - 1;
        }
        let start = *prefix.last()?;
        let potential = |search: &Search, node: u32| match mode {
            Mode::Open => 1.0,
            _ => search.potential.at(node),
        };
        let start_key = match mode {
            Mode::Bound => prefix_score * potential(self, start),
            _ => prefix_score,
        };
        if let Mode::Exact { lower_bound } = mode {
            if prefix_score * potential(self, start) < lower_bound {
                return None;
            }
        }
        self.heap.push(Entry { key: start_key, score: prefix_score, hops: prefix.len() as u32 - 1, label: parent });
        // Without a binding hop limit a node is expanded once; with one, again for each label with fewer hops.
        let unlimited = max_hops >= graph.node_count();
        let max_hops = max_hops.min(u32::MAX as usize - 1) as u32;
        let start_label = parent;
        let mut step = 0u32;
        while let Some(entry) = self.pop_best() {
            step = step.wrapping_add(1);
            if self.out_of_time(step) {
                return None;
            }
            let Label { node, hops, .. } = self.labels[entry.label as usize];
            let previous = self.expanded[node as usize];
            if hops >= previous || (unlimited && previous != u32::MAX) {
                continue;
            }
            if previous == u32::MAX {
                self.touched.push(node);
                if !settle(node, entry.score, hops) {
                    return None;
                }
            }
            self.expanded[node as usize] = hops;
            if Some(node) == target {
                return Some((entry.label, entry.score));
            }
            if hops >= max_hops || (entry.label != start_label && !graph.passable(node)) {
                continue;
            }
            let (labels, heap, expanded, banned, potential) =
                (&mut self.labels, &mut self.heap, &self.expanded, &self.banned, &self.potential);
            let (tentative, pushed) = (&mut self.tentative, &mut self.pushed);
            let check_links = !bans.links.is_empty();
            graph.neighbors(node, |next, strength| {
                let reached = expanded[next as usize];
                if banned[next as usize] || reached <= hops + 1 || (unlimited && reached != u32::MAX) {
                    return;
                }
                if check_links && bans.links.contains(&(node, next)) {
                    return;
                }
                let score = entry.score * strength;
                let key = match mode {
                    Mode::Open => score,
                    Mode::Bound => score * potential.at(next),
                    Mode::Exact { lower_bound } => {
                        if score * potential.at(next) < lower_bound {
                            return;
                        }
                        score
                    }
                };
                if unlimited {
                    // Only hops and node order could still favour a weaker label, and only on an equal score.
                    let best = tentative[next as usize];
                    if score < best {
                        return;
                    }
                    if best == 0.0 {
                        pushed.push(next);
                    }
                    tentative[next as usize] = score;
                }
                labels.push(Label { node: next, hops: hops + 1, parent: entry.label });
                heap.push(Entry { key, score, hops: hops + 1, label: labels.len() as u32 - 1 });
            });
        }
        None
    }
}

/// The `k` strongest loopless paths from `from` to `to` with at most `max_hops` edges (Yen's algorithm).
pub fn strongest_paths(graph: &impl Adjacency, from: u32, to: u32, k: usize, max_hops: usize) -> Vec<Path> {
    let mut search = Search::new(graph.node_count());
    strongest_paths_with(&mut search, graph, from, to, k, max_hops)
}

/// [`strongest_paths`] with caller-owned scratch space.
pub fn strongest_paths_with(
    search: &mut Search,
    graph: &impl Adjacency,
    from: u32,
    to: u32,
    k: usize,
    max_hops: usize,
) -> Vec<Path> {
    let nodes = graph.node_count() as u32;
    if k == 0 || from == to || from >= nodes || to >= nodes {
        return Vec::new();
    }
    if search.prepare(graph, from, to) == 0.0 || search.exhausted {
        return Vec::new();
    }
    let Some(first) = search.best_continuation(graph, &[from], 1.0, to, max_hops, &Bans::default()) else {
        return Vec::new();
    };
    let mut found = vec![first];
    let mut candidates: BTreeSet<Candidate> = BTreeSet::new();
    while found.len() < k {
        let previous = found.last().expect("at least one path").clone();
        let mut root_score = 1.0;
        for spur_at in 0..previous.nodes.len() - 1 {
            let root = &previous.nodes[..=spur_at];
            if spur_at > 0 {
                root_score *= graph.link(root[spur_at - 1], root[spur_at]).expect("a found path's link exists");
            }
            let links: HashSet<(u32, u32)> = found
                .iter()
                .filter(|path| path.nodes.len() > spur_at + 1 && path.nodes[..=spur_at] == *root)
                .map(|path| (path.nodes[spur_at], path.nodes[spur_at + 1]))
                .collect();
            let bans = Bans { nodes: root[..spur_at].to_vec(), links };
            if let Some(candidate) = search.best_continuation(graph, root, root_score, to, max_hops, &bans) {
                if !found.contains(&candidate) {
                    candidates.insert(Candidate(candidate));
                }
            }
            if search.exhausted {
                return found;
            }
        }
        // Candidates are ordered best-last.
        let Some(best) = candidates.pop_last() else { break };
        found.push(best.0);
    }
    found
}

/// The best path score from `from` to every node it reaches within `max_hops` with a score of at least
/// `min_score` (`from` itself left out), strongest first (ties: fewer hops, then lower node sequence).
pub fn reach(graph: &impl Adjacency, from: u32, max_hops: usize, min_score: f64) -> Vec<(u32, f64, u32)> {
    let mut search = Search::new(graph.node_count());
    reach_with(&mut search, graph, from, max_hops, min_score, usize::MAX)
}

/// [`reach`] with caller-owned scratch space, stopping after `limit` nodes.
pub fn reach_with(
    search: &mut Search,
    graph: &impl Adjacency,
    from: u32,
    max_hops: usize,
    min_score: f64,
    limit: usize,
) -> Vec<(u32, f64, u32)> {
    if from as usize >= graph.node_count() {
        return Vec::new();
    }
    // Without a hop limit every node is expanded once. When no best path found that way is too long, those are
    // also the best paths within the limit; otherwise search again, expanding nodes once per hop count.
    let unlimited = reach_within(search, graph, from, usize::MAX, min_score, limit);
    if unlimited.iter().all(|(_, _, hops)| *hops as usize <= max_hops) || search.exhausted {
        return unlimited;
    }
    reach_within(search, graph, from, max_hops, min_score, limit)
}

fn reach_within(
    search: &mut Search,
    graph: &impl Adjacency,
    from: u32,
    max_hops: usize,
    min_score: f64,
    limit: usize,
) -> Vec<(u32, f64, u32)> {
    let mut reached = Vec::new();
    search.search(graph, &[from], 1.0, None, max_hops, &Bans::default(), Mode::Open, |node, score, hops| {
        if score < min_score || reached.len() >= limit {
            return false;
        }
        if node != from {
            reached.push((node, score, hops));
        }
        true
    });
    reached
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
            let mut steps = Vec::new();
            graph.neighbors(node, |next, strength| steps.push((next, strength)));
            for (next, strength) in steps {
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
        let paths = strongest_paths(&graph.clone().with_min_strength(0.05), 0, 3, 3, 4);
        let sequences: Vec<&[u32]> = paths.iter().map(|path| path.nodes.as_slice()).collect();
        assert_eq!(sequences, [&[0, 1, 2, 3][..], &[0, 2, 3][..], &[0, 3][..]]);
        assert!((paths[0].score - 0.729).abs() < 1e-12);
        assert_eq!(paths[0].strengths(&graph), [0.9, 0.9, 0.9]);
        assert_eq!(
            strongest_paths(&graph.clone().with_min_strength(0.05), 0, 3, 3, 1).len(),
            1,
            "a hop limit of 1 leaves the direct edge"
        );
        assert!(
            strongest_paths(&graph.with_min_strength(0.2), 0, 3, 3, 1).is_empty(),
            "edges below minStrength are not traversed"
        );
    }

    #[test]
    fn ties_go_to_fewer_hops_then_lower_ids() {
        let graph = Graph::from_edges(5, &[(0, 4, 0.25), (0, 1, 0.5), (1, 4, 0.5), (0, 2, 0.5), (2, 4, 0.5)]);
        let paths = strongest_paths(&graph, 0, 4, 3, 3);
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
            let graph = Graph::from_edges(nodes, &raw).with_min_strength(min_strength);
            let expected = brute_force(&graph, 0, nodes as u32 - 1, max_hops, min_strength);
            let found = strongest_paths(&graph, 0, nodes as u32 - 1, k, max_hops);
            let expected: Vec<Path> = expected.into_iter().take(k).collect();
            prop_assert_eq!(found, expected);
        }

        /// Reach gives every node's best score within the hop limit, as brute force finds it.
        #[test]
        fn reach_agrees_with_brute_force(
            nodes in 2usize..8,
            raw in prop::collection::vec((0u32..8, 0u32..8, prop::sample::select(vec![0.1, 0.25, 0.5, 0.8, 1.0])), 0..30),
            max_hops in 1usize..6,
            min_score in prop::sample::select(vec![0.0, 0.05, 0.3]),
        ) {
            let graph = Graph::from_edges(nodes, &raw);
            let found: HashMap<u32, f64> = reach(&graph, 0, max_hops, min_score)
                .into_iter()
                .map(|(node, score, _)| (node, score))
                .collect();
            let mut expected = HashMap::new();
            for to in 1..nodes as u32 {
                if let Some(best) = brute_force(&graph, 0, to, max_hops, 0.0).first() {
                    if best.score >= min_score {
                        expected.insert(to, best.score);
                    }
                }
            }
            prop_assert_eq!(found, expected);
        }
    }
}

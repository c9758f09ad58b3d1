//! Brokers (docs/models.md, "Influence"): who lies on the strongest paths between others, by weighted betweenness.
//!
//! Brandes' algorithm with "shortest" read as strongest: from each source a max-product Dijkstra counts the
//! strongest paths to every node (σ) and keeps each node's predecessors on them; dependencies (δ) then flow back
//! in reverse settle order. Paths tie when their products, as computed along the search, are equal. A path's ends
//! earn nothing, and a node that is not passable may end a path but never carry one. On large graphs the sources
//! are a fixed-seed sample ([`sample_sources`]) and the caller scales the sums.
//!
//! An edge of strength exactly 1 costs nothing: it hands a node's score on unchanged, so the nodes of one score
//! settle together, ordered so that such free edges point forward. Paths are then counted exactly, unless free
//! edges between equally strong nodes form a cycle (counting the simple paths around cycles is #P-hard): such a
//! cycle is broken at the node of the batch that joined it first, whose free predecessors in the cycle are dropped.
//!
//! The graph is first copied into flat arrays (one pass over its edges, in the order it offers them), so that each
//! source's search reads its edges sequentially and calls nothing per edge; predecessors live in one arena per
//! source and are packed in settle order as nodes settle, for the backward pass. Each source's dependencies are
//! added to the sums in fixed point ([`ExactSum`]), so that a sum over the same sources is the same bits in any
//! order: an exact ranking does not depend on the seed that ordered its sources.
//!
//! Time O(n + m) to copy, then O(|sources| · (n + m) · 64) (a radix heap moves an entry at most 64 times, and
//! in practice a few); memory O(n + m) for n nodes and m edges.

use super::paths::Adjacency;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::time::Instant;

/// Settles between looks at the clock.
const CLOCK_EVERY: u32 = 4096;

/// The place of a node that is not in the batch being settled.
const NOT_IN_BATCH: u32 = u32::MAX;

/// The end of a predecessor list.
const NO_LINK: u32 = u32::MAX;

/// Weighted betweenness summed over `sources` (out-of-range sources are skipped; a repeated source counts again):
/// for every pair (s, t) with s a source, each node strictly inside a strongest s–t path earns the share of
/// strongest s–t paths through it. Raw sums: not normalised, not halved for two-way graphs. Strengths must lie in
/// (0, 1]. Returns `None` if `deadline` passes first.
pub fn betweenness(graph: &impl Adjacency, sources: &[u32], deadline: Option<Instant>) -> Option<Vec<f64>> {
    let n = graph.node_count();
    if !sources.iter().any(|&source| (source as usize) < n) {
        return Some(vec![0.0; n]);
    }
    dependencies(&Arcs::new(graph), sources, deadline).map(|found| found.sums())
}

/// The dependencies of every node on `sources` over `arcs` (as [`betweenness`], whose sums they are), with the
/// sum of their squares, from which [`Estimate`] tells how far a sampled estimate can be trusted. Returns `None`
/// if `deadline` passes first.
pub fn dependencies(arcs: &Arcs, sources: &[u32], deadline: Option<Instant>) -> Option<Dependencies> {
    weighted_dependencies(arcs, sources, None, deadline)
}

/// [`dependencies`], each source's counted `weight[source]` times (see [`Folding`]).
pub fn weighted_dependencies(
    arcs: &Arcs,
    sources: &[u32],
    weight: Option<&[f64]>,
    deadline: Option<Instant>,
) -> Option<Dependencies> {
    let n = arcs.node_count();
    let mut found = Dependencies::none(n);
    let mut search = Brandes::new(n);
    for &source in sources {
        if (source as usize) < n {
            search.run(arcs, source, deadline)?;
            let factor = weight.map_or(1.0, |weight| weight[source as usize]);
            search.accumulate(source, factor, &mut found.exact_sums, &mut found.squares);
            found.sources += 1;
        }
    }
    Some(found)
}

/// Degree-one nodes folded into their neighbour (one level of the tree folding of Baglioni, Geraci, Pellegrini
/// and Lastres, "Fast exact computation of betweenness centrality in social networks", 2012), so that they need
/// not be sources. From a leaf `l` whose only neighbour is `p`, every strongest path starts with the link to `p`
/// and continues as one from `p`: `l` depends on every other node exactly as `p` does (`p` never depends on `l`),
/// and on `p` itself once for every node `p` reaches but `l`. So each remaining source `s` counts `weight[s]` =
/// 1 + its leaves, and `p` earns `extra[p]` = leaves(p) · (nodes p reaches − 1) without a search.
///
/// Only where that reasoning holds: every node passable and every link present both ways (influence flowing
/// both ways), so that `p` reaches its whole component; a leaf's link to `p` weaker than 1 (a free link would
/// settle `p` in the leaf's own batch); `p` not a leaf itself. Elsewhere nothing is folded. With products
/// computed in another order, paths that tie from `p` may not tie from `l` by a rounding: the sums are those of
/// unfolded Brandes up to such ties.
#[derive(Debug, Clone, PartialEq)]
pub struct Folding {
    /// Whether each node is folded (not a source).
    pub leaf: Vec<bool>,
    /// How many times each remaining source counts.
    pub weight: Vec<f64>,
    /// The betweenness each node earns from the folded leaves as sources.
    pub extra: Vec<f64>,
}

impl Folding {
    /// Nothing folded.
    pub fn none(nodes: usize) -> Self {
        Self { leaf: vec![false; nodes], weight: vec![1.0; nodes], extra: vec![0.0; nodes] }
    }

    /// The leaves of `arcs` folded, where the conditions above hold (else [`Folding::none`]). O(n + m log m).
    pub fn of(arcs: &Arcs) -> Self {
        let n = arcs.node_count();
        let mut folding = Self::none(n);
        if arcs.passable.iter().any(|passable| !passable) {
            return folding;
        }
        let mut sorted = arcs.targets.clone();
        for node in 0..n {
            sorted[arcs.offsets[node]..arcs.offsets[node + 1]].sort_unstable();
        }
        let neighbours = |node: usize| &sorted[arcs.offsets[node]..arcs.offsets[node + 1]];
        let both_ways = (0..n).all(|node| {
            neighbours(node).iter().all(|&next| neighbours(next as usize).binary_search(&(node as u32)).is_ok())
        });
        if !both_ways {
            return folding;
        }
        let distinct = |node: usize| {
            let list = neighbours(node);
            list.iter().zip(list.iter().skip(1)).filter(|(a, b)| a != b).count() + usize::from(!list.is_empty())
        };
        let component = components(n, |node, visit| neighbours(node).iter().for_each(|&next| visit(next as usize)));
        let mut size = vec![0usize; n];
        for &root in &component {
            size[root] += 1;
        }
        for node in 0..n {
            if distinct(node) != 1 {
                continue;
            }
            let parent = neighbours(node)[0] as usize;
            let range = arcs.offsets[node]..arcs.offsets[node + 1];
            if distinct(parent) < 2 || arcs.strengths[range].iter().any(|&strength| strength >= 1.0) {
                continue;
            }
            folding.leaf[node] = true;
            folding.weight[parent] += 1.0;
            folding.extra[parent] += size[component[node]] as f64 - 2.0;
        }
        folding
    }
}

/// The component of each of `nodes` (a representative node), by search along `neighbours`.
fn components(nodes: usize, neighbours: impl Fn(usize, &mut dyn FnMut(usize))) -> Vec<usize> {
    let mut component = vec![usize::MAX; nodes];
    let mut stack = Vec::new();
    for root in 0..nodes {
        if component[root] != usize::MAX {
            continue;
        }
        component[root] = root;
        stack.push(root);
        while let Some(node) = stack.pop() {
            neighbours(node, &mut |next| {
                if component[next] == usize::MAX {
                    component[next] = root;
                    stack.push(next);
                }
            });
        }
    }
    component
}

/// What a set of sources contributes to each node's betweenness.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependencies {
    /// Σ δ_s(v) over the sources s, exactly (so the same bits whichever order the sources came in).
    pub exact_sums: Vec<ExactSum>,
    /// Σ δ_s(v)².
    pub squares: Vec<f64>,
    /// How many sources (in range) they come from.
    pub sources: usize,
}

impl Dependencies {
    /// No sources yet, over `nodes` nodes.
    pub fn none(nodes: usize) -> Self {
        Self { exact_sums: vec![ExactSum::default(); nodes], squares: vec![0.0; nodes], sources: 0 }
    }

    /// The raw betweenness sums.
    pub fn sums(&self) -> Vec<f64> {
        self.exact_sums.iter().map(|sum| sum.value()).collect()
    }

    /// Adds the dependencies of more sources.
    pub fn add(&mut self, more: &Dependencies) {
        for (sum, more) in self.exact_sums.iter_mut().zip(&more.exact_sums) {
            sum.merge(*more);
        }
        for (square, more) in self.squares.iter_mut().zip(&more.squares) {
            *square += more;
        }
        self.sources += more.sources;
    }
}

/// A sum of non-negative numbers kept in fixed point, in units of 2⁻⁶⁴ (each term rounded down to one), so
/// that adding is exact and associative: a node's betweenness summed over the same sources is the same bits
/// whatever order and chunks the sources came in, and so the same for every seed once every node was a source.
/// (Summed in `f64`, the order would decide the last bits, and those can decide a tie in the ranking.) Room for
/// sums below 2⁶⁴, where betweenness stays below n² for n nodes; each term of 2⁻¹¹ or more is kept exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExactSum(u128);

impl ExactSum {
    /// 2⁶⁴, the units in one.
    const UNITS: f64 = 18_446_744_073_709_551_616.0;

    /// Adds `term` (finite, at least 0).
    #[inline]
    pub fn add(&mut self, term: f64) {
        debug_assert!((0.0..Self::UNITS).contains(&term), "{term}");
        // `as` rounds down; the whole part is exact in f64 again, the fraction is exact, and so is its scaling.
        let whole = term as u64;
        let fraction = ((term - whole as f64) * Self::UNITS) as u64;
        self.0 += (u128::from(whole) << 64) | u128::from(fraction);
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: ExactSum) {
        self.0 += other.0;
    }

    /// The sum, rounded to the nearest `f64`.
    pub fn value(self) -> f64 {
        self.0 as f64 / Self::UNITS
    }
}

/// The candidates `0..candidates` in a random order fixed by `seed` (ChaCha8): the order in which a growing
/// sample takes its sources, so that every prefix is a uniform sample without replacement.
pub fn source_order(candidates: usize, seed: u64) -> Vec<u32> {
    use rand::seq::SliceRandom;
    let mut order: Vec<u32> = (0..candidates as u32).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order
}

/// An estimate of betweenness from a growing uniform sample of sources out of a population of candidates: each
/// node's estimate is `population / sources · Σ δ_s(v)` (unbiased), with a standard error from the spread of the
/// `δ_s(v)` over the sources. With every candidate a source it is exact.
#[derive(Debug, Clone)]
pub struct Estimate {
    population: usize,
    found: Dependencies,
    /// Known exactly, added to every estimate (the folded leaves' part, [`Folding::extra`]).
    offset: Vec<f64>,
}

impl Estimate {
    /// An empty estimate over `nodes` nodes whose sources are drawn from `population` candidates.
    pub fn new(nodes: usize, population: usize) -> Self {
        Self { population, found: Dependencies::none(nodes), offset: vec![0.0; nodes] }
    }

    /// This estimate plus `offset` for every node: what is known exactly (`offset.len()` is the node count).
    pub fn with_offset(mut self, offset: Vec<f64>) -> Self {
        self.offset = offset;
        self
    }

    /// Adds the dependencies of more sources (each source once over the estimate's life).
    pub fn add(&mut self, more: &Dependencies) {
        self.found.add(more);
    }

    /// How many sources so far.
    pub fn sources(&self) -> usize {
        self.found.sources
    }

    /// Whether every candidate was a source.
    pub fn exact(&self) -> bool {
        self.found.sources >= self.population
    }

    /// Each node's estimated betweenness (raw sums scaled to the population).
    pub fn scores(&self) -> Vec<f64> {
        let scale = self.scale();
        self.found.exact_sums.iter().zip(&self.offset).map(|(sum, offset)| sum.value() * scale + offset).collect()
    }

    fn scale(&self) -> f64 {
        if self.found.sources == 0 {
            0.0
        } else {
            self.population as f64 / self.found.sources as f64
        }
    }

    /// The standard error of each node's estimate: `population · s / √k` for the sample deviation `s` of its
    /// `δ_s` over `k` sources, with the finite-population correction (0 once every candidate is a source).
    pub fn standard_errors(&self) -> Vec<f64> {
        let k = self.found.sources as f64;
        if self.found.sources < 2 {
            return vec![f64::INFINITY; self.found.exact_sums.len()];
        }
        let n = self.population as f64;
        let correction = ((n - k) / (n - 1.0).max(1.0)).max(0.0);
        self.found
            .exact_sums
            .iter()
            .zip(&self.found.squares)
            .map(|(sum, square)| {
                let mean = sum.value() / k;
                let variance = ((square / k - mean * mean) * k / (k - 1.0)).max(0.0);
                n * (variance * correction / k).sqrt()
            })
            .collect()
    }

    /// The `k` highest-scoring nodes, highest first (ties: lower node first), among those `counts`.
    pub fn top(&self, k: usize, counts: impl Fn(u32) -> bool) -> Vec<u32> {
        ranked(&self.scores(), k, counts)
    }

    /// Whether the first `k` of the ranking are settled at `z` standard errors: each of them stands above the next
    /// by more than `z` standard errors of their difference, and the `k`-th above every node outside by as much
    /// (so neither the order inside nor the membership would likely change with more sources). Always true when
    /// exact; never with fewer than two sources.
    pub fn settled(&self, k: usize, z: f64, counts: impl Fn(u32) -> bool) -> bool {
        if self.exact() {
            return true;
        }
        if self.found.sources < 2 {
            return false;
        }
        let scores = self.scores();
        let errors = self.standard_errors();
        let top = ranked(&scores, k, &counts);
        let apart = |a: u32, b: u32| {
            let (a, b) = (a as usize, b as usize);
            scores[a] - scores[b] > z * (errors[a] * errors[a] + errors[b] * errors[b]).sqrt()
        };
        if !top.windows(2).all(|pair| apart(pair[0], pair[1])) {
            return false;
        }
        let Some(&last) = top.last() else { return true };
        let inside: std::collections::HashSet<u32> = top.iter().copied().collect();
        (0..scores.len() as u32).filter(|node| counts(*node) && !inside.contains(node)).all(|node| apart(last, node))
    }
}

/// The `k` nodes with the highest `values` among those `counts`, highest first, ties to the lower node.
fn ranked(values: &[f64], k: usize, counts: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut nodes: Vec<u32> = (0..values.len() as u32).filter(|&node| counts(node)).collect();
    let by_value = |a: &u32, b: &u32| values[*b as usize].total_cmp(&values[*a as usize]).then(a.cmp(b));
    if nodes.len() > k {
        nodes.select_nth_unstable_by(k, by_value);
        nodes.truncate(k);
    }
    nodes.sort_unstable_by(by_value);
    nodes
}

/// The sources for [`betweenness`] and the factor that scales their sums to an estimate of full betweenness:
/// every node (factor 1) when there are fewer than `exact_below` nodes or no more than `samples`; otherwise the
/// first `samples` (at least one) of [`source_order`] for `seed` (so a background estimate with the same seed
/// starts with them), in ascending order, with factor `nodes / samples`. The same inputs give the same sources.
pub fn sample_sources(nodes: usize, exact_below: usize, samples: usize, seed: u64) -> (Vec<u32>, f64) {
    if nodes < exact_below || samples >= nodes {
        return ((0..nodes as u32).collect(), 1.0);
    }
    let samples = samples.max(1);
    let mut sources = source_order(nodes, seed);
    sources.truncate(samples);
    sources.sort_unstable();
    (sources, nodes as f64 / samples as f64)
}

/// The graph's edges in compressed sparse rows, in the order [`Adjacency::neighbors`] offers them (self-loops,
/// which no path takes, left out), and whether each node is passable: built once, read by every source's search
/// (and shared by the threads of a background estimate).
#[derive(Debug)]
pub struct Arcs {
    /// The edges leaving node `n` are `offsets[n]..offsets[n + 1]`.
    offsets: Vec<usize>,
    targets: Vec<u32>,
    strengths: Vec<f64>,
    passable: Vec<bool>,
}

impl Arcs {
    /// The flat copy of `graph`: O(n + m).
    pub fn new(graph: &impl Adjacency) -> Self {
        let n = graph.node_count();
        let mut offsets = Vec::with_capacity(n + 1);
        let mut targets = Vec::new();
        let mut strengths = Vec::new();
        offsets.push(0);
        for node in 0..n as u32 {
            graph.neighbors(node, |next, strength| {
                debug_assert!(strength <= 1.0, "strengths are at most 1");
                if next != node {
                    targets.push(next);
                    strengths.push(strength);
                }
            });
            offsets.push(targets.len());
        }
        let passable = (0..n as u32).map(|node| graph.passable(node)).collect();
        Self { offsets, targets, strengths, passable }
    }

    /// How many nodes.
    pub fn node_count(&self) -> usize {
        self.passable.len()
    }
}

/// A monotone priority queue of scores in (0, 1], strongest first (a radix heap, Ahuja, Mehlhorn, Orlin and
/// Tarjan 1990): it holds only scores no stronger than the last one popped, as Dijkstra's search pushes, and so
/// needs no comparisons between entries: each entry sits in the bucket of the highest bit in which its key
/// differs from the last key popped, and moves down at most 64 times. Keys are `1.0` minus the score, as bits
/// (ordered like the numbers for non-negative floats), so that the strongest score has the smallest key.
struct RadixHeap {
    buckets: [Vec<(u64, u32)>; 65],
    /// The key last popped: every key held is at least this.
    last: u64,
}

impl Default for RadixHeap {
    fn default() -> Self {
        Self { buckets: std::array::from_fn(|_| Vec::new()), last: 0 }
    }
}

impl RadixHeap {
    const ONE: u64 = 0x3FF0_0000_0000_0000; // 1.0f64.to_bits()

    fn bucket(key: u64, last: u64) -> usize {
        (u64::BITS - (key ^ last).leading_zeros()) as usize
    }

    fn clear(&mut self) {
        self.buckets.iter_mut().for_each(Vec::clear);
        self.last = 0;
    }

    /// Adds `node` at `score`, no stronger than the last score popped.
    #[inline]
    fn push(&mut self, score: f64, node: u32) {
        let key = Self::ONE - score.to_bits();
        debug_assert!(key >= self.last, "a radix heap takes no key below the last one popped");
        self.buckets[Self::bucket(key, self.last)].push((key, node));
    }

    /// The strongest score held, with every node held at it moved to `into` (in no particular order); `None`
    /// when empty.
    fn pop_strongest(&mut self, into: &mut Vec<u32>) -> Option<f64> {
        if self.buckets[0].is_empty() {
            let index = self.buckets.iter().position(|bucket| !bucket.is_empty())?;
            let mut moved = std::mem::take(&mut self.buckets[index]);
            self.last = moved.iter().map(|&(key, _)| key).min().expect("not empty");
            // Each entry differs from the new last key in a lower bit than `index`: it moves to a lower bucket.
            for &(key, node) in &moved {
                self.buckets[Self::bucket(key, self.last)].push((key, node));
            }
            moved.clear();
            self.buckets[index] = moved;
        }
        into.extend(self.buckets[0].drain(..).map(|(_, node)| node));
        Some(f64::from_bits(Self::ONE - self.last))
    }
}

/// One source's search, with buffers reused across sources.
struct Brandes {
    /// Best score found so far, final once settled; 0: not reached.
    score: Vec<f64>,
    /// Strongest paths from the source (σ), set when a node settles.
    paths: Vec<f64>,
    /// The source's dependency on each node (δ).
    dependency: Vec<f64>,
    /// Each reached node's predecessors on its strongest paths (each once, however many parallel edges), as a
    /// list in `links` from its first entry to its last; a stronger path starts a new list.
    first: Vec<u32>,
    last: Vec<u32>,
    /// Predecessor lists of this source's search: (predecessor, next entry or [`NO_LINK`]).
    links: Vec<(u32, u32)>,
    /// Nodes reached, to reset.
    reached: Vec<u32>,
    /// Settled nodes, each after all its predecessors.
    settled: Vec<u32>,
    /// The predecessors of `settled[i]` are `settled_predecessors[settled_ends[i - 1]..settled_ends[i]]`.
    settled_predecessors: Vec<u32>,
    settled_ends: Vec<usize>,
    /// Nodes by the score they were reached with, strongest first.
    heap: RadixHeap,
    /// The nodes last taken from the heap.
    popped: Vec<u32>,
    /// The nodes of the score being settled, in the order they joined, and each one's place there.
    batch: Vec<u32>,
    place: Vec<u32>,
    /// Free edges (strength 1) between nodes of the batch.
    free: Vec<(u32, u32)>,
    /// Settles so far, over all sources.
    clock: u32,
}

impl Brandes {
    fn new(nodes: usize) -> Self {
        Self {
            score: vec![0.0; nodes],
            paths: vec![0.0; nodes],
            dependency: vec![0.0; nodes],
            first: vec![NO_LINK; nodes],
            last: vec![NO_LINK; nodes],
            links: Vec::new(),
            reached: Vec::new(),
            settled: Vec::new(),
            settled_predecessors: Vec::new(),
            settled_ends: Vec::new(),
            heap: RadixHeap::default(),
            popped: Vec::new(),
            batch: Vec::new(),
            place: vec![NOT_IN_BATCH; nodes],
            free: Vec::new(),
            clock: 0,
        }
    }

    fn reset(&mut self) {
        // `first` and `last` need no reset: a node's list starts afresh when the node is first reached.
        for node in self.reached.drain(..) {
            let node = node as usize;
            self.score[node] = 0.0;
            self.paths[node] = 0.0;
            self.dependency[node] = 0.0;
        }
        self.links.clear();
        self.settled.clear();
        self.settled_predecessors.clear();
        self.settled_ends.clear();
        self.heap.clear();
    }

    /// Settles every node `source` reaches, with its paths and predecessors. `None`: out of time.
    fn run(&mut self, arcs: &Arcs, source: u32, deadline: Option<Instant>) -> Option<()> {
        self.reset();
        self.score[source as usize] = 1.0;
        self.reached.push(source);
        self.heap.push(1.0, source);
        let mut popped = std::mem::take(&mut self.popped);
        while let Some(score) = self.heap.pop_strongest(&mut popped) {
            // Every node of this score is among those popped now, or reached from them over free edges below;
            // the batch starts with them in ascending order, leaving out the ones a stronger path superseded.
            popped.sort_unstable();
            self.batch.clear();
            self.free.clear();
            for &node in &popped {
                if self.score[node as usize] == score {
                    self.join(node);
                }
            }
            popped.clear();
            if self.batch.is_empty() {
                continue;
            }
            let mut index = 0;
            while index < self.batch.len() {
                let node = self.batch[index];
                index += 1;
                let due = self.clock % CLOCK_EVERY == 0;
                self.clock = self.clock.wrapping_add(1);
                if due && deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    self.popped = popped;
                    return None;
                }
                if node == source || arcs.passable[node as usize] {
                    self.relax(arcs, source, node, score);
                }
            }
            let ordered = !self.free.is_empty();
            if ordered {
                self.order_batch();
            }
            self.settle_batch(source, ordered);
        }
        self.popped = popped;
        Some(())
    }

    fn join(&mut self, node: u32) {
        self.place[node as usize] = self.batch.len() as u32;
        self.batch.push(node);
    }

    /// Offers the edges leaving `node` (settling at `from`): a stronger path replaces a node's predecessors, an
    /// equally strong one adds to them; a free edge brings its target into the batch.
    fn relax(&mut self, arcs: &Arcs, source: u32, node: u32, from: f64) {
        let range = arcs.offsets[node as usize]..arcs.offsets[node as usize + 1];
        for (&next, &strength) in arcs.targets[range.clone()].iter().zip(&arcs.strengths[range]) {
            if next == source {
                continue;
            }
            let candidate = from * strength;
            let current = self.score[next as usize];
            if candidate > current {
                if current == 0.0 {
                    self.reached.push(next);
                }
                self.score[next as usize] = candidate;
                let link = self.links.len() as u32;
                self.links.push((node, NO_LINK));
                self.first[next as usize] = link;
                self.last[next as usize] = link;
                if candidate == from {
                    self.place[next as usize] = self.batch.len() as u32;
                    self.batch.push(next);
                    self.free.push((node, next));
                } else {
                    self.heap.push(candidate, next);
                }
            } else if candidate == current && candidate > 0.0 {
                // (Parallel edges come in this one scan: a repeat of `node` would be the last predecessor.)
                let last = self.last[next as usize];
                if self.links[last as usize].0 != node {
                    let link = self.links.len() as u32;
                    self.links.push((node, NO_LINK));
                    self.links[last as usize].1 = link;
                    self.last[next as usize] = link;
                    if candidate == from {
                        self.free.push((node, next));
                    }
                }
            }
        }
    }

    /// Orders the batch so that its free edges point forward (Kahn's algorithm, taking nodes in the order they
    /// joined). When the free edges left form a cycle, the earliest node left goes next; its free predecessors
    /// still to come are dropped when the batch settles.
    fn order_batch(&mut self) {
        let len = self.batch.len();
        let mut waiting = vec![0u32; len];
        for &(_, to) in &self.free {
            waiting[self.place[to as usize] as usize] += 1;
        }
        self.free.sort_unstable();
        let mut ready: VecDeque<usize> = (0..len).filter(|&place| waiting[place] == 0).collect();
        let mut done = vec![false; len];
        let mut order = Vec::with_capacity(len);
        let mut earliest = 0;
        while order.len() < len {
            let next = ready.pop_front().unwrap_or_else(|| {
                while done[earliest] {
                    earliest += 1;
                }
                earliest
            });
            if done[next] {
                continue;
            }
            done[next] = true;
            let node = self.batch[next];
            order.push(node);
            let start = self.free.partition_point(|&(from, _)| from < node);
            for &(_, to) in self.free[start..].iter().take_while(|(from, _)| *from == node) {
                let place = self.place[to as usize] as usize;
                waiting[place] -= 1;
                if waiting[place] == 0 {
                    ready.push_back(place);
                }
            }
        }
        for (place, &node) in order.iter().enumerate() {
            self.place[node as usize] = place as u32;
        }
        self.batch = order;
    }

    /// Settles the batch in order: each node's paths are the sum over its predecessors, which are packed for
    /// [`Self::accumulate`]. After [`Self::order_batch`] (`ordered`), predecessors later in the batch are dropped.
    fn settle_batch(&mut self, source: u32, ordered: bool) {
        for &node in &self.batch {
            let node = node as usize;
            if node == source as usize {
                self.paths[node] = 1.0;
            } else {
                let here = self.place[node];
                let mut paths = 0.0;
                let mut link = self.first[node];
                while link != NO_LINK {
                    let (previous, next) = self.links[link as usize];
                    link = next;
                    if ordered {
                        // Settled nodes of the batch are out of it again, so they pass as earlier ones.
                        let there = self.place[previous as usize];
                        if there != NOT_IN_BATCH && there >= here {
                            continue;
                        }
                    }
                    paths += self.paths[previous as usize];
                    self.settled_predecessors.push(previous);
                }
                self.paths[node] = paths;
            }
            self.settled_ends.push(self.settled_predecessors.len());
            self.place[node] = NOT_IN_BATCH;
        }
        self.settled.extend_from_slice(&self.batch);
    }

    /// Adds the dependencies of the last run's source to `centrality` (and their squares to `squares`), in reverse
    /// settle order.
    fn accumulate(&mut self, source: u32, factor: f64, centrality: &mut [ExactSum], squares: &mut [f64]) {
        for (index, &node) in self.settled.iter().enumerate().rev() {
            let node = node as usize;
            let start = if index == 0 { 0 } else { self.settled_ends[index - 1] };
            let share = (1.0 + self.dependency[node]) / self.paths[node];
            for &previous in &self.settled_predecessors[start..self.settled_ends[index]] {
                self.dependency[previous as usize] += self.paths[previous as usize] * share;
            }
            if node != source as usize {
                let dependency = factor * self.dependency[node];
                centrality[node].add(dependency);
                squares[node] += dependency * dependency;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::paths::Graph;
    use proptest::prelude::*;

    /// A graph whose `closed` nodes may end a path but not be passed through.
    pub(crate) struct Fenced<'a> {
        pub graph: &'a Graph,
        pub closed: Vec<bool>,
    }

    impl Adjacency for Fenced<'_> {
        fn node_count(&self) -> usize {
            self.graph.node_count()
        }

        fn neighbors(&self, node: u32, visit: impl FnMut(u32, f64)) {
            self.graph.neighbors(node, visit)
        }

        fn reverse_neighbors(&self, node: u32, visit: impl FnMut(u32, f64)) {
            self.graph.reverse_neighbors(node, visit)
        }

        fn passable(&self, node: u32) -> bool {
            !self.closed[node as usize]
        }
    }

    /// A graph that offers every edge twice, as parallel relationships do.
    struct Doubled<'a>(&'a Graph);

    impl Adjacency for Doubled<'_> {
        fn node_count(&self) -> usize {
            self.0.node_count()
        }

        fn neighbors(&self, node: u32, mut visit: impl FnMut(u32, f64)) {
            let mut edges = Vec::new();
            self.0.neighbors(node, |next, strength| edges.push((next, strength)));
            for &(next, strength) in edges.iter().chain(&edges) {
                visit(next, strength);
            }
        }

        fn reverse_neighbors(&self, node: u32, visit: impl FnMut(u32, f64)) {
            self.0.reverse_neighbors(node, visit)
        }
    }

    /// Every loopless path from `from` (of one edge or more) whose inner nodes may be passed, with its
    /// left-to-right score.
    pub(crate) fn loopless_paths(graph: &impl Adjacency, from: u32) -> Vec<(Vec<u32>, f64)> {
        fn extend(graph: &impl Adjacency, nodes: &mut Vec<u32>, score: f64, out: &mut Vec<(Vec<u32>, f64)>) {
            let node = *nodes.last().unwrap();
            if nodes.len() > 1 {
                out.push((nodes.clone(), score));
                if !graph.passable(node) {
                    return;
                }
            }
            let mut steps = Vec::new();
            graph.neighbors(node, |next, strength| steps.push((next, strength)));
            for (next, strength) in steps {
                if !nodes.contains(&next) {
                    nodes.push(next);
                    extend(graph, nodes, score * strength, out);
                    nodes.pop();
                }
            }
        }
        let mut out = Vec::new();
        extend(graph, &mut vec![from], 1.0, &mut out);
        out
    }

    /// Betweenness from the definition: for each source and target, the share of strongest loopless paths
    /// through each inner node.
    fn brute_force(graph: &impl Adjacency, sources: &[u32]) -> Vec<f64> {
        let mut centrality = vec![0.0; graph.node_count()];
        for &source in sources {
            let paths = loopless_paths(graph, source);
            for target in 0..graph.node_count() as u32 {
                let to_target: Vec<&(Vec<u32>, f64)> =
                    paths.iter().filter(|(nodes, _)| *nodes.last().unwrap() == target).collect();
                let Some(best) = to_target.iter().map(|(_, score)| *score).reduce(f64::max) else { continue };
                let strongest: Vec<&[u32]> =
                    to_target.iter().filter(|(_, score)| *score == best).map(|(nodes, _)| nodes.as_slice()).collect();
                for nodes in &strongest {
                    for &inner in &nodes[1..nodes.len() - 1] {
                        centrality[inner as usize] += 1.0 / strongest.len() as f64;
                    }
                }
            }
        }
        centrality
    }

    fn all(nodes: usize) -> Vec<u32> {
        (0..nodes as u32).collect()
    }

    #[test]
    fn a_hub_carries_every_pair_but_shares_a_tie() {
        let mut edges = Vec::new();
        for leaf in 1..4 {
            edges.extend([(0, leaf, 0.5), (leaf, 0, 0.5)]);
        }
        let star = Graph::from_edges(4, &edges);
        assert_eq!(betweenness(&star, &all(4), None).unwrap(), [6.0, 0.0, 0.0, 0.0], "six ordered pairs of leaves");
        // 1 → 2 directly scores 0.25, exactly as much as 1 → 0 → 2: the hub keeps half of that pair.
        edges.push((1, 2, 0.25));
        let star = Graph::from_edges(4, &edges);
        assert_eq!(betweenness(&star, &all(4), None).unwrap(), [5.5, 0.0, 0.0, 0.0]);
        assert_eq!(betweenness(&star, &[1], None).unwrap(), [1.5, 0.0, 0.0, 0.0], "from one source only");
    }

    #[test]
    fn tied_paths_split_the_credit_and_closed_nodes_carry_nothing() {
        let diamond = Graph::from_edges(4, &[(0, 1, 0.5), (0, 2, 0.5), (1, 3, 0.5), (2, 3, 0.5), (0, 3, 0.25)]);
        let found = betweenness(&diamond, &all(4), None).unwrap();
        assert_eq!(found, [0.0, 1.0 / 3.0, 1.0 / 3.0, 0.0], "three paths of 0.25 from 0 to 3");
        let fenced = Fenced { graph: &diamond, closed: vec![false, true, false, false] };
        assert_eq!(betweenness(&fenced, &all(4), None).unwrap(), [0.0, 0.0, 0.5, 0.0]);
    }

    #[test]
    fn free_edges_count_in_any_order_but_a_free_cycle_is_broken() {
        // 1 comes off the heap before 2 (both score 0.5), yet the free edge 2 → 1 is counted.
        let graph = Graph::from_edges(3, &[(0, 1, 0.5), (0, 2, 0.5), (2, 1, 1.0)]);
        assert_eq!(betweenness(&graph, &all(3), None).unwrap(), [0.0, 0.0, 0.5]);
        let graph = Graph::from_edges(3, &[(0, 1, 0.5), (0, 2, 0.5), (1, 2, 1.0)]);
        assert_eq!(betweenness(&graph, &all(3), None).unwrap(), [0.0, 0.5, 0.0]);
        // Both ways: each of 1 and 2 lies on one of two strongest paths to the other, but the cycle 1 ⇄ 2 is broken
        // at 1 (first to join), so only 2's paths through 1 count.
        let graph = Graph::from_edges(3, &[(0, 1, 0.5), (0, 2, 0.5), (1, 2, 1.0), (2, 1, 1.0)]);
        assert_eq!(brute_force(&graph, &[0]), [0.0, 0.5, 0.5]);
        assert_eq!(betweenness(&graph, &[0], None).unwrap(), [0.0, 0.5, 0.0]);
    }

    #[test]
    fn parallel_edges_are_one_link() {
        let graph = Graph::from_edges(4, &[(0, 1, 0.5), (0, 2, 0.5), (1, 3, 0.5), (2, 3, 0.5), (0, 3, 0.25)]);
        assert_eq!(betweenness(&Doubled(&graph), &all(4), None), betweenness(&graph, &all(4), None));
    }

    #[test]
    fn an_expired_deadline_gives_no_answer() {
        let graph = Graph::from_edges(2, &[(0, 1, 0.5)]);
        assert_eq!(betweenness(&graph, &[0], Some(Instant::now())), None);
    }

    #[test]
    fn sources_are_every_node_below_the_threshold_and_a_fixed_sample_above() {
        assert_eq!(sample_sources(5, 10, 2, 7), (all(5), 1.0));
        assert_eq!(sample_sources(5, 0, 8, 7), (all(5), 1.0), "asking for more samples than nodes");
        let (sources, scale) = sample_sources(1_000, 10, 40, 7);
        assert_eq!((sources.clone(), scale), sample_sources(1_000, 10, 40, 7), "same seed, same sample");
        assert_eq!(scale, 25.0);
        assert_eq!(sources.len(), 40);
        assert!(sources.windows(2).all(|pair| pair[0] < pair[1]) && sources.iter().all(|&node| node < 1_000));
        assert_ne!(sources, sample_sources(1_000, 10, 40, 8).0, "another seed, another sample");
    }

    #[test]
    fn exact_sums_are_the_same_bits_in_any_order() {
        use rand::seq::SliceRandom;
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let terms: Vec<f64> = (0..2_000).map(|_| rng.gen_range(0.0..1e6) / rng.gen_range(1.0..7.0)).collect();
        let sum = |terms: &[f64]| {
            let mut sum = ExactSum::default();
            terms.iter().for_each(|&term| sum.add(term));
            sum
        };
        let forward = sum(&terms);
        let mut shuffled = terms.clone();
        shuffled.shuffle(&mut rng);
        let mut chunked = ExactSum::default();
        shuffled.chunks(7).for_each(|chunk| chunked.merge(sum(chunk)));
        assert_eq!(chunked, forward, "shuffled and in chunks");
        let float: f64 = terms.iter().sum();
        assert!((forward.value() - float).abs() <= float * 1e-12, "{} against {float}", forward.value());
        assert_eq!(sum(&[0.5, 0.25, 3.0, 1e9]).value(), 1_000_000_003.75, "dyadic terms are kept exactly");
    }

    #[test]
    fn a_source_order_is_a_fixed_permutation() {
        let order = source_order(100, 1);
        assert_eq!(order, source_order(100, 1), "same seed, same order");
        assert_ne!(order, source_order(100, 2), "another seed, another order");
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, all(100));
        let (sample, _) = sample_sources(100, 10, 8, 1);
        let mut prefix = order[..8].to_vec();
        prefix.sort_unstable();
        assert_eq!(sample, prefix, "the quick sample is the start of the order");
    }

    /// A random graph of `nodes` with strengths from a small set, both ways.
    fn random_graph(nodes: usize, edges: usize, seed: u64) -> Graph {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut list = Vec::new();
        for _ in 0..edges {
            let (from, to) = (rng.gen_range(0..nodes as u32), rng.gen_range(0..nodes as u32));
            let strength = [0.3, 0.5, 0.7, 0.9][rng.gen_range(0..4)];
            list.extend([(from, to, strength), (to, from, strength)]);
        }
        Graph::from_edges(nodes, &list)
    }

    #[test]
    fn an_estimate_from_every_node_is_exact_betweenness_whatever_the_chunks() {
        let graph = random_graph(60, 120, 5);
        let arcs = Arcs::new(&graph);
        let exact = betweenness(&graph, &all(60), None).unwrap();
        let mut estimate = Estimate::new(60, 60);
        let order = source_order(60, 9);
        let mut errors = Vec::new();
        for chunk in order.chunks(7) {
            estimate.add(&dependencies(&arcs, chunk, None).unwrap());
            errors.push(estimate.standard_errors().iter().sum::<f64>());
        }
        assert_eq!(estimate.sources(), 60);
        assert!(estimate.exact());
        for (node, (found, expected)) in estimate.scores().iter().zip(&exact).enumerate() {
            assert!((found - expected).abs() < 1e-9, "node {node}: {found} against {expected}");
        }
        assert_eq!(errors.last(), Some(&0.0), "no error left once every node is a source");
        assert!(errors[1] > 0.0, "a partial sample has an error");
        assert!(estimate.settled(10, 3.0, |_| true), "exact is settled");
    }

    #[test]
    fn a_half_sample_estimates_within_its_errors() {
        // The estimate is unbiased: over many seeds, the mean of half samples is close to exact betweenness.
        let graph = random_graph(40, 80, 11);
        let arcs = Arcs::new(&graph);
        let exact = betweenness(&graph, &all(40), None).unwrap();
        let mut mean = vec![0.0; 40];
        let seeds = 200;
        for seed in 0..seeds {
            let mut estimate = Estimate::new(40, 40);
            estimate.add(&dependencies(&arcs, &source_order(40, seed)[..20], None).unwrap());
            for (mean, score) in mean.iter_mut().zip(estimate.scores()) {
                *mean += score / seeds as f64;
            }
        }
        let total: f64 = exact.iter().sum();
        let off: f64 = mean.iter().zip(&exact).map(|(mean, exact)| (mean - exact).abs()).sum();
        assert!(total > 0.0 && off / total < 0.05, "mean of half samples off by {} of {total}", off);
    }

    #[test]
    fn the_top_is_settled_only_when_the_gaps_exceed_the_errors() {
        // A hub every leaf reaches only through it: every source gives it the same dependency (no error), and the
        // leaves tie at 0, so the first place is settled after two sources and the second never is.
        let mut edges = Vec::new();
        for leaf in 1..30 {
            edges.extend([(0, leaf, 0.5), (leaf, 0, 0.5)]);
        }
        let star = Graph::from_edges(30, &edges);
        let arcs = Arcs::new(&star);
        let mut estimate = Estimate::new(30, 30);
        estimate.add(&dependencies(&arcs, &[5], None).unwrap());
        assert!(!estimate.settled(1, 3.0, |_| true), "one source tells no error");
        estimate.add(&dependencies(&arcs, &[9], None).unwrap());
        assert!(estimate.settled(1, 3.0, |_| true));
        assert!(!estimate.settled(2, 3.0, |_| true), "the leaves tie");
        assert_eq!(estimate.top(1, |_| true), [0]);
        assert!(!estimate.settled(1, 3.0, |node| node != 0) && estimate.top(1, |node| node != 0) == [1]);
    }

    #[test]
    fn folding_takes_only_leaves_of_two_way_graphs_with_every_node_passable() {
        // A path 0 - 1 - 2 plus leaf 3 on 1: 0, 2 and 3 are leaves of 1; 1 is not a leaf.
        let edges: Vec<(u32, u32, f64)> =
            [(0, 1), (1, 2), (1, 3)].iter().flat_map(|&(a, b)| [(a, b, 0.5), (b, a, 0.5)]).collect();
        let graph = Graph::from_edges(4, &edges);
        let folding = Folding::of(&Arcs::new(&graph));
        assert_eq!(folding.leaf, [true, false, true, true]);
        assert_eq!(folding.weight, [1.0, 4.0, 1.0, 1.0]);
        assert_eq!(folding.extra, [0.0, 6.0, 0.0, 0.0], "each leaf reaches 2 others through 1");
        let one_way = Graph::from_edges(2, &[(0, 1, 0.5)]);
        assert_eq!(Folding::of(&Arcs::new(&one_way)), Folding::none(2));
        let fenced = Fenced { graph: &graph, closed: vec![false, false, true, false] };
        assert_eq!(Folding::of(&Arcs::new(&fenced)), Folding::none(4));
        let free = Graph::from_edges(3, &[(0, 1, 1.0), (1, 0, 1.0), (1, 2, 0.5), (2, 1, 0.5)]);
        assert_eq!(Folding::of(&Arcs::new(&free)).leaf, [false, false, true], "a free link is not folded");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// On random two-way graphs with trees hanging off (strengths powers of two, so that products are exact
        /// and ties the same from a leaf as from its neighbour), the folded leaves' part plus the weighted
        /// dependencies of the other nodes equal unfolded betweenness from every node.
        #[test]
        fn folding_gives_unfolded_betweenness(
            core in 2usize..9,
            raw in prop::collection::vec((0u32..9, 0u32..9, prop::sample::select(vec![0.25, 0.5, 0.125])), 1..20),
            hanging in prop::collection::vec((0u32..40, prop::sample::select(vec![0.25, 0.5])), 0..12),
        ) {
            let mut edges: Vec<(u32, u32, f64)> = raw
                .into_iter()
                .filter(|&(from, to, _)| (from as usize) < core && (to as usize) < core)
                .flat_map(|(from, to, strength)| [(from, to, strength), (to, from, strength)])
                .collect();
            // Each hanging node joins an earlier node (of the core or hanging): trees, chains and stars.
            for (index, &(parent, strength)) in hanging.iter().enumerate() {
                let node = (core + index) as u32;
                let parent = parent % node;
                edges.extend([(parent, node, strength), (node, parent, strength)]);
            }
            let nodes = core + hanging.len();
            let graph = Graph::from_edges(nodes, &edges);
            let arcs = Arcs::new(&graph);
            let folding = Folding::of(&arcs);
            let sources: Vec<u32> = (0..nodes as u32).filter(|&node| !folding.leaf[node as usize]).collect();
            let found = weighted_dependencies(&arcs, &sources, Some(&folding.weight), None).unwrap();
            let expected = betweenness(&graph, &all(nodes), None).unwrap();
            let sums = found.sums();
            for (node, expected) in expected.iter().enumerate() {
                let folded = sums[node] + folding.extra[node];
                prop_assert!(
                    (folded - expected).abs() < 1e-9,
                    "node {}: {} against {} (leaves {:?})", node, folded, expected, folding.leaf
                );
            }
        }

        /// On random small graphs (strengths from a small set, so that ties are common; some nodes closed; some
        /// sources), betweenness equals the definition over loopless paths. Free edges run from lower to higher
        /// nodes so that they form no cycle.
        #[test]
        fn betweenness_agrees_with_brute_force(
            nodes in 2usize..8,
            raw in prop::collection::vec((0u32..8, 0u32..8, prop::sample::select(vec![0.25, 0.5, 0.8, 1.0])), 0..30),
            closed in prop::collection::vec(prop::bool::weighted(0.2), 8),
            chosen in prop::collection::vec(prop::bool::weighted(0.7), 8),
        ) {
            let edges: Vec<(u32, u32, f64)> = raw
                .into_iter()
                .map(|(from, to, strength)| if strength == 1.0 && from > to { (to, from, strength) } else { (from, to, strength) })
                .collect();
            let graph = Graph::from_edges(nodes, &edges);
            let fenced = Fenced { graph: &graph, closed: closed[..nodes].to_vec() };
            let sources: Vec<u32> = (0..nodes as u32).filter(|&node| chosen[node as usize]).collect();
            let found = betweenness(&fenced, &sources, None).unwrap();
            let expected = brute_force(&fenced, &sources);
            for (node, (found, expected)) in found.iter().zip(&expected).enumerate() {
                prop_assert!((found - expected).abs() < 1e-9, "node {}: {} against {}", node, found, expected);
            }
        }
    }
}

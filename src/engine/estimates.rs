//! Brokers' betweenness estimated in the background, one estimate per snapshot, so that the default `brokers`
//! ranking on a large graph is stable (issue 12, point 7) without a request waiting for thousands of sources.
//!
//! A request asks [`BrokerEstimates::latest`] for the newest finished ranking of its view (the whole graph, or
//! its public part) and, if that ranking is not of the current snapshot and none is being computed, starts one.
//! Until the first estimate of a view has finished, its progress answers: the estimate after 2, 4, 8, … chunks
//! (each a function of the snapshot, the seed and the number of sources alone, never of timing).
//! An estimate takes its sources in a fixed random order ([`source_order`] with the configured seed, so that its
//! result after `k` sources is the same on every run) a chunk at a time on background threads
//! ([`crate::priority::Background`]: below the threads that answer requests), adds the chunks in order, and stops
//! when the top of the ranking is settled ([`Estimate::settled`]: unchanged since the last chunk and each place
//! apart from the next by more than `z` standard errors), when every candidate was a source (exact), or at the
//! cap of sources. The flat copy of the graph ([`Arcs`]) is built once per estimate and shared by its threads;
//! stakeholders with one neighbour are not sources, their part being known exactly ([`Folding`]).
//!
//! An estimate runs to its end even when newer snapshots appear meanwhile (under steady writes no estimate would
//! ever finish otherwise); the next request then starts one on the newest snapshot. Nothing runs while nobody asks.
//!
//! Cost: one flat copy, O(n + m), then O(sources · (n + m) log m) spread over the threads; memory O(n + m) for the
//! copy plus O(n) per thread and per finished ranking kept (one per view).

use super::analysis::{Flow, Via, Walk};
use super::brokers::{source_order, weighted_dependencies, Arcs, Dependencies, Estimate, Folding};
use super::Snapshot;
use crate::priority::Background;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};

/// How background estimates run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimateSettings {
    /// Relationships weaker than this are not followed.
    pub min_strength: f64,
    /// Seed of the order in which sources are taken.
    pub seed: u64,
    /// Sources per chunk: the unit of work of a thread, after which the stopping rule is checked.
    pub chunk: usize,
    /// Sources before the stopping rule may stop an estimate (the sample deviation is unreliable below).
    pub min_sources: usize,
    /// Most sources of one estimate.
    pub max_sources: usize,
    /// How many places at the top of the ranking must be settled.
    pub top: usize,
    /// Standard errors that must separate neighbouring places.
    pub z: f64,
    /// Threads per estimate.
    pub threads: usize,
}

/// An estimate, finished or at a checkpoint: betweenness for every node of the snapshot it was computed on.
#[derive(Debug)]
pub struct Ranking {
    /// The snapshot (its node numbers are the ones `scores` uses).
    pub snapshot: Arc<Snapshot>,
    /// Each node's estimated betweenness, raw sums scaled to all candidates (every pair counted from both ends
    /// when influence flows both ways); 0 for hidden nodes.
    pub scores: Vec<f64>,
    /// The candidates (the nodes the view shows), highest score first; ties go to the lower node.
    pub order: Vec<u32>,
    /// How many sources it was computed from.
    pub sources: usize,
    /// Every candidate was a source.
    pub exact: bool,
    /// The stopping rule held (or it is exact); false when it stopped at the cap of sources, or is not finished.
    pub settled: bool,
    /// The estimate ended here (settled, exact or at the cap); false at a checkpoint on the way.
    pub finished: bool,
}

/// The estimates of one view (whole graph or public part).
#[derive(Default)]
struct Slot {
    finished: Option<Arc<Ranking>>,
    /// The running estimate's latest checkpoint, answered while no estimate of the view has finished.
    progress: Option<Arc<Ranking>>,
    /// The snapshot (position, clock) an estimate is running on.
    running: Option<(i64, i64)>,
}

/// Background estimates of betweenness, per view, for the newest snapshot asked about.
pub struct BrokerEstimates {
    settings: EstimateSettings,
    background: Arc<Background>,
    slots: Arc<Mutex<HashMap<bool, Slot>>>,
    /// Set when the service stops: running estimates end after their current chunk.
    cancelled: Arc<AtomicBool>,
}

impl std::fmt::Debug for BrokerEstimates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerEstimates").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Drop for BrokerEstimates {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

fn identity(snapshot: &Snapshot) -> (i64, i64) {
    (snapshot.seq(), snapshot.as_of().timestamp_millis())
}

impl BrokerEstimates {
    /// Estimates computed on `background`'s threads with `settings`.
    pub fn new(settings: EstimateSettings, background: Arc<Background>) -> Self {
        Self { settings, background, slots: Arc::default(), cancelled: Arc::default() }
    }

    /// How estimates run.
    pub fn settings(&self) -> &EstimateSettings {
        &self.settings
    }

    /// The newest finished ranking of the view (`hide_private`: the public part of the graph), of `current` or
    /// an older snapshot, or while none has finished the running estimate's latest checkpoint; starts an estimate
    /// of `current` unless one finished or is running for it.
    pub fn latest(&self, current: &Arc<Snapshot>, hide_private: bool) -> Option<Arc<Ranking>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.entry(hide_private).or_default();
        let fresh = slot.finished.as_ref().is_some_and(|ranking| identity(&ranking.snapshot) == identity(current));
        if !fresh && slot.running.is_none() {
            slot.running = Some(identity(current));
            let job = Job {
                snapshot: current.clone(),
                hide_private,
                settings: self.settings,
                background: self.background.clone(),
                slots: self.slots.clone(),
                cancelled: self.cancelled.clone(),
            };
            if let Err(error) = self.background.spawn(move || job.run()) {
                tracing::error!(%error, "cannot start a background estimate of brokers");
                slot.running = None;
            }
        }
        slot.finished.clone().or_else(|| slot.progress.clone())
    }

    /// What [`BrokerEstimates::latest`] would answer, without starting anything.
    pub fn available(&self, hide_private: bool) -> Option<Arc<Ranking>> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(&hide_private).and_then(|slot| slot.finished.clone().or_else(|| slot.progress.clone()))
    }

    /// Whether an estimate is running for the view.
    pub fn running(&self, hide_private: bool) -> bool {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(&hide_private).is_some_and(|slot| slot.running.is_some())
    }
}

/// One estimate on one snapshot.
struct Job {
    snapshot: Arc<Snapshot>,
    hide_private: bool,
    settings: EstimateSettings,
    background: Arc<Background>,
    slots: Arc<Mutex<HashMap<bool, Slot>>>,
    cancelled: Arc<AtomicBool>,
}

impl Job {
    fn run(self) {
        let started = std::time::Instant::now();
        let ranking = self.estimate();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.entry(self.hide_private).or_default();
        slot.running = None;
        slot.progress = None;
        if let Some(ranking) = ranking {
            tracing::debug!(
                sources = ranking.sources,
                settled = ranking.settled,
                seconds = started.elapsed().as_secs_f64(),
                "brokers estimated in the background"
            );
            slot.finished = Some(Arc::new(ranking));
        }
    }

    /// Publishes `ranking` as the view's progress (answered while no estimate of it has finished).
    fn checkpoint(&self, ranking: Ranking) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.entry(self.hide_private).or_default();
        if slot.finished.is_none() {
            slot.progress = Some(Arc::new(ranking));
        }
    }

    /// The estimate, or `None` when cancelled or a thread failed.
    fn estimate(&self) -> Option<Ranking> {
        let settings = &self.settings;
        let walk = Walk::new(&self.snapshot, Flow::Both, settings.min_strength, &Via::default())
            .hiding_private(self.hide_private);
        let candidates: Vec<u32> = (0..self.snapshot.node_count() as u32).filter(|&node| !walk.hides(node)).collect();
        let counts = |node: u32| !walk.hides(node);
        let arcs = Arc::new(Arcs::new(&walk));
        // Degree-one stakeholders are not sampled: their part is known exactly (`Folding`).
        let folding = Folding::of(&arcs);
        let sampled: Vec<u32> = candidates.iter().copied().filter(|&node| !folding.leaf[node as usize]).collect();
        let order: Vec<u32> = source_order(sampled.len(), settings.seed)
            .into_iter()
            .take(settings.max_sources.max(1))
            .map(|index| sampled[index as usize])
            .collect();
        let weight = Arc::new(folding.weight);
        let chunks: Arc<Vec<Vec<u32>>> = Arc::new(order.chunks(settings.chunk.max(1)).map(<[u32]>::to_vec).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = mpsc::channel::<(usize, Dependencies)>();
        for _ in 0..settings.threads.max(1) {
            let (arcs, weight, chunks, next, stop, sender) =
                (arcs.clone(), weight.clone(), chunks.clone(), next.clone(), stop.clone(), sender.clone());
            let cancelled = self.cancelled.clone();
            let spawned = self.background.spawn(move || loop {
                if stop.load(Ordering::Acquire) || cancelled.load(Ordering::Acquire) {
                    break;
                }
                let index = next.fetch_add(1, Ordering::AcqRel);
                let Some(chunk) = chunks.get(index) else { break };
                let found = weighted_dependencies(&arcs, chunk, Some(&weight), None).expect("no deadline");
                if sender.send((index, found)).is_err() {
                    break;
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a thread of a background estimate of brokers");
            }
        }
        drop(sender);
        // Chunks are added in their order, whichever thread finishes first, so that the estimate after k sources
        // does not depend on timing.
        let mut estimate = Estimate::new(self.snapshot.node_count(), sampled.len()).with_offset(folding.extra);
        let mut early = BTreeMap::new();
        let mut added = 0;
        let mut previous_top: Vec<u32> = Vec::new();
        let mut settled = false;
        let mut next_checkpoint = 2;
        while added < chunks.len() {
            let Ok((index, found)) = receiver.recv() else {
                stop.store(true, Ordering::Release);
                if !self.cancelled.load(Ordering::Acquire) {
                    tracing::error!("a background estimate of brokers lost its threads");
                }
                return None;
            };
            early.insert(index, found);
            while let Some(found) = early.remove(&added) {
                estimate.add(&found);
                added += 1;
                let top = estimate.top(settings.top, counts);
                settled = estimate.exact()
                    || (estimate.sources() >= settings.min_sources
                        && top == previous_top
                        && estimate.settled(settings.top, settings.z, counts));
                previous_top = top;
                if settled {
                    break;
                }
                if added == next_checkpoint && added < chunks.len() {
                    next_checkpoint *= 2;
                    self.checkpoint(ranking(&self.snapshot, &estimate, &candidates, false, false));
                }
            }
            if settled {
                break;
            }
        }
        stop.store(true, Ordering::Release);
        Some(ranking(&self.snapshot, &estimate, &candidates, settled || estimate.exact(), true))
    }
}

/// The ranking `estimate` gives of `candidates` on `snapshot`.
fn ranking(
    snapshot: &Arc<Snapshot>,
    estimate: &Estimate,
    candidates: &[u32],
    settled: bool,
    finished: bool,
) -> Ranking {
    let scores = estimate.scores();
    let mut order = candidates.to_vec();
    order.sort_unstable_by(|a, b| scores[*b as usize].total_cmp(&scores[*a as usize]).then(a.cmp(b)));
    Ranking {
        snapshot: snapshot.clone(),
        scores,
        order,
        sources: estimate.sources(),
        exact: estimate.exact(),
        settled,
        finished,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::analysis::tests::{snapshot, snapshot_at};
    use crate::engine::brokers::betweenness;
    use std::time::{Duration, Instant};

    fn settings(max_sources: usize, seed: u64) -> EstimateSettings {
        EstimateSettings { min_strength: 0.05, seed, chunk: 3, min_sources: 6, max_sources, top: 3, z: 3.0, threads: 2 }
    }

    /// Two hubs, each with its leaves, joined through a bridge: clear brokers.
    fn hubs() -> Arc<Snapshot> {
        let mut edges = vec![(1, 2, 5, 0.9), (2, 3, 5, 0.9)];
        for leaf in 4..=40 {
            let hub = if leaf < 25 { 1 } else { 3 };
            edges.push((hub, leaf, 3, 0.5));
        }
        Arc::new(snapshot(40, &edges))
    }

    /// [`hubs`] with each leaf also weakly linked to the next leaf of its hub: no leaf to fold.
    fn linked_hubs() -> Arc<Snapshot> {
        let mut edges = vec![(1, 2, 5, 0.9), (2, 3, 5, 0.9)];
        for leaf in 4..=40 {
            let hub = if leaf < 25 { 1 } else { 3 };
            edges.push((hub, leaf, 3, 0.5));
            if leaf != 24 && leaf != 40 {
                edges.push((leaf, leaf + 1, 1, 0.1));
            }
        }
        Arc::new(snapshot(40, &edges))
    }

    /// The finished ranking of the view, asking until there is one (the estimate runs on other threads).
    fn finished(estimates: &BrokerEstimates, current: &Arc<Snapshot>) -> Arc<Ranking> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(ranking) = estimates.latest(current, false) {
                if ranking.finished && identity(&ranking.snapshot) == identity(current) {
                    return ranking;
                }
            }
            assert!(Instant::now() < until, "no estimate within a minute");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_estimate_of_every_node_is_exact_betweenness() {
        let current = hubs();
        // A rule that never holds: the estimate runs to every node.
        let never = EstimateSettings { z: f64::INFINITY, ..settings(1_000, 1) };
        let estimates = BrokerEstimates::new(never, Arc::new(Background::new(0)));
        let ranking = finished(&estimates, &current);
        assert!(ranking.exact && ranking.settled);
        assert_eq!(ranking.sources, 3, "the hubs and the bridge: the 37 leaves are folded");
        let walk = Walk::new(&current, Flow::Both, 0.05, &Via::default());
        let exact = betweenness(&walk, &(0..40).collect::<Vec<u32>>(), None).unwrap();
        for (node, (found, expected)) in ranking.scores.iter().zip(&exact).enumerate() {
            assert!((found - expected).abs() < 1e-6, "node {node}: {found} against {expected}");
        }
        assert_eq!(&ranking.order[..3], [0, 2, 1], "the two hubs, then the bridge");
        assert!(!estimates.running(false), "nothing runs once the snapshot's estimate finished");
    }

    #[test]
    fn a_sampled_estimate_is_the_same_on_every_run_and_settles_on_clear_brokers() {
        let current = linked_hubs();
        let runs: Vec<Arc<Ranking>> = (0..2)
            .map(|_| finished(&BrokerEstimates::new(settings(30, 7), Arc::new(Background::new(0))), &current))
            .collect();
        assert_eq!(runs[0].scores, runs[1].scores, "chunks are added in order, whichever thread ends first");
        assert_eq!(runs[0].sources, runs[1].sources);
        assert!(!runs[0].exact && runs[0].sources <= 30);
        assert!(runs[0].settled && runs[0].sources >= 6, "clear brokers settle early: {} sources", runs[0].sources);
        let other = finished(&BrokerEstimates::new(settings(30, 8), Arc::new(Background::new(0))), &current);
        assert_eq!(runs[0].order[..3], other.order[..3], "another seed, the same clear top");
    }

    /// A 6 × 6 grid of equally strong relationships with a few diagonals: strongest paths tie everywhere, so
    /// dependencies are fractions (1/2, 1/3, …) whose `f64` sums depend on the order they are added in.
    fn tied_grid() -> Arc<Snapshot> {
        let id = |row: i64, column: i64| row * 6 + column + 1;
        let mut edges = Vec::new();
        for row in 0..6 {
            for column in 0..6 {
                if column < 5 {
                    edges.push((id(row, column), id(row, column + 1), 3, 0.5));
                }
                if row < 5 {
                    edges.push((id(row, column), id(row + 1, column), 3, 0.5));
                }
            }
        }
        edges.extend([(id(0, 0), id(1, 1), 2, 0.5), (id(2, 3), id(3, 4), 2, 0.5), (id(4, 1), id(5, 2), 2, 0.5)]);
        Arc::new(snapshot(36, &edges))
    }

    #[test]
    fn an_exact_ranking_is_the_same_bits_whatever_the_seed_and_chunks() {
        let current = tied_grid();
        let exact = |seed: u64, chunk: usize| {
            // A rule that never holds: every estimate runs to every node.
            let never = EstimateSettings { z: f64::INFINITY, chunk, ..settings(1_000, seed) };
            finished(&BrokerEstimates::new(never, Arc::new(Background::new(0))), &current)
        };
        let first = exact(1, 3);
        assert!(first.exact && first.sources == 36);
        assert!(first.scores.iter().any(|score| score.fract() != 0.0), "tied paths share their credit");
        for (seed, chunk) in [(2, 3), (3, 5), (4, 1), (5, 36)] {
            let other = exact(seed, chunk);
            assert!(other.exact);
            let bits = |scores: &[f64]| scores.iter().map(|score| score.to_bits()).collect::<Vec<u64>>();
            assert_eq!(bits(&other.scores), bits(&first.scores), "seed {seed}, chunks of {chunk}");
            assert_eq!(other.order, first.order, "seed {seed}, chunks of {chunk}");
        }
        // The same dependencies summed in `f64` in two of those orders differ in their last bits: the estimate's
        // exact sums are what keeps the ranking from depending on the seed.
        let walk = Walk::new(&current, Flow::Both, 0.05, &Via::default());
        let arcs = Arcs::new(&walk);
        let in_order = |seed: u64| {
            let mut sums = vec![0.0f64; 36];
            for source in source_order(36, seed) {
                let found = weighted_dependencies(&arcs, &[source], None, None).unwrap();
                for (sum, more) in sums.iter_mut().zip(found.sums()) {
                    *sum += more;
                }
            }
            sums
        };
        assert!((1..20).any(|seed| in_order(seed) != in_order(0)), "f64 sums that depend on the order");
    }

    #[test]
    fn a_request_gets_the_last_finished_ranking_while_the_next_snapshot_is_estimated() {
        let estimates = BrokerEstimates::new(settings(1_000, 1), Arc::new(Background::new(0)));
        let first = hubs();
        let ranking = finished(&estimates, &first);
        let second = Arc::new(snapshot_at(first.seq() + 1, 41, &[], &[(1, 2, 5, 0.9)]));
        let answered = estimates.latest(&second, false).expect("the older ranking");
        assert!(Arc::ptr_eq(&answered, &ranking));
        assert_eq!(finished(&estimates, &second).snapshot.node_count(), 41);
        assert!(estimates.latest(&first, true).is_none(), "each view has its own estimates");
    }
}

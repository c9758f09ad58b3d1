//! Key-person risk (docs/models.md, "Influence"): how much of the firm's reach rests on one employee.
//!
//! The firm reaches each stakeholder through its strongest path from any employee: one max-product Dijkstra from
//! all employees at once. Removing an employee (who then can neither start a path nor be passed through) can only
//! lower those scores; comparing a second search without them with the first gives the losses.
//!
//! Each search takes time O((n + m) log m) and memory O(n + m) for n nodes and m edges.

use super::analysis::Walk;
use super::paths::Adjacency;
use super::Snapshot;
use crate::domain::{Market, StakeholderKind};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Settles between looks at the clock.
const CLOCK_EVERY: u32 = 4096;

/// A stakeholder the firm reaches less well without one employee.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loss {
    /// The stakeholder.
    pub node: u32,
    /// Its best score from any employee.
    pub before: f64,
    /// Its best score without the removed employee (0: not reached, or below the minimum score).
    pub after: f64,
}

impl Loss {
    /// The influence lost.
    pub fn lost(&self) -> f64 {
        self.before - self.after
    }
}

/// Best score from any of `sources` to every node (sources themselves get 1.0), ignoring `removed` (which is
/// neither a source nor passable, though a path may still end there), stopping below `min_score`; unreached
/// nodes get 0.0. Sources out of range are skipped. Returns `None` if `deadline` passes first.
pub fn best_from_any(
    graph: &impl Adjacency,
    sources: &[u32],
    removed: Option<u32>,
    min_score: f64,
    deadline: Option<Instant>,
) -> Option<Vec<f64>> {
    Spread::new(graph.node_count(), sources).run(graph, removed, min_score, deadline)
}

/// The losses when `employee` is removed: for every node other than the employees themselves whose best score
/// drops, (before, after), biggest loss first (ties: lower node). Scores below `min_score` count as 0. Returns
/// `None` if `deadline` passes first.
pub fn key_person_losses(
    graph: &impl Adjacency,
    employees: &[u32],
    employee: u32,
    min_score: f64,
    deadline: Option<Instant>,
) -> Option<Vec<Loss>> {
    let mut spread = Spread::new(graph.node_count(), employees);
    let before = spread.run(graph, None, min_score, deadline)?;
    let after = spread.run(graph, Some(employee), min_score, deadline)?;
    let mut losses: Vec<Loss> = (0..graph.node_count() as u32)
        .filter(|&node| node != employee && !spread.is_source[node as usize])
        .filter(|&node| after[node as usize] < before[node as usize])
        .map(|node| Loss { node, before: before[node as usize], after: after[node as usize] })
        .collect();
    losses.sort_by(|a, b| b.lost().total_cmp(&a.lost()).then(a.node.cmp(&b.node)));
    Some(losses)
}

/// What one employee's departure costs the firm's reach, whole and per market.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPersonReport {
    /// Every loss, biggest first (ties: lower node).
    pub losses: Vec<Loss>,
    /// Per market with at least one stakeholder losing: the market, the sum of its stakeholders' losses and how
    /// many lose, biggest sum first (ties: the markets' order). A stakeholder in several markets counts in each.
    pub by_market: Vec<(Market, f64, usize)>,
    /// The sum of all losses.
    pub total_loss: f64,
}

/// The key-person report of staff member `employee` on `walk`'s snapshot: the firm reaches each stakeholder from
/// its staff (employees in the internal market, not candidates) that the walk does not hide; `employee` is
/// removed. `None` if `deadline` passes first. O((n + m) log m) for the two searches, O(n) for the rest.
pub fn key_person_report(
    walk: &Walk<'_>,
    employee: u32,
    min_score: f64,
    deadline: Option<Instant>,
) -> Option<KeyPersonReport> {
    let snapshot = walk.snapshot();
    let employees: Vec<u32> =
        (0..snapshot.node_count() as u32).filter(|&node| is_staff(snapshot, node) && !walk.hides(node)).collect();
    let losses = key_person_losses(walk, &employees, employee, min_score, deadline)?;
    let mut by_market: Vec<(Market, f64, usize)> = Market::ALL
        .iter()
        .map(|market| {
            let members = losses.iter().filter(|loss| snapshot.markets(loss.node).contains(*market));
            let (lost, count) = members.fold((0.0, 0), |(sum, count), loss| (sum + loss.lost(), count + 1));
            (*market, lost, count)
        })
        .filter(|(_, _, count)| *count > 0)
        .collect();
    // A stable sort: equal sums keep the markets' order.
    by_market.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total_loss = losses.iter().map(Loss::lost).sum();
    Some(KeyPersonReport { losses, by_market, total_loss })
}

/// Whether `node` is on the firm's staff: an employee in the internal market (a candidate is in recruitment).
pub fn is_staff(snapshot: &Snapshot, node: u32) -> bool {
    snapshot.kind(node) == StakeholderKind::Employee && snapshot.markets(node).contains(Market::Internal)
}

/// A strongest-path search from many sources at once, keeping its buffers between runs.
struct Spread {
    is_source: Vec<bool>,
    /// Scores as bits (order-preserving for positive floats).
    heap: BinaryHeap<(u64, Reverse<u32>)>,
}

impl Spread {
    fn new(nodes: usize, sources: &[u32]) -> Self {
        let mut is_source = vec![false; nodes];
        for &source in sources {
            if let Some(slot) = is_source.get_mut(source as usize) {
                *slot = true;
            }
        }
        Self { is_source, heap: BinaryHeap::new() }
    }

    /// Every node's best score from the sources other than `removed`, never passing `removed`.
    fn run(
        &mut self,
        graph: &impl Adjacency,
        removed: Option<u32>,
        min_score: f64,
        deadline: Option<Instant>,
    ) -> Option<Vec<f64>> {
        let mut best = vec![0.0f64; self.is_source.len()];
        self.heap.clear();
        for (node, _) in self.is_source.iter().enumerate().filter(|(_, is_source)| **is_source) {
            if Some(node as u32) != removed {
                best[node] = 1.0;
                self.heap.push((1.0f64.to_bits(), Reverse(node as u32)));
            }
        }
        let mut clock = 0u32;
        while let Some((bits, Reverse(node))) = self.heap.pop() {
            if bits != best[node as usize].to_bits() {
                continue; // superseded by a stronger path
            }
            if clock % CLOCK_EVERY == 0 && deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return None;
            }
            clock = clock.wrapping_add(1);
            if Some(node) == removed || !(self.is_source[node as usize] || graph.passable(node)) {
                continue;
            }
            let score = f64::from_bits(bits);
            let heap = &mut self.heap;
            graph.neighbors(node, |next, strength| {
                let candidate = score * strength;
                // Scores only fall along a path, so one below the minimum never leads back above it.
                if candidate >= min_score && candidate > best[next as usize] {
                    best[next as usize] = candidate;
                    heap.push((candidate.to_bits(), Reverse(next)));
                }
            });
        }
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::brokers::tests::{loopless_paths, Fenced};
    use crate::engine::paths::Graph;
    use proptest::prelude::*;

    /// Best scores from the definition: the strongest loopless path from any source, `removed` closed and not a
    /// source.
    fn brute_force(graph: &Graph, closed: &[bool], sources: &[u32], removed: Option<u32>, min_score: f64) -> Vec<f64> {
        let mut closed = closed.to_vec();
        if let Some(removed) = removed {
            closed[removed as usize] = true;
        }
        let fenced = Fenced { graph, closed };
        let mut best = vec![0.0f64; graph.node_count()];
        for &source in sources.iter().filter(|&&source| Some(source) != removed) {
            best[source as usize] = 1.0;
            for (nodes, score) in loopless_paths(&fenced, source) {
                let target = *nodes.last().unwrap() as usize;
                best[target] = best[target].max(score);
            }
        }
        best.into_iter().map(|score| if score >= min_score { score } else { 0.0 }).collect()
    }

    #[test]
    fn a_customer_reached_through_one_employee_loses_everything_through_two_the_difference() {
        // Employees 0 and 1; 2 is known only to 0 (and 5 only through 2), 3 to both, 4 only to 1.
        let graph =
            Graph::from_edges(6, &[(0, 2, 0.8), (2, 5, 0.5), (0, 3, 0.8), (1, 3, 0.5), (1, 4, 0.9), (0, 1, 0.5)]);
        let losses = key_person_losses(&graph, &[0, 1], 0, 0.0, None).unwrap();
        assert_eq!(
            losses,
            [
                Loss { node: 2, before: 0.8, after: 0.0 },
                Loss { node: 5, before: 0.4, after: 0.0 },
                Loss { node: 3, before: 0.8, after: 0.5 },
            ]
        );
        let losses = key_person_losses(&graph, &[0, 1], 1, 0.0, None).unwrap();
        assert_eq!(losses, [Loss { node: 4, before: 0.9, after: 0.0 }], "1 cannot be passed once removed");
    }

    #[test]
    fn scores_below_the_minimum_are_not_reached() {
        let chain = Graph::from_edges(4, &[(0, 1, 0.5), (1, 2, 0.5), (2, 3, 0.5)]);
        assert_eq!(best_from_any(&chain, &[0], None, 0.0, None).unwrap(), [1.0, 0.5, 0.25, 0.125]);
        assert_eq!(best_from_any(&chain, &[0], None, 0.2, None).unwrap(), [1.0, 0.5, 0.25, 0.0]);
        // Without employee 1, 2 is reached only by 0's weak edge (0.1), and 3 at 0.05: below the minimum of 0.06.
        let graph = Graph::from_edges(4, &[(0, 1, 0.5), (1, 2, 0.5), (2, 3, 0.5), (0, 2, 0.1)]);
        let losses = key_person_losses(&graph, &[0, 1], 1, 0.06, None).unwrap();
        assert_eq!(losses, [Loss { node: 2, before: 0.5, after: 0.1 }, Loss { node: 3, before: 0.25, after: 0.0 }]);
        assert_eq!(best_from_any(&graph, &[0, 1], Some(1), 0.06, None).unwrap(), [1.0, 0.5, 0.1, 0.0]);
        assert_eq!(best_from_any(&graph, &[0, 1], Some(1), 0.05, None).unwrap(), [1.0, 0.5, 0.1, 0.05]);
    }

    #[test]
    fn an_expired_deadline_gives_no_answer() {
        let graph = Graph::from_edges(2, &[(0, 1, 0.5)]);
        assert_eq!(best_from_any(&graph, &[0], None, 0.0, Some(Instant::now())), None);
        assert_eq!(key_person_losses(&graph, &[0], 0, 0.0, Some(Instant::now())), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// On random small graphs (some nodes closed), best scores and losses equal the definition over loopless
        /// paths.
        #[test]
        fn best_scores_and_losses_agree_with_brute_force(
            nodes in 2usize..8,
            raw in prop::collection::vec((0u32..8, 0u32..8, prop::sample::select(vec![0.1, 0.25, 0.5, 0.8, 1.0])), 0..30),
            closed in prop::collection::vec(prop::bool::weighted(0.2), 8),
            chosen in prop::collection::vec(prop::bool::weighted(0.3), 8),
            removed in 0u32..8,
            min_score in prop::sample::select(vec![0.0, 0.05, 0.3]),
        ) {
            let graph = Graph::from_edges(nodes, &raw);
            let closed = &closed[..nodes];
            let fenced = Fenced { graph: &graph, closed: closed.to_vec() };
            let employees: Vec<u32> = (0..nodes as u32).filter(|&node| chosen[node as usize]).collect();
            let removed = removed % nodes as u32;
            let before = best_from_any(&fenced, &employees, None, min_score, None).unwrap();
            prop_assert_eq!(&before, &brute_force(&graph, closed, &employees, None, min_score));
            let after = best_from_any(&fenced, &employees, Some(removed), min_score, None).unwrap();
            prop_assert_eq!(&after, &brute_force(&graph, closed, &employees, Some(removed), min_score));
            let mut expected: Vec<Loss> = (0..nodes as u32)
                .filter(|&node| node != removed && !employees.contains(&node) && after[node as usize] < before[node as usize])
                .map(|node| Loss { node, before: before[node as usize], after: after[node as usize] })
                .collect();
            expected.sort_by(|a, b| b.lost().total_cmp(&a.lost()).then(a.node.cmp(&b.node)));
            prop_assert_eq!(key_person_losses(&fenced, &employees, removed, min_score, None).unwrap(), expected);
        }
    }
}

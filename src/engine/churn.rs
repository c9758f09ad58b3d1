//! Churn risk over the engine's records (docs/models.md, "Churn risk"): what a customer's risk reads that needs no
//! history (its principal relationship, that relationship's strength, the manager's share), and the graph-wide
//! ranking by value at risk, which looks closely only at the customers that could place.
//!
//! The ranking is a branch and bound with two levels of bounds: a candidate's lifetime value bounds its value at
//! risk (no score exceeds 1); its standing in the records gives a finer bound (lifetime value ×
//! [`ChurnModel::upper_bound`]); its exact value needs its principal relationship's history and a forecast.
//! [`AtRiskSearch`] refines and scores candidates in the order of their bounds and stops as soon as the `first`-th
//! best exact value at risk ranks before every bound left. The result is exactly the ranking that scoring every
//! candidate gives ([`crate::domain::churn::most_at_risk`]: value at risk, most first, ties to the earlier
//! candidate).

use super::records::Records;
use crate::domain::churn::{principal, ChurnModel, Tie};
use crate::domain::strength::{self, seconds, StrengthModel};
use crate::domain::{KindDetails, RelationshipId, StakeholderId};
use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What the records say of a customer's churn risk before its principal relationship's history is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// Its principal relationship: its manager's (the oldest MANAGES relationship to it), otherwise its strongest.
    pub principal: Option<RelationshipId>,
    /// That relationship's strength at the time asked, when its decayed sums cover that time (no interaction of it
    /// is later): the risk then reads exactly this strength. `None` otherwise (its history decides).
    pub strength: Option<f64>,
    /// The manager's share of the customer's strength with staff; `None` without a manager.
    pub manager_share: Option<f64>,
}

/// The standing of live customer `customer` at `at` from its relationships a caller may see (every one when
/// `sees_private`, else those whose two ends are public, archived ones included, as the store says); `None` when
/// the records do not hold the customer live. Staff are live employees who are not candidates. The same rules as
/// [`crate::domain::churn::principal`] documents. O(r) strength evaluations for r relationships.
pub fn standing(
    records: &Records,
    strength: &StrengthModel,
    customer: StakeholderId,
    sees_private: bool,
    at: DateTime<Utc>,
) -> Option<Standing> {
    let visible = |id: StakeholderId| sees_private || records.is_public_or_archived_public(id);
    let t = seconds(at);
    let ties: Vec<Tie<'_>> = records
        .relationships_of(customer)?
        .filter(|relationship| visible(relationship.from) && visible(relationship.to))
        .map(|relationship| {
            let counterpart = if relationship.from == customer { relationship.to } else { relationship.from };
            let staff = records.stakeholder(counterpart).is_some_and(|row| {
                matches!(row.details, KindDetails::Employee { candidate: false, .. }) && !row.is_archived()
            });
            Tie {
                relationship,
                // The score of `StrengthModel::evaluate`, without building its components.
                strength: strength.score(&strength::Standing::of(relationship), &relationship.sums, t),
                counterpart,
                staff,
            }
        })
        .collect();
    let (chosen, manager_share) = principal(customer, &ties);
    let chosen = chosen.map(|index| &ties[index]);
    Some(Standing {
        principal: chosen.map(|tie| tie.relationship.id),
        strength: chosen.filter(|tie| tie.relationship.sums.covers(at)).map(|tie| tie.strength),
        manager_share,
    })
}

/// The upper bound of the value at risk of a customer with `lifetime_value` and this standing under `model`.
pub fn value_bound(model: &ChurnModel, lifetime_value: Option<f64>, standing: &Standing) -> f64 {
    lifetime_value.unwrap_or(0.0)
        * model.upper_bound(standing.principal.is_some(), standing.strength, standing.manager_share)
}

/// The search for the `first` candidates with the most value at risk, refining and scoring as few as it can.
///
/// Each candidate has a coarse bound known from the start (its lifetime value: no score exceeds 1), a fine bound
/// computed on demand (`refine`: [`value_bound`] from its standing) and its exact value, offered back once scored.
/// Candidates are taken in the order of their coarse bounds and refined; refined ones wait in the order of their
/// fine bounds and are handed out to be scored, a batch at a time. At each step the candidate with the highest
/// remaining bound goes next (refined if its bound is coarse, handed out if fine), and the search is settled once
/// `first` exact values rank before it: no candidate left can overtake them (its value is at most its bound, and on
/// equal values the earlier candidate ranks first). So a customer is refined only if its lifetime value could
/// place it, and scored only if its fine bound could.
#[derive(Debug)]
pub struct AtRiskSearch {
    first: usize,
    coarse: Vec<f64>,
    /// Candidates by coarse bound, highest first (the earlier candidate on a tie).
    stream: Vec<usize>,
    /// How many of `stream` were refined.
    refined: usize,
    /// Refined candidates not yet handed out, the one that ranks first on top.
    waiting: BinaryHeap<Bounded>,
    /// How many were handed out to be scored.
    handed: usize,
    /// The best exact values so far, `(value, candidate)` in ranking order, at most `first`.
    best: Vec<(f64, usize)>,
}

/// The ranking order: more value first, then the earlier candidate.
fn ranks_before(a: (f64, usize), b: (f64, usize)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// A candidate with its fine bound, greatest when it ranks first.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bounded(f64, usize);

impl Eq for Bounded {}

impl PartialOrd for Bounded {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bounded {
    fn cmp(&self, other: &Self) -> Ordering {
        ranks_before((other.0, other.1), (self.0, self.1))
    }
}

/// The candidate with the highest remaining bound, and whether that bound is only coarse.
enum Next {
    Coarse(usize),
    Fine(usize),
}

impl AtRiskSearch {
    /// A search over candidates whose values at risk are at most `coarse`. O(n log n).
    pub fn new(coarse: Vec<f64>, first: usize) -> Self {
        let mut stream: Vec<usize> = (0..coarse.len()).collect();
        stream.sort_unstable_by(|a, b| ranks_before((coarse[*a], *a), (coarse[*b], *b)));
        Self { first, coarse, stream, refined: 0, waiting: BinaryHeap::new(), handed: 0, best: Vec::new() }
    }

    /// The remaining candidate with the highest bound, unless the search is settled.
    fn next(&self) -> Option<(Next, (f64, usize))> {
        let coarse = self.stream.get(self.refined).map(|&candidate| (self.coarse[candidate], candidate));
        let fine = self.waiting.peek().map(|bounded| (bounded.0, bounded.1));
        let next = match (coarse, fine) {
            (None, None) => return None,
            (Some(coarse), None) => (Next::Coarse(coarse.1), coarse),
            (None, Some(fine)) => (Next::Fine(fine.1), fine),
            (Some(coarse), Some(fine)) if ranks_before(fine, coarse) == Ordering::Less => (Next::Fine(fine.1), fine),
            (Some(coarse), Some(_)) => (Next::Coarse(coarse.1), coarse),
        };
        let settled = self.first == 0
            || (self.best.len() == self.first
                && self.best.last().is_some_and(|&last| ranks_before(last, next.1) == Ordering::Less));
        (!settled).then_some(next)
    }

    /// The next candidates to score, at most `batch` (none for 0), refining candidates with `refine` (their fine
    /// bound, at most the coarse one; `None` to give up, which gives up the batch too) as the order needs; empty
    /// once the search is settled.
    pub fn next_batch(&mut self, batch: usize, mut refine: impl FnMut(usize) -> Option<f64>) -> Option<Vec<usize>> {
        let mut handed = Vec::new();
        while handed.len() < batch {
            let Some((next, _)) = self.next() else { break };
            match next {
                Next::Coarse(candidate) => {
                    let fine = refine(candidate)?.min(self.coarse[candidate]);
                    self.refined += 1;
                    self.waiting.push(Bounded(fine, candidate));
                }
                Next::Fine(candidate) => {
                    self.waiting.pop();
                    handed.push(candidate);
                }
            }
        }
        self.handed += handed.len();
        Some(handed)
    }

    /// The exact value at risk of a candidate handed out.
    pub fn offer(&mut self, candidate: usize, value: f64) {
        let entry = (value, candidate);
        let at = self.best.partition_point(|&kept| ranks_before(kept, entry) == Ordering::Less);
        if at < self.first {
            self.best.insert(at, entry);
            self.best.truncate(self.first);
        }
    }

    /// How many candidates were handed out to be scored.
    pub fn scored(&self) -> usize {
        self.handed
    }

    /// How many candidates were refined.
    pub fn refined(&self) -> usize {
        self.refined
    }

    /// Whether the search is settled (every candidate handed out must have been offered back).
    pub fn is_settled(&self) -> bool {
        self.next().is_none()
    }

    /// The first candidates, most value at risk first (meaningful once settled).
    pub fn ranked(&self) -> Vec<usize> {
        self.best.iter().map(|&(_, candidate)| candidate).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::churn::most_at_risk;
    use proptest::prelude::*;

    /// Runs the search with exact values `values`, fine bounds `bounds` and coarse bounds `coarse` in batches of
    /// `batch`; the ranking, how many it scored and how many it refined.
    fn search_with(
        values: &[f64],
        bounds: &[f64],
        coarse: &[f64],
        first: usize,
        batch: usize,
    ) -> (Vec<usize>, usize, usize) {
        let mut search = AtRiskSearch::new(coarse.to_vec(), first);
        loop {
            let handed = search.next_batch(batch, |candidate| Some(bounds[candidate])).unwrap();
            if handed.is_empty() {
                break;
            }
            for candidate in handed {
                search.offer(candidate, values[candidate]);
            }
        }
        assert!(search.is_settled());
        (search.ranked(), search.scored(), search.refined())
    }

    /// The same with coarse bounds equal to the fine ones: the ranking and how many it scored.
    fn search(values: &[f64], bounds: &[f64], first: usize, batch: usize) -> (Vec<usize>, usize) {
        let (ranked, scored, _) = search_with(values, bounds, bounds, first, batch);
        (ranked, scored)
    }

    #[test]
    fn scores_only_the_candidates_whose_bound_could_place_them() {
        // Values at risk 90, 50, 10, 5 with bounds 100, 60, 55, 8: the two best are settled once 90 and 50 are
        // known and the next bound, 55, exceeds 50, so the third is scored too; the fourth never is.
        let values = [90.0, 50.0, 10.0, 5.0];
        let bounds = [100.0, 60.0, 55.0, 8.0];
        assert_eq!(search(&values, &bounds, 2, 1), (vec![0, 1], 3));
        // A tie with the next bound goes to the earlier candidate: candidate 1 (value 8) ranks before candidate 2
        // (bound 8), which need not be scored.
        assert_eq!(search(&[9.0, 8.0, 8.0], &[9.0, 8.0, 8.0], 2, 1), (vec![0, 1], 2));
        // … but a later candidate with an equal value cannot overtake an earlier one with a higher bound.
        assert_eq!(search(&[1.0, 8.0, 8.0], &[9.0, 8.0, 8.0], 2, 1), (vec![1, 2], 3));
        // Fewer candidates than asked: all of them.
        assert_eq!(search(&[1.0, 3.0], &[2.0, 4.0], 5, 10), (vec![1, 0], 2));
        assert_eq!(search(&[], &[], 3, 10), (vec![], 0));
    }

    #[test]
    fn refines_only_the_candidates_whose_coarse_bound_could_place_them() {
        // Lifetime values 1000, 800, 100, 50; risks 0.5, 0.9, 0.9, 0.9; fine bounds 0.6, 1.0, 1.0, 1.0 of them.
        let values = [500.0, 720.0, 90.0, 45.0];
        let bounds = [600.0, 800.0, 100.0, 50.0];
        let coarse = [1000.0, 800.0, 100.0, 50.0];
        // The best two: 720 and 500, settled once both are scored (the next coarse bound, 100, is below 500).
        assert_eq!(search_with(&values, &bounds, &coarse, 2, 1), (vec![1, 0], 2, 2));
        // A candidate given up refining gives up the batch.
        let mut search = AtRiskSearch::new(coarse.to_vec(), 2);
        assert_eq!(search.next_batch(4, |_| None), None);
        assert_eq!(AtRiskSearch::new(coarse.to_vec(), 2).next_batch(0, |_| None), Some(vec![]));
    }

    proptest! {
        /// Whatever the bounds (coarse at least fine at least the values) and the batch size, the search ranks
        /// exactly as scoring every candidate does.
        #[test]
        fn ranks_as_scoring_everyone_does(
            cases in prop::collection::vec((0u8..20, 0u8..5, 0u8..5), 0..60),
            first in 1usize..8,
            batch in 1usize..10,
        ) {
            // Small integers make ties common.
            let values: Vec<f64> = cases.iter().map(|(value, _, _)| f64::from(*value)).collect();
            let bounds: Vec<f64> = cases.iter().map(|(value, slack, _)| f64::from(*value + *slack)).collect();
            let coarse: Vec<f64> =
                cases.iter().map(|(value, slack, more)| f64::from(*value + *slack + *more)).collect();
            let everyone: Vec<(Option<f64>, f64)> = values.iter().map(|value| (Some(*value), 1.0)).collect();
            let (ranked, scored, refined) = search_with(&values, &bounds, &coarse, first, batch);
            prop_assert_eq!(ranked, most_at_risk(&everyone, first));
            prop_assert!(scored <= refined && refined <= values.len());
        }
    }
}

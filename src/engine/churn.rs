//! Churn risk over the engine's records (docs/models.md, "Churn risk"): what a customer's risk reads that needs no
//! history (its principal relationship, that relationship's strength, the manager's share), and the graph-wide
//! ranking by value at risk, which scores exactly only the customers whose upper bound could still place them.
//!
//! The ranking is a branch and bound: every candidate gets an upper bound of its value at risk (lifetime value ×
//! [`ChurnModel::upper_bound`], from the records alone); candidates are scored in the order of their bounds, and the
//! search stops as soon as the `first`-th best exact value at risk beats the bound of every candidate not yet
//! scored. The result is exactly the ranking that scoring every candidate gives
//! ([`crate::domain::churn::most_at_risk`]: value at risk, most first, ties to the earlier candidate), after
//! scoring a few times `first` customers on a demo graph whose lifetime values are spread as customers' are.

use super::records::Records;
use crate::domain::churn::{principal, ChurnModel, Tie};
use crate::domain::strength::{self, seconds, StrengthModel};
use crate::domain::{KindDetails, RelationshipId, StakeholderId};
use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use std::time::Instant;

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

/// The standings of `customers` at `at` (`None` where the records do not hold one live), or `None` once
/// `deadline` passes. O(Σ r).
pub fn standings(
    records: &Records,
    strength: &StrengthModel,
    customers: &[StakeholderId],
    sees_private: bool,
    at: DateTime<Utc>,
    deadline: Instant,
) -> Option<Vec<Option<Standing>>> {
    let mut found = Vec::with_capacity(customers.len());
    for (index, customer) in customers.iter().enumerate() {
        if index % 256 == 255 && Instant::now() >= deadline {
            return None;
        }
        found.push(standing(records, strength, *customer, sees_private, at));
    }
    Some(found)
}

/// The upper bound of the value at risk of a customer with `lifetime_value` and this standing under `model`.
pub fn value_bound(model: &ChurnModel, lifetime_value: Option<f64>, standing: &Standing) -> f64 {
    lifetime_value.unwrap_or(0.0)
        * model.upper_bound(standing.principal.is_some(), standing.strength, standing.manager_share)
}

/// The search for the `first` candidates with the most value at risk, scoring as few as it can: candidates are
/// handed out in batches in the order of their bounds, their exact values offered back, until the result is
/// settled.
#[derive(Debug)]
pub struct AtRiskSearch {
    first: usize,
    bounds: Vec<f64>,
    /// Candidates by bound, highest first (the earlier candidate on a tie).
    order: Vec<usize>,
    /// How many of `order` were handed out.
    handed: usize,
    /// The best exact values so far, `(value, candidate)` in ranking order, at most `first`.
    best: Vec<(f64, usize)>,
}

/// The ranking order: more value first, then the earlier candidate.
fn ranks_before(a: (f64, usize), b: (f64, usize)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl AtRiskSearch {
    /// A search over candidates whose values at risk are at most `bounds`. O(n log n).
    pub fn new(bounds: Vec<f64>, first: usize) -> Self {
        let mut order: Vec<usize> = (0..bounds.len()).collect();
        order.sort_unstable_by(|a, b| ranks_before((bounds[*a], *a), (bounds[*b], *b)));
        Self { first, bounds, order, handed: 0, best: Vec::with_capacity(first + 1) }
    }

    /// The next candidates to score, at most `batch` (empty for 0); empty once the result is settled: `first` candidates are
    /// known whose exact values rank before the bound of every candidate not yet handed out (no unscored one can
    /// overtake them: its value is at most its bound, and on equal values the earlier candidate ranks first).
    pub fn next_batch(&mut self, batch: usize) -> &[usize] {
        let start = self.handed;
        while self.handed < self.order.len() && self.handed - start < batch {
            if self.settled() {
                break;
            }
            self.handed += 1;
        }
        &self.order[start..self.handed]
    }

    fn settled(&self) -> bool {
        let Some(&next) = self.order.get(self.handed) else { return true };
        self.first == 0
            || self.best.len() == self.first
                && self.best.last().is_some_and(|&last| ranks_before(last, (self.bounds[next], next)) == Ordering::Less)
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

    /// Whether every candidate handed out has been offered back and the result is settled.
    pub fn is_settled(&self) -> bool {
        self.settled()
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

    /// Runs the search with exact values `values` and bounds `bounds` in batches of `batch`; the ranking and how
    /// many it scored.
    fn search(values: &[f64], bounds: &[f64], first: usize, batch: usize) -> (Vec<usize>, usize) {
        let mut search = AtRiskSearch::new(bounds.to_vec(), first);
        loop {
            let handed = search.next_batch(batch).to_vec();
            if handed.is_empty() {
                break;
            }
            for candidate in handed {
                search.offer(candidate, values[candidate]);
            }
        }
        assert!(search.is_settled());
        (search.ranked(), search.scored())
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

    proptest! {
        /// Whatever the bounds (at least the values) and the batch size, the search ranks exactly as scoring every
        /// candidate does.
        #[test]
        fn ranks_as_scoring_everyone_does(
            cases in prop::collection::vec((0u8..20, 0u8..5), 0..60),
            first in 1usize..8,
            batch in 1usize..10,
        ) {
            // Small integers make ties common.
            let values: Vec<f64> = cases.iter().map(|(value, _)| f64::from(*value)).collect();
            let bounds: Vec<f64> = cases.iter().map(|(value, slack)| f64::from(*value + *slack)).collect();
            let everyone: Vec<(Option<f64>, f64)> = values.iter().map(|value| (Some(*value), 1.0)).collect();
            let (ranked, scored) = search(&values, &bounds, first, batch);
            prop_assert_eq!(ranked, most_at_risk(&everyone, first));
            prop_assert!(scored <= values.len());
        }
    }
}

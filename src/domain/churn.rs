//! Churn risk (docs/models.md, "Churn risk"): how likely a customer is to leave, as an explained weighted mean of
//! six bounded signals, like relationship strength. Each signal is in [0, 1], 1 the most risk; each is shown with
//! its value, weight and contribution, and the contributions add up to the score.
//!
//! The signals read the customer's *principal relationship*: the one with its relationship manager (its oldest
//! MANAGES relationship), otherwise its strongest. Pure functions of that relationship, its history, and the
//! strengths of the customer's relationships with staff.

use super::relationship::{Interaction, Relationship};
use super::strength::{DecayedSums, StrengthModel, FORECAST_HORIZON_DAYS};
use super::vocabulary::{Direction, Topic};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// The weight of each signal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnWeights {
    /// `1 − strength` of the principal relationship.
    pub weakness: f64,
    /// How much its strength fell over the last 30 days.
    pub decline: f64,
    /// How soon, with no new interaction, its strength falls below the threshold.
    pub falling: f64,
    /// How long since the customer last reached out.
    pub silence: f64,
    /// Complaints and returns in the recent window.
    pub complaints: f64,
    /// How much of the customer's ties with staff rest on its manager alone (key-person exposure).
    pub exposure: f64,
}

impl Default for ChurnWeights {
    fn default() -> Self {
        Self { weakness: 0.25, decline: 0.20, falling: 0.15, silence: 0.15, complaints: 0.15, exposure: 0.10 }
    }
}

/// The churn-risk model: signal weights and the constants that bound each signal. Its `version` is reported with
/// every score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnModel {
    /// Signal weights.
    pub weights: ChurnWeights,
    /// The strength below which the principal relationship counts as lost.
    pub threshold: f64,
    /// Falling below the threshold this many days ahead or sooner counts; the sooner, the more.
    pub horizon_days: f64,
    /// A 30-day fall of strength this large or larger is full decline.
    pub full_decline: f64,
    /// Days since the last inbound interaction at which silence is 0.5 (it doubles towards 1 after).
    pub silence_half_life_days: f64,
    /// Complaints and returns count over this many days.
    pub complaint_days: i64,
    /// What keeping a customer costs, by segment, for customers without a recorded cost (not part of the score).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub retention_costs: std::collections::BTreeMap<String, f64>,
}

impl Default for ChurnModel {
    fn default() -> Self {
        Self {
            weights: ChurnWeights::default(),
            threshold: 0.3,
            horizon_days: 90.0,
            full_decline: 0.1,
            silence_half_life_days: 60.0,
            complaint_days: 90,
            retention_costs: Default::default(),
        }
    }
}

/// What the model reads of one customer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChurnSignals {
    /// The principal relationship's strength now; 0 without one.
    pub strength: f64,
    /// Its strength now minus 30 days earlier; 0 without one.
    pub trend: f64,
    /// Days until it falls below the threshold (0: already below); `None` when not within ten years.
    pub falls_below_in_days: Option<f64>,
    /// Days since the customer's last inbound interaction on it; `None` when it never reached out.
    pub days_since_inbound: Option<f64>,
    /// COMPLAINT and RETURN interactions on it in the complaint window.
    pub complaints: u32,
    /// The manager's relationship's share of the strength of the customer's relationships with staff; `None` with
    /// no manager.
    pub manager_share: Option<f64>,
}

/// The signals, in the order drivers are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChurnDriverName {
    /// `1 − strength`.
    Weakness,
    /// `min(1, max(0, −trend) / full decline)`.
    Decline,
    /// `1 − days until below / horizon`, clamped to [0, 1]; 0 when not within ten years.
    Falling,
    /// `1 − 2^(−days since the last inbound interaction / half-life)`; 1 when the customer never reached out.
    Silence,
    /// `1 − 2^(−complaints and returns)`.
    Complaints,
    /// The manager's share of the customer's strength with staff; 1 with no manager.
    Exposure,
}

/// One signal of a churn risk: its value in [0, 1], its weight, and what it adds to the score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnDriver {
    /// Which signal.
    pub name: ChurnDriverName,
    /// Its value.
    pub value: f64,
    /// Its weight.
    pub weight: f64,
    /// `weight · value / Σ weights`.
    pub contribution: f64,
}

/// A customer's churn risk, with the drivers that explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnRisk {
    /// In [0, 1].
    pub score: f64,
    /// One per signal, in [`ChurnDriverName`] order; their contributions add up to the score.
    pub drivers: Vec<ChurnDriver>,
    /// What it read.
    pub signals: ChurnSignals,
}

impl ChurnModel {
    /// The model's version: `churn-v1` with the defaults, otherwise tagged as custom with a fingerprint.
    pub fn version(&self) -> String {
        // Retention costs do not change a score.
        let scoring = Self { retention_costs: Default::default(), ..self.clone() };
        if scoring == Self::default() {
            return "churn-v1".to_owned();
        }
        format!("churn-v1-custom-{:016x}", super::strength::fingerprint(&scoring))
    }

    /// The risk these signals make. O(1).
    pub fn evaluate(&self, signals: ChurnSignals) -> ChurnRisk {
        use ChurnDriverName::*;
        let w = &self.weights;
        let unit = |value: f64| if value.is_nan() { 0.0 } else { value.clamp(0.0, 1.0) };
        let values = [
            (Weakness, unit(1.0 - signals.strength), w.weakness),
            (Decline, unit(-signals.trend / self.full_decline), w.decline),
            (Falling, signals.falls_below_in_days.map_or(0.0, |days| unit(1.0 - days / self.horizon_days)), w.falling),
            (
                Silence,
                signals.days_since_inbound.map_or(1.0, |days| unit(1.0 - (-days / self.silence_half_life_days).exp2())),
                w.silence,
            ),
            (Complaints, unit(1.0 - (-f64::from(signals.complaints)).exp2()), w.complaints),
            (Exposure, signals.manager_share.map_or(1.0, unit), w.exposure),
        ];
        let total: f64 = values.iter().map(|(_, _, weight)| weight).sum();
        let drivers: Vec<ChurnDriver> = values
            .iter()
            .map(|&(name, value, weight)| ChurnDriver {
                name,
                value,
                weight,
                contribution: if total > 0.0 { weight * value / total } else { 0.0 },
            })
            .collect();
        // A sum of contributions can pass 1 by a few ulps; the score is a probability-like number in [0, 1].
        let score = drivers.iter().map(|driver| driver.contribution).sum::<f64>().clamp(0.0, 1.0);
        ChurnRisk { score, drivers, signals }
    }

    /// The signals of a customer at `at`: `principal` is its principal relationship with that relationship's
    /// history (its decayed sums must cover `at`, or are rebuilt from the history), `manager_share` as in
    /// [`ChurnSignals`]. O(h + f) for h interactions and a forecast of f ≤ ~3,700 daily scores.
    pub fn signals(
        &self,
        strength: &StrengthModel,
        principal: Option<(&Relationship, &[Interaction])>,
        manager_share: Option<f64>,
        at: DateTime<Utc>,
    ) -> ChurnSignals {
        let Some((relationship, history)) = principal else {
            return ChurnSignals { falls_below_in_days: Some(0.0), manager_share, ..ChurnSignals::default() };
        };
        let sums = if relationship.sums.covers(at) {
            relationship.sums
        } else {
            DecayedSums::from_history(strength, history.iter(), at)
        };
        let now = strength.evaluate(relationship, &sums, at).score;
        let falls_below_in_days = strength
            .falls_below(relationship, &sums, at, self.threshold)
            .map(|when| (seconds_between(at, when)).max(0.0) / DAY)
            .filter(|days| *days <= FORECAST_HORIZON_DAYS as f64);
        let last_inbound = history
            .iter()
            .filter(|interaction| interaction.direction == Direction::Inbound && interaction.at <= at)
            .map(|interaction| interaction.at)
            .max();
        let window = at - Duration::days(self.complaint_days);
        let complaints = history
            .iter()
            .filter(|interaction| interaction.at > window && interaction.at <= at)
            .filter(|interaction| matches!(interaction.topic, Some(Topic::Complaint | Topic::Return)))
            .count();
        ChurnSignals {
            strength: now,
            trend: strength.trend(relationship, history, at),
            falls_below_in_days,
            days_since_inbound: last_inbound.map(|last| seconds_between(last, at) / DAY),
            complaints: u32::try_from(complaints).unwrap_or(u32::MAX),
            manager_share,
        }
    }
}

impl ChurnModel {
    /// The highest score a customer can have whose principal relationship has strength `strength` now (`None`:
    /// not known without its history) and whose manager holds `manager_share`; without a principal relationship
    /// (`has_principal` false) it is the score itself. The drivers that read the history (decline, falling,
    /// silence, complaints) are taken at their worst, 1; weakness and exposure are exact. Every step of
    /// [`ChurnModel::evaluate`] is monotone in each driver's value (so is floating-point arithmetic), so the score
    /// of any history is at most this, to the last bit. O(1).
    pub fn upper_bound(&self, has_principal: bool, strength: Option<f64>, manager_share: Option<f64>) -> f64 {
        if !has_principal {
            let none = self.signals(&StrengthModel::default(), None, manager_share, DateTime::UNIX_EPOCH);
            return self.evaluate(none).score;
        }
        let worst = ChurnSignals {
            strength: strength.unwrap_or(0.0),
            trend: f64::NEG_INFINITY,
            falls_below_in_days: Some(0.0),
            days_since_inbound: None,
            complaints: u32::MAX,
            manager_share,
        };
        self.evaluate(worst).score
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1_000.0
}

impl ChurnModel {
    /// What keeping a customer costs: as recorded for it, otherwise its segment's configured cost; `None` when
    /// neither is known.
    pub fn retention_cost(&self, recorded: Option<f64>, segment: Option<&str>) -> Option<f64> {
        recorded.or_else(|| segment.and_then(|segment| self.retention_costs.get(segment).copied()))
    }
}

/// Whether keeping a customer is worth what it costs: the cost is below the lifetime value at stake times the churn
/// risk (docs/models.md, "Churn risk").
pub fn worth_retaining(cost: f64, lifetime_value: f64, risk: f64) -> bool {
    cost < lifetime_value * risk
}

/// One of a customer's relationships, as [`principal`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct Tie<'a> {
    /// The relationship.
    pub relationship: &'a Relationship,
    /// Its strength now.
    pub strength: f64,
    /// The stakeholder at its other end.
    pub counterpart: crate::domain::StakeholderId,
    /// Whether that stakeholder is staff: a live employee, not a candidate.
    pub staff: bool,
}

/// Which of a customer's relationships is its principal one, and the manager's share: `ties` are the customer's
/// relationships (those the caller may see), in id order. The principal one is the oldest MANAGES relationship to
/// the customer (the relationship manager's), otherwise the strongest (the lower id on a tie). The manager's share
/// is the summed strength of the customer's relationships with the manager (every type) over that of its
/// relationships with staff and the manager (1 when that sum is 0); `None` without a manager. O(r).
pub fn principal(customer: crate::domain::StakeholderId, ties: &[Tie<'_>]) -> (Option<usize>, Option<f64>) {
    use crate::domain::RelationshipType;
    let managed = ties
        .iter()
        .position(|tie| tie.relationship.rel_type == RelationshipType::Manages && tie.relationship.to == customer);
    let Some(index) = managed else {
        let mut best: Option<usize> = None;
        for (index, tie) in ties.iter().enumerate() {
            if best.is_none_or(|best| tie.strength > ties[best].strength) {
                best = Some(index);
            }
        }
        return (best, None);
    };
    let manager = ties[index].counterpart;
    let with = |wanted: &dyn Fn(&Tie<'_>) -> bool| -> f64 {
        ties.iter().filter(|tie| wanted(tie)).map(|tie| tie.strength).sum()
    };
    let held = with(&|tie| tie.counterpart == manager);
    let staff = with(&|tie| tie.staff || tie.counterpart == manager);
    let share = if staff > 0.0 { held / staff } else { 1.0 };
    (Some(index), Some(share.clamp(0.0, 1.0)))
}

/// One customer in a relationship manager's portfolio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Holding {
    /// The strength of the manager's relationship with it, now.
    pub strength: f64,
    /// Its lifetime value, when recorded.
    pub lifetime_value: Option<f64>,
    /// Its churn risk; `None` for a prospect or a customer who has left.
    pub risk: Option<f64>,
}

/// What a relationship manager holds: the firm's exposure if the manager leaves.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Portfolio {
    /// Customers managed.
    pub customers: u64,
    /// Of those, how many are customers now (not prospects, not gone): those with a churn risk.
    pub active: u64,
    /// The mean strength of the manager's relationships with them; `None` with none.
    pub mean_strength: Option<f64>,
    /// Active customers whose churn risk is at least the threshold.
    pub at_risk: u64,
    /// The lifetime value of the active customers.
    pub lifetime_value: f64,
    /// Σ lifetime value × churn risk over the active customers.
    pub value_at_risk: f64,
}

/// The portfolio of `holdings`, counting a risk of `at_risk_above` or more as at risk. O(n).
pub fn portfolio(holdings: &[Holding], at_risk_above: f64) -> Portfolio {
    let mut summary = Portfolio { customers: holdings.len() as u64, ..Portfolio::default() };
    let mut strength = 0.0;
    for holding in holdings {
        strength += holding.strength;
        let Some(risk) = holding.risk else { continue };
        let value = holding.lifetime_value.unwrap_or(0.0);
        summary.active += 1;
        summary.at_risk += u64::from(risk >= at_risk_above);
        summary.lifetime_value += value;
        summary.value_at_risk += value * risk;
    }
    summary.mean_strength = (!holdings.is_empty()).then(|| strength / holdings.len() as f64);
    summary
}

/// The `first` of `candidates` (each its lifetime value and churn risk) with the most value at risk (lifetime value ×
/// risk; a customer without a lifetime value has none), most first, ties to the earlier candidate: their
/// positions in `candidates`. O(n log n).
pub fn most_at_risk(candidates: &[(Option<f64>, f64)], first: usize) -> Vec<usize> {
    let at_risk = |index: usize| candidates[index].0.unwrap_or(0.0) * candidates[index].1;
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|a, b| at_risk(*b).total_cmp(&at_risk(*a)).then(a.cmp(b)));
    order.truncate(first);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// The worked example of docs/models.md: strength 0.6, a fall of 0.05 in 30 days, below 0.3 in 45 days, 60
    /// days of silence, one complaint, a manager holding half the ties with staff.
    fn worked_example() -> ChurnSignals {
        ChurnSignals {
            strength: 0.6,
            trend: -0.05,
            falls_below_in_days: Some(45.0),
            days_since_inbound: Some(60.0),
            complaints: 1,
            manager_share: Some(0.5),
        }
    }

    /// Hand-computed: a customer whose principal relationship has strength 0.6, fell 0.05 in 30 days, falls below
    /// 0.3 in 45 days, last reached out 60 days ago, made one complaint, and whose manager holds half its ties with
    /// staff.
    #[test]
    fn a_hand_computed_case() {
        let model = ChurnModel::default();
        let risk = model.evaluate(worked_example());
        // weakness 0.4, decline 0.5, falling 0.5, silence 0.5, complaints 0.5, exposure 0.5.
        let values: Vec<f64> = risk.drivers.iter().map(|driver| driver.value).collect();
        assert!(values.iter().zip([0.4, 0.5, 0.5, 0.5, 0.5, 0.5]).all(|(got, want)| close(*got, want)), "{values:?}");
        // 0.25·0.4 + (0.20 + 0.15 + 0.15 + 0.15 + 0.10)·0.5 = 0.1 + 0.375.
        assert!(close(risk.score, 0.475), "{}", risk.score);
        let sum: f64 = risk.drivers.iter().map(|driver| driver.contribution).sum();
        assert!(close(sum, risk.score));
        assert_eq!(model.version(), "churn-v1");
    }

    #[test]
    fn bounds_hold_at_the_extremes() {
        let model = ChurnModel::default();
        let safe = model.evaluate(ChurnSignals {
            strength: 1.0,
            trend: 0.3,
            falls_below_in_days: None,
            days_since_inbound: Some(0.0),
            complaints: 0,
            manager_share: Some(0.0),
        });
        assert!(close(safe.score, 0.0), "{}", safe.score);
        // No relationship at all: weakness, falling, silence and exposure at their worst, nothing to decline or
        // complain on: 0.25 + 0.15 + 0.15 + 0.10.
        let lost = model.evaluate(model.signals(&StrengthModel::default(), None, None, Utc::now()));
        assert!(close(lost.score, 0.65), "{lost:?}");
        let custom = ChurnModel { threshold: 0.2, ..ChurnModel::default() };
        assert!(custom.version().starts_with("churn-v1-custom-"));
        // Retention costs are not part of the score, nor of its version.
        let costs = ChurnModel { retention_costs: [("SMB".to_owned(), 500.0)].into(), ..ChurnModel::default() };
        assert_eq!(costs.version(), "churn-v1");
        assert_eq!(costs.retention_cost(None, Some("SMB")), Some(500.0));
        assert_eq!(costs.retention_cost(Some(20.0), Some("SMB")), Some(20.0));
        assert_eq!(costs.retention_cost(None, Some("CONSUMER")), None);
        // The worked example: 9,500 at stake against a cost of 2,000 is worth it, against 9,500 it is not.
        assert!(worth_retaining(2_000.0, 20_000.0, 0.475));
        assert!(!worth_retaining(9_500.0, 20_000.0, 0.475));
    }

    #[test]
    fn the_upper_bound_takes_the_history_s_drivers_at_their_worst() {
        let model = ChurnModel::default();
        let signals = worked_example();
        // Weakness 0.4 and exposure 0.5 exact, the other four at 1: 0.25·0.4 + 0.10·0.5 + 0.65.
        let bound = model.upper_bound(true, Some(0.6), Some(0.5));
        assert!(close(bound, 0.8), "{bound}");
        assert!(bound >= model.evaluate(signals).score);
        // Whatever the history says, the score stays at or under it.
        for trend in [-1.0, 0.0, 0.3] {
            for falls in [None, Some(0.0), Some(500.0)] {
                for complaints in [0, 3, 1000] {
                    let other = ChurnSignals {
                        trend,
                        falls_below_in_days: falls,
                        complaints,
                        days_since_inbound: None,
                        ..signals
                    };
                    assert!(model.evaluate(other).score <= bound);
                }
            }
        }
        // Strength not known without the history: weakness at its worst too.
        assert!(close(model.upper_bound(true, None, None), 1.0));
        // No principal relationship: the score itself, 0.65 (see `bounds_hold_at_the_extremes`).
        assert!(close(model.upper_bound(false, None, None), 0.65));
    }

    fn relationship(id: i64, rel_type: crate::domain::RelationshipType, from: i64, to: i64) -> Relationship {
        use crate::domain::{BondSet, Level, RelationshipId, StakeholderId};
        let since = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().to_utc();
        Relationship {
            id: RelationshipId(id),
            from: StakeholderId(from),
            to: StakeholderId(to),
            rel_type,
            level: Level::from_rank(3).unwrap(),
            bonds: BondSet::EMPTY,
            trust: None,
            commitment: None,
            since,
            basis: None,
            created_at: since,
            updated_at: since,
            sums: DecayedSums::default(),
        }
    }

    #[test]
    fn signals_read_the_principal_relationship_s_history() {
        use crate::domain::{Channel, InteractionId, Sentiment};
        let at = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc();
        let strength = StrengthModel::default();
        let relationship = relationship(1, crate::domain::RelationshipType::Manages, 7, 9);
        let interaction = |days: i64, direction, topic| Interaction {
            id: InteractionId(days),
            relationship: relationship.id,
            at: at - Duration::days(days),
            channel: Channel::Call,
            direction,
            sentiment: Sentiment::parse(0.1).unwrap(),
            amount: None,
            product_line: None,
            note: None,
            topic,
            key: None,
        };
        let history = [
            interaction(200, Direction::Inbound, Some(Topic::Complaint)), // outside the window
            interaction(50, Direction::Inbound, Some(Topic::Return)),
            interaction(20, Direction::Outbound, Some(Topic::Complaint)),
            interaction(5, Direction::Outbound, Some(Topic::Promotion)),
            interaction(-3, Direction::Inbound, None), // after `at`: not read
        ];
        // The stored sums hold the interaction after `at` too, so the signals rebuild them from the history.
        let mut relationship = relationship.clone();
        relationship.sums = DecayedSums::from_history(&strength, history.iter(), at + Duration::days(5));
        assert!(!relationship.sums.covers(at));
        let model = ChurnModel::default();
        let signals = model.signals(&strength, Some((&relationship, &history)), Some(0.8), at);
        assert_eq!(signals.days_since_inbound, Some(50.0));
        assert_eq!(signals.complaints, 2);
        assert_eq!(signals.manager_share, Some(0.8));
        assert_eq!(signals.strength, strength.evaluate_history(&relationship, &history, at).score);
        assert_eq!(signals.trend, strength.trend(&relationship, &history, at));
        let below =
            strength.falls_below(&relationship, &DecayedSums::from_history(&strength, history.iter(), at), at, 0.3);
        assert_eq!(signals.falls_below_in_days, below.map(|when| (when - at).num_milliseconds() as f64 / 86_400_000.0));
    }

    #[test]
    fn the_principal_relationship_is_the_manager_s_or_else_the_strongest() {
        use crate::domain::{RelationshipType::*, StakeholderId};
        let customer = StakeholderId(9);
        let (knows, manages, supplies, also) = (
            relationship(1, Knows, 9, 3),
            relationship(2, Manages, 7, 9),
            relationship(3, Knows, 9, 4),
            relationship(4, Knows, 9, 7),
        );
        let tie = |relationship, strength, counterpart, staff| Tie {
            relationship,
            strength,
            counterpart: StakeholderId(counterpart),
            staff,
        };
        // The manager's, whatever the strengths; its share of the ties with staff (3 and the manager 7).
        let all = [tie(&knows, 0.6, 3, true), tie(&manages, 0.2, 7, true), tie(&supplies, 0.9, 4, false)];
        let (index, share) = principal(customer, &all);
        assert_eq!(index, Some(1));
        assert!(close(share.unwrap(), 0.25), "{share:?}");
        // Every tie with the manager counts as the manager's: its only tie with staff is whole exposure.
        let only = [tie(&manages, 0.2, 7, true), tie(&supplies, 0.9, 4, false), tie(&also, 0.4, 7, true)];
        assert_eq!(principal(customer, &only), (Some(0), Some(1.0)));
        // A manager who is not staff (a candidate) still counts as the manager.
        let candidate = [tie(&knows, 0.6, 3, true), tie(&manages, 0.2, 7, false)];
        assert!(close(principal(customer, &candidate).1.unwrap(), 0.25));
        // Without one, the strongest; the lower id on a tie.
        let (index, share) = principal(customer, &[tie(&knows, 0.6, 3, true), tie(&supplies, 0.6, 4, false)]);
        assert_eq!((index, share), (Some(0), None));
        assert_eq!(principal(customer, &[]), (None, None));
    }

    #[test]
    fn a_portfolio_adds_up_its_active_customers() {
        let holding = |strength, lifetime_value, risk| Holding { strength, lifetime_value, risk };
        let summary = portfolio(
            &[
                holding(0.8, Some(1000.0), Some(0.2)),
                holding(0.4, Some(500.0), Some(0.6)),
                holding(0.3, None, Some(0.5)),
                holding(0.1, Some(9999.0), None), // left: counted, not held
            ],
            0.5,
        );
        assert_eq!((summary.customers, summary.active, summary.at_risk), (4, 3, 2));
        assert!(close(summary.mean_strength.unwrap(), 0.4));
        assert!(close(summary.lifetime_value, 1500.0));
        assert!(close(summary.value_at_risk, 1000.0 * 0.2 + 500.0 * 0.6));
        assert_eq!(portfolio(&[], 0.5).mean_strength, None);
    }

    #[test]
    fn the_most_at_risk_come_first_by_value_at_risk() {
        let candidates =
            [(Some(1000.0), 0.1), (Some(100.0), 0.9), (None, 1.0), (Some(500.0), 0.2), (Some(1000.0), 0.1)];
        // 100, 90, 0, 100, 100: ties to the earlier candidate.
        assert_eq!(most_at_risk(&candidates, 3), vec![0, 3, 4]);
        assert_eq!(most_at_risk(&candidates, 10), vec![0, 3, 4, 1, 2]);
        assert!(most_at_risk(&[], 3).is_empty());
    }
}

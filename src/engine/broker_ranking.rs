//! The `brokers` ranking (docs/models.md, "Influence"): which betweenness answers a request, the brokers in order,
//! and the markets each one bridges.
//!
//! Betweenness is over the stakeholders the caller may see (the view: the whole graph, or its public part), with
//! influence flowing both ways, so every pair is counted from each end and the sums are halved. The default
//! ranking (the `min_strength` the background estimates use) of a view of at least `exact_below` stakeholders is
//! the newest background estimate's ([`super::estimates`]), once one has finished or made progress: possibly of an
//! older snapshot, whose brokers archived since, or made private since for a caller who may not see private
//! stakeholders, are left out. Any other request gets a quick answer: exact betweenness from every stakeholder of
//! the view below `exact_below` of them, else from a fixed-seed sample of them ([`sample_sources`]) scaled to all.
//! Sources come from the view, so that neither their number nor the scale tells how many are hidden.
//!
//! [`answer`] is the one function here with effects (it asks the background estimates, starting one when the
//! request is the default ranking of a large view, and memoises the quick betweenness per snapshot); what it
//! decides and computes is in the pure functions beside it.
//!
//! Cost: choosing sources O(n); the quick betweenness O(|sources| · (n + m) · 64) ([`betweenness`]); ordering the
//! view O(n log n); then O(degree) per broker looked at to find the markets it bridges, until `first` of them
//! bridge every wanted market. An estimate's answer costs that last step alone (its order is already made).

use super::analysis::{Flow, Via, Walk};
use super::brokers::{betweenness, sample_sources};
use super::estimates::{BrokerEstimates, EstimateSettings, Ranking};
use super::paths::Adjacency;
use super::{Engine, Snapshot};
use crate::domain::{MarketSet, StakeholderId};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Instant;

/// How the quick answer takes its sources (limits `betweenness_exact_below`, `betweenness_samples`,
/// `betweenness_seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Views with fewer stakeholders get exact betweenness (every one a source).
    pub exact_below: usize,
    /// Sources of a sample.
    pub samples: usize,
    /// The seed that picks them (the background estimates start with the same sources).
    pub seed: u64,
}

/// What a `brokers` request asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrokersRequest {
    /// Relationships weaker than this are not followed.
    pub min_strength: f64,
    /// Only brokers related to stakeholders in every one of these markets.
    pub wanted: MarketSet,
    /// How many brokers at most.
    pub first: usize,
    /// Rank on the public part of the graph only.
    pub hide_private: bool,
}

/// One broker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedBroker {
    /// The stakeholder.
    pub stakeholder: StakeholderId,
    /// Its betweenness, each pair counted once (scaled from the sources when they were sampled).
    pub score: f64,
    /// The markets of the stakeholders it is directly related to: the markets it bridges.
    pub bridges: MarketSet,
}

/// The answer to a `brokers` request.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerRanking {
    /// The clock of the snapshot the betweenness was computed on.
    pub as_of: DateTime<Utc>,
    /// That snapshot's change-log position.
    pub seq: i64,
    /// Every stakeholder of the view was a source.
    pub exact: bool,
    /// The top is settled: exact, or a background estimate whose stopping rule held.
    pub stable: bool,
    /// How many sources.
    pub sources: usize,
    /// At most `first` brokers, highest score first (ties: lower stakeholder id).
    pub ranked: Vec<RankedBroker>,
}

/// The answer to `request` on `current`: the newest background estimate when it answers (see the module docs),
/// else the quick betweenness, memoised in `engine` per snapshot, view, strength and number of sources. Starts a
/// background estimate of `current` when the request is the default ranking of a large view and none finished
/// or runs for it, after the quick answer is computed so that they do not share the cores. `None` if `deadline`
/// passes first.
pub fn answer(
    engine: &Engine,
    estimates: &BrokerEstimates,
    current: &Arc<Snapshot>,
    request: &BrokersRequest,
    sampling: &Sampling,
    deadline: Instant,
) -> Option<BrokerRanking> {
    let hide = request.hide_private;
    let walk = Walk::new(current, Flow::Both, request.min_strength, &Via::default()).hiding_private(hide);
    let visible = visible(&walk);
    let estimated = answered_by_estimates(estimates.settings(), sampling, request.min_strength, visible.len());
    if let Some(ranking) = estimated.then(|| estimates.available(hide)).flatten() {
        estimates.latest(current, hide);
        return Some(from_estimate(&ranking, current, request));
    }
    let (sources, scale) = quick_sources(&visible, sampling);
    let key = format!("betweenness {} {} hide_private={hide}", request.min_strength, sources.len());
    let scores = engine.memoized(current, &key, || quick_scores(&walk, &sources, scale, deadline));
    if estimated {
        estimates.latest(current, hide);
    }
    Some(quick_ranking(&walk, visible, &scores?, sources.len(), scale, request))
}

/// The nodes `walk` shows, in order. O(n).
pub fn visible(walk: &Walk<'_>) -> Vec<u32> {
    (0..walk.node_count() as u32).filter(|&node| !walk.hides(node)).collect()
}

/// Whether background estimates answer a request for `min_strength` on a view of `visible` stakeholders: they
/// run (`settings.max_sources` above 0), estimate that ranking (`settings.min_strength`), and the view is too
/// large for an exact quick answer. O(1).
pub fn answered_by_estimates(
    settings: &EstimateSettings,
    sampling: &Sampling,
    min_strength: f64,
    visible: usize,
) -> bool {
    settings.max_sources > 0 && min_strength == settings.min_strength && visible >= sampling.exact_below
}

/// The quick answer's sources among the `visible` nodes, and the factor that scales their sums to all of them
/// ([`sample_sources`] over the view: every one with factor 1, or a fixed-seed sample). O(n).
pub fn quick_sources(visible: &[u32], sampling: &Sampling) -> (Vec<u32>, f64) {
    let (picked, scale) = sample_sources(visible.len(), sampling.exact_below, sampling.samples, sampling.seed);
    (picked.into_iter().map(|index| visible[index as usize]).collect(), scale)
}

/// Betweenness from `sources` over `walk`, scaled by `scale` and halved (influence flows both ways: every pair is
/// counted from each end). `None` if `deadline` passes first.
pub fn quick_scores(walk: &Walk<'_>, sources: &[u32], scale: f64, deadline: Instant) -> Option<Vec<f64>> {
    betweenness(walk, sources, Some(deadline)).map(|sums| sums.into_iter().map(|sum| sum * scale / 2.0).collect())
}

/// The quick answer on `walk`'s snapshot: the `visible` nodes by `scores` (highest first, ties to the lower
/// node), the first `request.first` that bridge every wanted market; exact (and so stable) when `scale` is 1.
/// O(n log n + brokers looked at · degree).
pub fn quick_ranking(
    walk: &Walk<'_>,
    mut visible: Vec<u32>,
    scores: &[f64],
    sources: usize,
    scale: f64,
    request: &BrokersRequest,
) -> BrokerRanking {
    visible.sort_unstable_by(|a, b| scores[*b as usize].total_cmp(&scores[*a as usize]).then(a.cmp(b)));
    let exact = scale == 1.0;
    let snapshot = walk.snapshot();
    BrokerRanking {
        as_of: snapshot.as_of(),
        seq: snapshot.seq(),
        exact,
        stable: exact,
        sources,
        ranked: ranked_brokers(walk, &visible, scores, request.wanted, request.first, |_| true),
    }
}

/// The answer from a background estimate (of `current` or an older snapshot): its scores halved, its order, and
/// the bridges of the snapshot it was computed on; a stakeholder archived since, or made private since when the
/// request hides private ones, is left out. O(brokers looked at · degree).
pub fn from_estimate(ranking: &Ranking, current: &Snapshot, request: &BrokersRequest) -> BrokerRanking {
    let computed_on = &ranking.snapshot;
    let hide = request.hide_private;
    let walk = Walk::new(computed_on, Flow::Both, request.min_strength, &Via::default()).hiding_private(hide);
    // Both ways, every pair is counted from each end: halve.
    let scores: Vec<f64> = ranking.scores.iter().map(|score| score / 2.0).collect();
    let still_listed = |node: u32| {
        current.index_of(computed_on.stakeholder(node)).is_some_and(|now| !(hide && current.is_private(now)))
    };
    BrokerRanking {
        as_of: computed_on.as_of(),
        seq: computed_on.seq(),
        exact: ranking.exact,
        stable: ranking.settled,
        sources: ranking.sources,
        ranked: ranked_brokers(&walk, &ranking.order, &scores, request.wanted, request.first, still_listed),
    }
}

/// The first `first` nodes of `order` that are `listed` and bridge every market in `wanted`, with their `scores`.
/// O(nodes looked at · degree).
pub fn ranked_brokers(
    walk: &Walk<'_>,
    order: &[u32],
    scores: &[f64],
    wanted: MarketSet,
    first: usize,
    listed: impl Fn(u32) -> bool,
) -> Vec<RankedBroker> {
    let snapshot = walk.snapshot();
    order
        .iter()
        .copied()
        .filter(|&node| listed(node))
        .map(|node| (node, bridged(walk, node)))
        .filter(|(_, bridges)| bridges.bits() & wanted.bits() == wanted.bits())
        .take(first)
        .map(|(node, bridges)| RankedBroker {
            stakeholder: snapshot.stakeholder(node),
            score: scores[node as usize],
            bridges,
        })
        .collect()
}

/// The markets of the stakeholders `node` is directly related to, over the relationships `walk` follows. O(degree).
pub fn bridged(walk: &Walk<'_>, node: u32) -> MarketSet {
    let snapshot = walk.snapshot();
    let mut markets = MarketSet::EMPTY;
    walk.neighbors(node, |next, _| markets = markets.union(snapshot.markets(next)));
    markets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::strength::StrengthModel;
    use crate::domain::{
        Level, Market, Probability, RelationshipId, RelationshipType, RelationshipUpsert, StakeholderKind,
    };
    use crate::engine::brokers::betweenness;
    use crate::store::{GraphScan, NodeRow};
    use chrono::TimeZone;

    /// A snapshot at change-log position `seq` of stakeholders `1..` with these markets (and privacy), joined by
    /// strong KNOWS relationships `(from, to)`.
    fn graph(seq: i64, stakeholders: &[(&[Market], bool)], edges: &[(i64, i64)]) -> Snapshot {
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let scan = GraphScan {
            archived: Vec::new(),
            seq,
            stakeholders: stakeholders
                .iter()
                .enumerate()
                .map(|(index, (markets, private))| NodeRow {
                    id: StakeholderId(index as i64 + 1),
                    kind: StakeholderKind::Customer,
                    markets: MarketSet::of(markets.iter().copied()),
                    private: *private,
                })
                .collect(),
            relationships: edges
                .iter()
                .enumerate()
                .map(|(index, &(from, to))| {
                    RelationshipUpsert {
                        from: StakeholderId(from),
                        to: StakeholderId(to),
                        rel_type: RelationshipType::Knows,
                        level: Level::from_rank(5),
                        bonds: None,
                        trust: Some(Probability::parse(0.9).unwrap()),
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

    const CUSTOMER: &[Market] = &[Market::Customer];
    const SUPPLIER: &[Market] = &[Market::Supplier];
    const BOTH: &[Market] = &[Market::Customer, Market::Supplier];
    const NONE: &[Market] = &[];

    /// Node 0 (stakeholder 1) is related to a customer (2), a supplier (3) and a private referral (4); node 4
    /// (stakeholder 5) only to the supplier; node 5 (stakeholder 6) to nobody.
    fn star() -> Snapshot {
        graph(
            0,
            &[
                (NONE, false),
                (CUSTOMER, false),
                (SUPPLIER, false),
                (&[Market::Referral], true),
                (BOTH, false),
                (NONE, false),
            ],
            &[(1, 2), (3, 1), (1, 4), (5, 3)],
        )
    }

    fn request(wanted: &[Market], first: usize, hide_private: bool) -> BrokersRequest {
        BrokersRequest { min_strength: 0.0, wanted: MarketSet::of(wanted.iter().copied()), first, hide_private }
    }

    fn ids(ranking: &[RankedBroker]) -> Vec<i64> {
        ranking.iter().map(|broker| broker.stakeholder.0).collect()
    }

    #[test]
    fn a_broker_bridges_the_markets_of_the_stakeholders_the_walk_relates_it_to() {
        let snapshot = star();
        let all = Walk::new(&snapshot, Flow::Both, 0.0, &Via::default());
        let forward = Walk::new(&snapshot, Flow::Forward, 0.0, &Via::default());
        // (case, walk, node) → markets bridged
        let table: &[(&str, &Walk<'_>, u32, &[Market])] = &[
            ("both ways: every neighbour", &all, 0, &[Market::Customer, Market::Supplier, Market::Referral]),
            ("hiding private: not the private referral", &all.hiding_private(true), 0, BOTH),
            ("forward: only those it points to", &forward, 0, &[Market::Customer, Market::Referral]),
            ("a neighbour in no market adds none", &all, 1, NONE),
            ("both ends' markets are not its own", &all, 4, SUPPLIER),
            ("related to nobody", &all, 5, NONE),
            ("a hidden node bridges nothing", &all.hiding_private(true), 3, NONE),
        ];
        for &(case, walk, node, markets) in table {
            assert_eq!(bridged(walk, node), MarketSet::of(markets.iter().copied()), "{case}");
        }
    }

    #[test]
    fn brokers_are_the_first_of_the_order_that_are_listed_and_bridge_every_wanted_market() {
        let snapshot = star();
        let walk = Walk::new(&snapshot, Flow::Both, 0.0, &Via::default());
        let order = [4, 0, 2, 1, 3, 5];
        let scores = [0.6, 0.5, 0.4, 0.3, 0.9, 0.1];
        let everyone = |_: u32| true;
        // (case, wanted, first, listed) → stakeholders
        type Row<'a> = (&'a str, &'a [Market], usize, &'a dyn Fn(u32) -> bool, &'a [i64]);
        let table: &[Row<'_>] = &[
            ("no wanted market: the order", NONE, 10, &everyone, &[5, 1, 3, 2, 4, 6]),
            ("first cuts", NONE, 2, &everyone, &[5, 1]),
            ("first 0: nobody", NONE, 0, &everyone, &[]),
            ("bridging suppliers", SUPPLIER, 10, &everyone, &[5, 1, 3]),
            ("bridging both markets", BOTH, 10, &everyone, &[1, 3]),
            ("a market nobody bridges", &[Market::Internal], 10, &everyone, &[]),
            ("listed ones only", SUPPLIER, 10, &|node| node != 4, &[1, 3]),
        ];
        for &(case, wanted, first, listed, expected) in table {
            let ranked = ranked_brokers(&walk, &order, &scores, MarketSet::of(wanted.iter().copied()), first, listed);
            assert_eq!(ids(&ranked), expected, "{case}");
            for broker in &ranked {
                let node = snapshot.index_of(broker.stakeholder).unwrap();
                assert_eq!(broker.score, scores[node as usize], "{case}");
                assert_eq!(broker.bridges, bridged(&walk, node), "{case}");
            }
        }
    }

    #[test]
    fn background_estimates_answer_the_default_ranking_of_a_large_view_only() {
        let settings = EstimateSettings {
            min_strength: 0.05,
            seed: 42,
            chunk: 32,
            min_sources: 256,
            max_sources: 250_000,
            top: 10,
            z: 3.0,
            threads: 2,
        };
        let sampling = Sampling { exact_below: 2_000, samples: 32, seed: 42 };
        // (case, max sources, min strength, visible) → estimated
        let table: &[(&str, usize, f64, usize, bool)] = &[
            ("default ranking, large view", 250_000, 0.05, 5_000, true),
            ("default ranking, exactly at the size for sampling", 250_000, 0.05, 2_000, true),
            ("default ranking, small view: exact at once", 250_000, 0.05, 1_999, false),
            ("another strength", 250_000, 0.1, 5_000, false),
            ("estimates turned off", 0, 0.05, 5_000, false),
        ];
        for &(case, max_sources, min_strength, visible, estimated) in table {
            let settings = EstimateSettings { max_sources, ..settings };
            assert_eq!(answered_by_estimates(&settings, &sampling, min_strength, visible), estimated, "{case}");
        }
    }

    #[test]
    fn quick_sources_are_every_visible_node_or_a_fixed_sample_of_them() {
        let visible = [0, 2, 5, 7, 8, 11];
        // (case, exact below, samples) → every visible node?, scale
        let table: &[(&str, usize, usize, bool, f64)] = &[
            ("a small view: all, exact", 10, 2, true, 1.0),
            ("as many samples as nodes: all, exact", 0, 6, true, 1.0),
            ("a large view: a sample, scaled", 6, 2, false, 3.0),
            ("always sample", 0, 4, false, 1.5),
        ];
        for &(case, exact_below, samples, all, scale) in table {
            let sampling = Sampling { exact_below, samples, seed: 7 };
            let (sources, factor) = quick_sources(&visible, &sampling);
            assert_eq!(factor, scale, "{case}");
            if all {
                assert_eq!(sources, visible, "{case}");
            } else {
                assert_eq!(sources.len(), samples, "{case}");
                assert!(sources.iter().all(|source| visible.contains(source)), "{case}: {sources:?}");
                assert!(sources.windows(2).all(|pair| pair[0] < pair[1]), "{case}: ascending, distinct");
                assert_eq!(quick_sources(&visible, &sampling), (sources, factor), "{case}: the same every time");
            }
        }
    }

    #[test]
    fn quick_scores_are_the_scaled_sums_halved() {
        // 1 — 2 — 3: stakeholder 2 lies on the one path between 1 and 3, counted from both ends.
        let snapshot = graph(0, &[(NONE, false); 3], &[(1, 2), (2, 3)]);
        let walk = Walk::new(&snapshot, Flow::Both, 0.0, &Via::default());
        let sums = betweenness(&walk, &[0, 1, 2], None).unwrap();
        assert_eq!(sums, [0.0, 2.0, 0.0]);
        let far = Instant::now() + std::time::Duration::from_secs(60);
        assert_eq!(quick_scores(&walk, &[0, 1, 2], 1.0, far).unwrap(), [0.0, 1.0, 0.0]);
        assert_eq!(quick_scores(&walk, &[0], 3.0, far).unwrap(), [0.0, 1.5, 0.0], "one source of three, scaled");
        assert_eq!(quick_scores(&walk, &[0, 1, 2], 1.0, Instant::now()), None, "past the deadline");
    }

    #[test]
    fn a_quick_ranking_orders_by_score_ties_to_the_lower_node_and_is_exact_only_from_every_source() {
        let snapshot = graph(3, &[(NONE, false), (CUSTOMER, false), (NONE, false), (NONE, false)], &[(1, 2), (3, 2)]);
        let walk = Walk::new(&snapshot, Flow::Both, 0.0, &Via::default());
        let scores = [0.5, 0.25, 0.5, 0.75];
        // (case, sources, scale, wanted) → (stakeholders, exact)
        type Row<'a> = (&'a str, usize, f64, &'a [Market], &'a [i64], bool);
        let table: &[Row<'_>] = &[
            ("every source", 4, 1.0, NONE, &[4, 1, 3, 2], true),
            ("sampled", 2, 2.0, NONE, &[4, 1, 3, 2], false),
            ("bridging customers", 4, 1.0, CUSTOMER, &[1, 3], true),
        ];
        for &(case, sources, scale, wanted, expected, exact) in table {
            let ranking = quick_ranking(&walk, visible(&walk), &scores, sources, scale, &request(wanted, 10, false));
            assert_eq!(ids(&ranking.ranked), expected, "{case}");
            assert_eq!((ranking.exact, ranking.stable, ranking.sources), (exact, exact, sources), "{case}");
            assert_eq!((ranking.seq, ranking.as_of), (3, snapshot.as_of()), "{case}");
        }
    }

    #[test]
    fn an_estimate_answers_from_its_own_snapshot_without_those_who_left_the_view() {
        // Computed on 4 stakeholders; since then 4 was archived (gone from the snapshot) and 2 turned private.
        let computed_on = Arc::new(graph(5, &[(SUPPLIER, false); 4], &[(1, 2), (2, 3), (3, 4)]));
        let current = graph(9, &[(SUPPLIER, false), (SUPPLIER, true), (SUPPLIER, false)], &[(1, 2), (2, 3)]);
        let ranking = Ranking {
            snapshot: computed_on.clone(),
            scores: vec![0.0, 4.0, 3.0, 1.0],
            order: vec![1, 2, 3, 0],
            sources: 3,
            exact: false,
            settled: true,
            finished: true,
        };
        // (case, hide private, first) → (stakeholder, score) listed
        type Row<'a> = (&'a str, bool, usize, &'a [(i64, f64)]);
        let table: &[Row<'_>] = &[
            ("seeing private ones", false, 10, &[(2, 2.0), (3, 1.5), (1, 0.0)]),
            ("hiding them", true, 10, &[(3, 1.5), (1, 0.0)]),
            ("first cuts", false, 1, &[(2, 2.0)]),
        ];
        for &(case, hide, first, expected) in table {
            let answer = from_estimate(&ranking, &current, &request(NONE, first, hide));
            let listed: Vec<(i64, f64)> =
                answer.ranked.iter().map(|broker| (broker.stakeholder.0, broker.score)).collect();
            assert_eq!(listed, expected, "{case}");
            assert_eq!((answer.seq, answer.as_of), (5, computed_on.as_of()), "{case}: the estimate's snapshot");
            assert_eq!((answer.exact, answer.stable, answer.sources), (false, true, 3), "{case}");
        }
        // Bridges are those of the snapshot the estimate was computed on.
        let answer = from_estimate(&ranking, &current, &request(SUPPLIER, 10, false));
        assert!(answer.ranked.iter().all(|broker| broker.bridges == MarketSet::of([Market::Supplier])));
        assert_eq!(ids(&answer.ranked), [2, 3, 1]);
    }
}

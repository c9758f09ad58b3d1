//! `marketOverview`: the six markets at a glance. The counting is [`crate::engine::markets`]' and the records'
//! stakeholder tallies; the strengths and trends at another time are [`crate::engine::trends`]'; this module maps
//! arguments and results.
//!
//! Privacy: a caller who sees private stakeholders masked gets an overview without them, as its listings are: a
//! private stakeholder is not counted or ranked, nor is a relationship with a private end.

use super::aggregates::{bars, snapshot_trends, strengths_at, KeyCount};
use super::auth::{Caller, Need};
use super::enums::Market;
use super::error::{ApiError, ApiResult};
use super::influence::Analysis;
use super::stakeholders::{load_stakeholder, StakeholderNode};
use super::ApiContext;
use crate::domain::strength::TREND_DAYS;
use crate::domain::{self, StakeholderId};
use crate::engine::aggregates::StakeholderTally;
use crate::engine::markets::{market_overview, MarketRelationships, OverviewInputs};
use async_graphql::{Context, Object};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// How far before the engine's clock `asOf` may go: the histories of every relationship active since then are read.
const MAX_PAST_DAYS: i64 = 366;

/// How close to the engine's clock an `asOf` is answered at the clock.
const SAME_AS_CLOCK_MINUTES: i64 = 10;

/// How far after it `asOf` may go.
const MAX_FUTURE_DAYS: i64 = 3_650;

/// One market as the engine counted it: its relationships, its stakeholders, and its most connected ones as
/// (stakeholder, strength-weighted degree).
type Counted = (MarketRelationships, Arc<StakeholderTally>, Vec<(StakeholderId, f64)>);

/// One of the six markets at a time.
pub struct MarketSummary {
    as_of: DateTime<Utc>,
    counted: Arc<Vec<Counted>>,
    index: usize,
    /// The most a ranking may hold (`limits.max_analysis_results`).
    max_ranked: usize,
}

impl MarketSummary {
    fn counted_relationships(&self) -> &MarketRelationships {
        &self.counted[self.index].0
    }

    fn stakeholder_tally(&self) -> &StakeholderTally {
        &self.counted[self.index].1
    }
}

#[Object]
impl MarketSummary {
    /// The market.
    async fn market(&self) -> Market {
        self.counted_relationships().market.into()
    }

    /// The time the strengths and trends are evaluated at.
    async fn as_of(&self) -> DateTime<Utc> {
        self.as_of
    }

    /// Live stakeholders taking part in the market.
    async fn stakeholders(&self) -> u64 {
        self.stakeholder_tally().count
    }

    /// Those stakeholders by kind.
    async fn stakeholders_by_kind(&self) -> Vec<KeyCount> {
        bars(domain::StakeholderKind::ALL, &self.stakeholder_tally().by_kind)
    }

    /// Those stakeholders by Mendelow quadrant.
    async fn by_mendelow(&self) -> Vec<KeyCount> {
        bars(domain::Mendelow::ALL, &self.stakeholder_tally().by_mendelow)
    }

    /// Relationships with an end in the market.
    async fn relationships(&self) -> u64 {
        self.counted_relationships().count
    }

    /// Their mean strength; null when there are none.
    async fn mean_strength(&self) -> Option<f64> {
        self.counted_relationships().mean_strength()
    }

    /// Their mean 30-day trend: the mean strength now minus the mean strength of the same relationships 30 days
    /// earlier (each as `strength.trend`); null when there are none.
    async fn strength_trend(&self) -> Option<f64> {
        self.counted_relationships().mean_trend()
    }

    /// How many at each Kotler level.
    async fn by_level(&self) -> Vec<KeyCount> {
        bars(domain::Level::ALL, &self.counted_relationships().by_level)
    }

    /// The share of its relationships tied by at least one bond, in [0, 1]; null when there are none.
    async fn bond_coverage(&self) -> Option<f64> {
        let summary = self.counted_relationships();
        (summary.count > 0).then(|| summary.bonded as f64 / summary.count as f64)
    }

    /// How many are tied by each bond (one relationship may have several).
    async fn by_bond(&self) -> Vec<KeyCount> {
        bars(domain::Bond::ALL, &self.counted_relationships().by_bond)
    }

    /// How many are weakening: their 30-day trend is below `weakeningBelow`.
    async fn weakening(&self) -> u64 {
        self.counted_relationships().weakening
    }

    /// The market's stakeholders with the highest strength-weighted degree (the sum of the strengths of their
    /// relationships counted here), highest first. For influence that spreads over paths, see `keyInfluencers`.
    async fn top_influencers(
        &self,
        #[graphql(default = 5, desc = "How many (0 to the configured limit of analysis results).")] first: i32,
    ) -> ApiResult<Vec<MarketInfluencer>> {
        if first < 0 {
            return Err(ApiError::bad_input("first", format!("{first} is negative; ask for 0 or more")));
        }
        if first as usize > self.max_ranked {
            return Err(ApiError::LimitExceeded {
                limit: "max_analysis_results",
                field: "first".to_owned(),
                message: format!("{first} is more than the limit of {} results; ask for fewer", self.max_ranked),
            });
        }
        Ok(self.counted[self.index]
            .2
            .iter()
            .take(first as usize)
            .enumerate()
            .map(|(index, (stakeholder, degree))| MarketInfluencer {
                stakeholder: *stakeholder,
                weighted_degree: *degree,
                position: index + 1,
            })
            .collect())
    }
}

/// A stakeholder ranked in its market.
pub struct MarketInfluencer {
    stakeholder: StakeholderId,
    weighted_degree: f64,
    position: usize,
}

#[Object]
impl MarketInfluencer {
    /// The stakeholder.
    async fn stakeholder(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.stakeholder).await
    }

    /// The sum of the strengths of its relationships counted in the market.
    async fn weighted_degree(&self) -> f64 {
        self.weighted_degree
    }

    /// Its place in the ranking, from 1.
    async fn position(&self) -> i32 {
        self.position as i32
    }
}

/// The query root's market overview.
#[derive(Default)]
pub struct MarketQuery;

#[Object]
impl MarketQuery {
    /// Each of the six markets at `asOf` (default: the engine's clock): its stakeholders (by kind and Mendelow
    /// quadrant), its relationships (those with an end in it) with their mean strength and its 30-day trend, Kotler
    /// levels, bonds, how many are weakening, and its most connected stakeholders. The graph as it is now, its
    /// strengths evaluated at `asOf` (as `strength(asOf:)` evaluates one relationship): at most 366 days back; within
    /// 10 minutes of the engine's clock, at the clock (the answers' `asOf` says which).
    /// Computed once per version of the graph; an analysis in the complexity model. Definitions in docs/models.md.
    #[graphql(guard = "Need::Read")]
    async fn market_overview(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "When (default: now, the engine's clock).")] as_of: Option<DateTime<Utc>>,
        #[graphql(
            default_with = "-0.05",
            desc = "A relationship whose 30-day trend is below this, in [-1, 1], is weakening."
        )]
        weakening_below: f64,
    ) -> ApiResult<Vec<MarketSummary>> {
        if !(-1.0..=1.0).contains(&weakening_below) {
            return Err(ApiError::bad_input(
                "weakeningBelow",
                format!("{weakening_below} is not in [-1, 1]; a trend is a difference of two strengths, e.g. -0.05"),
            ));
        }
        let analysis = Analysis::start(ctx).await?;
        let api = ctx.data_unchecked::<ApiContext>();
        let clock = analysis.snapshot.as_of();
        // A time within the decay sweep's interval of the engine's clock is the clock (as the analyses' "now" is): a
        // dashboard asking for "now" gets the memoised overview, not one evaluated afresh for each millisecond.
        let as_of =
            as_of.filter(|as_of| (*as_of - clock).abs() >= Duration::minutes(SAME_AS_CLOCK_MINUTES)).unwrap_or(clock);
        if as_of < clock - Duration::days(MAX_PAST_DAYS) || as_of > clock + Duration::days(MAX_FUTURE_DAYS) {
            return Err(ApiError::bad_input(
                "asOf",
                format!(
                    "{as_of} is more than {MAX_PAST_DAYS} days before or {MAX_FUTURE_DAYS} days after the engine's \
                     clock ({clock}); ask for a time between"
                ),
            ));
        }
        let hide_private = !Caller::of(ctx).sees_private();
        let engine = api.engine.clone();
        let records = engine.records().ok_or(ApiError::Unavailable)?;
        let max_ranked = api.limits.max_analysis_results;
        let key = format!(
            "market-overview {} weakening<{weakening_below} top={max_ranked} hide_private={hide_private}",
            as_of.timestamp_millis()
        );
        let summaries = |counted: Arc<Vec<Counted>>| {
            (0..counted.len())
                .map(|index| MarketSummary { as_of, counted: counted.clone(), index, max_ranked })
                .collect()
        };
        // Counted already on this snapshot: no history read, no analysis' turn.
        if let Some(counted) = engine.remembered::<Vec<Counted>>(&analysis.snapshot, &key) {
            return Ok(summaries(counted));
        }
        // At the engine's clock the snapshot's own strengths; at another time, every edge evaluated then.
        let (strengths, trends) = if as_of == clock {
            (None, snapshot_trends(&engine, &analysis).await?)
        } else {
            let before = as_of - Duration::days(TREND_DAYS);
            let (now, trends) = strengths_at(&engine, &analysis, as_of, Some(before)).await?;
            (Some(Arc::new(now)), Arc::new(trends.unwrap_or_default()))
        };
        let counted = analysis
            .run(move |snapshot, deadline| {
                engine.memoized(snapshot, &key, || {
                    let inputs = OverviewInputs {
                        strengths: strengths.as_deref().map(Vec::as_slice),
                        trends: &trends,
                        weakening_below: weakening_below as f32,
                        top: max_ranked,
                        hide_private,
                    };
                    let overview = market_overview(snapshot, inputs, Some(deadline))?;
                    let stakeholders = records.market_tallies(hide_private);
                    let counted = overview.into_iter().zip(stakeholders.iter()).map(|(summary, tally)| {
                        let ranked = summary
                            .most_connected
                            .iter()
                            .map(|(node, degree)| (snapshot.stakeholder(*node), *degree))
                            .collect::<Vec<_>>();
                        (summary, Arc::new(tally.clone()), ranked)
                    });
                    Some(counted.collect::<Vec<Counted>>())
                })
            })
            .await?;
        Ok(summaries(counted))
    }
}

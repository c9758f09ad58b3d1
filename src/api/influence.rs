//! Influence analyses in the API (DESIGN.md §4): strongest paths between two stakeholders, reach from one, and
//! the key influencers of the graph or of one market.
//!
//! Each runs on the engine's current snapshot on a blocking thread (never on the async workers), within the
//! configured hop, result and time limits; a request past them gets `LIMIT_EXCEEDED`. Stakeholders are resolved
//! through the DataLoader, so private ones on a path are masked for callers who may not see them.

use super::auth::Need;
use super::enums::{to_domain, Market, StakeholderKind};
use super::error::{ApiError, ApiResult};
use super::ids::stakeholder_id;
use super::loaders::Loaders;
use super::relationships::Relationship;
use super::stakeholders::{load_stakeholder, StakeholderNode};
use super::ApiContext;
use crate::domain::{self, MarketSet, RelationshipId, StakeholderId};
use crate::engine::analysis::{pagerank, Flow, Via, Walk};
use crate::engine::paths::{reach_with, strongest_paths_with, Search};
use crate::engine::Snapshot;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Damping of PageRank.
const DAMPING: f64 = 0.85;
/// PageRank stops when a sweep changes the ranks by less than this (L1).
const PAGERANK_TOLERANCE: f64 = 1e-9;

/// Which way influence travels over a relationship.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum InfluenceDirection {
    /// Along relationships, from their `from` end to their `to` end.
    Outgoing,
    /// Against relationships, from their `to` end back to their `from` end.
    Incoming,
    /// Both ways: a relationship is a two-way channel.
    #[default]
    Both,
}

impl From<InfluenceDirection> for Flow {
    fn from(direction: InfluenceDirection) -> Self {
        match direction {
            InfluenceDirection::Outgoing => Flow::Forward,
            InfluenceDirection::Incoming => Flow::Backward,
            InfluenceDirection::Both => Flow::Both,
        }
    }
}

/// Which stakeholders influence may pass through on its way (the two ends are always allowed). Both lists
/// empty or absent: anyone.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ViaFilter {
    /// Only stakeholders of these kinds.
    kinds: Option<Vec<StakeholderKind>>,
    /// Only stakeholders in at least one of these markets.
    markets: Option<Vec<Market>>,
}

impl From<Option<ViaFilter>> for Via {
    fn from(filter: Option<ViaFilter>) -> Self {
        let filter = filter.unwrap_or_default();
        Via {
            kinds: to_domain(&filter.kinds.unwrap_or_default()),
            markets: MarketSet::of(to_domain::<Market, domain::Market>(&filter.markets.unwrap_or_default())),
        }
    }
}

/// One hop of an influence path.
pub struct InfluenceStep {
    from: StakeholderId,
    to: StakeholderId,
    relationship: RelationshipId,
    strength: f64,
}

#[Object]
impl InfluenceStep {
    /// Where the hop starts.
    async fn from(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.from).await
    }

    /// Where it ends.
    async fn to(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.to).await
    }

    /// The relationship it runs over (the strongest between the two, when they have several).
    async fn relationship(&self, ctx: &Context<'_>) -> ApiResult<Option<Relationship>> {
        Ok(ctx.data_unchecked::<Loaders>().load_one(self.relationship).await?.map(Relationship))
    }

    /// The relationship's strength as of the analysis' `asOf`.
    async fn strength(&self) -> f64 {
        self.strength
    }
}

/// A chain of influence and what it carries.
#[derive(SimpleObject)]
pub struct InfluencePath {
    /// The product of its steps' strengths.
    score: f64,
    /// How many steps.
    hops: i32,
    /// The weakest step's strength.
    weakest_link: f64,
    /// The steps, from the source to the target.
    steps: Vec<InfluenceStep>,
}

/// The strongest paths between two stakeholders.
#[derive(SimpleObject)]
pub struct InfluencePaths {
    /// The time the strengths are evaluated at (within the engine's refresh interval of now).
    as_of: DateTime<Utc>,
    /// Strongest first; ties go to fewer hops, then to lower stakeholder ids along the path.
    paths: Vec<InfluencePath>,
}

/// A stakeholder reached from another, and how well.
pub struct Reached {
    stakeholder: StakeholderId,
    score: f64,
    hops: u32,
}

#[Object]
impl Reached {
    /// The stakeholder reached.
    async fn stakeholder(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.stakeholder).await
    }

    /// The best path score to it.
    async fn score(&self) -> f64 {
        self.score
    }

    /// Steps on that path.
    async fn hops(&self) -> i32 {
        self.hops as i32
    }
}

/// Everyone one stakeholder reaches.
#[derive(SimpleObject)]
pub struct InfluenceReach {
    /// The time the strengths are evaluated at.
    as_of: DateTime<Utc>,
    /// Strongest first.
    reached: Vec<Reached>,
}

/// A stakeholder ranked by influence.
pub struct Influencer {
    stakeholder: StakeholderId,
    score: f64,
    position: usize,
}

#[Object]
impl Influencer {
    /// The stakeholder.
    async fn stakeholder(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.stakeholder).await
    }

    /// Its PageRank (all scores of one ranking add up to 1).
    async fn score(&self) -> f64 {
        self.score
    }

    /// Its place in the ranking, from 1.
    async fn position(&self) -> i32 {
        self.position as i32
    }
}

/// The most influential stakeholders.
#[derive(SimpleObject)]
pub struct KeyInfluencers {
    /// The time the strengths are evaluated at.
    as_of: DateTime<Utc>,
    /// The market the ranking is personalised to, if any.
    market: Option<Market>,
    /// PageRank sweeps it took.
    iterations: i32,
    /// Most influential first; ties go to the lower stakeholder id.
    ranked: Vec<Influencer>,
}

/// The influence analyses.
#[derive(Default)]
pub struct InfluenceQuery;

#[Object]
impl InfluenceQuery {
    /// The `first` strongest loopless chains of influence from one stakeholder to another (Yen's algorithm). A
    /// chain's score is the product of its relationships' strengths; relationships weaker than `minStrength` are
    /// not followed.
    #[graphql(guard = "Need::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn influence_paths(
        &self,
        ctx: &Context<'_>,
        from: ID,
        to: ID,
        #[graphql(default = 3, desc = "How many paths (1 to the configured limit, 50 by default).")] first: i32,
        #[graphql(default = 4, desc = "Most steps per path (1 to the configured limit, 8 by default).")] max_hops: i32,
        #[graphql(default = 0.05, desc = "Weakest relationship worth following, in [0, 1].")] min_strength: f64,
        #[graphql(default)] direction: InfluenceDirection,
        #[graphql(desc = "Who the paths may pass through.")] via: Option<ViaFilter>,
    ) -> ApiResult<InfluencePaths> {
        let analysis = Analysis::start(ctx).await?;
        let first = analysis.results(first, "first")?;
        let max_hops = analysis.hops(max_hops)?;
        let min_strength = unit(min_strength, "minStrength")?;
        let (from_id, to_id) = (stakeholder_id(&from, "from")?, stakeholder_id(&to, "to")?);
        let snapshot = analysis.snapshot.clone();
        let (source, target) = (live(&snapshot, from_id, "from")?, live(&snapshot, to_id, "to")?);
        let (flow, via) = (Flow::from(direction), Via::from(via));
        let found = analysis
            .run(move |snapshot, deadline| {
                let walk = Walk::new(snapshot, flow, min_strength, &via);
                let mut search = Search::new(snapshot.node_count()).with_deadline(deadline);
                let paths = strongest_paths_with(&mut search, &walk, source, target, first, max_hops);
                if search.exhausted() {
                    return None;
                }
                Some(
                    paths
                        .into_iter()
                        .map(|path| {
                            let steps: Vec<InfluenceStep> = path
                                .nodes
                                .windows(2)
                                .map(|pair| {
                                    let (edge, strength) = walk.edge(pair[0], pair[1]).expect("a found path's link");
                                    InfluenceStep {
                                        from: snapshot.stakeholder(pair[0]),
                                        to: snapshot.stakeholder(pair[1]),
                                        relationship: snapshot.relationship(edge),
                                        strength,
                                    }
                                })
                                .collect();
                            let weakest_link = steps.iter().map(|step| step.strength).fold(1.0, f64::min);
                            InfluencePath { score: path.score, hops: steps.len() as i32, weakest_link, steps }
                        })
                        .collect::<Vec<_>>(),
                )
            })
            .await?;
        Ok(InfluencePaths { as_of: analysis.snapshot.as_of(), paths: found })
    }

    /// The best path score from one stakeholder to every stakeholder it reaches within `maxHops`, strongest
    /// first, down to `minScore`.
    #[graphql(guard = "Need::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn influence_reach(
        &self,
        ctx: &Context<'_>,
        from: ID,
        #[graphql(default = 3, desc = "Most steps (1 to the configured limit, 8 by default).")] max_hops: i32,
        #[graphql(default = 0.1, desc = "Leave out stakeholders reached with a lower score, in [0, 1].")]
        min_score: f64,
        #[graphql(default = 20, desc = "How many stakeholders (1 to the configured limit, 50 by default).")] first: i32,
        #[graphql(default = 0.05, desc = "Weakest relationship worth following, in [0, 1].")] min_strength: f64,
        #[graphql(default)] direction: InfluenceDirection,
        #[graphql(desc = "Who the paths may pass through.")] via: Option<ViaFilter>,
    ) -> ApiResult<InfluenceReach> {
        let analysis = Analysis::start(ctx).await?;
        let first = analysis.results(first, "first")?;
        let max_hops = analysis.hops(max_hops)?;
        let min_score = unit(min_score, "minScore")?;
        let min_strength = unit(min_strength, "minStrength")?;
        let source = live(&analysis.snapshot, stakeholder_id(&from, "from")?, "from")?;
        let (flow, via) = (Flow::from(direction), Via::from(via));
        let reached = analysis
            .run(move |snapshot, deadline| {
                let walk = Walk::new(snapshot, flow, min_strength, &via);
                let mut search = Search::new(snapshot.node_count()).with_deadline(deadline);
                let reached = reach_with(&mut search, &walk, source, max_hops, min_score, first);
                (!search.exhausted()).then(|| {
                    reached
                        .into_iter()
                        .map(|(node, score, hops)| Reached { stakeholder: snapshot.stakeholder(node), score, hops })
                        .collect::<Vec<_>>()
                })
            })
            .await?;
        Ok(InfluenceReach { as_of: analysis.snapshot.as_of(), reached })
    }

    /// The most influential stakeholders by weighted PageRank (damping 0.85, weight = relationship strength,
    /// influence flowing both ways), optionally personalised to one market: then the random surfer restarts only
    /// at that market's stakeholders, so the ranking shows who carries influence into and within it.
    #[graphql(guard = "Need::Read")]
    async fn key_influencers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Personalise to this market.")] market: Option<Market>,
        #[graphql(default = 10, desc = "How many (1 to the configured limit, 50 by default).")] first: i32,
        #[graphql(default = 0.05, desc = "Weakest relationship counted, in [0, 1].")] min_strength: f64,
    ) -> ApiResult<KeyInfluencers> {
        let analysis = Analysis::start(ctx).await?;
        let first = analysis.results(first, "first")?;
        let min_strength = unit(min_strength, "minStrength")?;
        let in_market = market.map(domain::Market::from);
        let (ranked, iterations) = analysis
            .run(move |snapshot, deadline| {
                let walk = Walk::new(snapshot, Flow::Both, min_strength, &Via::default());
                let teleport: Vec<u32> = match in_market {
                    Some(market) => (0..snapshot.node_count() as u32)
                        .filter(|&node| snapshot.markets(node).contains(market))
                        .collect(),
                    None => Vec::new(),
                };
                if in_market.is_some() && teleport.is_empty() {
                    return Some((Vec::new(), 0));
                }
                let ranks = pagerank(&walk, DAMPING, PAGERANK_TOLERANCE, &teleport, 1_000, Some(deadline))?;
                let mut order: Vec<u32> = (0..snapshot.node_count() as u32).collect();
                order.sort_unstable_by(|a, b| {
                    ranks.values[*b as usize].total_cmp(&ranks.values[*a as usize]).then(a.cmp(b))
                });
                let ranked = order
                    .into_iter()
                    .take(first)
                    .enumerate()
                    .map(|(position, node)| Influencer {
                        stakeholder: snapshot.stakeholder(node),
                        score: ranks.values[node as usize],
                        position: position + 1,
                    })
                    .collect::<Vec<_>>();
                Some((ranked, ranks.iterations as i32))
            })
            .await?;
        Ok(KeyInfluencers { as_of: analysis.snapshot.as_of(), market, iterations, ranked })
    }
}

/// One analysis request: the snapshot it runs on and the limits it runs within.
struct Analysis {
    snapshot: Arc<Snapshot>,
    max_hops: usize,
    max_results: usize,
    budget: Duration,
}

impl Analysis {
    async fn start(ctx: &Context<'_>) -> ApiResult<Self> {
        let api = ctx.data_unchecked::<ApiContext>();
        let snapshot = api.engine.snapshot().await.map_err(|error| {
            tracing::error!(%error, "the projection is not available");
            ApiError::Unavailable
        })?;
        let limits = &api.limits;
        Ok(Self {
            snapshot,
            max_hops: limits.max_hops,
            max_results: limits.max_analysis_results,
            budget: Duration::from_millis(limits.analysis_budget_ms),
        })
    }

    fn hops(&self, max_hops: i32) -> ApiResult<usize> {
        bounded(max_hops, self.max_hops, "maxHops", "steps")
    }

    fn results(&self, first: i32, field: &str) -> ApiResult<usize> {
        bounded(first, self.max_results, field, "results")
    }

    /// Runs `work` on a blocking thread; `work` returns `None` when it ran past the deadline.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Snapshot, Instant) -> Option<T> + Send + 'static,
    ) -> ApiResult<T> {
        let snapshot = self.snapshot.clone();
        let deadline = Instant::now() + self.budget;
        let outcome = tokio::task::spawn_blocking(move || work(&snapshot, deadline)).await.map_err(|error| {
            tracing::error!(%error, "an analysis failed");
            ApiError::Internal
        })?;
        outcome.ok_or_else(|| ApiError::LimitExceeded {
            field: String::new(),
            message: format!(
                "the analysis ran past its time budget of {} ms; narrow it (fewer hops or results, a higher \
                 minStrength or minScore, a `via` filter)",
                self.budget.as_millis()
            ),
        })
    }
}

/// `value` as a count in 1..=`limit`.
fn bounded(value: i32, limit: usize, field: &str, what: &str) -> ApiResult<usize> {
    if value < 1 {
        return Err(ApiError::bad_input(field, format!("{value} is not positive; ask for 1 to {limit} {what}")));
    }
    if value as usize > limit {
        return Err(ApiError::LimitExceeded {
            field: field.to_owned(),
            message: format!("{value} is more than the limit of {limit} {what}; ask for at most {limit}"),
        });
    }
    Ok(value as usize)
}

/// `value` if it is in [0, 1].
fn unit(value: f64, field: &str) -> ApiResult<f64> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::bad_input(field, format!("{value} is not between 0 and 1")))
    }
}

/// The node of stakeholder `id`, which must be live.
fn live(snapshot: &Snapshot, id: StakeholderId, field: &str) -> ApiResult<u32> {
    snapshot.index_of(id).ok_or_else(|| {
        ApiError::bad_input(
            field,
            format!("no live stakeholder has id {id}; archived stakeholders take no part in influence"),
        )
    })
}

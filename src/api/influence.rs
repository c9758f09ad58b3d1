//! Influence analyses in the API (docs/models.md, "Influence"): strongest paths between two stakeholders, reach from one, and
//! the key influencers of the graph or of one market.
//!
//! Each runs on the engine's current snapshot on a blocking thread (never on the async workers), within the
//! configured hop, result and time limits; a request past them gets `LIMIT_EXCEEDED`. For a caller who may not
//! see private stakeholders, every analysis runs on the public part of the graph (the walk hides private
//! stakeholders and their relationships): no path passes through or ends at one, no ranking lists one, and one
//! named as an argument answers like an unknown id (the README's privacy policy).

use super::admission::{Admission, Spender};
use super::auth::{Caller, KeyId, Need};
use super::changes;
use super::enums::{to_domain, Market, StakeholderKind};
use super::error::{ApiError, ApiResult};
use super::ids::stakeholder_id;
use super::relationships::{load_relationship, Relationship};
use super::stakeholders::{load_stakeholder, StakeholderNode};
use super::ApiLimits;
use super::{ApiContext, Deadline};
use crate::domain::{self, MarketSet, RelationshipId, StakeholderId};
use crate::engine::analysis::{key_influencers, Flow, PathStep, Ranks, Via, Walk, WalkedPath};
use crate::engine::broker_ranking::{self, BrokerRanking, BrokersRequest, RankedBroker, Sampling};
use crate::engine::estimates::EstimateSettings;
use crate::engine::paths::{reach_with, strongest_paths_with, Search};
use crate::engine::risk::{is_staff, key_person_report};
use crate::engine::Snapshot;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `minStrength` of the default `brokers` ranking, the one estimated in the background.
const BROKERS_MIN_STRENGTH: f64 = 0.05;
/// Places at the top of the `brokers` ranking a background estimate settles.
const BROKERS_SETTLED: usize = 10;
/// Standard errors that must separate neighbouring places of a settled ranking (bench/brokers.rs).
const BROKERS_Z: f64 = 3.0;
/// Chunks of sources before a background estimate may stop.
const BROKERS_MIN_CHUNKS: usize = 8;

/// How background estimates of `brokers` run under `limits`: chunks of `betweenness_samples` sources on as many
/// threads as analyses may use at once, up to `betweenness_max_sources`.
pub(super) fn estimate_settings(limits: &ApiLimits) -> EstimateSettings {
    EstimateSettings {
        min_strength: BROKERS_MIN_STRENGTH,
        seed: limits.betweenness_seed,
        chunk: limits.betweenness_samples,
        min_sources: limits.betweenness_samples * BROKERS_MIN_CHUNKS,
        max_sources: limits.betweenness_max_sources,
        top: BROKERS_SETTLED,
        z: BROKERS_Z,
        threads: limits.max_concurrent_analyses,
    }
}

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
        load_relationship(ctx, self.relationship).await
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

impl From<PathStep> for InfluenceStep {
    fn from(step: PathStep) -> Self {
        Self { from: step.from, to: step.to, relationship: step.relationship, strength: step.strength }
    }
}

impl From<WalkedPath> for InfluencePath {
    fn from(path: WalkedPath) -> Self {
        Self {
            score: path.score,
            hops: path.steps.len() as i32,
            weakest_link: path.weakest_link,
            steps: path.steps.into_iter().map(Into::into).collect(),
        }
    }
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
        let hide = hides_private(ctx);
        let (source, target) = (live(&snapshot, from_id, "from", hide)?, live(&snapshot, to_id, "to", hide)?);
        let (flow, via) = (Flow::from(direction), Via::from(via));
        let found = analysis
            .run(move |snapshot, deadline| {
                let walk = Walk::new(snapshot, flow, min_strength, &via).hiding_private(hide);
                let mut search = Search::new(snapshot.node_count()).with_deadline(deadline);
                let paths = strongest_paths_with(&mut search, &walk, source, target, first, max_hops);
                if search.exhausted() {
                    return None;
                }
                Some(paths.iter().map(|path| InfluencePath::from(WalkedPath::of(&walk, path))).collect::<Vec<_>>())
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
        let hide = hides_private(ctx);
        let source = live(&analysis.snapshot, stakeholder_id(&from, "from")?, "from", hide)?;
        let (flow, via) = (Flow::from(direction), Via::from(via));
        let reached = analysis
            .run(move |snapshot, deadline| {
                let walk = Walk::new(snapshot, flow, min_strength, &via).hiding_private(hide);
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
        let engine = ctx.data_unchecked::<ApiContext>().engine.clone();
        let hide = hides_private(ctx);
        let (ranked, iterations) = analysis
            .run(move |snapshot, deadline| {
                let walk = Walk::new(snapshot, Flow::Both, min_strength, &Via::default()).hiding_private(hide);
                let key = format!("pagerank {in_market:?} {min_strength} hide_private={hide}");
                let memoized = |compute: &dyn Fn() -> Option<Ranks>| engine.memoized(snapshot, &key, compute);
                let found = key_influencers(&walk, in_market, first, Some(deadline), memoized)?;
                let ranked = found
                    .ranked
                    .into_iter()
                    .enumerate()
                    .map(|(position, (node, score))| Influencer {
                        stakeholder: snapshot.stakeholder(node),
                        score,
                        position: position + 1,
                    })
                    .collect::<Vec<_>>();
                Some((ranked, found.iterations as i32))
            })
            .await?;
        Ok(KeyInfluencers { as_of: analysis.snapshot.as_of(), market, iterations, ranked })
    }
}

/// A stakeholder on many of the strongest paths between others.
pub struct Broker {
    stakeholder: StakeholderId,
    score: f64,
    position: usize,
    bridges: MarketSet,
}

impl Broker {
    /// `broker` at `position` (from 1).
    fn ranked(broker: RankedBroker, position: usize) -> Self {
        Self { stakeholder: broker.stakeholder, score: broker.score, position, bridges: broker.bridges }
    }
}

#[Object]
impl Broker {
    /// The stakeholder.
    async fn stakeholder(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.stakeholder).await
    }

    /// Weighted betweenness: how many strongest paths between pairs of other stakeholders run through it
    /// (each pair counted once; an estimate scaled from the sampled sources on large graphs).
    async fn score(&self) -> f64 {
        self.score
    }

    /// Its place in the ranking, from 1.
    async fn position(&self) -> i32 {
        self.position as i32
    }

    /// The markets of the stakeholders it is directly related to: the markets it bridges.
    async fn bridges(&self) -> Vec<Market> {
        self.bridges.iter().map(Market::from).collect()
    }
}

/// The brokers of the graph.
#[derive(SimpleObject)]
pub struct Brokers {
    /// The time the strengths are evaluated at, in the snapshot the ranking was computed on.
    as_of: DateTime<Utc>,
    /// Where in the change log that snapshot stands: the ranking reflects every change up to this `changes` cursor
    /// (a background estimate may be a few changes behind the latest).
    as_of_cursor: String,
    /// True when every stakeholder was a source (exact betweenness); false when sources were sampled.
    exact: bool,
    /// True when the top 10 is settled: exact, or estimated from enough sources that each of its places stands
    /// apart from the next by several standard errors (another sample would give the same top 10); false for a
    /// quick sample, or an estimate that reached the configured cap of sources first.
    stable: bool,
    /// How many sources the betweenness was computed from (sources are stakeholders the caller may see).
    sources: i32,
    /// Highest betweenness first; ties go to the lower stakeholder id.
    ranked: Vec<Broker>,
}

impl From<BrokerRanking> for Brokers {
    fn from(ranking: BrokerRanking) -> Self {
        Self {
            as_of: ranking.as_of,
            as_of_cursor: changes::encode(ranking.seq),
            exact: ranking.exact,
            stable: ranking.stable,
            sources: ranking.sources as i32,
            ranked: ranking.ranked.into_iter().enumerate().map(|(at, broker)| Broker::ranked(broker, at + 1)).collect(),
        }
    }
}

/// A stakeholder the firm would reach less well without one employee.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ReachLoss {
    #[graphql(skip)]
    stakeholder: StakeholderId,
    /// The firm's best path score to it from any employee.
    before: f64,
    /// The best score without the employee (0: no longer reached above `minScore`).
    after: f64,
    /// `before − after`.
    loss: f64,
}

#[async_graphql::ComplexObject]
impl ReachLoss {
    /// The stakeholder.
    async fn stakeholder(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.stakeholder).await
    }
}

/// What one market loses.
#[derive(SimpleObject)]
pub struct MarketLoss {
    /// The market.
    market: Market,
    /// The sum of the losses of its stakeholders.
    loss: f64,
    /// How many of its stakeholders lose.
    stakeholders: i32,
}

/// How much of the firm's reach rests on one employee.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct KeyPersonRisk {
    /// The time the strengths are evaluated at.
    as_of: DateTime<Utc>,
    #[graphql(skip)]
    employee: StakeholderId,
    /// How many stakeholders the firm reaches less well without them.
    affected: i32,
    /// The sum of all losses.
    total_loss: f64,
    /// The biggest losses, biggest first (ties: lower stakeholder id).
    losses: Vec<ReachLoss>,
    /// The losses by market (a stakeholder in several markets counts in each), biggest first.
    by_market: Vec<MarketLoss>,
}

#[async_graphql::ComplexObject]
impl KeyPersonRisk {
    /// The employee.
    async fn employee(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.employee).await
    }
}

/// The analyses of brokers and of key-person risk.
#[derive(Default)]
pub struct RiskQuery;

#[Object]
impl RiskQuery {
    /// The stakeholders that broker the most influence: weighted betweenness over the strongest paths (influence
    /// flowing both ways), exact below a configured graph size and estimated from sampled sources above it, with
    /// the markets each one bridges. On a large graph the default ranking (`minStrength` 0.05) comes from a
    /// background estimate that samples sources until its top 10 is settled (`stable`), computed on the snapshot
    /// named by `asOf` and `asOfCursor`, which may be older than the latest change; until the first such
    /// estimate has finished, and for any other `minStrength`, a fixed-seed sample of a few sources answers.
    #[graphql(guard = "Need::Read")]
    async fn brokers(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10, desc = "How many (1 to the configured limit, 50 by default).")] first: i32,
        #[graphql(desc = "Only brokers related to stakeholders in every one of these markets.")] markets: Option<
            Vec<Market>,
        >,
        #[graphql(default = 0.05, desc = "Weakest relationship followed, in [0, 1].")] min_strength: f64,
    ) -> ApiResult<Brokers> {
        let analysis = Analysis::start(ctx).await?;
        let first = analysis.results(first, "first")?;
        let min_strength = unit(min_strength, "minStrength")?;
        let wanted = MarketSet::of(to_domain::<Market, domain::Market>(&markets.unwrap_or_default()));
        let request = BrokersRequest { min_strength, wanted, first, hide_private: hides_private(ctx) };
        let api = ctx.data_unchecked::<ApiContext>();
        let (engine, estimates) = (api.engine.clone(), api.brokers.clone());
        let sampling = Sampling {
            exact_below: api.limits.betweenness_exact_below,
            samples: api.limits.betweenness_samples,
            seed: api.limits.betweenness_seed,
        };
        let current = analysis.snapshot.clone();
        let ranking = analysis
            .run(move |_, deadline| {
                broker_ranking::answer(&engine, &estimates, &current, &request, &sampling, deadline)
            })
            .await?;
        Ok(Brokers::from(ranking))
    }

    /// What the firm loses if one employee leaves: its best path score to every stakeholder from any employee
    /// (staff, not candidates), with and without them; the biggest losses and the total by market. Relying on
    /// one person's contacts is the classic weakness of personal-contact relationship marketing.
    #[graphql(guard = "Need::Read")]
    async fn key_person_risk(
        &self,
        ctx: &Context<'_>,
        employee: ID,
        #[graphql(default = 10, desc = "How many losses to list (1 to the configured limit, 50 by default).")]
        first: i32,
        #[graphql(default = 0.01, desc = "Scores below this count as not reached, in [0, 1].")] min_score: f64,
        #[graphql(default = 0.05, desc = "Weakest relationship followed, in [0, 1].")] min_strength: f64,
    ) -> ApiResult<KeyPersonRisk> {
        let analysis = Analysis::start(ctx).await?;
        let first = analysis.results(first, "first")?;
        let min_score = unit(min_score, "minScore")?;
        let min_strength = unit(min_strength, "minStrength")?;
        let employee_id = stakeholder_id(&employee, "employee")?;
        let snapshot = analysis.snapshot.clone();
        let hide = hides_private(ctx);
        let node = live(&snapshot, employee_id, "employee", hide)?;
        if !is_staff(&snapshot, node) {
            return Err(ApiError::bad_input(
                "employee",
                format!("stakeholder {employee_id} is not a member of staff; pass an employee who is not a candidate"),
            ));
        }
        let (losses, by_market, affected, total_loss) = analysis
            .run(move |snapshot, deadline| {
                let walk = Walk::new(snapshot, Flow::Both, min_strength, &Via::default()).hiding_private(hide);
                let report = key_person_report(&walk, node, min_score, Some(deadline))?;
                let listed = report
                    .losses
                    .iter()
                    .take(first)
                    .map(|loss| ReachLoss {
                        stakeholder: snapshot.stakeholder(loss.node),
                        before: loss.before,
                        after: loss.after,
                        loss: loss.lost(),
                    })
                    .collect::<Vec<_>>();
                let by_market = report
                    .by_market
                    .iter()
                    .map(|(market, loss, count)| MarketLoss {
                        market: (*market).into(),
                        loss: *loss,
                        stakeholders: *count as i32,
                    })
                    .collect::<Vec<_>>();
                Some((listed, by_market, report.losses.len() as i32, report.total_loss))
            })
            .await?;
        Ok(KeyPersonRisk {
            as_of: analysis.snapshot.as_of(),
            employee: employee_id,
            affected,
            total_loss,
            losses,
            by_market,
        })
    }
}

/// One analysis request: the snapshot it runs on and the limits it runs within.
pub(super) struct Analysis {
    pub(super) snapshot: Arc<Snapshot>,
    max_hops: usize,
    max_results: usize,
    budget: Duration,
    admission: Arc<Admission>,
    spender: Spender,
    /// The request's deadline (none for a request made without one, as in-process tests do).
    deadline: Option<Instant>,
    /// Whether a pass of it was charged to the spender's analysis rate already.
    charged: std::sync::atomic::AtomicBool,
    /// When its budget ends, once it started computing ([`Analysis::budget_end`]).
    budget_end: std::sync::OnceLock<Instant>,
}

impl Analysis {
    pub(super) async fn start(ctx: &Context<'_>) -> ApiResult<Self> {
        let api = ctx.data_unchecked::<ApiContext>();
        let snapshot = api.engine.load().await.map_err(|error| {
            tracing::error!(%error, "the projection is not available");
            ApiError::Unavailable
        })?;
        let limits = &api.limits;
        Ok(Self {
            snapshot,
            max_hops: limits.max_hops,
            max_results: limits.max_analysis_results,
            budget: Duration::from_millis(limits.analysis_budget_ms),
            admission: api.admission.clone(),
            spender: ctx.data_opt::<KeyId>().copied(),
            deadline: ctx.data_opt::<Deadline>().map(|deadline| deadline.0),
            charged: Default::default(),
            budget_end: Default::default(),
        })
    }

    fn hops(&self, max_hops: i32) -> ApiResult<usize> {
        bounded(max_hops, (self.max_hops, "max_hops"), "maxHops", "steps")
    }

    pub(super) fn results(&self, first: i32, field: &str) -> ApiResult<usize> {
        bounded(first, (self.max_results, "max_analysis_results"), field, "results")
    }

    /// Waits for a turn (admission control), then runs `work` on a thread of its own below the request threads
    /// (`Admission::compute`), holding the turn until it is done even if the request is dropped meanwhile; `work`
    /// returns `None` when it ran past the deadline: the analysis budget or the request's deadline, whichever comes
    /// first.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Snapshot, Instant) -> Option<T> + Send + 'static,
    ) -> ApiResult<T> {
        let request_deadline = self.deadline.unwrap_or_else(|| Instant::now() + self.budget);
        // One analysis field is one analysis of the key's rate, however many passes it makes.
        let charge = !self.charged.swap(true, std::sync::atomic::Ordering::AcqRel);
        let turn = self.admission.analysis(self.spender, request_deadline, charge).await?;
        let snapshot = self.snapshot.clone();
        let deadline = self.budget_end().min(request_deadline);
        let outcome = self.admission.compute(turn, move || work(&snapshot, deadline)).await?;
        outcome.ok_or_else(|| self.overrun(deadline < request_deadline))
    }

    /// When the analysis must be done: the end of its budget or the request's deadline, whichever comes first.
    pub(super) fn deadline(&self) -> Instant {
        let budget = self.budget_end();
        self.deadline.map_or(budget, |deadline| deadline.min(budget))
    }

    /// The end of the analysis budget, which starts when the analysis first computes or reads (its first turn):
    /// the passes and reads of one analysis share one budget.
    fn budget_end(&self) -> Instant {
        *self.budget_end.get_or_init(|| Instant::now() + self.budget)
    }

    /// The refusal of an analysis that ran past its deadline: the analysis budget (`budget_first`) or the request's.
    pub(super) fn overrun(&self, budget_first: bool) -> ApiError {
        ApiError::Refused {
            limit: if budget_first { "analysis_budget_ms" } else { "request_timeout_ms" },
            message: if budget_first {
                format!(
                    "the analysis ran past its time budget of {} ms (limits.analysis_budget_ms); narrow it (fewer \
                     hops or results, a higher minStrength or minScore, a `via` filter)",
                    self.budget.as_millis()
                )
            } else {
                "the analysis ran until the request's deadline (limits.request_timeout_ms); narrow it (fewer hops \
                 or results, a higher minStrength or minScore, a `via` filter), or retry when the service is less \
                 busy"
                    .to_owned()
            },
            retry_after: None,
        }
    }
}

/// `value` as a count in 1..=`limit`.
fn bounded(value: i32, (limit, setting): (usize, &'static str), field: &str, what: &str) -> ApiResult<usize> {
    if value < 1 {
        return Err(ApiError::bad_input(field, format!("{value} is not positive; ask for 1 to {limit} {what}")));
    }
    if value as usize > limit {
        return Err(ApiError::LimitExceeded {
            limit: setting,
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

/// Whether the analyses of the request `ctx` belongs to run on the public part of the graph only.
fn hides_private(ctx: &Context<'_>) -> bool {
    !Caller::of(ctx).sees_private()
}

/// The node of stakeholder `id`, which must be live, and public when `hide_private`: a private one answers
/// exactly like an id that does not exist.
fn live(snapshot: &Snapshot, id: StakeholderId, field: &str, hide_private: bool) -> ApiResult<u32> {
    snapshot.index_of(id).filter(|&node| !(hide_private && snapshot.is_private(node))).ok_or_else(|| {
        ApiError::bad_input(
            field,
            format!("no live stakeholder has id {id}; archived stakeholders take no part in influence"),
        )
    })
}

//! Aggregates for charts: `StakeholderConnection.aggregate`, and the graph's relationships as one listing
//! (`relationships(filter, orderBy, first, after)`) with its own `aggregate`. The counting is
//! [`crate::engine::aggregates`]'; this module maps arguments and results.
//!
//! Privacy: a caller who sees private stakeholders masked gets aggregates without them, as its listings are: a
//! private stakeholder is not counted, nor is a relationship with a private end, so no bucket moves by one when a
//! private stakeholder is created or linked.

use super::auth::Caller;
use super::enums::{to_domain, Level, Market, RelationshipType, StakeholderKind};
use super::error::{ApiError, ApiResult};
use super::ids::{damaged_cursor, decode_key_cursor, encode_key_cursor};
use super::influence::Analysis;
use super::paging::PageRequest;
use super::relationships::{load_relationship, Relationship};
use super::ApiContext;
use crate::domain::{self, MarketSet, RelationshipId};
use crate::engine::aggregates::{
    page_relationships, tally_relationships, EdgeKey, EdgeOrder, EdgeSpan, RelationshipCriteria, RelationshipTally,
    StakeholderTally,
};
use crate::engine::{trends, Engine};
use crate::store::StakeholderFilter;
use async_graphql::connection::{Connection, ConnectionNameType, Edge, EdgeNameType, EmptyFields};
use async_graphql::{Context, Enum, InputObject, Object, OutputType, SimpleObject};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Most buckets a strength histogram may have.
const MAX_BUCKETS: i32 = 100;

/// One bar of a chart: a category and how many fall in it.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct KeyCount {
    /// The category, as the schema's enum spells it (`CUSTOMER`, `MANAGE_CLOSELY`, …).
    pub key: String,
    /// How many.
    pub count: u64,
}

/// Every category of `keys` with its count, zeros included, so that a chart's axis is always complete.
pub(super) fn bars<T: std::fmt::Display>(keys: &[T], counts: &[u64]) -> Vec<KeyCount> {
    keys.iter().zip(counts).map(|(key, count)| KeyCount { key: key.to_string(), count: *count }).collect()
}

/// What a stakeholder listing holds besides its page.
pub struct StakeholderListing {
    /// Its `totalCount`.
    pub total_count: u64,
    /// The filter it lists by (with the caller's privacy applied).
    pub filter: StakeholderFilter,
}

#[Object]
impl StakeholderListing {
    /// How many stakeholders the whole listing holds (all pages).
    async fn total_count(&self) -> u64 {
        self.total_count
    }

    /// Counts over the whole listing (all pages, the same filter), for charts. Counted in memory once per version
    /// of the graph; an analysis in the complexity model.
    async fn aggregate(&self, ctx: &Context<'_>) -> ApiResult<StakeholderAggregate> {
        let analysis = Analysis::start(ctx).await?;
        let records = ctx.data_unchecked::<ApiContext>().engine.records().ok_or(ApiError::Unavailable)?;
        // Counted already on this version of the graph: no analysis' turn for a lookup.
        if let Some(tally) = records.aggregated(&self.filter) {
            return Ok(StakeholderAggregate(tally));
        }
        let filter = self.filter.clone();
        let tally = analysis.run(move |_, _| Some(records.aggregate(&filter))).await?;
        Ok(StakeholderAggregate(tally))
    }
}

/// Counts over a stakeholder listing. A stakeholder in several markets counts in each.
pub struct StakeholderAggregate(Arc<StakeholderTally>);

#[Object]
impl StakeholderAggregate {
    /// How many stakeholders.
    async fn count(&self) -> u64 {
        self.0.count
    }

    /// How many of each kind.
    async fn by_kind(&self) -> Vec<KeyCount> {
        bars(domain::StakeholderKind::ALL, &self.0.by_kind)
    }

    /// How many take part in each of the six markets (one stakeholder may count in several).
    async fn by_market(&self) -> Vec<KeyCount> {
        bars(domain::Market::ALL, &self.0.by_market)
    }

    /// How many customers have each lifecycle status (other kinds have none).
    async fn by_status(&self) -> Vec<KeyCount> {
        bars(domain::CustomerStatus::ALL, &self.0.by_status)
    }

    /// How many are in each Mendelow quadrant.
    async fn by_mendelow(&self) -> Vec<KeyCount> {
        bars(domain::Mendelow::ALL, &self.0.by_mendelow)
    }

    /// Mean customer perceived value per segment, over the customers with their perceived value recorded (segments
    /// by name, customers without a segment last, under a null `segment`).
    async fn cpv_by_segment(&self) -> Vec<SegmentCpv> {
        let mut segments: Vec<SegmentCpv> = self
            .0
            .cpv_by_segment
            .iter()
            .map(|(segment, (customers, sum))| SegmentCpv {
                segment: segment.clone(),
                customers: *customers,
                mean_cpv: sum / *customers as f64,
            })
            .collect();
        segments.sort_by(|a, b| (a.segment.is_none(), &a.segment).cmp(&(b.segment.is_none(), &b.segment)));
        segments
    }
}

/// The mean customer perceived value of one segment.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct SegmentCpv {
    /// The segment; null for customers without one.
    pub segment: Option<String>,
    /// Customers of the segment with their perceived value recorded.
    pub customers: u64,
    /// Their mean CPV.
    pub mean_cpv: f64,
}

/// Which of the graph's relationships to list; every given criterion must hold, a list matches any of its values.
#[derive(InputObject, Default, Debug)]
pub struct RelationshipListFilter {
    /// Either end takes part in one of these markets.
    pub markets: Option<Vec<Market>>,
    /// Of these types.
    pub types: Option<Vec<RelationshipType>>,
    /// At these Kotler levels.
    pub levels: Option<Vec<Level>>,
    /// Either end is of one of these kinds.
    pub kinds: Option<Vec<StakeholderKind>>,
    /// Strength at least this, in [0, 1] (as of the listing's `asOf`).
    pub min_strength: Option<f64>,
    /// Strength at most this, in [0, 1].
    pub max_strength: Option<f64>,
    /// 30-day trend (strength now minus 30 days earlier, as `strength.trend`) at least this, in [-1, 1].
    pub min_trend: Option<f64>,
    /// 30-day trend at most this, in [-1, 1]: `-0.05` lists the relationships weakening by at least 0.05.
    pub max_trend: Option<f64>,
}

/// Order of the graph's relationships; ties go to the lower id.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum RelationshipListOrder {
    /// Oldest record first.
    #[default]
    Id,
    /// Strongest first (as of the listing's `asOf`).
    StrengthDesc,
    /// Weakest first.
    StrengthAsc,
    /// Most strengthened over 30 days first (`strength.trend`).
    TrendDesc,
    /// Most weakened over 30 days first.
    TrendAsc,
}

impl From<RelationshipListOrder> for EdgeOrder {
    fn from(order: RelationshipListOrder) -> Self {
        match order {
            RelationshipListOrder::Id => EdgeOrder::Id,
            RelationshipListOrder::StrengthDesc => EdgeOrder::StrengthDesc,
            RelationshipListOrder::StrengthAsc => EdgeOrder::StrengthAsc,
            RelationshipListOrder::TrendDesc => EdgeOrder::TrendDesc,
            RelationshipListOrder::TrendAsc => EdgeOrder::TrendAsc,
        }
    }
}

/// A trend in [-1, 1] named `field`.
fn trend_bound(value: Option<f64>, field: &str) -> ApiResult<Option<f32>> {
    match value {
        Some(value) if !(-1.0..=1.0).contains(&value) => Err(ApiError::bad_input(
            field,
            format!("{value} is not in [-1, 1]; a trend is a difference of two strengths, e.g. -0.05"),
        )),
        value => Ok(value.map(|value| value as f32)),
    }
}

/// Every edge's strength at `at` on `analysis`' snapshot ([`trends::strengths_at`]), and, with `before`, every
/// edge's strength at `at` minus its strength at `before`: the histories they need are read first (the engine keeps
/// them), then the edges are evaluated as passes of the analysis. Not memoised (4 bytes an edge for each time asked:
/// the caller memoises what it makes of them).
pub(super) async fn strengths_at(
    engine: &Arc<Engine>,
    analysis: &Analysis,
    at: DateTime<Utc>,
    before: Option<DateTime<Utc>>,
) -> ApiResult<(Vec<f32>, Option<Vec<f32>>)> {
    let earliest = before.map_or(at, |before| before.min(at));
    let needing = analysis.run(move |snapshot, _| Some(trends::needing_history(snapshot, earliest))).await?;
    let windows = read_windows(engine, analysis, needing, earliest, false).await?;
    let engine = engine.clone();
    let evaluated = analysis
        .run(move |snapshot, deadline| {
            let evaluate = |time| trends::strengths_at(snapshot, engine.model(), time, &windows, Some(deadline));
            let evaluated = evaluate(at).and_then(|now| {
                let differences = before
                    .map(|before| {
                        evaluate(before).map(|then| now.iter().zip(&then).map(|(now, then)| now - then).collect())
                    })
                    .transpose()?;
                Ok((now, differences))
            });
            // Out of time: `None`, the analysis' overrun; a missing window: an error of the service.
            match evaluated {
                Err(trends::PastError::OutOfTime) => None,
                evaluated => Some(evaluated),
            }
        })
        .await?;
    evaluated.map_err(|missing| {
        tracing::error!(%missing, "a relationship's window was missing");
        ApiError::Internal
    })
}

/// The windows of `needing` at `at`, within the analysis' deadline.
async fn read_windows(
    engine: &Engine,
    analysis: &Analysis,
    needing: Vec<(RelationshipId, (u64, [u32; 4]))>,
    at: DateTime<Utc>,
    trend_base: bool,
) -> ApiResult<trends::Windows> {
    engine
        .windows_at(needing, at, trend_base, Some(analysis.deadline()))
        .await
        .map_err(|error| {
            tracing::error!(%error, "interaction histories could not be read");
            ApiError::Unavailable
        })?
        .ok_or_else(|| analysis.overrun(true))
}

/// Every edge's 30-day trend on `analysis`' snapshot ([`trends::trends`]), memoised per snapshot. The past
/// strengths the snapshot does not know are read from the relationships' windows, and the engine's current snapshot
/// is told them, so that after a write only the relationships it changed need their windows again.
pub(super) async fn snapshot_trends(engine: &Arc<Engine>, analysis: &Analysis) -> ApiResult<Arc<Vec<f32>>> {
    const KEY: &str = "trends";
    if let Some(found) = engine.remembered::<Vec<f32>>(&analysis.snapshot, KEY) {
        return Ok(found);
    }
    let unknown = analysis.run(|snapshot, _| Some(trends::past_unknown(snapshot))).await?;
    let needing = unknown.iter().map(|(_, id, key)| (*id, *key)).collect();
    let windows = read_windows(engine, analysis, needing, trends::trend_base(&analysis.snapshot), true).await?;
    let (engine, current) = (engine.clone(), analysis.snapshot.clone());
    analysis
        .run(move |snapshot, _| {
            let edges: Vec<usize> = unknown.iter().map(|(edge, _, _)| *edge).collect();
            let known = trends::past_from_windows(snapshot, engine.model(), &edges, &windows).ok()?;
            let trends = engine.memoized(snapshot, KEY, || trends::trends(snapshot, &known).ok())?;
            if !known.is_empty() {
                engine.remember_past(&current, &known);
            }
            Some(trends)
        })
        .await
}

/// A strength in [0, 1] named `field`.
fn strength_bound(value: Option<f64>, field: &str) -> ApiResult<Option<f32>> {
    match value {
        Some(value) if !(0.0..=1.0).contains(&value) => {
            Err(ApiError::bad_input(field, format!("{value} is not in [0, 1]; give a strength from 0 to 1")))
        }
        value => Ok(value.map(|value| value as f32)),
    }
}

impl RelationshipListFilter {
    fn criteria(self, caller: Caller) -> ApiResult<RelationshipCriteria> {
        Ok(RelationshipCriteria {
            markets: MarketSet::of(to_domain::<Market, domain::Market>(&self.markets.unwrap_or_default())),
            types: to_domain(&self.types.unwrap_or_default()),
            levels: to_domain(&self.levels.unwrap_or_default()),
            kinds: to_domain(&self.kinds.unwrap_or_default()),
            min_strength: strength_bound(self.min_strength, "filter.minStrength")?,
            max_strength: strength_bound(self.max_strength, "filter.maxStrength")?,
            min_trend: trend_bound(self.min_trend, "filter.minTrend")?,
            max_trend: trend_bound(self.max_trend, "filter.maxTrend")?,
            hide_private: !caller.sees_private(),
        })
    }
}

/// Name of the graph's relationship listing in an order, which its cursors are bound to.
fn cursor_list(order: EdgeOrder) -> String {
    format!("graph-relationships:{order:?}")
}

fn encode_cursor(order: EdgeOrder, key: &EdgeKey) -> String {
    encode_key_cursor(&cursor_list(order), u64::from(key.value.to_bits()), key.id.0)
}

fn decode_cursor(order: EdgeOrder, cursor: &str, argument: &str) -> ApiResult<EdgeKey> {
    let (strength, id) = decode_key_cursor(&cursor_list(order), cursor, argument)?;
    let strength = u32::try_from(strength).map_err(|_| damaged_cursor(argument))?;
    Ok(EdgeKey { value: f32::from_bits(strength), id: RelationshipId(id) })
}

/// What the graph's relationship listing holds besides its page.
pub struct RelationshipListing {
    analysis: Arc<Analysis>,
    engine: Arc<Engine>,
    criteria: Arc<RelationshipCriteria>,
    /// Every edge's trend, when the filter, the order or the aggregate's `meanTrend` needs them.
    trends: Option<Arc<Vec<f32>>>,
    /// The tallies this request made, by histogram buckets: sibling fields resolve at once, and must not each
    /// count the graph.
    tallies: tokio::sync::Mutex<HashMap<usize, Arc<RelationshipTally>>>,
}

impl RelationshipListing {
    /// The tally of the listing with `buckets` histogram buckets, memoised per snapshot.
    async fn tally(&self, buckets: usize) -> ApiResult<Arc<RelationshipTally>> {
        let mut tallies = self.tallies.lock().await;
        if let Some(tally) = tallies.get(&buckets) {
            return Ok(tally.clone());
        }
        let key = format!("relationships-tally {:?} buckets={buckets} trends={}", self.criteria, self.trends.is_some());
        // Counted already on this snapshot: no analysis' turn for a lookup.
        if let Some(tally) = self.engine.remembered::<RelationshipTally>(&self.analysis.snapshot, &key) {
            tallies.insert(buckets, tally.clone());
            return Ok(tally);
        }
        let (criteria, trends) = (self.criteria.clone(), self.trends.clone());
        let engine = self.engine.clone();
        let tally = self
            .analysis
            .run(move |snapshot, deadline| {
                engine.memoized(snapshot, &key, || {
                    tally_relationships(
                        snapshot,
                        &criteria,
                        trends.as_deref().map(Vec::as_slice),
                        buckets,
                        Some(deadline),
                    )
                })
            })
            .await?;
        tallies.insert(buckets, tally.clone());
        Ok(tally)
    }
}

#[Object]
impl RelationshipListing {
    /// How many relationships the whole listing holds (all pages).
    async fn total_count(&self) -> ApiResult<u64> {
        Ok(self.tally(DEFAULT_BUCKETS).await?.count)
    }

    /// The time the strengths it filters and sorts by are evaluated at (the engine's snapshot).
    async fn as_of(&self) -> DateTime<Utc> {
        self.analysis.snapshot.as_of()
    }

    /// Counts over the whole listing (all pages, the same filter), for charts.
    async fn aggregate(&self) -> RelationshipAggregate<'_> {
        RelationshipAggregate(self)
    }
}

/// Histogram buckets when `buckets` is not given (and what `count` and the other counts are tallied with).
const DEFAULT_BUCKETS: usize = 10;

/// Counts over the graph's relationship listing. A relationship counts in each market either of its ends takes
/// part in.
pub struct RelationshipAggregate<'a>(&'a RelationshipListing);

/// A bucket of a strength histogram: strengths in `[from, to)` (the last bucket includes 1).
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct StrengthBucket {
    /// The bucket as a label, `"0.30-0.40"`.
    pub key: String,
    /// Its lower bound.
    pub from: f64,
    /// Its upper bound.
    pub to: f64,
    /// How many relationships.
    pub count: u64,
}

#[Object]
impl RelationshipAggregate<'_> {
    /// How many relationships.
    async fn count(&self) -> ApiResult<u64> {
        Ok(self.0.tally(DEFAULT_BUCKETS).await?.count)
    }

    /// Their mean strength; null when there are none.
    async fn mean_strength(&self) -> ApiResult<Option<f64>> {
        Ok(self.0.tally(DEFAULT_BUCKETS).await?.mean_strength())
    }

    /// Their mean 30-day trend (the mean strength now minus the mean strength of the same relationships 30 days
    /// earlier); null when there are none.
    async fn mean_trend(&self) -> ApiResult<Option<f64>> {
        Ok(self.0.tally(DEFAULT_BUCKETS).await?.mean_trend())
    }

    /// How many fall in each of `buckets` equal ranges of strength over [0, 1].
    async fn strength_histogram(
        &self,
        #[graphql(default = 10, desc = "How many buckets, 1 to 100.")] buckets: i32,
    ) -> ApiResult<Vec<StrengthBucket>> {
        if !(1..=MAX_BUCKETS).contains(&buckets) {
            return Err(ApiError::bad_input(
                "buckets",
                format!("{buckets} is not in 1 to {MAX_BUCKETS}; ask for 1 to {MAX_BUCKETS} buckets"),
            ));
        }
        let tally = self.0.tally(buckets as usize).await?;
        let width = 1.0 / f64::from(buckets);
        Ok(tally
            .histogram
            .iter()
            .enumerate()
            .map(|(index, count)| {
                let (from, to) = (index as f64 * width, ((index + 1) as f64 * width).min(1.0));
                StrengthBucket { key: format!("{from:.2}-{to:.2}"), from, to, count: *count }
            })
            .collect())
    }

    /// How many at each Kotler level.
    async fn by_level(&self) -> ApiResult<Vec<KeyCount>> {
        Ok(bars(domain::Level::ALL, &self.0.tally(DEFAULT_BUCKETS).await?.by_level))
    }

    /// How many of each type.
    async fn by_type(&self) -> ApiResult<Vec<KeyCount>> {
        Ok(bars(domain::RelationshipType::ALL, &self.0.tally(DEFAULT_BUCKETS).await?.by_type))
    }

    /// How many have an end in each of the six markets (one relationship may count in several).
    async fn by_market(&self) -> ApiResult<Vec<KeyCount>> {
        Ok(bars(domain::Market::ALL, &self.0.tally(DEFAULT_BUCKETS).await?.by_market))
    }
}

/// A page of the graph's relationships.
pub type RelationshipList =
    Connection<String, Relationship, RelationshipListing, EmptyFields, RelationshipListName, RelationshipListName>;

/// The GraphQL names of [`RelationshipList`] and its edges (the stakeholder-level `RelationshipConnection` is
/// another type).
pub struct RelationshipListName;

impl ConnectionNameType for RelationshipListName {
    fn type_name<T: OutputType>() -> String {
        "RelationshipList".into()
    }
}

impl EdgeNameType for RelationshipListName {
    fn type_name<T: OutputType>() -> String {
        "RelationshipListEdge".into()
    }
}

/// Reads over the whole graph for charts.
#[derive(Default)]
pub struct AggregateQuery;

#[Object]
impl AggregateQuery {
    /// The graph's relationships between live stakeholders that the caller may see (none with an end it sees
    /// masked), filtered, in id or strength order, with `totalCount` and `aggregate` over the whole listing.
    /// Strengths are the engine's, as of `asOf`. An analysis in the complexity model.
    #[graphql(guard = "super::auth::Need::Read")]
    #[allow(clippy::too_many_arguments)]
    async fn relationships(
        &self,
        ctx: &Context<'_>,
        filter: Option<RelationshipListFilter>,
        order_by: Option<RelationshipListOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<RelationshipList> {
        let request = PageRequest::read(ctx, first, after, last, before)?;
        let order = EdgeOrder::from(order_by.unwrap_or_default());
        let criteria = Arc::new(filter.unwrap_or_default().criteria(Caller::of(ctx))?);
        let cursor = request.cursor.as_deref();
        let cursor = cursor.map(|cursor| decode_cursor(order, cursor, request.cursor_argument())).transpose()?;
        let span = EdgeSpan { cursor, count: request.count, direction: request.direction };
        let analysis = Arc::new(Analysis::start(ctx).await?);
        let engine = ctx.data_unchecked::<ApiContext>().engine.clone();
        let look_ahead = ctx.look_ahead();
        let trends =
            if criteria.bounds_trend() || order.by_trend() || look_ahead.field("aggregate").field("meanTrend").exists()
            {
                Some(snapshot_trends(&engine, &analysis).await?)
            } else {
                None
            };
        let page = if look_ahead.field("edges").exists() || look_ahead.field("pageInfo").exists() {
            let (criteria, trends) = (criteria.clone(), trends.clone());
            analysis
                .run(move |snapshot, deadline| {
                    let trends = trends.as_deref().map(Vec::as_slice);
                    page_relationships(snapshot, &criteria, trends, order, span, Some(deadline))
                })
                .await?
        } else {
            crate::engine::aggregates::EdgePage { items: Vec::new(), has_more: false }
        };
        let (has_previous_page, has_next_page) = request.page_info(page.has_more);
        let mut connection = Connection::with_additional_fields(
            has_previous_page,
            has_next_page,
            RelationshipListing { analysis, engine, criteria, trends, tallies: Default::default() },
        );
        let loads = page.items.iter().map(|(key, _)| load_relationship(ctx, key.id));
        let loaded = futures_util::future::try_join_all(loads).await?;
        for ((key, _), relationship) in page.items.iter().zip(loaded) {
            // A relationship the snapshot holds is in the records; one the caller may not see was filtered out.
            if let Some(relationship) = relationship {
                connection.edges.push(Edge::new(encode_cursor(order, key), relationship));
            }
        }
        Ok(connection)
    }
}

//! Relationship-marketing programmes: the root `programs` and `program(id)`, the `Program` type (its members on a
//! day, its retention against comparable non-members) and `Customer.programs`. The measures are
//! [`crate::engine::programs`]'; this module parses arguments and maps results.
//!
//! Privacy: programmes themselves are not private. A caller who sees private stakeholders masked gets member
//! counts and retention computed without private customers (counted nowhere, as in `exitAnalysis`), so nothing
//! it reads depends on a private customer; a customer's own `programs` are read only through its `Customer`
//! object, which such a caller never gets for a private one.

use super::auth::{Caller, Need};
use super::enums::{Market, ProgramKind};
use super::error::{ApiError, ApiResult};
use super::ids::{program_id, GlobalId};
use super::influence::Analysis;
use super::loaders::Loaders;
use super::paging::{Counted, PageRequest, Window};
use super::ApiContext;
use crate::domain::{self, ProgramId, Stakeholder};
use crate::engine::programs::{Cohort, ProgramRetention, SegmentCohorts};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, ID};
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;

/// The list name bound into the root listing's cursors.
const PROGRAMS: &str = "programs";

/// The list name bound into the cursors of a customer's memberships.
const MEMBERSHIPS: &str = "programMemberships";

/// The query root's programmes.
#[derive(Default)]
pub struct ProgramQuery;

#[Object]
impl ProgramQuery {
    /// Every relationship-marketing programme, in the order they were created (a graph keeps at most 1,000).
    #[graphql(guard = "Need::Read")]
    async fn programs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<Connection<String, Program, Counted>> {
        let api = ctx.data_unchecked::<ApiContext>();
        let page = PageRequest::read(ctx, first, after, last, before)?;
        let all = api.store.programs().await?;
        let window = Window::of(PROGRAMS, all.len(), &page)?;
        let mut connection = Connection::with_additional_fields(
            window.has_previous_page,
            window.has_next_page,
            Counted { total_count: all.len() as u64 },
        );
        let page = all.into_iter().enumerate().skip(window.start).take(window.end - window.start);
        for (offset, program) in page {
            connection.edges.push(Edge::new(Window::cursor(PROGRAMS, offset), Program(Arc::new(program))));
        }
        Ok(connection)
    }

    /// The programme with this id; null when there is none.
    #[graphql(guard = "Need::Read")]
    async fn program(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Program>> {
        load_program(ctx, program_id(&id, "id")?).await
    }
}

/// The programme with this id, through the request's loader.
pub(crate) async fn load_program(ctx: &Context<'_>, id: ProgramId) -> ApiResult<Option<Program>> {
    Ok(ctx.data_unchecked::<Loaders>().load_one(id).await?.map(Program))
}

/// A relationship-marketing programme: a frequency programme (rewards for cumulative spending), a customer club or
/// a customisation programme, whose worth is whether its members stay.
pub struct Program(Arc<domain::Program>);

impl Program {
    /// The view of a programme record.
    pub(crate) fn of(program: domain::Program) -> Self {
        Self(Arc::new(program))
    }
}

#[Object]
impl Program {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        GlobalId::Program(self.0.id).encode()
    }

    /// Your own unique key for it.
    async fn key(&self) -> &str {
        self.0.key.as_str()
    }

    /// Display name.
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// Frequency programme, customer club or customisation programme.
    async fn kind(&self) -> ProgramKind {
        self.0.kind.into()
    }

    /// The markets it addresses.
    async fn markets(&self) -> Vec<Market> {
        self.0.markets.iter().map(Market::from).collect()
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// How many live customers are members on `asOf` (default today, UTC): a membership covers the days from the
    /// day the customer joined to the day before it left (a customer who exited stays a member until it leaves
    /// the programme). Private customers are counted only for a caller who may see them. Every programme's count
    /// for a day is computed at once, once per version of the graph.
    #[graphql(guard = "Need::Read")]
    async fn member_count(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The day (default today, UTC).")] as_of: Option<NaiveDate>,
    ) -> ApiResult<u64> {
        let day = as_of.unwrap_or_else(|| Utc::now().date_naive());
        let hide_private = !Caller::of(ctx).sees_private();
        // The engine's records, brought up to date (built first if need be) as for any analysis.
        let analysis = Analysis::start(ctx).await?;
        let records = ctx.data_unchecked::<ApiContext>().engine.records().ok_or(ApiError::Unavailable)?;
        let id = self.0.id;
        let counts = match records.program_members_counted(day, hide_private) {
            Some(counts) => counts,
            None => analysis.run(move |_, _| Some(records.program_members(day, hide_private))).await?,
        };
        Ok(counts.get(&id).copied().unwrap_or(0))
    }

    /// Whether members stay, over `[from, to)` (days, UTC): its members at the start against the non-members of
    /// the same segments, each group's churn, and the non-members' churn standardised to the members' segment mix
    /// (docs/models.md, "Programme retention"). Private customers are counted only for a caller who may see them.
    /// Computed in memory once per version of the graph; an analysis in the complexity model; at most 240 months.
    #[graphql(guard = "Need::Read")]
    async fn retention(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "First day of the period.")] from: NaiveDate,
        #[graphql(desc = "The day after the period's last.")] to: NaiveDate,
    ) -> ApiResult<ProgramRetentionView> {
        super::exits::check_period(from, to)?;
        let hide_private = !Caller::of(ctx).sees_private();
        let analysis = Analysis::start(ctx).await?;
        let records = ctx.data_unchecked::<ApiContext>().engine.records().ok_or(ApiError::Unavailable)?;
        let id = self.0.id;
        // Computed already on this version of the graph: no analysis' turn for a lookup.
        if let Some(report) = records.program_retained(id, from, to, hide_private) {
            return Ok(ProgramRetentionView(report));
        }
        let report = analysis.run(move |_, _| Some(records.program_retention(id, from, to, hide_private))).await?;
        Ok(ProgramRetentionView(report))
    }
}

/// A programme's retention over one period.
pub struct ProgramRetentionView(Arc<ProgramRetention>);

#[Object(name = "ProgramRetention")]
impl ProgramRetentionView {
    /// First day of the period.
    async fn from(&self) -> NaiveDate {
        self.0.from
    }

    /// The day after its last.
    async fn to(&self) -> NaiveDate {
        self.0.to
    }

    /// Every member at the start of the period (a customer then, and a member on `from`), and how many left.
    async fn members(&self) -> CohortView {
        CohortView(self.0.members)
    }

    /// The members of the segments that have non-members to compare with.
    async fn compared_members(&self) -> CohortView {
        CohortView(self.0.compared_members)
    }

    /// Customers at the start who were not members, in the members' segments, and how many left.
    async fn non_members(&self) -> CohortView {
        CohortView(self.0.non_members)
    }

    /// The non-members' churn rate standardised to the members' segment mix: Σ members(s) × non-member churn(s) ÷
    /// Σ members(s), over the segments with non-members; null with nobody to compare.
    async fn expected_churn_rate(&self) -> Option<f64> {
        self.0.expected_churn_rate
    }

    /// The compared members' churn rate minus the expected one: negative when members leave less often.
    async fn difference(&self) -> Option<f64> {
        self.0.difference()
    }

    /// Each segment with members at the start (customers without a segment under null), in segment order.
    async fn segments(&self) -> Vec<SegmentRetention<'_>> {
        self.0.segments.iter().map(SegmentRetention).collect()
    }
}

/// Customers at the start of a period and how many of them left during it.
pub struct CohortView(Cohort);

#[Object(name = "RetentionCohort")]
impl CohortView {
    /// Customers active at the start of the period.
    async fn at_start(&self) -> u64 {
        self.0.at_start
    }

    /// Of those, how many left during the period (once each).
    async fn churned(&self) -> u64 {
        self.0.churned
    }

    /// Churned ÷ at the start; null when nobody was.
    async fn churn_rate(&self) -> Option<f64> {
        self.0.churn_rate()
    }
}

/// One segment's members and non-members at the start of the period.
pub struct SegmentRetention<'a>(&'a SegmentCohorts);

#[Object(name = "SegmentRetention")]
impl SegmentRetention<'_> {
    /// The segment; null for customers without one.
    async fn segment(&self) -> Option<&str> {
        self.0.segment.as_deref()
    }

    /// Its members at the start, and how many left.
    async fn members(&self) -> CohortView {
        CohortView(self.0.members)
    }

    /// Its non-members at the start, and how many left.
    async fn non_members(&self) -> CohortView {
        CohortView(self.0.non_members)
    }
}

/// One stretch of a customer's membership of a programme.
pub struct ProgramMembership(domain::Membership);

#[Object]
impl ProgramMembership {
    /// The programme.
    async fn program(&self, ctx: &Context<'_>) -> ApiResult<Option<Program>> {
        load_program(ctx, self.0.program).await
    }

    /// The day the customer joined.
    async fn joined(&self) -> NaiveDate {
        self.0.joined
    }

    /// The day it left (a member until the day before); null while it is a member.
    async fn left(&self) -> Option<NaiveDate> {
        self.0.left
    }
}

/// A page of `customer`'s memberships, in the order they began (a customer keeps at most 200).
pub(crate) fn memberships(
    customer: &Stakeholder,
    page: PageRequest,
) -> ApiResult<Connection<String, ProgramMembership, Counted>> {
    let all: &[domain::Membership] = match &customer.details {
        domain::KindDetails::Customer(details) => &details.memberships,
        _ => &[],
    };
    let window = Window::of(MEMBERSHIPS, all.len(), &page)?;
    let mut connection = Connection::with_additional_fields(
        window.has_previous_page,
        window.has_next_page,
        Counted { total_count: all.len() as u64 },
    );
    for (offset, membership) in all[window.start..window.end].iter().enumerate() {
        connection
            .edges
            .push(Edge::new(Window::cursor(MEMBERSHIPS, window.start + offset), ProgramMembership(*membership)));
    }
    Ok(connection)
}

//! `exitAnalysis(from, to, filter)`: churn, retention, exits by reason and month, win-backs. The measures are
//! [`crate::engine::exits`]'; this module maps arguments and results.
//!
//! Privacy: a caller who sees private stakeholders masked gets the analysis without private customers (they are
//! not counted anywhere), and a private manager in the filter answers exactly like an id that does not exist.

use super::auth::{Caller, Need};
use super::enums::{to_domain, ExitReason, Market};
use super::error::{ApiError, ApiResult};
use super::ids::stakeholder_id;
use super::influence::Analysis;
use super::ApiContext;
use crate::domain::{self, MarketSet, StakeholderKind};
use crate::engine::exits::{calendar_months, is_controllable, CustomerCriteria, ExitReport, ExitTally, Stretch};
use crate::engine::Records;
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::NaiveDate;
use std::sync::Arc;

/// Longest period an exit analysis covers, in calendar months (its monthly series has one entry per month).
const MAX_MONTHS: usize = 240;

/// Most distinct segments a filter names (each customer is compared with each).
const MAX_SEGMENTS: usize = 100;

/// Which customers an exit analysis counts; every given criterion must hold, a list matches any of its values.
#[derive(InputObject, Default, Debug)]
pub struct ExitFilter {
    /// In one of these segments (by name, exactly as recorded).
    pub segments: Option<Vec<String>>,
    /// Taking part in one of these markets (every customer is in CUSTOMER; referring ones in REFERRAL too).
    pub markets: Option<Vec<Market>>,
    /// Managed by this employee (its MANAGES relationships).
    pub manager: Option<ID>,
    /// Count archived customers too (their exits stay part of the history).
    #[graphql(default)]
    pub include_archived: bool,
}

/// The customers a filter of `exitAnalysis` or `atRiskCustomers` selects: segments deduplicated (at most
/// [`MAX_SEGMENTS`]), markets as a set, the manager's id decoded (check it with [`check_manager`] once the records
/// are at hand).
pub(super) fn customer_criteria(
    segments: Option<Vec<String>>,
    markets: Option<Vec<Market>>,
    manager: Option<&ID>,
    include_archived: bool,
    hide_private: bool,
) -> ApiResult<CustomerCriteria> {
    let mut segments = segments.unwrap_or_default();
    segments.sort();
    segments.dedup();
    if segments.len() > MAX_SEGMENTS {
        return Err(ApiError::bad_input(
            "filter.segments",
            format!("{} segments named, more than {MAX_SEGMENTS}; name fewer", segments.len()),
        ));
    }
    Ok(CustomerCriteria {
        segments,
        markets: MarketSet::of(to_domain::<Market, domain::Market>(&markets.unwrap_or_default())),
        manager: manager.map(|id| stakeholder_id(id, "filter.manager")).transpose()?,
        hide_private,
        include_archived,
    })
}

/// Refuses the criteria's manager unless it is a live employee the caller may see: a private one answers exactly
/// as an id that does not exist.
pub(super) fn check_manager(records: &Records, criteria: &CustomerCriteria) -> ApiResult<()> {
    let Some(manager) = criteria.manager else { return Ok(()) };
    let employee = records.stakeholder(manager).filter(|row| !(criteria.hide_private && row.private));
    match employee.map(|row| row.kind()) {
        Some(StakeholderKind::Employee) => Ok(()),
        Some(kind) => Err(ApiError::bad_input(
            "filter.manager",
            format!("stakeholder {manager} is a {kind}; pass the id of the EMPLOYEE who manages customers"),
        )),
        None => Err(ApiError::bad_input(
            "filter.manager",
            format!("no live stakeholder has id {manager}; pass the id of a live EMPLOYEE"),
        )),
    }
}

/// Refuses a period `[from, to)` that is empty or longer than [`MAX_MONTHS`] calendar months (counted, not listed:
/// a period of millions of months is refused without allocating them).
pub(super) fn check_period(from: NaiveDate, to: NaiveDate) -> ApiResult<()> {
    if from >= to {
        return Err(ApiError::bad_input(
            "to",
            format!("{to} is not after {from}; give a period [from, to) of a day or more"),
        ));
    }
    let months = calendar_months(from, to);
    if months > MAX_MONTHS {
        return Err(ApiError::bad_input(
            "to",
            format!("[{from}, {to}) spans {months} calendar months, more than {MAX_MONTHS}; analyse a shorter period"),
        ));
    }
    Ok(())
}

/// The query root's exit analysis.
#[derive(Default)]
pub struct ExitQuery;

#[Object]
impl ExitQuery {
    /// Exit management over the period `[from, to)` (days, UTC): customers at its start, exits by reason with
    /// the lifetime value lost, churn and retention rates, controllable exits against the others, win-backs,
    /// and a monthly series. Definitions in docs/models.md. Computed in memory once per version of the graph; an
    /// analysis in the complexity model; at most 240 months.
    #[graphql(guard = "Need::Read")]
    async fn exit_analysis(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "First day of the period.")] from: NaiveDate,
        #[graphql(desc = "The day after the period's last.")] to: NaiveDate,
        filter: Option<ExitFilter>,
    ) -> ApiResult<ExitAnalysis> {
        check_period(from, to)?;
        let filter = filter.unwrap_or_default();
        let criteria = customer_criteria(
            filter.segments,
            filter.markets,
            filter.manager.as_ref(),
            filter.include_archived,
            !Caller::of(ctx).sees_private(),
        )?;
        let analysis = Analysis::start(ctx).await?;
        let records = ctx.data_unchecked::<ApiContext>().engine.records().ok_or(ApiError::Unavailable)?;
        check_manager(&records, &criteria)?;
        // Computed already on this version of the graph: no analysis' turn for a lookup.
        if let Some(report) = records.exit_reported(&criteria, from, to) {
            return Ok(ExitAnalysis(report));
        }
        let report = analysis.run(move |_, _| Some(records.exit_report(&criteria, from, to))).await?;
        Ok(ExitAnalysis(report))
    }
}

/// Exit management over one period.
pub struct ExitAnalysis(Arc<ExitReport>);

#[Object]
impl ExitAnalysis {
    /// First day of the period.
    async fn from(&self) -> NaiveDate {
        self.0.period.from
    }

    /// The day after its last.
    async fn to(&self) -> NaiveDate {
        self.0.period.to
    }

    /// Customers active at its start: customers since before `from` who had not left (or had come back) by then.
    async fn customers_at_start(&self) -> u64 {
        self.0.period.customers_at_start
    }

    /// Of those, how many left during the period (once each, however often).
    async fn churned(&self) -> u64 {
        self.0.period.churned
    }

    /// Every exit dated in the period, of customers at its start or not.
    async fn exits(&self) -> u64 {
        self.0.period.exits.exits
    }

    /// Churned ÷ customers at the start; null with no customer at the start.
    async fn churn_rate(&self) -> Option<f64> {
        self.0.period.churn_rate()
    }

    /// 1 − churn rate; null with no customer at the start.
    async fn retention_rate(&self) -> Option<f64> {
        self.0.period.churn_rate().map(|rate| 1.0 - rate)
    }

    /// The lifetime values of the customers of every exit: the profit lost.
    async fn lifetime_value_lost(&self) -> f64 {
        self.0.period.exits.lifetime_value_lost
    }

    /// Exited customers who came back during the period.
    async fn win_backs(&self) -> u64 {
        self.0.period.win_backs
    }

    /// Customers gone at the start: they had left before `from` and not come back by then.
    async fn gone_at_start(&self) -> u64 {
        self.0.gone_at_start
    }

    /// Of those, how many came back during the period.
    async fn won_back(&self) -> u64 {
        self.0.won_back
    }

    /// Won back ÷ gone at the start; null with none gone at the start.
    async fn win_back_rate(&self) -> Option<f64> {
        self.0.win_back_rate()
    }

    /// Exits by reason, every reason listed (zeros included), for a chart of exits by reason.
    async fn by_reason(&self) -> Vec<ReasonExits> {
        let total = self.0.period.exits.exits;
        domain::ExitReason::ALL
            .iter()
            .zip(&self.0.by_reason)
            .map(|(reason, tally)| ReasonExits {
                reason: (*reason).into(),
                controllable: is_controllable(*reason),
                exits: tally.exits,
                share: share(tally.exits, total),
                lifetime_value_lost: tally.lifetime_value_lost,
            })
            .collect()
    }

    /// Exits the firm can act on (every reason but MARKET).
    async fn controllable(&self) -> ExitGroup {
        ExitGroup::of(self.0.controllable(), self.0.period.exits.exits)
    }

    /// Exits unrelated to the firm (MARKET: the customer left the area).
    async fn uncontrollable(&self) -> ExitGroup {
        ExitGroup::of(self.0.uncontrollable(), self.0.period.exits.exits)
    }

    /// The period month by month (calendar months in UTC; the first and last cut to the period).
    async fn months(&self) -> Vec<ExitMonth> {
        self.0.months.iter().map(|month| ExitMonth::of(*month)).collect()
    }
}

/// `part ÷ whole`, 0 for an empty whole.
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The exits of one reason.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ReasonExits {
    /// Why they left.
    pub reason: ExitReason,
    /// Whether the firm can act on it (all but MARKET).
    pub controllable: bool,
    /// Exits in the period.
    pub exits: u64,
    /// Their share of all exits in the period (0 when there were none).
    pub share: f64,
    /// The lifetime value they took.
    pub lifetime_value_lost: f64,
}

/// Exits of a group of reasons.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ExitGroup {
    /// Exits in the period.
    pub exits: u64,
    /// Their share of all exits in the period (0 when there were none).
    pub share: f64,
    /// The lifetime value they took.
    pub lifetime_value_lost: f64,
}

impl ExitGroup {
    fn of(tally: ExitTally, total: u64) -> Self {
        Self { exits: tally.exits, share: share(tally.exits, total), lifetime_value_lost: tally.lifetime_value_lost }
    }
}

/// One month of an exit analysis.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct ExitMonth {
    /// Its first day in the period.
    pub from: NaiveDate,
    /// The day after its last in the period.
    pub to: NaiveDate,
    /// Customers active at its start.
    pub customers_at_start: u64,
    /// Of those, how many left during the month.
    pub churned: u64,
    /// Churned ÷ customers at its start; null with none.
    pub churn_rate: Option<f64>,
    /// Every exit dated in the month.
    pub exits: u64,
    /// The lifetime value they took.
    pub lifetime_value_lost: f64,
    /// Exited customers who came back during the month.
    pub win_backs: u64,
}

impl ExitMonth {
    fn of(month: Stretch) -> Self {
        Self {
            from: month.from,
            to: month.to,
            customers_at_start: month.customers_at_start,
            churned: month.churned,
            churn_rate: month.churn_rate(),
            exits: month.exits.exits,
            lifetime_value_lost: month.exits.lifetime_value_lost,
            win_backs: month.win_backs,
        }
    }
}

//! `Customer.churnRisk`: how likely a customer is to leave, explained like strength; `Employee.portfolio`: what a
//! relationship manager holds and how much of it is at risk. The model is
//! [`crate::domain::churn`]'s; this module gathers its inputs (the customer's relationships the caller may see,
//! their strengths, the principal one's history) and maps the result.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::exits::{check_manager, customer_criteria};
use super::influence::Analysis;
use super::loaders::{HistoryOf, Loaders};
use super::relationships::relationships_of_where;
use super::{ApiContext, Deadline};
use crate::domain::churn::{
    portfolio as portfolio_of, principal, ChurnDriverName, ChurnModel, ChurnRisk, Holding, Portfolio, Tie,
};
use crate::domain::strength::StrengthModel;
use crate::domain::{
    CustomerStatus, Interaction, KindDetails, Relationship, RelationshipType, Stakeholder, StakeholderId,
};
use crate::engine::analysis::{Flow, Via, Walk};
use crate::engine::churn;
use crate::engine::risk::{is_staff, key_person_report};
use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The farthest `atRiskCustomers(horizonDays)` may look: the forecast's own horizon, ten years.
const MAX_HORIZON_DAYS: i32 = crate::domain::strength::FORECAST_HORIZON_DAYS as i32;

/// The signals of churn risk.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "ChurnDriverName")]
pub enum ChurnDriver {
    /// `1 − strength` of the principal relationship.
    Weakness,
    /// How much its strength fell in 30 days, against `full_decline`.
    Decline,
    /// How soon, with no new interaction, it falls below the model's threshold.
    Falling,
    /// How long since the customer last reached out.
    Silence,
    /// Complaints and returns in the recent window.
    Complaints,
    /// How much of the customer's ties with staff rest on its manager alone.
    Exposure,
}

/// One signal of a churn risk.
#[derive(SimpleObject, Clone, Debug)]
pub struct ChurnRiskDriver {
    /// Which signal.
    pub name: ChurnDriver,
    /// Its value, in [0, 1] (1 the most risk).
    pub value: f64,
    /// Its weight in the model.
    pub weight: f64,
    /// What it adds to the score (the contributions add up to the score).
    pub contribution: f64,
}

/// A customer's churn risk now, and why.
pub struct ChurnRiskView {
    risk: ChurnRisk,
    model: String,
    lifetime_value: Option<f64>,
    retention_cost: Option<f64>,
    principal: Option<crate::domain::RelationshipId>,
}

#[Object(name = "ChurnRisk")]
impl ChurnRiskView {
    /// The risk, in [0, 1]: the weighted mean of the drivers.
    async fn score(&self) -> f64 {
        self.risk.score
    }

    /// The signals that make it up.
    async fn drivers(&self) -> Vec<ChurnRiskDriver> {
        self.risk
            .drivers
            .iter()
            .map(|driver| ChurnRiskDriver {
                name: driver.name.into(),
                value: driver.value,
                weight: driver.weight,
                contribution: driver.contribution,
            })
            .collect()
    }

    /// The model's version (`churn-v1` with the defaults).
    async fn model(&self) -> &str {
        &self.model
    }

    /// The customer's lifetime value times the score: the profit at stake; null without a lifetime value.
    async fn value_at_risk(&self) -> Option<f64> {
        self.lifetime_value.map(|value| value * self.risk.score)
    }

    /// What keeping the customer would cost: as recorded for it, otherwise its segment's configured cost
    /// (`[churn] retention_costs`); null when neither is known.
    async fn retention_cost(&self) -> Option<f64> {
        self.retention_cost
    }

    /// Whether keeping the customer is worth its cost: the cost is below `valueAtRisk` (lifetime value × score);
    /// null without a lifetime value or a retention cost.
    async fn worth_retaining(&self) -> Option<bool> {
        Some(crate::domain::churn::worth_retaining(self.retention_cost?, self.lifetime_value?, self.risk.score))
    }

    /// The id of the relationship the signals read (the manager's, otherwise the strongest); null without one.
    async fn principal_relationship(&self) -> Option<async_graphql::ID> {
        self.principal.map(|id| super::ids::GlobalId::Relationship(id).encode())
    }
}

/// What the churn-risk model reads of one customer, gathered as the caller may see it.
pub(super) struct ChurnInputs {
    principal: Option<(Relationship, Arc<Vec<Interaction>>)>,
    manager_share: Option<f64>,
    lifetime_value: Option<f64>,
    retention_cost: Option<f64>,
}

impl ChurnInputs {
    /// The inputs of `customer` at `now`, `None` for a prospect or a customer who has left: its relationships the
    /// caller may see, their strengths from the decayed sums, its principal one's history through the DataLoader
    /// (so that the inputs of many customers are read in a few batches). A live customer's relationships are the
    /// engine's records' ([`crate::engine::churn::standing`], as `atRiskCustomers` reads them); an archived one's,
    /// or any before the projection is built, are loaded under the same rules.
    pub(super) async fn of(ctx: &Context<'_>, customer: &Stakeholder, now: DateTime<Utc>) -> ApiResult<Option<Self>> {
        let KindDetails::Customer(details) = &customer.details else { return Ok(None) };
        if matches!(details.status, CustomerStatus::Prospect | CustomerStatus::Churned) {
            return Ok(None);
        }
        let api = ctx.data_unchecked::<ApiContext>();
        let sees_private = Caller::of(ctx).sees_private();
        let remembered = api.engine.records().and_then(|records| {
            let standing = crate::engine::churn::standing(&records, &api.strength, customer.id, sees_private, now)?;
            Some((standing.principal.and_then(|id| records.relationship(id).cloned()), standing.manager_share))
        });
        let (principal, manager_share) = match remembered {
            Some(found) => found,
            None => Self::loaded_standing(ctx, customer.id, now).await?,
        };
        let principal = match principal {
            Some(relationship) => {
                let history = ctx.data_unchecked::<Loaders>().load_one(HistoryOf(relationship.id)).await?;
                Some((relationship, history.unwrap_or_default()))
            }
            None => None,
        };
        Ok(Some(Self::with(api, customer, principal, manager_share)))
    }

    /// The principal relationship and manager's share of `customer` from its relationships loaded as the caller
    /// may see them (the rules of [`crate::engine::churn::standing`], for what the records do not hold).
    async fn loaded_standing(
        ctx: &Context<'_>,
        customer: StakeholderId,
        now: DateTime<Utc>,
    ) -> ApiResult<(Option<Relationship>, Option<f64>)> {
        let api = ctx.data_unchecked::<ApiContext>();
        let relationships = relationships_of_where(ctx, customer, |_| true).await?;
        let counterparts: Vec<StakeholderId> = relationships
            .iter()
            .map(|relationship| if relationship.from == customer { relationship.to } else { relationship.from })
            .collect();
        let loaded: HashMap<StakeholderId, Arc<Stakeholder>> =
            ctx.data_unchecked::<Loaders>().load_many(counterparts.iter().copied()).await?;
        let staff = |id: &StakeholderId| {
            loaded.get(id).is_some_and(|row| {
                !row.is_archived() && matches!(row.details, KindDetails::Employee { candidate: false, .. })
            })
        };
        let rows: Vec<Tie<'_>> = relationships
            .iter()
            .zip(&counterparts)
            .map(|(relationship, counterpart)| Tie {
                relationship,
                strength: api.strength.evaluate(relationship, &relationship.sums, now).score,
                counterpart: *counterpart,
                staff: staff(counterpart),
            })
            .collect();
        let (chosen, manager_share) = principal(customer, &rows);
        Ok((chosen.map(|index| relationships[index].clone()), manager_share))
    }

    /// The inputs of customer `customer` (live) with its principal relationship and history, and manager's share.
    fn with(
        api: &ApiContext,
        customer: &Stakeholder,
        principal: Option<(Relationship, Arc<Vec<Interaction>>)>,
        manager_share: Option<f64>,
    ) -> Self {
        let details = match &customer.details {
            KindDetails::Customer(details) => Some(details),
            _ => None,
        };
        let retention_cost = api.churn.retention_cost(
            details.and_then(|details| details.retention_cost.map(|cost| cost.get())),
            details.and_then(|details| details.segment.as_ref().map(|segment| segment.as_str())),
        );
        Self {
            principal,
            manager_share,
            lifetime_value: details.and_then(|details| details.lifetime_value.map(|value| value.get())),
            retention_cost,
        }
    }

    /// The inputs of each of `customers` (at most `limits.max_churn_customers`, else refused with the message
    /// `refusal(count, most)` gives), read in a few DataLoader batches.
    pub(super) async fn of_many(
        ctx: &Context<'_>,
        customers: &[Arc<Stakeholder>],
        now: DateTime<Utc>,
        refusal: impl FnOnce(usize, usize) -> String,
    ) -> ApiResult<Vec<Option<Self>>> {
        let most = ctx.data_unchecked::<ApiContext>().limits.max_churn_customers;
        if customers.len() > most {
            return Err(ApiError::Refused {
                limit: "max_churn_customers",
                message: refusal(customers.len(), most),
                retry_after: None,
            });
        }
        futures_util::future::try_join_all(customers.iter().map(|customer| Self::of(ctx, customer, now))).await
    }

    /// The risk these inputs make at `now` (a forecast: up to ~3,700 daily scores; run it off the async workers).
    pub(super) fn evaluate(&self, churn: &ChurnModel, strength: &StrengthModel, now: DateTime<Utc>) -> ChurnRisk {
        let principal = self.principal.as_ref().map(|(relationship, history)| (relationship, &history[..]));
        churn.evaluate(churn.signals(strength, principal, self.manager_share, now))
    }

    /// The view of `risk`, computed from these inputs under `model`.
    pub(super) fn view(&self, risk: ChurnRisk, model: String) -> ChurnRiskView {
        ChurnRiskView {
            risk,
            model,
            lifetime_value: self.lifetime_value,
            retention_cost: self.retention_cost,
            principal: self.principal.as_ref().map(|(relationship, _)| relationship.id),
        }
    }
}

/// The risk of each of `inputs` at `now` (`None` where there are no inputs), or `None` once `deadline` passes.
fn score_all(
    inputs: &[Option<ChurnInputs>],
    churn: &ChurnModel,
    strength: &StrengthModel,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Option<Vec<Option<ChurnRisk>>> {
    let mut risks = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        if index % 64 == 63 && Instant::now() >= deadline {
            return None;
        }
        risks.push(input.as_ref().map(|input| input.evaluate(churn, strength, now)));
    }
    Some(risks)
}

/// The churn risk of `customer` now, from what the caller may see of it; `None` for a prospect or a customer who
/// has left. The forecast and signals are computed on a blocking thread under a forecast turn (as `fallsBelow`).
pub async fn churn_risk(ctx: &Context<'_>, customer: &Stakeholder) -> ApiResult<Option<ChurnRiskView>> {
    let now = Utc::now();
    let Some(inputs) = ChurnInputs::of(ctx, customer, now).await? else { return Ok(None) };
    let api = ctx.data_unchecked::<ApiContext>();
    let deadline = ctx.data_opt::<Deadline>().map(|deadline| deadline.0);
    let turn = api.admission.forecast(deadline).await?;
    let (churn, strength) = (api.churn.clone(), api.strength.clone());
    let (risk, inputs) = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        (inputs.evaluate(&churn, &strength, now), inputs)
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, "a churn risk failed");
        ApiError::Internal
    })?;
    Ok(Some(inputs.view(risk, api.churn.version())))
}

/// A relationship manager's portfolio: the customers it manages, how strong and how much at risk.
pub struct PortfolioView {
    summary: Portfolio,
    at_risk_above: f64,
    key_person: Option<KeyPersonLoss>,
}

/// What the firm's reach loses if the employee leaves (its `keyPersonRisk`, with that field's defaults).
#[derive(SimpleObject, Clone, Copy, Debug)]
pub struct KeyPersonLoss {
    /// Stakeholders the firm reaches less well without them.
    pub affected: i32,
    /// The sum of those losses of best path score.
    pub total_loss: f64,
}

#[Object(name = "Portfolio")]
impl PortfolioView {
    /// Live customers it manages (its MANAGES relationships the caller may see; archived customers are no longer
    /// held).
    async fn customers(&self) -> u64 {
        self.summary.customers
    }

    /// Of those, the customers now: not prospects, not gone.
    async fn active_customers(&self) -> u64 {
        self.summary.active
    }

    /// The mean strength of its relationships with them, now; null with none.
    async fn mean_strength(&self) -> Option<f64> {
        self.summary.mean_strength
    }

    /// Active customers whose churn risk is at least `atRiskAbove`.
    async fn at_risk(&self) -> u64 {
        self.summary.at_risk
    }

    /// The churn risk from which a customer counts as at risk.
    async fn at_risk_above(&self) -> f64 {
        self.at_risk_above
    }

    /// The lifetime value of its active customers: what it holds.
    async fn lifetime_value(&self) -> f64 {
        self.summary.lifetime_value
    }

    /// Σ lifetime value × churn risk over its active customers.
    async fn value_at_risk(&self) -> f64 {
        self.summary.value_at_risk
    }

    /// What the firm's reach loses if it leaves (as `keyPersonRisk` with its defaults, minScore 0.01 and
    /// minStrength 0.05); null for a candidate, who is not staff.
    async fn key_person_loss(&self) -> Option<KeyPersonLoss> {
        self.key_person
    }
}

/// The portfolio of relationship manager `employee`, as the caller may see it: an analysis (one turn, under its
/// deadline) that computes every managed customer's churn risk and the employee's key-person report.
pub async fn portfolio(ctx: &Context<'_>, employee: &Stakeholder, at_risk_above: f64) -> ApiResult<PortfolioView> {
    if !(0.0..=1.0).contains(&at_risk_above) {
        return Err(ApiError::bad_input(
            "atRiskAbove",
            format!("{at_risk_above} is not between 0 and 1; pass the churn risk from which a customer is at risk"),
        ));
    }
    let analysis = Analysis::start(ctx).await?;
    let api = ctx.data_unchecked::<ApiContext>();
    let now = Utc::now();
    let id = employee.id;
    let managed = relationships_of_where(ctx, id, |relationship| {
        relationship.rel_type == RelationshipType::Manages && relationship.from == id
    })
    .await?;
    let customers: HashMap<StakeholderId, Arc<Stakeholder>> =
        ctx.data_unchecked::<Loaders>().load_many(managed.iter().map(|relationship| relationship.to)).await?;
    // Live customers only: an archived one is no longer held (as `exitAnalysis` leaves it out by default).
    let managed: Vec<(f64, Arc<Stakeholder>)> = managed
        .iter()
        .filter_map(|relationship| {
            let customer = customers.get(&relationship.to)?;
            (matches!(customer.details, KindDetails::Customer(_)) && !customer.is_archived())
                .then(|| (api.strength.evaluate(relationship, &relationship.sums, now).score, customer.clone()))
        })
        .collect();
    let customers: Vec<Arc<Stakeholder>> = managed.iter().map(|(_, customer)| customer.clone()).collect();
    let inputs = ChurnInputs::of_many(ctx, &customers, now, |count, most| {
        format!(
            "this employee manages {count} customers, more than a portfolio computes the churn risk of \
             (limits.max_churn_customers, {most}); page through managedCustomers with churnRisk instead"
        )
    })
    .await?;
    let strengths: Vec<f64> = managed.iter().map(|(strength, _)| *strength).collect();
    let hide = !Caller::of(ctx).sees_private();
    let (churn, strength) = (api.churn.clone(), api.strength.clone());
    let (summary, key_person) = analysis
        .run(move |snapshot, deadline| {
            let risks = score_all(&inputs, &churn, &strength, now, deadline)?;
            let holdings: Vec<Holding> = inputs
                .iter()
                .zip(&risks)
                .zip(&strengths)
                .map(|((input, risk), strength_now)| Holding {
                    strength: *strength_now,
                    lifetime_value: input.as_ref().and_then(|input| input.lifetime_value),
                    risk: risk.as_ref().map(|risk| risk.score),
                })
                .collect();
            let node =
                snapshot.index_of(id).filter(|&node| is_staff(snapshot, node) && !(hide && snapshot.is_private(node)));
            let key_person = match node {
                Some(node) => {
                    let walk = Walk::new(snapshot, Flow::Both, 0.05, &Via::default()).hiding_private(hide);
                    let report = key_person_report(&walk, node, 0.01, Some(deadline))?;
                    Some(KeyPersonLoss { affected: report.losses.len() as i32, total_loss: report.total_loss })
                }
                None => None,
            };
            Some((portfolio_of(&holdings, at_risk_above), key_person))
        })
        .await?;
    Ok(PortfolioView { summary, at_risk_above, key_person })
}

/// Which customers `atRiskCustomers` ranks; every given criterion must hold, a list matches any of its values.
#[derive(async_graphql::InputObject, Default, Debug)]
pub struct AtRiskFilter {
    /// In one of these segments (by name, exactly as recorded).
    pub segments: Option<Vec<String>>,
    /// Taking part in one of these markets.
    pub markets: Option<Vec<super::enums::Market>>,
    /// Managed by this employee (its MANAGES relationships).
    pub manager: Option<async_graphql::ID>,
}

/// The customers with the most value at risk.
#[derive(SimpleObject)]
pub struct AtRiskCustomers {
    /// How many customers the filter selected (customers now: not prospects, not gone).
    pub candidates: u64,
    /// How many of them were scored to settle the ranking: the others' upper bound of value at risk (from their
    /// relationships alone, every signal that reads the history at its worst) could not place them.
    pub scored: u64,
    /// The `first` of them with the most value at risk (lifetime value × churn risk), most first.
    pub customers: Vec<AtRiskCustomer>,
}

/// One customer at risk.
#[derive(SimpleObject)]
pub struct AtRiskCustomer {
    /// Its place, from 1.
    pub position: i32,
    /// The customer.
    pub customer: super::stakeholders::Customer,
    /// Its churn risk now.
    pub churn_risk: ChurnRiskView,
}

/// The query root's at-risk ranking.
#[derive(Default)]
pub struct ChurnQuery;

#[Object]
impl ChurnQuery {
    /// The customers with the most value at risk (lifetime value × churn risk, docs/models.md "Churn risk"), among
    /// the live customers now (not prospects, not gone) the filter selects, as the caller may see them: each
    /// scored like `Customer.churnRisk`. Graph-wide: every candidate gets an upper bound of its value at risk from
    /// its relationships alone, and only those whose bound could still place them are scored (`scored`); the
    /// ranking is the one scoring every candidate gives. An analysis in the complexity model; a ranking that needs
    /// more than `limits.max_churn_customers` (1,000) customers scored is refused (narrow the filter: a segment, a
    /// market, a manager). `horizonDays` sets how far ahead falling below the threshold counts for this ranking (the
    /// `falling` driver; default the model's `[churn] horizon_days`, 90): a ranking for the next month passes 30.
    #[graphql(guard = "super::auth::Need::Read")]
    async fn at_risk_customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Falling below the threshold within this many days counts (1 to 3,650; default: the \
                          model's).")]
        horizon_days: Option<i32>,
        #[graphql(default = 10, desc = "How many (1 to the configured limit, 50 by default).")] first: i32,
        filter: Option<AtRiskFilter>,
    ) -> ApiResult<AtRiskCustomers> {
        if let Some(days) = horizon_days.filter(|days| !(1..=MAX_HORIZON_DAYS).contains(days)) {
            return Err(ApiError::bad_input(
                "horizonDays",
                format!("{days} is not in 1 to {MAX_HORIZON_DAYS}; give the days ahead the ranking looks, e.g. 30"),
            ));
        }
        let analysis = Analysis::start(ctx).await?;
        let first = analysis.results(first, "first")?;
        let api = ctx.data_unchecked::<ApiContext>();
        let churn = match horizon_days {
            Some(days) => Arc::new(ChurnModel { horizon_days: f64::from(days), ..ChurnModel::clone(&api.churn) }),
            None => api.churn.clone(),
        };
        let filter = filter.unwrap_or_default();
        let hide_private = !Caller::of(ctx).sees_private();
        let criteria =
            customer_criteria(filter.segments, filter.markets, filter.manager.as_ref(), false, hide_private)?;
        let records = api.engine.records().ok_or(ApiError::Unavailable)?;
        check_manager(&records, &criteria)?;
        let candidates: Arc<Vec<Arc<Stakeholder>>> = Arc::new(
            records
                .customers(&criteria)
                .into_iter()
                .filter(|row| {
                    !matches!(row.details.customer_status(), Some(CustomerStatus::Prospect | CustomerStatus::Churned))
                })
                .collect(),
        );
        let now = Utc::now();
        // Candidates in the order of their lifetime values; refined to a bound from their standing in the records,
        // and scored, as the search needs them: each pass scores the batch handed out before and picks the next.
        let coarse: Vec<f64> = candidates.iter().map(|row| lifetime_value(row).unwrap_or(0.0)).collect();
        let mut ranking = Ranking {
            search: churn::AtRiskSearch::new(coarse, first),
            standings: vec![None; candidates.len()],
            scored: HashMap::new(),
        };
        let most = api.limits.max_churn_customers;
        let batch = (2 * first).max(64);
        let mut pending: Option<(Vec<usize>, Vec<Option<ChurnInputs>>)> = None;
        loop {
            let (next, handed) = {
                let (records, candidates, churn, strength) =
                    (records.clone(), candidates.clone(), churn.clone(), api.strength.clone());
                analysis.run(move |_, deadline| {
                    if let Some((handed, inputs)) = pending {
                        let risks = score_all(&inputs, &churn, &strength, now, deadline)?;
                        for ((candidate, input), risk) in handed.into_iter().zip(inputs).zip(risks) {
                            let (Some(input), Some(risk)) = (input, risk) else { continue };
                            ranking.search.offer(candidate, input.lifetime_value.unwrap_or(0.0) * risk.score);
                            ranking.scored.insert(candidate, (input, risk));
                        }
                    }
                    let room = most.saturating_sub(ranking.search.scored());
                    let mut checked = 0_usize;
                    let handed = ranking.search.next_batch(batch.min(room), |candidate| {
                        checked += 1;
                        if checked % 256 == 0 && Instant::now() >= deadline {
                            return None;
                        }
                        let row = &candidates[candidate];
                        let standing = churn::standing(&records, &strength, row.id, !hide_private, now);
                        ranking.standings[candidate] = standing;
                        Some(match standing {
                            Some(standing) => churn::value_bound(&churn, lifetime_value(row), &standing),
                            None => lifetime_value(row).unwrap_or(0.0),
                        })
                    })?;
                    Some((ranking, handed))
                })
            }
            .await?;
            ranking = next;
            if handed.is_empty() && ranking.search.is_settled() {
                break;
            }
            if handed.is_empty() {
                return Err(ApiError::Refused {
                    limit: "max_churn_customers",
                    message: format!(
                        "settling this ranking needs more than {most} of its {} candidates scored \
                         (limits.max_churn_customers): their values at risk are too close to tell apart from \
                         their bounds; narrow the filter with segments, markets or a manager, or ask for fewer",
                        candidates.len()
                    ),
                    retry_after: None,
                });
            }
            let inputs = Self::inputs(ctx, &records, &candidates, &ranking.standings, &handed, now).await?;
            pending = Some((handed, inputs));
        }
        let Ranking { search, mut scored, .. } = ranking;
        let version = churn.version();
        let customers = search
            .ranked()
            .into_iter()
            .enumerate()
            .filter_map(|(position, candidate)| {
                let (input, risk) = scored.remove(&candidate)?;
                Some(AtRiskCustomer {
                    position: position as i32 + 1,
                    customer: super::stakeholders::Customer::of(candidates[candidate].clone()),
                    churn_risk: input.view(risk, version.clone()),
                })
            })
            .collect();
        Ok(AtRiskCustomers { candidates: candidates.len() as u64, scored: search.scored() as u64, customers })
    }
}

/// The state of one `atRiskCustomers` search between its passes.
struct Ranking {
    search: churn::AtRiskSearch,
    /// The standings of the candidates refined so far.
    standings: Vec<Option<churn::Standing>>,
    /// The inputs and risks of the candidates scored so far.
    scored: HashMap<usize, (ChurnInputs, ChurnRisk)>,
}

/// A customer's lifetime value, when recorded.
fn lifetime_value(row: &Stakeholder) -> Option<f64> {
    match &row.details {
        KindDetails::Customer(details) => details.lifetime_value.map(|value| value.get()),
        _ => None,
    }
}

impl ChurnQuery {
    /// The inputs of the candidates `handed` (positions in `candidates`): their standings from the records, their
    /// principal relationships' histories in one DataLoader batch.
    async fn inputs(
        ctx: &Context<'_>,
        records: &crate::engine::records::Records,
        candidates: &[Arc<Stakeholder>],
        standings: &[Option<churn::Standing>],
        handed: &[usize],
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<Option<ChurnInputs>>> {
        let api = ctx.data_unchecked::<ApiContext>();
        let wanted = handed.iter().filter_map(|&candidate| standings[candidate]?.principal).map(HistoryOf);
        let histories = ctx.data_unchecked::<Loaders>().load_many(wanted).await?;
        let mut inputs = Vec::with_capacity(handed.len());
        for &candidate in handed {
            let customer = &candidates[candidate];
            let input = match standings[candidate] {
                Some(standing) => {
                    let principal = standing.principal.and_then(|id| {
                        let history = histories.get(&HistoryOf(id)).cloned().unwrap_or_default();
                        Some((records.relationship(id)?.clone(), history))
                    });
                    Some(ChurnInputs::with(api, customer, principal, standing.manager_share))
                }
                None => ChurnInputs::of(ctx, customer, now).await?,
            };
            inputs.push(input);
        }
        Ok(inputs)
    }
}

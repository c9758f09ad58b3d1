//! `Customer.churnRisk`: how likely a customer is to leave, explained like strength. The model is
//! [`crate::domain::churn`]'s; this module gathers its inputs (the customer's relationships the caller may see,
//! their strengths, the principal one's history) and maps the result.

use super::error::{ApiError, ApiResult};
use super::loaders::{HistoryOf, Loaders};
use super::relationships::relationships_of_where;
use super::{ApiContext, Deadline};
use crate::domain::churn::{principal, ChurnDriverName, ChurnRisk};
use crate::domain::{CustomerStatus, KindDetails, Stakeholder, StakeholderId};
use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Arc;

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

    /// The id of the relationship the signals read (the manager's, otherwise the strongest); null without one.
    async fn principal_relationship(&self) -> Option<async_graphql::ID> {
        self.principal.map(|id| super::ids::GlobalId::Relationship(id).encode())
    }
}

/// The churn risk of `customer` now, from what the caller may see of it; `None` for a prospect or a customer who
/// has left. Its strengths are read from the relationships' decayed sums, the principal relationship's history
/// through the DataLoader, and the forecast and signals are computed on a blocking thread under a forecast turn
/// (as `fallsBelow`).
pub async fn churn_risk(ctx: &Context<'_>, customer: &Stakeholder) -> ApiResult<Option<ChurnRiskView>> {
    let KindDetails::Customer(details) = &customer.details else { return Ok(None) };
    if matches!(details.status, CustomerStatus::Prospect | CustomerStatus::Churned) {
        return Ok(None);
    }
    let api = ctx.data_unchecked::<ApiContext>();
    let now = Utc::now();
    let relationships = relationships_of_where(ctx, customer.id, |_| true).await?;
    let counterparts: Vec<StakeholderId> = relationships
        .iter()
        .map(|relationship| if relationship.from == customer.id { relationship.to } else { relationship.from })
        .collect();
    let loaded: HashMap<StakeholderId, Arc<Stakeholder>> =
        ctx.data_unchecked::<Loaders>().load_many(counterparts.iter().copied()).await?;
    let staff = |id: &StakeholderId| {
        loaded.get(id).is_some_and(|row| matches!(row.details, KindDetails::Employee { candidate: false, .. }))
    };
    let rows: Vec<(&crate::domain::Relationship, f64, bool)> = relationships
        .iter()
        .zip(&counterparts)
        .map(|(relationship, counterpart)| {
            (relationship, api.strength.evaluate(relationship, &relationship.sums, now).score, staff(counterpart))
        })
        .collect();
    let (chosen, manager_share) = principal(customer.id, &rows);
    let principal = chosen.map(|index| relationships[index].clone());
    let history = match &principal {
        Some(relationship) => {
            ctx.data_unchecked::<Loaders>().load_one(HistoryOf(relationship.id)).await?.unwrap_or_default()
        }
        None => Default::default(),
    };
    let deadline = ctx.data_opt::<Deadline>().map(|deadline| deadline.0);
    let turn = api.admission.forecast(deadline).await?;
    let (churn, strength) = (api.churn.clone(), api.strength.clone());
    let principal_id = principal.as_ref().map(|relationship| relationship.id);
    let risk = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let principal = principal.as_ref().map(|relationship| (relationship, &history[..]));
        churn.evaluate(churn.signals(&strength, principal, manager_share, now))
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, "a churn risk failed");
        ApiError::Internal
    })?;
    Ok(Some(ChurnRiskView {
        risk,
        model: api.churn.version(),
        lifetime_value: details.lifetime_value.map(|value| value.get()),
        principal: principal_id,
    }))
}

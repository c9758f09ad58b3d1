//! Relationship strength in the API: the score as of a time, the components that explain it, its trend, the
//! model's version, and when it will fall below a threshold without new interactions (docs/models.md, "Relationship strength").
//!
//! The present (any time at or after the last interaction) is O(1) from the decayed sums the store keeps on the
//! relationship; an earlier `asOf`, and the trend when it reaches back before the last interaction, read the
//! stored history instead (exact for any time).

use super::error::{ApiError, ApiResult};
use super::loaders::{HistoryOf, Loaders};
use super::relationships::Relationship;
use super::stakeholders::{load_stakeholder, StakeholderNode};
use super::{ApiContext, Deadline};
use crate::domain;
use crate::domain::strength::{ComponentName, DecayedSums, Strength, StrengthModel, TREND_DAYS};
use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// The parts of a relationship's strength.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "ComponentName")]
pub enum StrengthComponentName {
    /// Decayed, channel-weighted interaction volume: `1 − exp(−Σ d·w / κ)`.
    Intensity,
    /// How recent the last interaction is: `2^(−age / half-life)`.
    Recency,
    /// Balance of inbound and outbound interactions.
    Reciprocity,
    /// Decayed mean sentiment, mapped to [0, 1].
    Sentiment,
    /// Kotler level: `(level − 1) / 4`.
    Level,
    /// Trust, as stored.
    Trust,
    /// Commitment, as stored.
    Commitment,
    /// Distinct bonds / 3.
    Bonds,
    /// `1 − 2^(−years / 2)`.
    Tenure,
}

/// One component of a strength: its value, its weight, and what it adds to the score.
#[derive(SimpleObject, Clone, Debug)]
pub struct StrengthComponent {
    /// Which component.
    pub name: StrengthComponentName,
    /// Its value, in [0, 1].
    pub value: f64,
    /// Its weight in the model.
    pub weight: f64,
    /// What it adds to the score (the contributions add up to the score).
    pub contribution: f64,
}

/// A relationship's strength as of a time, and why.
pub struct RelationshipStrength {
    relationship: domain::Relationship,
    /// The sums at `as_of`: the stored ones, or rebuilt from the history when `as_of` is earlier.
    sums: DecayedSums,
    model: Arc<StrengthModel>,
    as_of: DateTime<Utc>,
    strength: Strength,
}

impl RelationshipStrength {
    /// The strength of `relationship` as of `as_of` (default: now).
    pub async fn load(
        ctx: &Context<'_>,
        relationship: domain::Relationship,
        as_of: Option<DateTime<Utc>>,
    ) -> ApiResult<Self> {
        let model = ctx.data_unchecked::<ApiContext>().strength.clone();
        let as_of = as_of.unwrap_or_else(Utc::now);
        let sums = sums_at(ctx, &model, &relationship, as_of).await?;
        let strength = model.evaluate(&relationship, &sums, as_of);
        Ok(Self { relationship, sums, model, as_of, strength })
    }

    /// The score.
    pub fn value(&self) -> f64 {
        self.strength.score
    }

    /// The relationship scored.
    pub fn relationship_id(&self) -> domain::RelationshipId {
        self.relationship.id
    }
}

#[Object]
impl RelationshipStrength {
    /// The score, in [0, 1].
    async fn score(&self) -> f64 {
        self.strength.score
    }

    /// The components that make up the score.
    async fn components(&self) -> Vec<StrengthComponent> {
        self.strength
            .components
            .iter()
            .map(|component| StrengthComponent {
                name: component.name.into(),
                value: component.value,
                weight: component.weight,
                contribution: component.contribution,
            })
            .collect()
    }

    /// The score minus the score 30 days earlier.
    async fn trend(&self, ctx: &Context<'_>) -> ApiResult<f64> {
        let before = self.as_of - Duration::days(TREND_DAYS);
        let sums = sums_at(ctx, &self.model, &self.relationship, before).await?;
        Ok(self.strength.score - self.model.evaluate(&self.relationship, &sums, before).score)
    }

    /// The scoring model's version.
    async fn model(&self) -> String {
        self.model.version()
    }

    /// The time the score is for.
    async fn as_of(&self) -> DateTime<Utc> {
        self.as_of
    }

    /// When, with no new interaction, the score falls below `threshold` (in [0, 1]); null if not within ten
    /// years (level, trust and tenure can hold it up).
    async fn falls_below(&self, ctx: &Context<'_>, threshold: f64) -> ApiResult<Option<DateTime<Utc>>> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ApiError::bad_input(
                "threshold",
                format!("{threshold} is not between 0 and 1; pass the strength to watch for, e.g. 0.3"),
            ));
        }
        // Up to ten years of daily scores: computed on a blocking thread, never on an async worker (the cost model
        // also bounds how many forecasts a request may ask for: `limits.max_forecasts`).
        let deadline = ctx.data_opt::<Deadline>().map(|deadline| deadline.0);
        let turn = ctx.data_unchecked::<ApiContext>().admission.forecast(deadline).await?;
        let (model, relationship, sums, as_of) = (self.model.clone(), self.relationship.clone(), self.sums, self.as_of);
        let forecast = move || {
            let _turn = turn;
            model.falls_below(&relationship, &sums, as_of, threshold)
        };
        tokio::task::spawn_blocking(forecast).await.map_err(|error| {
            tracing::error!(%error, "a forecast failed");
            ApiError::Internal
        })
    }
}

/// The decayed sums of `relationship` readable at `at`: the stored ones, unless `at` is before its last
/// interaction; then rebuilt from the history up to `at`.
async fn sums_at(
    ctx: &Context<'_>,
    model: &StrengthModel,
    relationship: &domain::Relationship,
    at: DateTime<Utc>,
) -> ApiResult<DecayedSums> {
    if relationship.sums.covers(at) {
        return Ok(relationship.sums);
    }
    let history = ctx.data_unchecked::<Loaders>().load_one(HistoryOf(relationship.id)).await?.unwrap_or_default();
    Ok(DecayedSums::from_history(model, history.iter(), at))
}

/// A relationship of a stakeholder, ranked by strength.
pub struct RankedRelationship {
    /// The stakeholder at the other end.
    pub counterpart: domain::StakeholderId,
    /// Its strength.
    pub strength: RelationshipStrength,
}

#[Object]
impl RankedRelationship {
    /// The relationship.
    async fn relationship(&self) -> Relationship {
        Relationship(self.strength.relationship.clone())
    }

    /// The stakeholder at the other end.
    async fn counterpart(&self, ctx: &Context<'_>) -> ApiResult<Option<StakeholderNode>> {
        load_stakeholder(ctx, self.counterpart).await
    }

    /// Its strength.
    async fn strength(&self) -> &RelationshipStrength {
        &self.strength
    }
}

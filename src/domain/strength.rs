//! Relationship strength (docs/models.md, "Relationship strength"): a deterministic, explainable score in [0, 1] evaluated as of a time,
//! from decayed interaction sums that are kept incrementally, so evaluating never scans the history.

use super::relationship::{Interaction, Relationship};
use super::vocabulary::{Channel, Direction};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Seconds in a day.
const DAY: f64 = 86_400.0;
/// Days in a year, for tenure.
const YEAR_DAYS: f64 = 365.25;
/// How far back `trend` looks.
pub const TREND_DAYS: i64 = 30;
/// How far ahead `falls_below` looks before it answers "not within the horizon".
pub const FORECAST_HORIZON_DAYS: i64 = 3_650;

/// The weight of each component; a component whose input is unknown (null trust) is left out with its weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Decayed, channel-weighted interaction volume.
    pub intensity: f64,
    /// How recent the last interaction is.
    pub recency: f64,
    /// Balance of inbound and outbound interactions.
    pub reciprocity: f64,
    /// Decayed mean sentiment.
    pub sentiment: f64,
    /// Kotler level.
    pub level: f64,
    /// Trust, when known.
    pub trust: f64,
    /// Commitment, when known.
    pub commitment: f64,
    /// Distinct bonds.
    pub bonds: f64,
    /// How long the relationship has lasted.
    pub tenure: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            intensity: 0.20,
            recency: 0.15,
            reciprocity: 0.10,
            sentiment: 0.10,
            level: 0.15,
            trust: 0.10,
            commitment: 0.10,
            bonds: 0.05,
            tenure: 0.05,
        }
    }
}

/// The scoring model: weights, half-life, κ and channel weights. Its `version` is reported with every score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrengthModel {
    /// Component weights.
    pub weights: Weights,
    /// Half-life of an interaction's contribution, in days.
    pub half_life_days: f64,
    /// Saturation constant of intensity.
    pub kappa: f64,
    /// Weight of each channel, in [`Channel::ALL`] order.
    pub channel_weights: [f64; 10],
}

impl Default for StrengthModel {
    fn default() -> Self {
        Self {
            weights: Weights::default(),
            half_life_days: 90.0,
            kappa: 4.0,
            // MEETING, EVENT, CALL, PURCHASE, SUPPORT, MESSAGE, EMAIL, SOCIAL, PRESS, FILING
            channel_weights: [1.0, 0.8, 0.6, 0.7, 0.5, 0.3, 0.3, 0.2, 0.4, 0.3],
        }
    }
}

impl StrengthModel {
    /// The model's version: `strength-v1` with the defaults, otherwise tagged as custom with a fingerprint of the
    /// parameters, so that two scores with one version were computed the same way.
    pub fn version(&self) -> String {
        if *self == Self::default() {
            return "strength-v1".to_owned();
        }
        format!("strength-v1-custom-{:016x}", fingerprint(self))
    }

    /// What the stored decayed sums depend on (half-life and channel weights), as text: sums computed under one
    /// fingerprint are wrong under another.
    pub fn sums_fingerprint(&self) -> String {
        serde_json::json!({ "half_life_days": self.half_life_days, "channel_weights": self.channel_weights })
            .to_string()
    }

    /// The weight of `channel`.
    pub fn channel_weight(&self, channel: Channel) -> f64 {
        self.channel_weights[channel as usize]
    }

    /// `2^(−seconds / half-life)`.
    fn decay(&self, seconds: f64) -> f64 {
        (-seconds / (self.half_life_days * DAY)).exp2()
    }
}

/// A model's parameters as one number (FNV-1a of their JSON): two models with one fingerprint compute the same way.
pub(crate) fn fingerprint(model: &impl Serialize) -> u64 {
    let text = serde_json::to_string(model).unwrap_or_default();
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// `time` in seconds since the epoch (millisecond precision), the unit of [`DecayedSums`].
pub fn seconds(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1_000.0
}

/// Decayed interaction sums of one relationship, all referred to one time `t_ref` (docs/models.md, "Relationship strength"): adding an
/// interaction and reading at any time at or after `t_ref` are O(1).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DecayedSums {
    /// Σ d·w(channel).
    pub weighted: f64,
    /// Σ d over inbound interactions.
    pub inbound: f64,
    /// Σ d over outbound interactions.
    pub outbound: f64,
    /// Σ d·sentiment.
    pub sentiment: f64,
    /// The time the sums are referred to, in seconds since the epoch.
    pub t_ref: f64,
    /// The last interaction, in seconds since the epoch.
    pub last: Option<f64>,
}

impl DecayedSums {
    /// Adds one interaction (in any order: a back-filled one is decayed to `t_ref` instead).
    pub fn add(
        &mut self,
        model: &StrengthModel,
        at: DateTime<Utc>,
        channel: Channel,
        direction: Direction,
        sentiment: f64,
    ) {
        let t = seconds(at);
        let factor = match self.last {
            // A back-filled interaction: decay it to the reference time instead of moving the reference back.
            Some(_) if t < self.t_ref => model.decay(self.t_ref - t),
            Some(_) => {
                let shift = model.decay(t - self.t_ref);
                self.weighted *= shift;
                self.inbound *= shift;
                self.outbound *= shift;
                self.sentiment *= shift;
                self.t_ref = t;
                1.0
            }
            None => {
                self.t_ref = t;
                1.0
            }
        };
        self.weighted += factor * model.channel_weight(channel);
        match direction {
            Direction::Inbound => self.inbound += factor,
            Direction::Outbound => self.outbound += factor,
        }
        self.sentiment += factor * sentiment;
        self.last = Some(self.last.map_or(t, |last| last.max(t)));
    }

    /// Whether the sums can be read at `at`: it is not before the last interaction they hold. (Earlier times
    /// need [`DecayedSums::from_history`].)
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        self.last.is_none_or(|_| seconds(at) >= self.t_ref)
    }

    /// The sums of `interactions` that happened at or before `at`, referred to their last one: the fallback for
    /// reading history (`at` before `t_ref`).
    pub fn from_history<'a>(
        model: &StrengthModel,
        interactions: impl IntoIterator<Item = &'a Interaction>,
        at: DateTime<Utc>,
    ) -> Self {
        let mut sums = Self::default();
        for interaction in interactions.into_iter().filter(|interaction| interaction.at <= at) {
            sums.add(model, interaction.at, interaction.channel, interaction.direction, interaction.sentiment.get());
        }
        sums
    }

    /// The sums decayed to `at` (which must not be before `t_ref`): (weighted, inbound, outbound, sentiment).
    fn at(&self, model: &StrengthModel, at: f64) -> (f64, f64, f64, f64) {
        let factor = model.decay((at - self.t_ref).max(0.0));
        (self.weighted * factor, self.inbound * factor, self.outbound * factor, self.sentiment * factor)
    }
}

/// The name of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ComponentName {
    /// Decayed, channel-weighted interaction volume.
    Intensity,
    /// How recent the last interaction is.
    Recency,
    /// Balance of inbound and outbound.
    Reciprocity,
    /// Decayed mean sentiment.
    Sentiment,
    /// Kotler level.
    Level,
    /// Trust.
    Trust,
    /// Commitment.
    Commitment,
    /// Distinct bonds.
    Bonds,
    /// Duration of the relationship.
    Tenure,
}

/// One component of a score: its value in [0, 1], its weight, and what it added to the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Which component.
    pub name: ComponentName,
    /// Its value, in [0, 1].
    pub value: f64,
    /// Its weight.
    pub weight: f64,
    /// `weight · value / Σ weights present`: the components' contributions add up to the score.
    pub contribution: f64,
}

/// A relationship's strength at one time, with the components that explain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strength {
    /// The score, in [0, 1].
    pub score: f64,
    /// The components present (trust and commitment are left out when unknown).
    pub components: Vec<Component>,
}

/// What a score needs of a relationship besides its interactions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// Kotler level, 1 to 5.
    pub level_rank: u8,
    /// How many distinct bonds.
    pub bonds: usize,
    /// Trust, when known.
    pub trust: Option<f64>,
    /// Commitment, when known.
    pub commitment: Option<f64>,
    /// When the relationship began, in seconds since the epoch.
    pub since: f64,
}

impl Standing {
    /// The standing of `relationship`.
    pub fn of(relationship: &Relationship) -> Self {
        Self {
            level_rank: relationship.level.rank(),
            bonds: relationship.bonds.len(),
            trust: relationship.trust.map(|trust| trust.get()),
            commitment: relationship.commitment.map(|commitment| commitment.get()),
            since: seconds(relationship.since),
        }
    }
}

/// The components present in one score: (name, value, weight), at most nine.
type Parts = ([(ComponentName, f64, f64); 9], usize);

impl StrengthModel {
    /// The components of a score at `t` (seconds since the epoch); sums must be referred to a time at or before
    /// `t`. One function for both the explained and the bare score, so that they cannot disagree.
    fn parts(&self, standing: &Standing, sums: &DecayedSums, t: f64) -> Parts {
        let weights = &self.weights;
        let mut parts = [(ComponentName::Intensity, 0.0, 0.0); 9];
        let mut len = 0;
        let mut push = |name: ComponentName, value: f64, weight: f64| {
            parts[len] = (name, value, weight);
            len += 1;
        };
        match sums.last {
            Some(last) => {
                let (weighted, inbound, outbound, sentiment) = sums.at(self, t);
                let total = inbound + outbound;
                push(ComponentName::Intensity, 1.0 - (-weighted / self.kappa).exp(), weights.intensity);
                push(ComponentName::Recency, self.decay((t - last).max(0.0)), weights.recency);
                let reciprocity = if total > 0.0 { 1.0 - (inbound - outbound).abs() / total } else { 0.0 };
                push(ComponentName::Reciprocity, reciprocity, weights.reciprocity);
                let mean = if total > 0.0 { sentiment / total } else { 0.0 };
                push(ComponentName::Sentiment, (1.0 + mean) / 2.0, weights.sentiment);
            }
            None => {
                push(ComponentName::Intensity, 0.0, weights.intensity);
                push(ComponentName::Recency, 0.0, weights.recency);
                push(ComponentName::Reciprocity, 0.0, weights.reciprocity);
                push(ComponentName::Sentiment, 0.5, weights.sentiment);
            }
        }
        push(ComponentName::Level, f64::from(standing.level_rank.saturating_sub(1)) / 4.0, weights.level);
        if let Some(trust) = standing.trust {
            push(ComponentName::Trust, trust, weights.trust);
        }
        if let Some(commitment) = standing.commitment {
            push(ComponentName::Commitment, commitment, weights.commitment);
        }
        push(ComponentName::Bonds, standing.bonds as f64 / 3.0, weights.bonds);
        let years = ((t - standing.since) / DAY / YEAR_DAYS).max(0.0);
        push(ComponentName::Tenure, 1.0 - (-years / 2.0).exp2(), weights.tenure);
        (parts, len)
    }

    /// The strength of `relationship` at `at`, from its decayed sums (which must be referred to a time at or
    /// before `at`; for an earlier time use [`DecayedSums::from_history`]).
    pub fn evaluate(&self, relationship: &Relationship, sums: &DecayedSums, at: DateTime<Utc>) -> Strength {
        let (parts, len) = self.parts(&Standing::of(relationship), sums, seconds(at));
        let parts = &parts[..len];
        let total_weight: f64 = parts.iter().map(|(_, _, weight)| weight).sum();
        let components: Vec<Component> = parts
            .iter()
            .map(|&(name, value, weight)| Component {
                name,
                value,
                weight,
                contribution: if total_weight > 0.0 { weight * value / total_weight } else { 0.0 },
            })
            .collect();
        let score = components.iter().map(|component| component.contribution).sum();
        Strength { score, components }
    }

    /// The bare score (no components, no allocation) at `t` seconds since the epoch: the engine's hot path.
    /// Equal to [`StrengthModel::evaluate`]'s score for the same inputs.
    pub fn score(&self, standing: &Standing, sums: &DecayedSums, t: f64) -> f64 {
        let (parts, len) = self.parts(standing, sums, t);
        let parts = &parts[..len];
        let total_weight: f64 = parts.iter().map(|(_, _, weight)| weight).sum();
        if total_weight > 0.0 {
            parts.iter().map(|(_, value, weight)| weight * value / total_weight).sum()
        } else {
            0.0
        }
    }

    /// The strength at `at` from the interaction history alone (exact for any time, past included).
    pub fn evaluate_history(
        &self,
        relationship: &Relationship,
        history: &[Interaction],
        at: DateTime<Utc>,
    ) -> Strength {
        self.evaluate(relationship, &DecayedSums::from_history(self, history, at), at)
    }

    /// Strength at `at` minus strength [`TREND_DAYS`] earlier, from the history.
    pub fn trend(&self, relationship: &Relationship, history: &[Interaction], at: DateTime<Utc>) -> f64 {
        let before = at - Duration::days(TREND_DAYS);
        self.evaluate_history(relationship, history, at).score
            - self.evaluate_history(relationship, history, before).score
    }

    /// The first time after `at` at which, with no new interaction, the strength is below `threshold`; `None` if
    /// that does not happen within [`FORECAST_HORIZON_DAYS`] (tenure keeps growing while the rest decays, so the
    /// score need not fall forever). Found to the second by a daily scan and bisection.
    pub fn falls_below(
        &self,
        relationship: &Relationship,
        sums: &DecayedSums,
        at: DateTime<Utc>,
        threshold: f64,
    ) -> Option<DateTime<Utc>> {
        // `score` is `evaluate(..).score` without building the components: this runs up to ~3,700 times a call.
        let standing = Standing::of(relationship);
        let below = |time: DateTime<Utc>| self.score(&standing, sums, seconds(time)) < threshold;
        if below(at) {
            return Some(at);
        }
        let mut low = at;
        for day in 1..=FORECAST_HORIZON_DAYS {
            let high = at + Duration::days(day);
            if below(high) {
                let (mut low, mut high) = (low, high);
                while high - low > Duration::seconds(1) {
                    let middle = low + (high - low) / 2;
                    if below(middle) {
                        high = middle;
                    } else {
                        low = middle;
                    }
                }
                return Some(high);
            }
            low = high;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Bond, BondSet, InteractionId, Level, Probability, RelationshipId, RelationshipType, Sentiment, StakeholderId,
    };
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().to_utc()
    }

    fn days_before(days: f64) -> DateTime<Utc> {
        at() - Duration::milliseconds((days * DAY * 1_000.0).round() as i64)
    }

    fn relationship(
        level: u8,
        trust: Option<f64>,
        commitment: Option<f64>,
        bonds: usize,
        since_days: f64,
    ) -> Relationship {
        Relationship {
            id: RelationshipId(1),
            from: StakeholderId(1),
            to: StakeholderId(2),
            rel_type: RelationshipType::Knows,
            level: Level::from_rank(level).unwrap(),
            bonds: BondSet::of(Bond::ALL.iter().copied().take(bonds)),
            trust: trust.map(|value| Probability::parse(value).unwrap()),
            commitment: commitment.map(|value| Probability::parse(value).unwrap()),
            since: days_before(since_days),
            basis: None,
            created_at: days_before(since_days),
            updated_at: days_before(since_days),
            sums: DecayedSums::default(),
        }
    }

    fn interaction(days: f64, channel: Channel, direction: Direction, sentiment: f64) -> Interaction {
        Interaction {
            id: InteractionId(0),
            relationship: RelationshipId(1),
            at: days_before(days),
            channel,
            direction,
            sentiment: Sentiment::parse(sentiment).unwrap(),
            amount: None,
            product_line: None,
            note: None,
            topic: None,
            key: None,
        }
    }

    fn calls(directions: [Direction; 4]) -> Vec<Interaction> {
        [(10.0, 0.2), (20.0, 0.4), (30.0, 0.0), (40.0, -0.2)]
            .iter()
            .zip(directions)
            .map(|((days, sentiment), direction)| interaction(*days, Channel::Call, direction, *sentiment))
            .collect()
    }

    fn partnership() -> (Relationship, Vec<Interaction>) {
        let history = vec![
            interaction(3.0, Channel::Meeting, Direction::Inbound, 0.9),
            interaction(15.0, Channel::Purchase, Direction::Outbound, 0.6),
            interaction(45.0, Channel::Event, Direction::Inbound, 0.7),
            interaction(200.0, Channel::Email, Direction::Outbound, -0.1),
        ];
        (relationship(5, Some(0.9), Some(0.8), 3, 1461.0), history)
    }

    /// Expected scores computed by hand from docs/models.md ("Relationship strength") (each decay taken directly from its interaction's age,
    /// without the incremental sums), to 1e-9.
    #[test]
    fn hand_computed_cases() {
        use Direction::{Inbound as In, Outbound as Out};
        let model = StrengthModel::default();
        let (partnership, partnership_history) = partnership();
        let cases: Vec<(&str, Relationship, Vec<Interaction>, f64)> = vec![
            ("no interactions", relationship(1, None, None, 0, 0.0), vec![], 0.0625),
            (
                "one old meeting",
                relationship(2, Some(0.6), None, 1, 365.25),
                vec![interaction(180.0, Channel::Meeting, Out, 0.5)],
                0.2815874611607157,
            ),
            ("balanced", relationship(3, None, None, 2, 730.5), calls([In, Out, In, Out]), 0.6280235252693295),
            ("one-way", relationship(3, None, None, 2, 730.5), calls([Out, Out, Out, Out]), 0.5078346694756336),
            (
                "trust of zero",
                relationship(3, Some(0.0), None, 2, 730.5),
                calls([In, Out, In, Out]),
                0.5582431335727372,
            ),
            ("partnership", partnership, partnership_history, 0.802642568967796),
        ];
        for (name, relationship, history, expected) in cases {
            let strength = model.evaluate_history(&relationship, &history, at());
            assert!((strength.score - expected).abs() < 1e-9, "{name}: {} != {expected}", strength.score);
            let sum: f64 = strength.components.iter().map(|component| component.contribution).sum();
            assert!((sum - strength.score).abs() < 1e-12, "{name}: contributions add up to the score");
        }
    }

    #[test]
    fn unknown_trust_is_left_out_with_its_weight() {
        let model = StrengthModel::default();
        let unknown = model.evaluate_history(&relationship(3, None, None, 2, 730.5), &[], at());
        assert!(unknown.components.iter().all(|component| component.name != ComponentName::Trust));
        let total: f64 = unknown.components.iter().map(|component| component.weight).sum();
        assert!((total - 0.8).abs() < 1e-12);
    }

    #[test]
    fn as_of_in_the_past_gives_the_historical_value() {
        let model = StrengthModel::default();
        let (relationship, history) = partnership();
        let earlier = at() - Duration::days(30);
        let strength = model.evaluate_history(&relationship, &history, earlier);
        assert!((strength.score - 0.698984705732856).abs() < 1e-9, "{}", strength.score);
        let trend = model.trend(&relationship, &history, at());
        assert!((trend - (0.802642568967796 - 0.698984705732856)).abs() < 1e-9);
    }

    #[test]
    fn the_forecast_finds_the_crossing() {
        let model = StrengthModel::default();
        let (relationship, history) = partnership();
        let sums = DecayedSums::from_history(&model, &history, at());
        let when = model.falls_below(&relationship, &sums, at(), 0.7).expect("decays below 0.7");
        assert!(model.evaluate(&relationship, &sums, when).score < 0.7);
        assert!(model.evaluate(&relationship, &sums, when - Duration::seconds(2)).score >= 0.7);
        assert_eq!(model.falls_below(&relationship, &sums, at(), 0.1), None, "level, trust and tenure keep it up");
    }

    #[test]
    fn custom_models_report_another_version() {
        assert_eq!(StrengthModel::default().version(), "strength-v1");
        let custom = StrengthModel { half_life_days: 30.0, ..StrengthModel::default() };
        assert!(custom.version().starts_with("strength-v1-custom-"));
    }

    proptest! {
        /// Incremental sums, fed in any order (back-fills included), give the same strength as a full
        /// recomputation from the history.
        #[test]
        fn incremental_sums_equal_recomputation(
            raw in prop::collection::vec((0.0f64..730.0, 0usize..10, any::<bool>(), -1.0f64..=1.0), 1..40),
            order in prop::collection::vec(any::<u32>(), 40),
            read_later in 0.0f64..200.0,
        ) {
            let model = StrengthModel::default();
            let history: Vec<Interaction> = raw
                .iter()
                .map(|(days, channel, inbound, sentiment)| {
                    let direction = if *inbound { Direction::Inbound } else { Direction::Outbound };
                    interaction(*days, Channel::ALL[*channel], direction, *sentiment)
                })
                .collect();
            let mut shuffled: Vec<(u32, &Interaction)> = order.iter().copied().zip(history.iter()).collect();
            shuffled.sort_by_key(|(key, _)| *key);
            let mut sums = DecayedSums::default();
            for (_, interaction) in &shuffled {
                sums.add(&model, interaction.at, interaction.channel, interaction.direction, interaction.sentiment.get());
            }
            let relationship = relationship(3, Some(0.5), None, 1, 800.0);
            let when = at() + Duration::seconds((read_later * DAY) as i64);
            let incremental = model.evaluate(&relationship, &sums, when);
            let direct = direct_score(&model, &relationship, &history, when);
            prop_assert!((incremental.score - direct).abs() < 1e-9, "{} vs {}", incremental.score, direct);
        }
    }

    /// The formula of docs/models.md ("Relationship strength") written out directly over the history, with no shared code.
    fn direct_score(
        model: &StrengthModel,
        relationship: &Relationship,
        history: &[Interaction],
        at: DateTime<Utc>,
    ) -> f64 {
        let t = at.timestamp_millis() as f64 / 1_000.0;
        let h = model.half_life_days * DAY;
        let decay =
            |interaction: &Interaction| 2f64.powf(-(t - interaction.at.timestamp_millis() as f64 / 1_000.0) / h);
        let weighted: f64 = history.iter().map(|i| decay(i) * model.channel_weight(i.channel)).sum();
        let inbound: f64 = history.iter().filter(|i| i.direction == Direction::Inbound).map(decay).sum();
        let outbound: f64 = history.iter().filter(|i| i.direction == Direction::Outbound).map(decay).sum();
        let sentiment: f64 = history.iter().map(|i| decay(i) * i.sentiment.get()).sum();
        let last = history.iter().map(|i| i.at).max().unwrap();
        let w = &model.weights;
        let parts = [
            (w.intensity, 1.0 - (-weighted / model.kappa).exp()),
            (w.recency, 2f64.powf(-(at - last).num_milliseconds() as f64 / 1_000.0 / h)),
            (w.reciprocity, 1.0 - (inbound - outbound).abs() / (inbound + outbound)),
            (w.sentiment, (1.0 + sentiment / (inbound + outbound)) / 2.0),
            (w.level, (f64::from(relationship.level.rank()) - 1.0) / 4.0),
            (w.trust, relationship.trust.unwrap().get()),
            (w.bonds, relationship.bonds.len() as f64 / 3.0),
            (
                w.tenure,
                1.0 - 2f64
                    .powf(-((at - relationship.since).num_milliseconds() as f64 / 1_000.0 / DAY / YEAR_DAYS) / 2.0),
            ),
        ];
        parts.iter().map(|(weight, value)| weight * value).sum::<f64>()
            / parts.iter().map(|(weight, _)| weight).sum::<f64>()
    }
}

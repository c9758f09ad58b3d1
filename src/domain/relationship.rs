//! Relationships between stakeholders and the two-way interactions recorded on them.

use super::strength::DecayedSums;
use super::values::{Amount, InteractionId, Label, Probability, RelationshipId, Sentiment, StakeholderId};
use super::vocabulary::{Basis, BondSet, Channel, Direction, Level, RelationshipType, Topic};
use chrono::{DateTime, Utc};

/// A directed, typed relationship; `(from, to, type)` is unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Relationship {
    /// Store-assigned identity.
    pub id: RelationshipId,
    /// Where it starts.
    pub from: StakeholderId,
    /// Where it ends.
    pub to: StakeholderId,
    /// What it is.
    pub rel_type: RelationshipType,
    /// Kotler's level.
    pub level: Level,
    /// Bonds that tie it.
    pub bonds: BondSet,
    /// Trust in [0, 1], when known.
    pub trust: Option<Probability>,
    /// Commitment in [0, 1], when known.
    pub commitment: Option<Probability>,
    /// When it began.
    pub since: DateTime<Utc>,
    /// What it grew from, when known.
    pub basis: Option<Basis>,
    /// When it was first recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Decayed sums of its interactions, kept by the store as interactions are recorded (derived, so not part of
    /// its serialized record or of change payloads).
    pub sums: DecayedSums,
}

impl Relationship {
    /// The end that is not `id` (the `to` end when `id` is neither).
    pub fn other_end(&self, id: StakeholderId) -> StakeholderId {
        if self.to == id {
            self.from
        } else {
            self.to
        }
    }
}

/// Creates a relationship or changes the one with the same `(from, to, type)`; absent fields keep their value
/// (or take the default on creation: level BASIC, no bonds, unknown trust and commitment, since now).
#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipUpsert {
    /// Where it starts.
    pub from: StakeholderId,
    /// Where it ends.
    pub to: StakeholderId,
    /// What it is.
    pub rel_type: RelationshipType,
    /// New level.
    pub level: Option<Level>,
    /// New bonds (replaces the set).
    pub bonds: Option<BondSet>,
    /// New trust.
    pub trust: Option<Probability>,
    /// New commitment.
    pub commitment: Option<Probability>,
    /// New start date.
    pub since: Option<DateTime<Utc>>,
    /// New basis.
    pub basis: Option<Basis>,
}

impl RelationshipUpsert {
    /// The relationship this upsert creates when none exists yet.
    pub fn create(self, id: RelationshipId, at: DateTime<Utc>) -> Relationship {
        Relationship {
            id,
            from: self.from,
            to: self.to,
            rel_type: self.rel_type,
            level: self.level.unwrap_or(Level::Basic),
            bonds: self.bonds.unwrap_or_default(),
            trust: self.trust,
            commitment: self.commitment,
            since: stored_time(self.since.unwrap_or(at)),
            basis: self.basis,
            created_at: at,
            updated_at: at,
            sums: DecayedSums::default(),
        }
    }

    /// Applies this upsert to the existing relationship with the same ends and type.
    pub fn update(self, existing: &mut Relationship, at: DateTime<Utc>) {
        debug_assert_eq!((existing.from, existing.to, existing.rel_type), (self.from, self.to, self.rel_type));
        if let Some(level) = self.level {
            existing.level = level;
        }
        if let Some(bonds) = self.bonds {
            existing.bonds = bonds;
        }
        if self.trust.is_some() {
            existing.trust = self.trust;
        }
        if self.commitment.is_some() {
            existing.commitment = self.commitment;
        }
        if let Some(since) = self.since.map(stored_time) {
            existing.since = since;
        }
        if self.basis.is_some() {
            existing.basis = self.basis;
        }
        existing.updated_at = at;
    }
}

/// One recorded interaction on a relationship.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// Store-assigned identity.
    pub id: InteractionId,
    /// The relationship it happened on.
    pub relationship: RelationshipId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// How.
    pub channel: Channel,
    /// Who reached out.
    pub direction: Direction,
    /// How it felt.
    pub sentiment: Sentiment,
    /// Amount, for purchases.
    pub amount: Option<Amount>,
    /// Product line, for purchases.
    pub product_line: Option<Label>,
    /// What it was about, when recorded.
    pub topic: Option<Topic>,
    /// Free text.
    pub note: Option<String>,
    /// The recorder's own identifier for it (a mail's Message-ID, a CRM activity id), unique in the store.
    pub key: Option<Label>,
}

/// An interaction to record; the store assigns the id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInteraction {
    /// The relationship it happened on.
    pub relationship: RelationshipId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// How.
    pub channel: Channel,
    /// Who reached out.
    pub direction: Direction,
    /// How it felt.
    pub sentiment: Sentiment,
    /// Amount, for purchases.
    pub amount: Option<Amount>,
    /// Product line, for purchases.
    pub product_line: Option<Label>,
    /// What it was about, when recorded.
    pub topic: Option<Topic>,
    /// Free text.
    pub note: Option<String>,
    /// The recorder's own identifier for it, unique in the store: recording an interaction whose key is already
    /// recorded changes nothing when it is the same one, and is refused when it differs, so a retried or repeated
    /// recording is recorded once.
    pub key: Option<Label>,
}

impl NewInteraction {
    /// The stored interaction with the store's id.
    pub fn with_id(self, id: InteractionId) -> Interaction {
        Interaction {
            id,
            relationship: self.relationship,
            at: self.at,
            channel: self.channel,
            direction: self.direction,
            sentiment: self.sentiment,
            amount: self.amount,
            product_line: self.product_line,
            topic: self.topic,
            note: self.note,
            key: self.key,
        }
    }

    /// The first field in which `stored` differs from this interaction (times compared as stored, to the
    /// millisecond), or `None` when it is the same interaction.
    pub fn differs_from(&self, stored: &Interaction) -> Option<&'static str> {
        if self.relationship != stored.relationship {
            Some("relationship")
        } else if stored_time(self.at) != stored_time(stored.at) {
            Some("at")
        } else if self.channel != stored.channel {
            Some("channel")
        } else if self.direction != stored.direction {
            Some("direction")
        } else if !same_number(self.sentiment.get(), stored.sentiment.get()) {
            Some("sentiment")
        } else if !match (self.amount, stored.amount) {
            (Some(given), Some(kept)) => same_number(given.get(), kept.get()),
            (given, kept) => given.is_none() && kept.is_none(),
        } {
            Some("amount")
        } else if self.product_line != stored.product_line {
            Some("productLine")
        } else if self.topic != stored.topic {
            Some("topic")
        } else if self.note != stored.note {
            Some("note")
        } else {
            None
        }
    }
}

/// Whether two numbers are the same value as a store keeps it: equal, or within a relative 10⁻¹² (a Cypher engine
/// may hand back a double with 15 significant digits, and that is not another value the recorder meant).
fn same_number(given: f64, kept: f64) -> bool {
    given == kept || (given - kept).abs() <= 1e-12 * given.abs().max(kept.abs())
}

/// How far ahead of the server's clock an interaction may be dated (clock skew between systems).
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

impl NewInteraction {
    /// Refuses an interaction dated in the future (beyond [`MAX_CLOCK_SKEW`]) relative to `now`.
    pub fn check_time(&self, now: DateTime<Utc>) -> Result<(), super::values::InvalidValue> {
        Self::future_check(self.at, now)
    }

    /// Refuses a time `at` in the future (beyond [`MAX_CLOCK_SKEW`]) relative to `now`.
    pub fn future_check(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), super::values::InvalidValue> {
        if at > now + MAX_CLOCK_SKEW {
            Err(super::values::InvalidValue(format!(
                "{} is in the future; record interactions once they have happened (server time is {})",
                at.to_rfc3339(),
                now.to_rfc3339()
            )))
        } else {
            Ok(())
        }
    }
}

/// `time` as the stores keep it, to the millisecond: an upsert that sends a finer time than it was stored with
/// then compares equal to what is stored (and changes nothing) instead of looking like a change every time.
fn stored_time(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

#[cfg(test)]
mod same_number_tests {
    use super::same_number;

    #[test]
    fn a_double_read_back_with_fifteen_digits_is_the_same_number_and_another_amount_is_not() {
        assert!(same_number(59.97, 59.970000000000006));
        assert!(same_number(0.0, 0.0));
        assert!(!same_number(59.97, 59.98));
        assert!(!same_number(1e-300, 0.0));
    }
}

//! Validated value types: each is parsed once where input enters and is valid by construction inside.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a raw value was refused; the caller adds the input path it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Store-assigned identity of a stakeholder; lower ids win deterministic ties.
    StakeholderId
);
id_type!(
    /// Store-assigned identity of a relationship.
    RelationshipId
);
id_type!(
    /// Store-assigned identity of one recorded interaction.
    InteractionId
);
id_type!(
    /// Store-assigned identity of a relationship-marketing programme.
    ProgramId
);
id_type!(
    /// Store-assigned identity of a webhook.
    WebhookId
);

/// Declares a validated number: a finite `f64` that `accepts`, refused with `hint` (which follows the value).
macro_rules! bounded_number {
    ($(#[$doc:meta])* $name:ident, $accepts:expr, $hint:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[serde(try_from = "f64", into = "f64")]
        pub struct $name(f64);

        impl $name {
            /// Parses a number, refusing one out of range (or not finite) with how to fix it.
            pub fn parse(value: f64) -> Result<Self, InvalidValue> {
                let accepts: fn(f64) -> bool = $accepts;
                if value.is_finite() && accepts(value) {
                    Ok(Self(value))
                } else {
                    Err(InvalidValue(format!(concat!("{} ", $hint), value)))
                }
            }

            /// The number itself.
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl TryFrom<f64> for $name {
            type Error = InvalidValue;
            fn try_from(value: f64) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for f64 {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

bounded_number!(
    /// A number in [0, 1]: power, interest, trust, commitment.
    Probability,
    |value| (0.0..=1.0).contains(&value),
    "is not a number between 0 and 1; send a value in [0, 1], for example 0.7"
);

bounded_number!(
    /// How an interaction felt, in [−1, 1]: −1 hostile, 0 neutral, 1 delighted.
    Sentiment,
    |value| (-1.0..=1.0).contains(&value),
    "is not a sentiment between -1 and 1; send a value in [-1, 1] (-1 hostile, 0 neutral, 1 delighted)"
);

bounded_number!(
    /// A non-negative, finite amount of money (lifetime value, purchase amount).
    Amount,
    |value| value >= 0.0,
    "is not a valid amount; send a finite number of at least 0"
);

/// Longest text accepted for a name or other short label.
pub const MAX_LABEL_CHARS: usize = 200;
/// Longest free-text note accepted on an interaction.
pub const MAX_NOTE_CHARS: usize = 4000;

/// A trimmed, non-empty label of at most [`MAX_LABEL_CHARS`] characters (names, keys, segments, roles).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// Trims the text and checks it is non-empty and not too long.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidValue("must not be empty or only spaces; send at least one visible character".into()));
        }
        let chars = trimmed.chars().count();
        if chars > MAX_LABEL_CHARS {
            return Err(InvalidValue(format!("is {chars} characters long; shorten it to at most {MAX_LABEL_CHARS}")));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidValue("contains control characters; remove line breaks and tabs".into()));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The text itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Label {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Label> for String {
    fn from(value: Label) -> Self {
        value.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A free-text note: trimmed, at most [`MAX_NOTE_CHARS`] characters, empty becomes absent.
pub fn parse_note(value: &str) -> Result<Option<String>, InvalidValue> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(InvalidValue(format!("is {chars} characters long; shorten it to at most {MAX_NOTE_CHARS}")));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_bounds() {
        assert!(Probability::parse(0.0).is_ok());
        assert!(Probability::parse(1.0).is_ok());
        assert!(Probability::parse(1.5).is_err());
        assert!(Probability::parse(-0.1).is_err());
        assert!(Probability::parse(f64::NAN).is_err());
    }

    #[test]
    fn sentiment_bounds() {
        assert!(Sentiment::parse(-1.0).is_ok());
        assert!(Sentiment::parse(-2.0).is_err());
        assert!(Sentiment::parse(f64::INFINITY).is_err());
    }

    #[test]
    fn labels_are_trimmed_and_non_empty() {
        assert_eq!(Label::parse("  Acme ").unwrap().as_str(), "Acme");
        assert!(Label::parse("   ").is_err());
        assert!(Label::parse(&"x".repeat(MAX_LABEL_CHARS + 1)).is_err());
        assert!(Label::parse("a\nb").is_err());
    }

    #[test]
    fn notes_may_be_empty() {
        assert_eq!(parse_note("  ").unwrap(), None);
        assert_eq!(parse_note(" hi ").unwrap().as_deref(), Some("hi"));
    }
}

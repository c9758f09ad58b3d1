//! Mapping between SQLite rows and domain records.

use crate::domain::strength::DecayedSums;
use crate::domain::{
    BondSet, ChangeEvent, ChangeKind, Interaction, InteractionId, Level, MarketSet, Program, ProgramId, Relationship,
    RelationshipId, Stakeholder, StakeholderId,
};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::Row;
use std::str::FromStr;

/// Milliseconds since the epoch, as stored.
pub fn to_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// A stored time.
pub fn from_ms(ms: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| conversion_error(Type::Integer, format!("time {ms} ms is out of range")))
}

fn conversion_error(kind: Type, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, kind, message.into())
}

pub fn parse_text<T: FromStr>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.get(index)?;
    text.parse().map_err(|error: T::Err| conversion_error(Type::Text, error.to_string()))
}

fn parse_probability(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<crate::domain::Probability>> {
    let value: Option<f64> = row.get(index)?;
    value
        .map(crate::domain::Probability::parse)
        .transpose()
        .map_err(|error| conversion_error(Type::Real, error.to_string()))
}

/// Columns read by [`stakeholder`].
pub const STAKEHOLDER_COLUMNS: &str = "record";

/// A stakeholder from its stored JSON record.
pub fn stakeholder(row: &Row<'_>) -> rusqlite::Result<Stakeholder> {
    let record: String = row.get(0)?;
    crate::store::record::read_stakeholder(&record).map_err(|error| conversion_error(Type::Text, error.to_string()))
}

/// Columns read by [`program`].
pub const PROGRAM_COLUMNS: &str = "id, key, name, kind, markets, created_at";

/// A programme from [`PROGRAM_COLUMNS`].
pub fn program(row: &Row<'_>) -> rusqlite::Result<Program> {
    let label = |index: usize| -> rusqlite::Result<crate::domain::Label> {
        let text: String = row.get(index)?;
        crate::domain::Label::parse(&text).map_err(|error| conversion_error(Type::Text, error.to_string()))
    };
    Ok(Program {
        id: ProgramId(row.get(0)?),
        key: label(1)?,
        name: label(2)?,
        kind: parse_text(row, 3)?,
        markets: MarketSet::from_bits(row.get(4)?),
        created_at: from_ms(row.get(5)?)?,
    })
}

/// Columns read by [`relationship`].
pub const RELATIONSHIP_COLUMNS: &str =
    "id, from_id, to_id, type, level, bonds, trust, commitment, since, basis, created_at, updated_at, \
     sum_weighted, sum_inbound, sum_outbound, sum_sentiment, last_at";

/// A relationship from [`RELATIONSHIP_COLUMNS`].
pub fn relationship(row: &Row<'_>) -> rusqlite::Result<Relationship> {
    let level: u8 = row.get(4)?;
    let basis: Option<String> = row.get(9)?;
    Ok(Relationship {
        id: RelationshipId(row.get(0)?),
        from: StakeholderId(row.get(1)?),
        to: StakeholderId(row.get(2)?),
        rel_type: parse_text(row, 3)?,
        level: Level::from_rank(level)
            .ok_or_else(|| conversion_error(Type::Integer, format!("level {level} is not 1 to 5")))?,
        bonds: BondSet::from_bits(row.get(5)?),
        trust: parse_probability(row, 6)?,
        commitment: parse_probability(row, 7)?,
        since: from_ms(row.get(8)?)?,
        basis: basis
            .map(|text| text.parse())
            .transpose()
            .map_err(|error: crate::domain::InvalidValue| conversion_error(Type::Text, error.0))?,
        created_at: from_ms(row.get(10)?)?,
        updated_at: from_ms(row.get(11)?)?,
        sums: sums(row, 12)?,
    })
}

/// The decayed sums stored from column `first` on (weighted, inbound, outbound, sentiment, last_at).
fn sums(row: &Row<'_>, first: usize) -> rusqlite::Result<DecayedSums> {
    let last: Option<i64> = row.get(first + 4)?;
    let last = last.map(|ms| ms as f64 / 1_000.0);
    Ok(DecayedSums {
        weighted: row.get(first)?,
        inbound: row.get(first + 1)?,
        outbound: row.get(first + 2)?,
        sentiment: row.get(first + 3)?,
        t_ref: last.unwrap_or(0.0),
        last,
    })
}

/// Columns read by [`interaction`].
pub const INTERACTION_COLUMNS: &str =
    "id, relationship_id, at, channel, direction, sentiment, amount, product_line, note, topic, key";

/// An interaction from [`INTERACTION_COLUMNS`].
pub fn interaction(row: &Row<'_>) -> rusqlite::Result<Interaction> {
    let sentiment: f64 = row.get(5)?;
    let amount: Option<f64> = row.get(6)?;
    let product_line: Option<String> = row.get(7)?;
    Ok(Interaction {
        id: InteractionId(row.get(0)?),
        relationship: RelationshipId(row.get(1)?),
        at: from_ms(row.get(2)?)?,
        channel: parse_text(row, 3)?,
        direction: parse_text(row, 4)?,
        sentiment: crate::domain::Sentiment::parse(sentiment).map_err(|error| conversion_error(Type::Real, error.0))?,
        amount: amount
            .map(crate::domain::Amount::parse)
            .transpose()
            .map_err(|error| conversion_error(Type::Real, error.0))?,
        product_line: product_line
            .map(|text| crate::domain::Label::parse(&text))
            .transpose()
            .map_err(|error| conversion_error(Type::Text, error.0))?,
        note: row.get(8)?,
        topic: row
            .get::<_, Option<String>>(9)?
            .map(|text| text.parse())
            .transpose()
            .map_err(|error: crate::domain::InvalidValue| conversion_error(Type::Text, error.0))?,
        key: row
            .get::<_, Option<String>>(10)?
            .map(|text| crate::domain::Label::parse(&text))
            .transpose()
            .map_err(|error| conversion_error(Type::Text, error.0))?,
    })
}

/// Columns read by [`change_event`].
pub const CHANGE_COLUMNS: &str = "seq, at, kind, stakeholders, relationship_id, payload";

/// A change-log entry from [`CHANGE_COLUMNS`].
pub fn change_event(row: &Row<'_>) -> rusqlite::Result<ChangeEvent> {
    let kind: String = row.get(2)?;
    let stakeholders: String = row.get(3)?;
    let payload: String = row.get(5)?;
    let json_error = |error: serde_json::Error| conversion_error(Type::Text, error.to_string());
    let kind = serde_json::from_value::<ChangeKind>(serde_json::Value::String(kind)).map_err(json_error)?;
    Ok(ChangeEvent {
        seq: row.get(0)?,
        at: from_ms(row.get(1)?)?,
        kind,
        stakeholders: serde_json::from_str(&stakeholders).map_err(json_error)?,
        relationship: row.get::<_, Option<i64>>(4)?.map(RelationshipId),
        payload: crate::store::record::read_change(kind, &payload)
            .map_err(|error| conversion_error(Type::Text, error.to_string()))?,
    })
}

/// A database failure, logged in full and reported without details.
pub fn internal(error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(error.to_string())
}

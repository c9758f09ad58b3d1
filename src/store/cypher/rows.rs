//! Mapping between domain records and the properties and columns of the Cypher backend. Times are milliseconds
//! since the epoch; vocabularies are their stored spellings; a stakeholder keeps its whole record, and a change
//! event its payload, in their stored forms (`store::record`).

use super::value::{map, Value};
use crate::domain::strength::DecayedSums;
use crate::domain::{
    Amount, BondSet, ChangeEvent, ChangeKind, Interaction, InteractionId, Label, Level, MarketSet, Probability,
    Program, ProgramId, Relationship, RelationshipId, Sentiment, Stakeholder, StakeholderId,
};
use crate::store::{record, NodeRow, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use std::str::FromStr;

fn invalid(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("the graph database holds an invalid {what}: {detail}"))
}

fn ms(time: DateTime<Utc>) -> Value {
    Value::Int(time.timestamp_millis())
}

fn time(value: &Value) -> StoreResult<DateTime<Utc>> {
    let ms = value.int()?;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| invalid("time", format!("{ms} ms")))
}

fn parse<T: FromStr>(value: &Value, what: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    let text = value.text()?;
    text.parse().map_err(|error| invalid(what, error))
}

/// The properties of a stakeholder node.
pub fn stakeholder_props(stakeholder: &Stakeholder) -> StoreResult<Value> {
    let markets = stakeholder.markets();
    Ok(map([
        ("id", stakeholder.id.0.into()),
        ("key", stakeholder.key.as_str().into()),
        ("kind", stakeholder.kind().as_str().into()),
        ("name", stakeholder.name.as_str().into()),
        ("status", stakeholder.details.customer_status().map(|status| status.as_str()).into()),
        ("markets", i64::from(markets.bits()).into()),
        ("market_names", markets.iter().map(|market| market.as_str()).collect::<Vec<_>>().into()),
        ("power", stakeholder.power.get().into()),
        ("interest", stakeholder.interest.get().into()),
        ("private", stakeholder.private.into()),
        ("created_at", ms(stakeholder.created_at)),
        ("updated_at", ms(stakeholder.updated_at)),
        ("archived_at", stakeholder.archived_at.map(|at| at.timestamp_millis()).into()),
        ("record", Value::Text(record::write_stakeholder(stakeholder)?)),
    ]))
}

/// The properties of a programme node.
pub fn program_props(program: &Program) -> Value {
    map([
        ("id", program.id.0.into()),
        ("key", program.key.as_str().into()),
        ("name", program.name.as_str().into()),
        ("kind", program.kind.as_str().into()),
        ("markets", i64::from(program.markets.bits()).into()),
        ("created_at", ms(program.created_at)),
    ])
}

/// A programme from a [`super::statements::PROGRAMS`] row.
pub fn program(row: &[Value]) -> StoreResult<Program> {
    let label = |value: &Value| Label::parse(value.text()?).map_err(|error| invalid("programme label", error));
    let markets = row[4].int()?;
    Ok(Program {
        id: ProgramId(row[0].int()?),
        key: label(&row[1])?,
        name: label(&row[2])?,
        kind: parse(&row[3], "programme kind")?,
        markets: MarketSet::from_bits(u8::try_from(markets).map_err(|_| invalid("market set", markets))?),
        created_at: time(&row[5])?,
    })
}

/// A stakeholder from its `record` column.
pub fn stakeholder(row: &[Value]) -> StoreResult<Stakeholder> {
    record::read_stakeholder(row[0].text()?)
}

/// A projection row from a [`super::statements::SCAN_STAKEHOLDERS`] row.
pub fn node_row(row: &[Value]) -> StoreResult<NodeRow> {
    let markets = row[2].int()?;
    Ok(NodeRow {
        id: StakeholderId(row[0].int()?),
        kind: parse(&row[1], "stakeholder kind")?,
        markets: crate::domain::MarketSet::from_bits(
            u8::try_from(markets).map_err(|_| invalid("market set", markets))?,
        ),
        private: row[3].bool()?,
    })
}

/// The properties of a relationship, its decayed sums included.
pub fn relationship_props(relationship: &Relationship) -> Value {
    let sums = &relationship.sums;
    map([
        ("id", relationship.id.0.into()),
        ("level", i64::from(relationship.level.rank()).into()),
        ("bonds", i64::from(relationship.bonds.bits()).into()),
        ("trust", relationship.trust.map(|trust| trust.get()).into()),
        ("commitment", relationship.commitment.map(|commitment| commitment.get()).into()),
        ("since", ms(relationship.since)),
        ("basis", relationship.basis.map(|basis| basis.as_str()).into()),
        ("created_at", ms(relationship.created_at)),
        ("updated_at", ms(relationship.updated_at)),
        ("sum_weighted", sums.weighted.into()),
        ("sum_inbound", sums.inbound.into()),
        ("sum_outbound", sums.outbound.into()),
        ("sum_sentiment", sums.sentiment.into()),
        ("last_at", sums.last.map(|seconds| (seconds * 1_000.0).round() as i64).into()),
    ])
}

fn probability(value: &Value, what: &str) -> StoreResult<Option<Probability>> {
    value.opt_float()?.map(Probability::parse).transpose().map_err(|error| invalid(what, error))
}

/// A relationship from a row of [`super::statements::RELATIONSHIP_COLUMNS`].
pub fn relationship(row: &[Value]) -> StoreResult<Relationship> {
    let level = row[4].int()?;
    let bonds = row[5].int()?;
    let last = row[16].opt_int()?.map(|ms| ms as f64 / 1_000.0);
    Ok(Relationship {
        id: RelationshipId(row[0].int()?),
        from: StakeholderId(row[1].int()?),
        to: StakeholderId(row[2].int()?),
        rel_type: parse(&row[3], "relationship type")?,
        level: u8::try_from(level).ok().and_then(Level::from_rank).ok_or_else(|| invalid("level", level))?,
        bonds: BondSet::from_bits(u8::try_from(bonds).map_err(|_| invalid("bond set", bonds))?),
        trust: probability(&row[6], "trust")?,
        commitment: probability(&row[7], "commitment")?,
        since: time(&row[8])?,
        basis: row[9].opt_text()?.map(str::parse).transpose().map_err(|error| invalid("basis", error))?,
        created_at: time(&row[10])?,
        updated_at: time(&row[11])?,
        sums: DecayedSums {
            weighted: row[12].opt_float()?.unwrap_or(0.0),
            inbound: row[13].opt_float()?.unwrap_or(0.0),
            outbound: row[14].opt_float()?.unwrap_or(0.0),
            sentiment: row[15].opt_float()?.unwrap_or(0.0),
            t_ref: last.unwrap_or(0.0),
            last,
        },
    })
}

/// The properties of an interaction node.
pub fn interaction_props(interaction: &Interaction) -> Value {
    map([
        ("id", interaction.id.0.into()),
        ("relationship_id", interaction.relationship.0.into()),
        ("at", ms(interaction.at)),
        ("channel", interaction.channel.as_str().into()),
        ("direction", interaction.direction.as_str().into()),
        ("sentiment", interaction.sentiment.get().into()),
        ("amount", interaction.amount.map(|amount| amount.get()).into()),
        ("product_line", interaction.product_line.as_ref().map(|line| line.as_str()).into()),
        ("note", interaction.note.clone().into()),
        ("topic", interaction.topic.map(|topic| topic.as_str()).into()),
        ("key", interaction.key.as_ref().map(|key| key.as_str()).into()),
    ])
}

/// An interaction from a row of [`super::statements::INTERACTION_COLUMNS`].
pub fn interaction(row: &[Value]) -> StoreResult<Interaction> {
    Ok(Interaction {
        id: InteractionId(row[0].int()?),
        relationship: RelationshipId(row[1].int()?),
        at: time(&row[2])?,
        channel: parse(&row[3], "channel")?,
        direction: parse(&row[4], "direction")?,
        sentiment: Sentiment::parse(row[5].float()?).map_err(|error| invalid("sentiment", error.0))?,
        amount: row[6].opt_float()?.map(Amount::parse).transpose().map_err(|error| invalid("amount", error.0))?,
        product_line: row[7]
            .opt_text()?
            .map(Label::parse)
            .transpose()
            .map_err(|error| invalid("product line", error.0))?,
        note: row[8].opt_text()?.map(str::to_owned),
        topic: match &row[9] {
            Value::Null => None,
            value => Some(parse(value, "topic")?),
        },
        key: row[10].opt_text()?.map(Label::parse).transpose().map_err(|error| invalid("key", error.0))?,
    })
}

/// The properties of a change-event node.
pub fn event_props(event: &ChangeEvent) -> StoreResult<Value> {
    Ok(map([
        ("seq", event.seq.into()),
        ("at", ms(event.at)),
        ("kind", event.kind.as_str().into()),
        ("stakeholders", event.stakeholders.iter().map(|id| id.0).collect::<Vec<_>>().into()),
        ("relationship_id", event.relationship.map(|id| id.0).into()),
        ("payload", Value::Text(record::write_change(&event.payload)?)),
    ]))
}

/// A change event from a row of [`super::statements::CHANGE_COLUMNS`].
pub fn change_event(row: &[Value]) -> StoreResult<ChangeEvent> {
    let kind = serde_json::from_value::<ChangeKind>(serde_json::Value::String(row[2].text()?.to_owned()))
        .map_err(|error| invalid("change kind", error))?;
    Ok(ChangeEvent {
        seq: row[0].int()?,
        at: time(&row[1])?,
        kind,
        stakeholders: row[3].list()?.iter().map(|id| id.int().map(StakeholderId)).collect::<StoreResult<_>>()?,
        relationship: row[4].opt_int()?.map(RelationshipId),
        payload: record::read_change(kind, row[5].text()?)?,
    })
}

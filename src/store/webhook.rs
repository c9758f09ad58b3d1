//! The stored form of a webhook: JSON of a versioned type of its own, apart from the domain's [`Webhook`], so that
//! the domain type can change without silently changing what is in the database. Both backends keep this text
//! (SQLite in `webhook.record`, Cypher in a `:Webhook` node's `record`). A new stored version is a new variant,
//! with a conversion from the old one; the golden file `golden/webhook_v1.json` pins version 1 byte for byte.

use super::{StoreError, StoreResult};
use crate::domain::webhook::{Attempt, Disabled, EventFilter, Webhook};
use crate::domain::{ChangeKind, Market, RelationshipType, StakeholderId, WebhookId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A webhook as stored, by format version (no `Debug`: it holds the secret).
#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum StoredWebhook {
    /// Version 1.
    #[serde(rename = "1")]
    V1(V1),
}

/// Version 1 of the stored webhook.
#[derive(Serialize, Deserialize)]
pub struct V1 {
    id: i64,
    url: String,
    kinds: Option<Vec<ChangeKind>>,
    stakeholder: Option<i64>,
    markets: Vec<Market>,
    relationship_types: Option<Vec<RelationshipType>>,
    include_private: bool,
    secret: String,
    created_at: DateTime<Utc>,
    cursor: i64,
    failing_since: Option<DateTime<Utc>>,
    last_delivered_at: Option<DateTime<Utc>>,
    disabled_at: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
    attempts: Vec<AttemptV1>,
}

/// Version 1 of a stored delivery attempt.
#[derive(Serialize, Deserialize)]
pub struct AttemptV1 {
    message_id: String,
    seq: i64,
    number: u32,
    at: DateTime<Utc>,
    status: Option<u16>,
    error: Option<String>,
    millis: u64,
}

impl StoredWebhook {
    /// The stored text of `webhook` (the newest version).
    pub fn write(webhook: &Webhook) -> StoreResult<String> {
        let filter = &webhook.filter;
        let stored = StoredWebhook::V1(V1 {
            id: webhook.id.0,
            url: webhook.url.clone(),
            kinds: filter.kinds.clone(),
            stakeholder: filter.stakeholder.map(|id| id.0),
            markets: filter.markets.clone(),
            relationship_types: filter.relationship_types.clone(),
            include_private: webhook.include_private,
            secret: webhook.secret.clone(),
            created_at: webhook.created_at,
            cursor: webhook.cursor,
            failing_since: webhook.failing_since,
            last_delivered_at: webhook.last_delivered_at,
            disabled_at: webhook.disabled.as_ref().map(|disabled| disabled.at),
            disabled_reason: webhook.disabled.as_ref().map(|disabled| disabled.reason.clone()),
            attempts: webhook
                .attempts
                .iter()
                .map(|attempt| AttemptV1 {
                    message_id: attempt.message_id.clone(),
                    seq: attempt.seq,
                    number: attempt.number,
                    at: attempt.at,
                    status: attempt.status,
                    error: attempt.error.clone(),
                    millis: attempt.millis,
                })
                .collect(),
        });
        serde_json::to_string(&stored).map_err(|error| StoreError::Internal(format!("writing a webhook: {error}")))
    }

    /// The webhook in stored text of any version.
    pub fn read(text: &str) -> StoreResult<Webhook> {
        // The record's text stays out of the error: it holds the secret.
        let stored: StoredWebhook = serde_json::from_str(text)
            .map_err(|error| StoreError::Internal(format!("a stored webhook this version cannot read: {error}")))?;
        let StoredWebhook::V1(v1) = stored;
        Ok(Webhook {
            id: WebhookId(v1.id),
            url: v1.url,
            filter: EventFilter {
                kinds: v1.kinds,
                stakeholder: v1.stakeholder.map(StakeholderId),
                markets: v1.markets,
                relationship_types: v1.relationship_types,
            },
            include_private: v1.include_private,
            secret: v1.secret,
            created_at: v1.created_at,
            cursor: v1.cursor,
            failing_since: v1.failing_since,
            last_delivered_at: v1.last_delivered_at,
            disabled: v1.disabled_at.map(|at| Disabled { at, reason: v1.disabled_reason.unwrap_or_default() }),
            attempts: v1
                .attempts
                .into_iter()
                .map(|attempt| Attempt {
                    message_id: attempt.message_id,
                    seq: attempt.seq,
                    number: attempt.number,
                    at: attempt.at,
                    status: attempt.status,
                    error: attempt.error,
                    millis: attempt.millis,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::secret_of;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + seconds, 0).unwrap()
    }

    /// A webhook with every field set.
    fn example() -> Webhook {
        let filter = EventFilter {
            kinds: Some(vec![ChangeKind::RelationshipUpdated, ChangeKind::InteractionsRecorded]),
            stakeholder: Some(StakeholderId(42)),
            markets: vec![Market::Customer, Market::Supplier],
            relationship_types: Some(vec![RelationshipType::BuysFrom]),
        };
        let mut webhook = Webhook::new(
            "https://hooks.example.com/stakegraph".into(),
            filter,
            true,
            secret_of(b"0123456789abcdef01234567"),
            17,
            at(0),
        );
        webhook.id = WebhookId(3);
        webhook.last_delivered_at = Some(at(5));
        webhook.failing_since = Some(at(9));
        webhook.disabled = Some(Disabled { at: at(70), reason: "failing".into() });
        webhook.attempts.push_back(Attempt {
            message_id: "msg_3_18".into(),
            seq: 18,
            number: 2,
            at: at(9),
            status: Some(503),
            error: Some("answered 503 Service Unavailable".into()),
            millis: 12,
        });
        webhook
    }

    #[test]
    fn version_1_is_read_and_written_byte_for_byte_as_its_golden_file() {
        let golden = include_str!("golden/webhook_v1.json").trim_end();
        assert_eq!(StoredWebhook::read(golden).unwrap(), example());
        assert_eq!(StoredWebhook::write(&example()).unwrap(), golden);
    }

    #[test]
    fn a_record_of_an_unknown_version_is_refused_with_its_text() {
        let error = StoredWebhook::read(r#"{"version":"9","id":1,"secret":"whsec_c2VjcmV0"}"#).unwrap_err().to_string();
        assert!(error.contains("cannot read") && !error.contains("whsec_"), "{error}");
    }
}

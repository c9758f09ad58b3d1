//! Webhooks: a URL an integrator registers to be sent the change log's events, and the bookkeeping of its
//! deliveries (how far it is in the log, since when it fails, its latest attempts). This is not graph data: it is
//! kept beside the graph and never enters the change log (a delivery would otherwise log a change to deliver).
//!
//! Deliveries are signed as the Standard Webhooks specification says: `webhook-signature` is `v1,` and the
//! base64 HMAC-SHA256, keyed with the secret's bytes, of `{webhook-id}.{webhook-timestamp}.{body}`.

use super::values::InvalidValue;
use super::{ChangeKind, Market, RelationshipType, StakeholderId, WebhookId};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// How many of a webhook's latest delivery attempts are kept.
pub const KEPT_ATTEMPTS: usize = 50;

/// The prefix of a webhook secret (the rest is its key, in base64), as Standard Webhooks libraries expect.
pub const SECRET_PREFIX: &str = "whsec_";

/// Which changes a webhook is sent: the `changes` subscription's filter. Every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only these kinds of change.
    pub kinds: Option<Vec<ChangeKind>>,
    /// Only changes involving this stakeholder.
    pub stakeholder: Option<StakeholderId>,
    /// Only changes involving a stakeholder in one of these markets (any when empty).
    #[serde(default)]
    pub markets: Vec<Market>,
    /// Only changes to relationships (or their interactions) of these types.
    pub relationship_types: Option<Vec<RelationshipType>>,
}

/// A registered webhook and how its deliveries stand. Its `Debug` leaves the secret out.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Which changes it is sent.
    pub filter: EventFilter,
    /// Whether it is sent changes of private stakeholders in full (else as a viewer sees them: masked).
    pub include_private: bool,
    /// The signing secret (`whsec_` and the key in base64).
    pub secret: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Every change-log event up to this position has been delivered, or does not match.
    pub cursor: i64,
    /// Since when deliveries fail (none has succeeded since), if they do.
    pub failing_since: Option<DateTime<Utc>>,
    /// When a delivery last succeeded.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Why and when it was disabled, if it is.
    pub disabled: Option<Disabled>,
    /// The latest delivery attempts, oldest first (at most [`KEPT_ATTEMPTS`]).
    pub attempts: VecDeque<Attempt>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("filter", &self.filter)
            .field("include_private", &self.include_private)
            .field("secret", &"(withheld)")
            .field("created_at", &self.created_at)
            .field("cursor", &self.cursor)
            .field("failing_since", &self.failing_since)
            .field("last_delivered_at", &self.last_delivered_at)
            .field("disabled", &self.disabled)
            .field("attempts", &self.attempts.len())
            .finish()
    }
}

/// Why a webhook stopped being sent events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// When.
    pub at: DateTime<Utc>,
    /// Why, for the admin.
    pub reason: String,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The message's `webhook-id` (the same on every attempt of one event).
    pub message_id: String,
    /// The change-log position of the event.
    pub seq: i64,
    /// Which attempt of this event (1 for the first).
    pub number: u32,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What went wrong, when it failed.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

impl Attempt {
    /// Whether the receiver took the delivery (answered 2xx).
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|status| (200..300).contains(&status))
    }
}

/// Where a webhook stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookStatus {
    /// Deliveries succeed (or none was due yet).
    Active,
    /// The latest deliveries failed; they are retried.
    Failing,
    /// It failed for too long, or was disabled; nothing is sent until it is enabled again.
    Disabled,
}

impl Webhook {
    /// A new webhook (its id is the store's to assign), starting after log position `cursor`.
    pub fn new(
        url: String,
        filter: EventFilter,
        include_private: bool,
        secret: String,
        cursor: i64,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: WebhookId(0),
            url,
            filter,
            include_private,
            secret,
            created_at: at,
            cursor,
            failing_since: None,
            last_delivered_at: None,
            disabled: None,
            attempts: VecDeque::new(),
        }
    }

    /// Where it stands.
    pub fn status(&self) -> WebhookStatus {
        match (&self.disabled, self.failing_since) {
            (Some(_), _) => WebhookStatus::Disabled,
            (None, Some(_)) => WebhookStatus::Failing,
            (None, None) => WebhookStatus::Active,
        }
    }

    /// Records an attempt: a success moves the cursor to its event; a failure starts (or continues) the failing
    /// time, and disables the webhook once that has lasted `disable_after`. Returns whether it is disabled now.
    pub fn record(&mut self, attempt: Attempt, disable_after: Duration) -> bool {
        if attempt.succeeded() {
            self.cursor = self.cursor.max(attempt.seq);
            self.failing_since = None;
            self.last_delivered_at = Some(attempt.at);
        } else {
            let since = *self.failing_since.get_or_insert(attempt.at);
            let failing = (attempt.at - since).to_std().unwrap_or_default();
            if failing >= disable_after && self.disabled.is_none() {
                let error = attempt.error.as_deref().unwrap_or("no answer");
                self.disabled = Some(Disabled {
                    at: attempt.at,
                    reason: format!(
                        "deliveries failed for {} s since {} (longer than the configured {} s); the last one: {error}; \
                         fix the receiver, then enable the webhook again: it resumes with the event that failed",
                        failing.as_secs(),
                        since.to_rfc3339(),
                        disable_after.as_secs()
                    ),
                });
            }
        }
        self.attempts.push_back(attempt);
        while self.attempts.len() > KEPT_ATTEMPTS {
            self.attempts.pop_front();
        }
        self.disabled.is_some()
    }

    /// Enables a disabled webhook again: it resumes after its cursor, its failing time forgotten.
    pub fn enable(&mut self) {
        self.disabled = None;
        self.failing_since = None;
    }
}

/// The `webhook-id` of the event at log position `seq` sent to `webhook`: the same on every attempt, so that a
/// receiver recognises a repeated delivery; the webhook's registration time (in milliseconds) keeps ids apart
/// across databases and re-registrations.
pub fn message_id(webhook: &Webhook, seq: i64) -> String {
    format!("msg_{}_{}_{seq}", webhook.id, webhook.created_at.timestamp_millis())
}

/// How long to wait before attempt `number + 1` of an event after attempt `number` failed: `initial`, doubled
/// with every attempt, at most `max`.
pub fn retry_delay(number: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = number.saturating_sub(1).min(31);
    initial.saturating_mul(1 << doublings).min(max)
}

/// A new secret from 24 random bytes.
pub fn secret_of(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` header of a message, as Standard Webhooks defines it.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Result<String, InvalidValue> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|key| STANDARD.decode(key).ok())
        .ok_or_else(|| InvalidValue(format!("a webhook secret is `{SECRET_PREFIX}` and a key in base64")))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(format!("{message_id}.{timestamp}.").as_bytes());
    context.update(body);
    Ok(format!("v1,{}", STANDARD.encode(context.sign().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_form_leaves_the_secret_out() {
        let webhook = Webhook::new("http://h/".into(), EventFilter::default(), false, secret_of(b"key"), 0, Utc::now());
        assert!(!format!("{webhook:?}").contains(&webhook.secret));
    }

    #[test]
    fn the_signature_is_the_one_of_the_standard_webhooks_reference() {
        // The example of the Standard Webhooks specification and its reference libraries' tests.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, body).is_err());
    }

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_the_limit() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<_> = (1..=6).map(|number| retry_delay(number, initial, max).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(retry_delay(u32::MAX, initial, max), max);
    }

    fn attempt(seq: i64, seconds: i64, status: Option<u16>) -> Attempt {
        Attempt {
            message_id: format!("msg_1_{seq}"),
            seq,
            number: 1,
            at: DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap(),
            status,
            error: status.filter(|status| *status >= 300).map(|status| format!("answered {status}")),
            millis: 3,
        }
    }

    #[test]
    fn a_webhook_failing_longer_than_allowed_is_disabled_and_says_why() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut webhook =
            Webhook::new("http://127.0.0.1:1/".into(), EventFilter::default(), false, secret_of(b"k"), 4, start);
        let allowed = Duration::from_secs(60);
        assert!(!webhook.record(attempt(5, 0, Some(200)), allowed));
        assert_eq!((webhook.cursor, webhook.status()), (5, WebhookStatus::Active));
        assert!(!webhook.record(attempt(6, 10, Some(500)), allowed));
        assert!(!webhook.record(attempt(6, 69, None), allowed));
        assert_eq!((webhook.cursor, webhook.status()), (5, WebhookStatus::Failing));
        assert!(webhook.record(attempt(6, 70, Some(503)), allowed));
        assert_eq!(webhook.status(), WebhookStatus::Disabled);
        let reason = &webhook.disabled.as_ref().unwrap().reason;
        assert!(reason.contains("failed for 60 s") && reason.contains("answered 503"), "{reason}");
        webhook.enable();
        assert_eq!(webhook.status(), WebhookStatus::Active);
        for seq in 0..KEPT_ATTEMPTS as i64 {
            webhook.record(attempt(6 + seq, 80, Some(204)), allowed);
        }
        assert_eq!(webhook.attempts.len(), KEPT_ATTEMPTS);
        assert_eq!(webhook.cursor, 5 + KEPT_ATTEMPTS as i64);
    }
}

//! Webhooks as an admin sees them: `registerWebhook`, `enableWebhook`, `deleteWebhook`, and `webhooks` and
//! `webhookDeliveries` to see how deliveries stand. Every field needs an admin key: a webhook's URL and filter say
//! where the graph's changes go, and one registered with `includePrivate` is sent private stakeholders in full.
//! Delivery is [`crate::webhooks`]'; this module parses arguments and maps results.

use super::auth::Need;
use super::changes::{decode, encode, ChangeKind};
use super::enums::{Market, RelationshipType};
use super::error::{ApiError, ApiResult};
use super::ids::GlobalId;
use super::subscription::{ChangeFilter, Filter};
use super::ApiContext;
use crate::domain::webhook::{self as domain_webhook, WebhookStatus as DomainStatus, KEPT_ATTEMPTS};
use crate::domain::WebhookId;
use crate::webhooks::WebhookError;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

/// The opaque id of a webhook, as the API and `/metrics` show it.
pub fn encode_id(id: WebhookId) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("Webhook:{id}")))
}

/// The webhook id in `id`, refused as input `field` when it is not one.
fn decode_id(id: &ID, field: &str) -> ApiResult<WebhookId> {
    URL_SAFE_NO_PAD
        .decode(id.as_str().trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("Webhook:").and_then(|number| number.parse().ok()))
        .map(WebhookId)
        .ok_or_else(|| ApiError::bad_input(field, "this is not a webhook id; pass the `id` of a webhook in `webhooks`"))
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Invalid(message) => ApiError::bad_input("input", message),
            WebhookError::NotFound => {
                ApiError::bad_input("id", "no webhook has this id; pass the `id` of a webhook in `webhooks`")
            }
            WebhookError::Store(error) => error.into(),
        }
    }
}

/// Where a webhook stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "DomainStatus")]
pub enum WebhookStatus {
    /// Deliveries succeed (or none was due yet).
    Active,
    /// The latest delivery failed; it is retried with a doubling delay.
    Failing,
    /// Deliveries failed for longer than the configured time; nothing is sent until `enableWebhook`.
    Disabled,
}

/// A registered webhook.
pub struct Webhook(domain_webhook::Webhook);

/// Which changes a webhook is sent (the `changes` subscription's filter).
#[derive(SimpleObject)]
pub struct WebhookFilter {
    /// Only these kinds of change (any when null).
    kinds: Option<Vec<ChangeKind>>,
    /// Only changes involving this stakeholder.
    stakeholder: Option<ID>,
    /// Only changes involving a stakeholder in one of these markets (any when empty).
    markets: Vec<Market>,
    /// Only changes to relationships (or their interactions) of these types (any when null).
    relationship_types: Option<Vec<RelationshipType>>,
}

#[Object]
impl Webhook {
    /// Its id.
    async fn id(&self) -> ID {
        encode_id(self.0.id)
    }

    /// Where deliveries are POSTed.
    async fn url(&self) -> &str {
        &self.0.url
    }

    /// Which changes it is sent.
    async fn filter(&self) -> WebhookFilter {
        let filter = &self.0.filter;
        WebhookFilter {
            kinds: filter.kinds.as_ref().map(|kinds| kinds.iter().map(|kind| (*kind).into()).collect()),
            stakeholder: filter.stakeholder.map(|id| GlobalId::Stakeholder(id).encode()),
            markets: filter.markets.iter().map(|market| (*market).into()).collect(),
            relationship_types: filter
                .relationship_types
                .as_ref()
                .map(|types| types.iter().map(|kind| (*kind).into()).collect()),
        }
    }

    /// Whether it is sent the changes of private stakeholders in full (else masked, as a viewer sees them).
    async fn include_private(&self) -> bool {
        self.0.include_private
    }

    /// Where it stands.
    async fn status(&self) -> WebhookStatus {
        self.0.status().into()
    }

    /// When it was registered.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Every change up to this cursor has been delivered (or did not match): deliveries go on after it.
    async fn cursor(&self) -> String {
        encode(self.0.cursor)
    }

    /// When a delivery last succeeded.
    async fn last_delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_delivered_at
    }

    /// Since when deliveries fail, if they do.
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since
    }

    /// The error of the latest failed attempt, if the latest attempt failed.
    async fn last_error(&self) -> Option<&str> {
        self.0.attempts.back().and_then(|attempt| attempt.error.as_deref())
    }

    /// When it was disabled, if it is.
    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled.as_ref().map(|disabled| disabled.at)
    }

    /// Why it was disabled, if it is.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled.as_ref().map(|disabled| disabled.reason.as_str())
    }
}

/// One delivery attempt.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    /// The message's `webhook-id` header: the same on every attempt of one change.
    message_id: String,
    /// The change's cursor in the log.
    cursor: String,
    /// Which attempt of this change (1 for the first).
    attempt: i32,
    /// When it was sent.
    at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    status_code: Option<i32>,
    /// Whether the receiver took it (answered 2xx).
    succeeded: bool,
    /// What went wrong, when it failed.
    error: Option<String>,
    /// How long it took, in milliseconds.
    duration_ms: i32,
}

/// A webhook just registered, with its signing secret (shown only here).
#[derive(SimpleObject)]
pub struct RegisteredWebhook {
    /// The webhook.
    webhook: Webhook,
    /// The secret deliveries are signed with (`whsec_…`, as Standard Webhooks libraries take it). Keep it: it is
    /// never shown again.
    secret: String,
}

/// A webhook to register.
#[derive(InputObject)]
pub struct RegisterWebhookInput {
    /// Where to POST deliveries: an http or https URL whose host the configuration allows.
    url: String,
    /// Which changes to send (all when null).
    filter: Option<ChangeFilter>,
    /// Send the changes of private stakeholders in full (default: masked, as a viewer sees them).
    #[graphql(default = false)]
    include_private: bool,
    /// Start after this `changes` cursor (default: from now on).
    after: Option<String>,
}

/// The query root's webhooks.
#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Every registered webhook, in the order they were registered (admin only).
    #[graphql(guard = "Need::Admin")]
    async fn webhooks(&self, ctx: &Context<'_>) -> ApiResult<Vec<Webhook>> {
        let api = ctx.data_unchecked::<ApiContext>();
        Ok(api.webhooks.list().await?.into_iter().map(Webhook).collect())
    }

    /// A webhook's latest delivery attempts, newest first (the service keeps the latest 50; admin only).
    #[graphql(guard = "Need::Admin")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        webhook: ID,
        #[graphql(desc = "How many, at most 50.", default = 20)] first: i32,
    ) -> ApiResult<Vec<WebhookDelivery>> {
        if !(1..=KEPT_ATTEMPTS as i32).contains(&first) {
            return Err(ApiError::bad_input("first", format!("must be between 1 and {KEPT_ATTEMPTS}")));
        }
        let api = ctx.data_unchecked::<ApiContext>();
        let webhook = api.webhooks.find(decode_id(&webhook, "webhook")?).await?;
        Ok(webhook
            .attempts
            .iter()
            .rev()
            .take(first as usize)
            .map(|attempt| WebhookDelivery {
                message_id: attempt.message_id.clone(),
                cursor: encode(attempt.seq),
                attempt: attempt.number.min(i32::MAX as u32) as i32,
                at: attempt.at,
                status_code: attempt.status.map(i32::from),
                succeeded: attempt.succeeded(),
                error: attempt.error.clone(),
                duration_ms: attempt.millis.min(i32::MAX as u64) as i32,
            })
            .collect())
    }
}

/// The mutation root's webhooks.
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers a webhook: every change that matches its filter is POSTed to its URL, in log order, signed as
    /// Standard Webhooks says with the secret returned here, and retried until the receiver answers 2xx (admin only).
    #[graphql(guard = "Need::Admin")]
    async fn register_webhook(&self, ctx: &Context<'_>, input: RegisterWebhookInput) -> ApiResult<RegisteredWebhook> {
        let api = ctx.data_unchecked::<ApiContext>();
        if input.include_private && !super::auth::Caller::of(ctx).sees_private() {
            return Err(ApiError::Forbidden(
                "this caller's token withholds private stakeholders, so its webhooks may not include them; register \
                 without includePrivate"
                    .into(),
            ));
        }
        let filter = Filter::parse(input.filter.unwrap_or_default())?.to_webhook();
        let after = input.after.as_deref().map(decode).transpose()?;
        let webhook = api.webhooks.register(&input.url, filter, input.include_private, after).await?;
        let secret = webhook.secret.clone();
        Ok(RegisteredWebhook { webhook: Webhook(webhook), secret })
    }

    /// Enables a disabled webhook: it resumes with the change that was failing (admin only).
    #[graphql(guard = "Need::Admin")]
    async fn enable_webhook(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Webhook> {
        let api = ctx.data_unchecked::<ApiContext>();
        Ok(Webhook(api.webhooks.enable(decode_id(&id, "id")?).await?))
    }

    /// Deletes a webhook and stops its deliveries; returns what it was (admin only).
    #[graphql(guard = "Need::Admin")]
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Webhook> {
        let api = ctx.data_unchecked::<ApiContext>();
        Ok(Webhook(api.webhooks.delete(decode_id(&id, "id")?).await?))
    }
}

//! Prometheus metrics (`prometheus-client`): one registry per service, holding what each part measures: GraphQL
//! requests by operation and outcome ([`Telemetry`]), store calls and the keys each batch carries (the DataLoader
//! batches; [`crate::store::Metered`]), analyses' queue and run time ([`crate::api::admission::Admission`]), and,
//! read when `/metrics` is scraped, WebSocket subscribers and how far the projection and each webhook lag behind the
//! change log.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// Buckets of a duration in seconds: 0.5 ms to about 33 s.
pub fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// Buckets of a count: 1 to 4096.
pub fn counts() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

/// A family of histograms made by `make`.
pub type Histograms<Labels> = Family<Labels, Histogram, fn() -> Histogram>;

/// The labels of one GraphQL request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The operation's name: one of the first [`MAX_OPERATIONS`] names seen, `unnamed`, or `other`.
    pub operation: String,
    /// `ok`, or `error` when the response holds an error.
    pub outcome: &'static str,
}

/// The label of a webhook's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// The webhook's id, as the API shows it.
    pub webhook: String,
}

/// The most operation names labelled apart: clients choose them, so that a scrape stays bounded.
pub const MAX_OPERATIONS: usize = 200;

/// The service's metrics.
pub struct Telemetry {
    registry: Registry,
    requests: Histograms<RequestLabels>,
    operations: Mutex<HashSet<String>>,
    /// WebSocket subscriptions open, set when scraped.
    pub subscribers: Gauge,
    /// Change-log entries committed that the projection has not applied yet, set when scraped.
    pub projection_lag: Gauge,
    /// Analyses waiting for a turn, set when scraped.
    pub analyses_queued: Gauge,
    /// Change-log entries each enabled webhook has not been delivered (or passed over) yet, set when scraped.
    pub webhook_lag: Family<WebhookLabels, Gauge>,
    /// Held by a scrape from setting the gauges above to rendering them, so that two scrapes at once do not see
    /// each other's half-set gauges (the webhooks' are cleared and set again).
    pub scrape: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("stakegraph");
        let requests: Histograms<RequestLabels> = Family::new_with_constructor(seconds);
        registry.register_with_unit(
            "graphql_request_duration",
            "GraphQL requests served over HTTP, by operation name and outcome",
            Unit::Seconds,
            requests.clone(),
        );
        let subscribers = Gauge::default();
        registry.register("websocket_subscriptions", "WebSocket subscriptions open", subscribers.clone());
        let projection_lag = Gauge::default();
        registry.register(
            "projection_lag_changes",
            "Committed change-log entries the in-memory projection has not applied yet",
            projection_lag.clone(),
        );
        let analyses_queued = Gauge::default();
        registry.register("analyses_queued", "Analyses waiting for a turn", analyses_queued.clone());
        let webhook_lag = Family::default();
        registry.register(
            "webhook_lag_changes",
            "Committed change-log entries each enabled webhook has not been delivered or passed over yet",
            webhook_lag.clone(),
        );
        Self {
            registry,
            requests,
            operations: Mutex::default(),
            subscribers,
            projection_lag,
            analyses_queued,
            webhook_lag,
            scrape: tokio::sync::Mutex::default(),
        }
    }
}

impl Telemetry {
    /// The registry, for the other parts to register their metrics in.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Records one request of `operation` that took `elapsed`.
    pub fn request(&self, operation: &str, ok: bool, elapsed: Duration) {
        let operation = {
            let mut seen = self.operations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.contains(operation) || (seen.len() < MAX_OPERATIONS && seen.insert(operation.to_owned())) {
                operation.to_owned()
            } else {
                "other".to_owned()
            }
        };
        let labels = RequestLabels { operation, outcome: if ok { "ok" } else { "error" } };
        self.requests.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// The registry in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

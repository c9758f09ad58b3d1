//! OpenTelemetry traces (`opentelemetry`, `tracing-opentelemetry`, OTLP over HTTP): off unless an OTLP endpoint is
//! configured the way every OpenTelemetry SDK reads it (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, with `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`).
//!
//! The spans are `tracing` spans at DEBUG under the [`TARGET`]s below, which the logs leave out at their default
//! filter; with no exporter they are never created. One request's trace:
//! - `POST /graphql`, the HTTP request ([`crate::http`]), a child of the caller's span when the request carries a
//!   W3C `traceparent`;
//! - `graphql`, the operation, with its name as an attribute ([`crate::api::spans`]);
//! - one span per resolver class (`Customer.relationships`), however many times it ran, with the count;
//! - one span per store call (`store relationships_of`, [`crate::store::Metered`]), under the resolver or the
//!   request whose DataLoader batch made it;
//! - one span per analysis computed off the async workers ([`crate::api::admission::Admission::compute`]).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target of every span the service makes for traces: [`tracing::debug_span!`] with `target: TARGET`.
pub const TARGET: &str = "stakegraph::trace";

/// Whether spans are exported (set once, by [`Traces::from_env`]). Code asks this, not `tracing::span_enabled!`:
/// with per-layer filters, that macro leaves the filters' state set for the thread's next event, which the log then
/// drops.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether an exporter is configured, so spans made for traces go somewhere.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where spans go once an endpoint is configured.
pub struct Traces {
    provider: SdkTracerProvider,
}

/// Why traces cannot be exported as configured.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names a protocol this build does not speak.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL is {0:?}; Stakegraph exports OTLP over HTTP: set it to \"http/protobuf\" (the \
         default) or \"http/json\""
    )]
    Protocol(String),
    /// The exporter cannot be built (a malformed endpoint, for example).
    #[error("cannot export traces to the OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

impl Traces {
    /// The exporter the environment configures, or `None` when it configures none (or `OTEL_SDK_DISABLED=true`,
    /// or `OTEL_TRACES_EXPORTER=none`). Also makes W3C trace context the propagator requests are read with.
    pub fn from_env() -> Result<Option<Self>, TracesError> {
        let set = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        let configured = set("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
        let disabled = set("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|value| value.eq_ignore_ascii_case("none"));
        if configured.is_none() || disabled {
            return Ok(None);
        }
        let protocol = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL")) {
            None => Protocol::HttpBinary,
            Some(protocol) if protocol == "http/protobuf" => Protocol::HttpBinary,
            Some(protocol) if protocol == "http/json" => Protocol::HttpJson,
            Some(other) => return Err(TracesError::Protocol(other)),
        };
        // The endpoint, headers and timeout come from the environment, as the specification names them.
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(protocol).build()?;
        let mut resource = Resource::builder();
        if set("OTEL_SERVICE_NAME").is_none()
            && !Resource::builder()
                .build()
                .iter()
                .any(|(key, value)| key.as_str() == "service.name" && value.as_str() != "unknown_service")
        {
            resource = resource.with_service_name("stakegraph");
        }
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(Self { provider }))
    }

    /// The layer that turns the service's spans into OpenTelemetry spans (and the events in them into span
    /// events); it sees nothing else.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let tracer = self.provider.tracer("stakegraph");
        tracing_opentelemetry::layer().with_tracer(tracer).with_filter(
            filter_fn(|metadata| {
                if metadata.is_span() {
                    metadata.target() == TARGET
                } else {
                    metadata.target().starts_with("stakegraph") && *metadata.level() <= tracing::Level::INFO
                }
            })
            .with_max_level_hint(tracing::level_filters::LevelFilter::DEBUG),
        )
    }
}

impl Drop for Traces {
    /// Sends the spans still buffered before the process ends.
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("warning: the last spans may not have reached the OTLP endpoint: {error}");
        }
    }
}

/// Makes `span` a child of the span the caller sent in `headers` (W3C `traceparent` and `tracestate`), if any.
pub fn continue_from(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    // Only fails when the span is not recorded by the OpenTelemetry layer, which then has nothing to continue.
    _ = span.set_parent(parent);
}

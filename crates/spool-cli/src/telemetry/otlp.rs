//! The OTLP/HTTP exporters and their providers, built from the standard `OTEL_*` environment
//! variables (endpoint, headers, timeout, service name and resource attributes are read by
//! the OpenTelemetry SDK itself).

use std::time::Duration;

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    metrics::SdkMeterProvider,
    trace::{SdkTracer, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::{EnvFilter, Layer as _, filter::Filtered};

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";

/// The spans exported: as the default log level of `work`, and never the exporter's own
/// (`opentelemetry*` targets).
const SPANS: &str = "info,sqlx=warn,hyper=warn,reqwest=warn,opentelemetry=off";

/// How long the last spans and figures may take to leave at exit.
const SHUTDOWN: Duration = Duration::from_secs(5);

/// This process's exporters, if an endpoint is set; shut down at exit so the last batch goes.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    /// What went wrong while building, logged once logging is up (the exporters are built
    /// first: the span layer is part of the subscriber).
    problems: Vec<String>,
}

impl Telemetry {
    /// No exporter (commands that export nothing, or an app with its own subscriber).
    pub(crate) fn none() -> Telemetry {
        Telemetry::default()
    }

    /// Spans when `OTEL_EXPORTER_OTLP_ENDPOINT` or `..._TRACES_ENDPOINT` is set, metrics when
    /// it or `..._METRICS_ENDPOINT` is; nothing is built otherwise. A bad setting costs that
    /// signal only: the command runs on.
    pub(crate) fn from_env() -> Telemetry {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        let (traces, metrics) = (
            set(ENDPOINT) || set(TRACES_ENDPOINT),
            set(ENDPOINT) || set(METRICS_ENDPOINT),
        );
        let mut telemetry = Telemetry::none();
        if !traces && !metrics {
            return telemetry;
        }
        if let Some(other) = other_protocol() {
            telemetry.problems.push(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported: exporting with http/protobuf"
            ));
        }
        let resource = resource();
        if traces {
            // The batch processor exports from a thread of its own, hence the blocking client.
            match SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()
            {
                Ok(exporter) => {
                    telemetry.tracer = Some(
                        SdkTracerProvider::builder()
                            .with_batch_exporter(exporter)
                            .with_resource(resource.clone())
                            .build(),
                    );
                }
                Err(e) => telemetry
                    .problems
                    .push(format!("OpenTelemetry spans are not exported: {e}")),
            }
        }
        if metrics {
            match MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()
            {
                Ok(exporter) => {
                    let provider = SdkMeterProvider::builder()
                        .with_periodic_exporter(exporter)
                        .with_resource(resource)
                        .build();
                    // The worker's instruments are registered on the global provider.
                    opentelemetry::global::set_meter_provider(provider.clone());
                    telemetry.meter = Some(provider);
                }
                Err(e) => telemetry
                    .problems
                    .push(format!("OpenTelemetry metrics are not exported: {e}")),
            }
        }
        telemetry
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans, when spans are exported:
    /// those at `info` and above, whatever the log level.
    pub(crate) fn layer<S>(
        &self,
    ) -> Option<Filtered<OpenTelemetryLayer<S, SdkTracer>, EnvFilter, S>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let tracer = self.tracer.as_ref()?.tracer("spool");
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(EnvFilter::new(SPANS)),
        )
    }

    /// Logs what went wrong while building the exporters (call once logging is set up).
    pub(crate) fn report(&self) {
        for problem in &self.problems {
            tracing::warn!("{problem}");
        }
    }

    /// Sends what is still buffered and stops the exporters.
    pub(crate) async fn shutdown(self) {
        if self.tracer.is_none() && self.meter.is_none() {
            return;
        }
        // The SDK blocks until its export threads are done: off the async threads.
        let done = tokio::task::spawn_blocking(move || {
            if let Some(tracer) = self.tracer
                && let Err(e) = tracer.shutdown_with_timeout(SHUTDOWN)
            {
                tracing::warn!("OpenTelemetry spans: the last export failed: {e}");
            }
            if let Some(meter) = self.meter
                && let Err(e) = meter.shutdown_with_timeout(SHUTDOWN)
            {
                tracing::warn!("OpenTelemetry metrics: the last export failed: {e}");
            }
        });
        let _ = done.await;
    }
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), named `spool` and
/// told apart per process unless those say otherwise: the worker processes of one supervisor
/// report the same instruments, which a backend would otherwise merge.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let mut builder = Resource::builder();
    let unnamed = detected
        .get(&"service.name".into())
        .is_none_or(|name| name.as_str().starts_with("unknown_service"));
    if unnamed {
        builder = builder.with_service_name("spool");
    }
    if detected.get(&"service.instance.id".into()).is_none() {
        let instance = format!("{}:{}", spool::worker::hostname(), std::process::id());
        builder = builder.with_attribute(KeyValue::new("service.instance.id", instance));
    }
    builder.build()
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL` (or a signal's own) when it names anything but
/// http/protobuf, the one protocol built in.
fn other_protocol() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ]
    .into_iter()
    .filter_map(|name| std::env::var(name).ok())
    .find(|value| !value.trim().is_empty() && value.trim() != "http/protobuf")
}

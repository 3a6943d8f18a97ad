//! The `otel` feature: the job's OpenTelemetry span is a child of the dispatcher's span, and
//! dispatch carries the current span's context into the envelope by itself.
#![cfg(all(feature = "otel", feature = "sqlite"))]

use std::{
    future::IntoFuture,
    sync::{Arc, LazyLock},
    time::Duration,
};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use spool::{
    Job, JobContext, JobResult, Registry, Spool, Store, TraceContext, TraceParent, Worker,
    WorkerConfig,
};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// Every span this test binary ends, kept in memory, and the provider the layer's tracer
/// exports through (kept for the life of the process).
static TELEMETRY: LazyLock<(InMemorySpanExporter, SdkTracerProvider)> = LazyLock::new(|| {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("spool-test"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("the only subscriber");
    (exporter, provider)
});

/// The ended `job` span of job `id`.
fn job_span(id: &str) -> SpanData {
    TELEMETRY
        .0
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|span| {
            span.name == "job"
                && span
                    .attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "id" && kv.value.as_str() == id)
        })
        .unwrap_or_else(|| panic!("no exported job span for {id}"))
}

#[derive(Serialize, Deserialize)]
struct Hop {
    n: u32,
}

impl Job for Hop {
    const NAME: &'static str = "hop";

    async fn handle(self, _ctx: JobContext) -> JobResult {
        tracing::info!("inside the job");
        Ok(())
    }
}

async fn store() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let url = format!("sqlite://{}", dir.join("spool.db").display());
    spool::connect(&url).await.expect("open a SQLite store")
}

async fn work(store: &Arc<dyn Store>) {
    let config = WorkerConfig {
        stop_when_empty: true,
        sleep: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::new().register::<Hop>(), config);
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("the worker stops in time")
        .expect("the worker runs");
    assert_eq!(exit.completed, 1, "{exit:?}");
}

#[tokio::test]
async fn the_job_span_is_a_child_of_the_envelopes_traceparent() {
    LazyLock::force(&TELEMETRY);
    let store = store().await;
    let trace = TraceContext {
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        tracestate: None,
    };
    let id = Spool::new(store.clone())
        .dispatch(Hop { n: 1 })
        .trace(trace)
        .await
        .unwrap()
        .id;
    work(&store).await;
    let span = job_span(&id);
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        span.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    assert!(span.parent_span_is_remote);
}

#[tokio::test]
async fn dispatch_inside_a_span_carries_it_to_the_job() {
    LazyLock::force(&TELEMETRY);
    let store = store().await;
    let spool = Spool::new(store.clone());
    let request = tracing::info_span!("request");
    let id = spool
        .dispatch(Hop { n: 2 })
        .into_future()
        .instrument(request.clone())
        .await
        .unwrap()
        .id;
    let request = request.context().span().span_context().clone();
    assert!(request.is_valid());
    work(&store).await;
    let span = job_span(&id);
    assert_eq!(span.span_context.trace_id(), request.trace_id());
    assert_eq!(span.parent_span_id, request.span_id());
}

#[tokio::test]
async fn the_envelope_keeps_an_explicit_context_and_has_none_outside_spans() {
    LazyLock::force(&TELEMETRY);
    let (spool, recorder) = Spool::fake();
    let explicit = TraceContext {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        tracestate: Some("congo=t61rcWkgMzE".into()),
    };
    let request = tracing::info_span!("request");
    async {
        spool.dispatch(Hop { n: 3 }).await.unwrap();
        spool
            .dispatch(Hop { n: 4 })
            .trace(explicit.clone())
            .await
            .unwrap();
    }
    .instrument(request.clone())
    .await;
    spool.dispatch(Hop { n: 5 }).await.unwrap();
    let traces: Vec<_> = recorder.all().into_iter().map(|(e, _)| e.trace).collect();
    let captured = traces[0].clone().expect("the current span's context");
    let parent = TraceParent::parse(&captured.traceparent).unwrap();
    let request = request.context().span().span_context().clone();
    assert_eq!(parent.trace_id(), request.trace_id().to_string());
    assert_eq!(parent.parent_span_id(), request.span_id().to_string());
    assert!(parent.sampled());
    assert_eq!(traces[1].as_ref(), Some(&explicit));
    assert_eq!(traces[2], None);
}

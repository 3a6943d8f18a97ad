//! The dispatcher's W3C trace context on the worker's `job` span: its trace id and parent span
//! id are fields of the span, so every log line of the job joins the dispatcher's trace; a
//! malformed context is ignored and the job runs.
#![cfg(feature = "sqlite")]

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, Once},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use spool::{
    Job, JobContext, JobResult, Registry, Spool, Store, TraceContext, Worker, WorkerConfig,
};
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{Layer, layer::Context, layer::SubscriberExt, registry::LookupSpan};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The fields of every `job` span, by span id.
static JOB_SPANS: LazyLock<Mutex<HashMap<span::Id, HashMap<String, String>>>> =
    LazyLock::new(Default::default);

/// Keeps the fields of `job` spans as they are created and recorded.
struct Capture;

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, _: Context<'_, S>) {
        if attrs.metadata().name() != "job" {
            return;
        }
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        JOB_SPANS.lock().unwrap().insert(id.clone(), fields);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, _: Context<'_, S>) {
        if let Some(fields) = JOB_SPANS.lock().unwrap().get_mut(id) {
            values.record(&mut Fields(fields));
        }
    }
}

/// The recorded fields of the `job` span of job `id`.
fn job_span(id: &str) -> HashMap<String, String> {
    JOB_SPANS
        .lock()
        .unwrap()
        .values()
        .find(|fields| fields.get("id").map(String::as_str) == Some(id))
        .cloned()
        .unwrap_or_else(|| panic!("no job span for {id}"))
}

fn capture_spans() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

/// Which jobs ran.
static RAN: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);

#[derive(Serialize, Deserialize)]
struct Traced {
    n: u32,
}

impl Job for Traced {
    const NAME: &'static str = "traced";

    async fn handle(self, ctx: JobContext) -> JobResult {
        tracing::info!("inside the job");
        RAN.lock().unwrap().push(ctx.id().to_string());
        Ok(())
    }
}

async fn store() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let url = format!("sqlite://{}", dir.join("spool.db").display());
    spool::connect(&url).await.expect("open a SQLite store")
}

/// Dispatches one `Traced` job with `trace` and works until the queue is empty.
async fn run_traced(trace: TraceContext) -> (Arc<dyn Store>, String) {
    capture_spans();
    let store = store().await;
    let spool = Spool::new(store.clone());
    let id = spool
        .dispatch(Traced { n: 1 })
        .trace(trace)
        .await
        .unwrap()
        .id;
    let config = WorkerConfig {
        stop_when_empty: true,
        sleep: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::new().register::<Traced>(), config);
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("the worker stops in time")
        .expect("the worker runs");
    let failed = store.failed_job(&id).await.unwrap().map(|f| f.error);
    assert_eq!(exit.completed, 1, "{exit:?} {failed:?}");
    (store, id)
}

#[tokio::test]
async fn the_job_span_carries_the_dispatchers_trace_id_and_span_id() {
    let (store, id) = run_traced(TraceContext {
        traceparent: TRACEPARENT.into(),
        tracestate: Some("vendor=abc".into()),
    })
    .await;
    assert!(RAN.lock().unwrap().contains(&id));
    assert!(store.failed_job(&id).await.unwrap().is_none());
    let fields = job_span(&id);
    assert_eq!(
        fields.get("trace_id").map(String::as_str),
        Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        "{fields:?}"
    );
    assert_eq!(
        fields.get("parent_span_id").map(String::as_str),
        Some("00f067aa0ba902b7"),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_malformed_traceparent_is_ignored_and_the_job_runs() {
    for bad in [
        "not a traceparent",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    ] {
        let (store, id) = run_traced(TraceContext {
            traceparent: bad.into(),
            tracestate: None,
        })
        .await;
        assert!(RAN.lock().unwrap().contains(&id), "{bad}: the job ran");
        assert!(store.failed_job(&id).await.unwrap().is_none(), "{bad}");
        let fields = job_span(&id);
        assert!(!fields.contains_key("trace_id"), "{bad}: {fields:?}");
        assert!(!fields.contains_key("parent_span_id"), "{bad}: {fields:?}");
    }
}

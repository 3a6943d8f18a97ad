//! `spool work` with `OTEL_EXPORTER_OTLP_ENDPOINT` set exports the job's span, a child of the
//! dispatcher's span named in the envelope, and the worker's figures, to an OTLP/HTTP
//! collector (a small one in this test), before it exits.
#![cfg(feature = "otel")]

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use common::Env;
use opentelemetry_proto::tonic::{
    collector::{metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest},
    common::v1::any_value,
    metrics::v1::{metric, number_data_point},
    trace::v1::Span,
};
use prost::Message;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// What the collector received.
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    /// Each metric's name and the integer values of its points.
    metrics: Vec<(String, Vec<i64>)>,
    /// The `authorization` header of each request.
    auth: Vec<Option<String>>,
}

type Shared = Arc<Mutex<Received>>;

fn auth_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn traces(
    State(got): State<Shared>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut got = got.lock().unwrap();
    got.auth.push(auth_of(&headers));
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            got.spans.extend(scope.spans);
        }
    }
    StatusCode::OK
}

async fn metrics(
    State(got): State<Shared>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut got = got.lock().unwrap();
    got.auth.push(auth_of(&headers));
    for resource in request.resource_metrics {
        for scope in resource.scope_metrics {
            for m in scope.metrics {
                let points = match m.data {
                    Some(metric::Data::Sum(sum)) => sum.data_points,
                    Some(metric::Data::Gauge(gauge)) => gauge.data_points,
                    _ => Vec::new(),
                };
                let values = points
                    .into_iter()
                    .filter_map(|p| match p.value {
                        Some(number_data_point::Value::AsInt(v)) => Some(v),
                        _ => None,
                    })
                    .collect();
                got.metrics.push((m.name, values));
            }
        }
    }
    StatusCode::OK
}

/// An OTLP/HTTP (protobuf) collector on a loopback port.
async fn collector() -> (SocketAddr, Shared) {
    let got = Shared::default();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            any_value::Value::StringValue(s) => s.clone(),
            other => format!("{other:?}"),
        })
}

/// Dispatches a `noop` job carrying the test's traceparent; returns its id.
async fn dispatch_traced(env: &Env) -> String {
    let store = spool::connect(&env.url).await.unwrap();
    spool::Spool::new(store)
        .dispatch(spool::builtin::Noop {})
        .trace(spool::TraceContext {
            traceparent: format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"),
            tracestate: None,
        })
        .await
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_exports_the_jobs_span_under_the_dispatchers_and_its_figures() {
    let (addr, got) = collector().await;
    let env = Env::new();
    let id = dispatch_traced(&env).await;
    let mut cmd = env.cmd(&["work", "--until-done", "--sleep", "50ms"]);
    // No export interval is shortened: the spans and figures arrive only because the worker
    // flushes them as it exits. Logs stay at `warn`: exported spans do not depend on them.
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0ken")
        .env("OTEL_SERVICE_NAME", "spool-otel-test");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("spool runs"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = got.lock().unwrap();
    let job = got
        .spans
        .iter()
        .find(|s| s.name == "job" && attribute(s, "id").as_deref() == Some(id.as_str()))
        .unwrap_or_else(|| {
            let names: Vec<_> = got.spans.iter().map(|s| &s.name).collect();
            panic!("no span of job {id} among {names:?}")
        });
    assert_eq!(hex(&job.trace_id), TRACE_ID);
    assert_eq!(hex(&job.parent_span_id), PARENT_SPAN_ID);
    assert_eq!(attribute(job, "job").as_deref(), Some("noop"));
    assert_eq!(attribute(job, "trace_id").as_deref(), Some(TRACE_ID));
    let metric = |name: &str| {
        got.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, values)| values.clone())
            .unwrap_or_else(|| panic!("no {name} among {:?}", got.metrics))
    };
    assert_eq!(metric("spool.worker.jobs.completed"), vec![1]);
    assert_eq!(metric("spool.worker.jobs.failed"), vec![0]);
    assert_eq!(metric("spool.worker.concurrency"), vec![10]);
    assert!(
        got.auth
            .iter()
            .all(|a| a.as_deref() == Some("Bearer t0ken")),
        "{:?}",
        got.auth
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_sent_and_a_bad_one_stops_nothing() {
    let (addr, got) = collector().await;
    let env = Env::new();
    // Unset: the collector's address is given to nothing, so it must hear nothing.
    let _ = addr;
    dispatch_traced(&env).await;
    let mut cmd = env.cmd(&["work", "--until-done", "--sleep", "50ms"]);
    cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(got.lock().unwrap().spans.is_empty());
    // A malformed endpoint and one where nothing listens: the jobs run, the worker exits 0.
    for endpoint in ["not a url", "http://127.0.0.1:9"] {
        dispatch_traced(&env).await;
        let mut cmd = env.cmd(&["work", "--until-done", "--sleep", "50ms"]);
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500");
        let started = std::time::Instant::now();
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{endpoint}: {stderr}");
        assert_eq!(env.queued(), 0, "{endpoint}: the job ran");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{endpoint}: the exit waited {:?}",
            started.elapsed()
        );
        if endpoint == "not a url" {
            assert!(stderr.contains("not exported"), "{stderr}");
        }
    }
}

//! `GET /metrics`: store-wide series in Prometheus's text format, so scraping one dashboard
//! is enough and nothing is counted twice. Names and labels are a contract (docs/metrics.md);
//! no job id is ever a label.

use std::fmt::Write;

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use spool::{
    metrics::{BUCKETS, Counter, Histogram, MetricsQuery, MetricsRecord, Resolution},
    store::{RecordKind, StoreError},
};

use crate::{Shared, api::ApiError};

/// The text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn metrics(State(d): State<Shared>) -> Result<Response, ApiError> {
    let body = render(&d).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

async fn render(d: &crate::Dashboard) -> Result<String, StoreError> {
    let store = &*d.store;
    let totals = store
        .metrics(&MetricsQuery {
            resolution: Resolution::Total,
            since_ms: 0,
            queue: None,
        })
        .await?;
    let counts = d.counts.get(&d.store).await?;
    let stats = &counts.stats;
    let mut out = String::new();

    family(
        &mut out,
        "spool_jobs_enqueued_total",
        "counter",
        "Jobs pushed.",
    );
    for r in &totals {
        let n = r.counts.get(Counter::Enqueued);
        sample(&mut out, "spool_jobs_enqueued_total", &labels(r, &[]), n);
    }
    family(
        &mut out,
        "spool_jobs_completed_total",
        "counter",
        "Job attempts ended, by outcome.",
    );
    for r in &totals {
        for counter in Counter::ALL.into_iter().filter(|c| *c != Counter::Enqueued) {
            let outcome = [("outcome", counter.as_str())];
            let n = r.counts.get(counter);
            sample(
                &mut out,
                "spool_jobs_completed_total",
                &labels(r, &outcome),
                n,
            );
        }
    }
    for (name, help, pick) in [
        (
            "spool_job_wait_seconds",
            "From available to started, per attempt.",
            (|r| &r.wait) as fn(&MetricsRecord) -> &Histogram,
        ),
        ("spool_job_run_seconds", "Handler run time.", |r| &r.run),
    ] {
        family(&mut out, name, "histogram", help);
        for r in &totals {
            histogram(&mut out, name, r, pick(r));
        }
    }

    family(
        &mut out,
        "spool_jobs_rescued_total",
        "counter",
        "Jobs returned to their queue after their worker died.",
    );
    let mut rescued: std::collections::BTreeMap<&str, u64> = Default::default();
    for r in &totals {
        *rescued.entry(&r.queue).or_default() += r.counts.get(Counter::Rescued);
    }
    for (queue, n) in rescued {
        let l = format!("queue=\"{}\"", escape(queue));
        sample(&mut out, "spool_jobs_rescued_total", &l, n);
    }

    family(
        &mut out,
        "spool_queue_jobs",
        "gauge",
        "Jobs in each queue by state.",
    );
    for q in &stats.queues {
        let failed = counts.failed.get(&q.name).copied().unwrap_or(0);
        for (state, n) in [
            ("pending", q.pending),
            ("delayed", q.delayed),
            ("reserved", q.reserved),
            ("failed", failed),
        ] {
            let l = format!("queue=\"{}\",state=\"{state}\"", escape(&q.name));
            sample(&mut out, "spool_queue_jobs", &l, n);
        }
    }
    family(
        &mut out,
        "spool_queue_oldest_ready_age_seconds",
        "gauge",
        "How long the oldest ready job of each queue has waited.",
    );
    for q in &stats.queues {
        let l = format!("queue=\"{}\"", escape(&q.name));
        let age = q.oldest_ready_age_ms as f64 / 1000.0;
        sample(&mut out, "spool_queue_oldest_ready_age_seconds", &l, age);
    }
    family(
        &mut out,
        "spool_queue_paused",
        "gauge",
        "1 while the queue is paused.",
    );
    for q in &stats.queues {
        let l = format!("queue=\"{}\"", escape(&q.name));
        sample(&mut out, "spool_queue_paused", &l, u8::from(q.paused));
    }
    let live: Vec<&str> = stats.workers.iter().map(|w| w.id.as_str()).collect();
    let capacity: i64 = store
        .records(RecordKind::Capacity)
        .await?
        .iter()
        .filter(|r| live.contains(&r.name.as_str()))
        .map(|r| r.value)
        .sum();
    let busy: usize = stats.workers.iter().map(|w| w.busy.len()).sum();
    family(
        &mut out,
        "spool_workers_busy",
        "gauge",
        "Jobs running in live workers.",
    );
    sample(&mut out, "spool_workers_busy", "", busy);
    family(
        &mut out,
        "spool_workers_capacity",
        "gauge",
        "Jobs live workers can run at once (their total concurrency).",
    );
    sample(&mut out, "spool_workers_capacity", "", capacity);
    Ok(out)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn labels(r: &MetricsRecord, extra: &[(&str, &str)]) -> String {
    let mut l = format!("queue=\"{}\",job=\"{}\"", escape(&r.queue), escape(&r.job));
    for (k, v) in extra {
        let _ = write!(l, ",{k}=\"{}\"", escape(v));
    }
    l
}

/// A histogram's cumulative buckets (in seconds), sum and count.
fn histogram(out: &mut String, name: &str, r: &MetricsRecord, h: &Histogram) {
    let mut seen = 0;
    for (i, n) in h.counts().iter().enumerate() {
        seen += n;
        let le = if i + 1 == BUCKETS {
            "+Inf".to_string()
        } else {
            format!("{}", Histogram::upper_bound_ms(i) / 1000.0)
        };
        let l = labels(r, &[("le", &le)]);
        sample(out, &format!("{name}_bucket"), &l, seen);
    }
    let l = labels(r, &[]);
    sample(out, &format!("{name}_sum"), &l, h.sum_us() as f64 / 1e6);
    sample(out, &format!("{name}_count"), &l, h.count());
}

/// A label value as the text format needs it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut r = MetricsRecord::new(0, "q\"1", "J");
        r.run.record_ms(2.0);
        r.run.record_ms(500.0);
        let mut out = String::new();
        histogram(&mut out, "spool_job_run_seconds", &r, &r.run.clone());
        assert!(out.contains(r#"spool_job_run_seconds_bucket{queue="q\"1",job="J",le="0.001"} 0"#));
        assert!(out.contains(r#"le="0.00225"} 1"#), "{out}");
        assert!(out.contains(r#"le="+Inf"} 2"#));
        assert!(out.contains(r#"spool_job_run_seconds_sum{queue="q\"1",job="J"} 0.502"#));
        assert!(out.contains(r#"spool_job_run_seconds_count{queue="q\"1",job="J"} 2"#));
    }
}

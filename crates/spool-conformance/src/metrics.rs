//! Checks of the metrics part of the contract ([`MetricsStore`](spool::store::MetricsStore)):
//! records add up per minute, hour and all time, pushes count what they queue, and pruning
//! drops old periods but never lowers a total.

use std::time::Duration;

use spool::{
    Envelope,
    metrics::{Counter, MetricsQuery, MetricsRecord, Resolution},
    store::NewJob,
};

use crate::{Fixture, new_job};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn record(at: i64, queue: &str, job: &str, completed: u64, wait_ms: f64) -> MetricsRecord {
    let mut record = MetricsRecord::new(at, queue, job);
    record.counts.add(Counter::Completed, completed);
    record.counts.add(Counter::Failed, 1);
    record.wait.record_ms(wait_ms);
    record.run.record_ms(wait_ms * 10.0);
    record
}

fn query(resolution: Resolution, since_ms: i64, queue: Option<&str>) -> MetricsQuery {
    MetricsQuery {
        resolution,
        since_ms,
        queue: queue.map(str::to_string),
    }
}

/// Records of one minute merge; each lands in its minute, its hour and the totals; reads
/// filter by period start and queue and come back in (period, queue, job) order.
pub async fn metrics_add_up_per_minute_hour_and_total(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let now = spool::now_ms();
    // Two writers in the same minute, one two hours before, and another queue.
    let writes = [
        record(now, "mail", "Send", 3, 5.0),
        record(now, "mail", "Send", 2, 700.0),
        record(now - 2 * HOUR, "mail", "Send", 1, 5.0),
        record(now, "pdf", "Render", 7, 50.0),
    ];
    store.record_metrics(&writes[..2]).await.unwrap();
    store.record_metrics(&writes[2..]).await.unwrap();
    store.record_metrics(&[]).await.unwrap();

    let minutes = store
        .metrics(&query(Resolution::Minute, now - 3 * HOUR, Some("mail")))
        .await
        .unwrap();
    assert_eq!(minutes.len(), 2, "{minutes:?}");
    assert_eq!(minutes[0].at, Resolution::Minute.start_of(now - 2 * HOUR));
    assert_eq!(minutes[1].at, Resolution::Minute.start_of(now));
    let this_minute = &minutes[1];
    assert_eq!(
        (this_minute.queue.as_str(), this_minute.job.as_str()),
        ("mail", "Send")
    );
    assert_eq!(this_minute.counts.get(Counter::Completed), 5);
    assert_eq!(this_minute.counts.get(Counter::Failed), 2);
    assert_eq!(this_minute.wait.count(), 2);
    assert_eq!(this_minute.wait.sum_us(), 705_000);
    assert_eq!(this_minute.run.count(), 2);
    let p99 = this_minute.wait.quantile_ms(0.99).unwrap();
    assert!((700.0..=1050.0).contains(&p99), "p99 {p99}");

    let recent = store
        .metrics(&query(Resolution::Minute, now - HOUR, None))
        .await
        .unwrap();
    let names: Vec<&str> = recent.iter().map(|r| r.queue.as_str()).collect();
    assert_eq!(names, ["mail", "pdf"], "the older minute is left out");

    let hours = store
        .metrics(&query(Resolution::Hour, now - 3 * HOUR, Some("mail")))
        .await
        .unwrap();
    let completed: Vec<u64> = hours
        .iter()
        .map(|r| r.counts.get(Counter::Completed))
        .collect();
    assert_eq!(completed, [1, 5]);
    assert_eq!(hours[1].at, Resolution::Hour.start_of(now));

    let totals = store
        .metrics(&query(Resolution::Total, now, None))
        .await
        .unwrap();
    assert_eq!(totals.len(), 2);
    assert_eq!(totals[0].at, 0);
    assert_eq!(totals[0].counts.get(Counter::Completed), 6);
    assert_eq!(totals[0].wait.count(), 3);
    assert_eq!(totals[1].counts.get(Counter::Completed), 7);
}

/// A push counts the jobs it queued (not those already queued) per queue and job name.
pub async fn pushes_count_enqueued_jobs(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let first = new_job("mail", Duration::ZERO);
    let other = NewJob::new(
        &Envelope::new("Render", "mail", serde_json::json!({})),
        Duration::from_secs(60),
    )
    .unwrap();
    store
        .push(&[first.clone(), new_job("mail", Duration::ZERO), other])
        .await
        .unwrap();
    store.push(&[first]).await.unwrap();
    let totals = store
        .metrics(&query(Resolution::Total, 0, Some("mail")))
        .await
        .unwrap();
    let enqueued: Vec<(&str, u64)> = totals
        .iter()
        .map(|r| (r.job.as_str(), r.counts.get(Counter::Enqueued)))
        .collect();
    assert_eq!(enqueued, [("Render", 1), ("noop", 2)]);
    let minutes = store
        .metrics(&query(Resolution::Minute, spool::now_ms() - HOUR, None))
        .await
        .unwrap();
    let counted: u64 = minutes
        .iter()
        .map(|r| r.counts.get(Counter::Enqueued))
        .sum();
    assert_eq!(counted, 3);
}

/// Minute records go after 48 hours and hour records after 30 days; totals stay.
pub async fn old_metrics_are_pruned_but_totals_stay(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let now = spool::now_ms();
    let writes = [
        record(now - 49 * HOUR, "mail", "Send", 1, 5.0),
        record(now - 31 * 24 * HOUR, "mail", "Send", 2, 5.0),
        record(now, "mail", "Send", 4, 5.0),
    ];
    store.record_metrics(&writes).await.unwrap();
    store.prune_metrics(now).await.unwrap();
    let completed = |records: Vec<MetricsRecord>| -> Vec<u64> {
        records
            .iter()
            .map(|r| r.counts.get(Counter::Completed))
            .collect()
    };
    let minutes = store
        .metrics(&query(Resolution::Minute, 0, None))
        .await
        .unwrap();
    assert_eq!(completed(minutes), [4]);
    let hours = store
        .metrics(&query(Resolution::Hour, 0, None))
        .await
        .unwrap();
    assert_eq!(completed(hours), [1, 4]);
    let totals = store
        .metrics(&query(Resolution::Total, 0, None))
        .await
        .unwrap();
    assert_eq!(completed(totals), [7]);
}

/// A job the reaper returns to its queue after its worker died counts as rescued, in the same
/// step; a poison pill that fails instead does not.
pub async fn rescued_jobs_are_counted(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    crate::helpers::push_default(&store, 2).await;
    let lease = Duration::from_millis(500);
    let dead = crate::helpers::worker(&store, "dead", lease).await;
    let held = crate::helpers::reserve_default(&store, &dead, 2).await;
    assert_eq!(held.len(), 2);
    tokio::time::sleep(Duration::from_millis(900)).await;
    // max_recoveries 2: both come back (their first loss).
    assert_eq!(store.reap(2).await.unwrap().recovered, 2);
    let rescued = |records: Vec<MetricsRecord>| -> u64 {
        records
            .iter()
            .filter(|r| r.queue == "default" && r.job == "noop")
            .map(|r| r.counts.get(Counter::Rescued))
            .sum()
    };
    let totals = store
        .metrics(&query(Resolution::Total, 0, None))
        .await
        .unwrap();
    assert_eq!(rescued(totals), 2);
    let minutes = store
        .metrics(&query(Resolution::Minute, spool::now_ms() - HOUR, None))
        .await
        .unwrap();
    assert_eq!(rescued(minutes), 2);
}

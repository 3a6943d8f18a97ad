//! Small builders the checks share.

use std::{sync::Arc, time::Duration};

use spool::{
    Envelope, Store,
    store::{Claim, NewJob, ReservedJob, Settlement, WorkerInfo},
};

/// The lease of workers that are meant to stay alive for the whole check.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// A new `noop` job for `queue` with `delay`.
pub fn new_job(queue: &str, delay: Duration) -> NewJob {
    NewJob::new(&Envelope::new("noop", queue, serde_json::json!({})), delay).expect("encodes")
}

/// Pushes `n` new `noop` jobs on the `default` queue; returns them.
pub(crate) async fn push_default(store: &Arc<dyn Store>, n: usize) -> Vec<NewJob> {
    let jobs: Vec<NewJob> = (0..n).map(|_| new_job("default", Duration::ZERO)).collect();
    store.push(&jobs).await.unwrap();
    jobs
}

/// Pushes a `noop` job on `queue` with a retry window of a minute; returns its id.
pub(crate) async fn push_with_retry_window(store: &Arc<dyn Store>, queue: &str) -> String {
    let mut envelope = Envelope::new("noop", queue, serde_json::json!({}));
    envelope.options.retry_for = Some(Duration::from_secs(60));
    store
        .push(&[NewJob::new(&envelope, Duration::ZERO).unwrap()])
        .await
        .unwrap();
    envelope.id
}

pub(crate) fn ids(jobs: &[NewJob]) -> Vec<String> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

/// Registers a worker named after `name` with `lease`; returns its id.
pub(crate) async fn worker(store: &Arc<dyn Store>, name: &str, lease: Duration) -> String {
    let id = format!("{name}-{}", spool::new_id());
    let info = WorkerInfo {
        id: id.clone(),
        host: "test-host".into(),
        pid: std::process::id(),
        queues: vec!["default".into()],
    };
    store
        .register_worker(&info, lease)
        .await
        .expect("register worker");
    id
}

pub(crate) fn q(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Reserves up to `limit` jobs of the `default` queue for `worker`.
pub(crate) async fn reserve_default(
    store: &Arc<dyn Store>,
    worker: &str,
    limit: usize,
) -> Vec<ReservedJob> {
    reserve_from(store, worker, &["default"], limit).await
}

/// Reserves up to `limit` jobs of `queues` (in priority order) for `worker`.
pub(crate) async fn reserve_from(
    store: &Arc<dyn Store>,
    worker: &str,
    queues: &[&str],
    limit: usize,
) -> Vec<ReservedJob> {
    store
        .reserve(Claim::new(worker, &q(queues), limit))
        .await
        .unwrap()
}

pub(crate) fn complete(id: &str, token: i64) -> Settlement {
    Settlement::complete(id, token)
}

/// Pending jobs in `queue`, or in every queue with `None`.
pub async fn pending_jobs(store: &dyn Store, queue: Option<&str>) -> u64 {
    store
        .stats()
        .await
        .expect("stats")
        .queues
        .iter()
        .filter(|s| queue.is_none_or(|q| s.name == q))
        .map(|s| s.pending)
        .sum()
}

/// Pending jobs in `queue`.
pub(crate) async fn pending_in(store: &Arc<dyn Store>, queue: &str) -> u64 {
    pending_jobs(store.as_ref(), Some(queue)).await
}

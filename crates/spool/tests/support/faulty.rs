//! A store that misbehaves on purpose, wrapped around a real one: it refuses one job's
//! settlements (as a server refuses a value it cannot store) or fails every heartbeat.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use spool::{
    Store, StoreError,
    store::{self as s, AdminStore, ControlStore, QueueStore, StoreResult, WorkflowStore},
};

/// The faults to inject, shared by every handle on the wrapper (the heartbeat's reopened one
/// too).
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Settlements of this job are refused, unless they fail it for that refusal.
    pub(crate) refuse: Mutex<Option<String>>,
    /// Every heartbeat fails as if the store were unreachable.
    pub(crate) heartbeat_down: AtomicBool,
    /// The next heartbeat panics, killing the heartbeat's thread.
    pub(crate) heartbeat_panics: AtomicBool,
    /// Every settlement write fails as if the store were unreachable.
    pub(crate) settle_down: AtomicBool,
}

/// The wrapper; see the module docs.
pub(crate) struct Faulty {
    inner: Arc<dyn Store>,
    pub(crate) faults: Arc<Faults>,
}

impl Faulty {
    pub(crate) fn wrap(inner: Arc<dyn Store>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            faults: Arc::default(),
        })
    }

    fn check(&self, settlements: &[s::Settlement]) -> StoreResult<()> {
        if self.faults.settle_down.load(Ordering::SeqCst) && !settlements.is_empty() {
            return Err(StoreError::Unavailable("settling made to fail".into()));
        }
        let refused = self.faults.refuse.lock().unwrap().clone();
        let hit = settlements.iter().any(|st| {
            Some(st.id()) == refused.as_deref()
                && !matches!(st, s::Settlement::Fail { error, .. } if error.contains("refused"))
        });
        if hit {
            return Err(StoreError::Other(
                "value out of range for this column".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl QueueStore for Faulty {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn migrate(&self) -> StoreResult<()> {
        self.inner.migrate().await
    }
    async fn check_schema(&self) -> StoreResult<()> {
        self.inner.check_schema().await
    }
    async fn reopen(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(Faulty {
            inner: self.inner.reopen().await?,
            faults: self.faults.clone(),
        }))
    }
    async fn push(&self, jobs: &[s::NewJob]) -> StoreResult<Vec<s::PushOutcome>> {
        self.inner.push(jobs).await
    }
    async fn register_worker(&self, worker: &s::WorkerInfo, lease: Duration) -> StoreResult<()> {
        self.inner.register_worker(worker, lease).await
    }
    async fn register_worker_within(
        &self,
        worker: &s::WorkerInfo,
        lease: Duration,
        max: u32,
    ) -> StoreResult<bool> {
        self.inner.register_worker_within(worker, lease, max).await
    }
    async fn heartbeat(&self, worker_id: &str, lease: Duration) -> StoreResult<s::Heartbeat> {
        if self.faults.heartbeat_panics.load(Ordering::SeqCst) {
            panic!("heartbeat made to panic");
        }
        if self.faults.heartbeat_down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("heartbeat made to fail".into()));
        }
        self.inner.heartbeat(worker_id, lease).await
    }
    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        self.inner.deregister_worker(worker_id).await
    }
    async fn reserve(&self, claim: s::Claim<'_>) -> StoreResult<Vec<s::ReservedJob>> {
        self.inner.reserve(claim).await
    }
    async fn settle(
        &self,
        worker_id: &str,
        settlements: &[s::Settlement],
    ) -> StoreResult<Vec<bool>> {
        self.check(settlements)?;
        self.inner.settle(worker_id, settlements).await
    }
    async fn settle_and_reserve(
        &self,
        settlements: &[s::Settlement],
        claim: s::Claim<'_>,
    ) -> StoreResult<(Vec<bool>, Vec<s::ReservedJob>)> {
        self.check(settlements)?;
        self.inner.settle_and_reserve(settlements, claim).await
    }
    async fn reap(&self, max_recoveries: u32) -> StoreResult<s::ReapReport> {
        self.inner.reap(max_recoveries).await
    }
    async fn next_available_in(&self, queues: &[String]) -> StoreResult<Option<Duration>> {
        self.inner.next_available_in(queues).await
    }
    fn wakeups(&self) -> s::Wakeups {
        self.inner.wakeups()
    }
    async fn restart_epoch(&self) -> StoreResult<i64> {
        self.inner.restart_epoch().await
    }
}

#[async_trait]
impl AdminStore for Faulty {
    async fn stats(&self) -> StoreResult<s::Stats> {
        self.inner.stats().await
    }
    async fn jobs(&self, filter: &s::JobFilter) -> StoreResult<Vec<s::JobInfo>> {
        self.inner.jobs(filter).await
    }
    async fn job(&self, id: &str) -> StoreResult<Option<s::JobInfo>> {
        self.inner.job(id).await
    }
    async fn search_jobs(&self, search: &s::JobSearch) -> StoreResult<s::Page<s::JobInfo>> {
        self.inner.search_jobs(search).await
    }
    async fn completed_jobs(&self, search: &s::JobSearch) -> StoreResult<s::Page<s::CompletedJob>> {
        self.inner.completed_jobs(search).await
    }
    async fn prune_completed(&self, age: Duration) -> StoreResult<u64> {
        self.inner.prune_completed(age).await
    }
    async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_job(id).await
    }
    async fn run_job_now(&self, id: &str) -> StoreResult<bool> {
        self.inner.run_job_now(id).await
    }
    async fn clear(&self, queue: &str) -> StoreResult<u64> {
        self.inner.clear(queue).await
    }
    async fn failed_jobs(&self, filter: &s::FailedFilter) -> StoreResult<(Vec<s::FailedJob>, u64)> {
        self.inner.failed_jobs(filter).await
    }
    async fn failed_job(&self, id: &str) -> StoreResult<Option<s::FailedJob>> {
        self.inner.failed_job(id).await
    }
    async fn retry_failed(&self, selector: &s::RetrySelector) -> StoreResult<Vec<String>> {
        self.inner.retry_failed(selector).await
    }
    async fn forget_failed(&self, id: &str) -> StoreResult<bool> {
        self.inner.forget_failed(id).await
    }
    async fn flush_failed(&self) -> StoreResult<u64> {
        self.inner.flush_failed().await
    }
    async fn prune_failed(&self, age: Duration) -> StoreResult<u64> {
        self.inner.prune_failed(age).await
    }
    async fn signal_restart(&self) -> StoreResult<i64> {
        self.inner.signal_restart().await
    }
}

#[async_trait]
impl WorkflowStore for Faulty {
    async fn create_batch(
        &self,
        batch: &s::NewBatch,
        jobs: &[s::NewJob],
    ) -> StoreResult<Vec<s::PushOutcome>> {
        self.inner.create_batch(batch, jobs).await
    }
    async fn add_to_batch(
        &self,
        batch_id: &str,
        jobs: &[s::NewJob],
    ) -> StoreResult<Vec<s::PushOutcome>> {
        self.inner.add_to_batch(batch_id, jobs).await
    }
    async fn batch(&self, id: &str) -> StoreResult<Option<s::BatchInfo>> {
        self.inner.batch(id).await
    }
    async fn batches(&self, limit: u32) -> StoreResult<Vec<s::BatchInfo>> {
        self.inner.batches(limit).await
    }
    async fn cancel_batch(&self, id: &str) -> StoreResult<bool> {
        self.inner.cancel_batch(id).await
    }
    async fn prune_batches(&self, prune: s::BatchPrune) -> StoreResult<u64> {
        self.inner.prune_batches(prune).await
    }
    async fn limit(
        &self,
        key: &str,
        window: Duration,
        mode: s::LimitMode,
    ) -> StoreResult<s::LimitState> {
        self.inner.limit(key, window, mode).await
    }
    async fn clear_limit(&self, key: &str) -> StoreResult<()> {
        self.inner.clear_limit(key).await
    }
    async fn prune_limits(&self) -> StoreResult<u64> {
        self.inner.prune_limits().await
    }
    async fn unique_holder(&self, queue: &str, key: &str) -> StoreResult<Option<String>> {
        self.inner.unique_holder(queue, key).await
    }
    async fn acquire_slot(&self, worker_id: &str, request: &s::SlotRequest) -> StoreResult<bool> {
        self.inner.acquire_slot(worker_id, request).await
    }
    async fn set_progress(&self, held: s::Held<'_>, progress: &s::Progress) -> StoreResult<bool> {
        self.inner.set_progress(held, progress).await
    }
    async fn job_result(&self, id: &str) -> StoreResult<Option<s::CompletedJob>> {
        self.inner.job_result(id).await
    }
    async fn prune_results(&self, age: Duration) -> StoreResult<u64> {
        self.inner.prune_results(age).await
    }
}

#[async_trait]
impl ControlStore for Faulty {
    async fn control(&self) -> StoreResult<s::Control> {
        self.inner.control().await
    }
    async fn set_mark(
        &self,
        kind: s::ControlKind,
        name: &str,
        on: bool,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.inner.set_mark(kind, name, on, now_ms).await
    }
    async fn clear_marks(&self, kind: s::ControlKind) -> StoreResult<u64> {
        self.inner.clear_marks(kind).await
    }
    async fn bump_epoch(&self, epoch: s::ControlEpoch, now_ms: i64) -> StoreResult<i64> {
        self.inner.bump_epoch(epoch, now_ms).await
    }
    async fn put_record(
        &self,
        kind: s::RecordKind,
        name: &str,
        value: i64,
        info: Option<&str>,
    ) -> StoreResult<()> {
        self.inner.put_record(kind, name, value, info).await
    }
    async fn records(&self, kind: s::RecordKind) -> StoreResult<Vec<s::Record>> {
        self.inner.records(kind).await
    }
    async fn delete_record(&self, kind: s::RecordKind, name: &str) -> StoreResult<bool> {
        self.inner.delete_record(kind, name).await
    }
}

#[async_trait]
impl s::MetricsStore for Faulty {
    async fn record_metrics(&self, records: &[spool::metrics::MetricsRecord]) -> StoreResult<()> {
        self.inner.record_metrics(records).await
    }
    async fn metrics(
        &self,
        query: &spool::metrics::MetricsQuery,
    ) -> StoreResult<Vec<spool::metrics::MetricsRecord>> {
        self.inner.metrics(query).await
    }
    async fn prune_metrics(&self, now_ms: i64) -> StoreResult<u64> {
        self.inner.prune_metrics(now_ms).await
    }
}

#[async_trait]
impl s::KeyValueStore for Faulty {
    async fn kv_get(&self, key: &str) -> StoreResult<Option<s::KvEntry>> {
        self.inner.kv_get(key).await
    }
    async fn kv_put(
        &self,
        key: &str,
        value: &str,
        expect: s::KvExpect,
        ttl: Option<Duration>,
    ) -> StoreResult<Option<i64>> {
        self.inner.kv_put(key, value, expect, ttl).await
    }
    async fn kv_list(&self, prefix: &str, limit: u32) -> StoreResult<Vec<(String, s::KvEntry)>> {
        self.inner.kv_list(prefix, limit).await
    }
    async fn kv_delete(&self, prefix: &str) -> StoreResult<u64> {
        self.inner.kv_delete(prefix).await
    }
    async fn kv_prune(&self) -> StoreResult<u64> {
        self.inner.kv_prune().await
    }
}

//! Worker leases on Redis: registration, the lease each queue records, what a handle knows
//! its workers hold, and extending or handing back per queue.

use futures_util::future::join_all;
use redis::Value;

use super::{
    RedisStore,
    keys::Keys,
    lock,
    rows::{WorkerRecord, int, queue_names},
    scripts,
};
use crate::store::{
    ReservedJob, Settlement, StoreError, StoreResult, WorkerInfo, rules::offset_ms,
};
use std::time::Duration;

impl RedisStore {
    /// The lease of `worker` to record in a queue it reserves from: known to this handle if the
    /// worker registered through it, else read from its registration (0 if it has none, so its
    /// jobs are reaped like those of a dead worker).
    pub(super) async fn lease_of(&self, worker: &str) -> StoreResult<i64> {
        if let Some(lease) = lock(&self.leases).get(worker) {
            return Ok(*lease);
        }
        let record: Option<String> = self.command("HGET", self.keys.workers(), worker).await?;
        let lease = record
            .and_then(|json| serde_json::from_str::<WorkerRecord>(&json).ok())
            .map(|r| r.lease_ms);
        if let Some(lease) = lease {
            lock(&self.leases).insert(worker.to_string(), lease);
        }
        Ok(lease.unwrap_or(0))
    }

    /// Registers a worker, unless `max` live workers already serve any of its queues (one
    /// script: the check and the registration are atomic); false if it did not.
    pub(super) async fn register(
        &self,
        worker: &WorkerInfo,
        lease: Duration,
        max: Option<u32>,
    ) -> StoreResult<bool> {
        let lease_ms = offset_ms(lease);
        let record = WorkerRecord {
            host: worker.host.clone(),
            pid: worker.pid,
            queues: worker.queues.clone(),
            lease_ms,
            started_at: 0,
        };
        // `started_at` is stamped by the script with the server's clock.
        let mut info = serde_json::to_value(&record)
            .map_err(|e| StoreError::Other(format!("cannot encode a worker: {e}")))?;
        if let Some(object) = info.as_object_mut() {
            object.remove("started_at");
        }
        let mut call = self.on_global(&scripts::REGISTER);
        call.arg(&worker.id).arg(info.to_string()).arg(lease_ms);
        if let Some(max) = max {
            call.arg(max);
        }
        if int(&self.run(&call).await?, "registration")? < 0 {
            return Ok(false);
        }
        lock(&self.leases).insert(worker.id.clone(), lease_ms);
        lock(&self.registered).insert(worker.id.clone());
        Ok(true)
    }

    /// The queues where `worker` holds jobs, if it registered through this handle (which then
    /// saw all its reservations); `None` otherwise.
    pub(super) fn queues_holding(&self, worker: &str) -> Option<Vec<String>> {
        if !lock(&self.registered).contains(worker) {
            return None;
        }
        let held = lock(&self.held);
        let queues: std::collections::BTreeSet<&String> = held
            .values()
            .filter(|(_, holder)| holder == worker)
            .map(|(queue, _)| queue)
            .collect();
        Some(queues.into_iter().cloned().collect())
    }

    pub(super) fn remember_held(&self, worker: &str, jobs: &[ReservedJob]) {
        let mut held = lock(&self.held);
        for job in jobs {
            held.insert(job.id.clone(), (job.queue.clone(), worker.to_string()));
        }
    }

    /// Forgets the queue of settled jobs (applied or not: a job refused is no longer this
    /// worker's).
    pub(super) fn forget_held(&self, settlements: &[Settlement]) {
        let mut held = lock(&self.held);
        for s in settlements {
            held.remove(s.id());
        }
    }

    /// Extends `worker`'s lease to `expires` in every queue that recorded it (XX: only
    /// there; GT never shortens one), concurrently. `heartbeat` is the heartbeat script's
    /// reply, whose items from the fourth on name the worker's queues.
    pub(super) async fn extend_leases(
        &self,
        worker_id: &str,
        expires: i64,
        heartbeat: &[Value],
    ) -> StoreResult<()> {
        let queues = match self.queues_holding(worker_id) {
            Some(queues) => queues,
            // Registered through another handle (the heartbeat's own, after a reopen): the
            // queues it serves, as its registration names them.
            None => queue_names(heartbeat, 3)?,
        };
        let extended = join_all(queues.iter().map(|queue| async move {
            let mut extend = redis::cmd("ZADD");
            extend
                .arg(Keys::queue_leases(&self.keys.queue(queue)))
                .arg("XX")
                .arg("GT")
                .arg(expires)
                .arg(worker_id);
            (queue, self.each::<Value>([extend]).await)
        }))
        .await;
        for (queue, result) in extended {
            match result {
                Ok(_) => {}
                // The queue's node is down (a cluster): its jobs wait for it anyway, and the
                // next heartbeat extends the lease there again.
                Err(e) if e.is_unavailable() => {
                    self.unreachable(queue, "cannot extend the lease in this queue now", &e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Hands back what `worker_id` holds in `queues` (its registration's) and in the queues
    /// this handle saw it reserve from; the jobs handed back, and the error of a queue that
    /// could not be reached (the reaper returns those once it is back).
    pub(super) async fn hand_back(
        &self,
        worker_id: &str,
        mut queues: Vec<String>,
    ) -> StoreResult<(i64, Option<StoreError>)> {
        if let Some(holding) = self.queues_holding(worker_id) {
            queues.extend(holding);
        }
        queues.sort();
        queues.dedup();
        let args = [worker_id.to_string()];
        let (replies, failure) = self
            .on_each_queue_tolerant(
                &scripts::DEREGISTER,
                &queues,
                &args,
                "cannot hand back this queue's jobs now",
            )
            .await?;
        let mut returned = 0;
        for (_, reply) in &replies {
            returned += int(reply, "jobs handed back")?;
        }
        Ok((returned, failure))
    }
}

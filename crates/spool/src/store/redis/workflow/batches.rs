//! Batches on Redis: a batch's record lives under the tag of the queue its jobs go to, so the
//! settle script of that queue counts it (see `workflow.rs`).

use super::super::{
    RedisStore,
    queue::push_args,
    rows::{self, int},
    scripts,
};
use crate::store::{NewJob, PushOutcome, StoreError, StoreResult};

impl RedisStore {
    /// The queue a batch's record lives under: from the `{P}:batches` index, else found by
    /// looking in every queue (an index write lost to a crash).
    pub(in crate::store::redis) async fn batch_queue(
        &self,
        id: &str,
    ) -> StoreResult<Option<String>> {
        let indexed: Option<String> = self.command("HGET", self.keys.batches(), id).await?;
        let queues = match indexed {
            Some(queue) => vec![queue],
            None => self.all_queues().await?,
        };
        self.first_queue_holding(queues, &format!("batch:{id}"))
            .await
    }

    /// The one queue of a batch's jobs; `Invalid` if they span queues or leave `expected`.
    pub(super) fn batch_jobs_queue<'a>(
        batch_id: &str,
        jobs: &'a [NewJob],
        expected: Option<&'a str>,
    ) -> StoreResult<Option<&'a str>> {
        let mut queue = expected;
        for job in jobs {
            match queue {
                Some(q) if q != job.queue => {
                    return Err(StoreError::Invalid(format!(
                        "batch {batch_id}: on Redis all jobs of a batch go to one queue (its \
                         record lives with them), but jobs are bound for `{q}` and `{}`; \
                         dispatch the batch on one queue",
                        job.queue
                    )));
                }
                Some(_) => {}
                None => queue = Some(&job.queue),
            }
        }
        Ok(queue)
    }

    /// Runs the batch push script; `Ok(None)` when its precondition failed.
    pub(super) async fn batch_push(
        &self,
        queue: &str,
        head: &[String],
        jobs: &[NewJob],
    ) -> StoreResult<Option<Vec<PushOutcome>>> {
        self.note_queues([queue]).await?;
        let mut call = self.on_queue(&scripts::BATCH_PUSH, queue);
        call.arg(queue);
        for arg in head {
            call.arg(arg);
        }
        for job in jobs {
            push_args(&mut call, job);
        }
        let reply = self.run(&call).await?;
        let [status, flags, listed_now] = rows::fixed::<3>(&reply, "batch push")?;
        if int(status, "batch status")? == 0 {
            return Ok(None);
        }
        if int(listed_now, "listed")? != 0 {
            self.list_again(queue).await?;
        }
        let outcomes: Vec<PushOutcome> = rows::flags(flags, jobs.len())?
            .into_iter()
            .map(|queued| {
                if queued {
                    PushOutcome::Queued
                } else {
                    PushOutcome::AlreadyQueued
                }
            })
            .collect();
        if outcomes.contains(&PushOutcome::Queued) {
            self.wakeup.notify();
        }
        Ok(Some(outcomes))
    }
}

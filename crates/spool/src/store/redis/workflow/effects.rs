//! What a settle or reap script leaves for the store to finish after it: follow-ups bound for
//! other queues, written to the settling queue's outbox, are delivered to their queues, and
//! the slots of ended jobs are freed.

use redis::{ScriptInvocation, Value};

use super::super::{
    RedisStore,
    keys::Keys,
    rows::{self, array, int, text},
    scripts,
};
use crate::store::StoreResult;

/// What a settle or reap script left for the store to finish: outbox entries to deliver and
/// slots to free.
#[derive(Debug, Default)]
pub(in crate::store::redis) struct Effects {
    /// (source queue, follow-up id, entry JSON).
    outbox: Vec<(String, String, String)>,
    /// (slot key, holder job id, token).
    slots: Vec<(String, String, String)>,
}

impl Effects {
    /// Adds a script's outbox entries (`{id, entry}...`) and slots (`{key, id, token}...`).
    pub(in crate::store::redis) fn add(
        &mut self,
        queue: &str,
        outbox: &Value,
        slots: &Value,
    ) -> StoreResult<()> {
        for pair in array(outbox, "outbox entries")?.chunks(2) {
            let [id, entry] = pair else {
                return Err(rows::malformed("outbox entries", outbox));
            };
            self.outbox.push((
                queue.to_string(),
                text(id, "follow-up id")?,
                text(entry, "outbox entry")?,
            ));
        }
        for triple in array(slots, "slots to free")?.chunks(3) {
            let [key, id, token] = triple else {
                return Err(rows::malformed("slots to free", slots));
            };
            self.slots.push((
                text(key, "slot key")?,
                text(id, "slot holder")?,
                int(token, "slot token")?.to_string(),
            ));
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.outbox.is_empty() && self.slots.is_empty()
    }
}

impl RedisStore {
    /// Finishes what settle or reap scripts left: delivers outbox entries to their queues and
    /// frees slots. Failures are logged, not returned: the settlements already happened, and
    /// the next reap delivers what is left (stale slots are freed lazily).
    pub(in crate::store::redis) async fn finish(&self, effects: Effects) {
        if effects.is_empty() {
            return;
        }
        if let Err(e) = self.deliver(&effects.outbox).await {
            tracing::warn!("delivering follow-ups failed (the reaper retries): {e}");
        }
        if let Err(e) = self.release_slots(&effects.slots).await {
            tracing::warn!("freeing concurrency slots failed (they expire): {e}");
        }
    }

    /// Pushes outbox entries to their target queues, marking each id delivered there, then
    /// deletes them from their source outboxes. Idempotent: delivering an entry twice pushes
    /// its job once.
    async fn deliver(&self, entries: &[(String, String, String)]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut targets: Vec<(String, Vec<Vec<String>>)> = Vec::new();
        let mut broken = Vec::new();
        for (source, id, entry) in entries {
            match serde_json::from_str::<Vec<String>>(entry) {
                // An entry without tags (all that builds before tags wrote) has ten fields.
                Ok(mut fields) if fields.len() == 10 || fields.len() == 11 => {
                    fields.resize(11, String::new());
                    let queue = fields.remove(0);
                    match targets.iter_mut().find(|(q, _)| *q == queue) {
                        Some((_, jobs)) => jobs.push(fields),
                        None => targets.push((queue, vec![fields])),
                    }
                }
                // Written by a script, so never expected; dropped rather than retried forever.
                _ => {
                    tracing::error!(queue = %source, "dropping a malformed outbox entry for {id}");
                    broken.push(id);
                }
            }
        }
        self.note_queues(targets.iter().map(|(q, _)| q.as_str()))
            .await?;
        let calls: Vec<ScriptInvocation<'_>> = targets
            .iter()
            .map(|(queue, jobs)| {
                let mut call = self.on_queue(&scripts::PUSH, queue);
                call.arg(queue).arg("1");
                for fields in jobs {
                    for field in fields {
                        call.arg(field);
                    }
                }
                call
            })
            .collect();
        let replies = self.run_all(&calls).await?;
        for ((queue, _), reply) in targets.iter().zip(&replies) {
            let [listed_now, _] = rows::fixed::<2>(reply, "delivery")?;
            if int(listed_now, "listed")? != 0 {
                self.list_again(queue).await?;
            }
        }
        let _: Vec<Value> = self
            .each(entries.iter().map(|(source, id, _)| {
                let mut done = redis::cmd("HDEL");
                done.arg(Keys::outbox(&self.keys.queue(source))).arg(id);
                done
            }))
            .await?;
        self.wakeup.notify();
        Ok(())
    }
}

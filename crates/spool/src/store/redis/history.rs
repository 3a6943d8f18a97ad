//! Searches and the completed history on Redis. There is no tag index: a job name, batch or
//! tag is checked on each candidate inside one script per queue, which examines at most a
//! window of them and says where it stopped.
//!
//! - Queued jobs: queue by queue (in name order), each in its list's order: the ready list,
//!   the delayed jobs by due time, the reserved ones by id (`search_jobs.lua`). The cursor is
//!   where the last call stopped: `r:<segment>:<offset>:<queue>`. Offsets move when jobs
//!   leave the front of a list between pages, so a page may repeat or skip a job then.
//! - Completed records: every queue's `:done` (ids by completion time) at once, newest first,
//!   merged on the shared cursor `<ms>:<id>` (`completed_jobs.lua`). Each record is a JSON
//!   array in `:done:rec`, written by the settle script.

use std::time::Duration;

use redis::Value;

use super::{
    DELETE_CHUNK, Keys, RedisStore,
    rows::{self, array, int, listed_jobs, opt_int, opt_text, text},
    scripts,
};
use crate::store::{
    CompletedJob, CompletedKey, JobInfo, JobSearch, JobState, Page, Part, SEARCH_WINDOW,
    StoreError, StoreResult, bad_cursor, merge, rfc3339_ms, rules::offset_ms, tags_of_column,
};

/// The least a queue's call examines of the completed records when a search spreads its
/// window over many queues.
const MIN_QUEUE_WINDOW: usize = 1_000;

/// Where a queued search goes on from.
struct Position {
    queue: String,
    segment: String,
    offset: i64,
}

impl Position {
    fn cursor(&self) -> String {
        format!("r:{}:{}:{}", self.segment, self.offset, self.queue)
    }

    fn parse(cursor: &str) -> Option<Position> {
        let mut parts = cursor.strip_prefix("r:")?.splitn(3, ':');
        let segment = parts.next()?.to_string();
        let offset = parts.next()?.parse().ok()?;
        let queue = parts.next()?.to_string();
        ["r", "d", "h"]
            .contains(&segment.as_str())
            .then_some(Position {
                queue,
                segment,
                offset,
            })
    }
}

/// A completed record as the settle script keeps it (`history_record` in `queue.lua`):
/// `attempts,enqueued_at,started_at,completed_at,<job bytes>,<batch bytes>,tags,` then the job
/// name and the batch id.
fn record(id: &str, queue: &str, stored: &str, has_result: bool) -> StoreResult<CompletedJob> {
    let bad = || StoreError::Other(format!("malformed completed record of {id}: {stored}"));
    let mut fields = stored.splitn(8, ',');
    let mut next = || fields.next().ok_or_else(bad);
    let [
        attempts,
        enqueued,
        started,
        completed,
        job_len,
        batch_len,
        tags,
    ] = [
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
    ];
    let rest = next()?;
    let ms = |text: &str| text.parse::<i64>().ok().filter(|ms| *ms > 0);
    let len = |text: &str| text.parse::<usize>().map_err(|_| bad());
    let (job_len, batch_len) = (len(job_len)?, len(batch_len)?);
    let job = rest.get(..job_len).ok_or_else(bad)?;
    let batch = rest.get(job_len..job_len + batch_len).ok_or_else(bad)?;
    Ok(CompletedJob {
        id: id.to_string(),
        queue: queue.to_string(),
        job: job.to_string(),
        batch_id: (!batch.is_empty()).then(|| batch.to_string()),
        tags: tags_of_column(Some(tags)),
        attempts: attempts.parse::<u32>().unwrap_or_default(),
        enqueued_at: ms(enqueued).map(rfc3339_ms),
        started_at: ms(started).map(rfc3339_ms),
        completed_at: rfc3339_ms(ms(completed).ok_or_else(bad)?),
        has_result,
        result: None,
    })
}

impl RedisStore {
    /// Queued jobs matching `search` (see `AdminStore::search_jobs`).
    pub(super) async fn search_queued(&self, search: &JobSearch) -> StoreResult<Page<JobInfo>> {
        let limit = search.page_size();
        let queues = match &search.queue {
            Some(queue) => vec![queue.clone()],
            None => self.all_queues().await?,
        };
        let start = match search.after.as_deref() {
            None => None,
            Some(cursor) => Some(Position::parse(cursor).ok_or_else(|| bad_cursor(cursor))?),
        };
        let state = match search.state {
            None => "",
            Some(JobState::Pending) => "pending",
            Some(JobState::Delayed) => "delayed",
            Some(JobState::Reserved) => "reserved",
        };
        let window = if search.filters() {
            SEARCH_WINDOW
        } else {
            limit
        };
        let mut items = Vec::new();
        let mut examined = 0usize;
        for queue in queues
            .iter()
            .filter(|q| start.as_ref().is_none_or(|p| **q >= p.queue))
        {
            let (segment, offset) = match &start {
                Some(p) if p.queue == *queue => (p.segment.clone(), p.offset),
                _ => ("r".to_string(), 0),
            };
            let want = limit - items.len();
            let budget = window.saturating_sub(examined).max(1);
            let mut call = self.on_queue(&scripts::SEARCH, queue);
            call.arg(&segment)
                .arg(offset)
                .arg(budget)
                .arg(want)
                .arg(state)
                .arg(search.job.as_deref().unwrap_or(""))
                .arg(search.batch_id.as_deref().unwrap_or(""))
                .arg(search.tag.as_deref().unwrap_or(""));
            let reply = self.run(&call).await?;
            let parts = array(&reply, "job search")?;
            let [now, stop_segment, stop_offset, seen, jobs @ ..] = parts else {
                return Err(rows::malformed("job search", &reply));
            };
            let mut listed = Vec::with_capacity(jobs.len() + 1);
            listed.push(now.clone());
            listed.extend(jobs.iter().cloned());
            let found = listed_jobs(&Value::Array(listed), queue)?;
            items.extend(found.into_iter().map(|(job, _)| job));
            examined += usize::try_from(int(seen, "examined")?).unwrap_or(0);
            let stop_segment = opt_text(stop_segment, "search stop")?.unwrap_or_default();
            let next = if !stop_segment.is_empty() {
                // Stopped inside this queue: go on from there.
                Some(Position {
                    queue: queue.clone(),
                    segment: stop_segment,
                    offset: int(stop_offset, "search stop")?,
                })
            } else if items.len() >= limit || examined >= window {
                // This queue is done, and so is the page: the next one starts with the next
                // queue.
                queues.iter().find(|q| *q > queue).map(|q| Position {
                    queue: q.clone(),
                    segment: "r".into(),
                    offset: 0,
                })
            } else {
                continue;
            };
            return Ok(Page {
                items,
                next: next.map(|p| p.cursor()),
            });
        }
        Ok(Page { items, next: None })
    }

    /// Completed records matching `search` (see `AdminStore::completed_jobs`).
    pub(super) async fn search_completed(
        &self,
        search: &JobSearch,
    ) -> StoreResult<Page<CompletedJob>> {
        let limit = search.page_size();
        let after = CompletedKey::parse(search.after.as_deref())?;
        let queues = match &search.queue {
            Some(queue) => vec![queue.clone()],
            None => self.all_queues().await?,
        };
        if queues.is_empty() {
            return Ok(Page::end());
        }
        let window = if search.filters() {
            (SEARCH_WINDOW / queues.len()).max(MIN_QUEUE_WINDOW)
        } else {
            limit
        };
        let (after_at, after_id) = match &after {
            Some(key) => (key.at.to_string(), key.id.clone()),
            None => (String::new(), String::new()),
        };
        let args = [
            after_at,
            after_id,
            window.to_string(),
            limit.to_string(),
            search.job.clone().unwrap_or_default(),
            search.batch_id.clone().unwrap_or_default(),
            search.tag.clone().unwrap_or_default(),
        ];
        let replies = self
            .on_each_queue(&scripts::COMPLETED, &queues, &args)
            .await?;
        let mut parts = Vec::with_capacity(queues.len());
        for (queue, reply) in queues.iter().zip(&replies) {
            let items = array(reply, "completed search")?;
            let [stop_at, stop_id, found @ ..] = items else {
                return Err(rows::malformed("completed search", reply));
            };
            let stop = match opt_int(stop_at, "search stop").unwrap_or(None) {
                Some(at) => Some(CompletedKey {
                    at,
                    id: text(stop_id, "search stop")?,
                }),
                None => None,
            };
            let mut records = Vec::with_capacity(found.len());
            for item in found {
                let [id, json, has_result] = rows::fixed::<3>(item, "completed record")?;
                let id = text(id, "job id")?;
                let kept = int(has_result, "has result")? != 0;
                records.push(record(&id, queue, &text(json, "record")?, kept)?);
            }
            parts.push(Part {
                items: records,
                stop,
            });
        }
        let (items, next) = merge(parts, limit, CompletedKey::of);
        Ok(Page {
            items,
            next: next.map(|key| key.cursor()),
        })
    }

    /// Deletes completed records older than `age` (see `AdminStore::prune_completed`).
    pub(super) async fn prune_history(&self, age: Duration) -> StoreResult<u64> {
        let args = [offset_ms(age).to_string(), DELETE_CHUNK.to_string()];
        let mut total = 0;
        for queue in self.all_queues().await? {
            total += self.drain(&scripts::COMPLETED_PRUNE, &queue, &args).await?;
        }
        Ok(total)
    }

    /// A completed job by id: its history record with its result if one is kept, or, once
    /// the record is pruned, what is left with the result (see `WorkflowStore::job_result`).
    pub(super) async fn completed_job(&self, id: &str) -> StoreResult<Option<CompletedJob>> {
        let queues = self.all_queues().await?;
        if queues.is_empty() {
            return Ok(None);
        }
        let records: Vec<Option<String>> = self
            .each(queues.iter().map(|queue| {
                let mut get = redis::cmd("HGET");
                get.arg(Keys::done_records(&self.keys.queue(queue))).arg(id);
                get
            }))
            .await?;
        let results: Vec<Value> = self
            .each(queues.iter().map(|queue| {
                let mut fields = redis::cmd("HMGET");
                fields
                    .arg(Keys::result(&self.keys.queue(queue), id))
                    .arg(&["queue", "job", "batch", "result", "completed_at"][..]);
                fields
            }))
            .await?;
        for ((queue, kept), result) in queues.iter().zip(&records).zip(&results) {
            let [r_queue, r_job, r_batch, r_result, r_at] =
                rows::fixed::<5>(result, "kept result")?;
            let result_at = opt_int(r_at, "completed_at")?;
            let value = opt_text(r_result, "result")?
                .filter(|_| result_at.is_some())
                .map(|r| serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r)));
            if let Some(json) = kept {
                let mut job = record(id, queue, json, result_at.is_some())?;
                job.result = value;
                return Ok(Some(job));
            }
            if let Some(at) = result_at {
                return Ok(Some(CompletedJob {
                    id: id.to_string(),
                    queue: text(r_queue, "queue")?,
                    job: text(r_job, "job name")?,
                    batch_id: opt_text(r_batch, "batch id")?,
                    tags: Vec::new(),
                    attempts: 0,
                    enqueued_at: None,
                    started_at: None,
                    completed_at: rfc3339_ms(at),
                    has_result: true,
                    result: value,
                }));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_with_colons_in_queue_names() {
        let p = Position {
            queue: "tenant:7/mail".into(),
            segment: "d".into(),
            offset: 42,
        };
        let back = Position::parse(&p.cursor()).unwrap();
        assert_eq!(
            (back.queue.as_str(), back.segment.as_str(), back.offset),
            ("tenant:7/mail", "d", 42)
        );
        assert!(Position::parse("r:x:1:q").is_none());
        assert!(Position::parse("a:1:2").is_none());
    }

    #[test]
    fn records_read_as_settle_wrote_them() {
        let job = record("j1", "mail", "2,1000,2000,3000,4,2,t1,sendb1", true).unwrap();
        assert_eq!(
            (job.job.as_str(), job.batch_id.as_deref()),
            ("send", Some("b1"))
        );
        assert_eq!((job.tags.len(), job.attempts, job.has_result), (1, 2, true));
        assert!(job.started_at.is_some());
        // The job name and batch id may hold commas: their lengths say where they end.
        let odd = record("j1", "mail", "2,1000,2000,3000,6,5,t1,se,n,db,1,2", false).unwrap();
        assert_eq!(
            (odd.job.as_str(), odd.batch_id.as_deref()),
            ("se,n,d", Some("b,1,2"))
        );
        let bare = record("j2", "mail", "1,1000,,3000,4,0,,send", false).unwrap();
        assert!(bare.batch_id.is_none() && bare.tags.is_empty() && bare.started_at.is_none());
        assert!(record("j3", "mail", "1,2", false).is_err());
        assert!(record("j4", "mail", "1,1000,,3000,9,0,,send", false).is_err());
    }
}

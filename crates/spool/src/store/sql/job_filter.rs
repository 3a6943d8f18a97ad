//! The filters of a job listing, appended to the fixed statement of either SQL server store.

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::store::{JobFilter, JobState};

/// Appends `filter`'s conditions, order and limit to a statement that ends in a `WHERE`
/// clause; `now` names the statement's clock reading (ms).
pub(crate) fn push_job_filter<'f, DB>(q: &mut QueryBuilder<DB>, filter: &'f JobFilter, now: &str)
where
    DB: Database,
    &'f String: Encode<'f, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
{
    if let Some(queue) = &filter.queue {
        q.push(" AND queue = ").push_bind(queue);
    }
    match filter.state {
        Some(JobState::Pending) => {
            q.push(format!(" AND worker_id IS NULL AND available_at <= {now}"));
        }
        Some(JobState::Delayed) => {
            q.push(format!(" AND worker_id IS NULL AND available_at > {now}"));
        }
        Some(JobState::Reserved) => {
            q.push(" AND worker_id IS NOT NULL");
        }
        None => {}
    }
    q.push(" ORDER BY available_at, seq LIMIT ")
        .push_bind(i64::from(filter.limit.unwrap_or(100)));
}

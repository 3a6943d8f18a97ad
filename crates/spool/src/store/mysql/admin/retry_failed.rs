//! `retry_failed`: failed jobs go back on their queues, and batch jobs back to pending in
//! their batches, in one transaction.

use crate::store::rules::MAX_OFFSET_MS;
use sqlx::{MySqlConnection, Row};

use crate::store::RetrySelector;
use crate::store::mysql::{
    ROWS_PER_STATEMENT, in_list, list,
    queue::{existing_ids, tag_jobs},
    sql_with, values,
    workflow::batches,
};

/// A failed record to put back.
struct Requeued {
    id: String,
    queue: String,
    job: String,
    envelope: String,
    window_ms: Option<i64>,
    batch_id: Option<String>,
    tags: Option<String>,
}

/// Puts the selected failed jobs back on their queues, oldest failure first, with fresh
/// counters; the retry deadline is recomputed from the envelope's window with the database
/// clock (S-RETRY-4). A failed record whose id is queued again meanwhile stays where it is. A
/// retried batch job is pending in its batch again (see `batches::uncount_retried`).
pub(super) async fn requeue(
    conn: &mut MySqlConnection,
    selector: &RetrySelector,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = match selector {
        RetrySelector::Batch(batch_id) => {
            sqlx::query(include_str!("../sql/retry_failed_batch.sql"))
                .bind(batch_id)
                .fetch_all(&mut *conn)
                .await?
        }
        RetrySelector::All { queue } => {
            sqlx::query(include_str!("../sql/retry_failed_all.sql"))
                .bind(queue)
                .bind(queue)
                .fetch_all(&mut *conn)
                .await?
        }
        RetrySelector::Ids(ids) => {
            let mut rows = Vec::new();
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let query = in_list(
                    include_str!("../sql/retry_failed_ids.sql"),
                    "ids",
                    chunk.iter(),
                );
                rows.extend(query.fetch_all(&mut *conn).await?);
            }
            rows
        }
    };
    let mut failed = Vec::with_capacity(rows.len());
    for row in &rows {
        let envelope: String = row.try_get(3)?;
        failed.push(Requeued {
            id: row.try_get(0)?,
            queue: row.try_get(1)?,
            job: row.try_get(2)?,
            batch_id: row.try_get(4)?,
            tags: row.try_get(5)?,
            window_ms: retry_window_ms(&envelope),
            envelope,
        });
    }
    let ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
    let queued = existing_ids(conn, &ids).await?;
    let back: Vec<&Requeued> = failed.iter().filter(|f| !queued.contains(&f.id)).collect();
    for chunk in back.chunks(ROWS_PER_STATEMENT) {
        let mut insert = sqlx::query(values(include_str!("../sql/retry_failed.sql"), chunk.len()));
        let mut forget = sqlx::query(sql_with(
            include_str!("../sql/retry_failed_forget.sql"),
            &[("ids", &list(chunk.len()))],
        ));
        for f in chunk {
            insert = insert
                .bind(&f.id)
                .bind(&f.queue)
                .bind(&f.job)
                .bind(&f.envelope)
                .bind(f.window_ms)
                .bind(MAX_OFFSET_MS)
                .bind(&f.batch_id)
                .bind(&f.tags);
            forget = forget.bind(&f.id);
        }
        insert.execute(&mut *conn).await?;
        forget.execute(&mut *conn).await?;
    }
    // Retried jobs are indexed under their tags again.
    let tags: Vec<(&str, &str)> = back
        .iter()
        .flat_map(|f| {
            f.tags
                .as_deref()
                .into_iter()
                .flat_map(|t| t.split(',').filter(|t| !t.is_empty()))
                .map(|tag| (tag, f.id.as_str()))
        })
        .collect();
    tag_jobs(conn, &tags).await?;
    let in_batches: Vec<(&str, &str)> = back
        .iter()
        .filter_map(|f| Some((f.id.as_str(), f.batch_id.as_deref()?)))
        .collect();
    batches::uncount_retried(conn, &in_batches).await?;
    Ok(back.into_iter().map(|f| f.id.clone()).collect())
}

/// The retry window frozen into an envelope (`options.retry_for_ms`), if any. Envelopes are
/// stored as pushed and may be malformed (the worker reports that when it runs the job), so a
/// bad one just has no window.
fn retry_window_ms(envelope: &str) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_str(envelope).ok()?;
    let window = value.get("options")?.get("retry_for_ms")?;
    window
        .as_i64()
        .or_else(|| window.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_windows_come_from_well_formed_envelopes() {
        assert_eq!(
            retry_window_ms(r#"{"options":{"retry_for_ms":60000}}"#),
            Some(60000)
        );
        assert_eq!(retry_window_ms(r#"{"options":{}}"#), None);
        assert_eq!(retry_window_ms("not json {"), None);
    }
}

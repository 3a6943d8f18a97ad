//! Searching queued jobs and completed records: what to look for ([`JobSearch`]), a page of
//! what was found ([`Page`]), and the rules every store follows so that no search reads
//! without a bound: a page holds at most [`MAX_PAGE`] items, and a search examines at most
//! [`SEARCH_WINDOW`] candidates per call, so a page can come back short, or empty, with a
//! cursor to search further from.

use std::cmp::Ordering;

use serde::Serialize;

use super::{CompletedJob, JobState, StoreError, StoreResult};

/// The most candidates one search call examines (per queue where a store searches queue by
/// queue). A page that is not full although `next` is set means the window ran out: search
/// again from `next` to look further.
pub const SEARCH_WINDOW: usize = 10_000;

/// The most items on one page.
pub const MAX_PAGE: u32 = 500;

/// What to look for among queued jobs ([`AdminStore::search_jobs`]) or completed records
/// ([`AdminStore::completed_jobs`]). Every field set narrows the search; the job name, queue
/// and batch id are searchable without tagging.
///
/// [`AdminStore::search_jobs`]: crate::store::AdminStore::search_jobs
/// [`AdminStore::completed_jobs`]: crate::store::AdminStore::completed_jobs
///
/// ```
/// use spool::store::{JobSearch, JobState};
/// let search = JobSearch {
///     state: Some(JobState::Pending),
///     tag: Some("tenant:7".into()),
///     ..JobSearch::default()
/// };
/// assert_eq!(search.page_size(), 100);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSearch {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only queued jobs in this state (`None`: pending, delayed and reserved). Completed
    /// records have no state and ignore it.
    pub state: Option<JobState>,
    /// Only jobs of this name.
    pub job: Option<String>,
    /// Only jobs with this tag (one the dispatcher gave).
    pub tag: Option<String>,
    /// Only jobs of this batch.
    pub batch_id: Option<String>,
    /// Where to go on from: a previous page's [`Page::next`], for the same search.
    pub after: Option<String>,
    /// At most this many items (default 100, at most [`MAX_PAGE`]).
    pub limit: Option<u32>,
}

impl JobSearch {
    /// The page size asked for, within 1..=[`MAX_PAGE`].
    pub fn page_size(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, MAX_PAGE) as usize
    }

    /// Whether the search narrows by job name, batch or tag (which a store checks on each
    /// candidate, within [`SEARCH_WINDOW`], unless an index serves it).
    pub fn filters(&self) -> bool {
        self.job.is_some() || self.batch_id.is_some() || self.tag.is_some()
    }

    /// Whether a job with these names matches the search's queue, job, batch and tag (the
    /// state is the caller's to check).
    pub fn matches(&self, queue: &str, job: &str, batch_id: Option<&str>, tags: &[String]) -> bool {
        self.queue.as_deref().is_none_or(|q| q == queue)
            && self.job.as_deref().is_none_or(|j| j == job)
            && self.batch_id.as_deref().is_none_or(|b| batch_id == Some(b))
            && self.tag.as_ref().is_none_or(|t| tags.contains(t))
    }
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// What was found, in the search's order.
    pub items: Vec<T>,
    /// Where the next page starts (pass it as [`JobSearch::after`]); `None` once the search
    /// reached the end. A short page with `next` set means the search window ran out before
    /// the page filled: searching on from `next` looks at older (or further) candidates.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// An empty last page.
    pub fn end() -> Self {
        Page {
            items: Vec::new(),
            next: None,
        }
    }
}

/// A completed record's place in the history, newest first: completion time, then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompletedKey {
    /// When it completed, ms since the epoch.
    pub(crate) at: i64,
    /// Its id.
    pub(crate) id: String,
}

impl CompletedKey {
    /// A record's key, its completion time read back from its RFC 3339 form (which keeps
    /// milliseconds).
    pub(crate) fn of(job: &CompletedJob) -> CompletedKey {
        let at = humantime::parse_rfc3339(&job.completed_at)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        CompletedKey {
            at,
            id: job.id.clone(),
        }
    }

    /// The cursor text: `<ms>:<id>`.
    pub(crate) fn cursor(&self) -> String {
        format!("{}:{}", self.at, self.id)
    }

    /// Reads a cursor [`cursor`](Self::cursor) wrote; `None` (no cursor) is the newest end.
    pub(crate) fn parse(cursor: Option<&str>) -> StoreResult<Option<CompletedKey>> {
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        let parsed = cursor
            .split_once(':')
            .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id)));
        match parsed {
            Some((at, id)) => Ok(Some(CompletedKey {
                at,
                id: id.to_string(),
            })),
            None => Err(bad_cursor(cursor)),
        }
    }
}

impl Ord for CompletedKey {
    /// Newest first: a later completion (or, at the same millisecond, a greater id) comes first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, &other.id).cmp(&(self.at, &self.id))
    }
}

impl PartialOrd for CompletedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A statement file's text without its comment lines, so it can be put inside another
/// statement (and its placeholders replaced) without a comment swallowing what follows.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) fn uncommented(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The refusal of a cursor this store did not write.
pub(crate) fn bad_cursor(cursor: &str) -> StoreError {
    StoreError::Invalid(format!(
        "unknown search cursor `{}`: pass the `next` of a previous page of the same search, or none to start over",
        cursor.chars().take(80).collect::<String>()
    ))
}

/// What one source of a search (a queue, a kind of record) found, in the search's order.
#[derive(Debug)]
pub(crate) struct Part<T, K> {
    /// The matches, in order.
    pub(crate) items: Vec<T>,
    /// The last candidate examined, when the source may hold more past it (its window ran
    /// out, or it returned a full page): nothing after it was looked at.
    pub(crate) stop: Option<K>,
}

/// Merges the parts of a search over several sources into one page of at most `limit`,
/// ordered by `key` (ascending: use a key whose order is the search's). Only what every
/// source has examined is returned, so no later page can hold an item that sorts before this
/// one's; the page's next position is its last item when full, else the nearest stop.
pub(crate) fn merge<T, K: Ord + Clone>(
    parts: Vec<Part<T, K>>,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Option<K>) {
    let bound = parts.iter().filter_map(|p| p.stop.clone()).min();
    let mut items: Vec<T> = parts.into_iter().flat_map(|p| p.items).collect();
    items.sort_by_key(&key);
    if let Some(bound) = &bound {
        items.retain(|item| key(item) <= *bound);
    }
    if items.len() >= limit {
        items.truncate(limit);
        let last = items.last().map(&key);
        return (items, last);
    }
    (items, bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(items: &[i64], stop: Option<i64>) -> Part<i64, i64> {
        Part {
            items: items.to_vec(),
            stop,
        }
    }

    #[test]
    fn merged_pages_hold_only_what_every_source_examined() {
        // The second source stopped at 5: 7 and 9 of the first wait for the next page.
        let (items, next) = merge(
            vec![part(&[1, 7, 9], None), part(&[2, 5], Some(5))],
            10,
            |i| *i,
        );
        assert_eq!((items, next), (vec![1, 2, 5], Some(5)));
        // A full page ends at its last item.
        let (items, next) = merge(vec![part(&[1, 3], None), part(&[2, 4], None)], 3, |i| *i);
        assert_eq!((items, next), (vec![1, 2, 3], Some(3)));
        // Every source at its end: the last page.
        let (items, next) = merge(vec![part(&[3], None), part(&[], None)], 3, |i| *i);
        assert_eq!((items, next), (vec![3], None));
    }

    #[test]
    fn completed_keys_order_newest_first_and_round_trip() {
        let older = CompletedKey {
            at: 10,
            id: "b".into(),
        };
        let newer = CompletedKey {
            at: 11,
            id: "a".into(),
        };
        let same_ms = CompletedKey {
            at: 10,
            id: "c".into(),
        };
        assert!(newer < older && same_ms < older);
        let back = CompletedKey::parse(Some("10:b:with:colons"))
            .unwrap()
            .unwrap();
        assert_eq!(back.id, "b:with:colons");
        assert_eq!(
            CompletedKey::parse(Some(&older.cursor())).unwrap(),
            Some(older)
        );
        assert!(CompletedKey::parse(Some("nope")).is_err());
        assert_eq!(CompletedKey::parse(None).unwrap(), None);
    }

    #[test]
    fn searches_match_names_and_tags() {
        let search = JobSearch {
            job: Some("report".into()),
            tag: Some("t1".into()),
            ..JobSearch::default()
        };
        let tags = vec!["t0".to_string(), "t1".to_string()];
        assert!(search.matches("q", "report", None, &tags));
        assert!(!search.matches("q", "other", None, &tags));
        assert!(!search.matches("q", "report", None, &[]));
        assert_eq!(JobSearch::default().page_size(), 100);
        let big = JobSearch {
            limit: Some(9_999),
            ..JobSearch::default()
        };
        assert_eq!(big.page_size(), MAX_PAGE as usize);
    }
}

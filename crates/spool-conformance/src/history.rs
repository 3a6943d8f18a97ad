//! Checks of tags and the completed history ([`AdminStore::search_jobs`],
//! [`AdminStore::completed_jobs`], [`AdminStore::prune_completed`],
//! [`WorkflowStore::job_result`]): tags kept with a job wherever it goes, searches that page by
//! cursor without repeats or gaps and never read past their window, and a short record of
//! every completed job.
//!
//! [`AdminStore::search_jobs`]: spool::store::AdminStore::search_jobs
//! [`AdminStore::completed_jobs`]: spool::store::AdminStore::completed_jobs
//! [`AdminStore::prune_completed`]: spool::store::AdminStore::prune_completed
//! [`WorkflowStore::job_result`]: spool::store::WorkflowStore::job_result

use std::{collections::HashSet, sync::Arc, time::Duration};

use spool::{
    Envelope, Store,
    limits::TAG_RULE,
    store::{
        Claim, CompletedJob, JobInfo, JobSearch, JobState, NewJob, Page, RetrySelector,
        SEARCH_WINDOW, Settlement, StoreError,
    },
};

use crate::{
    Fixture,
    helpers::{LEASE, q, worker},
    workflow::complete_with,
};

/// A `noop`-like job named `name` on `queue` with `tags`.
fn tagged(name: &str, queue: &str, tags: &[&str]) -> NewJob {
    let mut envelope = Envelope::new(name, queue, serde_json::json!({}));
    envelope.tags = tags.iter().map(|t| t.to_string()).collect();
    NewJob::new(&envelope, Duration::ZERO).expect("encodes")
}

/// Every page of `search`, followed by cursor; panics past 1,000 pages.
async fn all_pages<T>(search: &JobSearch, page: impl AsyncFn(&JobSearch) -> Page<T>) -> Vec<T> {
    let mut search = search.clone();
    let mut out = Vec::new();
    for _ in 0..1_000 {
        let got = page(&search).await;
        out.extend(got.items);
        match got.next {
            Some(next) => search.after = Some(next),
            None => return out,
        }
    }
    panic!("a search that never ends: {search:?}");
}

async fn queued(store: &Arc<dyn Store>, search: &JobSearch) -> Vec<JobInfo> {
    all_pages(search, async |s| store.search_jobs(s).await.unwrap()).await
}

async fn completed(store: &Arc<dyn Store>, search: &JobSearch) -> Vec<CompletedJob> {
    all_pages(search, async |s| store.completed_jobs(s).await.unwrap()).await
}

fn ids<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    ids.into_iter().cloned().collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A job's tags are kept with it: listed and shown, searchable while it is queued (by tag, and
/// by job name, queue and batch without tagging), carried into the failed store and back by a
/// retry, and gone from the tag's search once it leaves the queue. Searches page by cursor
/// without repeats or gaps, in any page size.
pub async fn tags_are_kept_and_searchable(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let mut jobs = Vec::new();
    for n in 0..7 {
        let queue = if n % 2 == 0 { "mail" } else { "default" };
        let tags: &[&str] = if n < 5 {
            &["tenant:7", "nightly"]
        } else {
            &["tenant:8"]
        };
        jobs.push(tagged(if n == 3 { "report" } else { "send" }, queue, tags));
    }
    let mut delayed = tagged("send", "mail", &["tenant:7"]);
    delayed.delay = Duration::from_secs(3600);
    jobs.push(delayed.clone());
    store.push(&jobs).await.unwrap();
    let first = store.job(&jobs[0].id).await.unwrap().expect("queued");
    assert_eq!(first.tags, ["tenant:7", "nightly"]);

    let by_tag = |tag: &str| JobSearch {
        tag: Some(tag.into()),
        ..JobSearch::default()
    };
    let mut seven: Vec<String> = ids(jobs[..5].iter().map(|j| &j.id));
    seven.push(delayed.id.clone());
    for limit in [1, 2, 100] {
        let search = JobSearch {
            limit: Some(limit),
            ..by_tag("tenant:7")
        };
        let found = queued(&store, &search).await;
        let found_ids = ids(found.iter().map(|j| &j.id));
        assert_eq!(
            sorted(found_ids.clone()),
            sorted(seven.clone()),
            "page size {limit}"
        );
        assert_eq!(
            found_ids.iter().collect::<HashSet<_>>().len(),
            found_ids.len(),
            "no repeats at page size {limit}"
        );
    }
    let pending = JobSearch {
        state: Some(JobState::Pending),
        queue: Some("mail".into()),
        ..by_tag("tenant:7")
    };
    let found = queued(&store, &pending).await;
    assert_eq!(
        sorted(ids(found.iter().map(|j| &j.id))),
        sorted(ids([&jobs[0].id, &jobs[2].id, &jobs[4].id])),
        "tag, state and queue together"
    );
    assert!(found.iter().all(|j| j.tags.contains(&"tenant:7".into())));
    let delayed_only = JobSearch {
        state: Some(JobState::Delayed),
        ..by_tag("tenant:7")
    };
    assert_eq!(
        ids(queued(&store, &delayed_only).await.iter().map(|j| &j.id)),
        std::slice::from_ref(&delayed.id)
    );
    assert!(queued(&store, &by_tag("no-such-tag")).await.is_empty());

    // Without a tag: listing order (oldest available first), by job name, over every queue.
    let by_name = JobSearch {
        job: Some("report".into()),
        ..JobSearch::default()
    };
    assert_eq!(
        ids(queued(&store, &by_name).await.iter().map(|j| &j.id)),
        [jobs[3].id.clone()]
    );
    for limit in [1, 3, 100] {
        let all = JobSearch {
            state: Some(JobState::Pending),
            limit: Some(limit),
            ..JobSearch::default()
        };
        let found = queued(&store, &all).await;
        assert_eq!(
            sorted(ids(found.iter().map(|j| &j.id))),
            sorted(ids(jobs[..7].iter().map(|j| &j.id))),
            "every pending job once at page size {limit}"
        );
    }

    // A reserved job is found in its state; failed, it keeps its tags; retried, it is found
    // again; deleted, it is gone from the tag's search.
    let w = worker(&store, "w", LEASE).await;
    let got = store
        .reserve(Claim::new(&w, &q(&["mail"]), 1))
        .await
        .unwrap();
    let held = &got[0];
    let reserved = JobSearch {
        state: Some(JobState::Reserved),
        ..by_tag("nightly")
    };
    assert_eq!(
        ids(queued(&store, &reserved).await.iter().map(|j| &j.id)),
        std::slice::from_ref(&held.id)
    );
    let fail = Settlement::fail(held.id.clone(), held.token, "boom".into(), vec![]);
    assert_eq!(store.settle(&w, &[fail]).await.unwrap(), [true]);
    let record = store.failed_job(&held.id).await.unwrap().expect("failed");
    assert_eq!(record.tags, ["tenant:7", "nightly"]);
    let nightly = |store: &Arc<dyn Store>| {
        let store = store.clone();
        async move { queued(&store, &by_tag("nightly")).await.len() }
    };
    assert_eq!(
        nightly(&store).await,
        4,
        "a failed job leaves the tag's search"
    );
    let retried = store
        .retry_failed(&RetrySelector::Ids(vec![held.id.clone()]))
        .await
        .unwrap();
    assert_eq!(retried, std::slice::from_ref(&held.id));
    assert_eq!(nightly(&store).await, 5, "a retried job is found again");
    assert_eq!(
        store.job(&held.id).await.unwrap().expect("queued").tags,
        ["tenant:7", "nightly"]
    );
    assert!(store.delete_job(&jobs[1].id).await.unwrap());
    assert_eq!(
        nightly(&store).await,
        4,
        "a deleted job leaves the tag's search"
    );
    assert_eq!(store.clear("mail").await.unwrap(), 5);
    assert_eq!(
        nightly(&store).await,
        1,
        "cleared jobs leave the tag's search"
    );
}

/// Every completed job leaves a short record (id, queue, job, batch, tags, attempts and its
/// times; never its payload), whichever way it was settled; the history lists them newest
/// first and searches them by tag, job name and queue; its pruning leaves kept results alone.
pub async fn completed_jobs_leave_a_history(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let plain = tagged("send", "default", &[]);
    let tagged_job = tagged("report", "default", &["tenant:7"]);
    let with_result = tagged("send", "default", &["tenant:8"]);
    let other_queue = tagged("send", "mail", &["tenant:7"]);
    store
        .push(&[
            plain.clone(),
            tagged_job.clone(),
            with_result.clone(),
            other_queue.clone(),
        ])
        .await
        .unwrap();
    let w = worker(&store, "w", LEASE).await;
    let queues = q(&["default", "mail"]);
    // The hot path: plain completions ride with the next claim.
    let (_, got) = store
        .settle_and_reserve(&[], Claim::new(&w, &queues, 2))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    let done: Vec<Settlement> = got
        .iter()
        .map(|j| Settlement::complete(j.id.clone(), j.token))
        .collect();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let (applied, rest) = store
        .settle_and_reserve(&done, Claim::new(&w, &queues, 2))
        .await
        .unwrap();
    assert_eq!(applied, [true, true]);
    assert_eq!(rest.len(), 2);
    tokio::time::sleep(Duration::from_millis(3)).await;
    let mut finish = Vec::new();
    for job in &rest {
        let result = (job.id == with_result.id).then_some(r#"{"rows":3}"#);
        finish.push(complete_with(&job.id, job.token, vec![], result));
    }
    assert_eq!(store.settle(&w, &finish).await.unwrap(), [true, true]);

    let all = completed(&store, &JobSearch::default()).await;
    assert_eq!(all.len(), 4, "{all:?}");
    let order: Vec<(String, String)> = all
        .iter()
        .map(|c| (c.completed_at.clone(), c.id.clone()))
        .collect();
    let mut newest_first = order.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, newest_first, "newest first");
    let record = all.iter().find(|c| c.id == tagged_job.id).expect("listed");
    assert_eq!(
        (record.queue.as_str(), record.job.as_str(), record.attempts),
        ("default", "report", 1)
    );
    assert_eq!(record.tags, ["tenant:7"]);
    assert!(record.enqueued_at.is_some() && record.started_at.is_some());
    assert!(
        record.enqueued_at <= record.started_at
            && record.started_at.as_ref() <= Some(&record.completed_at)
    );
    assert!(record.result.is_none() && !record.has_result);
    let kept = all.iter().find(|c| c.id == with_result.id).expect("listed");
    assert!(
        kept.has_result && kept.result.is_none(),
        "listings leave results out"
    );

    for limit in [1, 3] {
        let paged = completed(
            &store,
            &JobSearch {
                limit: Some(limit),
                ..JobSearch::default()
            },
        )
        .await;
        assert_eq!(
            ids(paged.iter().map(|c| &c.id)),
            ids(all.iter().map(|c| &c.id)),
            "page size {limit}"
        );
    }
    let search = |tag: Option<&str>, job: Option<&str>, queue: Option<&str>| JobSearch {
        tag: tag.map(Into::into),
        job: job.map(Into::into),
        queue: queue.map(Into::into),
        limit: Some(1),
        ..JobSearch::default()
    };
    let found = completed(&store, &search(Some("tenant:7"), None, None)).await;
    assert_eq!(
        sorted(ids(found.iter().map(|c| &c.id))),
        sorted(ids([&tagged_job.id, &other_queue.id]))
    );
    let found = completed(&store, &search(Some("tenant:7"), None, Some("mail"))).await;
    assert_eq!(
        ids(found.iter().map(|c| &c.id)),
        std::slice::from_ref(&other_queue.id)
    );
    let found = completed(&store, &search(None, Some("send"), Some("default"))).await;
    assert_eq!(
        sorted(ids(found.iter().map(|c| &c.id))),
        sorted(ids([&plain.id, &with_result.id]))
    );

    // By id: the record, with the result when one is kept.
    let one = store
        .job_result(&plain.id)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!((one.attempts, one.result.clone()), (1, None));
    assert!(!one.has_result);
    let one = store
        .job_result(&with_result.id)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(one.result, Some(serde_json::json!({"rows": 3})));
    assert!(one.has_result);
    assert_eq!(one.tags, ["tenant:8"]);

    // Pruning the history leaves kept results (and only them) readable by id.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        store
            .prune_completed(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.prune_completed(Duration::ZERO).await.unwrap(), 4);
    assert!(completed(&store, &JobSearch::default()).await.is_empty());
    assert!(
        completed(&store, &search(Some("tenant:7"), None, None))
            .await
            .is_empty()
    );
    assert!(store.job_result(&plain.id).await.unwrap().is_none());
    let left = store
        .job_result(&with_result.id)
        .await
        .unwrap()
        .expect("its result stays");
    assert_eq!(left.result, Some(serde_json::json!({"rows": 3})));
    assert!(store.job_result("nope").await.unwrap().is_none());
}

/// A search examines at most [`SEARCH_WINDOW`] candidates per call: a rare job past the window
/// comes back on a later page, after short ones that say where to go on from. A cursor the
/// store did not write is refused, naming what to pass.
pub async fn searches_stop_at_their_window(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let mut jobs: Vec<NewJob> = (0..SEARCH_WINDOW + 10)
        .map(|_| tagged("common", "default", &[]))
        .collect();
    let rare = tagged("rare", "default", &["t"]);
    jobs.push(rare.clone());
    for chunk in jobs.chunks(1_000) {
        store.push(chunk).await.unwrap();
    }
    let search = JobSearch {
        job: Some("rare".into()),
        ..JobSearch::default()
    };
    let first = store.search_jobs(&search).await.unwrap();
    assert!(
        first.items.is_empty(),
        "the window ends before the rare job"
    );
    assert!(first.next.is_some(), "a short page says where to search on");
    let found = queued(&store, &search).await;
    assert_eq!(
        ids(found.iter().map(|j| &j.id)),
        std::slice::from_ref(&rare.id)
    );
    let bad = JobSearch {
        after: Some("not a cursor".into()),
        ..search
    };
    match store.search_jobs(&bad).await {
        Err(StoreError::Invalid(message)) => assert!(message.contains("cursor"), "{message}"),
        other => panic!("expected a refused cursor, got {other:?}"),
    }
    match store.completed_jobs(&bad).await {
        Err(StoreError::Invalid(message)) => assert!(message.contains("cursor"), "{message}"),
        other => panic!("expected a refused cursor, got {other:?}"),
    }
}

/// A push refuses a job whose tags break the rule (too many, too long, a comma, a control
/// character), naming the rule, and stores nothing.
pub async fn tags_that_break_the_rule_are_refused(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let many: Vec<String> = (0..17).map(|n| format!("t{n}")).collect();
    for tags in [
        many,
        vec!["x".repeat(65)],
        vec!["a,b".into()],
        vec!["bell\u{7}".into()],
        vec![String::new()],
    ] {
        let mut job = tagged("send", "default", &[]);
        job.tags = tags;
        match store.push(&[job]).await {
            Err(StoreError::Invalid(message)) => assert!(message.contains(TAG_RULE), "{message}"),
            other => panic!("expected the tag rule, got {other:?}"),
        }
    }
    let found = store.search_jobs(&JobSearch::default()).await.unwrap();
    assert!(found.items.is_empty(), "nothing was stored");
}

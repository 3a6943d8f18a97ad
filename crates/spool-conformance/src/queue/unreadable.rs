//! Rows and keys written past Spool, as another language's client would leave them: a job the
//! worker cannot read is handed over with the reason (the worker fails it with that reason),
//! never fails the whole reserve or listing, and never blocks or strands the jobs behind it.

use std::{sync::Arc, time::Duration};

use spool::{
    DEFAULT_MAX_PAYLOAD_BYTES, Envelope, Registry, Store, Worker, WorkerConfig, WorkerExit,
    store::{Claim, JobFilter, NewJob, ReservedJob, Settlement},
};

use crate::{
    Fixture, Raw, Value,
    helpers::{LEASE, new_job, q, worker},
};

/// Pushes `n` good `noop` jobs on `queue`, one at a time (so they are claimed in this order).
async fn push_good(store: &Arc<dyn Store>, queue: &str, n: usize) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    for _ in 0..n {
        let job = new_job(queue, Duration::ZERO);
        store.push(std::slice::from_ref(&job)).await.unwrap();
        jobs.push(job);
    }
    jobs
}

/// A SQL statement written with `?` placeholders and SQLite's table names, in the fixture's
/// own dialect (PostgreSQL numbers its placeholders and keeps its tables in a schema).
fn sql(fixture: &dyn Fixture, statement: &str, binds: Vec<Value>) -> Raw {
    let postgres = fixture.backend() == "postgres";
    let statement = if postgres {
        statement.replace("spool_jobs", "jobs")
    } else {
        statement.to_string()
    };
    let mut text = String::new();
    let mut n = 0;
    for c in statement.chars() {
        if c == '?' && postgres {
            n += 1;
            text.push_str(&format!("${n}"));
        } else {
            text.push(c);
        }
    }
    Raw::Sql {
        statement: text,
        binds,
    }
}

/// Replaces job `id`'s stored envelope (on `queue`) with `value`, past the store.
async fn overwrite_envelope(fixture: &dyn Fixture, queue: &str, id: &str, value: Value) {
    let write = match fixture.key_prefix() {
        Some(prefix) => Raw::Redis(vec![
            "HSET".into(),
            Value::Text(format!("{{{prefix}:{queue}}}:env")),
            id.into(),
            value,
        ]),
        None => sql(
            fixture,
            "UPDATE spool_jobs SET envelope = ? WHERE id = ?",
            vec![value, id.into()],
        ),
    };
    fixture.raw(write).await.expect("overwrite the envelope");
}

/// Reserves everything `queue` has ready (up to 100) for `worker`.
async fn reserve_all(store: &Arc<dyn Store>, w: &str, queue: &str) -> Vec<ReservedJob> {
    let queues = q(&[queue]);
    store.reserve(Claim::new(w, &queues, 100)).await.unwrap()
}

fn reason_of<'a>(got: &'a [ReservedJob], id: &str) -> Option<&'a str> {
    got.iter()
        .find(|j| j.id == id)
        .unwrap_or_else(|| panic!("{id} was not reserved: {got:?}"))
        .unreadable
        .as_deref()
}

/// Envelopes stored as bytes that are not UTF-8 text (what Python's `sqlite3` or Node's
/// `Buffer` write) are reserved with the reason; the good jobs around them are reserved as
/// usual, listings list them all and flag the unreadable ones, and their failed records read.
pub async fn envelopes_that_are_not_utf8_fail_alone(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs = push_good(&store, "bytes", 4).await;
    overwrite_envelope(
        fixture,
        "bytes",
        &jobs[0].id,
        Value::Bytes(b"{\"v\":1\xff\xfe".to_vec()),
    )
    .await;
    if fixture.key_prefix().is_none() {
        // SQLite keeps any type in any column: invalid UTF-8 as TEXT, and a valid envelope
        // written as a BLOB (which reads like text and runs).
        fixture
            .raw(sql(
                fixture,
                "UPDATE spool_jobs SET envelope = CAST(? AS TEXT) WHERE id = ?",
                vec![Value::Bytes(b"\xc3(".to_vec()), jobs[2].id.as_str().into()],
            ))
            .await
            .expect("write invalid UTF-8 text");
        overwrite_envelope(
            fixture,
            "bytes",
            &jobs[3].id,
            Value::Bytes(jobs[3].envelope.clone().into_bytes()),
        )
        .await;
    }

    let listed = store
        .jobs(&JobFilter {
            queue: Some("bytes".into()),
            ..Default::default()
        })
        .await
        .expect("a listing lists what it can");
    assert_eq!(listed.len(), 4, "{listed:?}");
    let flag = |id: &str| {
        listed
            .iter()
            .find(|j| j.id == id)
            .unwrap()
            .unreadable
            .clone()
    };
    assert!(flag(&jobs[0].id).unwrap().contains("UTF-8"));
    assert_eq!(flag(&jobs[1].id), None);
    assert_eq!(flag(&jobs[3].id), None);

    let w = worker(&store, "w", LEASE).await;
    let got = reserve_all(&store, &w, "bytes").await;
    assert_eq!(
        got.len(),
        4,
        "every job is reserved, the bad one too: {got:?}"
    );
    let reason = reason_of(&got, &jobs[0].id)
        .expect("the bytes are named")
        .to_string();
    assert!(
        reason.contains("not UTF-8") && reason.contains("offset 6"),
        "{reason}"
    );
    assert_eq!(reason_of(&got, &jobs[1].id), None);
    assert_eq!(
        reason_of(&got, &jobs[3].id),
        None,
        "a BLOB of UTF-8 text reads"
    );
    if fixture.key_prefix().is_none() {
        assert!(reason_of(&got, &jobs[2].id).unwrap().contains("TEXT"));
    }

    // Handed back, the worker fails each unreadable job with its reason and runs the rest;
    // the failed records read.
    store.deregister_worker(&w).await.unwrap();
    let exit = run_until_done(&store, "bytes").await;
    let bad = if fixture.key_prefix().is_none() { 2 } else { 1 };
    assert_eq!((exit.completed, exit.failed), (4 - bad, bad));
    let record = store
        .failed_job(&jobs[0].id)
        .await
        .unwrap()
        .expect("a record");
    assert_eq!(record.error, reason);
    assert!(
        record.envelope.starts_with("{\"v\":1"),
        "{}",
        record.envelope
    );
    let (failed, _) = store
        .failed_jobs(&Default::default())
        .await
        .expect("listed");
    assert_eq!(failed.len() as u64, bad);
}

/// A time another program stored as text (SQLite keeps it; it sorts after every number, so
/// the row would never come due) is reserved with the reason, and does not block the queue.
pub async fn times_that_are_not_numbers_fail_alone(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs = push_good(&store, "times", 2).await;
    let write = match fixture.key_prefix() {
        Some(prefix) => Raw::Redis(vec![
            "HSET".into(),
            Value::Text(format!("{{{prefix}:times}}:job:{}", jobs[0].id)),
            "available_at".into(),
            "soon".into(),
        ]),
        None => sql(
            fixture,
            "UPDATE spool_jobs SET available_at = 'soon' WHERE id = ?",
            vec![jobs[0].id.as_str().into()],
        ),
    };
    fixture.raw(write).await.expect("write a text time");
    let counter = push_good(&store, "times", 1).await.remove(0);
    let write = match fixture.key_prefix() {
        Some(prefix) => Raw::Redis(vec![
            "HSET".into(),
            Value::Text(format!("{{{prefix}:times}}:job:{}", counter.id)),
            "recoveries".into(),
            "many".into(),
        ]),
        None => sql(
            fixture,
            "UPDATE spool_jobs SET recoveries = 'many' WHERE id = ?",
            vec![counter.id.as_str().into()],
        ),
    };
    fixture.raw(write).await.expect("write a text counter");
    let listed = store.jobs(&JobFilter::default()).await.expect("listing");
    assert_eq!(listed.len(), 3);
    let queues = q(&["times"]);
    assert_eq!(
        store.next_available_in(&queues).await.unwrap(),
        Some(Duration::ZERO),
        "due now: the next reserve takes it"
    );
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_all(&store, &w, "times").await;
    assert!(got.len() >= 2, "{got:?}");
    let reason = reason_of(&got, &jobs[0].id).expect("the time is named");
    assert!(
        reason.contains("available_at") && reason.contains("soon"),
        "{reason}"
    );
    assert_eq!(reason_of(&got, &jobs[1].id), None);
    // A counter that is not a number is named too: on the job handed over, or (where the
    // job cannot even be held without it) in its failed record.
    match got.iter().find(|j| j.id == counter.id) {
        Some(job) => assert!(job.unreadable.as_deref().unwrap().contains("recoveries")),
        None => {
            let record = store
                .failed_job(&counter.id)
                .await
                .unwrap()
                .expect("a record");
            assert!(record.error.contains("`recoveries`"), "{}", record.error);
        }
    }
}

/// The envelope is the one source of truth for what runs: a row whose `job` column was
/// rewritten past Spool is listed under the envelope's name (the one a worker runs), and an
/// envelope that is not JSON is flagged in the listing.
pub async fn listings_name_the_job_the_envelope_runs(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs = push_good(&store, "names", 2).await;
    let write = match fixture.key_prefix() {
        Some(prefix) => Raw::Redis(vec![
            "HSET".into(),
            Value::Text(format!("{{{prefix}:names}}:job:{}", jobs[0].id)),
            "job".into(),
            "shell".into(),
        ]),
        None => sql(
            fixture,
            "UPDATE spool_jobs SET job = 'shell' WHERE id = ?",
            vec![jobs[0].id.as_str().into()],
        ),
    };
    fixture.raw(write).await.expect("rewrite the job column");
    overwrite_envelope(fixture, "names", &jobs[1].id, "not json {".into()).await;
    let listed = store.job(&jobs[0].id).await.unwrap().expect("listed");
    assert_eq!((listed.job.as_str(), listed.unreadable), ("noop", None));
    let broken = store.job(&jobs[1].id).await.unwrap().expect("listed");
    assert!(
        broken
            .unreadable
            .as_deref()
            .is_some_and(|r| r.starts_with("malformed envelope")),
        "{broken:?}"
    );
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_all(&store, &w, "names").await;
    let envelope = Envelope::decode(&got[0].envelope).expect("the envelope is intact");
    assert_eq!(
        (got[0].id.as_str(), envelope.job.as_str()),
        (jobs[0].id.as_str(), "noop")
    );
    // Its failed record names it the same way.
    let fail = Settlement::fail(got[0].id.clone(), got[0].token, "x".into(), vec![]);
    assert_eq!(store.settle(&w, &[fail]).await.unwrap(), [true]);
    let record = store
        .failed_job(&jobs[0].id)
        .await
        .unwrap()
        .expect("a record");
    assert_eq!(record.job, "noop");
}

/// An envelope written directly past the dispatcher's size limit is refused by the worker
/// too: it fails with the reason without running, and the job behind it runs.
pub async fn oversized_envelopes_fail_without_running(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let jobs = push_good(&store, "big", 2).await;
    let mut envelope = Envelope::new(
        "noop",
        "big",
        serde_json::json!({ "blob": "x".repeat(DEFAULT_MAX_PAYLOAD_BYTES + 10) }),
    );
    envelope.id = jobs[0].id.clone();
    let text = envelope.encode().unwrap();
    overwrite_envelope(fixture, "big", &jobs[0].id, text.as_str().into()).await;
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_all(&store, &w, "big").await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].envelope.len(),
        text.len(),
        "the store hands it over whole"
    );
    store.deregister_worker(&w).await.unwrap();

    let exit = run_until_done(&store, "big").await;
    assert_eq!((exit.completed, exit.failed), (1, 1));
    let record = store
        .failed_job(&jobs[0].id)
        .await
        .unwrap()
        .expect("failed");
    assert!(
        record.error.contains(&text.len().to_string()) && record.error.contains("byte limit"),
        "{}",
        record.error
    );
}

/// Runs a worker on `queue` until nothing is left there (at most 30 s).
async fn run_until_done(store: &Arc<dyn Store>, queue: &str) -> WorkerExit {
    let config = WorkerConfig {
        queues: q(&[queue]),
        until_done: true,
        sleep: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), Registry::with_builtins(), config);
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("the worker finishes: nothing blocks the queue")
        .expect("the worker ran")
}

/// An id in the ready list whose job hash is gone (deleted by hand) leaves a failed record
/// saying so, instead of vanishing; the job behind it is reserved.
pub async fn ready_ids_without_their_job_leave_a_record(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let prefix = fixture.key_prefix().expect("a keyed store");
    fixture
        .raw(Raw::redis([
            "RPUSH".to_string(),
            format!("{{{prefix}:ghosts}}:ready"),
            "ghost".into(),
        ]))
        .await
        .expect("push a bare id");
    let jobs = push_good(&store, "ghosts", 1).await;
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_all(&store, &w, "ghosts").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, jobs[0].id);
    let record = store.failed_job("ghost").await.unwrap().expect("a trace");
    assert_eq!(record.queue, "ghosts");
    assert!(record.error.contains("does not exist"), "{}", record.error);
}

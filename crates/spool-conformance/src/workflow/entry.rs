//! What a store accepts at its entry points (the job rules of `spool::limits`), what it
//! reports for a refused unique job, and a callback's envelope context kept as written.

use std::time::Duration;

use spool::{
    Envelope, Spool, Unique,
    builtin::Shell,
    limits::QUEUE_NAME_RULE,
    store::{NewBatch, NewJob, PushOutcome, StoreError},
};

use super::{complete_with, unique::unique_job};
use crate::{
    Fixture,
    helpers::{LEASE, new_job, pending_jobs, reserve_default, reserve_from, worker},
};

fn refused(result: Result<Vec<PushOutcome>, StoreError>, says: &str) {
    match result {
        Err(StoreError::Invalid(message)) => assert!(message.contains(says), "{message}"),
        other => panic!("expected a refusal that says `{says}`, got {other:?}"),
    }
}

/// `push`, `create_batch` and `add_to_batch` refuse a job that breaks a rule (queue name,
/// empty or over-long names, the size limit), for a batch's callbacks too, and store nothing.
pub async fn entry_points_refuse_jobs_that_break_the_rules(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    for queue in ["a,b", " high ", "", "tab\there", &"q".repeat(129)] {
        let mut job = new_job("default", Duration::ZERO);
        job.queue = queue.into();
        refused(
            store.push(&[new_job("default", Duration::ZERO), job]).await,
            QUEUE_NAME_RULE,
        );
    }
    let mut nameless = new_job("default", Duration::ZERO);
    nameless.job = String::new();
    refused(store.push(&[nameless]).await, "a job name");
    let mut long_id = new_job("default", Duration::ZERO);
    long_id.id = "x".repeat(256);
    refused(store.push(&[long_id]).await, "a job id");
    let mut big = new_job("default", Duration::ZERO);
    big.envelope = format!("{}{}", big.envelope, " ".repeat(big.max_payload));
    refused(store.push(&[big]).await, "payload limit");
    assert_eq!(pending_jobs(&*store, None).await, 0, "nothing was stored");

    let id = spool::new_id();
    let mut then = new_job("then", Duration::ZERO);
    then.id = "c".repeat(300);
    let batch = NewBatch {
        id: id.clone(),
        name: "docs".into(),
        then: Some(then),
        ..NewBatch::default()
    };
    refused(
        store
            .create_batch(&batch, &[new_job("default", Duration::ZERO)])
            .await,
        "a job id",
    );
    assert!(store.batch(&id).await.unwrap().is_none());
    let ok = NewBatch {
        then: None,
        ..batch
    };
    store
        .create_batch(&ok, &[new_job("default", Duration::ZERO)])
        .await
        .unwrap();
    let mut bad = new_job("default", Duration::ZERO);
    bad.queue = "x y".into();
    refused(store.add_to_batch(&id, &[bad]).await, QUEUE_NAME_RULE);
    assert_eq!(store.batch(&id).await.unwrap().unwrap().total, 1);

    // `NewJob::new` applies the same rules.
    let err = NewJob::new(
        &Envelope::new("noop", "no good", serde_json::json!({})),
        Duration::ZERO,
    )
    .unwrap_err();
    assert!(err.to_string().contains(QUEUE_NAME_RULE), "{err}");
}

/// A unique job refused because another holds its key learns who holds it; once the holder
/// is done the lock is gone.
pub async fn unique_holder_names_the_job_holding_the_lock(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let first = unique_job("report:7", Unique::new(""));
    let dup = unique_job("report:7", Unique::new(""));
    assert_eq!(
        store.push(std::slice::from_ref(&first)).await.unwrap(),
        [PushOutcome::Queued]
    );
    assert_eq!(
        store.push(std::slice::from_ref(&dup)).await.unwrap(),
        [PushOutcome::AlreadyQueued]
    );
    assert_eq!(
        store.unique_holder("default", "report:7").await.unwrap(),
        Some(first.id.clone())
    );
    // Through the dispatch API: the refused dispatch reports the holder's id.
    let mut envelope = Envelope::new("noop", "default", serde_json::json!({}));
    envelope.options.unique = Some(Unique::new("report:7"));
    let out = Spool::new(store.clone())
        .dispatch_envelopes(vec![(envelope, Duration::ZERO)])
        .await
        .unwrap();
    assert_eq!(out[0].id, first.id);
    assert!(store.job(&out[0].id).await.unwrap().is_some());

    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 1).await;
    store
        .settle(&w, &[complete_with(&got[0].id, got[0].token, vec![], None)])
        .await
        .unwrap();
    assert_eq!(
        store.unique_holder("default", "report:7").await.unwrap(),
        None
    );
}

/// A batch callback's envelope comes back from the store with its `context` (the batch) and
/// its payload exactly as dispatched, so a job type that refuses unknown fields reads it.
pub async fn callbacks_carry_context_and_an_untouched_payload(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let spool = Spool::new(store.clone());
    let callback = Envelope::new("shell", "then", serde_json::json!({"cmd": "true"}));
    let batch = spool
        .batch("strict")
        .add_envelope(Envelope::new("noop", "default", serde_json::json!({})))
        .allow_failures()
        .callback_envelope("finally", callback)
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 1).await;
    store
        .settle(&w, &[complete_with(&got[0].id, got[0].token, vec![], None)])
        .await
        .unwrap();
    let pushed = reserve_from(&store, &w, &["then"], 1).await;
    assert_eq!(pushed.len(), 1, "the finally callback was pushed");
    let envelope = Envelope::decode(&pushed[0].envelope).unwrap();
    let payload = envelope.payload.plain().expect("plain");
    let strict: Shell = serde_json::from_str(payload).expect("the payload is as dispatched");
    assert_eq!(strict.cmd, "true");
    let context = envelope.context.expect("a callback has a context");
    assert_eq!(context.batch_id.as_deref(), Some(batch.id.as_str()));
    assert_eq!(context.failed_job_id, None);
}

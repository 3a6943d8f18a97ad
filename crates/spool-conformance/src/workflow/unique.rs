//! Unique locks and follow-ups.

use std::{sync::Arc, time::Duration};

use spool::{
    Envelope, Store, Unique,
    store::{JobState, NewJob, PushOutcome, ReleaseKind, Settlement},
};

use super::{complete_with, pending_in};
use crate::{
    Fixture,
    helpers::{LEASE, new_job, reserve_default, worker},
};

pub(super) fn unique_job(key: &str, unique: Unique) -> NewJob {
    let mut envelope = Envelope::new("noop", "default", serde_json::json!({}));
    envelope.options.unique = Some(Unique {
        key: key.into(),
        ..unique
    });
    NewJob::new(&envelope, Duration::ZERO).expect("encodes")
}

/// Pushes a fresh `doc:1` job, unique until done.
async fn push_doc(store: &Arc<dyn Store>) -> Vec<PushOutcome> {
    store
        .push(&[unique_job("doc:1", Unique::new(""))])
        .await
        .unwrap()
}

/// A unique job refuses duplicates until it is done, then frees its key; a failure frees it
/// too; a non-owner (a stale settlement) never does.
pub async fn unique_until_done(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let first = unique_job("doc:1", Unique::new(""));
    assert_eq!(
        store.push(std::slice::from_ref(&first)).await.unwrap(),
        [PushOutcome::Queued]
    );
    let dup = unique_job("doc:1", Unique::new(""));
    assert_eq!(
        store.push(std::slice::from_ref(&dup)).await.unwrap(),
        [PushOutcome::AlreadyQueued]
    );
    assert!(
        store.job(&dup.id).await.unwrap().is_none(),
        "the duplicate is not stored"
    );

    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 1).await;
    // Held across a release (retry) and while running.
    let release = Settlement::Release {
        id: got[0].id.clone(),
        token: got[0].token,
        delay: Duration::ZERO,
        kind: ReleaseKind::RetryAfterError,
        error: Some("retry".into()),
    };
    store.settle(&w, &[release]).await.unwrap();
    assert_eq!(push_doc(&store).await, [PushOutcome::AlreadyQueued]);
    let got = reserve_default(&store, &w, 1).await;
    // A stale token is not the owner: the lock stays.
    store
        .settle(
            &w,
            &[Settlement::complete(got[0].id.clone(), got[0].token - 1)],
        )
        .await
        .unwrap();
    assert_eq!(push_doc(&store).await, [PushOutcome::AlreadyQueued]);
    store
        .settle(&w, &[Settlement::complete(got[0].id.clone(), got[0].token)])
        .await
        .unwrap();
    assert_eq!(push_doc(&store).await, [PushOutcome::Queued]);

    // A final failure frees the key too.
    let got = reserve_default(&store, &w, 1).await;
    let fail = Settlement::fail(got[0].id.clone(), got[0].token, "boom".into(), vec![]);
    store.settle(&w, &[fail]).await.unwrap();
    assert_eq!(push_doc(&store).await, [PushOutcome::Queued]);
    // Deleting a queued job frees its key.
    let queued = store.jobs(&Default::default()).await.unwrap();
    assert!(store.delete_job(&queued[0].id).await.unwrap());
    assert_eq!(push_doc(&store).await, [PushOutcome::Queued]);
}

/// "Unique until processing" frees the key when a worker reserves the job; an expiring lock
/// outlives the job and frees the key only when its time is up.
pub async fn unique_until_processing_and_expiry(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let first = unique_job("mail:7", Unique::new("").until_processing());
    store.push(&[first]).await.unwrap();
    let dup = unique_job("mail:7", Unique::new("").until_processing());
    assert_eq!(
        store.push(&[dup]).await.unwrap(),
        [PushOutcome::AlreadyQueued]
    );
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 1).await;
    assert_eq!(got.len(), 1);
    let while_running = unique_job("mail:7", Unique::new("").until_processing());
    assert_eq!(
        store.push(&[while_running]).await.unwrap(),
        [PushOutcome::Queued]
    );

    let tick = Unique::new("").until_expiry(Duration::from_millis(400));
    assert_eq!(
        store
            .push(&[unique_job("cron:tick", tick.clone())])
            .await
            .unwrap(),
        [PushOutcome::Queued]
    );
    store.clear("default").await.unwrap();
    assert_eq!(
        store
            .push(&[unique_job("cron:tick", tick.clone())])
            .await
            .unwrap(),
        [PushOutcome::AlreadyQueued],
        "an expiring lock outlives its job"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        store.push(&[unique_job("cron:tick", tick)]).await.unwrap(),
        [PushOutcome::Queued]
    );
}

/// Follow-ups are pushed with the completion or failure that carries them, and not at all
/// when the settlement is refused.
pub async fn follow_ups_ride_with_settlements(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    store
        .push(&[
            new_job("default", Duration::ZERO),
            new_job("default", Duration::ZERO),
        ])
        .await
        .unwrap();
    let w = worker(&store, "w", LEASE).await;
    let got = reserve_default(&store, &w, 2).await;
    let next = new_job("next", Duration::ZERO);
    let stale = complete_with(
        &got[0].id,
        got[0].token + 7,
        vec![new_job("next", Duration::ZERO)],
        None,
    );
    assert_eq!(store.settle(&w, &[stale]).await.unwrap(), [false]);
    assert_eq!(
        pending_in(&store, "next").await,
        0,
        "a refused settlement pushes nothing"
    );
    let done = complete_with(&got[0].id, got[0].token, vec![next.clone()], None);
    let catch = new_job("catch", Duration::ZERO);
    let failed = Settlement::Fail {
        id: got[1].id.clone(),
        token: got[1].token,
        error: "boom".into(),
        causes: vec![],
        follow_ups: vec![catch.clone()],
    };
    assert_eq!(
        store.settle(&w, &[done, failed]).await.unwrap(),
        [true, true]
    );
    assert_eq!(
        store.job(&next.id).await.unwrap().unwrap().state,
        JobState::Pending
    );
    assert_eq!(store.job(&catch.id).await.unwrap().unwrap().queue, "catch");
}

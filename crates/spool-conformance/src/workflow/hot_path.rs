//! Workflow effects on the worker's hot path.

use spool::store::Claim;
use std::time::Duration;

use spool::{
    Envelope, Unique,
    store::{NewBatch, NewJob, PushOutcome, ReservedJob, Settlement, SlotRequest},
};

use crate::{
    Fixture,
    helpers::{LEASE, complete, new_job, push_default, q, worker},
};

fn envelope_job(configure: impl FnOnce(&mut Envelope)) -> NewJob {
    let mut envelope = Envelope::new("noop", "default", serde_json::json!({}));
    configure(&mut envelope);
    NewJob::new(&envelope, Duration::ZERO).unwrap()
}

/// Plain completions and jobs with workflow state settled together on the hot path
/// (`settle_and_reserve`): a store's fast statement for plain completions leaves the latter
/// alone, and every side effect (unique locks, batches and their callbacks, slots) is applied.
pub async fn hot_path_applies_side_effects(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let queue = q(&["default"]);
    let w = worker(&store, "w", LEASE).await;

    // A unique lock is released by the completion, and a claimed "until processing" job frees
    // its key with the claim.
    let locked = envelope_job(|e| e.options.unique = Some(Unique::new("doc")));
    let processing =
        envelope_job(|e| e.options.unique = Some(Unique::new("mail").until_processing()));
    store.push(std::slice::from_ref(&locked)).await.unwrap();
    let got = store.reserve(Claim::new(&w, &queue, 1)).await.unwrap();
    store.push(&[processing]).await.unwrap();
    let (applied, claimed) = store
        .settle_and_reserve(
            &[complete(&got[0].id, got[0].token)],
            Claim::new(&w, &queue, 5),
        )
        .await
        .unwrap();
    assert_eq!((applied, claimed.len()), (vec![true], 1));
    for key in ["doc", "mail"] {
        let again = envelope_job(|e| e.options.unique = Some(Unique::new(key)));
        assert_eq!(
            store.push(&[again]).await.unwrap(),
            [PushOutcome::Queued],
            "{key}"
        );
    }

    // A batch job and a slot holder among plain completions.
    let batch_id = spool::new_id();
    let in_batch = envelope_job(|e| e.batch_id = Some(batch_id.clone()));
    let then = new_job("then", Duration::ZERO);
    let batch = NewBatch {
        id: batch_id.clone(),
        name: "b".into(),
        then: Some(then.clone()),
        ..NewBatch::default()
    };
    store.create_batch(&batch, &[in_batch]).await.unwrap();
    push_default(&store, 1).await;
    let mut held = claimed;
    held.extend(store.reserve(Claim::new(&w, &queue, 10)).await.unwrap());
    assert_eq!(held.len(), 5);
    let slot = |job: &ReservedJob| SlotRequest {
        key: "provider".into(),
        limit: 1,
        job_id: job.id.clone(),
        token: job.token,
        expire_after: None,
    };
    assert!(store.acquire_slot(&w, &slot(&held[4])).await.unwrap());
    let acks: Vec<Settlement> = held.iter().map(|j| complete(&j.id, j.token)).collect();
    let (applied, _) = store
        .settle_and_reserve(&acks, Claim::new(&w, &queue, 5))
        .await
        .unwrap();
    assert_eq!(applied, [true; 5]);
    let info = store.batch(&batch_id).await.unwrap().unwrap();
    assert_eq!((info.pending, info.progress), (0, 100));
    assert!(
        store.job(&then.id).await.unwrap().is_some(),
        "`then` was pushed"
    );
    assert_eq!(store.stats().await.unwrap().processed, 6);
    // The slot was freed with its holder's completion.
    push_default(&store, 1).await;
    let next = store.reserve(Claim::new(&w, &queue, 10)).await.unwrap();
    assert!(store.acquire_slot(&w, &slot(&next[0])).await.unwrap());
}

//! Settlements carrying values a store cannot take as given: delays too long for its clock and
//! text its server refuses. Each must be stored in the shared form, never fail the write (one
//! refused settlement would stall a worker's every later write).

use std::time::Duration;

use spool::store::{JobState, ReleaseKind, Settlement};

use crate::{
    Fixture,
    helpers::{LEASE, new_job, reserve_default, worker},
};

/// A release delayed by more than any clock holds (an HTTP `Retry-After` of 10^17 seconds,
/// `Duration::MAX`) is capped: the job waits, delayed, instead of the write failing, panicking
/// or wrapping around to "now".
pub async fn huge_delays_are_capped_not_wrapped(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let w = worker(&store, "w", LEASE).await;
    for delay in [Duration::from_secs(99_999_999_999_999_999), Duration::MAX] {
        let job = new_job("default", Duration::ZERO);
        store.push(std::slice::from_ref(&job)).await.unwrap();
        let got = reserve_default(&store, &w, 1).await;
        assert_eq!(got.len(), 1, "{delay:?}");
        let release = Settlement::Release {
            id: job.id.clone(),
            token: got[0].token,
            delay,
            kind: ReleaseKind::Deferred,
            error: Some("HTTP 429".into()),
        };
        let (applied, _) = store
            .settle_and_reserve(
                &[release],
                spool::store::Claim::new(&w, &["default".to_string()], 1),
            )
            .await
            .expect("a huge delay is stored capped, not refused");
        assert_eq!(applied, [true]);
        let info = store.job(&job.id).await.unwrap().expect("still queued");
        assert_eq!(info.state, JobState::Delayed, "{delay:?}");
        assert!(
            reserve_default(&store, &w, 1).await.is_empty(),
            "a capped delay must not wrap to now"
        );
        // A push with the same delay is capped the same way.
        let pushed = new_job("default", delay);
        store.push(std::slice::from_ref(&pushed)).await.unwrap();
        let info = store.job(&pushed.id).await.unwrap().expect("queued");
        assert_eq!(info.state, JobState::Delayed, "pushed with {delay:?}");
    }
}

/// A NUL byte in an error, a cause or a result (PostgreSQL refuses it in text) is stripped
/// from what is stored, on every store, and the settlement is written.
pub async fn nul_bytes_are_stripped_from_stored_text(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let w = worker(&store, "w", LEASE).await;
    let jobs: Vec<_> = (0..3).map(|_| new_job("default", Duration::ZERO)).collect();
    store.push(&jobs).await.unwrap();
    let got = reserve_default(&store, &w, 3).await;
    assert_eq!(got.len(), 3);
    let token = |id: &str| got.iter().find(|j| j.id == id).unwrap().token;
    let settlements = [
        Settlement::Release {
            id: jobs[0].id.clone(),
            token: token(&jobs[0].id),
            delay: Duration::from_secs(60),
            kind: ReleaseKind::RetryAfterError,
            error: Some("x\0y".into()),
        },
        Settlement::fail(
            jobs[1].id.clone(),
            token(&jobs[1].id),
            "a\0b".into(),
            vec!["c\0d".into()],
        ),
        Settlement::Complete {
            id: jobs[2].id.clone(),
            token: token(&jobs[2].id),
            follow_ups: Vec::new(),
            result: Some("\"e\0f\"".into()),
        },
    ];
    let applied = store
        .settle(&w, &settlements)
        .await
        .expect("NUL bytes are stripped, not refused");
    assert_eq!(applied, [true, true, true]);
    let released = store.job(&jobs[0].id).await.unwrap().expect("queued");
    assert_eq!(released.last_error.as_deref(), Some("xy"));
    let failed = store
        .failed_job(&jobs[1].id)
        .await
        .unwrap()
        .expect("failed record");
    assert_eq!(
        (failed.error.as_str(), failed.causes),
        ("ab", vec!["cd".to_string()])
    );
}

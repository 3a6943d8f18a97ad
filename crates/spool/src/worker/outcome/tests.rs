//! Every sequence of `docs/events.md` ("Sequences"), with the settlement it comes with.

use std::time::Duration;

use super::{Ending, Outcome, Settled, settle};
use crate::{
    envelope::Envelope,
    events::{Event, JobMeta},
    job::JobErrorKind,
    retry::{
        self, AttemptEnd, Counters, Policy,
        fixtures::{at, policy},
    },
    store::{ReleaseKind, Settlement},
};

/// Whether the `i`-th event is a `processed` event, and if so whether it says "released".
fn released(s: &Settled, i: usize) -> Option<bool> {
    match events(s)[i] {
        Event::JobProcessed { released, .. } => Some(released),
        _ => None,
    }
}

fn error(kind: JobErrorKind) -> AttemptEnd {
    AttemptEnd::Error {
        kind,
        message: "boom".into(),
        causes: vec![],
    }
}

fn timeout() -> AttemptEnd {
    AttemptEnd::TimedOut {
        after: Duration::from_secs(2),
    }
}

fn panicked() -> AttemptEnd {
    AttemptEnd::Panicked {
        message: "oops".into(),
    }
}

/// An attempt whose handler ended with `end`, decided as the worker decides it.
fn ran(policy: &Policy, counters: Counters, end: AttemptEnd) -> Settled {
    let envelope = Envelope::new("demo", "default", serde_json::json!({}));
    let ending = Ending::of(&end);
    ran_with(
        &envelope,
        retry::decide(policy, counters, end),
        ending,
        None,
    )
}

/// The settlement of job `j1` (token 7) of `envelope` after the handler ended and was decided.
fn ran_with(
    envelope: &Envelope,
    decision: retry::Decision,
    ending: Ending,
    result: Option<String>,
) -> Settled {
    let outcome = Outcome::Ran {
        envelope,
        ending,
        decision,
        result,
    };
    settle("j1".into(), 7, outcome)
}

fn cannot_run(error: &str) -> Settled {
    settle("j1".into(), 7, Outcome::CannotRun(error.into()))
}

fn events(settled: &Settled) -> Vec<Event> {
    let meta = JobMeta::new("j1", "demo", "default", 1);
    settled
        .notices()
        .map(|n| n.event(&meta, settled.message()))
        .collect()
}

/// The attempt's events as docs/events.md writes them: `processing` and `attempted` frame
/// what [`settle`] returns (the executor tells them before and after the attempt).
fn sequence(settled: &Settled) -> String {
    let middle = events(settled)
        .iter()
        .map(|e| e.name().trim_start_matches("job.").to_string())
        .collect::<Vec<_>>();
    ["processing".to_string()]
        .into_iter()
        .chain(middle)
        .chain(["attempted".to_string()])
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The settlement's kind and, for a release, its delay.
fn kind(settled: &Settled) -> String {
    match &settled.settlement {
        Settlement::Complete { .. } => "complete".into(),
        Settlement::Fail { .. } => "fail".into(),
        Settlement::Release { kind, delay, .. } => format!("release {kind:?} {delay:?}"),
    }
}

/// Asserts the events in order and the settlement's kind.
#[track_caller]
fn expect(s: &Settled, sequence_text: &str, settlement: &str) {
    assert_eq!(sequence(s), sequence_text);
    assert_eq!(kind(s), settlement);
}

/// A retryable error and a panic on attempt `counters` of 3 end the same way.
#[track_caller]
fn error_and_panic_at(counters: Counters, sequence_text: &str, settlement: &str) {
    for end in [error(JobErrorKind::Retry), panicked()] {
        expect(&ran(&policy(3), counters, end), sequence_text, settlement);
    }
}

#[test]
fn success() {
    let s = ran(&policy(3), at(1), AttemptEnd::Success);
    expect(&s, "processing → processed → attempted", "complete");
    assert_eq!(released(&s, 0), Some(false));
}

#[test]
fn retryable_error_or_panic() {
    error_and_panic_at(
        at(1),
        "processing → exception_occurred → released_after_exception → attempted",
        "release RetryAfterError 1s",
    );
    let s = ran(&policy(3), at(2), error(JobErrorKind::Retry));
    assert_eq!(kind(&s), "release RetryAfterError 5s", "backoff by attempt");
    let Event::JobReleasedAfterException { delay, .. } = &events(&s)[1] else {
        panic!("{:?}", events(&s))
    };
    assert_eq!(*delay, Duration::from_secs(5));
}

#[test]
fn error_or_panic_on_the_last_attempt() {
    error_and_panic_at(
        at(3),
        "processing → failed → exception_occurred → attempted",
        "fail",
    );
    let s = ran(&policy(1), at(1), error(JobErrorKind::Retry));
    let told = events(&s);
    assert!(matches!(&told[0], Event::JobFailed { error, .. } if error == "boom"));
    assert!(matches!(&told[1], Event::JobExceptionOccurred { error, .. } if error == "boom"));
}

#[test]
fn max_exceptions_and_a_passed_deadline_fail_after_an_error() {
    let p = Policy {
        max_exceptions: Some(2),
        ..policy(25)
    };
    let s = ran(&p, at(2), error(JobErrorKind::Retry));
    expect(
        &s,
        "processing → failed → exception_occurred → attempted",
        "fail",
    );
    let late = Counters {
        retry_until: Some(500),
        ..at(1)
    };
    let s = ran(&policy(25), late, error(JobErrorKind::Retry));
    assert_eq!(
        sequence(&s),
        "processing → failed → exception_occurred → attempted"
    );
}

#[test]
fn the_job_cannot_run() {
    // Tries exhausted at pickup (S-RETRY-3 a) and a passed retry deadline, as the pickup check
    // words them; then the checks before it: bad envelope, unknown type, --allow, decryption.
    let exhausted = retry::check_at_pickup(&policy(2), at(3), Some("boom")).unwrap_err();
    let deadline = Counters {
        retry_until: Some(1_000),
        ..at(1)
    };
    let passed = retry::check_at_pickup(&policy(2), deadline, None).unwrap_err();
    for why in [
        exhausted.as_str(),
        passed.as_str(),
        "bad envelope",
        "unknown job type `x`",
        "start the worker with --allow shell",
        "payload decryption failed: no key",
    ] {
        let s = cannot_run(why);
        assert_eq!(
            sequence(&s),
            "processing → failed → exception_occurred → attempted"
        );
        let Settlement::Fail {
            error, follow_ups, ..
        } = &s.settlement
        else {
            panic!("{why}: not a failure")
        };
        assert_eq!(error, why);
        assert!(follow_ups.is_empty());
    }
}

/// A handler that ended with `kind` on its only or first of `tries` attempts.
fn handler_ended(tries: u32, kind: JobErrorKind) -> Settled {
    ran(&policy(tries), at(1), error(kind))
}

#[test]
fn handler_released_the_job() {
    let s = handler_ended(3, JobErrorKind::Release(Duration::from_secs(10)));
    expect(
        &s,
        "processing → processed → released → attempted",
        "release Released 10s",
    );
    assert_eq!(released(&s, 0), Some(true));
}

#[test]
fn handler_deferred_the_job() {
    let s = handler_ended(1, JobErrorKind::Defer(Duration::from_secs(7)));
    expect(
        &s,
        "processing → processed → deferred → attempted",
        "release Deferred 7s",
    );
    assert_eq!(released(&s, 0), Some(true));
    assert!(matches!(&events(&s)[1], Event::JobDeferred { reason, .. } if reason == "boom"));
}

#[test]
fn handler_failed_the_job_or_deferrals_ran_out() {
    let chose = ran(&policy(3), at(1), error(JobErrorKind::Fail));
    let deferrals = Counters {
        deferrals: 3,
        ..at(1)
    };
    let ran_out = ran(
        &policy(3),
        deferrals,
        error(JobErrorKind::Defer(Duration::from_secs(7))),
    );
    for s in [chose, ran_out] {
        expect(&s, "processing → failed → processed → attempted", "fail");
        assert_eq!(released(&s, 1), Some(false));
    }
}

#[test]
fn timeout_retried() {
    let s = ran(&policy(3), at(1), timeout());
    expect(
        &s,
        "processing → timed_out → exception_occurred → released_after_exception → attempted",
        "release RetryAfterError 1s",
    );
    let told = events(&s);
    assert!(
        matches!(&told[0], Event::JobTimedOut { after, .. } if *after == Duration::from_secs(2))
    );
}

#[test]
fn timeout_final() {
    let fail_on_timeout = Policy {
        fail_on_timeout: true,
        ..policy(3)
    };
    let max_exceptions = Policy {
        max_exceptions: Some(1),
        ..policy(3)
    };
    let late = Counters {
        retry_until: Some(500),
        ..at(1)
    };
    for (policy, counters) in [
        (policy(3), at(3)),
        (fail_on_timeout, at(1)),
        (max_exceptions, at(1)),
        (policy(3), late),
    ] {
        let s = ran(&policy, counters, timeout());
        expect(
            &s,
            "processing → timed_out → failed → exception_occurred → attempted",
            "fail",
        );
        assert_eq!(s.message(), "timed out after 2s");
    }
}

#[test]
fn worker_shutdown_handed_the_job_back() {
    let s = settle("j1".into(), 7, Outcome::HandedBack);
    expect(
        &s,
        "processing → handed_back → attempted",
        "release Shutdown 0ns",
    );
    assert!(matches!(
        s.settlement,
        Settlement::Release {
            kind: ReleaseKind::Shutdown,
            error: None,
            ..
        }
    ));
}

#[test]
fn skipped_job_of_a_cancelled_batch_completes_without_follow_ups() {
    let s = settle("j1".into(), 7, Outcome::Skipped);
    assert_eq!(sequence(&s), "processing → processed → attempted");
    let Settlement::Complete {
        follow_ups, result, ..
    } = &s.settlement
    else {
        panic!("not a completion")
    };
    assert!(follow_ups.is_empty() && result.is_none());
}

#[test]
fn completion_keeps_the_result_and_pushes_the_batch_progress() {
    let mut envelope = Envelope::new("demo", "default", serde_json::json!({}));
    envelope.batch_progress = Some(Box::new(Envelope::new(
        "progress",
        "default",
        serde_json::json!({}),
    )));
    let settled = |decision, ending| ran_with(&envelope, decision, ending, Some("42".into()));
    let done = settled(retry::Decision::Complete, Ending::Handled);
    let Settlement::Complete {
        follow_ups, result, ..
    } = &done.settlement
    else {
        panic!("not a completion")
    };
    assert_eq!(follow_ups.len(), 1);
    assert_eq!(result.as_deref(), Some("42"));
    let failed = settled(
        retry::Decision::Fail {
            error: "boom".into(),
            causes: vec!["cause".into()],
        },
        Ending::Exception,
    );
    let Settlement::Fail {
        follow_ups, causes, ..
    } = &failed.settlement
    else {
        panic!("not a failure")
    };
    assert_eq!(follow_ups.len(), 1);
    assert_eq!(causes, &["cause"]);
}

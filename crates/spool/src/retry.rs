//! Pure retry decisions: what happens to a job after an attempt (D-2, S-RETRY-*, S-JOB-*).
//!
//! Kept free of I/O so the whole table is unit-tested below.

use std::time::Duration;

use crate::{job::JobErrorKind, options::Backoff};

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum AttemptEnd {
    Success,
    Error {
        kind: JobErrorKind,
        message: String,
        causes: Vec<String>,
    },
    TimedOut {
        after: Duration,
    },
    Panicked {
        message: String,
    },
}

/// The effective options of a running job (job options filled in from the worker's).
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) tries: u32,
    pub(crate) backoff: Backoff,
    pub(crate) max_exceptions: Option<u32>,
    pub(crate) fail_on_timeout: bool,
    pub(crate) max_deferrals: u32,
}

/// The job's counters as the store saw them when this attempt began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counters {
    /// Attempts including this one.
    pub(crate) attempts: u32,
    /// Exceptions (errors and timeouts) before this attempt.
    pub(crate) exceptions: u32,
    /// Deferrals before this attempt.
    pub(crate) deferrals: u32,
    /// Absolute retry deadline (ms since epoch), if the job has one.
    pub(crate) retry_until: Option<i64>,
    /// Now, in ms since epoch.
    pub(crate) now: i64,
}

/// What to do with the job.
#[derive(Debug, PartialEq)]
pub(crate) enum Decision {
    Complete,
    /// Re-queue after `delay`; the attempt counts; `exception` raises the exception count.
    Retry {
        delay: Duration,
        exception: bool,
        error: String,
    },
    /// Re-queue after `delay` without using the attempt.
    Defer {
        delay: Duration,
        reason: String,
    },
    /// Move to the failed store.
    Fail {
        error: String,
        causes: Vec<String>,
    },
}

/// Whether a job may run at pickup; `Err` is the failure message (S-RETRY-3 a, S-RETRY-4).
pub(crate) fn check_at_pickup(
    policy: &Policy,
    c: Counters,
    last_error: Option<&str>,
) -> Result<(), String> {
    let last = last_error
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default();
    match c.retry_until {
        Some(deadline) if c.now >= deadline => Err(format!("retry deadline passed{last}")),
        Some(_) => Ok(()),
        None if policy.tries > 0 && c.attempts > policy.tries => {
            Err(format!("max attempts ({}) exceeded{last}", policy.tries))
        }
        None => Ok(()),
    }
}

/// Decides the outcome of one attempt.
pub(crate) fn decide(policy: &Policy, c: Counters, end: AttemptEnd) -> Decision {
    let (message, causes, timed_out) = match end {
        AttemptEnd::Success => return Decision::Complete,
        AttemptEnd::Error {
            kind: JobErrorKind::Fail,
            message,
            causes,
        } => {
            return Decision::Fail {
                error: message,
                causes,
            };
        }
        AttemptEnd::Error {
            kind: JobErrorKind::Release(delay),
            message,
            ..
        } => {
            // A release uses the attempt but is no exception; exhaustion is noticed at pickup.
            return Decision::Retry {
                delay,
                exception: false,
                error: message,
            };
        }
        AttemptEnd::Error {
            kind: JobErrorKind::Defer(delay),
            message,
            causes,
        } => return deferred(policy, c, delay, message, causes),
        AttemptEnd::Error {
            kind: JobErrorKind::Retry,
            message,
            causes,
        } => (message, causes, false),
        AttemptEnd::TimedOut { after } => (format!("timed out after {after:?}"), vec![], true),
        AttemptEnd::Panicked { message } => (format!("panicked: {message}"), vec![], false),
    };
    after_exception(policy, c, message, causes, timed_out)
}

/// A deferral is free until the cap or the retry deadline; then the job fails, saying why.
fn deferred(
    policy: &Policy,
    c: Counters,
    delay: Duration,
    message: String,
    causes: Vec<String>,
) -> Decision {
    let deadline_passed = c.retry_until.is_some_and(|d| c.now >= d);
    if c.deferrals + 1 > policy.max_deferrals || deadline_passed {
        let why = if deadline_passed {
            "retry deadline passed while deferred".to_string()
        } else {
            format!("deferred {} times", c.deferrals + 1)
        };
        return Decision::Fail {
            error: message,
            causes: with_note(causes, why),
        };
    }
    Decision::Defer {
        delay,
        reason: message,
    }
}

/// An error, panic or timeout: retried after its backoff unless a limit says it was the last.
fn after_exception(
    policy: &Policy,
    c: Counters,
    message: String,
    causes: Vec<String>,
    timed_out: bool,
) -> Decision {
    let exceptions = c.exceptions + 1;
    let fail = |error: String| Decision::Fail {
        error,
        causes: causes.clone(),
    };
    if timed_out && policy.fail_on_timeout {
        return fail(message);
    }
    if policy.max_exceptions.is_some_and(|max| exceptions >= max) {
        return fail(message);
    }
    match c.retry_until {
        Some(deadline) if c.now >= deadline => return fail(message),
        Some(_) => {}
        None if policy.tries > 0 && c.attempts >= policy.tries => return fail(message),
        None => {}
    }
    Decision::Retry {
        delay: policy.backoff.delay(c.attempts),
        exception: true,
        error: message,
    }
}

fn with_note(mut causes: Vec<String>, note: String) -> Vec<String> {
    causes.insert(0, note);
    causes
}

/// Policies and counters the retry and outcome unit tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::time::Duration;

    use super::{Counters, Policy};
    use crate::options::Backoff;

    /// `tries` tries, backoff 1 s then 5 s, at most 3 deferrals.
    pub(crate) fn policy(tries: u32) -> Policy {
        Policy {
            tries,
            backoff: Backoff::List(vec![Duration::from_secs(1), Duration::from_secs(5)]),
            max_exceptions: None,
            fail_on_timeout: false,
            max_deferrals: 3,
        }
    }

    /// The counters of attempt `attempts`, every earlier attempt an exception.
    pub(crate) fn at(attempts: u32) -> Counters {
        Counters {
            attempts,
            exceptions: attempts - 1,
            deferrals: 0,
            retry_until: None,
            now: 1_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{at, policy};
    use super::*;

    /// An attempt that ended in an error of `kind`, without causes.
    fn ended(kind: JobErrorKind, message: &str) -> AttemptEnd {
        AttemptEnd::Error {
            kind,
            message: message.into(),
            causes: vec![],
        }
    }

    fn err(message: &str) -> AttemptEnd {
        ended(JobErrorKind::Retry, message)
    }

    fn retry(secs: u64, error: &str) -> Decision {
        Decision::Retry {
            delay: Duration::from_secs(secs),
            exception: true,
            error: error.into(),
        }
    }

    fn fail(error: &str) -> Decision {
        Decision::Fail {
            error: error.into(),
            causes: vec![],
        }
    }

    #[test]
    fn backoff_list_then_failure_with_last_exception() {
        // S-RETRY-5: tries=3, backoff [1,5]: retry after 1 s, then 5 s, then fail with the third error.
        let p = policy(3);
        assert_eq!(decide(&p, at(1), err("e1")), retry(1, "e1"));
        assert_eq!(decide(&p, at(2), err("e2")), retry(5, "e2"));
        assert_eq!(decide(&p, at(3), err("e3")), fail("e3"));
    }

    #[test]
    fn tries_zero_is_unlimited() {
        assert_eq!(decide(&policy(0), at(50), err("again")), retry(5, "again"));
    }

    #[test]
    fn success_completes_and_fail_is_immediate() {
        assert_eq!(
            decide(&policy(3), at(1), AttemptEnd::Success),
            Decision::Complete
        );
        let end = ended(JobErrorKind::Fail, "bad");
        assert_eq!(decide(&policy(3), at(1), end), fail("bad"));
    }

    #[test]
    fn release_uses_the_attempt_and_pickup_catches_exhaustion() {
        // S-RETRY-3: tries=2, always release(10): second run, then failure at the third pickup.
        let p = policy(2);
        let release = || ended(JobErrorKind::Release(Duration::from_secs(10)), "released");
        assert!(matches!(
            decide(&p, at(1), release()),
            Decision::Retry {
                exception: false,
                ..
            }
        ));
        assert!(matches!(
            decide(&p, at(2), release()),
            Decision::Retry {
                exception: false,
                ..
            }
        ));
        assert!(check_at_pickup(&p, at(2), None).is_ok());
        let msg = check_at_pickup(&p, at(3), Some("released")).unwrap_err();
        assert_eq!(msg, "max attempts (2) exceeded; last error: released");
    }

    #[test]
    fn deadline_beats_tries() {
        // S-RETRY-4: with a deadline, tries is ignored until the deadline passes.
        let p = policy(1);
        let before = Counters {
            retry_until: Some(2_000),
            ..at(7)
        };
        assert_eq!(decide(&p, before, err("x")), retry(5, "x"));
        let after = Counters {
            now: 2_000,
            ..before
        };
        assert_eq!(decide(&p, after, err("x")), fail("x"));
        assert!(check_at_pickup(&p, after, None).is_err());
        assert!(check_at_pickup(&p, before, None).is_ok());
    }

    #[test]
    fn max_exceptions_counts_errors_and_timeouts() {
        let p = Policy {
            max_exceptions: Some(3),
            ..policy(25)
        };
        let c = Counters {
            exceptions: 1,
            ..at(4)
        };
        assert!(matches!(decide(&p, c, err("x")), Decision::Retry { .. }));
        let c = Counters {
            exceptions: 2,
            ..at(6)
        };
        assert_eq!(decide(&p, c, err("third")), fail("third"));
        let timeout = AttemptEnd::TimedOut {
            after: Duration::from_secs(2),
        };
        assert!(matches!(decide(&p, c, timeout), Decision::Fail { .. }));
    }

    #[test]
    fn timeouts_retry_unless_fail_on_timeout() {
        let timeout = || AttemptEnd::TimedOut {
            after: Duration::from_secs(2),
        };
        assert!(matches!(
            decide(&policy(5), at(1), timeout()),
            Decision::Retry { .. }
        ));
        let p = Policy {
            fail_on_timeout: true,
            ..policy(5)
        };
        assert_eq!(decide(&p, at(1), timeout()), fail("timed out after 2s"));
    }

    #[test]
    fn panics_are_errors() {
        let end = AttemptEnd::Panicked {
            message: "boom".into(),
        };
        assert_eq!(decide(&policy(1), at(1), end), fail("panicked: boom"));
    }

    #[test]
    fn deferrals_are_free_until_the_cap_and_name_the_last_reason() {
        let p = policy(1);
        let defer = || ended(JobErrorKind::Defer(Duration::from_secs(7)), "HTTP 429");
        let c = Counters {
            deferrals: 2,
            ..at(1)
        };
        assert_eq!(
            decide(&p, c, defer()),
            Decision::Defer {
                delay: Duration::from_secs(7),
                reason: "HTTP 429".into()
            }
        );
        let c = Counters {
            deferrals: 3,
            ..at(1)
        };
        let Decision::Fail { error, causes } = decide(&p, c, defer()) else {
            panic!()
        };
        assert_eq!(error, "HTTP 429");
        assert_eq!(causes, ["deferred 4 times"]);
    }
}

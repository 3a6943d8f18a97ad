//! The pure end of an attempt: how it came out → the settlement to write and the events to
//! tell, in the order `docs/events.md` lists. No I/O here, so every sequence is unit-tested.

use std::time::Duration;

use super::workflow;
use crate::{
    envelope::Envelope,
    events::{Event, JobMeta},
    job::JobErrorKind,
    retry::{AttemptEnd, Decision},
    store::{ReleaseKind, Settlement},
};

/// How an attempt ended, as far as events tell it (the retry decision consumes the details).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Ending {
    /// Success, or a release, deferral or `fail` the handler chose: no exception.
    Handled,
    /// An error or a panic.
    Exception,
    /// The timeout cancelled the handler.
    TimedOut(Duration),
}

impl Ending {
    pub(crate) fn of(end: &AttemptEnd) -> Ending {
        match end {
            AttemptEnd::Success
            | AttemptEnd::Error {
                kind: JobErrorKind::Fail | JobErrorKind::Release(_) | JobErrorKind::Defer(_),
                ..
            } => Ending::Handled,
            AttemptEnd::Error { .. } | AttemptEnd::Panicked { .. } => Ending::Exception,
            AttemptEnd::TimedOut { after } => Ending::TimedOut(*after),
        }
    }
}

/// How one attempt came out, everything that needed I/O done.
pub(crate) enum Outcome<'e> {
    /// The job cannot run (bad envelope, unknown type, missing `--allow`, payload decryption
    /// failed, tries exhausted or deadline passed at pickup); the message says why.
    CannotRun(String),
    /// Its batch was cancelled: done without running (S-MW-5).
    Skipped,
    /// A shutdown interrupted the handler (no attempt used).
    HandedBack,
    /// The handler ran to an end and the retry decision was taken.
    Ran {
        envelope: &'e Envelope,
        ending: Ending,
        decision: Decision,
        /// The result the handler kept (only a completion stores it).
        result: Option<String>,
    },
}

/// One event of an attempt, without the job's facts (they are filled in only if someone
/// listens, so an unheard event costs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    TimedOut(Duration),
    Processed { released: bool },
    ExceptionOccurred,
    ReleasedAfterException(Duration),
    Released(Duration),
    Deferred(Duration),
    Failed,
    HandedBack,
}

impl Notice {
    /// The event, for `job`; `message` is the settlement's error (see [`Settled::message`]).
    pub(crate) fn event(self, job: &JobMeta, message: &str) -> Event {
        let job = job.clone();
        match self {
            Notice::TimedOut(after) => Event::JobTimedOut { job, after },
            Notice::Processed { released } => Event::JobProcessed { job, released },
            Notice::ExceptionOccurred => Event::JobExceptionOccurred {
                job,
                error: message.to_string(),
            },
            Notice::ReleasedAfterException(delay) => {
                Event::JobReleasedAfterException { job, delay }
            }
            Notice::Released(delay) => Event::JobReleased { job, delay },
            Notice::Deferred(delay) => Event::JobDeferred {
                job,
                delay,
                reason: message.to_string(),
            },
            Notice::Failed => Event::JobFailed {
                job,
                error: message.to_string(),
            },
            Notice::HandedBack => Event::JobHandedBack { job },
        }
    }
}

/// The settlement of an attempt and the events between `job.processing` and `job.attempted`.
pub(crate) struct Settled {
    pub(crate) settlement: Settlement,
    /// At most three events; a fixed array keeps the hot path free of allocations.
    notices: [Option<Notice>; 3],
}

impl Settled {
    fn new(settlement: Settlement, notices: [Option<Notice>; 3]) -> Settled {
        Settled {
            settlement,
            notices,
        }
    }

    /// The events to tell, in order.
    pub(crate) fn notices(&self) -> impl Iterator<Item = Notice> + '_ {
        self.notices.iter().flatten().copied()
    }

    /// The error (or deferral reason) the events carry.
    pub(crate) fn message(&self) -> &str {
        match &self.settlement {
            Settlement::Fail { error, .. } => error,
            Settlement::Release {
                error: Some(error), ..
            } => error,
            _ => "",
        }
    }
}

/// Maps the outcome of the attempt on job `id` (reserved with `token`) to its settlement and
/// events.
pub(crate) fn settle(id: String, token: i64, outcome: Outcome<'_>) -> Settled {
    match outcome {
        // Fails at once, as a last attempt's exception would (S-EVT-1).
        Outcome::CannotRun(error) => Settled::new(
            Settlement::fail(id, token, error, vec![]),
            [Some(Notice::Failed), Some(Notice::ExceptionOccurred), None],
        ),
        Outcome::Skipped => Settled::new(
            Settlement::complete(id, token),
            [Some(Notice::Processed { released: false }), None, None],
        ),
        Outcome::HandedBack => Settled::new(
            Settlement::Release {
                id,
                token,
                delay: Duration::ZERO,
                kind: ReleaseKind::Shutdown,
                error: None,
            },
            [Some(Notice::HandedBack), None, None],
        ),
        Outcome::Ran {
            envelope,
            ending,
            decision,
            result,
        } => {
            let (first, second) = told(ending, &decision);
            let settlement = settlement(id, token, envelope, decision, result);
            let notices = match ending {
                // The timeout comes first, then what an error would have told.
                Ending::TimedOut(after) => [Some(Notice::TimedOut(after)), Some(first), second],
                Ending::Handled | Ending::Exception => [Some(first), second, None],
            };
            Settled::new(settlement, notices)
        }
    }
}

/// The one or two events that tell a retry decision.
fn told(ending: Ending, decision: &Decision) -> (Notice, Option<Notice>) {
    let processed = |released| Notice::Processed { released };
    match *decision {
        Decision::Complete => (processed(false), None),
        Decision::Retry {
            delay,
            exception: true,
            ..
        } => (
            Notice::ExceptionOccurred,
            Some(Notice::ReleasedAfterException(delay)),
        ),
        Decision::Retry { delay, .. } => (processed(true), Some(Notice::Released(delay))),
        Decision::Defer { delay, .. } => (processed(true), Some(Notice::Deferred(delay))),
        Decision::Fail { .. } => match ending {
            // The handler chose to fail (or deferred too often): no exception (S-EVT-2).
            Ending::Handled => (Notice::Failed, Some(processed(false))),
            Ending::Exception | Ending::TimedOut(_) => {
                (Notice::Failed, Some(Notice::ExceptionOccurred))
            }
        },
    }
}

/// The settlement a retry decision comes to, with what it pushes along: the chain's next link
/// or catch handler and the batch's progress callback.
fn settlement(
    id: String,
    token: i64,
    envelope: &Envelope,
    decision: Decision,
    result: Option<String>,
) -> Settlement {
    let (delay, kind, error) = match decision {
        Decision::Complete => {
            return Settlement::Complete {
                follow_ups: [
                    workflow::next_links(envelope),
                    workflow::batch_progress(envelope, true),
                ]
                .concat(),
                id,
                token,
                result,
            };
        }
        Decision::Fail { error, causes } => {
            return Settlement::Fail {
                follow_ups: [
                    workflow::chain_catch(envelope, &error),
                    workflow::batch_progress(envelope, false),
                ]
                .concat(),
                id,
                token,
                error,
                causes,
            };
        }
        Decision::Retry {
            delay,
            exception: true,
            error,
        } => (delay, ReleaseKind::RetryAfterError, error),
        Decision::Retry { delay, error, .. } => (delay, ReleaseKind::Released, error),
        Decision::Defer { delay, reason } => (delay, ReleaseKind::Deferred, reason),
    };
    Settlement::Release {
        id,
        token,
        delay,
        kind,
        error: Some(error),
    }
}

#[cfg(test)]
mod tests;

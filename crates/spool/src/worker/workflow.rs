//! What a settled job leaves behind for the store to push in the same atomic step: the next
//! link of its chain when it completes, the chain's catch handler when it fails for good, its
//! batch's progress callback either way.

use crate::{
    envelope::{CallbackContext, ChainRest, Envelope},
    limits::progress_id,
    store::NewJob,
};

/// The next link of `envelope`'s chain, carrying the rest of the chain with it.
pub(crate) fn next_links(envelope: &Envelope) -> Vec<NewJob> {
    let Some(rest) = envelope.chain.as_deref() else {
        return Vec::new();
    };
    let Some((first, later)) = rest.links.split_first() else {
        return Vec::new();
    };
    let mut next = first.envelope.clone();
    if !later.is_empty() || rest.catch.is_some() {
        next.chain = Some(Box::new(ChainRest {
            links: later.to_vec(),
            catch: rest.catch.clone(),
        }));
    }
    encode(&next, first.delay)
}

/// The chain's catch handler, told which job failed and why in its envelope's `context` (its
/// payload stays as dispatched, so a strict payload type still reads it, and a sealed one
/// still opens).
pub(crate) fn chain_catch(envelope: &Envelope, error: &str) -> Vec<NewJob> {
    let Some(catch) = envelope
        .chain
        .as_deref()
        .and_then(|rest| rest.catch.as_deref())
    else {
        return Vec::new();
    };
    let mut catch = catch.clone();
    let context = catch.context.get_or_insert_with(CallbackContext::default);
    context.failed_job_id = Some(envelope.id.clone());
    context.error = Some(error.to_string());
    if context.batch_id.is_none() {
        context.batch_id = envelope.batch_id.clone();
    }
    encode(&catch, std::time::Duration::ZERO)
}

/// The batch's progress callback for this job: one per job (its id names the job, so pushing
/// it twice is harmless).
pub(crate) fn batch_progress(envelope: &Envelope, completed: bool) -> Vec<NewJob> {
    let Some(progress) = envelope.batch_progress.as_deref() else {
        return Vec::new();
    };
    // A chain's link that completes hands on to the next link: the chain has not finished.
    let more_links = envelope
        .chain
        .as_deref()
        .is_some_and(|r| !r.links.is_empty());
    if completed && more_links {
        return Vec::new();
    }
    let mut progress = progress.clone();
    // Since the callback's id is bound into a sealed payload, a batch dispatches each job with
    // its own callback, id final. Envelopes written before that share one callback: its id
    // gets the job's id here (such a callback cannot be sealed).
    if !progress.id.ends_with(&format!(":{}", envelope.id)) {
        progress.id = progress_id(&progress.id, &envelope.id);
    }
    encode(&progress, std::time::Duration::ZERO)
}

fn encode(envelope: &Envelope, delay: std::time::Duration) -> Vec<NewJob> {
    match NewJob::encoded(envelope, delay) {
        Ok(job) => vec![job],
        Err(e) => {
            // Cannot happen for an envelope that was decoded from JSON; say so if it does.
            tracing::error!(job_id = %envelope.id, "cannot encode the chain's next job: {e}");
            Vec::new()
        }
    }
}

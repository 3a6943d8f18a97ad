//! The rules every job obeys before a store accepts it: names, lengths and the envelope's
//! size. They are checked at every entry point (dispatch, `NewJob::new`, a store's `push`,
//! `push_in_transaction` and batch writes), for a chain's links and a workflow's callbacks as
//! for the head, so no store ever holds a job no worker can serve or that a column cannot hold.
//!
//! Jobs stored under other names before these rules existed stay listable, retryable and
//! clearable: the admin reads do not check them.

use crate::envelope::Envelope;

/// Longest queue name, in characters.
pub const MAX_QUEUE_LEN: usize = 128;
/// Longest job id, job name or batch id, in characters (the SQL stores' columns hold 255).
pub const MAX_ID_LEN: usize = 255;
/// Longest unique key, in characters (the SQL stores' lock column holds 512).
pub const MAX_UNIQUE_KEY_LEN: usize = 512;

/// Most tags on one job.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;

/// The tag rule, as every refusal states it.
pub const TAG_RULE: &str =
    "a job has at most 16 tags, each 1-64 bytes with no comma and no control character";

/// The queue-name rule, as every refusal states it.
pub const QUEUE_NAME_RULE: &str = "a queue name is 1-128 characters of ASCII letters, digits and `. _ : - /`, starting with a letter or digit";

/// A job that no store may accept: the message says what is wrong and the rule.
#[derive(Debug, thiserror::Error)]
pub enum InvalidJob {
    /// The queue name breaks [`QUEUE_NAME_RULE`].
    #[error("invalid queue name {0}: {QUEUE_NAME_RULE}")]
    Queue(String),
    /// An id, job name, batch id or unique key is empty or too long.
    #[error("{what} must be 1-{max} characters long (got {len})")]
    Length {
        /// Which field.
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A tag breaks [`TAG_RULE`], or there are too many.
    #[error("invalid tags on job `{job}`: {problem}; {TAG_RULE}")]
    Tags {
        /// Job name.
        job: String,
        /// What is wrong: which tag, and how.
        problem: String,
    },
    /// The encoded job is larger than the payload limit.
    #[error(
        "job `{job}` is {size} bytes encoded, over the {limit}-byte payload limit; pass an id and load the data in the handler instead"
    )]
    PayloadTooLarge {
        /// Job name.
        job: String,
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The job could not be serialized.
    #[error("job `{job}` could not be serialized: {source}")]
    Serialize {
        /// Job name.
        job: String,
        /// The serde error.
        source: serde_json::Error,
    },
}

/// Checks a queue name against [`QUEUE_NAME_RULE`].
///
/// ```
/// assert!(spool::limits::check_queue("emails.high").is_ok());
/// assert!(spool::limits::check_queue("a,b").is_err());
/// assert!(spool::limits::check_queue(" high ").is_err());
/// ```
pub fn check_queue(queue: &str) -> Result<(), InvalidJob> {
    let mut chars = queue.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok =
        chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-' | '/'));
    if starts_well && rest_ok && queue.len() <= MAX_QUEUE_LEN {
        return Ok(());
    }
    Err(InvalidJob::Queue(shown(queue)))
}

/// A name as a refusal shows it: quoted with control characters escaped, cut to 80 characters.
fn shown(name: &str) -> String {
    let count = name.chars().count();
    let cut: String = name.chars().take(80).collect();
    if count > 80 {
        format!("{:?}… ({count} characters)", cut)
    } else {
        format!("{cut:?}")
    }
}

fn check_len(what: &'static str, value: &str, max: usize) -> Result<(), InvalidJob> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(InvalidJob::Length { what, len, max });
    }
    Ok(())
}

/// Checks a batch id (1-255 characters).
pub fn check_batch_id(id: &str) -> Result<(), InvalidJob> {
    check_len("a batch id", id, MAX_ID_LEN)
}

/// Checks the names a store keeps in columns: id, job name, queue, batch id, unique key.
pub fn check_names(
    id: &str,
    job: &str,
    queue: &str,
    batch_id: Option<&str>,
    unique_key: Option<&str>,
) -> Result<(), InvalidJob> {
    check_len("a job id", id, MAX_ID_LEN)?;
    check_len("a job name", job, MAX_ID_LEN)?;
    check_queue(queue)?;
    if let Some(batch) = batch_id {
        check_len("a batch id", batch, MAX_ID_LEN)?;
    }
    if let Some(key) = unique_key {
        check_len("a unique key", key, MAX_UNIQUE_KEY_LEN)?;
    }
    Ok(())
}

/// Checks a job's tags against [`TAG_RULE`]; `job` names the job in the refusal.
///
/// ```
/// use spool::limits::check_tags;
/// assert!(check_tags("report", &["tenant:7".to_string(), "nightly".to_string()]).is_ok());
/// assert!(check_tags("report", &["a,b".to_string()]).is_err());
/// assert!(check_tags("report", &[String::new()]).is_err());
/// ```
pub fn check_tags(job: &str, tags: &[String]) -> Result<(), InvalidJob> {
    let refuse = |problem: String| InvalidJob::Tags {
        job: job.to_string(),
        problem,
    };
    if tags.len() > MAX_TAGS {
        return Err(refuse(format!("{} tags given", tags.len())));
    }
    for tag in tags {
        if tag.is_empty() {
            return Err(refuse("an empty tag".into()));
        }
        if tag.len() > MAX_TAG_LEN {
            return Err(refuse(format!("tag {} is {} bytes", shown(tag), tag.len())));
        }
        if tag.contains(',') || tag.chars().any(char::is_control) {
            return Err(refuse(format!("tag {}", shown(tag))));
        }
    }
    Ok(())
}

/// Checks an envelope's names, and those of every job it carries for later (a chain's links
/// and catch job, a batch's progress callback), like the head's.
pub fn check_envelope(envelope: &Envelope) -> Result<(), InvalidJob> {
    check_names(
        &envelope.id,
        &envelope.job,
        &envelope.queue,
        envelope.batch_id.as_deref(),
        envelope.options.unique.as_ref().map(|u| u.key.as_str()),
    )?;
    check_tags(&envelope.job, &envelope.tags)?;
    if let Some(progress) = envelope.batch_progress.as_deref() {
        check_envelope(progress)?;
        check_len(
            "a progress callback's id (its own id, `:` and the job's id)",
            &progress_id(&progress.id, &envelope.id),
            MAX_ID_LEN,
        )?;
    }
    if let Some(rest) = envelope.chain.as_deref() {
        for link in &rest.links {
            check_envelope(&link.envelope)?;
        }
        if let Some(catch) = rest.catch.as_deref() {
            check_envelope(catch)?;
        }
    }
    Ok(())
}

/// The id of a batch's progress callback for one job: one per job, so pushing it twice is
/// harmless.
pub(crate) fn progress_id(progress: &str, job_id: &str) -> String {
    format!("{progress}:{job_id}")
}

/// Checks an encoded envelope's size against `limit` bytes.
pub fn check_size(job: &str, encoded: &str, limit: usize) -> Result<(), InvalidJob> {
    if encoded.len() > limit {
        return Err(InvalidJob::PayloadTooLarge {
            job: job.to_string(),
            size: encoded.len(),
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_the_rule() {
        for good in [
            "default",
            "a",
            "emails.high",
            "tenant:7/reports",
            "q_1-2",
            &"a".repeat(128),
        ] {
            assert!(check_queue(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a,b",
            " high ",
            "high ",
            ".hidden",
            "-x",
            "tab\there",
            "é",
            &"a".repeat(129),
        ] {
            let err = check_queue(bad).unwrap_err().to_string();
            assert!(err.contains(QUEUE_NAME_RULE), "{err}");
        }
        let err = check_queue("bell\u{7}").unwrap_err().to_string();
        assert!(
            err.contains("\\u{7}"),
            "control characters are escaped: {err}"
        );
        let err = check_queue(&"x".repeat(5000)).unwrap_err().to_string();
        assert!(err.len() < 400, "long names are cut: {err}");
    }

    #[test]
    fn tags_follow_the_rule() {
        let tags = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert!(check_tags("j", &tags(&["tenant:7", "é", &"a".repeat(64)])).is_ok());
        assert!(check_tags("j", &tags(&["x"; 16])).is_ok());
        for (bad, says) in [
            (tags(&["x"; 17]), "17 tags given"),
            (tags(&[""]), "an empty tag"),
            (tags(&["a,b"]), "tag \"a,b\""),
            (tags(&["new\nline"]), "tag \"new\\nline\""),
            (tags(&[&"é".repeat(33)]), "66 bytes"),
        ] {
            let err = check_tags("report", &bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
            assert!(
                err.contains("job `report`") && err.contains(TAG_RULE),
                "{err}"
            );
        }
    }
}
